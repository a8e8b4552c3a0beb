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

    return ld_config_parse(cfg, opt ? (val ? 4 : 3) : 2, argv);
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
    assert_int_equal(parse(&cfg, "fanout", NULL, NULL), 0);
    assert_int_equal(cfg.conns, 100);
    assert_int_equal(cfg.publishers, 1);
    assert_int_equal(cfg.size, 0); /* no padding unless asked */
    assert_string_equal(cfg.channel, "bench");
    assert_true(cfg.duration == 5);
    assert_int_equal(cfg.bursts, 0);
    assert_false(cfg.auth);
    assert_int_equal(parse(&cfg, "fanout", "--channel", "bad channel"), -1);
    assert_int_equal(parse(&cfg, "fanout", "--publishers", "257"), -1);
    assert_int_equal(parse(&cfg, "fanout", "--burst", "1001"), -1);
    assert_int_equal(parse(&cfg, "fanout", "--path", "/raw/echo"), -1);
    assert_int_equal(parse(&cfg, "storm", "--burst", "3"), -1);
    assert_int_equal(parse(&cfg, "echo", "--publishers", "3"), -1);
    assert_int_equal(parse(&cfg, "storm", "--rx-timestamps", NULL), -1);
    assert_int_equal(parse(&cfg, "fanout", "--rx-timestamps", NULL), 0);
    assert_true(cfg.rx_timestamps);
    assert_int_equal(parse(&cfg, "nope", NULL, NULL), -1);
    assert_int_equal(parse(&cfg, "storm", "--procs", "65"), -1);
    assert_int_equal(parse(&cfg, "storm", "--conns", "0"), -1);
    assert_int_equal(parse(&cfg, "storm", "--rate", "-1"), -1);
    assert_int_equal(parse(&cfg, "echo", "--svc", "Bad Name"), -1);
    assert_int_equal(parse(&cfg, "echo", "--enc", "xml"), -1);
    assert_int_equal(parse(&cfg, "echo", "--path", "ws"), -1);
    assert_int_equal(parse(&cfg, "echo", "--token-file", "x"), 0);
    assert_true(cfg.auth);
}

static int
parse_v(ld_config_t *cfg, char **argv)
{
    int argc = 0;

    while (argv[argc])
        argc++;
    return ld_config_parse(cfg, argc, argv);
}

static void
test_auth_and_fanout_options(void **state)
{
    char *mint[] = {"wsgate-load",
                    "storm",
                    "--hs256-secret-file",
                    "s",
                    "--kid",
                    "hs1",
                    "--iss",
                    "i",
                    "--aud",
                    "a",
                    "--grant-all",
                    "--token-ttl-s",
                    "30",
                    "--sub-prefix",
                    "",
                    NULL};
    char *no_kid[] = {"wsgate-load", "storm", "--hs256-secret-file", "s", NULL};
    char *both[] = {"wsgate-load", "idle", "--hs256-secret-file", "s", "--kid", "k", "--token-file",
                    "t",           NULL};
    char *claims_no_secret[] = {"wsgate-load", "storm", "--token-file", "t", "--grant-all", NULL};
    char *raw_auth[] = {"wsgate-load", "echo", "--path", "/raw/echo", "--token-file", "t", NULL};
    char *burst[] = {"wsgate-load", "fanout",  "--burst", "10", "--burst-pause", "0.5", "--conns",
                     "300",         "--procs", "2",       NULL};
    char *burst_pubs[] = {"wsgate-load", "fanout", "--burst", "2", "--publishers", "2", NULL};
    char *pubs[] = {"wsgate-load", "fanout",  "--conns", "10", "--publishers", "3", "--procs",
                    "2",           "--count", "100",     NULL};
    ld_config_t cfg;

    (void)state;
    assert_int_equal(parse_v(&cfg, mint), 0);
    assert_true(cfg.auth);
    assert_string_equal(cfg.secret_file, "s");
    assert_string_equal(cfg.kid, "hs1");
    assert_string_equal(cfg.iss, "i");
    assert_string_equal(cfg.aud, "a");
    assert_string_equal(cfg.sub_prefix, "");
    assert_true(cfg.token_ttl == 30);
    assert_true(cfg.grant_all);
    assert_int_equal(parse_v(&cfg, no_kid), -1);
    assert_int_equal(parse_v(&cfg, both), -1);
    assert_int_equal(parse_v(&cfg, claims_no_secret), -1);
    assert_int_equal(parse_v(&cfg, raw_auth), -1);

    assert_int_equal(parse_v(&cfg, burst), 0);
    assert_int_equal(cfg.bursts, 10);
    assert_int_equal(cfg.publishers, 1);
    assert_true(cfg.burst_pause == 0.5);
    assert_true(cfg.duration == 0); /* bursts have no publish phase */
    /* the bound covers a wait of --drain and a pause per burst */
    assert_true(cfg.timeout >= 10 * (cfg.drain + 0.5));
    assert_int_equal(parse_v(&cfg, burst_pubs), -1);

    /* publishers are connections besides the subscribers, shared too */
    assert_int_equal(parse_v(&cfg, pubs), 0);
    assert_int_equal(ld_config_conns_of(&cfg, 0), 5 + 2);
    assert_int_equal(ld_config_conns_of(&cfg, 1), 5 + 1);
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
        cmocka_unit_test(test_auth_and_fanout_options),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
