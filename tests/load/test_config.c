/*
 * test_config.c - load/config.c: loopback-only targets, defaults, shares.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include <cmocka.h>

#include "config.h"

static int
parse(ld_config_t *cfg, const char *scenario, const char *opt, const char *val)
{
    char *argv[] = {"wsgate-load", (char *)scenario, (char *)opt, (char *)val, NULL};

    return ld_config_parse(cfg, opt ? 4 : 2, argv);
}

static void
test_loopback_only(void **state)
{
    ld_config_t cfg;

    (void)state;
    assert_int_equal(parse(&cfg, "storm", "--target", "127.0.0.1:8080"), 0);
    assert_int_equal(parse(&cfg, "storm", "--target", "127.3.4.5:1"), 0);
    assert_string_equal(cfg.host, "127.3.4.5:1");
    assert_int_equal(parse(&cfg, "storm", "--target", "localhost:8080"), 0);
    assert_string_equal(cfg.host, "127.0.0.1:8080");
    assert_int_equal(parse(&cfg, "storm", "--target", "10.0.0.1:8080"), -1);
    assert_int_equal(parse(&cfg, "storm", "--target", "8.8.8.8:80"), -1);
    assert_int_equal(parse(&cfg, "storm", "--target", "128.0.0.1:80"), -1);
    assert_int_equal(parse(&cfg, "storm", "--target", "example.com:80"), -1);
    assert_int_equal(parse(&cfg, "storm", "--target", "::1:80"), -1);
    assert_int_equal(parse(&cfg, "storm", "--target", "127.0.0.1"), -1);
    assert_int_equal(parse(&cfg, "storm", "--target", "127.0.0.1:0"), -1);
}

static void
test_defaults_and_bounds(void **state)
{
    ld_config_t cfg;

    (void)state;
    assert_int_equal(parse(&cfg, "echo", NULL, NULL), 0);
    assert_int_equal(cfg.conns, 10);
    assert_true(cfg.duration == 10); /* bounded even without --count */
    assert_false(cfg.raw);
    assert_string_equal(ld_config_subprotocol(&cfg), "wsgate.v1.json");
    assert_true(cfg.timeout > cfg.duration);
    assert_int_equal(parse(&cfg, "echo", "--path", "/raw/echo"), 0);
    assert_true(cfg.raw);
    assert_null(ld_config_subprotocol(&cfg));
    assert_int_equal(parse(&cfg, "echo", "--enc", "msgpack"), 0);
    assert_string_equal(ld_config_subprotocol(&cfg), "wsgate.v1.msgpack");
    assert_int_equal(parse(&cfg, "idle", NULL, NULL), 0);
    assert_true(cfg.hold == 10);
    assert_int_equal(cfg.conns, 1000);
    assert_int_equal(parse(&cfg, "fanout", NULL, NULL), -1);
    assert_int_equal(parse(&cfg, "storm", "--procs", "65"), -1);
    assert_int_equal(parse(&cfg, "storm", "--conns", "0"), -1);
    assert_int_equal(parse(&cfg, "storm", "--rate", "-1"), -1);
    assert_int_equal(parse(&cfg, "echo", "--svc", "Bad Name"), -1);
    assert_int_equal(parse(&cfg, "echo", "--enc", "xml"), -1);
    assert_int_equal(parse(&cfg, "echo", "--path", "ws"), -1);
    assert_int_equal(parse(&cfg, "echo", "--token-file", "x"), -1);
}

static void
test_share(void **state)
{
    uint64_t sum = 0;
    int i;

    (void)state;
    for (i = 0; i < 7; i++)
        sum += ld_config_share(1000, i, 7);
    assert_int_equal(sum, 1000);
    assert_int_equal(ld_config_share(1000, 0, 7), 143);
    assert_int_equal(ld_config_share(1000, 6, 7), 142);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_loopback_only),
        cmocka_unit_test(test_defaults_and_bounds),
        cmocka_unit_test(test_share),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
