/* tests/gateway/test_config.c - flags, defaults and their validation. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

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

static char s_file[64];
static char s_errbuf[2048];

/* Writes text to a fresh temporary file (s_file). */
static const char *
s_write_file(const char *text)
{
    FILE *f;
    int fd;

    snprintf(s_file, sizeof(s_file), "/tmp/wsgate-test-config-XXXXXX");
    fd = mkstemp(s_file);
    assert_true(fd >= 0);
    f = fdopen(fd, "w");
    assert_non_null(f);
    fputs(text, f);
    fclose(f);
    return s_file;
}

/* gw_config_parse with stderr captured into s_errbuf. */
static int
s_parse_captured(gw_config_t *cfg, int argc, char **argv)
{
    char path[] = "/tmp/wsgate-test-stderr-XXXXXX";
    int fd = mkstemp(path), saved, rc;
    ssize_t n;

    assert_true(fd >= 0);
    fflush(stderr);
    saved = dup(2);
    dup2(fd, 2);
    gw_config_defaults(cfg);
    rc = gw_config_parse(cfg, argc, argv);
    fflush(stderr);
    dup2(saved, 2);
    close(saved);
    lseek(fd, 0, SEEK_SET);
    n = read(fd, s_errbuf, sizeof(s_errbuf) - 1);
    s_errbuf[n > 0 ? n : 0] = '\0';
    close(fd);
    unlink(path);
    return rc;
}

static void
test_file(void **state)
{
    gw_config_t cfg;
    char *argv[] = {"wsgate", "--config", s_file, NULL};

    (void)state;
    s_write_file("; a comment\n"
                 "[gateway]\n"
                 "listen = 0.0.0.0:9000\n"
                 "max-conns = 77\n"
                 "raw = /raw/a=alpha\n"
                 "raw = /raw/b=beta\n"
                 "reuseport = true\n"
                 "conn-events = presence\n"
                 "\n"
                 "[worker]\n"
                 "services = ignored-by-the-gateway\n");
    assert_int_equal(s_parse_captured(&cfg, 3, argv), 0);
    assert_string_equal(cfg.listen_host, "0.0.0.0");
    assert_int_equal(cfg.listen_port, 9000);
    assert_int_equal(cfg.max_conns, 77);
    assert_int_equal(cfg.n_raw, 2);
    assert_string_equal(cfg.raw[1].path, "/raw/b");
    assert_string_equal(cfg.raw[1].service, "beta");
    assert_true(cfg.reuseport);
    assert_int_equal(cfg.n_conn_events, 1);
    assert_int_equal(cfg.ping_ms, 25000); /* untouched: the default */
    unlink(s_file);
}

static void
test_precedence(void **state)
{
    gw_config_t cfg;
    char *argv[] = {"wsgate", "--config", s_file, "--max-inflight=9", "--raw=/raw/f=flag", NULL};

    (void)state;
    s_write_file("[gateway]\n"
                 "max-conns = 1\n"
                 "max-inflight = 2\n"
                 "drain-ms = 3\n"
                 "raw = /raw/file=file\n"
                 "conn-events = fromfile\n");
    setenv("WSGATE_MAX_CONNS", "10", 1);
    setenv("WSGATE_MAX_INFLIGHT", "20", 1);
    setenv("WSGATE_CONN_EVENTS", "env1,env2", 1);
    assert_int_equal(s_parse_captured(&cfg, 5, argv), 0);
    unsetenv("WSGATE_MAX_CONNS");
    unsetenv("WSGATE_MAX_INFLIGHT");
    unsetenv("WSGATE_CONN_EVENTS");
    assert_int_equal(cfg.drain_ms, 3);     /* file over default */
    assert_int_equal(cfg.max_conns, 10);   /* env over file */
    assert_int_equal(cfg.max_inflight, 9); /* flag over env */
    assert_int_equal(cfg.n_raw, 1);        /* a flag's list replaces the file's */
    assert_string_equal(cfg.raw[0].service, "flag");
    assert_int_equal(cfg.n_conn_events, 2); /* the env's list replaces the file's */
    assert_string_equal(cfg.conn_events[1], "env2");
    unlink(s_file);
}

static void
test_file_errors(void **state)
{
    gw_config_t cfg;
    char *argv[] = {"wsgate", "--config", s_file, NULL};
    char want[128];

    (void)state;
    s_write_file("[gateway]\nlisten = 127.0.0.1:1\nno-such-key = 1\n");
    assert_int_equal(s_parse_captured(&cfg, 3, argv), -1);
    snprintf(want, sizeof(want), "%s:3: unknown key 'no-such-key'", s_file);
    assert_non_null(strstr(s_errbuf, want));
    unlink(s_file);

    s_write_file("[gateway]\n\nmax-conns = lots\n");
    assert_int_equal(s_parse_captured(&cfg, 3, argv), -1);
    snprintf(want, sizeof(want), "%s:3: max-conns: expected a number", s_file);
    assert_non_null(strstr(s_errbuf, want));
    unlink(s_file);

    s_write_file("listen = 1.2.3.4:5\n");
    assert_int_equal(s_parse_captured(&cfg, 3, argv), -1);
    assert_non_null(strstr(s_errbuf, ":1: 'listen' outside a [gateway] section"));
    unlink(s_file);

    s_write_file("[gateway]\nthis is not ini\n");
    assert_int_equal(s_parse_captured(&cfg, 3, argv), -1);
    assert_non_null(strstr(s_errbuf, ":2: "));
    unlink(s_file);

    /* gone file */
    assert_int_equal(s_parse_captured(&cfg, 3, argv), -1);
    assert_non_null(strstr(s_errbuf, "No such file"));
}

static void
test_env_errors(void **state)
{
    gw_config_t cfg;
    char *argv[] = {"wsgate", NULL};

    (void)state;
    setenv("WSGATE_PING_MS", "soon", 1);
    assert_int_equal(s_parse_captured(&cfg, 1, argv), -1);
    unsetenv("WSGATE_PING_MS");
    assert_non_null(strstr(s_errbuf, "WSGATE_PING_MS: expected a number"));
    setenv("WSGATE_REUSEPORT", "maybe", 1);
    assert_int_equal(s_parse_captured(&cfg, 1, argv), -1);
    unsetenv("WSGATE_REUSEPORT");
    assert_non_null(strstr(s_errbuf, "WSGATE_REUSEPORT: expected true or false"));
}

static void
test_curve_pairing(void **state)
{
    gw_config_t cfg;
    char *only_secret[] = {"wsgate", "--curve-secret-file=/x.key", NULL};
    char *both[] = {"wsgate", "--curve-secret-file=/x.key", "--curve-allow-file=/x.allow", NULL};

    (void)state;
    assert_int_equal(s_parse_captured(&cfg, 2, only_secret), -1);
    assert_non_null(strstr(s_errbuf, "curve-allow-file"));
    assert_int_equal(s_parse_captured(&cfg, 3, both), 0);
    assert_string_equal(cfg.curve_allow_file, "/x.allow");
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_defaults),   cmocka_unit_test(test_flags),
        cmocka_unit_test(test_rejects),    cmocka_unit_test(test_file),
        cmocka_unit_test(test_precedence), cmocka_unit_test(test_file_errors),
        cmocka_unit_test(test_env_errors), cmocka_unit_test(test_curve_pairing),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
