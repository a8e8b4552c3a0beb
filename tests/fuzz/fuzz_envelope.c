/*
 * fuzz_envelope.c - libFuzzer target for the client envelope decoders and
 * the JSON <-> msgpack converters.
 *
 * Besides "no crash, no leak", it checks the invariants callers rely on:
 * a decoded envelope has valid fields and one valid msgpack data value;
 * a failure always says why; JSON from a decoded JSON frame always encodes
 * back; conversion is stable (msgpack -> JSON -> msgpack -> JSON gives the
 * same text twice, NUL in object keys aside).
 */
#define _GNU_SOURCE /* memmem */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "envelope.h"
#include "mpk.h"

#define CHECK(c)                                                                                   \
    do {                                                                                           \
        if (!(c))                                                                                  \
            abort();                                                                               \
    } while (0)

static void
s_check_decoded(proto_enc_t enc, const proto_envelope_t *env, proto_buf_t *out)
{
    CHECK(env->op >= PROTO_OP_REQ && env->op <= PROTO_OP_HISTORY);
    CHECK(env->op != PROTO_OP_REQ || proto_svc_valid(env->svc));
    CHECK(env->svc.len == 0 || proto_svc_valid(env->svc));
    CHECK(env->key.len <= PROTO_KEY_MAX && proto_utf8_valid(env->key.ptr, env->key.len));
    CHECK(env->id.kind <= PROTO_ID_STR);
    CHECK(mpk_validate(env->data.ptr, env->data.len, MPK_MAX_DEPTH) == PROTO_OK);

    for (int e = 0; e < 2; e++) {
        proto_rc_t rc;
        proto_buf_reset(out);
        rc = proto_envelope_encode_res((proto_enc_t)e, &env->id, env->data, out);
        /* what came in as JSON can always go out as JSON */
        if (enc == PROTO_ENC_JSON || e == PROTO_ENC_MSGPACK)
            CHECK(rc == PROTO_OK);
        else
            CHECK(rc == PROTO_OK || rc == PROTO_MALFORMED);
        rc = proto_envelope_encode_err((proto_enc_t)e, &env->id, proto_span("internal", 8),
                                       proto_span("m", 1), out);
        CHECK(rc == PROTO_OK);
    }
}

static void
s_check_convert(const uint8_t *data, size_t size, proto_buf_t *a, proto_buf_t *b)
{
    size_t first;

    proto_buf_reset(a);
    if (proto_mpk_to_json(proto_span(data, size), a) != PROTO_OK) {
        CHECK(a->len == 0);
        return;
    }
    proto_buf_reset(b);
    if (proto_json_to_mpk(proto_buf_payload(a), a->len, b) != PROTO_OK) {
        /* jansson cannot load a NUL in an object key, though it is valid
         * JSON and msgpack may carry it; that is the only way back fails */
        CHECK(memmem(proto_buf_payload(a), a->len, "\\u0000", 6) != NULL);
        return;
    }
    first = a->len;
    CHECK(proto_mpk_to_json(proto_span(proto_buf_payload(b), b->len), a) == PROTO_OK);
    CHECK(a->len == 2 * first);
    CHECK(memcmp(proto_buf_payload(a), proto_buf_payload(a) + first, first) == 0);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    proto_buf_t scratch, out, tmp;
    proto_envelope_t env;
    const char *err;

    proto_buf_init(&scratch, 0);
    proto_buf_init(&out, 16);
    proto_buf_init(&tmp, 0);
    for (int e = 0; e < 2; e++) {
        proto_rc_t rc = proto_envelope_decode((proto_enc_t)e, data, size, &scratch, &env, &err);
        if (rc == PROTO_OK)
            s_check_decoded((proto_enc_t)e, &env, &out);
        else
            CHECK(err != NULL && (rc == PROTO_MALFORMED || rc == PROTO_TOO_BIG));
    }
    s_check_convert(data, size, &out, &tmp);
    proto_buf_reset(&out);
    (void)proto_json_to_mpk(data, size, &out);
    proto_buf_fini(&scratch);
    proto_buf_fini(&out);
    proto_buf_fini(&tmp);
    return 0;
}
