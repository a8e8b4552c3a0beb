/* tests/gateway/test_config.c - flags, defaults and their validation. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "config.h"

static int
s_parse(gw_config_t *cfg, const char *a1, const char *a2, const char *a3)
{
    char *argv[5] = {"wsgate", (char *)a1, (char *)a2, (char *)a3, NULL};
    int argc = 1 + (a1 != NULL) + (a2 != NULL) + (a3 != NULL);

    gw_config_defaults(cfg);
    return gw_config_parse(cfg, argc, argv);
}

static void
test_defaults(void **state)
{
    gw_config_t cfg;

    (void)state;
    assert_int_equal(s_parse(&cfg, NULL, NULL, NULL), 0);
    assert_string_equal(cfg.listen_host, "127.0.0.1");
    assert_int_equal(cfg.listen_port, 8080);
    assert_string_equal(cfg.backend, "tcp://127.0.0.1:7001");
    assert_int_equal(cfg.max_message, 65536);
    assert_int_equal(cfg.n_raw, 1);
    assert_string_equal(cfg.raw[0].path, "/raw/echo");
    assert_string_equal(cfg.raw[0].service, "echo");
    assert_true(cfg.id[0] != '\0');
}

static void
test_flags(void **state)
{
    gw_config_t cfg;

    (void)state;
    assert_int_equal(
        s_parse(&cfg, "--listen=0.0.0.0:9000", "--raw=/raw/t=telemetry", "--max-message=100"), 0);
    assert_string_equal(cfg.listen_host, "0.0.0.0");
    assert_int_equal(cfg.listen_port, 9000);
    assert_int_equal(cfg.n_raw, 1);
    assert_string_equal(cfg.raw[0].path, "/raw/t");
    assert_string_equal(cfg.raw[0].service, "telemetry");
    assert_int_equal(cfg.max_message, 100);
}

static void
test_rejects(void **state)
{
    gw_config_t cfg;

    (void)state;
    assert_int_equal(s_parse(&cfg, "--listen=nohostport", NULL, NULL), -1);
    assert_int_equal(s_parse(&cfg, "--listen=h:99999", NULL, NULL), -1);
    assert_int_equal(s_parse(&cfg, "--max-conns=-1", NULL, NULL), -1);
    assert_int_equal(s_parse(&cfg, "--max-conns=12x", NULL, NULL), -1);
    assert_int_equal(s_parse(&cfg, "--raw=noslash=echo", NULL, NULL), -1);
    assert_int_equal(s_parse(&cfg, "--raw=/p=Bad Service", NULL, NULL), -1);
    assert_int_equal(s_parse(&cfg, "--ping-ms=1000", "--idle-ms=500", NULL), -1);
    assert_int_equal(s_parse(&cfg, "--max-inflight=0", NULL, NULL), -1);
    assert_int_equal(s_parse(&cfg, "stray", NULL, NULL), -1);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_defaults),
        cmocka_unit_test(test_flags),
        cmocka_unit_test(test_rejects),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
