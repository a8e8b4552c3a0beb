/*
 * wsc_frame.c - client envelopes out, server envelopes in (msgpack).
 */
#include "wsc_frame.h"

#include "envelope.h"

#include <string.h>

/* ---- building ---- */

static bool
s_data_ok(const uint8_t *data, size_t len)
{
    return !data ? len == 0 : len > 0 && mpk_validate(data, len, MPK_MAX_DEPTH) == PROTO_OK;
}

static int
s_write_data(proto_buf_t *b, const uint8_t *data, size_t len)
{
    return data ? mpk_write_raw(b, data, len) : mpk_write_nil(b);
}

static int
s_kv_str(proto_buf_t *b, const char *k, const char *v)
{
    return mpk_write_cstr(b, k) || mpk_write_cstr(b, v);
}

static int
s_kv_uint(proto_buf_t *b, const char *k, uint64_t v)
{
    return mpk_write_cstr(b, k) || mpk_write_uint(b, v);
}

bool
wsc_frame_channel_ok(const char *s)
{
    return s && proto_channel_valid(proto_span(s, strlen(s)), PROTO_CHANNEL_MAX);
}

static bool
s_key_ok(const char *k)
{
    size_t n;

    if (!k)
        return true;
    n = strlen(k);
    /* c: names the per-connection actors: the gateway refuses it */
    return n >= 1 && n <= PROTO_KEY_MAX && proto_utf8_valid((const uint8_t *)k, n) &&
           strncmp(k, "c:", 2) != 0;
}

/* The builders write into b past its current length and roll back on
 * failure, so a half-written frame never stays. */
#define S_ROLLBACK(b, mark)                                                                        \
    do {                                                                                           \
        (b)->len = (mark);                                                                         \
        return -1;                                                                                 \
    } while (0)

int
wsc_frame_req(proto_buf_t *b, uint64_t id, const char *svc, const char *key, const uint8_t *data,
              size_t len)
{
    size_t mark = b->len;

    if (!svc || !proto_svc_valid(proto_span(svc, strlen(svc))) || !s_key_ok(key) ||
        !s_data_ok(data, len))
        return -1;
    if (mpk_write_map(b, 3 + (id ? 1 : 0) + (key ? 1 : 0)) || s_kv_str(b, "op", "req") ||
        (id && s_kv_uint(b, "id", id)) || s_kv_str(b, "svc", svc) ||
        (key && s_kv_str(b, "key", key)) || mpk_write_cstr(b, "data") || s_write_data(b, data, len))
        S_ROLLBACK(b, mark);
    return 0;
}

int
wsc_frame_auth(proto_buf_t *b, uint64_t id, const char *token)
{
    size_t mark = b->len, n = token ? strlen(token) : 0;

    if (n == 0 || n > PROTO_TOKEN_MAX || !proto_utf8_valid((const uint8_t *)token, n))
        return -1;
    if (mpk_write_map(b, id ? 3 : 2) || s_kv_str(b, "op", "auth") ||
        (id && s_kv_uint(b, "id", id)) || s_kv_str(b, "token", token))
        S_ROLLBACK(b, mark);
    return 0;
}

int
wsc_frame_sub(proto_buf_t *b, uint64_t id, const char *channel, const char *epoch, uint64_t offset)
{
    size_t mark = b->len;
    bool rec = epoch && *epoch;

    if (!wsc_frame_channel_ok(channel) || (rec && strlen(epoch) > PROTO_EPOCH_MAX))
        return -1;
    if (mpk_write_map(b, 2 + (id ? 1 : 0) + (rec ? 2 : 0)) || s_kv_str(b, "op", "sub") ||
        (id && s_kv_uint(b, "id", id)) || s_kv_str(b, "channel", channel) ||
        (rec && (s_kv_str(b, "epoch", epoch) || s_kv_uint(b, "offset", offset))))
        S_ROLLBACK(b, mark);
    return 0;
}

int
wsc_frame_unsub(proto_buf_t *b, const char *channel)
{
    size_t mark = b->len;

    if (!wsc_frame_channel_ok(channel))
        return -1;
    if (mpk_write_map(b, 2) || s_kv_str(b, "op", "unsub") || s_kv_str(b, "channel", channel))
        S_ROLLBACK(b, mark);
    return 0;
}

int
wsc_frame_pub(proto_buf_t *b, uint64_t id, const char *channel, const uint8_t *data, size_t len)
{
    size_t mark = b->len;

    if (!wsc_frame_channel_ok(channel) || !s_data_ok(data, len))
        return -1;
    if (mpk_write_map(b, 3 + (id ? 1 : 0)) || s_kv_str(b, "op", "pub") ||
        (id && s_kv_uint(b, "id", id)) || s_kv_str(b, "channel", channel) ||
        mpk_write_cstr(b, "data") || s_write_data(b, data, len))
        S_ROLLBACK(b, mark);
    return 0;
}

/* ---- parsing ---- */

static bool
s_is(proto_span_t s, const char *lit)
{
    size_t n = strlen(lit);
    return s.len == n && !memcmp(s.ptr, lit, n);
}

/* Reads a string field of 1..max bytes (0..max when may_be_empty) with
 * no NUL, so the client can copy it into a C string. */
static proto_rc_t
s_str(mpk_reader_t *r, proto_span_t *out, size_t max, bool may_be_empty, const char **why,
      const char *what)
{
    proto_rc_t rc = mpk_read_str(r, out);

    if (rc != PROTO_OK) {
        *why = what;
        return PROTO_MALFORMED;
    }
    if (out->len > max) {
        *why = what;
        return PROTO_TOO_BIG;
    }
    if ((!may_be_empty && out->len == 0) || (out->len && memchr(out->ptr, 0, out->len)) ||
        !proto_utf8_valid(out->ptr, out->len)) {
        *why = what;
        return PROTO_MALFORMED;
    }
    return PROTO_OK;
}

#define S_FAIL(rc_, text)                                                                          \
    do {                                                                                           \
        *why = (text);                                                                             \
        return (rc_);                                                                              \
    } while (0)

proto_rc_t
wsc_frame_parse(const uint8_t *p, size_t len, wsc_frame_t *f, const char **why)
{
    mpk_reader_t r;
    mpk_item_t it;
    proto_span_t k, op = {0};
    uint32_t n;
    proto_rc_t rc;
    bool has_data = false;

    memset(f, 0, sizeof(*f));
    *why = NULL;
    mpk_reader_init(&r, p, len);
    if (mpk_read_map(&r, &n) != PROTO_OK)
        S_FAIL(PROTO_MALFORMED, "not a msgpack map");
    while (n--) {
        if (mpk_read_str(&r, &k) != PROTO_OK)
            S_FAIL(PROTO_MALFORMED, "a key is not a string");
        if (s_is(k, "op")) {
            if (mpk_read_str(&r, &op) != PROTO_OK)
                S_FAIL(PROTO_MALFORMED, "op is not a string");
        } else if (s_is(k, "v")) {
            if (mpk_read(&r, &it) != PROTO_OK || it.type != MPK_UINT || it.v.u != PROTO_VERSION)
                S_FAIL(PROTO_MALFORMED, "unknown version");
        } else if (s_is(k, "id")) {
            if (mpk_read(&r, &it) != PROTO_OK)
                S_FAIL(PROTO_MALFORMED, "truncated id");
            if (it.type == MPK_UINT) {
                f->has_id = true;
                f->id = it.v.u;
            } else if (it.type == MPK_STR && it.v.s.len >= 1 && it.v.s.len <= PROTO_ID_MAX) {
                f->str_id = true;
            } else {
                S_FAIL(PROTO_MALFORMED, "bad id");
            }
        } else if (s_is(k, "code")) {
            if ((rc = s_str(&r, &f->code, PROTO_CODE_MAX, false, why, "bad code")) != PROTO_OK)
                return rc;
            if (!proto_code_valid(f->code))
                S_FAIL(PROTO_MALFORMED, "bad code");
        } else if (s_is(k, "msg")) {
            if ((rc = s_str(&r, &f->msg, WSC_MSG_TEXT_MAX, true, why, "bad msg")) != PROTO_OK)
                return rc;
        } else if (s_is(k, "svc")) {
            if ((rc = s_str(&r, &f->svc, PROTO_SVC_MAX, false, why, "bad svc")) != PROTO_OK)
                return rc;
            if (!proto_svc_valid(f->svc))
                S_FAIL(PROTO_MALFORMED, "bad svc");
        } else if (s_is(k, "channel")) {
            if ((rc = s_str(&r, &f->channel, PROTO_CHANNEL_MAX, false, why, "bad channel")) !=
                PROTO_OK)
                return rc;
            if (!proto_channel_valid(f->channel, PROTO_CHANNEL_MAX))
                S_FAIL(PROTO_MALFORMED, "bad channel");
        } else if (s_is(k, "epoch")) {
            if ((rc = s_str(&r, &f->epoch, PROTO_EPOCH_MAX, false, why, "bad epoch")) != PROTO_OK)
                return rc;
        } else if (s_is(k, "user")) {
            if ((rc = s_str(&r, &f->user, WSC_USER_MAX, true, why, "bad user")) != PROTO_OK)
                return rc;
        } else if (s_is(k, "offset")) {
            if (mpk_read(&r, &it) != PROTO_OK || it.type != MPK_UINT)
                S_FAIL(PROTO_MALFORMED, "bad offset");
            f->has_offset = true;
            f->offset = it.v.u;
        } else if (s_is(k, "data")) {
            rc = mpk_skip(&r, MPK_MAX_DEPTH, &f->data);
            if (rc != PROTO_OK)
                S_FAIL(rc == PROTO_TOO_BIG ? PROTO_TOO_BIG : PROTO_MALFORMED, "bad data");
            has_data = true;
        } else {
            rc = mpk_skip(&r, MPK_MAX_DEPTH, NULL);
            if (rc != PROTO_OK)
                S_FAIL(rc == PROTO_TOO_BIG ? PROTO_TOO_BIG : PROTO_MALFORMED, "bad field");
        }
    }
    if (mpk_reader_left(&r))
        S_FAIL(PROTO_MALFORMED, "bytes after the map");
    if (!has_data)
        f->data = proto_span(NULL, 0);
    if (s_is(op, "res")) {
        f->op = WSC_OP_RES;
    } else if (s_is(op, "err")) {
        f->op = WSC_OP_ERR;
        if (!f->code.len)
            S_FAIL(PROTO_MALFORMED, "err without code");
    } else if (s_is(op, "push")) {
        f->op = WSC_OP_PUSH;
        if (!f->svc.len)
            S_FAIL(PROTO_MALFORMED, "push without svc");
    } else if (s_is(op, "msg")) {
        f->op = WSC_OP_MSG;
        if (!f->channel.len || !f->epoch.len || !f->has_offset)
            S_FAIL(PROTO_MALFORMED, "msg without channel, epoch or offset");
    } else if (s_is(op, "join") || s_is(op, "leave")) {
        f->op = s_is(op, "join") ? WSC_OP_JOIN : WSC_OP_LEAVE;
        if (!f->channel.len)
            S_FAIL(PROTO_MALFORMED, "presence event without channel");
    } else {
        S_FAIL(PROTO_MALFORMED, op.len ? "unknown op" : "no op");
    }
    return PROTO_OK;
}

proto_rc_t
wsc_frame_sub_answer(proto_span_t data, wsc_sub_answer_t *a)
{
    mpk_reader_t r;
    mpk_item_t it;
    proto_span_t k;
    uint32_t n;
    bool has_epoch = false, has_pubs = false;

    memset(a, 0, sizeof(*a));
    mpk_reader_init(&r, data.ptr, data.len);
    if (mpk_read_map(&r, &n) != PROTO_OK)
        return PROTO_MALFORMED;
    while (n--) {
        if (mpk_read_str(&r, &k) != PROTO_OK)
            return PROTO_MALFORMED;
        if (s_is(k, "epoch")) {
            if (mpk_read_str(&r, &a->epoch) != PROTO_OK || a->epoch.len == 0 ||
                a->epoch.len > PROTO_EPOCH_MAX || memchr(a->epoch.ptr, 0, a->epoch.len))
                return PROTO_MALFORMED;
            has_epoch = true;
        } else if (s_is(k, "offset")) {
            if (mpk_read_uint(&r, &a->offset) != PROTO_OK)
                return PROTO_MALFORMED;
        } else if (s_is(k, "recovered")) {
            if (mpk_read(&r, &it) != PROTO_OK || it.type != MPK_BOOL)
                return PROTO_MALFORMED;
            a->recovered = it.v.b;
        } else if (s_is(k, "pubs")) {
            proto_span_t all;
            mpk_reader_t sub;

            if (mpk_skip(&r, MPK_MAX_DEPTH, &all) != PROTO_OK)
                return PROTO_MALFORMED;
            mpk_reader_init(&sub, all.ptr, all.len);
            if (mpk_read_array(&sub, &a->npubs) != PROTO_OK)
                return PROTO_MALFORMED;
            a->pubs = sub;
            has_pubs = true;
        } else if (mpk_skip(&r, MPK_MAX_DEPTH, NULL) != PROTO_OK) {
            return PROTO_MALFORMED;
        }
    }
    if (!has_epoch)
        return PROTO_MALFORMED;
    if (!has_pubs)
        mpk_reader_init(&a->pubs, NULL, 0);
    return PROTO_OK;
}

proto_rc_t
wsc_frame_sub_answer_next(wsc_sub_answer_t *a, uint64_t *offset, proto_span_t *user,
                          proto_span_t *data)
{
    proto_span_t k;
    uint32_t n;
    bool has_offset = false;

    *offset = 0;
    *user = proto_span(NULL, 0);
    *data = proto_span(NULL, 0);
    if (a->npubs == 0 || mpk_read_map(&a->pubs, &n) != PROTO_OK)
        return PROTO_MALFORMED;
    a->npubs--;
    while (n--) {
        if (mpk_read_str(&a->pubs, &k) != PROTO_OK)
            return PROTO_MALFORMED;
        if (s_is(k, "offset")) {
            if (mpk_read_uint(&a->pubs, offset) != PROTO_OK)
                return PROTO_MALFORMED;
            has_offset = true;
        } else if (s_is(k, "user")) {
            if (mpk_read_str(&a->pubs, user) != PROTO_OK || user->len > WSC_USER_MAX ||
                (user->len && memchr(user->ptr, 0, user->len)))
                return PROTO_MALFORMED;
        } else if (s_is(k, "data")) {
            if (mpk_skip(&a->pubs, MPK_MAX_DEPTH, data) != PROTO_OK)
                return PROTO_MALFORMED;
        } else if (mpk_skip(&a->pubs, MPK_MAX_DEPTH, NULL) != PROTO_OK) {
            return PROTO_MALFORMED;
        }
    }
    return has_offset ? PROTO_OK : PROTO_MALFORMED;
}

proto_rc_t
wsc_frame_auth_answer(proto_span_t data, proto_span_t *user, uint64_t *exp)
{
    mpk_reader_t r;
    mpk_item_t it;
    proto_span_t k;
    uint32_t n;

    *user = proto_span(NULL, 0);
    *exp = 0;
    mpk_reader_init(&r, data.ptr, data.len);
    if (mpk_read_map(&r, &n) != PROTO_OK)
        return PROTO_MALFORMED;
    while (n--) {
        if (mpk_read_str(&r, &k) != PROTO_OK)
            return PROTO_MALFORMED;
        if (s_is(k, "user")) {
            if (mpk_read_str(&r, user) != PROTO_OK || user->len > WSC_USER_MAX ||
                (user->len && memchr(user->ptr, 0, user->len)))
                return PROTO_MALFORMED;
        } else if (s_is(k, "exp")) {
            if (mpk_read(&r, &it) != PROTO_OK)
                return PROTO_MALFORMED;
            if (it.type == MPK_UINT)
                *exp = it.v.u;
            else if (it.type == MPK_FLOAT && it.v.f > 0 && it.v.f < 1e15)
                *exp = (uint64_t)it.v.f;
            else if (it.type != MPK_NIL)
                return PROTO_MALFORMED;
        } else if (mpk_skip(&r, MPK_MAX_DEPTH, NULL) != PROTO_OK) {
            return PROTO_MALFORMED;
        }
    }
    return PROTO_OK;
}
