/*
 * envelope.c - the client envelope in its two encodings. The JSON side is
 * streamed by protocol/json.c (no DOM); this file owns the fields.
 *
 * Both decoders first collect the known fields into one neutral form
 * (s_fields_t) and only then validate them, id first: that way the error
 * reply can carry the client's id whatever order the fields came in, and
 * the two encodings cannot drift apart in what they accept.
 */
#include "envelope.h"
#include "json.h"
#include "mpk.h"

#include <string.h>

static const uint8_t s_nil[1] = {0xc0};

static const char *const s_err_names[PROTO_ERR__COUNT] = {
    [PROTO_ERR_BAD_REQUEST] = "bad_request",
    [PROTO_ERR_NO_SERVICE] = "no_service",
    [PROTO_ERR_TOO_LARGE] = "too_large",
    [PROTO_ERR_OVERLOADED] = "overloaded",
    [PROTO_ERR_TIMEOUT] = "timeout",
    [PROTO_ERR_INTERNAL] = "internal",
    [PROTO_ERR_UNAVAILABLE] = "unavailable",
    [PROTO_ERR_UNAUTHENTICATED] = "unauthenticated",
    [PROTO_ERR_FORBIDDEN] = "forbidden",
    [PROTO_ERR_BAD_CHANNEL] = "bad_channel",
    [PROTO_ERR_TOO_MANY_SUBS] = "too_many_subscriptions",
    [PROTO_ERR_ALREADY_SUBSCRIBED] = "already_subscribed",
    [PROTO_ERR_NOT_SUBSCRIBED] = "not_subscribed",
};

static const char *const s_op_names[] = {
    [PROTO_OP_REQ] = "req",         [PROTO_OP_AUTH] = "auth", [PROTO_OP_SUB] = "sub",
    [PROTO_OP_UNSUB] = "unsub",     [PROTO_OP_PUB] = "pub",   [PROTO_OP_PRESENCE] = "presence",
    [PROTO_OP_HISTORY] = "history",
};

const char *
proto_err_name(proto_err_t e)
{
    /* Never NULL: callers put the result straight on the wire. */
    if ((unsigned)e >= PROTO_ERR__COUNT)
        return s_err_names[PROTO_ERR_INTERNAL];
    return s_err_names[e];
}

/* ---- validators ---- */

bool
proto_svc_valid(proto_span_t s)
{
    if (s.len < 1 || s.len > PROTO_SVC_MAX)
        return false;
    for (size_t i = 0; i < s.len; i++) {
        uint8_t c = s.ptr[i];
        if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_' || c == '.' || c == '-'))
            return false;
    }
    return true;
}

bool
proto_code_valid(proto_span_t s)
{
    if (s.len < 1 || s.len > PROTO_CODE_MAX)
        return false;
    for (size_t i = 0; i < s.len; i++) {
        uint8_t c = s.ptr[i];
        if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_'))
            return false;
    }
    return true;
}

bool
proto_utf8_valid(const uint8_t *p, size_t len)
{
    size_t i = 0;

    while (i < len) {
        /* Payloads are mostly ASCII: test eight bytes at a time. */
        if (len - i >= 8) {
            uint64_t w;
            memcpy(&w, p + i, 8);
            if (!(w & 0x8080808080808080ULL)) {
                i += 8;
                continue;
            }
        }
        uint8_t c = p[i];
        if (c < 0x80) {
            i++;
            continue;
        }
        /* c0/c1 would be overlong 2-byte forms; f5.. start > U+10FFFF */
        if (c < 0xc2 || c > 0xf4)
            return false;
        if (c < 0xe0) {
            if (len - i < 2 || (p[i + 1] & 0xc0) != 0x80)
                return false;
            i += 2;
            continue;
        }
        /* The second byte's range excludes overlongs (e0, f0), surrogates
         * (ed) and code points past U+10FFFF (f4). */
        uint8_t lo = 0x80, hi = 0xbf;
        if (c == 0xe0)
            lo = 0xa0;
        else if (c == 0xed)
            hi = 0x9f;
        else if (c == 0xf0)
            lo = 0x90;
        else if (c == 0xf4)
            hi = 0x8f;
        size_t n = c < 0xf0 ? 3 : 4;
        if (len - i < n || p[i + 1] < lo || p[i + 1] > hi || (p[i + 2] & 0xc0) != 0x80)
            return false;
        if (n == 4 && (p[i + 3] & 0xc0) != 0x80)
            return false;
        i += n;
    }
    return true;
}

/* ---- decoding ---- */

typedef enum {
    F_ABSENT = 0,
    F_UINT,
    F_STR,
    F_BOOL,
    F_OTHER, /* present with a type the field never takes */
} s_fkind_t;

typedef struct {
    s_fkind_t kind;
    uint64_t u;
    proto_span_t s;
} s_field_t;

typedef struct {
    s_field_t v, op, id, svc, key, channel, token, epoch, offset, limit, presence;
} s_fields_t;

/* The string fields whose spans JSON decoding must copy out of jansson. */
#define S_N_STRS 5

/* Sets env->id from the collected id; false if it is present but bad. */
static bool
s_take_id(const s_field_t *f, proto_id_t *id)
{
    memset(id, 0, sizeof *id);
    switch (f->kind) {
    case F_ABSENT:
        return true;
    case F_UINT:
        if (f->u > (uint64_t)INT64_MAX)
            return false;
        id->kind = PROTO_ID_UINT;
        id->u = f->u;
        return true;
    case F_STR:
        /* UTF-8 so the id can always be echoed in a JSON reply */
        if (f->s.len < 1 || f->s.len > PROTO_ID_MAX || !proto_utf8_valid(f->s.ptr, f->s.len))
            return false;
        id->kind = PROTO_ID_STR;
        id->len = (uint8_t)f->s.len;
        memcpy(id->s, f->s.ptr, f->s.len);
        return true;
    default:
        return false;
    }
}

static bool
s_span_eq(proto_span_t s, const char *lit)
{
    size_t n = strlen(lit);
    return s.len == n && memcmp(s.ptr, lit, n) == 0;
}

/* A string field of lo..hi bytes of UTF-8, or absent when !required. */
static bool
s_str_field(const s_field_t *f, size_t lo, size_t hi, bool required, proto_span_t *out)
{
    if (f->kind == F_ABSENT)
        return !required;
    if (f->kind != F_STR || f->s.len < lo || f->s.len > hi || !proto_utf8_valid(f->s.ptr, f->s.len))
        return false;
    *out = f->s;
    return true;
}

/* The fields of the auth and channel ops. Unknown to an op: ignored, like
 * any unknown field. */
static proto_rc_t
s_check_op_fields(const s_fields_t *f, proto_envelope_t *env, const char **err)
{
    switch (env->op) {
    case PROTO_OP_REQ:
        return PROTO_OK;
    case PROTO_OP_AUTH:
        if (f->token.kind == F_STR && f->token.s.len > PROTO_TOKEN_MAX) {
            *err = "token too long";
            return PROTO_TOO_BIG;
        }
        if (!s_str_field(&f->token, 1, PROTO_TOKEN_MAX, true, &env->token)) {
            *err = f->token.kind == F_ABSENT ? "missing token" : "invalid token";
            return PROTO_MALFORMED;
        }
        return PROTO_OK;
    default:
        break;
    }
    if (!s_str_field(&f->channel, 1, PROTO_CHANNEL_MAX, true, &env->channel)) {
        *err = f->channel.kind == F_ABSENT ? "missing channel" : "invalid channel";
        return PROTO_MALFORMED;
    }
    if (env->op == PROTO_OP_SUB) {
        if (f->presence.kind != F_ABSENT && f->presence.kind != F_BOOL) {
            *err = "invalid presence";
            return PROTO_MALFORMED;
        }
        env->presence = f->presence.kind == F_BOOL && f->presence.u;
        if (!s_str_field(&f->epoch, 1, PROTO_EPOCH_MAX, false, &env->epoch)) {
            *err = "invalid epoch";
            return PROTO_MALFORMED;
        }
        /* recovery needs both; either alone is a client bug worth telling */
        if ((f->epoch.kind == F_ABSENT) != (f->offset.kind == F_ABSENT) ||
            (f->offset.kind != F_ABSENT && f->offset.kind != F_UINT)) {
            *err = "recovery needs epoch and offset";
            return PROTO_MALFORMED;
        }
        env->offset = f->offset.u;
    } else if (env->op == PROTO_OP_HISTORY && f->limit.kind != F_ABSENT) {
        if (f->limit.kind != F_UINT || f->limit.u > UINT32_MAX) {
            *err = "invalid limit";
            return PROTO_MALFORMED;
        }
        env->limit = (uint32_t)f->limit.u;
    }
    return PROTO_OK;
}

/* Validates the collected fields into env (svc/key spans borrow from the
 * fields). id first, so it survives any later failure. */
static proto_rc_t
s_check_fields(const s_fields_t *f, proto_envelope_t *env, const char **err)
{
    size_t op;

    if (!s_take_id(&f->id, &env->id)) {
        *err = "invalid id";
        return PROTO_MALFORMED;
    }
    if (f->v.kind != F_ABSENT && !(f->v.kind == F_UINT && f->v.u == PROTO_VERSION)) {
        *err = "unsupported version";
        return PROTO_MALFORMED;
    }
    env->op = PROTO_OP_REQ;
    if (f->op.kind != F_ABSENT) {
        for (op = PROTO_OP_REQ; op <= PROTO_OP_HISTORY; op++) {
            if (f->op.kind == F_STR && s_span_eq(f->op.s, s_op_names[op]))
                break;
        }
        if (op > PROTO_OP_HISTORY) {
            *err = "unknown op";
            return PROTO_MALFORMED;
        }
        env->op = (proto_op_t)op;
    }
    if (f->svc.kind == F_ABSENT) {
        if (env->op == PROTO_OP_REQ) {
            *err = "missing svc";
            return PROTO_MALFORMED;
        }
    } else if (f->svc.kind != F_STR || !proto_svc_valid(f->svc.s)) {
        *err = "invalid svc";
        return PROTO_MALFORMED;
    } else {
        env->svc = f->svc.s;
    }
    if (f->key.kind != F_ABSENT) {
        if (f->key.kind != F_STR || f->key.s.len < 1 || f->key.s.len > PROTO_KEY_MAX ||
            !proto_utf8_valid(f->key.s.ptr, f->key.s.len)) {
            *err = "invalid key";
            return PROTO_MALFORMED;
        }
        env->key = f->key.s;
    }
    return s_check_op_fields(f, env, err);
}

/* The root members a JSON envelope may have; J_DATA is transcoded to
 * msgpack, the others are collected as they are. */
enum {
    J_V,
    J_OP,
    J_ID,
    J_SVC,
    J_KEY,
    J_CHANNEL,
    J_TOKEN,
    J_EPOCH,
    J_OFFSET,
    J_LIMIT,
    J_PRESENCE,
    J_DATA,
    J__COUNT
};

static const char *const s_json_names[J__COUNT] = {
    [J_V] = "v",
    [J_OP] = "op",
    [J_ID] = "id",
    [J_SVC] = "svc",
    [J_KEY] = "key",
    [J_CHANNEL] = "channel",
    [J_TOKEN] = "token",
    [J_EPOCH] = "epoch",
    [J_OFFSET] = "offset",
    [J_LIMIT] = "limit",
    [J_PRESENCE] = "presence",
    [J_DATA] = "data",
};

/* Spans point into scratch, which no longer moves once the parse is done. */
static void
s_json_field(const proto_json_field_t *j, const proto_buf_t *scratch, s_field_t *f)
{
    memset(f, 0, sizeof *f);
    switch (j->kind) {
    case PROTO_JSON_ABSENT:
        f->kind = F_ABSENT;
        break;
    case PROTO_JSON_UINT:
        f->kind = F_UINT;
        f->u = j->u;
        break;
    case PROTO_JSON_STR:
        f->kind = F_STR;
        f->s = proto_span(j->inl ? j->buf : proto_buf_payload(scratch) + j->off, j->len);
        break;
    case PROTO_JSON_BOOL:
        f->kind = F_BOOL;
        f->u = j->u;
        break;
    default:
        f->kind = F_OTHER;
        break;
    }
}

/*
 * One pass over the text (protocol/json.c): the known fields' strings are
 * unescaped into scratch and `data` is transcoded to msgpack there, so no
 * DOM is built and every span lands in scratch. The checks and their order
 * are the jansson path's: any invalid JSON first, then a root that is not
 * an object, then nesting too deep (the root object is one level; each
 * field may nest MPK_MAX_DEPTH more, as in the msgpack decoder), then the
 * fields.
 */
static proto_rc_t
s_decode_json(const uint8_t *in, size_t len, proto_buf_t *scratch, proto_envelope_t *env,
              const char **err)
{
    proto_json_field_t jf[J__COUNT];
    s_fields_t f;
    size_t data_off, data_len;
    proto_rc_t rc;

    /* op and id are used (id copied) before decode returns: keep them out
     * of scratch, which holds only what env points to */
    proto_json_rc_t jrc =
        proto_json_decode_root(in, len, s_json_names, J__COUNT, J_DATA, 1u << J_OP | 1u << J_ID,
                               MPK_MAX_DEPTH + 1, jf, scratch);

    switch (jrc) {
    case PROTO_JSON_OK:
    case PROTO_JSON_TOO_DEEP:
        break;
    case PROTO_JSON_NOT_OBJECT:
        *err = "envelope must be an object";
        return PROTO_MALFORMED;
    case PROTO_JSON_NOMEM:
        *err = "out of memory";
        return PROTO_NOMEM;
    default:
        *err = "invalid JSON";
        return PROTO_MALFORMED;
    }
    if (jf[J_DATA].kind == PROTO_JSON_ABSENT) {
        data_off = scratch->len;
        if (mpk_write_nil(scratch) < 0) {
            *err = "out of memory";
            return PROTO_NOMEM;
        }
    } else {
        data_off = jf[J_DATA].off;
    }
    data_len = jf[J_DATA].kind == PROTO_JSON_ABSENT ? 1 : jf[J_DATA].len;

    s_json_field(&jf[J_V], scratch, &f.v);
    s_json_field(&jf[J_OP], scratch, &f.op);
    s_json_field(&jf[J_ID], scratch, &f.id);
    s_json_field(&jf[J_SVC], scratch, &f.svc);
    s_json_field(&jf[J_KEY], scratch, &f.key);
    s_json_field(&jf[J_CHANNEL], scratch, &f.channel);
    s_json_field(&jf[J_TOKEN], scratch, &f.token);
    s_json_field(&jf[J_EPOCH], scratch, &f.epoch);
    s_json_field(&jf[J_OFFSET], scratch, &f.offset);
    s_json_field(&jf[J_LIMIT], scratch, &f.limit);
    s_json_field(&jf[J_PRESENCE], scratch, &f.presence);

    if (jrc == PROTO_JSON_TOO_DEEP) {
        s_take_id(&f.id, &env->id);
        *err = "nesting too deep";
        return PROTO_TOO_BIG;
    }
    rc = s_check_fields(&f, env, err);
    if (rc != PROTO_OK)
        return rc;
    /* data wrote at least one byte, so payload is not NULL here */
    env->data = proto_span(proto_buf_payload(scratch) + data_off, data_len);
    return PROTO_OK;
}

/* Reads one whole value (validated, depth-limited), returning its first
 * token for classification and its bytes. */
static proto_rc_t
s_mpk_value(mpk_reader_t *r, mpk_item_t *first, proto_span_t *span)
{
    mpk_reader_t head;
    proto_rc_t rc = mpk_skip(r, MPK_MAX_DEPTH, span);

    if (rc != PROTO_OK)
        return rc;
    mpk_reader_init(&head, span->ptr, span->len);
    return mpk_read(&head, first);
}

static s_field_t *
s_mpk_field(s_fields_t *f, proto_span_t name)
{
    if (s_span_eq(name, "v"))
        return &f->v;
    if (s_span_eq(name, "op"))
        return &f->op;
    if (s_span_eq(name, "id"))
        return &f->id;
    if (s_span_eq(name, "svc"))
        return &f->svc;
    if (s_span_eq(name, "key"))
        return &f->key;
    if (s_span_eq(name, "channel"))
        return &f->channel;
    if (s_span_eq(name, "token"))
        return &f->token;
    if (s_span_eq(name, "epoch"))
        return &f->epoch;
    if (s_span_eq(name, "offset"))
        return &f->offset;
    if (s_span_eq(name, "limit"))
        return &f->limit;
    if (s_span_eq(name, "presence"))
        return &f->presence;
    return NULL;
}

static proto_rc_t
s_decode_mpk(const uint8_t *in, size_t len, proto_envelope_t *env, const char **err)
{
    s_fields_t f;
    mpk_reader_t r;
    mpk_item_t it;
    proto_span_t span;
    bool have_data = false;
    uint32_t n;
    proto_rc_t rc;

    memset(&f, 0, sizeof f);
    mpk_reader_init(&r, in, len);
    rc = mpk_read(&r, &it);
    if (rc != PROTO_OK) {
        *err = "invalid msgpack";
        return PROTO_MALFORMED;
    }
    if (it.type != MPK_MAP) {
        *err = "envelope must be an object";
        return PROTO_MALFORMED;
    }
    n = it.v.n;
    for (uint32_t i = 0; i < n; i++) {
        s_field_t *field = NULL;
        bool is_data = false;

        /* Keys that are not strings are not fields we know: skip them. */
        rc = s_mpk_value(&r, &it, &span);
        if (rc != PROTO_OK)
            goto out_walk;
        if (it.type == MPK_STR) {
            field = s_mpk_field(&f, it.v.s);
            is_data = s_span_eq(it.v.s, "data");
        }
        if ((field && field->kind != F_ABSENT) || (is_data && have_data)) {
            *err = "duplicate field";
            rc = PROTO_MALFORMED;
            goto out_fail;
        }
        rc = s_mpk_value(&r, &it, &span);
        if (rc != PROTO_OK)
            goto out_walk;
        if (is_data) {
            /* zero copy: the worker gets the client's bytes */
            env->data = span;
            have_data = true;
        } else if (field) {
            if (it.type == MPK_UINT) {
                field->kind = F_UINT;
                field->u = it.v.u;
            } else if (it.type == MPK_STR) {
                field->kind = F_STR;
                field->s = it.v.s;
            } else if (it.type == MPK_BOOL) {
                field->kind = F_BOOL;
                field->u = it.v.b;
            } else {
                field->kind = F_OTHER;
            }
        }
    }
    if (mpk_reader_left(&r) != 0) {
        *err = "invalid msgpack";
        rc = PROTO_MALFORMED;
        goto out_fail;
    }
    rc = s_check_fields(&f, env, err);
    if (rc != PROTO_OK)
        return rc;
    if (!have_data)
        env->data = proto_span(s_nil, sizeof s_nil);
    return PROTO_OK;

out_walk:
    if (rc == PROTO_TOO_BIG) {
        *err = "nesting too deep";
    } else {
        *err = "invalid msgpack";
        rc = PROTO_MALFORMED;
    }
out_fail:
    /* keep an id we already saw, so the error reply can carry it */
    s_take_id(&f.id, &env->id);
    env->data = proto_span(NULL, 0);
    return rc;
}

proto_rc_t
proto_envelope_decode(proto_enc_t enc, const uint8_t *in, size_t len, proto_buf_t *scratch,
                      proto_envelope_t *env, const char **err)
{
    memset(env, 0, sizeof *env);
    env->op = PROTO_OP_REQ;
    *err = NULL;
    proto_buf_reset(scratch);
    if (enc == PROTO_ENC_MSGPACK)
        return s_decode_mpk(in, len, env, err);
    return s_decode_json(in, len, scratch, env, err);
}

/* ---- encoding ---- */

/* Worker data may be empty (an empty payload frame): that means nil. */
static proto_span_t
s_data_or_nil(proto_span_t data)
{
    return data.len ? data : proto_span(s_nil, sizeof s_nil);
}

static bool
s_id_ok(const proto_id_t *id)
{
    switch (id->kind) {
    case PROTO_ID_NONE:
        return true;
    case PROTO_ID_UINT:
        return id->u <= (uint64_t)INT64_MAX;
    case PROTO_ID_STR:
        return id->len >= 1 && id->len <= PROTO_ID_MAX &&
               proto_utf8_valid((const uint8_t *)id->s, id->len);
    default:
        return false;
    }
}

static bool
s_str_ok(proto_span_t s)
{
    return proto_utf8_valid(s.ptr, s.len);
}

/*
 * JSON frames are written straight to out, no DOM: the members in the
 * order jansson printed them (insertion order), compact, strings escaped
 * by proto_json_put_str() and `data` converted by proto_json_put_mpk().
 */

static int
s_jlit(proto_buf_t *out, const char *s)
{
    return proto_buf_append(out, s, strlen(s));
}

/* {"v":1,"op":"OP" and ,"id":ID when there is one */
static int
s_jhead(proto_buf_t *out, const char *op, const proto_id_t *id)
{
    if (s_jlit(out, "{\"v\":") < 0 || proto_json_put_uint(out, PROTO_VERSION) < 0 ||
        s_jlit(out, ",\"op\":") < 0 || proto_json_put_str(out, (const uint8_t *)op, strlen(op)) < 0)
        return -1;
    if (id && id->kind == PROTO_ID_UINT)
        return s_jlit(out, ",\"id\":") < 0 ? -1 : proto_json_put_uint(out, id->u);
    if (id && id->kind == PROTO_ID_STR)
        return s_jlit(out, ",\"id\":") < 0
                   ? -1
                   : proto_json_put_str(out, (const uint8_t *)id->s, id->len);
    return 0;
}

/* ,"NAME":"S" (name needs no escaping) */
static int
s_jstr_member(proto_buf_t *out, const char *name, proto_span_t s)
{
    if (proto_buf_append(out, ",\"", 2) < 0 || s_jlit(out, name) < 0 ||
        proto_buf_append(out, "\":", 2) < 0)
        return -1;
    return proto_json_put_str(out, s.ptr, s.len);
}

/* ,"data":DATA} ending a frame begun at mark; all or nothing. */
static proto_rc_t
s_jdata_end(proto_buf_t *out, size_t mark, proto_span_t data)
{
    proto_rc_t rc = PROTO_NOMEM;

    if (s_jlit(out, ",\"data\":") < 0)
        goto out_reset;
    rc = proto_json_put_mpk(out, data, MPK_MAX_DEPTH);
    if (rc != PROTO_OK)
        goto out_reset;
    if (proto_buf_append(out, "}", 1) < 0) {
        rc = PROTO_NOMEM;
        goto out_reset;
    }
    return PROTO_OK;

out_reset:
    out->len = mark;
    return rc;
}

/* } ending a frame begun at mark, or out of memory (w < 0): all or nothing. */
static proto_rc_t
s_jend(proto_buf_t *out, size_t mark, int w)
{
    if (w < 0 || proto_buf_append(out, "}", 1) < 0) {
        out->len = mark;
        return PROTO_NOMEM;
    }
    return PROTO_OK;
}

/* Appends the msgpack {"v":1,"op":op,["id":id]} head of a map of
 * n_more further pairs. */
static int
s_mpk_head(proto_buf_t *out, const char *op, const proto_id_t *id, uint32_t n_more)
{
    bool has_id = id && id->kind != PROTO_ID_NONE;

    if (mpk_write_map(out, 2 + (has_id ? 1 : 0) + n_more) < 0 || mpk_write_cstr(out, "v") < 0 ||
        mpk_write_uint(out, PROTO_VERSION) < 0 || mpk_write_cstr(out, "op") < 0 ||
        mpk_write_cstr(out, op) < 0)
        return -1;
    if (!has_id)
        return 0;
    if (mpk_write_cstr(out, "id") < 0)
        return -1;
    if (id->kind == PROTO_ID_UINT)
        return mpk_write_uint(out, id->u);
    return mpk_write_str(out, id->s, id->len);
}

proto_rc_t
proto_envelope_encode_res(proto_enc_t enc, const proto_id_t *id, proto_span_t data,
                          proto_buf_t *out)
{
    size_t mark = out->len;
    proto_rc_t rc;

    data = s_data_or_nil(data);
    if (!s_id_ok(id))
        return PROTO_MALFORMED;
    if (enc == PROTO_ENC_JSON) {
        if (s_jhead(out, "res", id) < 0) {
            out->len = mark;
            return PROTO_NOMEM;
        }
        return s_jdata_end(out, mark, data);
    }
    rc = mpk_validate(data.ptr, data.len, MPK_MAX_DEPTH);
    if (rc != PROTO_OK)
        return rc == PROTO_NEED_MORE ? PROTO_MALFORMED : rc;
    if (s_mpk_head(out, "res", id, 1) < 0 || mpk_write_cstr(out, "data") < 0 ||
        mpk_write_raw(out, data.ptr, data.len) < 0) {
        out->len = mark;
        return PROTO_NOMEM;
    }
    return PROTO_OK;
}

proto_rc_t
proto_envelope_encode_err(proto_enc_t enc, const proto_id_t *id, proto_span_t code,
                          proto_span_t msg, proto_buf_t *out)
{
    size_t mark = out->len;

    if (!s_id_ok(id) || !proto_code_valid(code) || !s_str_ok(msg))
        return PROTO_MALFORMED;
    if (enc == PROTO_ENC_JSON)
        return s_jend(out, mark,
                      (s_jhead(out, "err", id) < 0 || s_jstr_member(out, "code", code) < 0 ||
                       s_jstr_member(out, "msg", msg) < 0)
                          ? -1
                          : 0);
    if (s_mpk_head(out, "err", id, 2) < 0 || mpk_write_cstr(out, "code") < 0 ||
        mpk_write_str(out, code.ptr, code.len) < 0 || mpk_write_cstr(out, "msg") < 0 ||
        mpk_write_str(out, msg.ptr, msg.len) < 0) {
        out->len = mark;
        return PROTO_NOMEM;
    }
    return PROTO_OK;
}

proto_rc_t
proto_envelope_encode_push(proto_enc_t enc, proto_span_t svc, proto_span_t data, proto_buf_t *out)
{
    size_t mark = out->len;
    proto_rc_t rc;

    data = s_data_or_nil(data);
    if (!proto_svc_valid(svc))
        return PROTO_MALFORMED;
    if (enc == PROTO_ENC_JSON) {
        if (s_jhead(out, "push", NULL) < 0 || s_jstr_member(out, "svc", svc) < 0) {
            out->len = mark;
            return PROTO_NOMEM;
        }
        return s_jdata_end(out, mark, data);
    }
    rc = mpk_validate(data.ptr, data.len, MPK_MAX_DEPTH);
    if (rc != PROTO_OK)
        return rc == PROTO_NEED_MORE ? PROTO_MALFORMED : rc;
    if (s_mpk_head(out, "push", NULL, 2) < 0 || mpk_write_cstr(out, "svc") < 0 ||
        mpk_write_str(out, svc.ptr, svc.len) < 0 || mpk_write_cstr(out, "data") < 0 ||
        mpk_write_raw(out, data.ptr, data.len) < 0) {
        out->len = mark;
        return PROTO_NOMEM;
    }
    return PROTO_OK;
}

/* ---- channel events ---- */

bool
proto_channel_valid(proto_span_t s, size_t max)
{
    if (s.len < 1 || s.len > max || s.len > PROTO_CHANNEL_MAX)
        return false;
    for (size_t i = 0; i < s.len; i++) {
        uint8_t c = s.ptr[i];
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '_' || c == '.' || c == ':' || c == '@' || c == '/' || c == '=' || c == '+' ||
              c == '-'))
            return false;
    }
    return true;
}

proto_rc_t
proto_envelope_encode_msg(proto_enc_t enc, proto_span_t channel, proto_span_t epoch,
                          uint64_t offset, proto_span_t user, proto_span_t data, proto_buf_t *out)
{
    size_t mark = out->len;
    proto_rc_t rc;

    data = s_data_or_nil(data);
    if (!s_str_ok(channel) || !s_str_ok(epoch) || !s_str_ok(user) || offset > (uint64_t)INT64_MAX)
        return PROTO_MALFORMED;
    if (enc == PROTO_ENC_JSON) {
        if (s_jhead(out, "msg", NULL) < 0 || s_jstr_member(out, "channel", channel) < 0 ||
            s_jstr_member(out, "epoch", epoch) < 0 || s_jlit(out, ",\"offset\":") < 0 ||
            proto_json_put_uint(out, offset) < 0 ||
            (user.len && s_jstr_member(out, "user", user) < 0)) {
            out->len = mark;
            return PROTO_NOMEM;
        }
        return s_jdata_end(out, mark, data);
    }
    rc = mpk_validate(data.ptr, data.len, MPK_MAX_DEPTH);
    if (rc != PROTO_OK)
        return rc == PROTO_NEED_MORE ? PROTO_MALFORMED : rc;
    if (s_mpk_head(out, "msg", NULL, user.len ? 5 : 4) < 0 || mpk_write_cstr(out, "channel") < 0 ||
        mpk_write_str(out, channel.ptr, channel.len) < 0 || mpk_write_cstr(out, "epoch") < 0 ||
        mpk_write_str(out, epoch.ptr, epoch.len) < 0 || mpk_write_cstr(out, "offset") < 0 ||
        mpk_write_uint(out, offset) < 0 ||
        (user.len &&
         (mpk_write_cstr(out, "user") < 0 || mpk_write_str(out, user.ptr, user.len) < 0)) ||
        mpk_write_cstr(out, "data") < 0 || mpk_write_raw(out, data.ptr, data.len) < 0) {
        out->len = mark;
        return PROTO_NOMEM;
    }
    return PROTO_OK;
}

proto_rc_t
proto_envelope_encode_presence(proto_enc_t enc, bool join, proto_span_t channel, proto_span_t user,
                               proto_buf_t *out)
{
    const char *op = join ? "join" : "leave";
    size_t mark = out->len;

    if (!s_str_ok(channel) || !s_str_ok(user))
        return PROTO_MALFORMED;
    if (enc == PROTO_ENC_JSON)
        return s_jend(out, mark,
                      (s_jhead(out, op, NULL) < 0 || s_jstr_member(out, "channel", channel) < 0 ||
                       s_jstr_member(out, "user", user) < 0)
                          ? -1
                          : 0);
    if (s_mpk_head(out, op, NULL, 2) < 0 || mpk_write_cstr(out, "channel") < 0 ||
        mpk_write_str(out, channel.ptr, channel.len) < 0 || mpk_write_cstr(out, "user") < 0 ||
        mpk_write_str(out, user.ptr, user.len) < 0) {
        out->len = mark;
        return PROTO_NOMEM;
    }
    return PROTO_OK;
}
