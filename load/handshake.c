/*
 * handshake.c - websocket opening handshake, client side (handshake.h).
 */
#include "handshake.h"

#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include <openssl/evp.h>

static const char s_guid[] = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11";

void
ld_handshake_key(const uint8_t nonce[16], char out[LD_HS_KEY_LEN + 1])
{
    EVP_EncodeBlock((unsigned char *)out, nonce, 16);
}

int
ld_handshake_accept(const char *key, char out[LD_HS_ACCEPT_LEN + 1])
{
    unsigned char buf[128], md[EVP_MAX_MD_SIZE];
    unsigned int mdlen = 0;
    size_t klen = strlen(key);

    if (klen + sizeof(s_guid) > sizeof(buf))
        return -1;
    memcpy(buf, key, klen);
    memcpy(buf + klen, s_guid, sizeof(s_guid) - 1);
    if (!EVP_Digest(buf, klen + sizeof(s_guid) - 1, md, &mdlen, EVP_sha1(), NULL) || mdlen != 20)
        return -1;
    EVP_EncodeBlock((unsigned char *)out, md, 20);
    return 0;
}

int
ld_handshake_request(char *buf, size_t cap, const char *host, const char *path, const char *key,
                     const char *subprotocol)
{
    int n;

    n = snprintf(buf, cap,
                 "GET %s HTTP/1.1\r\n"
                 "Host: %s\r\n"
                 "Upgrade: websocket\r\n"
                 "Connection: Upgrade\r\n"
                 "Sec-WebSocket-Key: %s\r\n"
                 "Sec-WebSocket-Version: 13\r\n"
                 "%s%s%s"
                 "\r\n",
                 path, host, key, subprotocol && *subprotocol ? "Sec-WebSocket-Protocol: " : "",
                 subprotocol && *subprotocol ? subprotocol : "",
                 subprotocol && *subprotocol ? "\r\n" : "");
    if (n < 0 || (size_t)n >= cap)
        return -1;
    return n;
}

/* The value of header `name` in the header block [p, end), trimmed. */
static bool
s_header(const char *p, const char *end, const char *name, const char **val, size_t *vlen)
{
    size_t nlen = strlen(name);
    const char *eol, *v, *ve;

    while (p < end) {
        eol = memchr(p, '\n', (size_t)(end - p));
        if (!eol)
            eol = end;
        if ((size_t)(eol - p) > nlen && p[nlen] == ':' && !strncasecmp(p, name, nlen)) {
            v = p + nlen + 1;
            ve = eol;
            while (v < ve && (*v == ' ' || *v == '\t'))
                v++;
            while (ve > v && (ve[-1] == '\r' || ve[-1] == ' ' || ve[-1] == '\t'))
                ve--;
            *val = v;
            *vlen = (size_t)(ve - v);
            return true;
        }
        p = eol + 1;
    }
    return false;
}

/* "HTTP/1.x NNN": the status, or -1 if the line does not read so. */
static int
s_status(const char *p, size_t n)
{
    if (n < 12 || memcmp(p, "HTTP/1.", 7) || p[8] != ' ')
        return -1;
    if (p[9] < '1' || p[9] > '5' || p[10] < '0' || p[10] > '9' || p[11] < '0' || p[11] > '9')
        return -1;
    return (p[9] - '0') * 100 + (p[10] - '0') * 10 + (p[11] - '0');
}

ld_hs_rc_t
ld_handshake_response(const uint8_t *p, size_t n, const char *expect_accept,
                      const char *subprotocol, int *status, size_t *hdr_len)
{
    const char *s = (const char *)p, *end = NULL, *hdrs, *v;
    size_t i, lim = n < LD_HS_RESPONSE_MAX ? n : LD_HS_RESPONSE_MAX, vlen;

    *status = 0;
    *hdr_len = 0;
    if (n >= 12 || memchr(s, '\n', n)) {
        *status = s_status(s, n);
        if (*status < 0) {
            *status = 0;
            return LD_HS_MALFORMED;
        }
    }
    for (i = 3; i < lim; i++) {
        if (s[i] == '\n' && s[i - 1] == '\r' && s[i - 2] == '\n' && s[i - 3] == '\r') {
            end = s + i + 1;
            break;
        }
    }
    if (!end)
        return n >= LD_HS_RESPONSE_MAX ? LD_HS_MALFORMED : LD_HS_NEED_MORE;
    if (*status != 101)
        return LD_HS_STATUS;
    *hdr_len = (size_t)(end - s);
    hdrs = memchr(s, '\n', (size_t)(end - s)) + 1;
    if (!s_header(hdrs, end, "Sec-WebSocket-Accept", &v, &vlen) || vlen != strlen(expect_accept) ||
        memcmp(v, expect_accept, vlen))
        return LD_HS_BAD_ACCEPT;
    if (subprotocol && *subprotocol &&
        (!s_header(hdrs, end, "Sec-WebSocket-Protocol", &v, &vlen) || vlen != strlen(subprotocol) ||
         memcmp(v, subprotocol, vlen)))
        return LD_HS_BAD_PROTOCOL;
    return LD_HS_OK;
}
