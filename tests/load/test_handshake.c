/*
 * test_handshake.c - load/handshake.c: RFC 6455's accept example, the
 * request, and the response checks (truncated at every byte).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "handshake.h"

/* RFC 6455 section 1.3 / 4.2.2 */
static const char s_key[] = "dGhlIHNhbXBsZSBub25jZQ==";
static const char s_accept[] = "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=";

static const char s_ok[] = "HTTP/1.1 101 Switching Protocols\r\n"
                           "Upgrade: websocket\r\n"
                           "Connection: Upgrade\r\n"
                           "sec-websocket-accept:   s3pPLMBiTxaQ9kYGzzhZRbK+xOo= \r\n"
                           "Sec-WebSocket-Protocol: wsgate.v1.json\r\n"
                           "\r\n";

static void
test_rfc_accept(void **state)
{
    char acc[LD_HS_ACCEPT_LEN + 1];

    (void)state;
    assert_int_equal(ld_handshake_accept(s_key, acc), 0);
    assert_string_equal(acc, "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=");
    assert_int_equal(strlen(acc), LD_HS_ACCEPT_LEN);
}

static void
test_key(void **state)
{
    char key[LD_HS_KEY_LEN + 1];

    (void)state;
    ld_handshake_key((const uint8_t *)"the sample nonce", key);
    assert_string_equal(key, s_key);
}

static void
test_request(void **state)
{
    char buf[512];
    int n;

    (void)state;
    n = ld_handshake_request(buf, sizeof(buf), "127.0.0.1:8080", "/ws", s_key, "wsgate.v1.json");
    assert_true(n > 0);
    assert_int_equal((size_t)n, strlen(buf));
    assert_true(!strncmp(buf, "GET /ws HTTP/1.1\r\n", 18));
    assert_non_null(strstr(buf, "\r\nHost: 127.0.0.1:8080\r\n"));
    assert_non_null(strstr(buf, "\r\nUpgrade: websocket\r\n"));
    assert_non_null(strstr(buf, "\r\nConnection: Upgrade\r\n"));
    assert_non_null(strstr(buf, "\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"));
    assert_non_null(strstr(buf, "\r\nSec-WebSocket-Version: 13\r\n"));
    assert_non_null(strstr(buf, "\r\nSec-WebSocket-Protocol: wsgate.v1.json\r\n"));
    assert_string_equal(buf + n - 4, "\r\n\r\n");

    n = ld_handshake_request(buf, sizeof(buf), "127.0.0.1:8080", "/raw/echo", s_key, NULL);
    assert_true(n > 0);
    assert_null(strstr(buf, "Sec-WebSocket-Protocol"));
    assert_int_equal(ld_handshake_request(buf, 40, "127.0.0.1:8080", "/ws", s_key, NULL), -1);
}

static void
test_response_ok_and_truncated(void **state)
{
    uint8_t buf[512];
    size_t n = strlen(s_ok), k, hl;
    int status;

    (void)state;
    memcpy(buf, s_ok, n);
    memcpy(buf + n, "\x81\x02hi", 4); /* a frame right behind the headers */
    assert_int_equal(ld_handshake_response(buf, n + 4, s_accept, "wsgate.v1.json", &status, &hl),
                     LD_HS_OK);
    assert_int_equal(status, 101);
    assert_int_equal(hl, n);
    for (k = 0; k < n; k++) {
        assert_int_equal(ld_handshake_response(buf, k, s_accept, "wsgate.v1.json", &status, &hl),
                         LD_HS_NEED_MORE);
        assert_int_equal(status, k >= 12 ? 101 : 0);
    }
    /* no subprotocol asked: any answer is fine */
    assert_int_equal(ld_handshake_response(buf, n, s_accept, NULL, &status, &hl), LD_HS_OK);
}

static void
test_response_refusals(void **state)
{
    static const char r503[] = "HTTP/1.1 503 Service Unavailable\r\n"
                               "content-length: 20\r\nconnection: close\r\n\r\n"
                               "too many connections";
    static const char noacc[] = "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n\r\n";
    static const char badacc[] = "HTTP/1.1 101 Switching Protocols\r\n"
                                 "Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xO\r\n\r\n";
    static const char noproto[] = "HTTP/1.1 101 Switching Protocols\r\n"
                                  "Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n\r\n";
    static const char garbage[] = "SSH-2.0-OpenSSH_9.2\r\n\r\n";
    uint8_t big[LD_HS_RESPONSE_MAX + 16];
    size_t hl;
    int status;

    (void)state;
#define RESP(s, proto)                                                                             \
    ld_handshake_response((const uint8_t *)(s), strlen(s), s_accept, proto, &status, &hl)
    assert_int_equal(RESP(r503, NULL), LD_HS_STATUS);
    assert_int_equal(status, 503);
    assert_int_equal(RESP(noacc, NULL), LD_HS_BAD_ACCEPT);
    assert_int_equal(RESP(badacc, NULL), LD_HS_BAD_ACCEPT);
    assert_int_equal(RESP(noproto, NULL), LD_HS_OK);
    assert_int_equal(RESP(noproto, "wsgate.v1.msgpack"), LD_HS_BAD_PROTOCOL);
    assert_int_equal(RESP(s_ok, "wsgate.v1.msgpack"), LD_HS_BAD_PROTOCOL);
    assert_int_equal(RESP(garbage, NULL), LD_HS_MALFORMED);
    assert_int_equal(status, 0);
#undef RESP
    /* headers that never end */
    memset(big, 'x', sizeof(big));
    memcpy(big, "HTTP/1.1 101 OK\r\n", 17);
    assert_int_equal(ld_handshake_response(big, sizeof(big), s_accept, NULL, &status, &hl),
                     LD_HS_MALFORMED);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_rfc_accept),        cmocka_unit_test(test_key),
        cmocka_unit_test(test_request),           cmocka_unit_test(test_response_ok_and_truncated),
        cmocka_unit_test(test_response_refusals),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
