/*
 * json_ref.c - the reference ORACLE for the streaming JSON transcoder: the
 * jansson DOM implementation of the envelope codecs and converters, as
 * protocol/envelope.c had it before protocol/json.c replaced it on the
 * per-message path. Test code only (test_json_diff, fuzz_json_diff): the
 * new code must accept, reject and print exactly what this does.
 *
 * The body below is the old envelope.c verbatim; its public names are
 * renamed ref_* (json_ref.h) so both can live in one binary.
 */
#define proto_channel_valid ref_channel_valid
#define proto_code_valid ref_code_valid
#define proto_envelope_decode ref_envelope_decode
#define proto_envelope_encode_err ref_envelope_encode_err
#define proto_envelope_encode_msg ref_envelope_encode_msg
#define proto_envelope_encode_presence ref_envelope_encode_presence
#define proto_envelope_encode_push ref_envelope_encode_push
#define proto_envelope_encode_res ref_envelope_encode_res
#define proto_err_name ref_err_name
#define proto_json_to_mpk ref_json_to_mpk
#define proto_mpk_to_json ref_mpk_to_json
#define proto_svc_valid ref_svc_valid
#define proto_utf8_valid ref_utf8_valid

#include "envelope.h"
#include "mpk.h"

#include <math.h>
#include <string.h>

#include <jansson.h>

#define JSON_DECODE_FLAGS (JSON_DECODE_ANY | JSON_REJECT_DUPLICATES | JSON_ALLOW_NUL)
/* 17 significant digits: every double survives the trip through text. */
#define JSON_ENCODE_FLAGS                                                                          \
    (JSON_COMPACT | JSON_PRESERVE_ORDER | JSON_ENCODE_ANY | JSON_REAL_PRECISION(17))

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

/* ---- msgpack -> JSON ---- */

static proto_rc_t
s_mpk_to_json(mpk_reader_t *r, unsigned depth, json_t **out)
{
    mpk_item_t it;
    json_t *j = NULL;
    proto_rc_t rc = mpk_read(r, &it);

    if (rc != PROTO_OK)
        return rc;
    switch (it.type) {
    case MPK_NIL:
        j = json_null();
        break;
    case MPK_BOOL:
        j = json_boolean(it.v.b);
        break;
    case MPK_UINT:
        if (it.v.u > (uint64_t)INT64_MAX)
            return PROTO_MALFORMED;
        j = json_integer((json_int_t)it.v.u);
        break;
    case MPK_INT:
        j = json_integer((json_int_t)it.v.i);
        break;
    case MPK_FLOAT:
        if (!isfinite(it.v.f))
            return PROTO_MALFORMED;
        j = json_real(it.v.f);
        break;
    case MPK_STR:
        if (!proto_utf8_valid(it.v.s.ptr, it.v.s.len))
            return PROTO_MALFORMED;
        j = json_stringn_nocheck((const char *)it.v.s.ptr, it.v.s.len);
        break;
    case MPK_BIN:
    case MPK_EXT:
        return PROTO_MALFORMED;
    case MPK_ARRAY:
        if (depth == 0)
            return PROTO_TOO_BIG;
        j = json_array();
        if (!j)
            return PROTO_NOMEM;
        for (uint32_t i = 0; i < it.v.n; i++) {
            json_t *v;
            rc = s_mpk_to_json(r, depth - 1, &v);
            if (rc != PROTO_OK)
                goto out_free;
            if (json_array_append_new(j, v) < 0) {
                rc = PROTO_NOMEM;
                goto out_free;
            }
        }
        break;
    case MPK_MAP:
        if (depth == 0)
            return PROTO_TOO_BIG;
        j = json_object();
        if (!j)
            return PROTO_NOMEM;
        for (uint32_t i = 0; i < it.v.n; i++) {
            proto_span_t k;
            json_t *v;
            rc = mpk_read_str(r, &k);
            if (rc != PROTO_OK)
                goto out_free;
            /* A repeated key would silently drop a value in JSON. */
            if (!proto_utf8_valid(k.ptr, k.len) ||
                json_object_getn(j, (const char *)k.ptr, k.len)) {
                rc = PROTO_MALFORMED;
                goto out_free;
            }
            rc = s_mpk_to_json(r, depth - 1, &v);
            if (rc != PROTO_OK)
                goto out_free;
            if (json_object_setn_new_nocheck(j, (const char *)k.ptr, k.len, v) < 0) {
                rc = PROTO_NOMEM;
                goto out_free;
            }
        }
        break;
    }
    if (!j)
        return PROTO_NOMEM;
    *out = j;
    return PROTO_OK;

out_free:
    json_decref(j);
    return rc;
}

/* Converts exactly one msgpack value; NEED_MORE becomes MALFORMED since
 * the span is the whole value. */
static proto_rc_t
s_mpk_span_to_json(proto_span_t mpk, json_t **out)
{
    mpk_reader_t r;
    proto_rc_t rc;

    mpk_reader_init(&r, mpk.ptr, mpk.len);
    rc = s_mpk_to_json(&r, MPK_MAX_DEPTH, out);
    if (rc == PROTO_NEED_MORE)
        return PROTO_MALFORMED;
    if (rc != PROTO_OK)
        return rc;
    if (mpk_reader_left(&r) != 0) {
        json_decref(*out);
        return PROTO_MALFORMED;
    }
    return PROTO_OK;
}

static int
s_dump_append(const char *buffer, size_t size, void *data)
{
    return proto_buf_append((proto_buf_t *)data, buffer, size);
}

/* Dumps j to out; all or nothing. */
static proto_rc_t
s_json_dump(const json_t *j, proto_buf_t *out)
{
    size_t mark = out->len;

    if (json_dump_callback(j, s_dump_append, out, JSON_ENCODE_FLAGS) < 0) {
        out->len = mark;
        return PROTO_NOMEM;
    }
    return PROTO_OK;
}

proto_rc_t
proto_mpk_to_json(proto_span_t mpk, proto_buf_t *out)
{
    json_t *j;
    proto_rc_t rc = s_mpk_span_to_json(mpk, &j);

    if (rc != PROTO_OK)
        return rc;
    rc = s_json_dump(j, out);
    json_decref(j);
    return rc;
}

/* ---- JSON -> msgpack ---- */

/* True if j nests at most depth containers deep (a scalar is depth 0). */
static bool
s_json_depth_ok(const json_t *j, unsigned depth)
{
    const char *k;
    json_t *v;
    size_t i;

    if (json_is_array(j)) {
        if (depth == 0)
            return false;
        json_array_foreach(j, i, v)
        {
            if (!s_json_depth_ok(v, depth - 1))
                return false;
        }
    } else if (json_is_object(j)) {
        if (depth == 0)
            return false;
        json_object_foreach((json_t *)j, k, v)
        {
            if (!s_json_depth_ok(v, depth - 1))
                return false;
        }
    }
    return true;
}

/* Appends j as msgpack; the caller has checked the depth. */
static proto_rc_t
s_json_to_mpk(const json_t *j, proto_buf_t *out)
{
    const char *k;
    size_t klen, i;
    json_t *v;
    proto_rc_t rc;
    int e = 0;

    switch (json_typeof(j)) {
    case JSON_NULL:
        e = mpk_write_nil(out);
        break;
    case JSON_TRUE:
        e = mpk_write_bool(out, true);
        break;
    case JSON_FALSE:
        e = mpk_write_bool(out, false);
        break;
    case JSON_INTEGER: {
        json_int_t n = json_integer_value(j);
        e = n >= 0 ? mpk_write_uint(out, (uint64_t)n) : mpk_write_int(out, n);
        break;
    }
    case JSON_REAL:
        e = mpk_write_double(out, json_real_value(j));
        break;
    case JSON_STRING:
        e = mpk_write_str(out, json_string_value(j), json_string_length(j));
        break;
    case JSON_ARRAY:
        if (json_array_size(j) > UINT32_MAX || mpk_write_array(out, json_array_size(j)) < 0)
            return PROTO_NOMEM;
        json_array_foreach(j, i, v)
        {
            rc = s_json_to_mpk(v, out);
            if (rc != PROTO_OK)
                return rc;
        }
        break;
    case JSON_OBJECT:
        if (json_object_size(j) > UINT32_MAX || mpk_write_map(out, json_object_size(j)) < 0)
            return PROTO_NOMEM;
        /* jansson keeps insertion order, so keys come out as the client
         * wrote them */
        json_object_keylen_foreach((json_t *)j, k, klen, v)
        {
            if (mpk_write_str(out, k, klen) < 0)
                return PROTO_NOMEM;
            rc = s_json_to_mpk(v, out);
            if (rc != PROTO_OK)
                return rc;
        }
        break;
    }
    return e < 0 ? PROTO_NOMEM : PROTO_OK;
}

proto_rc_t
proto_json_to_mpk(const uint8_t *json, size_t len, proto_buf_t *out)
{
    json_error_t jerr;
    json_t *root;
    size_t mark = out->len;
    proto_rc_t rc;

    root = json_loadb((const char *)json, len, JSON_DECODE_FLAGS, &jerr);
    if (!root)
        return PROTO_MALFORMED;
    if (!s_json_depth_ok(root, MPK_MAX_DEPTH)) {
        rc = PROTO_TOO_BIG;
        goto out_decref;
    }
    rc = s_json_to_mpk(root, out);
    if (rc != PROTO_OK)
        out->len = mark;
out_decref:
    json_decref(root);
    return rc;
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

static void
s_json_field(json_t *root, const char *name, s_field_t *f)
{
    json_t *j = json_object_get(root, name);

    if (!j) {
        f->kind = F_ABSENT;
    } else if (json_is_integer(j) && json_integer_value(j) >= 0) {
        f->kind = F_UINT;
        f->u = (uint64_t)json_integer_value(j);
    } else if (json_is_string(j)) {
        f->kind = F_STR;
        f->s = proto_span(json_string_value(j), json_string_length(j));
    } else if (json_is_boolean(j)) {
        f->kind = F_BOOL;
        f->u = json_is_true(j);
    } else {
        f->kind = F_OTHER;
    }
}

static proto_rc_t
s_decode_json(const uint8_t *in, size_t len, proto_buf_t *scratch, proto_envelope_t *env,
              const char **err)
{
    s_fields_t f;
    json_error_t jerr;
    json_t *root, *data;
    size_t data_off;
    proto_rc_t rc;

    root = json_loadb((const char *)in, len, JSON_DECODE_FLAGS, &jerr);
    if (!root) {
        *err = "invalid JSON";
        return PROTO_MALFORMED;
    }
    if (!json_is_object(root)) {
        *err = "envelope must be an object";
        rc = PROTO_MALFORMED;
        goto out_decref;
    }
    s_json_field(root, "v", &f.v);
    s_json_field(root, "op", &f.op);
    s_json_field(root, "id", &f.id);
    s_json_field(root, "svc", &f.svc);
    s_json_field(root, "key", &f.key);
    s_json_field(root, "channel", &f.channel);
    s_json_field(root, "token", &f.token);
    s_json_field(root, "epoch", &f.epoch);
    s_json_field(root, "offset", &f.offset);
    s_json_field(root, "limit", &f.limit);
    s_json_field(root, "presence", &f.presence);
    data = json_object_get(root, "data");

    /* The root object is one level; each field may nest MPK_MAX_DEPTH more,
     * as in the msgpack decoder. */
    if (!s_json_depth_ok(root, MPK_MAX_DEPTH + 1)) {
        s_take_id(&f.id, &env->id);
        *err = "nesting too deep";
        rc = PROTO_TOO_BIG;
        goto out_decref;
    }
    rc = s_check_fields(&f, env, err);
    if (rc != PROTO_OK)
        goto out_decref;

    /* The strings and data must outlive root: copy them into scratch.
     * scratch may move while we append, so keep offsets and make spans at
     * the end. */
    {
        proto_span_t *strs[S_N_STRS] = {&env->svc, &env->key, &env->channel, &env->token,
                                        &env->epoch};
        size_t offs[S_N_STRS];

        for (size_t i = 0; i < S_N_STRS; i++) {
            offs[i] = scratch->len;
            if (proto_buf_append(scratch, strs[i]->ptr, strs[i]->len) < 0)
                goto out_nomem;
        }
        data_off = scratch->len;
        if (data) {
            rc = s_json_to_mpk(data, scratch);
            if (rc != PROTO_OK)
                goto out_nomem;
        } else if (mpk_write_nil(scratch) < 0) {
            goto out_nomem;
        }
        /* data wrote at least one byte, so payload is not NULL here */
        for (size_t i = 0; i < S_N_STRS; i++)
            *strs[i] = proto_span(proto_buf_payload(scratch) + offs[i], strs[i]->len);
        env->data = proto_span(proto_buf_payload(scratch) + data_off, scratch->len - data_off);
    }
    rc = PROTO_OK;
    goto out_decref;

out_nomem:
    env->svc = env->key = env->data = env->channel = env->token = env->epoch = proto_span(NULL, 0);
    *err = "out of memory";
    rc = PROTO_NOMEM;
out_decref:
    json_decref(root);
    return rc;
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

/* Sets obj[key] = v, taking v; -1 when out of memory (v is released). */
static int
s_jset(json_t *obj, const char *key, json_t *v)
{
    return v ? json_object_set_new_nocheck(obj, key, v) : -1;
}

/* Builds {"v":1,"op":op} with the id when there is one. */
static json_t *
s_json_head(const char *op, const proto_id_t *id)
{
    json_t *o = json_object();

    if (!o)
        return NULL;
    if (s_jset(o, "v", json_integer(PROTO_VERSION)) < 0 || s_jset(o, "op", json_string(op)) < 0)
        goto out_decref;
    if (id && id->kind == PROTO_ID_UINT && s_jset(o, "id", json_integer((json_int_t)id->u)) < 0)
        goto out_decref;
    if (id && id->kind == PROTO_ID_STR && s_jset(o, "id", json_stringn_nocheck(id->s, id->len)) < 0)
        goto out_decref;
    return o;

out_decref:
    json_decref(o);
    return NULL;
}

/* Dumps {"v":1,"op":op,["id":id,]name:value...} where value is an already
 * converted JSON value (taken) */
static proto_rc_t
s_json_frame(const char *op, const proto_id_t *id, const char *svc_name, proto_span_t svc,
             json_t *data, proto_buf_t *out)
{
    json_t *o = s_json_head(op, id);
    proto_rc_t rc = PROTO_NOMEM;

    if (!o)
        goto out_data;
    if (svc_name && s_jset(o, svc_name, json_stringn_nocheck((const char *)svc.ptr, svc.len)) < 0)
        goto out_obj;
    if (s_jset(o, "data", data) < 0) {
        data = NULL;
        goto out_obj;
    }
    rc = s_json_dump(o, out);
    json_decref(o);
    return rc;

out_obj:
    json_decref(o);
out_data:
    json_decref(data);
    return rc;
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
    json_t *jdata;
    proto_rc_t rc;

    data = s_data_or_nil(data);
    if (!s_id_ok(id))
        return PROTO_MALFORMED;
    if (enc == PROTO_ENC_JSON) {
        rc = s_mpk_span_to_json(data, &jdata);
        if (rc != PROTO_OK)
            return rc;
        return s_json_frame("res", id, NULL, proto_span(NULL, 0), jdata, out);
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
    json_t *o;
    proto_rc_t rc;

    if (!s_id_ok(id) || !proto_code_valid(code) || !s_str_ok(msg))
        return PROTO_MALFORMED;
    if (enc == PROTO_ENC_JSON) {
        o = s_json_head("err", id);
        if (!o)
            return PROTO_NOMEM;
        if (s_jset(o, "code", json_stringn_nocheck((const char *)code.ptr, code.len)) < 0 ||
            s_jset(o, "msg", json_stringn_nocheck((const char *)msg.ptr, msg.len)) < 0) {
            json_decref(o);
            return PROTO_NOMEM;
        }
        rc = s_json_dump(o, out);
        json_decref(o);
        return rc;
    }
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
    json_t *jdata;
    proto_rc_t rc;

    data = s_data_or_nil(data);
    if (!proto_svc_valid(svc))
        return PROTO_MALFORMED;
    if (enc == PROTO_ENC_JSON) {
        rc = s_mpk_span_to_json(data, &jdata);
        if (rc != PROTO_OK)
            return rc;
        return s_json_frame("push", NULL, "svc", svc, jdata, out);
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

static json_t *
s_jstr(proto_span_t s)
{
    return json_stringn_nocheck((const char *)s.ptr, s.len);
}

proto_rc_t
proto_envelope_encode_msg(proto_enc_t enc, proto_span_t channel, proto_span_t epoch,
                          uint64_t offset, proto_span_t user, proto_span_t data, proto_buf_t *out)
{
    size_t mark = out->len;
    json_t *o, *jdata;
    proto_rc_t rc;

    data = s_data_or_nil(data);
    if (!s_str_ok(channel) || !s_str_ok(epoch) || !s_str_ok(user) || offset > (uint64_t)INT64_MAX)
        return PROTO_MALFORMED;
    if (enc == PROTO_ENC_JSON) {
        rc = s_mpk_span_to_json(data, &jdata);
        if (rc != PROTO_OK)
            return rc;
        o = s_json_head("msg", NULL);
        if (!o || s_jset(o, "channel", s_jstr(channel)) < 0 ||
            s_jset(o, "epoch", s_jstr(epoch)) < 0 ||
            s_jset(o, "offset", json_integer((json_int_t)offset)) < 0 ||
            (user.len && s_jset(o, "user", s_jstr(user)) < 0)) {
            json_decref(o);
            json_decref(jdata);
            return PROTO_NOMEM;
        }
        if (s_jset(o, "data", jdata) < 0) {
            json_decref(o);
            return PROTO_NOMEM;
        }
        rc = s_json_dump(o, out);
        json_decref(o);
        return rc;
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
    json_t *o;
    proto_rc_t rc;

    if (!s_str_ok(channel) || !s_str_ok(user))
        return PROTO_MALFORMED;
    if (enc == PROTO_ENC_JSON) {
        o = s_json_head(op, NULL);
        if (!o || s_jset(o, "channel", s_jstr(channel)) < 0 ||
            s_jset(o, "user", s_jstr(user)) < 0) {
            json_decref(o);
            return PROTO_NOMEM;
        }
        rc = s_json_dump(o, out);
        json_decref(o);
        return rc;
    }
    if (s_mpk_head(out, op, NULL, 2) < 0 || mpk_write_cstr(out, "channel") < 0 ||
        mpk_write_str(out, channel.ptr, channel.len) < 0 || mpk_write_cstr(out, "user") < 0 ||
        mpk_write_str(out, user.ptr, user.len) < 0) {
        out->len = mark;
        return PROTO_NOMEM;
    }
    return PROTO_OK;
}
