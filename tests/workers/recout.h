/*
 * recout.h - a wk_out_t that records every output of a runtime, for the
 * worker tests (test_actor.c, test_chan.c, test_svc_auth.c). Include it
 * once, after <cmocka.h> and the worker headers; pass &s_out to
 * wk_runtime_new(); read g_out.v[0..n); s_out_clear() between steps, and
 * free(g_out.v) at the end. g_out.fail makes every output return -1, as
 * a full queue would.
 */
#ifndef WSGATE_TEST_RECOUT_H
#define WSGATE_TEST_RECOUT_H

#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "../../protocol/backend.h"
#include "../../protocol/envelope.h"
#include "../../workers/actor.h"

typedef enum { OUT_REPLY, OUT_ERROR, OUT_SEND, OUT_CLOSE, OUT_PUB, OUT_PUBLISH } out_kind_t;

typedef struct {
    out_kind_t kind;
    uint32_t origin;
    uint64_t rid;
    uint8_t *data; /* reply data or send payload (owned) */
    size_t len;
    char code[64];
    char msg[PROTO_BK_TEXT_MAX + 1];
    uint64_t conns[8];
    size_t n_conns;
    uint32_t flags;
    char svc[PROTO_SVC_MAX + 1];
    uint64_t conn;
    uint32_t close_code;
    char channel[PROTO_BK_CHANNEL_MAX + 1]; /* PUB, PUBLISH */
    char epoch[PROTO_BK_EPOCH_MAX + 1];
    char user[PROTO_BK_USER_MAX + 1];
    uint32_t pub_kind;
    uint64_t offset;
    uint64_t ref;
} out_rec_t;

static struct {
    out_rec_t *v;
    size_t n;
    size_t cap;
    bool fail; /* every output returns -1 (a full queue) */
} g_out;

static out_rec_t *
s_rec(out_kind_t kind, uint32_t origin)
{
    if (g_out.n == g_out.cap) {
        g_out.cap = g_out.cap ? g_out.cap * 2 : 64;
        g_out.v = realloc(g_out.v, g_out.cap * sizeof *g_out.v);
        assert_non_null(g_out.v);
    }
    out_rec_t *r = &g_out.v[g_out.n++];
    memset(r, 0, sizeof *r);
    r->kind = kind;
    r->origin = origin;
    return r;
}

static void
s_copy_str(char *dst, size_t cap, proto_span_t s)
{
    assert_true(s.len < cap);
    if (s.len)
        memcpy(dst, s.ptr, s.len);
    dst[s.len] = '\0';
}

static void
s_copy_data(out_rec_t *r, const void *p, size_t len)
{
    r->data = malloc(len ? len : 1);
    assert_non_null(r->data);
    if (len)
        memcpy(r->data, p, len);
    r->len = len;
}

static int
s_out_reply(void *ctx, uint32_t origin, uint64_t rid, const void *data, size_t len)
{
    (void)ctx;
    out_rec_t *r = s_rec(OUT_REPLY, origin);
    r->rid = rid;
    s_copy_data(r, data, len);
    return g_out.fail ? -1 : 0;
}

static int
s_out_error(void *ctx, uint32_t origin, uint64_t rid, proto_span_t code, proto_span_t msg)
{
    (void)ctx;
    out_rec_t *r = s_rec(OUT_ERROR, origin);
    r->rid = rid;
    s_copy_str(r->code, sizeof r->code, code);
    s_copy_str(r->msg, sizeof r->msg, msg);
    return g_out.fail ? -1 : 0;
}

static int
s_out_send(void *ctx, uint32_t origin, const uint64_t *conns, size_t n, uint32_t flags,
           proto_span_t svc, const void *payload, size_t len)
{
    (void)ctx;
    out_rec_t *r = s_rec(OUT_SEND, origin);
    assert_true(n <= 8);
    memcpy(r->conns, conns, n * sizeof *conns);
    r->n_conns = n;
    r->flags = flags;
    s_copy_str(r->svc, sizeof r->svc, svc);
    s_copy_data(r, payload, len);
    return g_out.fail ? -1 : 0;
}

static int
s_out_close(void *ctx, uint32_t origin, uint64_t conn, uint32_t code, proto_span_t reason)
{
    (void)ctx;
    out_rec_t *r = s_rec(OUT_CLOSE, origin);
    r->conn = conn;
    r->close_code = code;
    s_copy_str(r->msg, sizeof r->msg, reason);
    return g_out.fail ? -1 : 0;
}

/* Records one OUT_PUB: the runtime hands a broadcast to its output once,
 * and the output (link.c) sends it on every gateway. */
static int
s_out_pub(void *ctx, proto_span_t channel, uint32_t kind, uint64_t offset, proto_span_t epoch,
          proto_span_t user, const void *payload, size_t len)
{
    (void)ctx;
    out_rec_t *r = s_rec(OUT_PUB, UINT32_MAX);
    s_copy_str(r->channel, sizeof r->channel, channel);
    s_copy_str(r->epoch, sizeof r->epoch, epoch);
    s_copy_str(r->user, sizeof r->user, user);
    r->pub_kind = kind;
    r->offset = offset;
    s_copy_data(r, payload, len);
    return g_out.fail ? -1 : 0;
}

static int
s_out_publish(void *ctx, uint32_t origin, uint64_t ref, proto_span_t channel, const void *data,
              size_t len)
{
    (void)ctx;
    out_rec_t *r = s_rec(OUT_PUBLISH, origin);
    r->ref = ref;
    s_copy_str(r->channel, sizeof r->channel, channel);
    s_copy_data(r, data, len);
    return g_out.fail ? -1 : 0;
}

static const wk_out_t s_out = {s_out_reply, s_out_error, s_out_send,
                               s_out_close, s_out_pub,   s_out_publish};

static void
s_out_clear(void)
{
    for (size_t i = 0; i < g_out.n; i++)
        free(g_out.v[i].data);
    g_out.n = 0;
    g_out.fail = false;
}

/* The one reply or error for rid (fails if there is not exactly one). */
static inline const out_rec_t *
s_out_for(uint64_t rid)
{
    const out_rec_t *found = NULL;
    for (size_t i = 0; i < g_out.n; i++) {
        if ((g_out.v[i].kind == OUT_REPLY || g_out.v[i].kind == OUT_ERROR) &&
            g_out.v[i].rid == rid) {
            assert_null(found);
            found = &g_out.v[i];
        }
    }
    assert_non_null(found);
    return found;
}

/* Records of kind among all recorded. */
static inline size_t
s_out_count(out_kind_t kind)
{
    size_t n = 0;
    for (size_t i = 0; i < g_out.n; i++)
        n += g_out.v[i].kind == kind;
    return n;
}

#endif
