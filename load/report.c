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

static json_t *
s_config_json(const ld_config_t *cfg)
{
    char ip[INET_ADDRSTRLEN];

    inet_ntop(AF_INET, &cfg->target.sin_addr, ip, sizeof(ip));
    return json_pack("{ss si ss sb ss sI sI sf sI sI sI ss sI sf sf sf sf sf si si}", "target_ip",
                     ip, "target_port", (int)ntohs(cfg->target.sin_port), "path", cfg->path, "raw",
                     cfg->raw, "enc", cfg->enc == PROTO_ENC_MSGPACK ? "msgpack" : "json", "conns",
                     (json_int_t)cfg->conns, "count", (json_int_t)cfg->count, "rate", cfg->rate,
                     "handshakes", (json_int_t)cfg->handshakes, "window", (json_int_t)cfg->window,
                     "size", (json_int_t)cfg->size, "svc", cfg->svc, "keys", (json_int_t)cfg->keys,
                     "duration_s", cfg->duration, "hold_s", cfg->hold, "timeout_s", cfg->timeout,
                     "connect_timeout_s", cfg->connect_timeout, "drain_s", cfg->drain, "procs",
                     cfg->procs, "sources", cfg->sources);
}

json_t *
ld_report_json(const ld_config_t *cfg, const ld_stats_t *s, double elapsed_s)
{
    double send_s =
        s->send_end_ns > s->send_start_ns ? (double)(s->send_end_ns - s->send_start_ns) / 1e9 : 0.0;
    json_t *root, *fails;
    int i;

    fails = json_object();
    for (i = LD_FAIL_NONE + 1; fails && i < LD_FAIL__COUNT; i++)
        json_object_set_new(fails, ld_fail_name((ld_fail_t)i),
                            json_integer((json_int_t)s->fail[i]));
    /* one argument group per line, as the format's groups (clang-format
     * would pack them into an unreadable block) */
    /* clang-format off */
    root = json_pack(
        "{ss si ss so sf si si"
        " s{sI sI sI so so sf sI sI so sI}"
        " so"
        " s{sI sI}"
        " s{sI sI sI so sI sI sf sf sI sI}"
        " so}",
        "tool", "wsgate-load", "version", 1, "scenario", ld_scenario_name(cfg->scenario),
        "config", s_config_json(cfg), "elapsed_s", elapsed_s,
        "procs_done", (int)s->done, "hard_timeouts", (int)s->timed_out,
        "connections",
            "attempted", (json_int_t)s->attempted,
            "established", (json_int_t)s->established,
            "failed", (json_int_t)s->failed,
            "failures", fails,
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
            if (s->fail[i])
                fprintf(f, " %s: %" PRIu64, ld_fail_name((ld_fail_t)i), s->fail[i]);
        fputc('\n', f);
    }
    s_itable_line(f, "http status", &s->http);
    s_itable_line(f, "server closes", &s->closes);
    s_hist_line(f, "handshake (us)", &s->handshake);
    if (s->pings)
        fprintf(f, "pings: %" PRIu64 " received, %" PRIu64 " answered\n", s->pings, s->pongs);
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
}
