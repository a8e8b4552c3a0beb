/*
 * test_report.c - load/report.c and load/stats.c: the JSON report parsed
 * back with jansson, figures merged from two processes.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>
#include <jansson.h>

#include "config.h"
#include "report.h"
#include "stats.h"

static void
parse(ld_config_t *cfg, int argc, char **argv)
{
    assert_int_equal(ld_config_parse(cfg, argc, argv), 0);
}

/* Two processes' figures, as ld_run() would leave them. */
static void
fill(ld_stats_t *a, ld_stats_t *b)
{
    uint64_t i;

    ld_stats_init(a);
    ld_stats_init(b);
    a->attempted = 100;
    a->established = 97;
    a->failed = 3;
    a->fail[LD_FAIL_HTTP] = 2;
    a->fail[LD_FAIL_REFUSED] = 1;
    b->attempted = 3; /* three more whose auth failed */
    b->failed = 3;
    b->fail[LD_FAIL_AUTH] = 2;
    ld_stable_add(&b->auth_errs, "bad_signature", 13, 1);
    ld_stable_add(&b->auth_errs, "close_1006", 10, 1);
    b->fail[LD_FAIL_AUTH_TIMEOUT] = 1;
    for (i = 1; i <= 10; i++)
        ld_hist_record(&b->auth, 1000 * i);
    ld_itable_add(&a->http, 503, 2);
    a->first_start_ns = 2000000000ull;
    a->last_open_ns = 2500000000ull;
    b->attempted += 100;
    b->established = 100;
    b->first_start_ns = 1000000000ull;
    b->last_open_ns = 3000000000ull; /* 197 established over 2 s */
    ld_itable_add(&a->closes, 1001, 4);
    ld_itable_add(&b->closes, 1001, 1);
    ld_itable_add(&b->closes, 4002, 2);
    a->dropped = 4;
    b->dropped = 3;
    for (i = 1; i <= 100; i++) {
        ld_hist_record(&a->latency, i);
        ld_hist_record(&b->latency, 100 + i);
        ld_hist_record(&a->handshake, 10 * i);
    }
    a->sent = 110;
    a->replies = 100;
    a->errors = 6;
    ld_stable_add(&a->err_codes, "overloaded", 10, 5);
    b->sent = 105;
    b->replies = 100;
    b->errors = 1;
    ld_stable_add(&b->err_codes, "overloaded", 10, 1);
    b->missing = 4;
    a->send_start_ns = 10000000000ull;
    a->send_end_ns = 11000000000ull;
    b->send_start_ns = 10500000000ull;
    b->send_end_ns = 12000000000ull; /* 200 replies over 2 s */
    a->pings = b->pings = 7;
    a->pongs = b->pongs = 7;
    a->pings_closing = 2;
    b->pings_closing = 1;
    a->done = b->done = 1;
    b->timed_out = 1;
}

static void
test_merge(void **state)
{
    ld_stats_t a, b, m;

    (void)state;
    fill(&a, &b);
    ld_stats_init(&m);
    ld_stats_merge(&m, &a);
    ld_stats_merge(&m, &b);
    assert_int_equal(m.attempted, 203);
    assert_int_equal(m.established, 197);
    assert_int_equal(m.failed, 6);
    assert_int_equal(m.auth.n, 10);
    assert_string_equal(m.auth_errs.slot[1].key, "close_1006");
    assert_int_equal(m.first_start_ns, 1000000000ull);
    assert_int_equal(m.last_open_ns, 3000000000ull);
    assert_int_equal(m.latency.n, 200);
    assert_int_equal(ld_hist_percentile(&m.latency, 50), 100);
    assert_int_equal(ld_hist_percentile(&m.latency, 100), 200);
    assert_int_equal(m.closes.slot[0].key, 1001);
    assert_int_equal(m.closes.slot[0].n, 5);
    assert_int_equal(m.closes.slot[1].key, 4002);
    assert_int_equal(m.closes.slot[1].n, 2);
    assert_string_equal(m.err_codes.slot[0].key, "overloaded");
    assert_int_equal(m.err_codes.slot[0].n, 6);
    assert_int_equal(m.done, 2);
    assert_true(ld_report_accept_rate(&m) > 98.4 && ld_report_accept_rate(&m) < 98.6);
    assert_true(ld_report_rtt_rate(&m) > 99.9 && ld_report_rtt_rate(&m) < 100.1);
}

static void
test_table_overflow(void **state)
{
    ld_itable_t t;
    ld_stable_t s;
    int i;

    (void)state;
    memset(&t, 0, sizeof(t));
    memset(&s, 0, sizeof(s));
    for (i = 0; i < LD_TABLE_SLOTS + 3; i++) {
        ld_itable_add(&t, 4000 + i, 1);
        ld_stable_add(&s, "a_code_longer_than_thirty_two_bytes_xyz", 39, 1);
    }
    assert_int_equal(t.other, 3);
    assert_int_equal(strlen(s.slot[0].key), LD_CODE_MAX);
    assert_int_equal(s.slot[0].n, LD_TABLE_SLOTS + 3);
}

static void
test_json_round_trip(void **state)
{
    char *argv[] = {"wsgate-load", "echo",    "--target", "127.0.0.2:9000",
                    "--enc",       "msgpack", "--conns",  "20",
                    "--window",    "4",       "--procs",  "2",
                    "--count",     "215",     NULL};
    char path[] = "/tmp/test_ld_report_XXXXXX";
    ld_stats_t a, b, m;
    ld_config_t cfg;
    json_error_t err;
    json_t *j, *x;
    char *text;
    int fd;

    (void)state;
    parse(&cfg, 14, argv);
    fill(&a, &b);
    ld_stats_init(&m);
    ld_stats_merge(&m, &a);
    ld_stats_merge(&m, &b);

    j = ld_report_json(&cfg, &m, 3.5);
    assert_non_null(j);
    text = json_dumps(j, 0);
    json_decref(j);
    assert_non_null(text);
    j = json_loads(text, 0, &err);
    free(text);
    assert_non_null(j);

    assert_string_equal(json_string_value(json_object_get(j, "scenario")), "echo");
    assert_true(json_real_value(json_object_get(j, "elapsed_s")) == 3.5);
    assert_int_equal(json_integer_value(json_object_get(j, "procs_done")), 2);
    assert_int_equal(json_integer_value(json_object_get(j, "hard_timeouts")), 1);
    x = json_object_get(j, "config");
    assert_string_equal(json_string_value(json_object_get(x, "target_ip")), "127.0.0.2");
    assert_int_equal(json_integer_value(json_object_get(x, "target_port")), 9000);
    assert_string_equal(json_string_value(json_object_get(x, "enc")), "msgpack");
    assert_int_equal(json_integer_value(json_object_get(x, "window")), 4);
    assert_int_equal(json_integer_value(json_object_get(x, "procs")), 2);
    assert_int_equal(json_integer_value(json_object_get(x, "count")), 215);

    x = json_object_get(j, "connections");
    assert_int_equal(json_integer_value(json_object_get(x, "attempted")), 203);
    assert_int_equal(json_integer_value(json_object_get(x, "established")), 197);
    assert_int_equal(json_integer_value(json_object_get(x, "failed")), 6);
    /* auth failures by cause: the code, or how the server closed */
    assert_int_equal(json_integer_value(json_object_get(json_object_get(x, "failures"),
                                                        "auth_failed:bad_signature")),
                     1);
    assert_int_equal(json_integer_value(
                         json_object_get(json_object_get(x, "failures"), "auth_failed:close_1006")),
                     1);
    assert_null(json_object_get(json_object_get(x, "failures"), "auth_failed"));
    assert_int_equal(
        json_integer_value(json_object_get(json_object_get(x, "failures"), "auth_timeout")), 1);
    assert_int_equal(json_integer_value(json_object_get(json_object_get(x, "failures"), "refused")),
                     1);
    assert_int_equal(
        json_integer_value(json_object_get(json_object_get(x, "failures"), "http_status")), 2);
    assert_int_equal(json_integer_value(json_object_get(json_object_get(x, "failures"), "timeout")),
                     0);
    assert_int_equal(json_integer_value(json_object_get(json_object_get(x, "http_status"), "503")),
                     2);
    assert_int_equal(
        json_integer_value(json_object_get(json_object_get(x, "server_closes"), "4002")), 2);
    assert_int_equal(json_integer_value(json_object_get(x, "dropped")), 7);
    assert_true(json_real_value(json_object_get(x, "accepted_per_s")) > 98.4);

    x = json_object_get(j, "handshake_us");
    assert_int_equal(json_integer_value(json_object_get(x, "count")), 100);
    assert_int_equal(json_integer_value(json_object_get(x, "max")), 1000);
    x = json_object_get(j, "auth_us");
    assert_int_equal(json_integer_value(json_object_get(x, "count")), 10);
    assert_int_equal(json_integer_value(json_object_get(x, "max")), 10000);
    assert_false(json_is_true(json_object_get(json_object_get(j, "config"), "auth")));
    assert_null(json_object_get(j, "fanout")); /* only in fanout reports */

    x = json_object_get(j, "requests");
    assert_int_equal(json_integer_value(json_object_get(x, "sent")), 215);
    assert_int_equal(json_integer_value(json_object_get(x, "replies")), 200);
    assert_int_equal(json_integer_value(json_object_get(x, "errors")), 7);
    assert_int_equal(json_integer_value(json_object_get(x, "missing")), 4);
    assert_int_equal(
        json_integer_value(json_object_get(json_object_get(x, "error_codes"), "overloaded")), 6);
    assert_true(json_real_value(json_object_get(x, "round_trips_per_s")) > 99.9);
    assert_true(json_real_value(json_object_get(x, "send_seconds")) == 2.0);

    x = json_object_get(j, "latency_us");
    assert_int_equal(json_integer_value(json_object_get(x, "count")), 200);
    assert_int_equal(json_integer_value(json_object_get(x, "min")), 1);
    assert_int_equal(json_integer_value(json_object_get(x, "p50")), 100);
    assert_int_equal(json_integer_value(json_object_get(x, "p90")), 180);
    assert_int_equal(json_integer_value(json_object_get(x, "p99")), 198);
    assert_int_equal(json_integer_value(json_object_get(x, "max")), 200);
    assert_non_null(json_object_get(x, "p99_9"));
    assert_int_equal(json_integer_value(json_object_get(json_object_get(j, "pings"), "answered")),
                     14);
    assert_int_equal(
        json_integer_value(json_object_get(json_object_get(j, "pings"), "while_closing")), 3);
    json_decref(j);

    /* the file form is the same document */
    fd = mkstemp(path);
    assert_true(fd >= 0);
    close(fd);
    assert_int_equal(ld_report_write(path, &cfg, &m, 3.5), 0);
    j = json_load_file(path, 0, &err);
    unlink(path);
    assert_non_null(j);
    assert_int_equal(json_integer_value(json_object_get(json_object_get(j, "requests"), "missing")),
                     4);
    json_decref(j);
    assert_int_equal(ld_report_write("/nonexistent-dir/x.json", &cfg, &m, 1), -1);
}

static void
test_text(void **state)
{
    char *argv[] = {"wsgate-load", "echo", "--target", "127.0.0.1:9000", NULL};
    ld_stats_t a, b, m;
    ld_config_t cfg;
    char buf[4096];
    FILE *f;

    (void)state;
    parse(&cfg, 4, argv);
    fill(&a, &b);
    ld_stats_init(&m);
    ld_stats_merge(&m, &a);
    ld_stats_merge(&m, &b);
    f = fmemopen(buf, sizeof(buf), "w");
    assert_non_null(f);
    ld_report_text(f, &cfg, &m, 2);
    ld_report_progress(f, &m, &a, 2, 1);
    fclose(f);
    assert_non_null(strstr(buf, "197 established"));
    assert_non_null(strstr(buf, "503: 2"));
    assert_non_null(strstr(buf, "overloaded: 6"));
    assert_non_null(strstr(buf, "4 missing"));
    assert_non_null(strstr(buf, "auth_failed:bad_signature: 1"));
    assert_non_null(strstr(buf, "auth_timeout: 1"));
}

/* A fanout run over two processes: 3 + 2 subscribers, 2 bursts, the
 * second missing one subscriber. */
static void
test_fanout(void **state)
{
    char *argv[] = {"wsgate-load", "fanout",  "--conns",
                    "5",           "--burst", "2",
                    "--channel",   "bench:x", "--hs256-secret-file",
                    "s",           "--kid",   "hs1",
                    "--grant-all", NULL};
    ld_stats_t *a = malloc(sizeof(*a)), *b = malloc(sizeof(*b)), *m = malloc(sizeof(*m));
    ld_config_t cfg;
    json_t *j, *x, *bursts, *b0, *b1;
    char buf[8192];
    FILE *f;
    int i;

    (void)state;
    assert_non_null(a);
    assert_non_null(b);
    assert_non_null(m);
    parse(&cfg, 13, argv);
    ld_stats_init(a);
    ld_stats_init(b);
    a->subscribed = 3;
    b->subscribed = 2;
    b->sub_failed = 1;
    ld_stable_add(&b->sub_errs, "forbidden", 9, 1);
    a->sent = 2;
    a->replies = 2;
    a->bursts_sent = 2;
    a->first_pub_ns = 1000000000ull;
    for (i = 0; i < 3; i++) {
        ld_burst_record(&a->bursts[0], 1000000 + 1000000 * (uint64_t)i); /* 1..3 ms */
        ld_burst_record(&a->bursts[1], 2000000);
    }
    ld_burst_record(&b->bursts[0], 29000000); /* the last of burst 1 at 29 ms */
    ld_burst_record(&b->bursts[0], 5000000);
    ld_burst_record(&b->bursts[1], 4000000); /* burst 2: 4 of 5 */
    a->fan.deliveries = 6;
    b->fan.deliveries = 3;
    a->fan_expected = 6;
    b->fan_expected = 4;
    b->fan_missing = 1;
    a->last_deliv_ns = 1500000000ull;
    b->last_deliv_ns = 1900000000ull; /* 9 deliveries over 0.9 s */
    b->fan.out_of_order = 2;
    b->fan.duplicates = 1;
    ld_stats_init(m);
    ld_stats_merge(m, a);
    ld_stats_merge(m, b);

    j = ld_report_json(&cfg, m, 2);
    assert_non_null(j);
    x = json_object_get(j, "config");
    assert_true(json_is_true(json_object_get(x, "auth")));
    assert_string_equal(json_string_value(json_object_get(x, "token_source")), "hs256");
    assert_string_equal(json_string_value(json_object_get(x, "channel")), "bench:x");
    assert_int_equal(json_integer_value(json_object_get(x, "bursts")), 2);
    x = json_object_get(j, "fanout");
    assert_non_null(x);
    assert_int_equal(json_integer_value(json_object_get(x, "subscribers")), 5);
    assert_int_equal(json_integer_value(json_object_get(x, "subscribed")), 5);
    assert_int_equal(json_integer_value(json_object_get(x, "sub_failed")), 1);
    assert_int_equal(
        json_integer_value(json_object_get(json_object_get(x, "sub_errors"), "forbidden")), 1);
    assert_int_equal(json_integer_value(json_object_get(x, "published_ok")), 2);
    assert_int_equal(json_integer_value(json_object_get(x, "deliveries")), 9);
    assert_true(json_real_value(json_object_get(x, "deliveries_per_s")) > 9.99 &&
                json_real_value(json_object_get(x, "deliveries_per_s")) < 10.01);
    assert_int_equal(json_integer_value(json_object_get(x, "expected")), 10);
    assert_int_equal(json_integer_value(json_object_get(x, "missing")), 1);
    assert_int_equal(json_integer_value(json_object_get(x, "out_of_order")), 2);
    assert_int_equal(json_integer_value(json_object_get(x, "duplicates")), 1);
    bursts = json_object_get(x, "bursts");
    assert_int_equal(json_array_size(bursts), 2);
    b0 = json_array_get(bursts, 0);
    b1 = json_array_get(bursts, 1);
    assert_int_equal(json_integer_value(json_object_get(b0, "delivered")), 5);
    assert_int_equal(json_integer_value(json_object_get(b0, "full_delivery_us")), 29000);
    assert_int_equal(json_integer_value(json_object_get(b0, "first_delivery_us")), 1000);
    assert_int_equal(json_integer_value(json_object_get(b1, "delivered")), 4);
    assert_true(json_is_null(json_object_get(b1, "full_delivery_us")));
    assert_int_equal(json_integer_value(json_object_get(b1, "last_delivery_us")), 4000);
    assert_non_null(json_object_get(j, "delivery_us"));
    assert_non_null(json_object_get(j, "sub_us"));
    json_decref(j);

    f = fmemopen(buf, sizeof(buf), "w");
    assert_non_null(f);
    ld_report_text(f, &cfg, m, 2);
    fclose(f);
    assert_non_null(strstr(buf, "5 of 5 subscribed"));
    assert_non_null(strstr(buf, "forbidden: 1"));
    assert_non_null(strstr(buf, "missing 1"));
    assert_non_null(strstr(buf, "2 sent, 1 delivered to all 5 subscribers"));
    assert_non_null(strstr(buf, "(incomplete)"));
    assert_non_null(strstr(buf, "max 29.00"));
    free(a);
    free(b);
    free(m);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_merge),           cmocka_unit_test(test_table_overflow),
        cmocka_unit_test(test_json_round_trip), cmocka_unit_test(test_text),
        cmocka_unit_test(test_fanout),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
