/*
 * test_chan.c - the `chan` service (workers/svc_chan.c), driven through
 * the actor runtime without ZeroMQ, as test_actor.c does: the gateway's
 * REQs are built here, outputs (replies, errors, PUB broadcasts) recorded
 * by a wk_out_t, and time is the runtime's fake clock.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "../../protocol/envelope.h"
#include "../../protocol/mpk.h"
#include "../../workers/actor.h"
#include "../../workers/svc_chan.h"

/* --- recorded outputs -------------------------------------------------- */

#include "recout.h"

static const out_rec_t *
s_reply_for(uint64_t rid)
{
    const out_rec_t *r = s_out_for(rid);
    if (r->kind != OUT_REPLY)
        fail_msg("rid %llu: error %s (%s), expected a reply", (unsigned long long)rid, r->code,
                 r->msg);
    return r;
}

static void
s_expect_error(uint64_t rid, const char *code)
{
    const out_rec_t *r = s_out_for(rid);
    assert_int_equal(r->kind, OUT_ERROR);
    assert_string_equal(r->code, code);
}

#define s_count s_out_count

/* The i-th PUB record (fails if there are not that many). */
static const out_rec_t *
s_pub(size_t i)
{
    for (size_t k = 0; k < g_out.n; k++) {
        if (g_out.v[k].kind == OUT_PUB && i-- == 0)
            return &g_out.v[k];
    }
    fail_msg("no PUB #%zu", i);
    return NULL;
}

/* --- reading replies --------------------------------------------------- */

static proto_span_t
s_span(const out_rec_t *r)
{
    return proto_span(r->data, r->len);
}

/* The value of key in the msgpack map m (fails when absent). */
static proto_span_t
s_get(proto_span_t m, const char *key)
{
    mpk_reader_t rd;
    uint32_t n;
    mpk_reader_init(&rd, m.ptr, m.len);
    assert_int_equal(mpk_read_map(&rd, &n), PROTO_OK);
    for (uint32_t i = 0; i < n; i++) {
        proto_span_t k, v;
        assert_int_equal(mpk_read_str(&rd, &k), PROTO_OK);
        assert_int_equal(mpk_skip(&rd, MPK_MAX_DEPTH, &v), PROTO_OK);
        if (k.len == strlen(key) && memcmp(k.ptr, key, k.len) == 0)
            return v;
    }
    fail_msg("no key %s in the reply", key);
    return proto_span(NULL, 0);
}

static uint32_t
s_map_len(proto_span_t m)
{
    mpk_reader_t rd;
    uint32_t n = 0;
    mpk_reader_init(&rd, m.ptr, m.len);
    assert_int_equal(mpk_read_map(&rd, &n), PROTO_OK);
    return n;
}

static uint64_t
s_uint(proto_span_t v)
{
    mpk_reader_t rd;
    uint64_t u = 0;
    mpk_reader_init(&rd, v.ptr, v.len);
    assert_int_equal(mpk_read_uint(&rd, &u), PROTO_OK);
    return u;
}

static bool
s_bool(proto_span_t v)
{
    mpk_reader_t rd;
    mpk_item_t it;
    mpk_reader_init(&rd, v.ptr, v.len);
    assert_int_equal(mpk_read(&rd, &it), PROTO_OK);
    assert_int_equal(it.type, MPK_BOOL);
    return it.v.b;
}

/* A str value into buf (cap bytes). */
static const char *
s_str(proto_span_t v, char *buf, size_t cap)
{
    mpk_reader_t rd;
    proto_span_t s;
    mpk_reader_init(&rd, v.ptr, v.len);
    assert_int_equal(mpk_read_str(&rd, &s), PROTO_OK);
    s_copy_str(buf, cap, s);
    return buf;
}

/* The "pubs" array of a reply: offsets, users and data (uint data only;
 * other data reads as UINT64_MAX). Returns the count. */
typedef struct {
    uint64_t offset;
    char user[PROTO_BK_USER_MAX + 1];
    uint64_t data;
} pub_t;

static size_t
s_pubs(proto_span_t reply, pub_t *out, size_t max)
{
    proto_span_t arr = s_get(reply, "pubs");
    mpk_reader_t rd;
    uint32_t n;
    mpk_reader_init(&rd, arr.ptr, arr.len);
    assert_int_equal(mpk_read_array(&rd, &n), PROTO_OK);
    assert_true(n <= max);
    for (uint32_t i = 0; i < n; i++) {
        proto_span_t p;
        assert_int_equal(mpk_skip(&rd, MPK_MAX_DEPTH, &p), PROTO_OK);
        assert_int_equal(s_map_len(p), 3);
        out[i].offset = s_uint(s_get(p, "offset"));
        s_str(s_get(p, "user"), out[i].user, sizeof out[i].user);
        proto_span_t d = s_get(p, "data");
        mpk_reader_t dr;
        mpk_item_t it;
        mpk_reader_init(&dr, d.ptr, d.len);
        assert_int_equal(mpk_read(&dr, &it), PROTO_OK);
        out[i].data = it.type == MPK_UINT ? it.v.u : UINT64_MAX;
    }
    return n;
}

/* --- building the gateway's requests ----------------------------------- */

typedef struct {
    const char *op;
    const char *channel; /* NULL: the key */
    const char *user;    /* NULL: no "user" key (the REQ header's is used) */
    const char *sub;     /* info.sub, comma-separated; NULL: no info */
    const char *pub;     /* info.pub */
    bool presence;
    const char *epoch; /* recovery: epoch and offset */
    uint64_t offset;
    bool has_data;
    uint64_t data;   /* uint data */
    size_t data_bin; /* > 0: data is a bin of this many bytes instead */
    bool trusted;
    uint64_t limit;
} rq_t;

static void
s_w_patterns(proto_buf_t *b, const char *list)
{
    char copy[256];
    uint32_t n = 0;
    snprintf(copy, sizeof copy, "%s", list);
    for (const char *p = list; *p; p++)
        n += *p == ',';
    n += list[0] != '\0';
    assert_int_equal(mpk_write_array(b, n), 0);
    char *save = NULL;
    for (char *t = strtok_r(copy, ",", &save); t; t = strtok_r(NULL, ",", &save))
        assert_int_equal(mpk_write_cstr(b, t), 0);
}

/* Encodes q as the gateway's map into b (reset first). */
static void
s_build(proto_buf_t *b, const char *key, const rq_t *q)
{
    proto_buf_t kv;
    uint32_t n = 0;
    proto_buf_init(&kv, 0);
#define KV(k, write)                                                                               \
    do {                                                                                           \
        assert_int_equal(mpk_write_cstr(&kv, k), 0);                                               \
        assert_int_equal(write, 0);                                                                \
        n++;                                                                                       \
    } while (0)
    KV("op", mpk_write_cstr(&kv, q->op));
    KV("channel", mpk_write_cstr(&kv, q->channel ? q->channel : key));
    if (q->user)
        KV("user", mpk_write_cstr(&kv, q->user));
    if (q->sub || q->pub) {
        assert_int_equal(mpk_write_cstr(&kv, "info"), 0);
        assert_int_equal(mpk_write_map(&kv, (q->sub != NULL) + (q->pub != NULL)), 0);
        if (q->sub) {
            assert_int_equal(mpk_write_cstr(&kv, "sub"), 0);
            s_w_patterns(&kv, q->sub);
        }
        if (q->pub) {
            assert_int_equal(mpk_write_cstr(&kv, "pub"), 0);
            s_w_patterns(&kv, q->pub);
        }
        n++;
    } else {
        KV("info", mpk_write_nil(&kv));
    }
    if (strcmp(q->op, "sub") == 0)
        KV("presence", mpk_write_bool(&kv, q->presence));
    if (q->epoch) {
        KV("epoch", mpk_write_cstr(&kv, q->epoch));
        KV("offset", mpk_write_uint(&kv, q->offset));
    }
    if (q->data_bin) {
        uint8_t *bytes = calloc(1, q->data_bin);
        assert_non_null(bytes);
        KV("data", mpk_write_bin(&kv, bytes, q->data_bin));
        free(bytes);
    } else if (q->has_data) {
        KV("data", mpk_write_uint(&kv, q->data));
    }
    if (q->trusted)
        KV("trusted", mpk_write_bool(&kv, true));
    if (q->limit)
        KV("limit", mpk_write_uint(&kv, q->limit));
    KV("unknown_key", mpk_write_cstr(&kv, "ignored"));
#undef KV
    proto_buf_reset(b);
    assert_int_equal(mpk_write_map(b, n), 0);
    assert_int_equal(proto_buf_append(b, proto_buf_payload(&kv), kv.len), 0);
    proto_buf_fini(&kv);
}

/* Delivers a REQ to chan/key with raw payload bytes. */
static int
s_deliver_raw(wk_runtime_t *rt, uint32_t origin, uint64_t rid, uint64_t conn, const char *key,
              uint32_t flags, const char *hdr_user, const void *p, size_t len)
{
    proto_bk_t h;
    memset(&h, 0, sizeof h);
    h.version = PROTO_BK_VERSION;
    h.type = PROTO_BK_REQ;
    h.rid = rid;
    h.conn = conn;
    h.flags = flags;
    h.svc = proto_span("chan", 4);
    h.key = proto_span(key, strlen(key));
    if (hdr_user)
        h.user = proto_span(hdr_user, strlen(hdr_user));
    return wk_runtime_deliver(rt, origin, &h, p, len);
}

static size_t
s_drain(wk_runtime_t *rt)
{
    size_t total = 0, n;
    while ((n = wk_runtime_run(rt, 1000)) > 0)
        total += n;
    assert_false(wk_runtime_busy(rt));
    return total;
}

/* A gateway REQ (PROTO_BK_F_GW), handled at once. The header's user is
 * the payload's, as the gateway sends both. */
static void
s_gw(wk_runtime_t *rt, uint32_t origin, uint64_t rid, uint64_t conn, const char *key, const rq_t *q)
{
    proto_buf_t b;
    proto_buf_init(&b, 0);
    s_build(&b, key, q);
    assert_int_equal(s_deliver_raw(rt, origin, rid, conn, key, PROTO_BK_F_GW, q->user,
                                   proto_buf_payload(&b), b.len),
                     0);
    proto_buf_fini(&b);
    s_drain(rt);
}

static wk_stats_t
s_stats(const wk_runtime_t *rt)
{
    wk_stats_t st;
    wk_runtime_stats(rt, &st);
    return st;
}

/* --- fixtures ---------------------------------------------------------- */

static void
s_configure(const char *public_patterns, uint32_t history, uint64_t ttl_s, uint64_t bytes,
            uint32_t max_subs)
{
    wk_chan_cfg_t cfg;
    char err[256];
    wk_chan_cfg_defaults(&cfg);
    cfg.public_patterns = public_patterns;
    if (history != UINT32_MAX)
        cfg.history = history;
    if (ttl_s != UINT64_MAX)
        cfg.history_ttl_s = ttl_s;
    if (bytes)
        cfg.history_bytes = bytes;
    if (max_subs)
        cfg.max_subscribers = max_subs;
    assert_int_equal(wk_chan_configure(&cfg, err, sizeof err), 0);
}

static void
s_configure_defaults(void)
{
    s_configure(NULL, UINT32_MAX, UINT64_MAX, 0, 0);
}

static wk_runtime_t *
s_rt_new(uint64_t idle_ms)
{
    static const wk_service_t *const svcs[] = {&wk_svc_chan};
    wk_runtime_cfg_t cfg = {0, 0, idle_ms};
    wk_runtime_t *rt = wk_runtime_new(&cfg, svcs, 1, &s_out, NULL);
    assert_non_null(rt);
    s_out_clear();
    wk_runtime_tick(rt, 1000);
    return rt;
}

static int
s_setup(void **state)
{
    (void)state;
    s_configure_defaults();
    return 0;
}

static int
s_teardown(void **state)
{
    (void)state;
    s_out_clear();
    free(g_out.v);
    memset(&g_out, 0, sizeof g_out);
    s_configure_defaults();
    return 0;
}

#define RQ(...) (&(rq_t){__VA_ARGS__})

/* Subscribes (origin, conn) as user with info.sub "*"; returns the epoch. */
static void
s_sub(wk_runtime_t *rt, uint32_t origin, uint64_t conn, const char *key, const char *user,
      bool presence, uint64_t rid)
{
    s_gw(rt, origin, rid, conn, key,
         RQ(.op = "sub", .user = user, .sub = "*", .presence = presence));
    s_reply_for(rid);
}

static uint64_t
s_publish(wk_runtime_t *rt, const char *key, const char *user, uint64_t data, uint64_t rid)
{
    s_gw(rt, 0, rid, 99, key,
         RQ(.op = "pub", .user = user, .pub = "*", .has_data = true, .data = data));
    return s_uint(s_get(s_span(s_reply_for(rid)), "offset"));
}

/* --- tests ------------------------------------------------------------- */

/* Only the gateway may talk to chan: a REQ without PROTO_BK_F_GW (a client
 * calling the service by name) is refused, whatever it carries. */
static void
test_forbidden_without_gw(void **state)
{
    (void)state;
    wk_runtime_t *rt = s_rt_new(0);
    proto_buf_t b;
    proto_buf_init(&b, 0);
    s_build(&b, "room:1", RQ(.op = "pub", .user = "mallory", .trusted = true, .has_data = true));
    assert_int_equal(
        s_deliver_raw(rt, 0, 1, 5, "room:1", 0, "mallory", proto_buf_payload(&b), b.len), 0);
    assert_int_equal(
        s_deliver_raw(rt, 0, 2, 5, "room:1", PROTO_BK_F_RAW, NULL, proto_buf_payload(&b), b.len),
        0);
    assert_int_equal(s_deliver_raw(rt, 0, 0, 5, "room:1", 0, NULL, proto_buf_payload(&b), b.len),
                     0);
    s_drain(rt);
    s_expect_error(1, "forbidden");
    s_expect_error(2, "forbidden");
    assert_int_equal(g_out.n, 2); /* rid 0: nothing to answer, and no PUB */
    proto_buf_fini(&b);

    /* Not a subscription either: a later gateway pub broadcasts offset 1. */
    assert_int_equal(s_publish(rt, "room:1", "a", 7, 3), 1);
    wk_runtime_destroy(&rt);
}

/* Subscribe permission: info.sub patterns (exact or prefix*), else
 * --chan-public; nothing for an anonymous connection without either. */
static void
test_sub_permissions(void **state)
{
    (void)state;
    wk_runtime_t *rt = s_rt_new(0);
    s_gw(rt, 0, 1, 1, "room:1", RQ(.op = "sub", .user = "a", .sub = "room:1"));
    s_reply_for(1);
    s_gw(rt, 0, 2, 2, "room:2", RQ(.op = "sub", .user = "a", .sub = "lobby,room:*"));
    s_reply_for(2);
    s_gw(rt, 0, 3, 3, "room", RQ(.op = "sub", .user = "a", .sub = "room:*"));
    s_expect_error(3, "forbidden");
    s_gw(rt, 0, 4, 4, "room:10", RQ(.op = "sub", .user = "a", .sub = "room:1"));
    s_expect_error(4, "forbidden");
    s_gw(rt, 0, 5, 5, "room:1", RQ(.op = "sub", .user = "a")); /* info nil */
    s_expect_error(5, "forbidden");
    s_gw(rt, 0, 6, 6, "room:1", RQ(.op = "sub", .user = "a", .pub = "*")); /* pub only */
    s_expect_error(6, "forbidden");
    s_gw(rt, 0, 7, 7, "x", RQ(.op = "sub", .user = "", .sub = "*"));
    s_reply_for(7);

    /* Odd info shapes deny, never crash: not a map, sub not an array,
     * non-string patterns (skipped, the string after them still counts). */
    static const uint8_t info_str[] = {
        0x84, 0xa2, 'o', 'p', 0xa3, 's', 'u',  'b', 0xa7, 'c', 'h',  'a', 'n', 'n', 'e', 'l',  0xa1,
        'q',  0xa4, 'i', 'n', 'f',  'o', 0xa3, 's', 'u',  'b', 0xa4, 'u', 's', 'e', 'r', 0xa1, 'u'};
    static const uint8_t info_sub_str[] = {0x83, 0xa2, 'o',  'p', 0xa3, 's',  'u', 'b',  0xa4,
                                           'i',  'n',  'f',  'o', 0x81, 0xa3, 's', 'u',  'b',
                                           0xa1, 'q',  0xa4, 'u', 's',  'e',  'r', 0xa1, 'u'};
    static const uint8_t info_mixed[] = {
        0x83, 0xa2, 'o',  'p',  0xa3, 's',  'u',  'b',  0xa4, 'i',  'n',
        'f',  'o',  0x82, 0x01, 0x02,                                    /* a non-string key */
        0xa3, 's',  'u',  'b',  0x93, 0x05, 0x91, 0xa1, 'q',  0xa1, 'q', /* [5, ["q"], "q"] */
        0xa4, 'u',  's',  'e',  'r',  0xa1, 'u'};
    assert_int_equal(s_deliver_raw(rt, 0, 8, 8, "q", PROTO_BK_F_GW, "u", info_str, sizeof info_str),
                     0);
    assert_int_equal(
        s_deliver_raw(rt, 0, 9, 9, "q", PROTO_BK_F_GW, "u", info_sub_str, sizeof info_sub_str), 0);
    assert_int_equal(
        s_deliver_raw(rt, 0, 10, 10, "q", PROTO_BK_F_GW, "u", info_mixed, sizeof info_mixed), 0);
    s_drain(rt);
    s_expect_error(8, "forbidden");
    s_expect_error(9, "forbidden");
    s_reply_for(10);
    wk_runtime_destroy(&rt);

    /* --chan-public lets anyone in, anonymous connections included, and
     * lets them publish; other channels stay closed. */
    s_configure("news:*, lobby", UINT32_MAX, UINT64_MAX, 0, 0);
    rt = s_rt_new(0);
    s_gw(rt, 0, 11, 1, "news:today", RQ(.op = "sub", .user = ""));
    s_reply_for(11);
    s_gw(rt, 0, 12, 2, "lobby", RQ(.op = "sub", .user = ""));
    s_reply_for(12);
    s_gw(rt, 0, 13, 3, "lobby2", RQ(.op = "sub", .user = ""));
    s_expect_error(13, "forbidden");
    s_gw(rt, 0, 14, 3, "news", RQ(.op = "sub", .user = ""));
    s_expect_error(14, "forbidden");
    s_gw(rt, 0, 15, 1, "news:today", RQ(.op = "pub", .user = "", .has_data = true, .data = 1));
    assert_int_equal(s_uint(s_get(s_span(s_reply_for(15)), "offset")), 1);
    wk_runtime_destroy(&rt);
}

/* Publish permission: info.pub, --chan-public, or trusted (the gateway's
 * operator/backend publications). info.sub does not let one publish. */
static void
test_pub_permissions(void **state)
{
    (void)state;
    wk_runtime_t *rt = s_rt_new(0);
    s_gw(rt, 0, 1, 1, "room:1", RQ(.op = "pub", .user = "a", .sub = "*", .has_data = true));
    s_expect_error(1, "forbidden");
    s_gw(rt, 0, 2, 1, "room:1", RQ(.op = "pub", .user = "a", .pub = "room:2", .has_data = true));
    s_expect_error(2, "forbidden");
    assert_int_equal(s_count(OUT_PUB), 0);
    s_gw(rt, 0, 3, 1, "room:1",
         RQ(.op = "pub", .user = "a", .pub = "room:*", .has_data = true, .data = 5));
    s_reply_for(3);
    s_gw(rt, 0, 4, 0, "room:1", RQ(.op = "pub", .user = "", .trusted = true, .has_data = true));
    const out_rec_t *r = s_reply_for(4);
    assert_int_equal(s_uint(s_get(s_span(r), "offset")), 2);
    assert_int_equal(s_count(OUT_PUB), 2);
    assert_string_equal(s_pub(1)->user, ""); /* a backend publication: no user */
    wk_runtime_destroy(&rt);
}

/* Offsets 1, 2, 3 in order; each publication is ONE broadcast whatever
 * the number of subscribers and gateways, with the right fields; the
 * reply carries the offset and the epoch the subscribers were given. */
static void
test_pub_sequence(void **state)
{
    (void)state;
    wk_runtime_t *rt = s_rt_new(0);
    char epoch[16], e2[16];
    for (uint64_t c = 1; c <= 50; c++)
        s_sub(rt, (uint32_t)(c % 3), c, "room:1", c % 2 ? "alice" : "bob", false, 100 + c);
    s_str(s_get(s_span(s_reply_for(101)), "epoch"), epoch, sizeof epoch);
    assert_int_equal(strlen(epoch), 8);
    assert_int_equal(strspn(epoch, "0123456789abcdef"), 8);
    assert_int_equal(s_uint(s_get(s_span(s_reply_for(101)), "offset")), 0);
    s_out_clear();

    for (uint64_t i = 1; i <= 3; i++) {
        s_gw(rt, i % 2, i, 7, "room:1",
             RQ(.op = "pub", .user = "carol", .pub = "room:*", .has_data = true, .data = 40 + i));
        proto_span_t rep = s_span(s_reply_for(i));
        assert_int_equal(s_map_len(rep), 2);
        assert_int_equal(s_uint(s_get(rep, "offset")), i);
        assert_string_equal(s_str(s_get(rep, "epoch"), e2, sizeof e2), epoch);
    }
    assert_int_equal(s_count(OUT_PUB), 3);
    for (size_t i = 0; i < 3; i++) {
        const out_rec_t *p = s_pub(i);
        assert_string_equal(p->channel, "room:1");
        assert_int_equal(p->pub_kind, PROTO_BK_PUB_MSG);
        assert_int_equal(p->offset, i + 1);
        assert_string_equal(p->epoch, epoch);
        assert_string_equal(p->user, "carol");
        assert_int_equal(p->len, 1);
        assert_int_equal(p->data[0], 41 + i);
    }
    /* A publication without data publishes nil. */
    s_gw(rt, 0, 4, 7, "room:1", RQ(.op = "pub", .user = "carol", .pub = "*"));
    assert_int_equal(s_pub(3)->offset, 4);
    assert_int_equal(s_pub(3)->data[0], 0xc0);
    /* Another channel counts on its own, with its own epoch. */
    s_gw(rt, 0, 5, 7, "room:2", RQ(.op = "pub", .user = "carol", .pub = "*", .has_data = true));
    assert_int_equal(s_uint(s_get(s_span(s_reply_for(5)), "offset")), 1);
    wk_runtime_destroy(&rt);
}

/* JOIN on a user's first connection, none on the next; LEAVE only when the
 * last one leaves; never for anonymous connections. */
static void
test_join_leave(void **state)
{
    (void)state;
    wk_runtime_t *rt = s_rt_new(0);
    s_sub(rt, 0, 1, "room:1", "alice", true, 1);
    assert_int_equal(s_count(OUT_PUB), 1);
    const out_rec_t *p = s_pub(0);
    assert_int_equal(p->pub_kind, PROTO_BK_PUB_JOIN);
    assert_string_equal(p->user, "alice");
    assert_string_equal(p->channel, "room:1");
    assert_int_equal(p->len, 1);
    assert_int_equal(p->data[0], 0xc0);
    /* The reply goes out before the JOIN (same link, in order). */
    assert_int_equal(g_out.v[0].kind, OUT_REPLY);

    s_out_clear();
    s_sub(rt, 1, 1, "room:1", "alice", false, 2); /* same conn id, other gateway */
    s_sub(rt, 0, 2, "room:1", "", true, 3);
    s_sub(rt, 0, 3, "room:1", "", false, 4);
    assert_int_equal(s_count(OUT_PUB), 0);
    s_sub(rt, 0, 4, "room:1", "bob", false, 5);
    assert_int_equal(s_count(OUT_PUB), 1);
    assert_string_equal(s_pub(0)->user, "bob");
    /* Subscribing again from the same connection: no second JOIN. */
    s_sub(rt, 0, 4, "room:1", "bob", true, 6);
    assert_int_equal(s_count(OUT_PUB), 1);

    s_out_clear();
    s_gw(rt, 0, 0, 1, "room:1", RQ(.op = "leave")); /* alice's first */
    assert_int_equal(g_out.n, 0);
    s_gw(rt, 0, 0, 2, "room:1", RQ(.op = "leave"));  /* anonymous */
    s_gw(rt, 0, 0, 77, "room:1", RQ(.op = "leave")); /* unknown: ignored */
    assert_int_equal(g_out.n, 0);
    s_gw(rt, 1, 7, 1, "room:1", RQ(.op = "leave")); /* alice's last, with a rid */
    assert_int_equal(s_reply_for(7)->len, 1);
    assert_int_equal(s_reply_for(7)->data[0], 0xc0);
    assert_int_equal(s_count(OUT_PUB), 1);
    assert_int_equal(s_pub(0)->pub_kind, PROTO_BK_PUB_LEAVE);
    assert_string_equal(s_pub(0)->user, "alice");
    s_gw(rt, 1, 0, 1, "room:1", RQ(.op = "leave")); /* twice: nothing more */
    assert_int_equal(s_count(OUT_PUB), 1);

    /* The same (gateway, conn) subscribing as another user (a gateway that
     * restarted and reuses ids, or a re-authenticated connection): the old
     * user leaves, the new one joins. */
    s_out_clear();
    s_sub(rt, 0, 4, "room:1", "carol", true, 8);
    assert_int_equal(s_count(OUT_PUB), 2);
    assert_int_equal(s_pub(0)->pub_kind, PROTO_BK_PUB_LEAVE);
    assert_string_equal(s_pub(0)->user, "bob");
    assert_int_equal(s_pub(1)->pub_kind, PROTO_BK_PUB_JOIN);
    assert_string_equal(s_pub(1)->user, "carol");
    s_gw(rt, 0, 9, 1, "room:1", RQ(.op = "presence", .sub = "*"));
    proto_span_t users = s_get(s_span(s_reply_for(9)), "users");
    assert_int_equal(s_map_len(users), 1);
    assert_int_equal(s_uint(s_get(users, "carol")), 1);
    wk_runtime_destroy(&rt);
}

/* JOIN/LEAVE are only broadcast while some subscriber asked for presence:
 * without one no gateway would deliver them. */
static void
test_presence_events_need_a_listener(void **state)
{
    (void)state;
    wk_runtime_t *rt = s_rt_new(0);
    s_sub(rt, 0, 1, "c", "alice", false, 1);
    s_sub(rt, 0, 2, "c", "bob", false, 2);
    s_gw(rt, 0, 0, 1, "c", RQ(.op = "leave"));
    assert_int_equal(s_count(OUT_PUB), 0);
    s_sub(rt, 0, 3, "c", "carol", true, 3); /* carol listens: her own JOIN goes out */
    assert_int_equal(s_count(OUT_PUB), 1);
    s_sub(rt, 0, 4, "c", "dave", false, 4);
    assert_int_equal(s_count(OUT_PUB), 2);
    assert_string_equal(s_pub(1)->user, "dave");
    s_sub(rt, 0, 3, "c", "carol", false, 5); /* stops listening */
    s_gw(rt, 0, 0, 4, "c", RQ(.op = "leave"));
    assert_int_equal(s_count(OUT_PUB), 2);
    wk_runtime_destroy(&rt);
}

/* Presence: connections per user, anonymous ones only counted; it needs
 * subscribe permission. */
static void
test_presence(void **state)
{
    (void)state;
    wk_runtime_t *rt = s_rt_new(0);
    s_sub(rt, 0, 1, "room:1", "alice", false, 1);
    s_sub(rt, 1, 1, "room:1", "alice", false, 2);
    s_sub(rt, 0, 2, "room:1", "bob", false, 3);
    s_sub(rt, 0, 3, "room:1", "", false, 4);
    s_sub(rt, 0, 4, "room:1", "", false, 5);
    s_sub(rt, 0, 5, "room:2", "zed", false, 6);
    s_gw(rt, 0, 0, 4, "room:1", RQ(.op = "leave"));

    s_gw(rt, 0, 7, 9, "room:1", RQ(.op = "presence", .user = "x", .sub = "room:*"));
    proto_span_t rep = s_span(s_reply_for(7));
    assert_int_equal(s_map_len(rep), 2);
    proto_span_t users = s_get(rep, "users");
    assert_int_equal(s_map_len(users), 2);
    assert_int_equal(s_uint(s_get(users, "alice")), 2);
    assert_int_equal(s_uint(s_get(users, "bob")), 1);
    assert_int_equal(s_uint(s_get(rep, "anonymous")), 1);

    s_gw(rt, 0, 8, 9, "room:1", RQ(.op = "presence", .user = "x", .pub = "*"));
    s_expect_error(8, "forbidden");
    /* A channel nobody subscribed to. */
    s_gw(rt, 0, 9, 9, "empty", RQ(.op = "presence", .sub = "*"));
    rep = s_span(s_reply_for(9));
    assert_int_equal(s_map_len(s_get(rep, "users")), 0);
    assert_int_equal(s_uint(s_get(rep, "anonymous")), 0);
    wk_runtime_destroy(&rt);
}

/* History: the last min(limit, retained) publications in order, bounded by
 * --chan-history; 0 or no limit: all retained. */
static void
test_history_limit(void **state)
{
    (void)state;
    s_configure(NULL, 3, UINT64_MAX, 0, 0);
    wk_runtime_t *rt = s_rt_new(0);
    for (uint64_t i = 1; i <= 5; i++)
        assert_int_equal(s_publish(rt, "h", i % 2 ? "ann" : "ben", 100 + i, i), i);
    pub_t pubs[8];
    char epoch[16];

    s_gw(rt, 0, 10, 1, "h", RQ(.op = "history", .sub = "*", .limit = 2));
    proto_span_t rep = s_span(s_reply_for(10));
    assert_int_equal(s_map_len(rep), 3);
    assert_int_equal(s_uint(s_get(rep, "offset")), 5);
    assert_int_equal(strlen(s_str(s_get(rep, "epoch"), epoch, sizeof epoch)), 8);
    assert_int_equal(s_pubs(rep, pubs, 8), 2);
    assert_int_equal(pubs[0].offset, 4);
    assert_int_equal(pubs[0].data, 104);
    assert_string_equal(pubs[0].user, "ben");
    assert_int_equal(pubs[1].offset, 5);
    assert_int_equal(pubs[1].data, 105);
    assert_string_equal(pubs[1].user, "ann");

    s_gw(rt, 0, 11, 1, "h", RQ(.op = "history", .sub = "*"));
    assert_int_equal(s_pubs(s_span(s_reply_for(11)), pubs, 8), 3);
    assert_int_equal(pubs[0].offset, 3);
    assert_int_equal(pubs[2].offset, 5);
    s_gw(rt, 0, 12, 1, "h", RQ(.op = "history", .sub = "*", .limit = 1000));
    assert_int_equal(s_pubs(s_span(s_reply_for(12)), pubs, 8), 3);
    s_gw(rt, 0, 13, 1, "h", RQ(.op = "history", .pub = "*"));
    s_expect_error(13, "forbidden");
    wk_runtime_destroy(&rt);

    /* --chan-history 0: nothing kept, offsets still count. */
    s_configure(NULL, 0, UINT64_MAX, 0, 0);
    rt = s_rt_new(0);
    assert_int_equal(s_publish(rt, "h", "a", 1, 1), 1);
    assert_int_equal(s_publish(rt, "h", "a", 2, 2), 2);
    s_gw(rt, 0, 3, 1, "h", RQ(.op = "history", .sub = "*"));
    rep = s_span(s_reply_for(3));
    assert_int_equal(s_pubs(rep, pubs, 8), 0);
    assert_int_equal(s_uint(s_get(rep, "offset")), 2);
    wk_runtime_destroy(&rt);
}

/* Recovery: with the current epoch and an offset whose successors are all
 * retained, exactly the missed publications, in order; otherwise
 * recovered false and no publications. */
static void
test_recovery(void **state)
{
    (void)state;
    wk_runtime_t *rt = s_rt_new(1000);
    char epoch[16], e[16];
    pub_t pubs[8];
    s_sub(rt, 0, 1, "r", "alice", false, 1);
    proto_span_t rep = s_span(s_reply_for(1));
    assert_int_equal(s_map_len(rep), 4);
    s_str(s_get(rep, "epoch"), epoch, sizeof epoch);
    assert_false(s_bool(s_get(rep, "recovered")));
    assert_int_equal(s_pubs(rep, pubs, 8), 0);
    for (uint64_t i = 1; i <= 5; i++)
        s_publish(rt, "r", "bob", 200 + i, 10 + i);

    /* Connection 2 saw up to 2: gets 3, 4, 5. */
    s_gw(rt, 0, 20, 2, "r",
         RQ(.op = "sub", .user = "carol", .sub = "r", .epoch = epoch, .offset = 2));
    rep = s_span(s_reply_for(20));
    assert_true(s_bool(s_get(rep, "recovered")));
    assert_int_equal(s_uint(s_get(rep, "offset")), 5);
    assert_string_equal(s_str(s_get(rep, "epoch"), e, sizeof e), epoch);
    assert_int_equal(s_pubs(rep, pubs, 8), 3);
    for (int i = 0; i < 3; i++) {
        assert_int_equal(pubs[i].offset, 3 + i);
        assert_int_equal(pubs[i].data, 203 + i);
        assert_string_equal(pubs[i].user, "bob");
    }
    /* Up to date: recovered, nothing missed. From 0: everything. */
    s_gw(rt, 0, 21, 3, "r", RQ(.op = "sub", .sub = "r", .epoch = epoch, .offset = 5));
    rep = s_span(s_reply_for(21));
    assert_true(s_bool(s_get(rep, "recovered")));
    assert_int_equal(s_pubs(rep, pubs, 8), 0);
    s_gw(rt, 0, 22, 4, "r", RQ(.op = "sub", .sub = "r", .epoch = epoch, .offset = 0));
    rep = s_span(s_reply_for(22));
    assert_true(s_bool(s_get(rep, "recovered")));
    assert_int_equal(s_pubs(rep, pubs, 8), 5);
    assert_int_equal(pubs[0].offset, 1);
    /* From the future, or another epoch: refused. */
    s_gw(rt, 0, 23, 5, "r", RQ(.op = "sub", .sub = "r", .epoch = epoch, .offset = 6));
    rep = s_span(s_reply_for(23));
    assert_false(s_bool(s_get(rep, "recovered")));
    assert_int_equal(s_pubs(rep, pubs, 8), 0);
    s_gw(rt, 0, 24, 6, "r", RQ(.op = "sub", .sub = "r", .epoch = "00000000", .offset = 2));
    rep = s_span(s_reply_for(24));
    assert_false(s_bool(s_get(rep, "recovered")));
    assert_int_equal(s_pubs(rep, pubs, 8), 0);
    assert_int_equal(s_uint(s_get(rep, "offset")), 5);

    /* Everyone leaves; the channel is passivated; the next incarnation
     * has another epoch and refuses the old one. */
    for (uint64_t c = 1; c <= 6; c++)
        s_gw(rt, 0, 0, c, "r", RQ(.op = "leave"));
    wk_runtime_tick(rt, 1000000);
    assert_int_equal(s_stats(rt).live_actors, 0);
    s_gw(rt, 0, 30, 1, "r", RQ(.op = "sub", .sub = "r", .epoch = epoch, .offset = 5));
    rep = s_span(s_reply_for(30));
    assert_false(s_bool(s_get(rep, "recovered")));
    assert_int_equal(s_uint(s_get(rep, "offset")), 0);
    assert_string_not_equal(s_str(s_get(rep, "epoch"), e, sizeof e), epoch);
    assert_int_equal(s_pubs(rep, pubs, 8), 0);
    wk_runtime_destroy(&rt);
}

/* Too far behind: the history overflowed past the client's offset. */
static void
test_recovery_too_far_behind(void **state)
{
    (void)state;
    s_configure(NULL, 3, UINT64_MAX, 0, 0);
    wk_runtime_t *rt = s_rt_new(0);
    char epoch[16];
    pub_t pubs[8];
    s_sub(rt, 0, 1, "r", "a", false, 1);
    s_str(s_get(s_span(s_reply_for(1)), "epoch"), epoch, sizeof epoch);
    for (uint64_t i = 1; i <= 6; i++)
        s_publish(rt, "r", "a", i, 10 + i);
    /* Retained: 4, 5, 6. From 2 would need 3. */
    s_gw(rt, 0, 2, 2, "r", RQ(.op = "sub", .sub = "*", .epoch = epoch, .offset = 2));
    proto_span_t rep = s_span(s_reply_for(2));
    assert_false(s_bool(s_get(rep, "recovered")));
    assert_int_equal(s_pubs(rep, pubs, 8), 0);
    s_gw(rt, 0, 3, 3, "r", RQ(.op = "sub", .sub = "*", .epoch = epoch, .offset = 3));
    rep = s_span(s_reply_for(3));
    assert_true(s_bool(s_get(rep, "recovered")));
    assert_int_equal(s_pubs(rep, pubs, 8), 3);
    assert_int_equal(pubs[0].offset, 4);
    assert_int_equal(pubs[2].offset, 6);
    wk_runtime_destroy(&rt);
}

/* The TTL, on the runtime's clock: older publications disappear from
 * history and from recovery. */
static void
test_history_ttl(void **state)
{
    (void)state;
    s_configure(NULL, UINT32_MAX, 10, 0, 0);
    wk_runtime_t *rt = s_rt_new(0);
    char epoch[16];
    pub_t pubs[8];
    s_sub(rt, 0, 1, "t", "a", false, 1); /* pinned: the clock can run */
    s_str(s_get(s_span(s_reply_for(1)), "epoch"), epoch, sizeof epoch);
    wk_runtime_tick(rt, 2000);
    s_publish(rt, "t", "a", 1, 2);
    wk_runtime_tick(rt, 6000);
    s_publish(rt, "t", "a", 2, 3);

    wk_runtime_tick(rt, 12000); /* the first is exactly 10 s old: kept */
    s_gw(rt, 0, 4, 1, "t", RQ(.op = "history", .sub = "*"));
    assert_int_equal(s_pubs(s_span(s_reply_for(4)), pubs, 8), 2);
    wk_runtime_tick(rt, 12001);
    s_gw(rt, 0, 5, 1, "t", RQ(.op = "history", .sub = "*"));
    proto_span_t rep = s_span(s_reply_for(5));
    assert_int_equal(s_pubs(rep, pubs, 8), 1);
    assert_int_equal(pubs[0].offset, 2);
    assert_int_equal(s_uint(s_get(rep, "offset")), 2);
    s_gw(rt, 0, 6, 2, "t", RQ(.op = "sub", .sub = "*", .epoch = epoch, .offset = 0));
    assert_false(s_bool(s_get(s_span(s_reply_for(6)), "recovered")));
    s_gw(rt, 0, 7, 3, "t", RQ(.op = "sub", .sub = "*", .epoch = epoch, .offset = 1));
    rep = s_span(s_reply_for(7));
    assert_true(s_bool(s_get(rep, "recovered")));
    assert_int_equal(s_pubs(rep, pubs, 8), 1);
    /* Everything expired: only "up to date" recovers. */
    wk_runtime_tick(rt, 100000);
    s_gw(rt, 0, 8, 4, "t", RQ(.op = "sub", .sub = "*", .epoch = epoch, .offset = 1));
    assert_false(s_bool(s_get(s_span(s_reply_for(8)), "recovered")));
    s_gw(rt, 0, 9, 5, "t", RQ(.op = "sub", .sub = "*", .epoch = epoch, .offset = 2));
    assert_true(s_bool(s_get(s_span(s_reply_for(9)), "recovered")));
    s_gw(rt, 0, 10, 1, "t", RQ(.op = "history", .sub = "*"));
    assert_int_equal(s_pubs(s_span(s_reply_for(10)), pubs, 8), 0);
    wk_runtime_destroy(&rt);
}

/* The byte bound: oldest dropped first; a publication larger than the
 * whole bound is not kept, and nothing before it stays recoverable. */
static void
test_history_bytes(void **state)
{
    (void)state;
    s_configure(NULL, UINT32_MAX, UINT64_MAX, 100, 0);
    wk_runtime_t *rt = s_rt_new(0);
    char epoch[16];
    pub_t pubs[8];
    s_sub(rt, 0, 1, "b", "a", false, 1);
    s_str(s_get(s_span(s_reply_for(1)), "epoch"), epoch, sizeof epoch);
    /* bin 40: 42 bytes of msgpack each; two fit in 100, three do not */
    for (uint64_t i = 1; i <= 3; i++) {
        s_gw(rt, 0, 10 + i, 1, "b", RQ(.op = "pub", .user = "a", .pub = "*", .data_bin = 40));
        s_reply_for(10 + i);
    }
    s_gw(rt, 0, 20, 1, "b", RQ(.op = "history", .sub = "*"));
    assert_int_equal(s_pubs(s_span(s_reply_for(20)), pubs, 8), 2);
    assert_int_equal(pubs[0].offset, 2);
    assert_int_equal(pubs[1].offset, 3);
    assert_int_equal(s_pub(2)->len, 42); /* broadcast whole all the same */

    s_gw(rt, 0, 21, 1, "b", RQ(.op = "pub", .user = "a", .pub = "*", .data_bin = 150));
    assert_int_equal(s_uint(s_get(s_span(s_reply_for(21)), "offset")), 4);
    assert_int_equal(s_pub(3)->len, 152);
    s_gw(rt, 0, 22, 1, "b", RQ(.op = "history", .sub = "*"));
    assert_int_equal(s_pubs(s_span(s_reply_for(22)), pubs, 8), 0);
    s_gw(rt, 0, 23, 2, "b", RQ(.op = "sub", .sub = "*", .epoch = epoch, .offset = 3));
    assert_false(s_bool(s_get(s_span(s_reply_for(23)), "recovered")));
    s_gw(rt, 0, 24, 3, "b", RQ(.op = "sub", .sub = "*", .epoch = epoch, .offset = 4));
    assert_true(s_bool(s_get(s_span(s_reply_for(24)), "recovered")));
    /* Small ones are kept again after it. */
    s_publish(rt, "b", "a", 9, 25);
    s_gw(rt, 0, 26, 1, "b", RQ(.op = "history", .sub = "*"));
    assert_int_equal(s_pubs(s_span(s_reply_for(26)), pubs, 8), 1);
    assert_int_equal(pubs[0].offset, 5);
    wk_runtime_destroy(&rt);
}

/* A channel with subscribers is pinned: idle far past idle_ms, it keeps
 * its state. After the last leave it is passivated like any idle actor. */
static void
test_pinning(void **state)
{
    (void)state;
    wk_runtime_t *rt = s_rt_new(1000);
    char epoch[16], e[16];
    s_sub(rt, 0, 1, "p", "a", false, 1);
    s_sub(rt, 1, 2, "p", "b", false, 2);
    s_str(s_get(s_span(s_reply_for(1)), "epoch"), epoch, sizeof epoch);
    s_publish(rt, "p", "a", 1, 3);
    assert_int_equal(s_stats(rt).pinned, 1);
    assert_int_equal(wk_runtime_next_deadline(rt), UINT64_MAX);
    wk_runtime_tick(rt, 10000000);
    assert_int_equal(s_stats(rt).live_actors, 1);
    assert_int_equal(s_stats(rt).passivated, 0);
    /* Same incarnation: offset continues, epoch unchanged. */
    assert_int_equal(s_publish(rt, "p", "a", 2, 4), 2);
    assert_string_equal(s_str(s_get(s_span(s_reply_for(4)), "epoch"), e, sizeof e), epoch);

    /* A channel nobody subscribes to is not pinned. */
    s_publish(rt, "other", "a", 1, 5);
    assert_int_equal(s_stats(rt).pinned, 1);
    wk_runtime_tick(rt, 10001000);
    assert_int_equal(s_stats(rt).live_actors, 1);

    s_gw(rt, 0, 0, 1, "p", RQ(.op = "leave"));
    wk_runtime_tick(rt, 20000000);
    assert_int_equal(s_stats(rt).live_actors, 1); /* b still there */
    s_gw(rt, 1, 0, 2, "p", RQ(.op = "leave"));
    assert_int_equal(s_stats(rt).pinned, 0);
    wk_runtime_tick(rt, 20000999);
    assert_int_equal(s_stats(rt).live_actors, 1);
    wk_runtime_tick(rt, 20001000);
    assert_int_equal(s_stats(rt).live_actors, 0);
    assert_int_equal(s_stats(rt).passivated, 2);
    wk_runtime_destroy(&rt);
}

/* --chan-max-subscribers: a new connection beyond it is `overloaded`; one
 * already subscribed may subscribe again, and room frees up on leave. */
static void
test_max_subscribers(void **state)
{
    (void)state;
    s_configure(NULL, UINT32_MAX, UINT64_MAX, 0, 2);
    wk_runtime_t *rt = s_rt_new(0);
    s_sub(rt, 0, 1, "m", "a", false, 1);
    s_sub(rt, 1, 1, "m", "b", false, 2);
    s_gw(rt, 0, 3, 2, "m", RQ(.op = "sub", .user = "c", .sub = "*"));
    s_expect_error(3, "overloaded");
    s_sub(rt, 0, 1, "m", "a", true, 4);
    s_gw(rt, 1, 0, 1, "m", RQ(.op = "leave"));
    s_sub(rt, 0, 2, "m", "c", false, 5);
    s_gw(rt, 0, 6, 9, "m", RQ(.op = "presence", .sub = "*"));
    proto_span_t users = s_get(s_span(s_reply_for(6)), "users");
    assert_int_equal(s_map_len(users), 2);
    assert_int_equal(s_uint(s_get(users, "a")), 1);
    assert_int_equal(s_uint(s_get(users, "c")), 1);
    wk_runtime_destroy(&rt);
}

/* Thousands of subscribers through table growth and shrinking: every
 * (gateway, conn) finds its own entry, counts stay exact. */
static void
test_many_subscribers(void **state)
{
    (void)state;
    enum { N = 3000 };
    wk_runtime_t *rt = s_rt_new(0);
    char user[16];
    uint64_t rid = 1;
    for (uint64_t c = 0; c < N; c++) {
        snprintf(user, sizeof user, "u%llu", (unsigned long long)(c % 1000));
        s_gw(rt, (uint32_t)(c % 4), rid++, c / 4, "big", RQ(.op = "sub", .user = user, .sub = "*"));
    }
    s_out_clear();
    s_gw(rt, 0, rid, 0, "big", RQ(.op = "presence", .sub = "*"));
    proto_span_t users = s_get(s_span(s_reply_for(rid++)), "users");
    assert_int_equal(s_map_len(users), 1000);
    assert_int_equal(s_uint(s_get(users, "u999")), 3);
    /* All but the last 10 leave, in another order than they came. */
    for (uint64_t k = 0; k < N - 10; k++) {
        uint64_t c = (k * 7919) % (N - 10);
        s_gw(rt, (uint32_t)(c % 4), 0, c / 4, "big", RQ(.op = "leave"));
    }
    s_out_clear();
    s_gw(rt, 0, rid, 0, "big", RQ(.op = "presence", .sub = "*"));
    users = s_get(s_span(s_reply_for(rid++)), "users");
    assert_int_equal(s_map_len(users), 10);
    for (uint64_t c = N - 10; c < N; c++) {
        snprintf(user, sizeof user, "u%llu", (unsigned long long)(c % 1000));
        assert_int_equal(s_uint(s_get(users, user)), 1);
    }
    assert_int_equal(s_stats(rt).pinned, 1);
    wk_runtime_destroy(&rt); /* ASan: everything freed at passivation */
}

/* Malformed input: bad_request (or forbidden without the flag), never a
 * crash, always exactly one answer, and no PUB. */
static void
test_malformed(void **state)
{
    (void)state;
    wk_runtime_t *rt = s_rt_new(0);
    static const struct {
        const char *why;
        uint8_t b[48];
        size_t len;
    } cases[] = {
        {"empty", {0}, 0},
        {"nil", {0xc0}, 1},
        {"array", {0x91, 0x01}, 2},
        {"truncated map", {0x82, 0xa2, 'o', 'p'}, 4},
        {"huge map count", {0xdf, 0xff, 0xff, 0xff, 0xff}, 5},
        {"huge str length", {0x81, 0xdb, 0x7f, 0xff, 0xff, 0xff, 'o'}, 7},
        {"no op", {0x81, 0xa1, 'x', 0x01}, 4},
        {"op not a str", {0x81, 0xa2, 'o', 'p', 0x01}, 5},
        {"unknown op", {0x81, 0xa2, 'o', 'p', 0xa3, 'z', 'a', 'p'}, 8},
        {"trailing bytes", {0x81, 0xa2, 'o', 'p', 0xa3, 's', 'u', 'b', 0xc0}, 9},
        {"presence not a bool",
         {0x82, 0xa2, 'o', 'p', 0xa3, 's', 'u', 'b', 0xa8, 'p', 'r', 'e', 's', 'e', 'n', 'c', 'e',
          0x01},
         18},
        {"offset negative",
         {0x82, 0xa2, 'o', 'p', 0xa3, 's', 'u', 'b', 0xa6, 'o', 'f', 'f', 's', 'e', 't', 0xff},
         16},
        {"user bad utf-8",
         {0x82, 0xa2, 'o', 'p', 0xa3, 'p', 'u', 'b', 0xa4, 'u', 's', 'e', 'r', 0xa2, 0xc3, 0x28},
         16},
        {"channel mismatch",
         {0x82, 0xa2, 'o', 'p', 0xa3, 'p', 'u', 'b', 0xa7, 'c', 'h', 'a', 'n', 'n', 'e', 'l', 0xa1,
          'z'},
         18},
        {"reserved byte in data",
         {0x82, 0xa2, 'o', 'p', 0xa3, 'p', 'u', 'b', 0xa4, 'd', 'a', 't', 'a', 0xc1},
         14},
    };
    uint64_t rid = 1;
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++, rid++) {
        assert_int_equal(
            s_deliver_raw(rt, 0, rid, 1, "k", PROTO_BK_F_GW, NULL, cases[i].b, cases[i].len), 0);
        s_drain(rt);
        const out_rec_t *r = s_out_for(rid);
        if (r->kind != OUT_ERROR || strcmp(r->code, "bad_request") != 0)
            fail_msg("case '%s': got %s", cases[i].why, r->kind == OUT_ERROR ? r->code : "reply");
    }

    /* data nested deeper than MPK_MAX_DEPTH */
    uint8_t deep[64];
    size_t n = 0;
    static const uint8_t head[] = {0x82, 0xa2, 'o', 'p', 0xa3, 'p', 'u',
                                   'b',  0xa4, 'd', 'a', 't',  'a'};
    memcpy(deep, head, sizeof head);
    n = sizeof head;
    for (int d = 0; d < MPK_MAX_DEPTH + 2; d++)
        deep[n++] = 0x91;
    deep[n++] = 0x01;
    assert_int_equal(s_deliver_raw(rt, 0, rid, 1, "k", PROTO_BK_F_GW, NULL, deep, n), 0);
    s_drain(rt);
    s_expect_error(rid++, "bad_request");

    /* A user over PROTO_BK_USER_MAX would make PUB headers gateways drop. */
    char long_user[PROTO_BK_USER_MAX + 2];
    memset(long_user, 'u', sizeof long_user - 1);
    long_user[sizeof long_user - 1] = '\0';
    s_gw(rt, 0, rid, 1, "k", RQ(.op = "pub", .user = long_user, .pub = "*"));
    s_expect_error(rid++, "bad_request");

    /* A key that cannot be a channel (over 255 bytes). */
    char long_key[PROTO_KEY_MAX + 1];
    memset(long_key, 'k', PROTO_KEY_MAX);
    long_key[PROTO_KEY_MAX] = '\0';
    s_gw(rt, 0, rid, 1, long_key, RQ(.op = "pub", .user = "a", .pub = "*"));
    s_expect_error(rid++, "bad_request");
    assert_int_equal(s_count(OUT_PUB), 0);

    /* Every truncation of a valid request: one answer each, bad_request. */
    proto_buf_t b;
    proto_buf_init(&b, 0);
    s_build(&b, "k",
            RQ(.op = "sub", .user = "alice", .sub = "a,b*,*", .presence = true, .epoch = "abcdef01",
               .offset = 300));
    for (size_t cut = 0; cut < b.len; cut++, rid++) {
        assert_int_equal(
            s_deliver_raw(rt, 0, rid, 1, "k", PROTO_BK_F_GW, NULL, proto_buf_payload(&b), cut), 0);
        s_drain(rt);
        s_expect_error(rid, "bad_request");
    }
    /* Random bytes after a valid start: answered, never a crash. */
    uint64_t seed = 42;
    uint8_t junk[64];
    for (int round = 0; round < 2000; round++, rid++) {
        size_t len = 1 + (size_t)(seed % sizeof junk);
        for (size_t i = 0; i < len; i++) {
            seed = seed * 6364136223846793005ULL + 1442695040888963407ULL;
            junk[i] = (uint8_t)(seed >> 56);
        }
        if (round % 2)
            memcpy(junk, proto_buf_payload(&b), len < 12 ? len : 12);
        assert_int_equal(s_deliver_raw(rt, (uint32_t)(round % 3), rid, (uint64_t)round, "k",
                                       PROTO_BK_F_GW, NULL, junk, len),
                         0);
        s_drain(rt);
        s_out_for(rid);
    }
    proto_buf_fini(&b);
    assert_int_equal(s_count(OUT_PUB), 0);
    assert_int_equal(s_stats(rt).unanswered, 0);
    wk_runtime_destroy(&rt);
}

/* Without a "user" key the REQ header's user is the subscriber's. */
static void
test_user_from_header(void **state)
{
    (void)state;
    wk_runtime_t *rt = s_rt_new(0);
    static const uint8_t sub[] = {0x83, 0xa2, 'o',  'p', 0xa3, 's', 'u',  'b',  0xa8, 'p', 'r',
                                  'e',  's',  'e',  'n', 'c',  'e', 0xc3, 0xa4, 'i',  'n', 'f',
                                  'o',  0x81, 0xa3, 's', 'u',  'b', 0x91, 0xa1, '*'};
    assert_int_equal(s_deliver_raw(rt, 0, 1, 1, "h", PROTO_BK_F_GW, "from-header", sub, sizeof sub),
                     0);
    s_drain(rt);
    s_reply_for(1);
    assert_int_equal(s_count(OUT_PUB), 1);
    assert_string_equal(s_pub(0)->user, "from-header");
    wk_runtime_destroy(&rt);
}

/* wk_chan_configure checks what main.c hands it. */
static void
test_configure(void **state)
{
    (void)state;
    char err[256];
    wk_chan_cfg_t cfg;
    wk_chan_cfg_defaults(&cfg);
    assert_int_equal(cfg.history, 100);
    assert_int_equal(cfg.history_ttl_s, 300);
    assert_int_equal(cfg.history_bytes, 1048576);
    assert_int_equal(cfg.max_subscribers, 100000);
    cfg.public_patterns = " a , b:* ,,*";
    assert_int_equal(wk_chan_configure(&cfg, err, sizeof err), 0);
    cfg.public_patterns = "a*b";
    assert_int_equal(wk_chan_configure(&cfg, err, sizeof err), -1);
    assert_non_null(strstr(err, "a*b"));
    cfg.public_patterns = "bad name";
    assert_int_equal(wk_chan_configure(&cfg, err, sizeof err), -1);
    assert_int_equal(wk_chan_patterns_check("ok,ok2:*", err, sizeof err), 0);
    assert_int_equal(wk_chan_patterns_check("**", err, sizeof err), -1);
    cfg.public_patterns = NULL;
    cfg.max_subscribers = 0;
    assert_int_equal(wk_chan_configure(&cfg, err, sizeof err), -1);
    assert_ptr_equal(wk_service_find("chan"), &wk_svc_chan);
}

/* A channel actor that moved: the old incarnation drops one gateway's
 * subscribers quietly ("drop"), the new one takes a gateway's list
 * ("rejoin") without join events; a malformed list is refused. */
static void
test_drop_and_rejoin(void **state)
{
    (void)state;
    wk_runtime_t *rt = s_rt_new(0);
    s_sub(rt, 0, 1, "room:1", "alice", true, 1);
    s_sub(rt, 1, 2, "room:1", "bob", true, 2);
    s_sub(rt, 0, 3, "room:1", "", false, 3);
    s_out_clear();

    proto_buf_t b;
    proto_buf_init(&b, 0);
    assert_int_equal(mpk_write_map(&b, 2), 0);
    assert_int_equal(mpk_write_cstr(&b, "op") || mpk_write_cstr(&b, "drop"), 0);
    assert_int_equal(mpk_write_cstr(&b, "channel") || mpk_write_cstr(&b, "room:1"), 0);
    assert_int_equal(
        s_deliver_raw(rt, 0, 0, 0, "room:1", PROTO_BK_F_GW, NULL, proto_buf_payload(&b), b.len), 0);
    s_drain(rt);
    assert_int_equal(s_count(OUT_PUB), 0); /* nobody left: they moved */
    s_gw(rt, 1, 4, 2, "room:1", RQ(.op = "presence", .sub = "*"));
    proto_span_t rep = s_span(s_reply_for(4));
    assert_int_equal(s_map_len(s_get(rep, "users")), 1);
    assert_int_equal(s_uint(s_get(s_get(rep, "users"), "bob")), 1);
    assert_int_equal(s_uint(s_get(rep, "anonymous")), 0);

    /* gateway 0's list comes back (to what stands for the new actor) */
    proto_buf_reset(&b);
    assert_int_equal(mpk_write_map(&b, 3), 0);
    assert_int_equal(mpk_write_cstr(&b, "op") || mpk_write_cstr(&b, "rejoin"), 0);
    assert_int_equal(mpk_write_cstr(&b, "channel") || mpk_write_cstr(&b, "room:1"), 0);
    assert_int_equal(mpk_write_cstr(&b, "subs") || mpk_write_array(&b, 3), 0);
    assert_int_equal(mpk_write_array(&b, 3) || mpk_write_uint(&b, 1) ||
                         mpk_write_cstr(&b, "alice") || mpk_write_bool(&b, true),
                     0);
    assert_int_equal(mpk_write_array(&b, 3) || mpk_write_uint(&b, 3) || mpk_write_cstr(&b, "") ||
                         mpk_write_bool(&b, false),
                     0);
    /* one it has already (listed twice): skipped, not counted twice */
    assert_int_equal(mpk_write_array(&b, 3) || mpk_write_uint(&b, 1) ||
                         mpk_write_cstr(&b, "alice") || mpk_write_bool(&b, true),
                     0);
    assert_int_equal(
        s_deliver_raw(rt, 0, 5, 0, "room:1", PROTO_BK_F_GW, NULL, proto_buf_payload(&b), b.len), 0);
    s_drain(rt);
    s_reply_for(5);
    assert_int_equal(s_count(OUT_PUB), 0);
    s_gw(rt, 1, 6, 2, "room:1", RQ(.op = "presence", .sub = "*"));
    rep = s_span(s_reply_for(6));
    assert_int_equal(s_map_len(s_get(rep, "users")), 2);
    assert_int_equal(s_uint(s_get(s_get(rep, "users"), "alice")), 1);
    assert_int_equal(s_uint(s_get(s_get(rep, "users"), "bob")), 1);
    assert_int_equal(s_uint(s_get(rep, "anonymous")), 1);
    /* and alice's connection gets leave events like any other: her leave */
    s_gw(rt, 0, 0, 1, "room:1", RQ(.op = "leave"));
    assert_int_equal(s_count(OUT_PUB), 1);
    assert_int_equal(s_pub(0)->pub_kind, PROTO_BK_PUB_LEAVE);

    /* a malformed list */
    proto_buf_reset(&b);
    assert_int_equal(mpk_write_map(&b, 3), 0);
    assert_int_equal(mpk_write_cstr(&b, "op") || mpk_write_cstr(&b, "rejoin"), 0);
    assert_int_equal(mpk_write_cstr(&b, "channel") || mpk_write_cstr(&b, "room:1"), 0);
    assert_int_equal(mpk_write_cstr(&b, "subs") || mpk_write_array(&b, 1) ||
                         mpk_write_array(&b, 2) || mpk_write_uint(&b, 7) || mpk_write_uint(&b, 7),
                     0);
    assert_int_equal(
        s_deliver_raw(rt, 0, 7, 0, "room:1", PROTO_BK_F_GW, NULL, proto_buf_payload(&b), b.len), 0);
    s_drain(rt);
    s_expect_error(7, "bad_request");
    proto_buf_fini(&b);
    wk_runtime_destroy(&rt);
}

/* A gateway restarted (its conn_floor rose) or left: the runtime tells
 * every started actor, and chan forgets that gateway's connections below
 * the floor, with LEAVE events for users who had no other connection, and
 * unpins once nobody is left. Connections of other gateways, and the
 * restarted gateway's new ones (at or above the floor), stay. */
static void
test_conns_gone(void **state)
{
    (void)state;
    wk_runtime_t *rt = s_rt_new(1000);
    s_sub(rt, 0, 5, "room:g", "alice", true, 1);  /* old run of gateway 0 */
    s_sub(rt, 0, 6, "room:g", "bob", false, 2);   /* old run of gateway 0 */
    s_sub(rt, 0, 100, "room:g", "bob", true, 3);  /* gateway 0's new run: hears LEAVEs */
    s_sub(rt, 1, 5, "room:g", "carol", false, 4); /* gateway 1: same ids */
    s_publish(rt, "other", "x", 1, 5);            /* started, no subscriber */
    assert_int_equal(s_stats(rt).pinned, 1);

    s_out_clear();
    assert_int_equal(wk_runtime_conns_gone(rt, 0, 100), 2); /* both started actors */
    s_drain(rt);
    /* alice's only connection went: LEAVE; bob still has conn 100 */
    assert_int_equal(s_count(OUT_PUB), 1);
    assert_int_equal(s_pub(0)->pub_kind, PROTO_BK_PUB_LEAVE);
    assert_string_equal(s_pub(0)->user, "alice");
    s_gw(rt, 0, 9, 100, "room:g", RQ(.op = "presence", .sub = "*"));
    proto_span_t users = s_get(s_span(s_reply_for(9)), "users");
    assert_int_equal(s_map_len(users), 2);
    assert_int_equal(s_uint(s_get(users, "bob")), 1);
    assert_int_equal(s_uint(s_get(users, "carol")), 1);
    assert_int_equal(s_stats(rt).pinned, 1);

    /* gateway 1 retired (UINT64_MAX), then gateway 0's new run too */
    assert_int_equal(wk_runtime_conns_gone(rt, 1, UINT64_MAX), 2);
    s_drain(rt);
    assert_int_equal(s_stats(rt).pinned, 1);
    wk_runtime_conns_gone(rt, 0, UINT64_MAX);
    s_drain(rt);
    assert_int_equal(s_stats(rt).pinned, 0);
    wk_runtime_tick(rt, 1000000);
    assert_int_equal(s_stats(rt).live_actors, 0);
    wk_runtime_destroy(&rt);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_forbidden_without_gw, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown(test_conns_gone, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown(test_sub_permissions, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown(test_pub_permissions, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown(test_pub_sequence, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown(test_join_leave, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown(test_presence_events_need_a_listener, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown(test_presence, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown(test_history_limit, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown(test_recovery, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown(test_recovery_too_far_behind, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown(test_history_ttl, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown(test_history_bytes, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown(test_pinning, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown(test_max_subscribers, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown(test_many_subscribers, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown(test_malformed, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown(test_user_from_header, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown(test_configure, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown(test_drop_and_rejoin, s_setup, s_teardown),
    };
    return cmocka_run_group_tests_name("workers.chan", tests, NULL, NULL);
}
