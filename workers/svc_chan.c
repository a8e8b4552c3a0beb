/*
 * svc_chan.c - the `chan` service (svc_chan.h): channels, presence and
 * history, one actor per channel.
 *
 * Only the gateway talks to it: every request must carry PROTO_BK_F_GW
 * and a payload that is one msgpack map with an "op" (sub, leave, pub,
 * presence, history; docs/backend-protocol.md, "Channels"). Anything else
 * is refused `forbidden`, so a client cannot forge a subscription or a
 * trusted publication by calling the service directly.
 *
 * State per channel:
 *
 *   subscribers  open-addressing table keyed by (gateway link, connection):
 *                a subscribe, a leave, a lookup are O(1) expected. Each
 *                points at its user's entry (NULL when anonymous).
 *   users        open-addressing table name -> connections in the channel,
 *                so JOIN (first connection) and LEAVE (last) are O(1).
 *   history      ring of the last publications, bounded in count, bytes
 *                and age (the age is pruned lazily, when the history is
 *                used), in offset order with no gaps: the publication with
 *                offset o sits (o - oldest) slots after the head.
 *
 * A publication costs one PUB per gateway, whatever the number of
 * subscribers: the gateways hold channel -> local connections.
 *
 * While a channel has subscribers the actor is pinned: its state IS the
 * channel, and passivating it would silently drop everyone's
 * subscription. When the last one leaves it is unpinned and passivated
 * like any idle actor; the next incarnation has a new epoch, which tells
 * a recovering client that the history it knew is gone.
 */
#include "svc_chan.h"

#include "../protocol/backend.h"
#include "../protocol/envelope.h"
#include "../protocol/mpk.h"
#include "../protocol/rendezvous.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>

#define CHAN_EPOCH_LEN 8  /* lowercase hex characters */
#define CHAN_TABLE_MIN 16 /* slots; tables are powers of two, at most half full */
#define CHAN_RING_MIN 8

/* --- configuration ----------------------------------------------------- */

static struct {
    char buf[WK_CHAN_PUBLIC_BYTES]; /* the patterns, back to back */
    proto_span_t pats[WK_CHAN_PUBLIC_MAX];
    size_t n_pats;
    uint32_t history;
    uint64_t history_ttl_ms;
    uint64_t history_bytes;
    uint32_t max_subscribers;
} s_cfg = {
    .history = WK_CHAN_DEFAULT_HISTORY,
    .history_ttl_ms = WK_CHAN_DEFAULT_HISTORY_TTL_S * 1000,
    .history_bytes = WK_CHAN_DEFAULT_HISTORY_BYTES,
    .max_subscribers = WK_CHAN_DEFAULT_MAX_SUBSCRIBERS,
};

void
wk_chan_cfg_defaults(wk_chan_cfg_t *cfg)
{
    memset(cfg, 0, sizeof *cfg);
    cfg->history = WK_CHAN_DEFAULT_HISTORY;
    cfg->history_ttl_s = WK_CHAN_DEFAULT_HISTORY_TTL_S;
    cfg->history_bytes = WK_CHAN_DEFAULT_HISTORY_BYTES;
    cfg->max_subscribers = WK_CHAN_DEFAULT_MAX_SUBSCRIBERS;
}

/* A pattern is a channel name, or a channel-name prefix followed by one
 * `*` (possibly empty: `*` is every channel). */
static bool
s_pattern_valid(const char *p, size_t len)
{
    if (len == 0)
        return false;
    if (p[len - 1] == '*') {
        len--;
        if (len == 0)
            return true;
    }
    return proto_channel_valid(proto_span(p, len), PROTO_CHANNEL_MAX);
}

/* Splits a comma-separated list into patterns copied back to back into
 * buf (blanks around each dropped, empty items skipped). 0, or -1 with
 * err set. */
static int
s_patterns_parse(const char *list, char buf[WK_CHAN_PUBLIC_BYTES], size_t lens[WK_CHAN_PUBLIC_MAX],
                 size_t *n_out, char *err, size_t errsz)
{
    size_t n = 0, used = 0;

    if (!list)
        list = "";
    if (strlen(list) >= WK_CHAN_PUBLIC_BYTES) {
        snprintf(err, errsz, "longer than %d bytes", WK_CHAN_PUBLIC_BYTES - 1);
        return -1;
    }
    for (const char *p = list; *p;) {
        const char *end = strchr(p, ',');
        size_t len = end ? (size_t)(end - p) : strlen(p);
        const char *q = p;
        while (len && (*q == ' ' || *q == '\t'))
            q++, len--;
        while (len && (q[len - 1] == ' ' || q[len - 1] == '\t'))
            len--;
        if (len) {
            if (!s_pattern_valid(q, len)) {
                snprintf(err, errsz, "invalid pattern '%.*s' (a channel name, or a prefix and *)",
                         (int)len, q);
                return -1;
            }
            if (n == WK_CHAN_PUBLIC_MAX) {
                snprintf(err, errsz, "more than %d patterns", WK_CHAN_PUBLIC_MAX);
                return -1;
            }
            memcpy(buf + used, q, len);
            lens[n++] = len;
            used += len;
        }
        p = end ? end + 1 : p + strlen(p);
    }
    *n_out = n;
    return 0;
}

int
wk_chan_patterns_check(const char *list, char *err, size_t errsz)
{
    char buf[WK_CHAN_PUBLIC_BYTES];
    size_t lens[WK_CHAN_PUBLIC_MAX], n;

    return s_patterns_parse(list, buf, lens, &n, err, errsz);
}

int
wk_chan_configure(const wk_chan_cfg_t *cfg, char *err, size_t errsz)
{
    char buf[WK_CHAN_PUBLIC_BYTES];
    size_t lens[WK_CHAN_PUBLIC_MAX], n;

    if (cfg->max_subscribers == 0) {
        snprintf(err, errsz, "chan-max-subscribers must be at least 1");
        return -1;
    }
    if (cfg->history_ttl_s > UINT64_MAX / 1000) {
        snprintf(err, errsz, "chan-history-ttl-s too large");
        return -1;
    }
    char why[256];
    if (s_patterns_parse(cfg->public_patterns, buf, lens, &n, why, sizeof why) != 0) {
        snprintf(err, errsz, "chan-public: %s", why);
        return -1;
    }

    size_t off = 0;
    for (size_t i = 0; i < n; i++) {
        memcpy(s_cfg.buf + off, buf + off, lens[i]);
        s_cfg.pats[i] = proto_span(s_cfg.buf + off, lens[i]);
        off += lens[i];
    }
    s_cfg.n_pats = n;
    s_cfg.history = cfg->history;
    s_cfg.history_ttl_ms = cfg->history_ttl_s * 1000;
    s_cfg.history_bytes = cfg->history_bytes;
    s_cfg.max_subscribers = cfg->max_subscribers;
    return 0;
}

/* --- state ------------------------------------------------------------- */

typedef struct {
    uint64_t hash;
    uint32_t conns; /* this user's subscribed connections */
    size_t len;
    char name[];
} chan_user_t;

typedef struct {
    uint64_t conn;
    uint32_t origin;
    bool used;
    bool presence;
    chan_user_t *user; /* NULL: anonymous */
} chan_sub_t;

typedef struct {
    uint64_t offset;
    uint64_t time; /* runtime clock at publication, ms */
    size_t user_len;
    size_t len;
    uint8_t bytes[]; /* user, then data (one msgpack value) */
} chan_pub_t;

typedef struct {
    char epoch[CHAN_EPOCH_LEN + 1];
    uint64_t offset; /* last one assigned; 0: none yet */

    chan_sub_t *subs;
    size_t subs_cap;
    size_t n_subs;
    uint32_t n_presence; /* subscribers that asked for join/leave events */
    uint32_t n_anon;

    chan_user_t **users;
    size_t users_cap;
    size_t n_users;

    chan_pub_t **ring;
    size_t ring_cap;
    size_t ring_head; /* oldest */
    size_t ring_n;
    uint64_t hist_bytes;
} chan_t;

/* --- epoch ------------------------------------------------------------- */

/* 8 random hex characters. getrandom() does not fail for 4 bytes once the
 * pool is ready; before that (early boot) the clock and an address stand
 * in: an epoch only has to differ between incarnations of a channel. */
static void
s_epoch_new(char out[CHAN_EPOCH_LEN + 1], const void *salt)
{
    uint32_t r = 0;
    if (getrandom(&r, sizeof r, GRND_NONBLOCK) != (ssize_t)sizeof r) {
        struct timespec ts;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        r = (uint32_t)(ts.tv_nsec ^ ts.tv_sec ^ (uintptr_t)salt);
    }
    snprintf(out, CHAN_EPOCH_LEN + 1, "%08x", r);
}

/* --- subscriber table -------------------------------------------------- */

static uint64_t
s_mix64(uint64_t x)
{
    x ^= x >> 30;
    x *= 0xbf58476d1ce4e5b9ULL;
    x ^= x >> 27;
    x *= 0x94d049bb133111ebULL;
    x ^= x >> 31;
    return x;
}

static size_t
s_sub_home(const chan_t *ch, uint32_t origin, uint64_t conn)
{
    return (size_t)s_mix64(conn ^ s_mix64((uint64_t)origin + 0x9e3779b97f4a7c15ULL)) &
           (ch->subs_cap - 1);
}

static chan_sub_t *
s_sub_find(const chan_t *ch, uint32_t origin, uint64_t conn)
{
    if (!ch->subs)
        return NULL;
    size_t mask = ch->subs_cap - 1;
    for (size_t i = s_sub_home(ch, origin, conn); ch->subs[i].used; i = (i + 1) & mask) {
        if (ch->subs[i].conn == conn && ch->subs[i].origin == origin)
            return &ch->subs[i];
    }
    return NULL;
}

/* Rebuilds the table with cap slots. 0 or -1 (unchanged). */
static int
s_subs_resize(chan_t *ch, size_t cap)
{
    chan_sub_t *old = ch->subs;
    size_t old_cap = ch->subs_cap;
    chan_sub_t *subs = calloc(cap, sizeof *subs);
    if (!subs)
        return -1;
    ch->subs = subs;
    ch->subs_cap = cap;
    for (size_t i = 0; i < old_cap; i++) {
        if (!old[i].used)
            continue;
        size_t j = s_sub_home(ch, old[i].origin, old[i].conn);
        while (subs[j].used)
            j = (j + 1) & (cap - 1);
        subs[j] = old[i];
    }
    free(old);
    return 0;
}

/* Adds a subscriber known to be absent. NULL when out of memory. */
static chan_sub_t *
s_sub_add(chan_t *ch, uint32_t origin, uint64_t conn)
{
    if (!ch->subs || (ch->n_subs + 1) * 2 > ch->subs_cap) {
        if (s_subs_resize(ch, ch->subs ? ch->subs_cap * 2 : CHAN_TABLE_MIN) != 0)
            return NULL;
    }
    size_t i = s_sub_home(ch, origin, conn);
    while (ch->subs[i].used)
        i = (i + 1) & (ch->subs_cap - 1);
    chan_sub_t *s = &ch->subs[i];
    memset(s, 0, sizeof *s);
    s->used = true;
    s->origin = origin;
    s->conn = conn;
    ch->n_subs++;
    return s;
}

/* Removes *s (a slot of the table) with backward-shift deletion, as in
 * actor.c: no tombstones, so lookups stay short after churn. */
static void
s_sub_remove(chan_t *ch, chan_sub_t *s)
{
    size_t mask = ch->subs_cap - 1;
    size_t i = (size_t)(s - ch->subs);
    ch->subs[i].used = false;
    ch->n_subs--;
    for (size_t j = (i + 1) & mask; ch->subs[j].used; j = (j + 1) & mask) {
        size_t home = s_sub_home(ch, ch->subs[j].origin, ch->subs[j].conn);
        bool stays = (i <= j) ? (i < home && home <= j) : (i < home || home <= j);
        if (stays)
            continue;
        ch->subs[i] = ch->subs[j];
        ch->subs[j].used = false;
        i = j;
    }
    /* Give memory back after a crowd left; failing to is harmless. */
    if (ch->subs_cap > CHAN_TABLE_MIN && ch->n_subs * 8 < ch->subs_cap)
        (void)s_subs_resize(ch, ch->subs_cap / 2);
}

/* --- user table -------------------------------------------------------- */

static uint64_t
s_user_hash(proto_span_t name)
{
    /* XXH3 through the rendezvous helper: a good hash of any bytes. */
    return proto_rdv_key(proto_span("chan.user", 9), name);
}

static chan_user_t *
s_user_find(const chan_t *ch, uint64_t hash, proto_span_t name)
{
    if (!ch->users)
        return NULL;
    size_t mask = ch->users_cap - 1;
    for (size_t i = (size_t)hash & mask; ch->users[i]; i = (i + 1) & mask) {
        chan_user_t *u = ch->users[i];
        if (u->hash == hash && u->len == name.len && memcmp(u->name, name.ptr, name.len) == 0)
            return u;
    }
    return NULL;
}

static int
s_users_resize(chan_t *ch, size_t cap)
{
    chan_user_t **users = calloc(cap, sizeof *users);
    if (!users)
        return -1;
    for (size_t i = 0; i < ch->users_cap; i++) {
        chan_user_t *u = ch->users[i];
        if (!u)
            continue;
        size_t j = (size_t)u->hash & (cap - 1);
        while (users[j])
            j = (j + 1) & (cap - 1);
        users[j] = u;
    }
    free(ch->users);
    ch->users = users;
    ch->users_cap = cap;
    return 0;
}

/* One more connection of name (non-empty). *first is set when it is the
 * user's first in the channel. NULL when out of memory. */
static chan_user_t *
s_user_acquire(chan_t *ch, proto_span_t name, bool *first)
{
    uint64_t hash = s_user_hash(name);
    chan_user_t *u = s_user_find(ch, hash, name);
    *first = false;
    if (u) {
        u->conns++;
        return u;
    }
    if (!ch->users || (ch->n_users + 1) * 2 > ch->users_cap) {
        if (s_users_resize(ch, ch->users ? ch->users_cap * 2 : CHAN_TABLE_MIN) != 0)
            return NULL;
    }
    u = malloc(sizeof *u + name.len);
    if (!u)
        return NULL;
    u->hash = hash;
    u->conns = 1;
    u->len = name.len;
    memcpy(u->name, name.ptr, name.len);
    size_t mask = ch->users_cap - 1;
    size_t i = (size_t)hash & mask;
    while (ch->users[i])
        i = (i + 1) & mask;
    ch->users[i] = u;
    ch->n_users++;
    *first = true;
    return u;
}

/* One connection of u fewer; frees u after its last. True when that was
 * the last (the caller announces LEAVE with the name it copied first). */
static bool
s_user_release(chan_t *ch, chan_user_t *u)
{
    if (--u->conns > 0)
        return false;
    size_t mask = ch->users_cap - 1;
    size_t i = (size_t)u->hash & mask;
    while (ch->users[i] != u)
        i = (i + 1) & mask;
    ch->users[i] = NULL;
    ch->n_users--;
    for (size_t j = (i + 1) & mask; ch->users[j]; j = (j + 1) & mask) {
        size_t home = (size_t)ch->users[j]->hash & mask;
        bool stays = (i <= j) ? (i < home && home <= j) : (i < home || home <= j);
        if (stays)
            continue;
        ch->users[i] = ch->users[j];
        ch->users[j] = NULL;
        i = j;
    }
    free(u);
    if (ch->users_cap > CHAN_TABLE_MIN && ch->n_users * 8 < ch->users_cap)
        (void)s_users_resize(ch, ch->users_cap / 2);
    return true;
}

/* --- history ----------------------------------------------------------- */

static chan_pub_t *
s_ring_at(const chan_t *ch, size_t i)
{
    return ch->ring[(ch->ring_head + i) & (ch->ring_cap - 1)];
}

/* The offset of the oldest retained publication; offset + 1 when none. */
static uint64_t
s_hist_oldest(const chan_t *ch)
{
    return ch->ring_n ? s_ring_at(ch, 0)->offset : ch->offset + 1;
}

static void
s_hist_drop_oldest(chan_t *ch)
{
    chan_pub_t *p = s_ring_at(ch, 0);
    ch->ring[ch->ring_head] = NULL;
    ch->ring_head = (ch->ring_head + 1) & (ch->ring_cap - 1);
    ch->ring_n--;
    ch->hist_bytes -= p->len;
    free(p);
}

/* Drops what is older than the TTL. Lazy: called when the history is
 * about to be used, so a quiet channel costs no timer. */
static void
s_hist_prune(chan_t *ch, uint64_t now)
{
    if (s_cfg.history_ttl_ms == 0)
        return;
    while (ch->ring_n && now - s_ring_at(ch, 0)->time > s_cfg.history_ttl_ms)
        s_hist_drop_oldest(ch);
}

/* Makes the ring at least one slot larger (capacity doubles; a power of
 * two so that indexes wrap with a mask). */
static int
s_ring_grow(chan_t *ch)
{
    size_t cap = ch->ring_cap ? ch->ring_cap * 2 : CHAN_RING_MIN;
    chan_pub_t **ring = calloc(cap, sizeof *ring);
    if (!ring)
        return -1;
    for (size_t i = 0; i < ch->ring_n; i++)
        ring[i] = s_ring_at(ch, i);
    free(ch->ring);
    ch->ring = ring;
    ch->ring_cap = cap;
    ch->ring_head = 0;
    return 0;
}

/* Appends publication `offset` (already assigned) within the bounds. A
 * publication that cannot be kept (no memory, or larger than the byte
 * bound) is simply not kept: the history then starts after it, and
 * recovery from before it is refused, never given with a hole. */
static void
s_hist_append(chan_t *ch, uint64_t now, proto_span_t user, proto_span_t data)
{
    if (s_cfg.history == 0 || data.len > s_cfg.history_bytes)
        goto out_forget;
    while (ch->ring_n >= s_cfg.history)
        s_hist_drop_oldest(ch);
    while (ch->ring_n && ch->hist_bytes + data.len > s_cfg.history_bytes)
        s_hist_drop_oldest(ch);
    if (ch->ring_n == ch->ring_cap && s_ring_grow(ch) != 0)
        goto out_forget;
    chan_pub_t *p = malloc(sizeof *p + user.len + data.len);
    if (!p)
        goto out_forget;
    p->offset = ch->offset;
    p->time = now;
    p->user_len = user.len;
    p->len = data.len;
    if (user.len)
        memcpy(p->bytes, user.ptr, user.len);
    memcpy(p->bytes + user.len, data.ptr, data.len);
    ch->ring[(ch->ring_head + ch->ring_n) & (ch->ring_cap - 1)] = p;
    ch->ring_n++;
    ch->hist_bytes += data.len;
    return;

out_forget:
    /* Keep "offsets in the ring are contiguous and end at ch->offset". */
    while (ch->ring_n)
        s_hist_drop_oldest(ch);
}

/* --- request map ------------------------------------------------------- */

typedef struct {
    proto_span_t op;
    proto_span_t channel; /* len 0: absent */
    proto_span_t user;
    bool has_user;
    proto_span_t info;  /* one encoded value; len 0: absent */
    proto_span_t data;  /* one encoded value; len 0: absent */
    proto_span_t epoch; /* len 0: no recovery asked */
    uint64_t offset;
    uint64_t limit;
    bool presence;
    bool trusted;
    proto_span_t subs; /* rejoin: [[conn, user, presence], ...]; len 0: absent */
} chan_req_t;

static bool
s_key_is(proto_span_t k, const char *name)
{
    size_t n = strlen(name);
    return k.len == n && memcmp(k.ptr, name, n) == 0;
}

/* Reads an optional str (nil: absent). */
static proto_rc_t
s_opt_str(mpk_reader_t *r, proto_span_t *out)
{
    mpk_item_t it;
    if (mpk_read(r, &it) != PROTO_OK)
        return PROTO_MALFORMED;
    if (it.type == MPK_NIL) {
        *out = proto_span(NULL, 0);
        return PROTO_OK;
    }
    if (it.type != MPK_STR)
        return PROTO_MALFORMED;
    *out = it.v.s;
    return PROTO_OK;
}

static proto_rc_t
s_opt_uint(mpk_reader_t *r, uint64_t *out)
{
    mpk_item_t it;
    if (mpk_read(r, &it) != PROTO_OK)
        return PROTO_MALFORMED;
    if (it.type == MPK_NIL)
        return PROTO_OK;
    if (it.type != MPK_UINT)
        return PROTO_MALFORMED;
    *out = it.v.u;
    return PROTO_OK;
}

static proto_rc_t
s_opt_bool(mpk_reader_t *r, bool *out)
{
    mpk_item_t it;
    if (mpk_read(r, &it) != PROTO_OK)
        return PROTO_MALFORMED;
    if (it.type == MPK_NIL)
        return PROTO_OK;
    if (it.type != MPK_BOOL)
        return PROTO_MALFORMED;
    *out = it.v.b;
    return PROTO_OK;
}

/* Parses the gateway's map. Unknown keys (and non-string keys) are
 * skipped; a known key with a value of the wrong type, trailing bytes or
 * anything the bounded reader refuses is malformed. On success every span
 * points into payload. *why says what was wrong, for the error reply. */
static int
s_parse(proto_span_t payload, chan_req_t *q, const char **why)
{
    mpk_reader_t r;
    uint32_t n;

    memset(q, 0, sizeof *q);
    *why = "payload must be a map";
    mpk_reader_init(&r, payload.ptr, payload.len);
    if (mpk_read_map(&r, &n) != PROTO_OK)
        return -1;
    *why = "malformed map";
    for (uint32_t i = 0; i < n; i++) {
        mpk_reader_t at = r;
        mpk_item_t it;
        proto_rc_t rc;
        if (mpk_read(&r, &it) != PROTO_OK)
            return -1;
        if (it.type != MPK_STR) {
            r = at; /* a container key: skip it whole, then its value */
            if (mpk_skip(&r, MPK_MAX_DEPTH, NULL) != PROTO_OK ||
                mpk_skip(&r, MPK_MAX_DEPTH, NULL) != PROTO_OK)
                return -1;
            continue;
        }
        proto_span_t k = it.v.s;
        if (s_key_is(k, "op")) {
            rc = s_opt_str(&r, &q->op);
        } else if (s_key_is(k, "channel")) {
            rc = s_opt_str(&r, &q->channel);
        } else if (s_key_is(k, "user")) {
            rc = s_opt_str(&r, &q->user);
            q->has_user = true;
        } else if (s_key_is(k, "epoch")) {
            rc = s_opt_str(&r, &q->epoch);
        } else if (s_key_is(k, "offset")) {
            rc = s_opt_uint(&r, &q->offset);
        } else if (s_key_is(k, "limit")) {
            rc = s_opt_uint(&r, &q->limit);
        } else if (s_key_is(k, "presence")) {
            rc = s_opt_bool(&r, &q->presence);
        } else if (s_key_is(k, "trusted")) {
            rc = s_opt_bool(&r, &q->trusted);
        } else if (s_key_is(k, "info")) {
            rc = mpk_skip(&r, MPK_MAX_DEPTH, &q->info);
        } else if (s_key_is(k, "data")) {
            rc = mpk_skip(&r, MPK_MAX_DEPTH, &q->data);
        } else if (s_key_is(k, "subs")) {
            rc = mpk_skip(&r, MPK_MAX_DEPTH, &q->subs);
        } else {
            rc = mpk_skip(&r, MPK_MAX_DEPTH, NULL);
        }
        if (rc != PROTO_OK) {
            *why = "malformed field";
            return -1;
        }
    }
    if (mpk_reader_left(&r) != 0) {
        *why = "trailing bytes after the map";
        return -1;
    }
    if (q->op.len == 0) {
        *why = "missing op";
        return -1;
    }
    /* The user goes into PUB headers, which gateways decode strictly. */
    if (q->user.len > PROTO_BK_USER_MAX || !proto_utf8_valid(q->user.ptr, q->user.len)) {
        *why = "invalid user";
        return -1;
    }
    if (q->epoch.len > PROTO_BK_EPOCH_MAX) {
        *why = "invalid epoch";
        return -1;
    }
    return 0;
}

/* --- permissions ------------------------------------------------------- */

static bool
s_match(proto_span_t pat, proto_span_t ch)
{
    if (pat.len && pat.ptr[pat.len - 1] == '*') {
        size_t pre = pat.len - 1;
        return ch.len >= pre && (pre == 0 || memcmp(ch.ptr, pat.ptr, pre) == 0);
    }
    return pat.len == ch.len && memcmp(pat.ptr, ch.ptr, ch.len) == 0;
}

/* True when channel matches a pattern of info[want] (an array of str) or
 * of --chan-public. info is whatever the auth service returned: anything
 * that is not a map, non-string patterns, other keys are ignored. */
static bool
s_allowed(proto_span_t info, const char *want, proto_span_t channel)
{
    for (size_t i = 0; i < s_cfg.n_pats; i++) {
        if (s_match(s_cfg.pats[i], channel))
            return true;
    }
    mpk_reader_t r;
    uint32_t n;
    mpk_reader_init(&r, info.ptr, info.len);
    if (info.len == 0 || mpk_read_map(&r, &n) != PROTO_OK)
        return false;
    for (uint32_t i = 0; i < n; i++) {
        mpk_reader_t at = r;
        mpk_item_t it;
        if (mpk_read(&r, &it) != PROTO_OK)
            return false;
        if (it.type != MPK_STR || !s_key_is(it.v.s, want)) {
            if (it.type != MPK_STR) {
                r = at;
                if (mpk_skip(&r, MPK_MAX_DEPTH, NULL) != PROTO_OK)
                    return false;
            }
            if (mpk_skip(&r, MPK_MAX_DEPTH, NULL) != PROTO_OK)
                return false;
            continue;
        }
        uint32_t m;
        if (mpk_read_array(&r, &m) != PROTO_OK)
            return false;
        for (uint32_t j = 0; j < m; j++) {
            at = r;
            if (mpk_read(&r, &it) != PROTO_OK)
                return false;
            if (it.type == MPK_STR) {
                if (s_match(it.v.s, channel))
                    return true;
            } else {
                r = at;
                if (mpk_skip(&r, MPK_MAX_DEPTH, NULL) != PROTO_OK)
                    return false;
            }
        }
    }
    return false;
}

/* --- outputs ----------------------------------------------------------- */

static int
s_error(wk_actor_t *a, const wk_msg_t *m, const char *code, const char *text)
{
    if (m->rid == 0)
        return 0; /* nobody to tell */
    return wk_error(a, m, code, text);
}

static int
s_reply(wk_actor_t *a, const wk_msg_t *m, const proto_buf_t *b)
{
    if (m->rid == 0)
        return 0;
    return wk_reply(a, m, proto_buf_payload(b), b->len);
}

static int
s_w_key(proto_buf_t *b, const char *k)
{
    return mpk_write_cstr(b, k);
}

/* {"offset":n,"user":u,"data":d} */
static int
s_w_pub(proto_buf_t *b, const chan_pub_t *p)
{
    return mpk_write_map(b, 3) || s_w_key(b, "offset") || mpk_write_uint(b, p->offset) ||
           s_w_key(b, "user") || mpk_write_str(b, p->bytes, p->user_len) || s_w_key(b, "data") ||
           mpk_write_raw(b, p->bytes + p->user_len, p->len);
}

/* Ring entries [from, from + n) as an array. */
static int
s_w_pubs(proto_buf_t *b, const chan_t *ch, size_t from, size_t n)
{
    if (mpk_write_array(b, (uint32_t)n))
        return -1;
    for (size_t i = 0; i < n; i++) {
        if (s_w_pub(b, s_ring_at(ch, from + i)))
            return -1;
    }
    return 0;
}

static void
s_presence_event(wk_actor_t *a, const chan_t *ch, uint32_t kind, proto_span_t user)
{
    /* Only subscribers that asked for presence get these; with none in
     * the channel, telling every gateway would be pure waste. */
    if (ch->n_presence == 0)
        return;
    (void)wk_broadcast_pub(a, wk_actor_key(a), kind, ch->offset,
                           proto_span(ch->epoch, CHAN_EPOCH_LEN), user, NULL, 0);
}

/* Drops subscriber s, announcing LEAVE if it was its user's last
 * connection. */
static void
s_sub_drop(wk_actor_t *a, chan_t *ch, chan_sub_t *s)
{
    chan_user_t *u = s->user;
    if (s->presence)
        ch->n_presence--;
    if (!u)
        ch->n_anon--;
    s_sub_remove(ch, s); /* s is invalid from here */
    if (u) {
        char name[PROTO_BK_USER_MAX];
        size_t len = u->len;
        memcpy(name, u->name, len);
        if (s_user_release(ch, u))
            s_presence_event(a, ch, PROTO_BK_PUB_LEAVE, proto_span(name, len));
    }
}

/* --- operations -------------------------------------------------------- */

static int
s_op_sub(wk_actor_t *a, chan_t *ch, const wk_msg_t *m, const chan_req_t *q, proto_span_t channel)
{
    if (!s_allowed(q->info, "sub", channel))
        return s_error(a, m, "forbidden", "not allowed to subscribe to this channel");
    chan_sub_t *s = s_sub_find(ch, m->origin, m->conn);
    if (!s && ch->n_subs >= s_cfg.max_subscribers)
        return s_error(a, m, "overloaded", "too many subscribers in this channel");

    /* The reply first: once it is encoded nothing can fail but memory for
     * the subscriber, and then nothing has been sent yet. */
    uint64_t now = wk_actor_now(a);
    s_hist_prune(ch, now);
    uint64_t oldest = s_hist_oldest(ch);
    bool recovered = q->epoch.len == CHAN_EPOCH_LEN &&
                     memcmp(q->epoch.ptr, ch->epoch, CHAN_EPOCH_LEN) == 0 &&
                     q->offset <= ch->offset && q->offset + 1 >= oldest;
    size_t from = 0, n = 0;
    if (recovered) {
        from = (size_t)(q->offset + 1 - oldest);
        n = (size_t)(ch->offset - q->offset);
    }
    proto_buf_t b;
    proto_buf_init(&b, 0);
    int rc = -1;
    if (mpk_write_map(&b, 4) || s_w_key(&b, "epoch") ||
        mpk_write_str(&b, ch->epoch, CHAN_EPOCH_LEN) || s_w_key(&b, "offset") ||
        mpk_write_uint(&b, ch->offset) || s_w_key(&b, "recovered") ||
        mpk_write_bool(&b, recovered) || s_w_key(&b, "pubs") || s_w_pubs(&b, ch, from, n))
        goto out_nomem;

    proto_span_t user = q->has_user ? q->user : m->user;
    bool joined = false;
    if (s && (s->user ? s->user->len == user.len && memcmp(s->user->name, user.ptr, user.len) == 0
                      : user.len == 0)) {
        /* Subscribed already, as the same user: only presence may change. */
        if (s->presence != q->presence) {
            if (q->presence)
                ch->n_presence++;
            else
                ch->n_presence--;
            s->presence = q->presence;
        }
    } else {
        /* New, or the same (gateway, connection) under another user: the
         * connection re-authenticated, or the gateway restarted and reuses
         * ids our stale entry still holds. Either way the old user's
         * connection is gone. */
        chan_user_t *u = NULL;
        if (user.len && !(u = s_user_acquire(ch, user, &joined)))
            goto out_nomem;
        /* Counted as a listener before the old user's LEAVE goes out: this
         * connection, under its new name, wants to see it. */
        if (q->presence)
            ch->n_presence++;
        if (s)
            s_sub_drop(a, ch, s);
        if (!(s = s_sub_add(ch, m->origin, m->conn))) {
            if (q->presence)
                ch->n_presence--;
            if (u && s_user_release(ch, u))
                joined = false;
            goto out_nomem;
        }
        s->user = u;
        s->presence = q->presence;
        if (!u)
            ch->n_anon++;
    }
    rc = s_reply(a, m, &b);
    if (joined)
        s_presence_event(a, ch, PROTO_BK_PUB_JOIN, user);
    proto_buf_fini(&b);
    return rc;

out_nomem:
    proto_buf_fini(&b);
    s_error(a, m, "internal", "out of memory");
    return -1;
}

static int
s_op_leave(wk_actor_t *a, chan_t *ch, const wk_msg_t *m)
{
    chan_sub_t *s = s_sub_find(ch, m->origin, m->conn);
    if (s)
        s_sub_drop(a, ch, s);
    if (m->rid == 0)
        return 0;
    static const uint8_t nil = 0xc0;
    return wk_reply(a, m, &nil, 1);
}

/* Drops subscriber s without announcing anything: it did not leave, its
 * gateway moved it to the channel's new actor (op "drop"). */
static void
s_sub_drop_quiet(chan_t *ch, chan_sub_t *s)
{
    chan_user_t *u = s->user;
    if (s->presence)
        ch->n_presence--;
    if (!u)
        ch->n_anon--;
    s_sub_remove(ch, s);
    if (u)
        (void)s_user_release(ch, u);
}

/* Drops every subscriber of gateway `origin` whose conn is below `below`:
 * quietly (they moved), or announcing LEAVEs (they are gone). The conns
 * are collected first: removal shifts entries of the open-addressed
 * table. Without memory for the list nothing is dropped. */
static void
s_drop_origin(wk_actor_t *a, chan_t *ch, uint32_t origin, uint64_t below, bool quiet)
{
    size_t n = 0;
    uint64_t *conns = ch->n_subs ? malloc(ch->n_subs * sizeof *conns) : NULL;

    for (size_t i = 0; conns && i < ch->subs_cap; i++)
        if (ch->subs[i].used && ch->subs[i].origin == origin && ch->subs[i].conn < below)
            conns[n++] = ch->subs[i].conn;
    for (size_t i = 0; i < n; i++) {
        chan_sub_t *s = s_sub_find(ch, origin, conns[i]);
        if (s && quiet)
            s_sub_drop_quiet(ch, s);
        else if (s)
            s_sub_drop(a, ch, s);
    }
    free(conns);
}

/* "drop": this channel's actor now lives elsewhere (a worker joined or
 * left); the gateway that sent it gave its subscribers to the new one.
 * Forget them all, quietly. */
static int
s_op_drop(wk_actor_t *a, chan_t *ch, const wk_msg_t *m)
{
    s_drop_origin(a, ch, m->origin, UINT64_MAX, true);
    if (m->rid == 0)
        return 0;
    static const uint8_t nil = 0xc0;
    return wk_reply(a, m, &nil, 1);
}

/* "rejoin": a gateway's subscribers of this channel, which an earlier
 * actor had (this one is new: another epoch). Taken as they are, without
 * join events: nobody joined, the channel moved. Permissions were checked
 * when they subscribed. Malformed entries are skipped. */
static int
s_op_rejoin(wk_actor_t *a, chan_t *ch, const wk_msg_t *m, const chan_req_t *q)
{
    mpk_reader_t r;
    uint32_t n;

    mpk_reader_init(&r, q->subs.ptr, q->subs.len);
    if (!q->subs.len || mpk_read_array(&r, &n) != PROTO_OK)
        return s_error(a, m, "bad_request", "rejoin needs subs");
    for (uint32_t i = 0; i < n; i++) {
        uint32_t k;
        uint64_t conn;
        proto_span_t user;
        mpk_item_t pres;
        if (mpk_read_array(&r, &k) != PROTO_OK || k != 3 || mpk_read_uint(&r, &conn) != PROTO_OK ||
            mpk_read_str(&r, &user) != PROTO_OK || mpk_read(&r, &pres) != PROTO_OK ||
            pres.type != MPK_BOOL)
            return s_error(a, m, "bad_request", "malformed subs");
        if (user.len > PROTO_BK_USER_MAX || !proto_utf8_valid(user.ptr, user.len) ||
            s_sub_find(ch, m->origin, conn) || ch->n_subs >= s_cfg.max_subscribers)
            continue;
        bool first;
        chan_user_t *u = NULL;
        if (user.len && !(u = s_user_acquire(ch, user, &first)))
            return s_error(a, m, "internal", "out of memory");
        chan_sub_t *s = s_sub_add(ch, m->origin, conn);
        if (!s) {
            if (u)
                (void)s_user_release(ch, u);
            return s_error(a, m, "internal", "out of memory");
        }
        s->user = u;
        s->presence = pres.v.b;
        if (s->presence)
            ch->n_presence++;
        if (!u)
            ch->n_anon++;
    }
    if (m->rid == 0)
        return 0;
    static const uint8_t nil = 0xc0;
    return wk_reply(a, m, &nil, 1);
}

static int
s_op_pub(wk_actor_t *a, chan_t *ch, const wk_msg_t *m, const chan_req_t *q, proto_span_t channel)
{
    static const uint8_t nil = 0xc0;
    if (!q->trusted && !s_allowed(q->info, "pub", channel))
        return s_error(a, m, "forbidden", "not allowed to publish on this channel");
    proto_span_t user = q->has_user ? q->user : m->user;
    proto_span_t data = q->data.len ? q->data : proto_span(&nil, 1);
    uint64_t now = wk_actor_now(a);

    proto_buf_t b;
    proto_buf_init(&b, 0);
    ch->offset++;
    s_hist_prune(ch, now);
    s_hist_append(ch, now, user, data);
    (void)wk_broadcast_pub(a, channel, PROTO_BK_PUB_MSG, ch->offset,
                           proto_span(ch->epoch, CHAN_EPOCH_LEN), user, data.ptr, data.len);
    int rc = 0;
    if (m->rid) {
        if (mpk_write_map(&b, 2) || s_w_key(&b, "offset") || mpk_write_uint(&b, ch->offset) ||
            s_w_key(&b, "epoch") || mpk_write_str(&b, ch->epoch, CHAN_EPOCH_LEN))
            rc = s_error(a, m, "internal", "out of memory");
        else
            rc = s_reply(a, m, &b);
    }
    proto_buf_fini(&b);
    return rc;
}

static int
s_op_presence(wk_actor_t *a, chan_t *ch, const wk_msg_t *m, const chan_req_t *q,
              proto_span_t channel)
{
    if (!s_allowed(q->info, "sub", channel))
        return s_error(a, m, "forbidden", "not allowed to see this channel");
    proto_buf_t b;
    proto_buf_init(&b, 0);
    bool failed =
        mpk_write_map(&b, 2) || s_w_key(&b, "users") || mpk_write_map(&b, (uint32_t)ch->n_users);
    for (size_t i = 0; i < ch->users_cap && !failed; i++) {
        const chan_user_t *u = ch->users[i];
        if (u)
            failed = mpk_write_str(&b, u->name, u->len) || mpk_write_uint(&b, u->conns);
    }
    failed = failed || s_w_key(&b, "anonymous") || mpk_write_uint(&b, ch->n_anon);
    int rc = failed ? s_error(a, m, "internal", "out of memory") : s_reply(a, m, &b);
    proto_buf_fini(&b);
    return rc;
}

static int
s_op_history(wk_actor_t *a, chan_t *ch, const wk_msg_t *m, const chan_req_t *q,
             proto_span_t channel)
{
    if (!s_allowed(q->info, "sub", channel))
        return s_error(a, m, "forbidden", "not allowed to see this channel");
    s_hist_prune(ch, wk_actor_now(a));
    size_t n = ch->ring_n;
    if (q->limit && q->limit < n)
        n = (size_t)q->limit;
    proto_buf_t b;
    proto_buf_init(&b, 0);
    bool failed = mpk_write_map(&b, 3) || s_w_key(&b, "epoch") ||
                  mpk_write_str(&b, ch->epoch, CHAN_EPOCH_LEN) || s_w_key(&b, "offset") ||
                  mpk_write_uint(&b, ch->offset) || s_w_key(&b, "pubs") ||
                  s_w_pubs(&b, ch, ch->ring_n - n, n);
    int rc = failed ? s_error(a, m, "internal", "out of memory") : s_reply(a, m, &b);
    proto_buf_fini(&b);
    return rc;
}

/* --- behaviour --------------------------------------------------------- */

static int
chan_start(wk_actor_t *a, void **state)
{
    chan_t *ch = calloc(1, sizeof *ch);
    if (!ch)
        return -1;
    s_epoch_new(ch->epoch, ch);
    (void)a;
    *state = ch;
    return 0;
}

static int
s_dispatch(wk_actor_t *a, chan_t *ch, const wk_msg_t *m)
{
    if (!(m->flags & PROTO_BK_F_GW))
        return s_error(a, m, "forbidden", "channel operations go through the gateway");
    if (m->flags & PROTO_BK_F_RAW)
        return s_error(a, m, "bad_request", "raw message");

    /* The key is the channel; PUB headers need it to be a valid one. */
    proto_span_t channel = wk_actor_key(a);
    if (channel.len == 0 || channel.len > PROTO_BK_CHANNEL_MAX)
        return s_error(a, m, "bad_request", "invalid channel");

    chan_req_t q;
    const char *why;
    if (s_parse(m->data, &q, &why) != 0)
        return s_error(a, m, "bad_request", why);
    if (q.channel.len &&
        (q.channel.len != channel.len || memcmp(q.channel.ptr, channel.ptr, channel.len) != 0))
        return s_error(a, m, "bad_request", "channel does not match the key");

    if (s_key_is(q.op, "sub"))
        return s_op_sub(a, ch, m, &q, channel);
    if (s_key_is(q.op, "leave"))
        return s_op_leave(a, ch, m);
    if (s_key_is(q.op, "pub"))
        return s_op_pub(a, ch, m, &q, channel);
    if (s_key_is(q.op, "presence"))
        return s_op_presence(a, ch, m, &q, channel);
    if (s_key_is(q.op, "history"))
        return s_op_history(a, ch, m, &q, channel);
    if (s_key_is(q.op, "drop"))
        return s_op_drop(a, ch, m);
    if (s_key_is(q.op, "rejoin"))
        return s_op_rejoin(a, ch, m, &q);
    return s_error(a, m, "bad_request", "unknown op");
}

static int
chan_handle(wk_actor_t *a, void *state, const wk_msg_t *m)
{
    chan_t *ch = state;
    int rc = 0;

    /* A gateway restarted or left: its connections below m->conn are gone
     * without a "leave" each. They leave now, with LEAVE events as if
     * they had closed: for the users still here, presence must stop
     * counting them, or the channel would stay pinned for ever. */
    if (m->kind == WK_MSG_CONNS_GONE)
        s_drop_origin(a, ch, m->origin, m->conn, false);
    else if (m->kind == WK_MSG_REQ)
        rc = s_dispatch(a, ch, m);
    /* other kinds: the gateway says "leave" when a connection closes */
    /* Pinned exactly while someone is subscribed (svc_chan.c's header). */
    wk_actor_pin(a, ch->n_subs > 0);
    return rc;
}

static void
chan_stop(wk_actor_t *a, void *state)
{
    chan_t *ch = state;
    (void)a;
    if (!ch)
        return;
    while (ch->ring_n)
        s_hist_drop_oldest(ch);
    free(ch->ring);
    for (size_t i = 0; i < ch->users_cap; i++)
        free(ch->users[i]);
    free(ch->users);
    free(ch->subs);
    free(ch);
}

/* Not retry-safe: a replayed publication would be numbered twice. */
const wk_service_t wk_svc_chan = {"chan", chan_start, chan_handle, chan_stop, 0};
