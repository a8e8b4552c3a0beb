/*
 * stats.c - load counters and their merge (stats.h).
 */
#include "stats.h"

#include <string.h>

static const char *const s_fail_names[LD_FAIL__COUNT] = {
    [LD_FAIL_NONE] = "none",
    [LD_FAIL_REFUSED] = "refused",
    [LD_FAIL_TIMEOUT] = "timeout",
    [LD_FAIL_HTTP] = "http_status",
    [LD_FAIL_BAD_ACCEPT] = "bad_accept",
    [LD_FAIL_BAD_PROTOCOL] = "bad_subprotocol",
    [LD_FAIL_RESET] = "reset",
    [LD_FAIL_ADDRESS] = "no_address",
    [LD_FAIL_FILES] = "no_files",
    [LD_FAIL_MALFORMED] = "malformed",
    [LD_FAIL_OTHER] = "other",
    [LD_FAIL_AUTH] = "auth_failed",
    [LD_FAIL_AUTH_TIMEOUT] = "auth_timeout",
};

const char *
ld_fail_name(ld_fail_t f)
{
    return (unsigned)f < LD_FAIL__COUNT ? s_fail_names[f] : "?";
}

void
ld_stats_init(ld_stats_t *s)
{
    memset(s, 0, sizeof(*s));
    ld_hist_init(&s->handshake);
    ld_hist_init(&s->latency);
    ld_hist_init(&s->auth);
    ld_hist_init(&s->sub);
    ld_hist_init(&s->delivery);
}

void
ld_itable_add(ld_itable_t *t, int key, uint64_t n)
{
    int i;

    for (i = 0; i < LD_TABLE_SLOTS; i++) {
        if (t->slot[i].n && t->slot[i].key == key) {
            t->slot[i].n += n;
            return;
        }
        if (!t->slot[i].n) {
            t->slot[i].key = key;
            t->slot[i].n = n;
            return;
        }
    }
    t->other += n;
}

void
ld_stable_add(ld_stable_t *t, const char *code, size_t len, uint64_t n)
{
    int i;

    if (len > LD_CODE_MAX)
        len = LD_CODE_MAX;
    for (i = 0; i < LD_TABLE_SLOTS; i++) {
        if (t->slot[i].n && strlen(t->slot[i].key) == len && !memcmp(t->slot[i].key, code, len)) {
            t->slot[i].n += n;
            return;
        }
        if (!t->slot[i].n) {
            memcpy(t->slot[i].key, code, len);
            t->slot[i].key[len] = 0;
            t->slot[i].n = n;
            return;
        }
    }
    t->other += n;
}

static void
s_stable_merge(ld_stable_t *dst, const ld_stable_t *src)
{
    int i;

    for (i = 0; i < LD_TABLE_SLOTS && src->slot[i].n; i++)
        ld_stable_add(dst, src->slot[i].key, strlen(src->slot[i].key), src->slot[i].n);
    dst->other += src->other;
}

static uint64_t
s_min_set(uint64_t a, uint64_t b)
{
    if (!a)
        return b;
    if (!b)
        return a;
    return a < b ? a : b;
}

void
ld_stats_merge(ld_stats_t *dst, const ld_stats_t *src)
{
    int i;

    dst->attempted += src->attempted;
    dst->established += src->established;
    dst->failed += src->failed;
    for (i = 0; i < LD_FAIL__COUNT; i++)
        dst->fail[i] += src->fail[i];
    for (i = 0; i < LD_TABLE_SLOTS && src->http.slot[i].n; i++)
        ld_itable_add(&dst->http, src->http.slot[i].key, src->http.slot[i].n);
    dst->http.other += src->http.other;
    dst->open += src->open;
    /* processes peak at about the same time; the sum is the bound we know */
    dst->open_max += src->open_max;
    dst->dropped += src->dropped;
    for (i = 0; i < LD_TABLE_SLOTS && src->closes.slot[i].n; i++)
        ld_itable_add(&dst->closes, src->closes.slot[i].key, src->closes.slot[i].n);
    dst->closes.other += src->closes.other;
    dst->closed_clean += src->closed_clean;
    dst->first_start_ns = s_min_set(dst->first_start_ns, src->first_start_ns);
    if (src->last_open_ns > dst->last_open_ns)
        dst->last_open_ns = src->last_open_ns;
    ld_hist_merge(&dst->handshake, &src->handshake);
    s_stable_merge(&dst->auth_errs, &src->auth_errs);
    ld_hist_merge(&dst->auth, &src->auth);

    dst->pings += src->pings;
    dst->pongs += src->pongs;
    dst->pings_closing += src->pings_closing;

    dst->sent += src->sent;
    dst->replies += src->replies;
    dst->errors += src->errors;
    s_stable_merge(&dst->err_codes, &src->err_codes);
    dst->missing += src->missing;
    dst->bad_replies += src->bad_replies;
    dst->bytes_out += src->bytes_out;
    dst->bytes_in += src->bytes_in;
    dst->send_start_ns = s_min_set(dst->send_start_ns, src->send_start_ns);
    if (src->send_end_ns > dst->send_end_ns)
        dst->send_end_ns = src->send_end_ns;
    ld_hist_merge(&dst->latency, &src->latency);
    dst->subscribed += src->subscribed;
    dst->sub_failed += src->sub_failed;
    s_stable_merge(&dst->sub_errs, &src->sub_errs);
    ld_hist_merge(&dst->sub, &src->sub);
    dst->fan.deliveries += src->fan.deliveries;
    dst->fan.duplicates += src->fan.duplicates;
    dst->fan.out_of_order += src->fan.out_of_order;
    dst->fan.epoch_changes += src->fan.epoch_changes;
    dst->fan.foreign += src->fan.foreign;
    dst->fan_other += src->fan_other;
    dst->fan_expected += src->fan_expected;
    dst->fan_missing += src->fan_missing;
    dst->fan_extra += src->fan_extra;
    dst->first_pub_ns = s_min_set(dst->first_pub_ns, src->first_pub_ns);
    if (src->last_deliv_ns > dst->last_deliv_ns)
        dst->last_deliv_ns = src->last_deliv_ns;
    ld_hist_merge(&dst->delivery, &src->delivery);
    dst->bursts_sent += src->bursts_sent;
    for (i = 0; i < LD_MAX_BURSTS; i++)
        ld_burst_merge(&dst->bursts[i], &src->bursts[i]);
    dst->fan_ready += src->fan_ready;
    dst->fan_pub_done += src->fan_pub_done;
    dst->fan_pub_ok += src->fan_pub_ok;
    dst->timed_out += src->timed_out;
    dst->done += src->done;
}
