/*
 * json_diff.h - runs one input through the streaming JSON codecs
 * (protocol/json.c, behind envelope.h) and through the jansson reference
 * (json_ref.c), and says whether they behaved the same: same return code,
 * same error text, same id kept for the error reply, same output bytes.
 * Shared by test_json_diff.c (hand-picked inputs) and
 * tests/fuzz/fuzz_json_diff.c (generated ones).
 *
 * The one documented difference (json.h): jansson drops a raw NUL byte
 * that directly follows a number or a literal ("1\0" loads as 1), which is
 * not JSON; the new code refuses every raw NUL byte as invalid JSON. So an
 * input holding a raw NUL byte must be refused as invalid JSON by the new
 * code, and is compared with the reference only where the reference
 * refused it the same way.
 *
 * And a bug of the reference, not copied: it left env->offset
 * uninitialised (stack garbage) for a sub without recovery; the new code
 * sets it to 0. offset is compared only when an epoch was given.
 */
#ifndef WSGATE_JSON_DIFF_H
#define WSGATE_JSON_DIFF_H

#include <stdio.h>
#include <string.h>

#include "envelope.h"
#include "json_ref.h"

/* Where the two first differed, for the failure message. */
static char jd_why[256];

static bool
jd_fail(const char *what, int a, int b)
{
    snprintf(jd_why, sizeof jd_why, "%s: new %d, reference %d", what, a, b);
    return false;
}

static bool
jd_span_eq(proto_span_t a, proto_span_t b)
{
    return a.len == b.len && (a.len == 0 || memcmp(a.ptr, b.ptr, a.len) == 0);
}

static bool
jd_buf_eq(const proto_buf_t *a, const proto_buf_t *b)
{
    return jd_span_eq(proto_span(proto_buf_payload(a), a->len),
                      proto_span(proto_buf_payload(b), b->len));
}

static bool
jd_id_eq(const proto_id_t *a, const proto_id_t *b)
{
    if (a->kind != b->kind)
        return false;
    if (a->kind == PROTO_ID_UINT)
        return a->u == b->u;
    if (a->kind == PROTO_ID_STR)
        return a->len == b->len && memcmp(a->s, b->s, a->len) == 0;
    return true;
}

/* Output buffers start with a few bytes, to check that both append. */
static void
jd_bufs(proto_buf_t *a, proto_buf_t *b)
{
    proto_buf_init(a, 16);
    proto_buf_init(b, 16);
    proto_buf_append(a, "pre", 3);
    proto_buf_append(b, "pre", 3);
}

static bool
jd_json_to_mpk(const uint8_t *in, size_t len)
{
    proto_buf_t a, b;
    proto_rc_t ra, rb;
    bool ok = true;

    jd_bufs(&a, &b);
    ra = proto_json_to_mpk(in, len, &a);
    rb = ref_json_to_mpk(in, len, &b);
    if (len && memchr(in, 0, len)) {
        if (ra != PROTO_MALFORMED || a.len != 3)
            ok = jd_fail("json_to_mpk, raw NUL byte: not refused", ra, rb);
    } else if (ra != rb) {
        ok = jd_fail("json_to_mpk rc", ra, rb);
    } else if (!jd_buf_eq(&a, &b)) {
        ok = jd_fail("json_to_mpk bytes (lengths)", (int)a.len, (int)b.len);
    }
    proto_buf_fini(&a);
    proto_buf_fini(&b);
    return ok;
}

static bool
jd_decode(const uint8_t *in, size_t len)
{
    proto_buf_t sa, sb;
    proto_envelope_t ea, eb;
    const char *erra, *errb;
    proto_rc_t ra, rb;
    bool ok = true;

    proto_buf_init(&sa, 0);
    proto_buf_init(&sb, 0);
    ra = proto_envelope_decode(PROTO_ENC_JSON, in, len, &sa, &ea, &erra);
    rb = ref_envelope_decode(PROTO_ENC_JSON, in, len, &sb, &eb, &errb);
    if (len && memchr(in, 0, len)) {
        /* whatever the reference made of it */
        if (ra != PROTO_MALFORMED || strcmp(erra, "invalid JSON") != 0 || ea.id.kind != 0)
            ok = jd_fail("decode, raw NUL byte: not refused as invalid JSON", ra, rb);
        goto out;
    }
    if (ra != rb) {
        ok = jd_fail("decode rc", ra, rb);
    } else if ((erra == NULL) != (errb == NULL) || (erra && strcmp(erra, errb) != 0)) {
        snprintf(jd_why, sizeof jd_why, "decode err: new \"%s\", reference \"%s\"",
                 erra ? erra : "(none)", errb ? errb : "(none)");
        ok = false;
    } else if (!jd_id_eq(&ea.id, &eb.id)) {
        ok = jd_fail("decode id kind", ea.id.kind, eb.id.kind);
    } else if (ra == PROTO_OK) {
        if (ea.op != eb.op)
            ok = jd_fail("decode op", ea.op, eb.op);
        else if (!jd_span_eq(ea.svc, eb.svc) || !jd_span_eq(ea.key, eb.key) ||
                 !jd_span_eq(ea.channel, eb.channel) || !jd_span_eq(ea.token, eb.token) ||
                 !jd_span_eq(ea.epoch, eb.epoch))
            ok = jd_fail("decode string fields", 0, 0);
        else if (!jd_span_eq(ea.data, eb.data))
            ok = jd_fail("decode data (lengths)", (int)ea.data.len, (int)eb.data.len);
        /* the reference left offset uninitialised unless recovering
         * (epoch given): compare it only then */
        else if ((ea.epoch.len && ea.offset != eb.offset) || ea.limit != eb.limit ||
                 ea.presence != eb.presence)
            ok = jd_fail("decode offset/limit/presence",
                         (int)(ea.offset * 100 + ea.limit * 10 + ea.presence),
                         (int)(eb.offset * 100 + eb.limit * 10 + eb.presence));
    }
out:
    proto_buf_fini(&sa);
    proto_buf_fini(&sb);
    return ok;
}

/* Every JSON path of one input text. */
static bool
jd_json(const uint8_t *in, size_t len)
{
    return jd_json_to_mpk(in, len) && jd_decode(in, len);
}

static bool
jd_same(const char *what, proto_rc_t ra, proto_rc_t rb, const proto_buf_t *a, const proto_buf_t *b)
{
    if (ra != rb)
        return jd_fail(what, ra, rb);
    if (!jd_buf_eq(a, b)) {
        snprintf(jd_why, sizeof jd_why, "%s bytes: new %.*s | reference %.*s", what,
                 (int)(a->len > 100 ? 100 : a->len), (const char *)proto_buf_payload(a),
                 (int)(b->len > 100 ? 100 : b->len), (const char *)proto_buf_payload(b));
        return false;
    }
    return true;
}

/* Every msgpack -> JSON path of one msgpack value (or not-a-value). */
static bool
jd_mpk(const uint8_t *mpk, size_t len)
{
    static const proto_id_t ids[3] = {
        {.kind = PROTO_ID_NONE},
        {.kind = PROTO_ID_UINT, .u = 9223372036854775807ULL},
        {.kind = PROTO_ID_STR, .len = 6, .s = "a\"\\/\x01\x7f"},
    };
    proto_span_t data = proto_span(mpk, len);
    proto_buf_t a, b;
    bool ok = true;

    jd_bufs(&a, &b);
    ok = jd_same("mpk_to_json", proto_mpk_to_json(data, &a), ref_mpk_to_json(data, &b), &a, &b);
    for (int i = 0; ok && i < 3; i++)
        ok = jd_same("encode_res", proto_envelope_encode_res(PROTO_ENC_JSON, &ids[i], data, &a),
                     ref_envelope_encode_res(PROTO_ENC_JSON, &ids[i], data, &b), &a, &b);
    if (ok)
        ok = jd_same("encode_push",
                     proto_envelope_encode_push(PROTO_ENC_JSON, proto_span("s.v-c_1", 7), data, &a),
                     ref_envelope_encode_push(PROTO_ENC_JSON, proto_span("s.v-c_1", 7), data, &b),
                     &a, &b);
    if (ok)
        ok = jd_same(
            "encode_msg",
            proto_envelope_encode_msg(PROTO_ENC_JSON, proto_span("ch/1", 4), proto_span("e\tp", 3),
                                      42, proto_span("u\"", 2), data, &a),
            ref_envelope_encode_msg(PROTO_ENC_JSON, proto_span("ch/1", 4), proto_span("e\tp", 3),
                                    42, proto_span("u\"", 2), data, &b),
            &a, &b);
    if (ok)
        ok =
            jd_same("encode_msg (no user)",
                    proto_envelope_encode_msg(PROTO_ENC_JSON, proto_span("c", 1), proto_span("", 0),
                                              (uint64_t)INT64_MAX, proto_span("", 0), data, &a),
                    ref_envelope_encode_msg(PROTO_ENC_JSON, proto_span("c", 1), proto_span("", 0),
                                            (uint64_t)INT64_MAX, proto_span("", 0), data, &b),
                    &a, &b);
    /* the bytes as a string member: escaping of any valid UTF-8 */
    if (ok)
        ok = jd_same(
            "encode_err",
            proto_envelope_encode_err(PROTO_ENC_JSON, &ids[2], proto_span("internal", 8), data, &a),
            ref_envelope_encode_err(PROTO_ENC_JSON, &ids[2], proto_span("internal", 8), data, &b),
            &a, &b);
    if (ok)
        ok = jd_same("encode_presence",
                     proto_envelope_encode_presence(PROTO_ENC_JSON, len & 1, data, data, &a),
                     ref_envelope_encode_presence(PROTO_ENC_JSON, len & 1, data, data, &b), &a, &b);
    proto_buf_fini(&a);
    proto_buf_fini(&b);
    return ok;
}

#endif
