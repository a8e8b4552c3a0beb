/*
 * report.c - progress line, summary and JSON report (report.h).
 */
#include "report.h"

#include <inttypes.h>
#include <string.h>

#include <arpa/inet.h>

double
ld_report_accept_rate(const ld_stats_t *s)
{
    if (!s->established || s->last_open_ns <= s->first_start_ns)
        return 0.0;
    return (double)s->established * 1e9 / (double)(s->last_open_ns - s->first_start_ns);
}

double
ld_report_rtt_rate(const ld_stats_t *s)
{
    if (!s->replies || s->send_end_ns <= s->send_start_ns)
        return 0.0;
    return (double)s->replies * 1e9 / (double)(s->send_end_ns - s->send_start_ns);
}

double
ld_report_delivery_rate(const ld_stats_t *s)
{
    if (!s->fan.deliveries || s->last_deliv_ns <= s->first_pub_ns || !s->first_pub_ns)
        return 0.0;
    return (double)s->fan.deliveries * 1e9 / (double)(s->last_deliv_ns - s->first_pub_ns);
}

static json_t *
s_hist_json(const ld_hist_t *h)
{
    return json_pack(
        "{sI sI sf sI sI sI sI sI sI}", "count", (json_int_t)h->n, "min",
        (json_int_t)(h->n ? h->min : 0), "mean", ld_hist_mean(h), "p50",
        (json_int_t)ld_hist_percentile(h, 50), "p90", (json_int_t)ld_hist_percentile(h, 90), "p99",
        (json_int_t)ld_hist_percentile(h, 99), "p99_9", (json_int_t)ld_hist_percentile(h, 99.9),
        "max", (json_int_t)h->max, "over_60s", (json_int_t)h->clamped);
}

static json_t *
s_itable_json(const ld_itable_t *t)
{
    json_t *o = json_object();
    char k[16];
    int i;

    for (i = 0; o && i < LD_TABLE_SLOTS && t->slot[i].n; i++) {
        snprintf(k, sizeof(k), "%d", t->slot[i].key);
        json_object_set_new(o, k, json_integer((json_int_t)t->slot[i].n));
    }
    if (o && t->other)
        json_object_set_new(o, "other", json_integer((json_int_t)t->other));
    return o;
}

static json_t *
s_stable_json(const ld_stable_t *t)
{
    json_t *o = json_object();
    int i;

    for (i = 0; o && i < LD_TABLE_SLOTS && t->slot[i].n; i++)
        json_object_set_new(o, t->slot[i].key, json_integer((json_int_t)t->slot[i].n));
    if (o && t->other)
        json_object_set_new(o, "other", json_integer((json_int_t)t->other));
    return o;
}

static const char *
s_token_source(const ld_config_t *cfg)
{
    return cfg->token_file[0] ? "file" : cfg->secret_file[0] ? "hs256" : "none";
}

/* Connection failures by cause; auth_failed by its codes. */
static json_t *
s_failures_json(const ld_stats_t *s)
{
    json_t *o = json_object();
    char key[64];
    int i;

    for (i = LD_FAIL_NONE + 1; o && i < LD_FAIL__COUNT; i++)
        if (i != LD_FAIL_AUTH)
            json_object_set_new(o, ld_fail_name((ld_fail_t)i),
                                json_integer((json_int_t)s->fail[i]));
    for (i = 0; o && i < LD_TABLE_SLOTS && s->auth_errs.slot[i].n; i++) {
        snprintf(key, sizeof(key), "auth_failed:%s", s->auth_errs.slot[i].key);
        json_object_set_new(o, key, json_integer((json_int_t)s->auth_errs.slot[i].n));
    }
    if (o && s->auth_errs.other)
        json_object_set_new(o, "auth_failed:other", json_integer((json_int_t)s->auth_errs.other));
    return o;
}

static json_t *
s_bursts_json(const ld_stats_t *s)
{
    json_t *a = json_array();
    uint64_t i, full;

    for (i = 0; a && i < s->bursts_sent && i < LD_MAX_BURSTS; i++) {
        const ld_burst_t *b = &s->bursts[i];
        bool done = ld_burst_full(b, s->subscribed, &full);

        json_array_append_new(
            a, json_pack("{sI sI so sI sI}", "delivered", (json_int_t)b->delivered, "expected",
                         (json_int_t)s->subscribed, "full_delivery_us",
                         done ? json_integer((json_int_t)(full / 1000)) : json_null(),
                         "first_delivery_us", (json_int_t)(b->min_ns / 1000), "last_delivery_us",
                         (json_int_t)(b->max_ns / 1000)));
    }
    return a;
}

static json_t *
s_fanout_json(const ld_config_t *cfg, const ld_stats_t *s)
{
    /* clang-format off */
    return json_pack(
        "{ss sI sI sI so"
        " sI sI sI so sI"
        " sI sf sI sI sI sI sI sI sI sI"
        " so}",
        "channel", cfg->channel,
        "subscribers", (json_int_t)cfg->conns,
        "subscribed", (json_int_t)s->subscribed,
        "sub_failed", (json_int_t)s->sub_failed,
        "sub_errors", s_stable_json(&s->sub_errs),
        "publishers", (json_int_t)cfg->publishers,
        "published", (json_int_t)s->sent,
        "published_ok", (json_int_t)s->replies,
        "publish_errors", s_stable_json(&s->err_codes),
        "publish_unanswered", (json_int_t)s->missing,
        "deliveries", (json_int_t)s->fan.deliveries,
        "deliveries_per_s", ld_report_delivery_rate(s),
        "expected", (json_int_t)s->fan_expected,
        "missing", (json_int_t)s->fan_missing,
        "extra", (json_int_t)s->fan_extra,
        "duplicates", (json_int_t)s->fan.duplicates,
        "out_of_order", (json_int_t)s->fan.out_of_order,
        "epoch_changes", (json_int_t)s->fan.epoch_changes,
        "foreign", (json_int_t)s->fan.foreign,
        "other_messages", (json_int_t)s->fan_other,
        "bursts", s_bursts_json(s));
    /* clang-format on */
}

static json_t *
s_config_json(const ld_config_t *cfg)
{
    char ip[INET_ADDRSTRLEN];
    json_t *o;

    inet_ntop(AF_INET, &cfg->target.sin_addr, ip, sizeof(ip));
    o = json_pack("{ss si ss sb ss sI sI sf sI sI sI ss sI sf sf sf sf sf si si}", "target_ip", ip,
                  "target_port", (int)ntohs(cfg->target.sin_port), "path", cfg->path, "raw",
                  cfg->raw, "enc", cfg->enc == PROTO_ENC_MSGPACK ? "msgpack" : "json", "conns",
                  (json_int_t)cfg->conns, "count", (json_int_t)cfg->count, "rate", cfg->rate,
                  "handshakes", (json_int_t)cfg->handshakes, "window", (json_int_t)cfg->window,
                  "size", (json_int_t)cfg->size, "svc", cfg->svc, "keys", (json_int_t)cfg->keys,
                  "duration_s", cfg->duration, "hold_s", cfg->hold, "timeout_s", cfg->timeout,
                  "connect_timeout_s", cfg->connect_timeout, "drain_s", cfg->drain, "procs",
                  cfg->procs, "sources", cfg->sources);
    if (!o)
        return NULL;
    json_object_set_new(o, "auth", json_boolean(cfg->auth));
    json_object_set_new(o, "token_source", json_string(s_token_source(cfg)));
    if (cfg->secret_file[0]) {
        json_object_set_new(o, "kid", json_string(cfg->kid));
        json_object_set_new(o, "token_ttl_s", json_real(cfg->token_ttl));
        json_object_set_new(o, "grant_all", json_boolean(cfg->grant_all));
    }
    if (cfg->scenario == LD_SCENARIO_FANOUT) {
        json_object_set_new(o, "channel", json_string(cfg->channel));
        json_object_set_new(o, "publishers", json_integer((json_int_t)cfg->publishers));
        json_object_set_new(o, "bursts", json_integer((json_int_t)cfg->bursts));
        json_object_set_new(o, "burst_pause_s", json_real(cfg->burst_pause));
        json_object_set_new(o, "rx_timestamps", json_boolean(cfg->rx_timestamps));
    }
    return o;
}

json_t *
ld_report_json(const ld_config_t *cfg, const ld_stats_t *s, double elapsed_s)
{
    double send_s =
        s->send_end_ns > s->send_start_ns ? (double)(s->send_end_ns - s->send_start_ns) / 1e9 : 0.0;
    json_t *root;

    /* one argument group per line, as the format's groups (clang-format
     * would pack them into an unreadable block) */
    /* clang-format off */
    root = json_pack(
        "{ss si ss so sf si si"
        " s{sI sI sI so so sf sI sI so sI}"
        " so"
        " s{sI sI sI}"
        " s{sI sI sI so sI sI sf sf sI sI}"
        " so}",
        "tool", "wsgate-load", "version", 1, "scenario", ld_scenario_name(cfg->scenario),
        "config", s_config_json(cfg), "elapsed_s", elapsed_s,
        "procs_done", (int)s->done, "hard_timeouts", (int)s->timed_out,
        "connections",
            "attempted", (json_int_t)s->attempted,
            "established", (json_int_t)s->established,
            "failed", (json_int_t)s->failed,
            "failures", s_failures_json(s),
            "http_status", s_itable_json(&s->http),
            "accepted_per_s", ld_report_accept_rate(s),
            "open_max", (json_int_t)s->open_max,
            "dropped", (json_int_t)s->dropped,
            "server_closes", s_itable_json(&s->closes),
            "closed_clean", (json_int_t)s->closed_clean,
        "handshake_us", s_hist_json(&s->handshake),
        "pings",
            "received", (json_int_t)s->pings,
            "answered", (json_int_t)s->pongs,
            "while_closing", (json_int_t)s->pings_closing,
        "requests",
            "sent", (json_int_t)s->sent,
            "replies", (json_int_t)s->replies,
            "errors", (json_int_t)s->errors,
            "error_codes", s_stable_json(&s->err_codes),
            "missing", (json_int_t)s->missing,
            "bad_replies", (json_int_t)s->bad_replies,
            "round_trips_per_s", ld_report_rtt_rate(s),
            "send_seconds", send_s,
            "bytes_out", (json_int_t)s->bytes_out,
            "bytes_in", (json_int_t)s->bytes_in,
        "latency_us", s_hist_json(&s->latency));
    /* clang-format on */
    if (!root)
        return NULL;
    json_object_set_new(root, "auth_us", s_hist_json(&s->auth));
    if (cfg->scenario == LD_SCENARIO_FANOUT) {
        json_object_set_new(root, "fanout", s_fanout_json(cfg, s));
        json_object_set_new(root, "sub_us", s_hist_json(&s->sub));
        json_object_set_new(root, "delivery_us", s_hist_json(&s->delivery));
    }
    return root;
}

int
ld_report_write(const char *path, const ld_config_t *cfg, const ld_stats_t *s, double elapsed_s)
{
    json_t *j = ld_report_json(cfg, s, elapsed_s);
    int rc;

    if (!j) {
        fprintf(stderr, "wsgate-load: cannot build the JSON report\n");
        return -1;
    }
    rc = json_dump_file(j, path, JSON_INDENT(2) | JSON_PRESERVE_ORDER);
    json_decref(j);
    if (rc) {
        fprintf(stderr, "wsgate-load: cannot write %s\n", path);
        return -1;
    }
    return 0;
}

static void
s_hist_line(FILE *f, const char *what, const ld_hist_t *h)
{
    if (!h->n) {
        fprintf(f, "  %-18s none\n", what);
        return;
    }
    fprintf(f,
            "  %-18s p50 %" PRIu64 "  p90 %" PRIu64 "  p99 %" PRIu64 "  p99.9 %" PRIu64
            "  max %" PRIu64 "  (mean %.0f, n %" PRIu64 ")\n",
            what, ld_hist_percentile(h, 50), ld_hist_percentile(h, 90), ld_hist_percentile(h, 99),
            ld_hist_percentile(h, 99.9), h->max, ld_hist_mean(h), h->n);
}

static void
s_itable_line(FILE *f, const char *what, const ld_itable_t *t)
{
    int i;

    if (!t->slot[0].n && !t->other)
        return;
    fprintf(f, "  %-18s", what);
    for (i = 0; i < LD_TABLE_SLOTS && t->slot[i].n; i++)
        fprintf(f, " %d: %" PRIu64, t->slot[i].key, t->slot[i].n);
    if (t->other)
        fprintf(f, " other: %" PRIu64, t->other);
    fputc('\n', f);
}

static void
s_stable_line(FILE *f, const char *what, const ld_stable_t *t)
{
    int i;

    if (!t->slot[0].n && !t->other)
        return;
    fprintf(f, "  %-18s", what);
    for (i = 0; i < LD_TABLE_SLOTS && t->slot[i].n; i++)
        fprintf(f, " %s: %" PRIu64, t->slot[i].key, t->slot[i].n);
    if (t->other)
        fprintf(f, " other: %" PRIu64, t->other);
    fputc('\n', f);
}

static int
s_cmp_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;

    return x < y ? -1 : x > y;
}

static void
s_bursts_text(FILE *f, const ld_stats_t *s)
{
    uint64_t full[LD_MAX_BURSTS], ns,
        n = s->bursts_sent < LD_MAX_BURSTS ? s->bursts_sent : LD_MAX_BURSTS;
    uint64_t i, k = 0;

    for (i = 0; i < n; i++)
        if (ld_burst_full(&s->bursts[i], s->subscribed, &ns))
            full[k++] = ns;
    fprintf(f, "bursts: %" PRIu64 " sent, %" PRIu64 " delivered to all %" PRIu64 " subscribers\n",
            s->bursts_sent, k, s->subscribed);
    if (k) {
        qsort(full, k, sizeof(full[0]), s_cmp_u64);
        fprintf(f, "  %-18s min %.2f  median %.2f  max %.2f\n", "full delivery (ms)",
                (double)full[0] / 1e6, (double)full[k / 2] / 1e6, (double)full[k - 1] / 1e6);
    }
    for (i = 0; i < n && i < 20; i++) {
        const ld_burst_t *b = &s->bursts[i];

        fprintf(f,
                "  burst %-3" PRIu64 "          %" PRIu64 "/%" PRIu64 " delivered, first %.2f ms,"
                " last %.2f ms%s\n",
                i + 1, b->delivered, s->subscribed, (double)b->min_ns / 1e6,
                (double)b->max_ns / 1e6, b->delivered >= s->subscribed ? "" : " (incomplete)");
    }
}

static void
s_fanout_text(FILE *f, const ld_config_t *cfg, const ld_stats_t *s)
{
    fprintf(f, "subscriptions to %s: %" PRIu64 " of %u subscribed, %" PRIu64 " failed\n",
            cfg->channel, s->subscribed, cfg->conns, s->sub_failed);
    s_stable_line(f, "sub errors", &s->sub_errs);
    s_hist_line(f, "sub (us)", &s->sub);
    fprintf(f,
            "publications: %" PRIu64 " sent by %u publisher%s, %" PRIu64 " answered res, %" PRIu64
            " errors, %" PRIu64 " unanswered\n",
            s->sent, cfg->publishers, cfg->publishers > 1 ? "s" : "", s->replies, s->errors,
            s->missing);
    s_stable_line(f, "publish errors", &s->err_codes);
    s_hist_line(f, cfg->rate > 0 ? "pub ack (us,sched)" : "pub ack (us)", &s->latency);
    fprintf(f,
            "deliveries: %" PRIu64 " (%.0f/s), expected %" PRIu64 ", missing %" PRIu64
            ", extra %" PRIu64 ", duplicates %" PRIu64 ", out of order %" PRIu64
            " (epoch changes %" PRIu64 ")\n",
            s->fan.deliveries, ld_report_delivery_rate(s), s->fan_expected, s->fan_missing,
            s->fan_extra, s->fan.duplicates, s->fan.out_of_order, s->fan.epoch_changes);
    if (s->fan.foreign || s->fan_other)
        fprintf(f, "  %" PRIu64 " deliveries not from this run, %" PRIu64 " other messages\n",
                s->fan.foreign, s->fan_other);
    s_hist_line(f, cfg->rx_timestamps ? "delivery (us, rx)" : "delivery (us)", &s->delivery);
    if (cfg->bursts)
        s_bursts_text(f, s);
}

void
ld_report_text(FILE *f, const ld_config_t *cfg, const ld_stats_t *s, double elapsed_s)
{
    int i;

    fprintf(f, "wsgate-load %s: %s%s, %d process%s, %.1f s\n", ld_scenario_name(cfg->scenario),
            cfg->host, cfg->path, cfg->procs, cfg->procs > 1 ? "es" : "", elapsed_s);
    fprintf(f,
            "connections: %" PRIu64 " attempted, %" PRIu64 " established (%.0f/s), %" PRIu64
            " failed, %" PRIu64 " dropped by the server\n",
            s->attempted, s->established, ld_report_accept_rate(s), s->failed, s->dropped);
    if (s->timed_out)
        fprintf(f, "  cut short by --timeout in %" PRIu64 " process(es)\n", s->timed_out);
    if (s->failed) {
        fprintf(f, "  %-18s", "failures");
        for (i = LD_FAIL_NONE + 1; i < LD_FAIL__COUNT; i++)
            if (s->fail[i] && i != LD_FAIL_AUTH)
                fprintf(f, " %s: %" PRIu64, ld_fail_name((ld_fail_t)i), s->fail[i]);
        for (i = 0; i < LD_TABLE_SLOTS && s->auth_errs.slot[i].n; i++)
            fprintf(f, " auth_failed:%s: %" PRIu64, s->auth_errs.slot[i].key,
                    s->auth_errs.slot[i].n);
        if (s->auth_errs.other)
            fprintf(f, " auth_failed:other: %" PRIu64, s->auth_errs.other);
        fputc('\n', f);
    }
    s_itable_line(f, "http status", &s->http);
    s_itable_line(f, "server closes", &s->closes);
    s_hist_line(f, "handshake (us)", &s->handshake);
    if (cfg->auth)
        s_hist_line(f, "auth (us)", &s->auth);
    if (s->pings)
        fprintf(f,
                "pings: %" PRIu64 " received, %" PRIu64 " answered, %" PRIu64
                " while closing (not answered)\n",
                s->pings, s->pongs, s->pings_closing);
    if (cfg->scenario == LD_SCENARIO_ECHO) {
        fprintf(f,
                "requests: %" PRIu64 " sent, %" PRIu64 " replies (%.0f round trips/s), %" PRIu64
                " errors, %" PRIu64 " missing, %" PRIu64 " bad\n",
                s->sent, s->replies, ld_report_rtt_rate(s), s->errors, s->missing, s->bad_replies);
        if (s->errors) {
            fprintf(f, "  %-18s", "error codes");
            for (i = 0; i < LD_TABLE_SLOTS && s->err_codes.slot[i].n; i++)
                fprintf(f, " %s: %" PRIu64, s->err_codes.slot[i].key, s->err_codes.slot[i].n);
            fputc('\n', f);
        }
        s_hist_line(f, cfg->rate > 0 ? "latency (us, sched)" : "latency (us)", &s->latency);
    }
    if (cfg->scenario == LD_SCENARIO_FANOUT)
        s_fanout_text(f, cfg, s);
}

void
ld_report_progress(FILE *f, const ld_stats_t *now, const ld_stats_t *prev, double t_s, double dt_s)
{
    double d = dt_s > 0 ? dt_s : 1;

    fprintf(f,
            "wsgate-load: [%5.1fs] open %" PRIu64 " (+%.0f/s) failed %" PRIu64 " dropped %" PRIu64
            " | sent %" PRIu64 " replies %" PRIu64 " (%.0f/s) errors %" PRIu64 " missing %" PRIu64
            "\n",
            t_s, now->open, (double)(now->established - prev->established) / d, now->failed,
            now->dropped, now->sent, now->replies, (double)(now->replies - prev->replies) / d,
            now->errors, now->missing);
    if (now->subscribed || now->fan.deliveries)
        fprintf(f,
                "wsgate-load:          subscribed %" PRIu64 " | deliveries %" PRIu64 " (%.0f/s)\n",
                now->subscribed, now->fan.deliveries,
                (double)(now->fan.deliveries - prev->fan.deliveries) / d);
}
