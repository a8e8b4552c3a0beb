/*
 * test_wsc_url.c - ws:// and wss:// URLs (clients/c/wsc_url.c).
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <string.h>
#include <cmocka.h>

#include "wsc_url.h"

static void
test_good_urls(void **state)
{
    wsc_url_t u;

    (void)state;
    assert_int_equal(wsc_url_parse("ws://127.0.0.1:8080/ws", &u), 0);
    assert_false(u.tls);
    assert_false(u.raw);
    assert_string_equal(u.host, "127.0.0.1");
    assert_int_equal(u.port, 8080);
    assert_string_equal(u.path, "/ws");

    assert_int_equal(wsc_url_parse("wss://gw.example.com", &u), 0);
    assert_true(u.tls);
    assert_int_equal(u.port, 443);
    assert_string_equal(u.path, "/ws"); /* the default endpoint */

    assert_int_equal(wsc_url_parse("ws://h?token=abc", &u), 0);
    assert_int_equal(u.port, 80);
    assert_string_equal(u.path, "/ws?token=abc");

    assert_int_equal(wsc_url_parse("ws://[::1]:9/raw/echo", &u), 0);
    assert_string_equal(u.host, "::1");
    assert_int_equal(u.port, 9);
    assert_true(u.raw);

    assert_int_equal(wsc_url_parse("ws://h/raw/", &u), 0);
    assert_false(u.raw); /* no endpoint name */
}

static void
test_bad_urls(void **state)
{
    static const char *const bad[] = {
        "http://h/ws",     "ws://",       "ws://:80/ws",   "ws://h:0/ws",
        "ws://h:65536/ws", "ws://h:x/ws", "ws://h:80x/ws", "ws://[::1/ws",
        "ws://u@h/ws",     "ws://h/a b",  "ws://h/\x01",   "WS://h",
    };
    char long_host[300];
    wsc_url_t u;
    size_t i;

    (void)state;
    for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        if (wsc_url_parse(bad[i], &u) != -1)
            fail_msg("accepted %s", bad[i]);
    assert_int_equal(wsc_url_parse(NULL, &u), -1);
    memcpy(long_host, "ws://", 5);
    memset(long_host + 5, 'a', 260);
    long_host[265] = 0;
    assert_int_equal(wsc_url_parse(long_host, &u), -1);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_good_urls),
        cmocka_unit_test(test_bad_urls),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
