/*
 * test_envelope.c - the client envelope codecs, the JSON <-> msgpack
 * converters and the validators (protocol/envelope.c).
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "testutil.h"

#include "envelope.h"
#include "mpk.h"

/* JSON text -> msgpack bytes in b (reset first); asserts success. */
static void
s_j2m(const char *json, proto_buf_t *b)
{
    proto_buf_reset(b);
    assert_int_equal(proto_json_to_mpk((const uint8_t *)json, strlen(json), b), PROTO_OK);
}

/* msgpack span -> NUL-terminated JSON text in b; asserts success. */
static const char *
s_m2j(proto_span_t m, proto_buf_t *b)
{
    proto_buf_reset(b);
    assert_int_equal(proto_mpk_to_json(m, b), PROTO_OK);
    assert_int_equal(proto_buf_append(b, "", 1), 0);
    return (const char *)proto_buf_payload(b);
}

static bool
s_span_is(proto_span_t s, const char *lit)
{
    return s.len == strlen(lit) && (s.len == 0 || memcmp(s.ptr, lit, s.len) == 0);
}

/* ---- decoding: JSON ---- */

static void
test_json_decode_full(void **state)
{
    const char *in = "{\"v\":1,\"op\":\"req\",\"id\":7,\"svc\":\"chat.v2\",\"key\":\"room-1\","
                     "\"data\":{\"a\":[1,2.5,\"x\",null,true,-3]}}";
    uint8_t want[64];
    size_t n = s_hex("81 a1 61 96 01 cb 40 04 00 00 00 00 00 00 a1 78 c0 c3 fd", want, sizeof want);
    proto_buf_t scratch;
    proto_envelope_t env;
    const char *err = "x";

    (void)state;
    proto_buf_init(&scratch, 0);
    assert_int_equal(proto_envelope_decode(PROTO_ENC_JSON, (const uint8_t *)in, strlen(in),
                                           &scratch, &env, &err),
                     PROTO_OK);
    assert_int_equal(env.op, PROTO_OP_REQ);
    assert_int_equal(env.id.kind, PROTO_ID_UINT);
    assert_int_equal(env.id.u, 7);
    assert_true(s_span_is(env.svc, "chat.v2"));
    assert_true(s_span_is(env.key, "room-1"));
    assert_int_equal(env.data.len, n);
    assert_memory_equal(env.data.ptr, want, n);
    /* everything lives in scratch, not in the freed JSON tree */
    assert_true(env.svc.ptr >= proto_buf_payload(&scratch) &&
                env.data.ptr + env.data.len <= proto_buf_payload(&scratch) + scratch.len);
    proto_buf_fini(&scratch);
}

static void
test_json_decode_minimal(void **state)
{
    const char *in = " { \"svc\" : \"echo\" } \n";
    proto_buf_t scratch;
    proto_envelope_t env;
    const char *err;

    (void)state;
    proto_buf_init(&scratch, 0);
    assert_int_equal(proto_envelope_decode(PROTO_ENC_JSON, (const uint8_t *)in, strlen(in),
                                           &scratch, &env, &err),
                     PROTO_OK);
    assert_int_equal(env.op, PROTO_OP_REQ);
    assert_int_equal(env.id.kind, PROTO_ID_NONE);
    assert_true(s_span_is(env.svc, "echo"));
    assert_int_equal(env.key.len, 0);
    /* absent data is nil */
    assert_int_equal(env.data.len, 1);
    assert_int_equal(env.data.ptr[0], 0xc0);
    proto_buf_fini(&scratch);
}

static void
test_json_decode_scratch_reuse(void **state)
{
    /* scratch is reset per call, and a large data forces it to move while
     * svc/key are already in it */
    proto_buf_t scratch;
    proto_envelope_t env;
    const char *err;
    char *in = malloc(300000);
    size_t n;

    (void)state;
    proto_buf_init(&scratch, 16);
    n = (size_t)sprintf(in, "{\"svc\":\"big\",\"key\":\"k\",\"id\":\"r1\",\"data\":[");
    for (int i = 0; i < 20000; i++)
        n += (size_t)sprintf(in + n, "%s\"abcdefghij\"", i ? "," : "");
    n += (size_t)sprintf(in + n, "]}");
    for (int round = 0; round < 2; round++) {
        assert_int_equal(
            proto_envelope_decode(PROTO_ENC_JSON, (const uint8_t *)in, n, &scratch, &env, &err),
            PROTO_OK);
        assert_true(s_span_is(env.svc, "big"));
        assert_true(s_span_is(env.key, "k"));
        assert_int_equal(env.id.kind, PROTO_ID_STR);
        assert_int_equal(env.id.len, 2);
        assert_memory_equal(env.id.s, "r1", 2);
        assert_int_equal(mpk_validate(env.data.ptr, env.data.len, MPK_MAX_DEPTH), PROTO_OK);
        assert_int_equal(env.data.len, 3 + 20000 * 11);
        assert_int_equal(scratch.len, 3 + 1 + env.data.len);
    }
    free(in);
    proto_buf_fini(&scratch);
}

static void
test_ops(void **state)
{
    static const struct {
        const char *name;
        proto_op_t op;
    } ops[] = {
        {"req", PROTO_OP_REQ},         {"auth", PROTO_OP_AUTH}, {"sub", PROTO_OP_SUB},
        {"unsub", PROTO_OP_UNSUB},     {"pub", PROTO_OP_PUB},   {"presence", PROTO_OP_PRESENCE},
        {"history", PROTO_OP_HISTORY},
    };
    proto_buf_t scratch, m;
    proto_envelope_t env;
    const char *err;
    char in[128];

    (void)state;
    proto_buf_init(&scratch, 0);
    proto_buf_init(&m, 0);
    for (size_t k = 0; k < sizeof ops / sizeof ops[0]; k++) {
        snprintf(in, sizeof in, "{\"op\":\"%s\",\"svc\":\"s\",\"channel\":\"c\",\"token\":\"t\"}",
                 ops[k].name);
        assert_int_equal(proto_envelope_decode(PROTO_ENC_JSON, (const uint8_t *)in, strlen(in),
                                               &scratch, &env, &err),
                         PROTO_OK);
        assert_int_equal(env.op, ops[k].op);
        s_j2m(in, &m);
        assert_int_equal(proto_envelope_decode(PROTO_ENC_MSGPACK, proto_buf_payload(&m), m.len,
                                               &scratch, &env, &err),
                         PROTO_OK);
        assert_int_equal(env.op, ops[k].op);
    }
    proto_buf_fini(&scratch);
    proto_buf_fini(&m);
}

/*
 * The same cases through both decoders: the JSON text as is, and converted
 * to msgpack. Both must agree on the result, the message and the id.
 */
typedef struct {
    const char *json;
    proto_rc_t rc;
    const char *err;
    proto_id_kind_t id_kind;
    uint64_t id_u;
    const char *id_s;
} dec_case_t;

#define S64 "abcdefghijklmnopqrstuvwxyzabcdefghijklmnopqrstuvwxyzabcdefghijkl"

static const dec_case_t s_dec_cases[] = {
    {"{\"svc\":\"a\"}", PROTO_OK, NULL, PROTO_ID_NONE, 0, NULL},
    {"[]", PROTO_MALFORMED, "envelope must be an object", PROTO_ID_NONE, 0, NULL},
    {"\"svc\"", PROTO_MALFORMED, "envelope must be an object", PROTO_ID_NONE, 0, NULL},
    {"null", PROTO_MALFORMED, "envelope must be an object", PROTO_ID_NONE, 0, NULL},
    {"{\"v\":1,\"svc\":\"a\"}", PROTO_OK, NULL, PROTO_ID_NONE, 0, NULL},
    {"{\"v\":2,\"svc\":\"a\",\"id\":4}", PROTO_MALFORMED, "unsupported version", PROTO_ID_UINT, 4,
     NULL},
    {"{\"v\":0,\"svc\":\"a\"}", PROTO_MALFORMED, "unsupported version", PROTO_ID_NONE, 0, NULL},
    {"{\"v\":\"1\",\"svc\":\"a\"}", PROTO_MALFORMED, "unsupported version", PROTO_ID_NONE, 0, NULL},
    {"{\"v\":-1,\"svc\":\"a\"}", PROTO_MALFORMED, "unsupported version", PROTO_ID_NONE, 0, NULL},
    {"{\"v\":1.0,\"svc\":\"a\"}", PROTO_MALFORMED, "unsupported version", PROTO_ID_NONE, 0, NULL},
    {"{\"op\":\"res\",\"svc\":\"a\"}", PROTO_MALFORMED, "unknown op", PROTO_ID_NONE, 0, NULL},
    {"{\"op\":\"REQ\",\"svc\":\"a\"}", PROTO_MALFORMED, "unknown op", PROTO_ID_NONE, 0, NULL},
    {"{\"op\":1,\"svc\":\"a\"}", PROTO_MALFORMED, "unknown op", PROTO_ID_NONE, 0, NULL},
    {"{\"op\":null,\"svc\":\"a\"}", PROTO_MALFORMED, "unknown op", PROTO_ID_NONE, 0, NULL},
    {"{}", PROTO_MALFORMED, "missing svc", PROTO_ID_NONE, 0, NULL},
    {"{\"op\":\"req\",\"id\":\"q\"}", PROTO_MALFORMED, "missing svc", PROTO_ID_STR, 0, "q"},
    {"{\"op\":\"sub\",\"channel\":\"c\"}", PROTO_OK, NULL, PROTO_ID_NONE, 0,
     NULL}, /* svc only needed for req */
    {"{\"op\":\"sub\"}", PROTO_MALFORMED, "missing channel", PROTO_ID_NONE, 0, NULL},
    {"{\"op\":\"pub\",\"channel\":7}", PROTO_MALFORMED, "invalid channel", PROTO_ID_NONE, 0, NULL},
    {"{\"op\":\"unsub\",\"channel\":\"\"}", PROTO_MALFORMED, "invalid channel", PROTO_ID_NONE, 0,
     NULL},
    {"{\"op\":\"auth\"}", PROTO_MALFORMED, "missing token", PROTO_ID_NONE, 0, NULL},
    {"{\"op\":\"auth\",\"token\":\"\"}", PROTO_MALFORMED, "invalid token", PROTO_ID_NONE, 0, NULL},
    {"{\"op\":\"auth\",\"token\":1}", PROTO_MALFORMED, "invalid token", PROTO_ID_NONE, 0, NULL},
    {"{\"op\":\"sub\",\"channel\":\"c\",\"presence\":1}", PROTO_MALFORMED, "invalid presence",
     PROTO_ID_NONE, 0, NULL},
    {"{\"op\":\"sub\",\"channel\":\"c\",\"epoch\":\"e\"}", PROTO_MALFORMED,
     "recovery needs epoch and offset", PROTO_ID_NONE, 0, NULL},
    {"{\"op\":\"sub\",\"channel\":\"c\",\"offset\":3}", PROTO_MALFORMED,
     "recovery needs epoch and offset", PROTO_ID_NONE, 0, NULL},
    {"{\"op\":\"sub\",\"channel\":\"c\",\"epoch\":\"e\",\"offset\":-1}", PROTO_MALFORMED,
     "recovery needs epoch and offset", PROTO_ID_NONE, 0, NULL},
    {"{\"op\":\"history\",\"channel\":\"c\",\"limit\":\"x\"}", PROTO_MALFORMED, "invalid limit",
     PROTO_ID_NONE, 0, NULL},
    {"{\"op\":\"sub\",\"svc\":\"\"}", PROTO_MALFORMED, "invalid svc", PROTO_ID_NONE, 0, NULL},
    {"{\"svc\":\"\"}", PROTO_MALFORMED, "invalid svc", PROTO_ID_NONE, 0, NULL},
    {"{\"svc\":\"Chat\"}", PROTO_MALFORMED, "invalid svc", PROTO_ID_NONE, 0, NULL},
    {"{\"svc\":\"a b\"}", PROTO_MALFORMED, "invalid svc", PROTO_ID_NONE, 0, NULL},
    {"{\"svc\":\"a/b\"}", PROTO_MALFORMED, "invalid svc", PROTO_ID_NONE, 0, NULL},
    {"{\"svc\":\"\\u00e9\"}", PROTO_MALFORMED, "invalid svc", PROTO_ID_NONE, 0, NULL},
    {"{\"svc\":1}", PROTO_MALFORMED, "invalid svc", PROTO_ID_NONE, 0, NULL},
    {"{\"svc\":null}", PROTO_MALFORMED, "invalid svc", PROTO_ID_NONE, 0, NULL},
    {"{\"svc\":\"" S64 "\"}", PROTO_OK, NULL, PROTO_ID_NONE, 0, NULL},
    {"{\"svc\":\"" S64 "m\"}", PROTO_MALFORMED, "invalid svc", PROTO_ID_NONE, 0, NULL},
    {"{\"svc\":\"a-z_0.9\"}", PROTO_OK, NULL, PROTO_ID_NONE, 0, NULL},
    {"{\"svc\":\"a\",\"key\":\"\"}", PROTO_MALFORMED, "invalid key", PROTO_ID_NONE, 0, NULL},
    {"{\"svc\":\"a\",\"key\":5}", PROTO_MALFORMED, "invalid key", PROTO_ID_NONE, 0, NULL},
    {"{\"svc\":\"a\",\"key\":null}", PROTO_MALFORMED, "invalid key", PROTO_ID_NONE, 0, NULL},
    {"{\"svc\":\"a\",\"key\":\"\\u00e9 \\ud83d\\ude00 \\u0000\"}", PROTO_OK, NULL, PROTO_ID_NONE, 0,
     NULL},
    {"{\"svc\":\"a\",\"key\":\"" S64 S64 S64 S64 "\"}", PROTO_OK, NULL, PROTO_ID_NONE, 0, NULL},
    {"{\"svc\":\"a\",\"key\":\"" S64 S64 S64 S64 "x\"}", PROTO_MALFORMED, "invalid key",
     PROTO_ID_NONE, 0, NULL},
    {"{\"svc\":\"a\",\"id\":0}", PROTO_OK, NULL, PROTO_ID_UINT, 0, NULL},
    {"{\"svc\":\"a\",\"id\":9223372036854775807}", PROTO_OK, NULL, PROTO_ID_UINT, INT64_MAX, NULL},
    {"{\"svc\":\"a\",\"id\":\"" S64 "\"}", PROTO_OK, NULL, PROTO_ID_STR, 0, S64},
    {"{\"svc\":\"a\",\"id\":\"" S64 "m\"}", PROTO_MALFORMED, "invalid id", PROTO_ID_NONE, 0, NULL},
    {"{\"svc\":\"a\",\"id\":\"\"}", PROTO_MALFORMED, "invalid id", PROTO_ID_NONE, 0, NULL},
    {"{\"svc\":\"a\",\"id\":-1}", PROTO_MALFORMED, "invalid id", PROTO_ID_NONE, 0, NULL},
    {"{\"svc\":\"a\",\"id\":1.5}", PROTO_MALFORMED, "invalid id", PROTO_ID_NONE, 0, NULL},
    {"{\"svc\":\"a\",\"id\":null}", PROTO_MALFORMED, "invalid id", PROTO_ID_NONE, 0, NULL},
    {"{\"svc\":\"a\",\"id\":true}", PROTO_MALFORMED, "invalid id", PROTO_ID_NONE, 0, NULL},
    {"{\"svc\":\"a\",\"id\":[1]}", PROTO_MALFORMED, "invalid id", PROTO_ID_NONE, 0, NULL},
    {"{\"svc\":\"a\",\"id\":{}}", PROTO_MALFORMED, "invalid id", PROTO_ID_NONE, 0, NULL},
    /* a bad field before the id still leaves the id for the reply */
    {"{\"svc\":\"BAD\",\"id\":\"x-1\"}", PROTO_MALFORMED, "invalid svc", PROTO_ID_STR, 0, "x-1"},
    {"{\"key\":\"\",\"op\":\"nope\",\"id\":12}", PROTO_MALFORMED, "unknown op", PROTO_ID_UINT, 12,
     NULL},
    {"{\"id\":12,\"svc\":\"a\",\"key\":\"\"}", PROTO_MALFORMED, "invalid key", PROTO_ID_UINT, 12,
     NULL},
    /* unknown fields are ignored, whatever they hold */
    {"{\"svc\":\"a\",\"x\":{\"y\":[1,2,{}]},\"zz\":null,\"SVC\":1,\"\":\"\"}", PROTO_OK, NULL,
     PROTO_ID_NONE, 0, NULL},
    {"{\"svc\":\"a\",\"data\":null}", PROTO_OK, NULL, PROTO_ID_NONE, 0, NULL},
    {"{\"svc\":\"a\",\"data\":[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[1]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]}",
     PROTO_OK, NULL, PROTO_ID_NONE, 0, NULL},
    {"{\"id\":9,\"svc\":\"a\",\"data\":[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[1]]]]]]]]]]]]]]]]]]]]]]]]]]"
     "]]"
     "]]]]]}",
     PROTO_TOO_BIG, "nesting too deep", PROTO_ID_UINT, 9, NULL},
    {"{\"svc\":\"a\",\"x\":[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[1]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]}",
     PROTO_TOO_BIG, "nesting too deep", PROTO_ID_NONE, 0, NULL},
};

static void
s_check_case(const dec_case_t *c, proto_rc_t rc, const char *err, const proto_envelope_t *env,
             const char *enc)
{
    if (rc != c->rc || (c->err && (!err || strcmp(err, c->err) != 0)))
        fail_msg("%s: %s: rc %d err '%s', want %d '%s'", enc, c->json, rc, err ? err : "(null)",
                 c->rc, c->err ? c->err : "");
    assert_int_equal(env->id.kind, c->id_kind);
    if (c->id_kind == PROTO_ID_UINT)
        assert_true(env->id.u == c->id_u);
    if (c->id_kind == PROTO_ID_STR) {
        assert_int_equal(env->id.len, strlen(c->id_s));
        assert_memory_equal(env->id.s, c->id_s, env->id.len);
    }
    if (rc == PROTO_OK)
        assert_int_equal(mpk_validate(env->data.ptr, env->data.len, MPK_MAX_DEPTH), PROTO_OK);
}

static void
test_decode_cases_both_encodings(void **state)
{
    proto_buf_t scratch, m;

    (void)state;
    proto_buf_init(&scratch, 0);
    proto_buf_init(&m, 0);
    for (size_t k = 0; k < sizeof s_dec_cases / sizeof s_dec_cases[0]; k++) {
        const dec_case_t *c = &s_dec_cases[k];
        proto_envelope_t env;
        const char *err = NULL;
        proto_rc_t rc;

        rc = proto_envelope_decode(PROTO_ENC_JSON, (const uint8_t *)c->json, strlen(c->json),
                                   &scratch, &env, &err);
        s_check_case(c, rc, err, &env, "json");

        /* the deep cases cannot be converted at all: build them by hand */
        proto_buf_reset(&m);
        if (proto_json_to_mpk((const uint8_t *)c->json, strlen(c->json), &m) != PROTO_OK)
            continue;
        err = NULL;
        rc = proto_envelope_decode(PROTO_ENC_MSGPACK, proto_buf_payload(&m), m.len, &scratch, &env,
                                   &err);
        s_check_case(c, rc, err, &env, "msgpack");
    }
    proto_buf_fini(&scratch);
    proto_buf_fini(&m);
}

static void
test_json_decode_errors(void **state)
{
    static const char *const bad[] = {
        "",
        "{",
        "{\"svc\":\"a\"",
        "{\"svc\":\"a\"} x",
        "{\"svc\":'a'}",
        "{svc:\"a\"}",
        "{\"svc\":\"a\",\"svc\":\"b\"}",               /* duplicates */
        "{\"svc\":\"a\",\"id\":18446744073709551615}", /* jansson: integer too big */
        "{\"svc\":\"a\",\"data\":1e999}",
        "{\"svc\":\"a\",\"data\":NaN}",
        "{\"svc\":\"\xc3\x28\"}",               /* invalid UTF-8 */
        "{\"svc\":\"a\",\"data\":\"\\ud800\"}", /* lone surrogate escape */
    };
    proto_buf_t scratch;
    proto_envelope_t env;
    const char *err;

    (void)state;
    proto_buf_init(&scratch, 0);
    for (size_t k = 0; k < sizeof bad / sizeof bad[0]; k++) {
        err = NULL;
        assert_int_equal(proto_envelope_decode(PROTO_ENC_JSON, (const uint8_t *)bad[k],
                                               strlen(bad[k]), &scratch, &env, &err),
                         PROTO_MALFORMED);
        assert_string_equal(err, "invalid JSON");
        assert_int_equal(env.id.kind, PROTO_ID_NONE);
    }
    proto_buf_fini(&scratch);
}

static void
test_mpk_decode_full_zero_copy(void **state)
{
    proto_buf_t in, scratch;
    proto_envelope_t env;
    const char *err;
    uint8_t data[] = {0x92, 0xc4, 0x02, 0xff, 0x00, 0xd4, 0x01, 0x02}; /* [bin, ext] */

    (void)state;
    proto_buf_init(&in, 0);
    proto_buf_init(&scratch, 0);
    /* {"data": ..., 7: 8, "key": "k", "svc": "s", "op": "pub", "v": 1, "id": 99, "channel": "c"} */
    mpk_write_map(&in, 8);
    mpk_write_cstr(&in, "channel");
    mpk_write_cstr(&in, "c");
    mpk_write_cstr(&in, "data");
    mpk_write_raw(&in, data, sizeof data);
    mpk_write_uint(&in, 7); /* a non-string key: not a field, ignored */
    mpk_write_uint(&in, 8);
    mpk_write_cstr(&in, "key");
    mpk_write_cstr(&in, "k");
    mpk_write_cstr(&in, "svc");
    mpk_write_cstr(&in, "s");
    mpk_write_cstr(&in, "op");
    mpk_write_cstr(&in, "pub");
    mpk_write_cstr(&in, "v");
    mpk_write_uint(&in, 1);
    mpk_write_cstr(&in, "id");
    mpk_write_uint(&in, 99);
    assert_int_equal(proto_envelope_decode(PROTO_ENC_MSGPACK, proto_buf_payload(&in), in.len,
                                           &scratch, &env, &err),
                     PROTO_OK);
    assert_int_equal(env.op, PROTO_OP_PUB);
    assert_int_equal(env.id.kind, PROTO_ID_UINT);
    assert_int_equal(env.id.u, 99);
    assert_true(s_span_is(env.svc, "s"));
    assert_true(s_span_is(env.key, "k"));
    /* data is the client's bytes, in place, bin and ext included */
    assert_ptr_equal(env.data.ptr, proto_buf_payload(&in) + 16);
    assert_int_equal(env.data.len, sizeof data);
    /* "s" is followed by "op","pub","v",1,"id",99: 14 bytes */
    assert_ptr_equal(env.svc.ptr, proto_buf_payload(&in) + in.len - 15);
    assert_int_equal(scratch.len, 0);
    proto_buf_fini(&in);
    proto_buf_fini(&scratch);
}

static void
test_mpk_decode_errors(void **state)
{
    static const struct {
        const char *hex;
        proto_rc_t rc;
        const char *err;
        proto_id_kind_t id_kind;
    } cases[] = {
        {"", PROTO_MALFORMED, "invalid msgpack", PROTO_ID_NONE},
        {"c1", PROTO_MALFORMED, "invalid msgpack", PROTO_ID_NONE},
        {"92 01 02", PROTO_MALFORMED, "envelope must be an object", PROTO_ID_NONE},
        /* {"svc":"a"} then a stray byte */
        {"81 a3 73 76 63 a1 61 c0", PROTO_MALFORMED, "invalid msgpack", PROTO_ID_NONE},
        /* {"svc":"a","svc":"b"} */
        {"82 a3 73 76 63 a1 61 a3 73 76 63 a1 62", PROTO_MALFORMED, "duplicate field",
         PROTO_ID_NONE},
        /* {"id":1,"data":1,"data":2} */
        {"83 a2 69 64 01 a4 64 61 74 61 01 a4 64 61 74 61 02", PROTO_MALFORMED, "duplicate field",
         PROTO_ID_UINT},
        /* {"id":1,"data":<c1>} */
        {"82 a2 69 64 01 a4 64 61 74 61 c1", PROTO_MALFORMED, "invalid msgpack", PROTO_ID_UINT},
        /* {"id":2^63,"svc":"a"} */
        {"82 a2 69 64 cf 80 00 00 00 00 00 00 00 a3 73 76 63 a1 61", PROTO_MALFORMED, "invalid id",
         PROTO_ID_NONE},
        /* {"id":-1,"svc":"a"} */
        {"82 a2 69 64 ff a3 73 76 63 a1 61", PROTO_MALFORMED, "invalid id", PROTO_ID_NONE},
        /* {"id":bin "a","svc":"a"} */
        {"82 a2 69 64 c4 01 61 a3 73 76 63 a1 61", PROTO_MALFORMED, "invalid id", PROTO_ID_NONE},
        /* {"id":"\xff","svc":"a"}: ids must be UTF-8 to be echoed */
        {"82 a2 69 64 a1 ff a3 73 76 63 a1 61", PROTO_MALFORMED, "invalid id", PROTO_ID_NONE},
        /* {"id":3,"svc":bin "a"} */
        {"82 a2 69 64 03 a3 73 76 63 c4 01 61", PROTO_MALFORMED, "invalid svc", PROTO_ID_UINT},
        /* {"svc":"a","key":"\xc0\x80"}: overlong NUL */
        {"82 a3 73 76 63 a1 61 a3 6b 65 79 a2 c0 80", PROTO_MALFORMED, "invalid key",
         PROTO_ID_NONE},
        /* {"svc":"a","key":"\xed\xa0\x80"}: surrogate */
        {"82 a3 73 76 63 a1 61 a3 6b 65 79 a3 ed a0 80", PROTO_MALFORMED, "invalid key",
         PROTO_ID_NONE},
        /* {"v":1.0,"svc":"a"} */
        {"82 a1 76 cb 3f f0 00 00 00 00 00 00 a3 73 76 63 a1 61", PROTO_MALFORMED,
         "unsupported version", PROTO_ID_NONE},
        /* {"svc":"a",[1]:{}}: a container key is skipped whole */
        {"82 a3 73 76 63 a1 61 91 01 80", PROTO_OK, NULL, PROTO_ID_NONE},
        /* map count lies */
        {"df ff ff ff ff a3 73 76 63", PROTO_MALFORMED, "invalid msgpack", PROTO_ID_NONE},
        /* {"svc": str32 of 4G} */
        {"81 a3 73 76 63 db ff ff ff ff", PROTO_MALFORMED, "invalid msgpack", PROTO_ID_NONE},
    };
    proto_buf_t scratch;
    proto_envelope_t env;
    const char *err;
    uint8_t in[64];

    (void)state;
    proto_buf_init(&scratch, 0);
    /* an empty frame may come with no buffer at all */
    assert_int_equal(proto_envelope_decode(PROTO_ENC_MSGPACK, NULL, 0, &scratch, &env, &err),
                     PROTO_MALFORMED);
    assert_int_equal(proto_envelope_decode(PROTO_ENC_JSON, NULL, 0, &scratch, &env, &err),
                     PROTO_MALFORMED);
    assert_int_equal(proto_mpk_to_json(proto_span(NULL, 0), &scratch), PROTO_MALFORMED);
    assert_int_equal(proto_json_to_mpk(NULL, 0, &scratch), PROTO_MALFORMED);
    for (size_t k = 0; k < sizeof cases / sizeof cases[0]; k++) {
        size_t n = s_hex(cases[k].hex, in, sizeof in);
        proto_rc_t rc;

        err = NULL;
        rc = proto_envelope_decode(PROTO_ENC_MSGPACK, in, n, &scratch, &env, &err);
        if (rc != cases[k].rc || (cases[k].err && (!err || strcmp(err, cases[k].err))))
            fail_msg("%s: rc %d err %s", cases[k].hex, rc, err ? err : "(null)");
        assert_int_equal(env.id.kind, cases[k].id_kind);
    }
    proto_buf_fini(&scratch);
}

static void
test_mpk_decode_depth(void **state)
{
    proto_buf_t in, scratch;
    proto_envelope_t env;
    const char *err;

    (void)state;
    proto_buf_init(&in, 0);
    proto_buf_init(&scratch, 0);
    for (int depth = 32; depth <= 33; depth++) {
        proto_buf_reset(&in);
        mpk_write_map(&in, 3);
        mpk_write_cstr(&in, "svc");
        mpk_write_cstr(&in, "a");
        mpk_write_cstr(&in, "data");
        for (int i = 0; i < depth; i++)
            mpk_write_array(&in, 1);
        mpk_write_nil(&in);
        mpk_write_cstr(&in, "id");
        mpk_write_cstr(&in, "deep");
        err = NULL;
        assert_int_equal(proto_envelope_decode(PROTO_ENC_MSGPACK, proto_buf_payload(&in), in.len,
                                               &scratch, &env, &err),
                         depth == 32 ? PROTO_OK : PROTO_TOO_BIG);
        if (depth == 33) {
            assert_string_equal(err, "nesting too deep");
            /* the walk stopped before the id: nothing to echo */
            assert_int_equal(env.id.kind, PROTO_ID_NONE);
        }
    }
    proto_buf_fini(&in);
    proto_buf_fini(&scratch);
}

/* Every strict prefix of a valid envelope fails, in both encodings. */
static void
test_decode_truncated_every_byte(void **state)
{
    const char *json =
        "{\"v\":1,\"op\":\"req\",\"id\":\"abc\",\"svc\":\"chat\",\"key\":\"\xc3\xa9t\xc3"
        "\xa9\",\"data\":{\"a\":[1,-2,3.5,\"\\u00e9\",null,true,false,{}],\"b\":{}}}";
    proto_buf_t m, scratch;
    proto_envelope_t env;
    const char *err;

    (void)state;
    proto_buf_init(&m, 0);
    proto_buf_init(&scratch, 0);
    s_j2m(json, &m);
    for (int enc = 0; enc < 2; enc++) {
        const uint8_t *full = enc == PROTO_ENC_JSON ? (const uint8_t *)json : proto_buf_payload(&m);
        size_t len = enc == PROTO_ENC_JSON ? strlen(json) : m.len;

        assert_int_equal(proto_envelope_decode(enc, full, len, &scratch, &env, &err), PROTO_OK);
        for (size_t cut = 0; cut < len; cut++) {
            uint8_t *p = malloc(cut ? cut : 1);
            proto_rc_t rc;

            memcpy(p, full, cut);
            err = NULL;
            rc = proto_envelope_decode(enc, p, cut, &scratch, &env, &err);
            if (rc == PROTO_OK)
                fail_msg("enc %d: prefix %zu of %zu decoded", enc, cut, len);
            assert_non_null(err);
            free(p);
        }
    }
    proto_buf_fini(&m);
    proto_buf_fini(&scratch);
}

/* ---- encoders: reference text and bytes ---- */

static void
test_encode_json_reference(void **state)
{
    proto_buf_t out, data;
    proto_id_t id = {0};
    uint8_t d[16];

    (void)state;
    proto_buf_init(&out, 0);
    proto_buf_init(&data, 0);

    id.kind = PROTO_ID_UINT;
    id.u = 7;
    s_j2m("{\"a\":1,\"b\":[true,null,-2,\"\\u00e9\"]}", &data);
    assert_int_equal(proto_envelope_encode_res(
                         PROTO_ENC_JSON, &id, proto_span(proto_buf_payload(&data), data.len), &out),
                     PROTO_OK);
    assert_int_equal(proto_buf_append(&out, "", 1), 0);
    assert_string_equal((char *)proto_buf_payload(&out),
                        "{\"v\":1,\"op\":\"res\",\"id\":7,\"data\":{\"a\":1,\"b\":[true,null,-2,"
                        "\"\xc3\xa9\"]}}");

    proto_buf_reset(&out);
    id.kind = PROTO_ID_STR;
    memcpy(id.s, "x\"1", 3);
    id.len = 3;
    assert_int_equal(proto_envelope_encode_res(PROTO_ENC_JSON, &id, proto_span(d, 0), &out),
                     PROTO_OK);
    assert_int_equal(proto_buf_append(&out, "", 1), 0);
    assert_string_equal((char *)proto_buf_payload(&out),
                        "{\"v\":1,\"op\":\"res\",\"id\":\"x\\\"1\",\"data\":null}");

    proto_buf_reset(&out);
    id.kind = PROTO_ID_NONE;
    assert_int_equal(proto_envelope_encode_err(PROTO_ENC_JSON, &id, s_cspan("bad_request"),
                                               s_cspan("invalid JSON"), &out),
                     PROTO_OK);
    assert_int_equal(proto_buf_append(&out, "", 1), 0);
    assert_string_equal(
        (char *)proto_buf_payload(&out),
        "{\"v\":1,\"op\":\"err\",\"code\":\"bad_request\",\"msg\":\"invalid JSON\"}");

    proto_buf_reset(&out);
    id.kind = PROTO_ID_UINT;
    id.u = INT64_MAX;
    assert_int_equal(proto_envelope_encode_err(PROTO_ENC_JSON, &id, s_cspan("timeout"),
                                               s_cspan("line\nbreak"), &out),
                     PROTO_OK);
    assert_int_equal(proto_buf_append(&out, "", 1), 0);
    assert_string_equal((char *)proto_buf_payload(&out),
                        "{\"v\":1,\"op\":\"err\",\"id\":9223372036854775807,\"code\":\"timeout\","
                        "\"msg\":\"line\\nbreak\"}");

    proto_buf_reset(&out);
    d[0] = 0x92;
    d[1] = 0x01;
    d[2] = 0xa2;
    d[3] = 0xc3;
    d[4] = 0xa9;
    assert_int_equal(
        proto_envelope_encode_push(PROTO_ENC_JSON, s_cspan("chat"), proto_span(d, 5), &out),
        PROTO_OK);
    assert_int_equal(proto_buf_append(&out, "", 1), 0);
    assert_string_equal((char *)proto_buf_payload(&out),
                        "{\"v\":1,\"op\":\"push\",\"svc\":\"chat\",\"data\":[1,\"\xc3\xa9\"]}");
    proto_buf_fini(&out);
    proto_buf_fini(&data);
}

static void
test_encode_mpk_reference(void **state)
{
    proto_buf_t out;
    proto_id_t id = {0};
    uint8_t want[96];
    size_t n;

    (void)state;
    proto_buf_init(&out, 0);
    id.kind = PROTO_ID_UINT;
    id.u = 7;
    assert_int_equal(proto_envelope_encode_res(PROTO_ENC_MSGPACK, &id, proto_span("\x01", 1), &out),
                     PROTO_OK);
    /* {"v":1,"op":"res","id":7,"data":1} */
    n = s_hex("84 a1 76 01 a2 6f 70 a3 72 65 73 a2 69 64 07 a4 64 61 74 61 01", want, sizeof want);
    assert_int_equal(out.len, n);
    assert_memory_equal(proto_buf_payload(&out), want, n);

    proto_buf_reset(&out);
    id.kind = PROTO_ID_NONE;
    assert_int_equal(
        proto_envelope_encode_err(PROTO_ENC_MSGPACK, &id, s_cspan("internal"), s_cspan("x"), &out),
        PROTO_OK);
    /* {"v":1,"op":"err","code":"internal","msg":"x"} */
    n = s_hex("84 a1 76 01 a2 6f 70 a3 65 72 72 a4 63 6f 64 65 a8 69 6e 74 65 72 6e 61 6c a3 6d 73 "
              "67 a1 78",
              want, sizeof want);
    assert_int_equal(out.len, n);
    assert_memory_equal(proto_buf_payload(&out), want, n);

    proto_buf_reset(&out);
    assert_int_equal(proto_envelope_encode_push(PROTO_ENC_MSGPACK, s_cspan("s"),
                                                proto_span("\xc4\x01\x00", 3), &out),
                     PROTO_OK);
    /* {"v":1,"op":"push","svc":"s","data":bin} - msgpack carries bin */
    n = s_hex("84 a1 76 01 a2 6f 70 a4 70 75 73 68 a3 73 76 63 a1 73 a4 64 61 74 61 c4 01 00", want,
              sizeof want);
    assert_int_equal(out.len, n);
    assert_memory_equal(proto_buf_payload(&out), want, n);
    proto_buf_fini(&out);
}

/* Reads an encoded reply back (JSON through the converter) into fields. */
typedef struct {
    uint64_t v;
    proto_span_t op, svc, code, msg, data;
    proto_id_t id;
} reply_t;

static void
s_parse_reply(proto_enc_t enc, const uint8_t *p, size_t len, proto_buf_t *tmp, reply_t *rp)
{
    mpk_reader_t r;
    uint32_t n;

    memset(rp, 0, sizeof *rp);
    if (enc == PROTO_ENC_JSON) {
        proto_buf_reset(tmp);
        assert_int_equal(proto_json_to_mpk(p, len, tmp), PROTO_OK);
        p = proto_buf_payload(tmp);
        len = tmp->len;
    }
    assert_int_equal(mpk_validate(p, len, MPK_MAX_DEPTH), PROTO_OK);
    mpk_reader_init(&r, p, len);
    assert_int_equal(mpk_read_map(&r, &n), PROTO_OK);
    for (uint32_t i = 0; i < n; i++) {
        proto_span_t k, s;
        mpk_item_t it;
        assert_int_equal(mpk_read_str(&r, &k), PROTO_OK);
        if (s_span_is(k, "data")) {
            assert_int_equal(mpk_skip(&r, MPK_MAX_DEPTH, &rp->data), PROTO_OK);
            continue;
        }
        assert_int_equal(mpk_read(&r, &it), PROTO_OK);
        s = it.v.s;
        if (s_span_is(k, "v")) {
            assert_int_equal(it.type, MPK_UINT);
            rp->v = it.v.u;
        } else if (s_span_is(k, "id")) {
            if (it.type == MPK_UINT) {
                rp->id.kind = PROTO_ID_UINT;
                rp->id.u = it.v.u;
            } else {
                assert_int_equal(it.type, MPK_STR);
                rp->id.kind = PROTO_ID_STR;
                rp->id.len = (uint8_t)s.len;
                memcpy(rp->id.s, s.ptr, s.len);
            }
        } else {
            assert_int_equal(it.type, MPK_STR);
            if (s_span_is(k, "op"))
                rp->op = s;
            else if (s_span_is(k, "svc"))
                rp->svc = s;
            else if (s_span_is(k, "code"))
                rp->code = s;
            else if (s_span_is(k, "msg"))
                rp->msg = s;
            else
                fail_msg("unexpected key");
        }
    }
}

static void
s_assert_id_eq(const proto_id_t *a, const proto_id_t *b)
{
    assert_int_equal(a->kind, b->kind);
    if (a->kind == PROTO_ID_UINT)
        assert_true(a->u == b->u);
    if (a->kind == PROTO_ID_STR) {
        assert_int_equal(a->len, b->len);
        assert_memory_equal(a->s, b->s, a->len);
    }
}

static void
test_encode_roundtrip_all_forms(void **state)
{
    /* each value and its canonical JSON text (NULL: the same) */
    static const char *const datas[][2] = {
        {"null", NULL},
        {"0", NULL},
        {"-1", NULL},
        {"9223372036854775807", NULL},
        {"-9223372036854775808", NULL},
        {"1.25", NULL},
        {"\"\"", NULL},
        {"\"h\\u00e9llo \\ud83d\\ude00\"", "\"h\xc3\xa9llo \xf0\x9f\x98\x80\""},
        {"[]", NULL},
        {"{}", NULL},
        {"{\"nested\":{\"list\":[1,[2,[3,{\"k\":\"v\"}]]],\"f\":false}}", NULL},
    };
    proto_id_t ids[3];
    proto_buf_t data, out, tmp, back;
    reply_t rp;

    (void)state;
    memset(ids, 0, sizeof ids);
    ids[1].kind = PROTO_ID_UINT;
    ids[1].u = 123456789012345ULL;
    ids[2].kind = PROTO_ID_STR;
    ids[2].len = 5;
    memcpy(ids[2].s, "\xc3\xa9-id", 5);
    proto_buf_init(&data, 0);
    proto_buf_init(&out, 32); /* headroom must not leak into the frame */
    proto_buf_init(&tmp, 0);
    proto_buf_init(&back, 0);
    for (int enc = 0; enc < 2; enc++) {
        for (size_t di = 0; di < sizeof datas / sizeof datas[0]; di++) {
            proto_span_t d;
            const char *canon = datas[di][1] ? datas[di][1] : datas[di][0];
            s_j2m(datas[di][0], &data);
            d = proto_span(proto_buf_payload(&data), data.len);
            for (int ii = 0; ii < 3; ii++) {
                proto_buf_reset(&out);
                assert_int_equal(proto_envelope_encode_res(enc, &ids[ii], d, &out), PROTO_OK);
                s_parse_reply(enc, proto_buf_payload(&out), out.len, &tmp, &rp);
                assert_int_equal(rp.v, 1);
                assert_true(s_span_is(rp.op, "res"));
                s_assert_id_eq(&rp.id, &ids[ii]);
                /* same value: compare as canonical JSON text */
                assert_string_equal(s_m2j(rp.data, &back), canon);

                proto_buf_reset(&out);
                assert_int_equal(proto_envelope_encode_err(enc, &ids[ii], s_cspan("no_service"),
                                                           s_cspan("no such \xc3\xa9 service"),
                                                           &out),
                                 PROTO_OK);
                s_parse_reply(enc, proto_buf_payload(&out), out.len, &tmp, &rp);
                assert_true(s_span_is(rp.op, "err"));
                s_assert_id_eq(&rp.id, &ids[ii]);
                assert_true(s_span_is(rp.code, "no_service"));
                assert_true(s_span_is(rp.msg, "no such \xc3\xa9 service"));
                assert_int_equal(rp.data.len, 0);
            }
            proto_buf_reset(&out);
            assert_int_equal(proto_envelope_encode_push(enc, s_cspan("news.eu"), d, &out),
                             PROTO_OK);
            s_parse_reply(enc, proto_buf_payload(&out), out.len, &tmp, &rp);
            assert_true(s_span_is(rp.op, "push"));
            assert_int_equal(rp.id.kind, PROTO_ID_NONE);
            assert_true(s_span_is(rp.svc, "news.eu"));
            assert_string_equal(s_m2j(rp.data, &back), canon);
            if (enc == PROTO_ENC_MSGPACK) {
                /* forwarded verbatim */
                assert_int_equal(rp.data.len, d.len);
                assert_memory_equal(rp.data.ptr, d.ptr, d.len);
            }
        }
    }
    proto_buf_fini(&data);
    proto_buf_fini(&out);
    proto_buf_fini(&tmp);
    proto_buf_fini(&back);
}

/* A client request decoded and answered with its own data, both ways. */
static void
test_decode_then_reply_roundtrip(void **state)
{
    const char *req = "{\"id\":\"r-9\",\"svc\":\"echo\",\"data\":{\"x\":[1,2.5,\"y\"],\"z\":null}}";
    proto_buf_t scratch, out, m;
    proto_envelope_t env;
    const char *err;

    (void)state;
    proto_buf_init(&scratch, 0);
    proto_buf_init(&out, 0);
    proto_buf_init(&m, 0);
    assert_int_equal(proto_envelope_decode(PROTO_ENC_JSON, (const uint8_t *)req, strlen(req),
                                           &scratch, &env, &err),
                     PROTO_OK);
    assert_int_equal(proto_envelope_encode_res(PROTO_ENC_JSON, &env.id, env.data, &out), PROTO_OK);
    assert_int_equal(proto_buf_append(&out, "", 1), 0);
    assert_string_equal(
        (char *)proto_buf_payload(&out),
        "{\"v\":1,\"op\":\"res\",\"id\":\"r-9\",\"data\":{\"x\":[1,2.5,\"y\"],\"z\":null}}");

    s_j2m(req, &m);
    assert_int_equal(proto_envelope_decode(PROTO_ENC_MSGPACK, proto_buf_payload(&m), m.len,
                                           &scratch, &env, &err),
                     PROTO_OK);
    proto_buf_reset(&out);
    assert_int_equal(proto_envelope_encode_res(PROTO_ENC_MSGPACK, &env.id, env.data, &out),
                     PROTO_OK);
    assert_int_equal(proto_envelope_decode(PROTO_ENC_MSGPACK, proto_buf_payload(&out), out.len,
                                           &scratch, &env, &err),
                     PROTO_MALFORMED); /* "res" is not a client op */
    assert_string_equal(err, "unknown op");
    assert_int_equal(env.id.kind, PROTO_ID_STR); /* ...but the id survives */
    proto_buf_fini(&scratch);
    proto_buf_fini(&out);
    proto_buf_fini(&m);
}

static void
test_encode_rejects(void **state)
{
    static const char *const bad_json_data[] = {
        "c4 01 00",                   /* bin */
        "d4 01 00",                   /* ext */
        "c7 00 01",                   /* ext8 */
        "81 01 02",                   /* integer map key */
        "81 c0 02",                   /* nil map key */
        "82 a1 61 01 a1 61 02",       /* duplicate key */
        "cf 80 00 00 00 00 00 00 00", /* 2^63 */
        "cb 7f f8 00 00 00 00 00 00", /* NaN */
        "cb 7f f0 00 00 00 00 00 00", /* +Inf */
        "ca ff 80 00 00",             /* -Inf (float32) */
        "a2 c3 28",                   /* invalid UTF-8 */
        "91 c4 00",                   /* bin, nested */
        "92 01",                      /* truncated */
        "01 02",                      /* two values */
        "c1",
    };
    proto_buf_t out;
    proto_id_t id = {0};
    uint8_t d[16];

    (void)state;
    proto_buf_init(&out, 0);
    id.kind = PROTO_ID_UINT;
    for (size_t k = 0; k < sizeof bad_json_data / sizeof bad_json_data[0]; k++) {
        size_t n = s_hex(bad_json_data[k], d, sizeof d);
        proto_buf_reset(&out);
        assert_int_equal(proto_buf_append(&out, "keep", 4), 0);
        assert_int_equal(proto_envelope_encode_res(PROTO_ENC_JSON, &id, proto_span(d, n), &out),
                         PROTO_MALFORMED);
        assert_int_equal(
            proto_envelope_encode_push(PROTO_ENC_JSON, s_cspan("a"), proto_span(d, n), &out),
            PROTO_MALFORMED);
        assert_int_equal(proto_mpk_to_json(proto_span(d, n), &out), PROTO_MALFORMED);
        /* nothing appended, nothing lost */
        assert_int_equal(out.len, 4);
        assert_memory_equal(proto_buf_payload(&out), "keep", 4);
    }
    /* msgpack clients can take bin/ext/NaN, but not broken bytes */
    assert_int_equal(
        proto_envelope_encode_res(PROTO_ENC_MSGPACK, &id, proto_span("\xc4\x00", 2), &out),
        PROTO_OK);
    out.len = 4;
    assert_int_equal(
        proto_envelope_encode_res(PROTO_ENC_MSGPACK, &id, proto_span("\x92\x01", 2), &out),
        PROTO_MALFORMED);
    assert_int_equal(
        proto_envelope_encode_res(PROTO_ENC_MSGPACK, &id, proto_span("\x01\x02", 2), &out),
        PROTO_MALFORMED);
    assert_int_equal(out.len, 4);

    /* bad code, message, svc or id */
    for (int enc = 0; enc < 2; enc++) {
        assert_int_equal(proto_envelope_encode_err(enc, &id, s_cspan("Bad"), s_cspan("m"), &out),
                         PROTO_MALFORMED);
        assert_int_equal(proto_envelope_encode_err(enc, &id, s_cspan(""), s_cspan("m"), &out),
                         PROTO_MALFORMED);
        assert_int_equal(proto_envelope_encode_err(enc, &id, s_cspan("x"), s_cspan("\xff"), &out),
                         PROTO_MALFORMED);
        assert_int_equal(proto_envelope_encode_push(enc, s_cspan("A"), proto_span("\xc0", 1), &out),
                         PROTO_MALFORMED);
        id.u = (uint64_t)INT64_MAX + 1;
        assert_int_equal(proto_envelope_encode_res(enc, &id, proto_span("\xc0", 1), &out),
                         PROTO_MALFORMED);
        id.u = 1;
        assert_int_equal(out.len, 4);
    }
    proto_buf_fini(&out);
}

/* ---- JSON <-> msgpack ---- */

static void
test_convert_reference(void **state)
{
    static const struct {
        const char *json; /* input */
        const char *hex;  /* msgpack */
        const char *back; /* JSON from the msgpack; NULL: same as input */
    } cases[] = {
        {"null", "c0", NULL},
        {"true", "c3", NULL},
        {"false", "c2", NULL},
        {"0", "00", NULL},
        {"127", "7f", NULL},
        {"128", "cc 80", NULL},
        {"-1", "ff", NULL},
        {"-33", "d0 df", NULL},
        {"9223372036854775807", "cf 7f ff ff ff ff ff ff ff", NULL},
        {"-9223372036854775808", "d3 80 00 00 00 00 00 00 00", NULL},
        {"1.5", "cb 3f f8 00 00 00 00 00 00", NULL},
        {"-0.25", "cb bf d0 00 00 00 00 00 00", NULL},
        {"1e3", "cb 40 8f 40 00 00 00 00 00", "1000.0"},
        {"2.0", "cb 40 00 00 00 00 00 00 00", NULL},
        {"\"\"", "a0", NULL},
        {"\"a\\\"b\\\\c\\/d\"", "a7 61 22 62 5c 63 2f 64", "\"a\\\"b\\\\c/d\""},
        {"\"\\u00e9\\ud83d\\ude00\"", "a6 c3 a9 f0 9f 98 80", "\"\xc3\xa9\xf0\x9f\x98\x80\""},
        {"\"\\u0000\\u001f\"", "a2 00 1f", "\"\\u0000\\u001F\""},
        {"[]", "90", NULL},
        {"{}", "80", NULL},
        {"[1,[2,[3]],{}]", "93 01 92 02 91 03 80", NULL},
        {"{\"b\":1,\"a\":[null,{\"c\":\"d\"}]}", "82 a1 62 01 a1 61 92 c0 81 a1 63 a1 64", NULL},
        {" { \"k\" : [ 1 , 2 ] } ", "81 a1 6b 92 01 02", "{\"k\":[1,2]}"},
    };
    proto_buf_t m, j;
    uint8_t want[64];

    (void)state;
    proto_buf_init(&m, 0);
    proto_buf_init(&j, 0);
    for (size_t k = 0; k < sizeof cases / sizeof cases[0]; k++) {
        size_t n = s_hex(cases[k].hex, want, sizeof want);
        s_j2m(cases[k].json, &m);
        if (m.len != n || memcmp(proto_buf_payload(&m), want, n) != 0)
            fail_msg("json_to_mpk(%s) differs", cases[k].json);
        assert_string_equal(s_m2j(proto_span(want, n), &j),
                            cases[k].back ? cases[k].back : cases[k].json);
    }
    proto_buf_fini(&m);
    proto_buf_fini(&j);
}

static void
test_convert_floats_and_ints(void **state)
{
    static const double dbls[] = {0.1, 1e-300, 1.7976931348623157e308, -123456.789, 5e-324};
    proto_buf_t m, j;
    char txt[64];
    mpk_reader_t r;
    mpk_item_t it;

    (void)state;
    proto_buf_init(&m, 0);
    proto_buf_init(&j, 0);
    for (size_t k = 0; k < sizeof dbls / sizeof dbls[0]; k++) {
        /* msgpack double -> JSON -> msgpack gives the same double */
        proto_buf_reset(&m);
        mpk_write_double(&m, dbls[k]);
        snprintf(txt, sizeof txt, "%s", s_m2j(proto_span(proto_buf_payload(&m), m.len), &j));
        s_j2m(txt, &m);
        mpk_reader_init(&r, proto_buf_payload(&m), m.len);
        assert_int_equal(mpk_read(&r, &it), PROTO_OK);
        assert_int_equal(it.type, MPK_FLOAT);
        assert_true(it.v.f == dbls[k]);
    }
    /* float32 widens */
    assert_string_equal(s_m2j(proto_span("\xca\x3f\xc0\x00\x00", 5), &j), "1.5");
    /* integers in every msgpack width */
    assert_string_equal(s_m2j(proto_span("\xd0\x05", 2), &j), "5");
    assert_string_equal(s_m2j(proto_span("\xcd\x01\x00", 3), &j), "256");
    assert_string_equal(s_m2j(proto_span("\xd2\x80\x00\x00\x00", 5), &j), "-2147483648");
    assert_string_equal(s_m2j(proto_span("\xcf\x7f\xff\xff\xff\xff\xff\xff\xff", 9), &j),
                        "9223372036854775807");
    /* too big for JSON integers either way */
    proto_buf_reset(&m);
    assert_int_equal(proto_json_to_mpk((const uint8_t *)"18446744073709551615", 20, &m),
                     PROTO_MALFORMED);
    assert_int_equal(proto_json_to_mpk((const uint8_t *)"9223372036854775808", 19, &m),
                     PROTO_MALFORMED);
    assert_int_equal(m.len, 0);
    proto_buf_fini(&m);
    proto_buf_fini(&j);
}

static void
test_convert_rejects(void **state)
{
    static const char *const bad[] = {
        "",         "[",   "[1,]",     "{\"a\":1,\"a\":2}",
        "nul",      "1 2", "'x'",      "\"\\ud800\"",
        "\"\xff\"", "NaN", "Infinity", "1e400",
    };
    proto_buf_t m;

    (void)state;
    proto_buf_init(&m, 0);
    assert_int_equal(proto_buf_append(&m, "pre", 3), 0);
    for (size_t k = 0; k < sizeof bad / sizeof bad[0]; k++) {
        assert_int_equal(proto_json_to_mpk((const uint8_t *)bad[k], strlen(bad[k]), &m),
                         PROTO_MALFORMED);
        assert_int_equal(m.len, 3);
    }
    proto_buf_fini(&m);
}

static void
test_convert_depth(void **state)
{
    char json[512];
    proto_buf_t m, j;

    (void)state;
    proto_buf_init(&m, 0);
    proto_buf_init(&j, 0);
    /* alternating {"k": and [ so both container kinds count */
    for (int depth = 31; depth <= 34; depth++) {
        int n = 0;
        for (int i = 0; i < depth; i++) {
            if (i % 2)
                json[n++] = '[';
            else
                n += sprintf(json + n, "{\"k\":");
        }
        json[n++] = '1';
        for (int i = depth - 1; i >= 0; i--)
            json[n++] = i % 2 ? ']' : '}';
        json[n] = 0;
        proto_buf_reset(&m);
        assert_int_equal(proto_json_to_mpk((const uint8_t *)json, (size_t)n, &m),
                         depth <= MPK_MAX_DEPTH ? PROTO_OK : PROTO_TOO_BIG);
        if (depth <= MPK_MAX_DEPTH) {
            assert_string_equal(s_m2j(proto_span(proto_buf_payload(&m), m.len), &j), json);
        } else {
            assert_int_equal(m.len, 0);
        }
    }
    /* msgpack deeper than the limit does not convert either */
    proto_buf_reset(&m);
    for (int i = 0; i < 33; i++)
        mpk_write_array(&m, 1);
    mpk_write_nil(&m);
    proto_buf_reset(&j);
    assert_int_equal(proto_mpk_to_json(proto_span(proto_buf_payload(&m), m.len), &j),
                     PROTO_TOO_BIG);
    assert_int_equal(j.len, 0);
    proto_buf_fini(&m);
    proto_buf_fini(&j);
}

/* ---- validators ---- */

static void
test_utf8_table(void **state)
{
    static const struct {
        const char *s;
        size_t len;
        bool ok;
    } cases[] = {
        {"", 0, true},
        {"plain ascii text, longer than eight bytes", 41, true},
        {"\x00", 1, true},
        {"\x7f", 1, true},
        {"\xc2\x80", 2, true},         /* U+0080 */
        {"\xdf\xbf", 2, true},         /* U+07FF */
        {"\xe0\xa0\x80", 3, true},     /* U+0800 */
        {"\xed\x9f\xbf", 3, true},     /* U+D7FF */
        {"\xee\x80\x80", 3, true},     /* U+E000 */
        {"\xef\xbf\xbf", 3, true},     /* U+FFFF */
        {"\xf0\x90\x80\x80", 4, true}, /* U+10000 */
        {"\xf4\x8f\xbf\xbf", 4, true}, /* U+10FFFF */
        {"abcdefg\xc3\xa9xyz1234567", 19, true},
        {"\x80", 1, false}, /* lone continuation */
        {"\xbf", 1, false},
        {"\xc0\x80", 2, false},                 /* overlong NUL */
        {"\xc1\xbf", 2, false},                 /* overlong */
        {"\xe0\x80\x80", 3, false},             /* overlong */
        {"\xe0\x9f\xbf", 3, false},             /* overlong U+07FF */
        {"\xf0\x80\x80\x80", 4, false},         /* overlong */
        {"\xf0\x8f\xbf\xbf", 4, false},         /* overlong U+FFFF */
        {"\xed\xa0\x80", 3, false},             /* U+D800 */
        {"\xed\xbf\xbf", 3, false},             /* U+DFFF */
        {"\xed\xa0\xbd\xed\xb8\x80", 6, false}, /* CESU-8 pair */
        {"\xf4\x90\x80\x80", 4, false},         /* U+110000 */
        {"\xf5\x80\x80\x80", 4, false},
        {"\xf8\x88\x80\x80\x80", 5, false},
        {"\xfe", 1, false},
        {"\xff", 1, false},
        {"\xc2", 1, false}, /* truncated */
        {"\xe0\xa0", 2, false},
        {"\xf0\x90\x80", 3, false},
        {"\xc2\x41", 2, false}, /* bad continuation */
        {"\xe2\x82\x41", 3, false},
        {"\xf0\x90\x80\x41", 4, false},
        {"12345678\x80", 9, false}, /* after the fast path */
        {"1234567\xc3\xa9", 9, true},
        {"1234567\xc3", 8, false},
    };

    (void)state;
    for (size_t k = 0; k < sizeof cases / sizeof cases[0]; k++) {
        /* exact-size copy so ASan catches reading past the end */
        uint8_t *p = malloc(cases[k].len ? cases[k].len : 1);
        memcpy(p, cases[k].s, cases[k].len);
        if (proto_utf8_valid(p, cases[k].len) != cases[k].ok)
            fail_msg("utf8 case %zu: want %d", k, cases[k].ok);
        free(p);
    }
}

static void
test_utf8_exhaustive_codepoints(void **state)
{
    /* Every scalar value encodes to something valid; every surrogate does
     * not. Also in every position relative to the 8-byte fast path. */
    (void)state;
    for (uint32_t cp = 0; cp <= 0x10ffff; cp += (cp < 0x20000 ? 1 : 97)) {
        uint8_t b[16] = "aaaaaaaaaaaaaaa";
        size_t n;
        size_t off = cp % 8;
        if (cp < 0x80) {
            b[off] = (uint8_t)cp;
            n = 1;
        } else if (cp < 0x800) {
            b[off] = (uint8_t)(0xc0 | cp >> 6);
            b[off + 1] = (uint8_t)(0x80 | (cp & 0x3f));
            n = 2;
        } else if (cp < 0x10000) {
            b[off] = (uint8_t)(0xe0 | cp >> 12);
            b[off + 1] = (uint8_t)(0x80 | (cp >> 6 & 0x3f));
            b[off + 2] = (uint8_t)(0x80 | (cp & 0x3f));
            n = 3;
        } else {
            b[off] = (uint8_t)(0xf0 | cp >> 18);
            b[off + 1] = (uint8_t)(0x80 | (cp >> 12 & 0x3f));
            b[off + 2] = (uint8_t)(0x80 | (cp >> 6 & 0x3f));
            b[off + 3] = (uint8_t)(0x80 | (cp & 0x3f));
            n = 4;
        }
        bool want = !(cp >= 0xd800 && cp <= 0xdfff);
        if (proto_utf8_valid(b, off + n + 2) != want)
            fail_msg("U+%04X", cp);
        if (n > 1 && proto_utf8_valid(b, off + n - 1))
            fail_msg("truncated U+%04X accepted", cp);
    }
}

static void
test_svc_code_valid(void **state)
{
    (void)state;
    assert_true(proto_svc_valid(s_cspan("chat")));
    assert_true(proto_svc_valid(s_cspan("a.b-c_9")));
    assert_true(proto_svc_valid(s_cspan(S64)));
    assert_false(proto_svc_valid(s_cspan(S64 "x")));
    assert_false(proto_svc_valid(s_cspan("")));
    assert_false(proto_svc_valid(s_cspan("Chat")));
    assert_false(proto_svc_valid(proto_span("a\0b", 3)));
    assert_true(proto_code_valid(s_cspan("bad_request")));
    assert_true(proto_code_valid(s_cspan("e404")));
    assert_false(proto_code_valid(s_cspan("bad-request")));
    assert_false(proto_code_valid(s_cspan("a.b")));
    assert_false(proto_code_valid(s_cspan("")));
    assert_true(proto_code_valid(s_cspan("abcdefghijklmnopqrstuvwxyz_01234")));
    assert_false(proto_code_valid(s_cspan("abcdefghijklmnopqrstuvwxyz_012345")));
}

static void
test_err_names(void **state)
{
    static const char *const want[PROTO_ERR__COUNT] = {
        "bad_request",
        "no_service",
        "too_large",
        "overloaded",
        "timeout",
        "internal",
        "unavailable",
        "unauthenticated",
        "forbidden",
        "bad_channel",
        "too_many_subscriptions",
        "already_subscribed",
        "not_subscribed",
    };

    (void)state;
    for (int e = 0; e < PROTO_ERR__COUNT; e++) {
        assert_string_equal(proto_err_name((proto_err_t)e), want[e]);
        assert_true(proto_code_valid(s_cspan(proto_err_name((proto_err_t)e))));
    }
    assert_non_null(proto_err_name(PROTO_ERR__COUNT));
}

/* ---- auth and channel ops ---- */

static void
test_channel_fields_both_encodings(void **state)
{
    static const char *json =
        "{\"op\":\"sub\",\"id\":3,\"channel\":\"room:1\",\"presence\":true,\"epoch\":\"ab12\","
        "\"offset\":17,\"data\":{\"x\":1}}";
    proto_buf_t scratch, m;
    proto_envelope_t env;
    const char *err;

    (void)state;
    proto_buf_init(&scratch, 0);
    proto_buf_init(&m, 0);
    for (int enc = 0; enc < 2; enc++) {
        if (enc == 0) {
            assert_int_equal(proto_envelope_decode(PROTO_ENC_JSON, (const uint8_t *)json,
                                                   strlen(json), &scratch, &env, &err),
                             PROTO_OK);
        } else {
            s_j2m(json, &m);
            assert_int_equal(proto_envelope_decode(PROTO_ENC_MSGPACK, proto_buf_payload(&m), m.len,
                                                   &scratch, &env, &err),
                             PROTO_OK);
        }
        assert_int_equal(env.op, PROTO_OP_SUB);
        assert_true(s_span_is(env.channel, "room:1"));
        assert_true(s_span_is(env.epoch, "ab12"));
        assert_int_equal(env.offset, 17);
        assert_true(env.presence);
        assert_int_equal(env.id.u, 3);
        /* {"x":1} */
        assert_int_equal(env.data.len, 4);
    }
    /* presence false, no recovery */
    static const char *plain = "{\"op\":\"sub\",\"channel\":\"c\",\"presence\":false}";
    assert_int_equal(proto_envelope_decode(PROTO_ENC_JSON, (const uint8_t *)plain, strlen(plain),
                                           &scratch, &env, &err),
                     PROTO_OK);
    assert_false(env.presence);
    assert_int_equal(env.epoch.len, 0);
    /* auth: the token survives the JSON tree being freed */
    static const char *auth = "{\"op\":\"auth\",\"id\":\"a\",\"token\":\"aaa.bbb.ccc\"}";
    assert_int_equal(proto_envelope_decode(PROTO_ENC_JSON, (const uint8_t *)auth, strlen(auth),
                                           &scratch, &env, &err),
                     PROTO_OK);
    assert_int_equal(env.op, PROTO_OP_AUTH);
    assert_true(s_span_is(env.token, "aaa.bbb.ccc"));
    /* history limit */
    static const char *hist = "{\"op\":\"history\",\"channel\":\"c\",\"limit\":10}";
    assert_int_equal(proto_envelope_decode(PROTO_ENC_JSON, (const uint8_t *)hist, strlen(hist),
                                           &scratch, &env, &err),
                     PROTO_OK);
    assert_int_equal(env.limit, 10);
    /* an over-long token is TOO_BIG, not malformed */
    proto_buf_t big;
    proto_buf_init(&big, 0);
    assert_int_equal(proto_buf_append(&big, "{\"op\":\"auth\",\"token\":\"", 22), 0);
    for (int i = 0; i < PROTO_TOKEN_MAX + 1; i++)
        assert_int_equal(proto_buf_append(&big, "a", 1), 0);
    assert_int_equal(proto_buf_append(&big, "\"}", 2), 0);
    assert_int_equal(proto_envelope_decode(PROTO_ENC_JSON, proto_buf_payload(&big), big.len,
                                           &scratch, &env, &err),
                     PROTO_TOO_BIG);
    proto_buf_fini(&big);
    proto_buf_fini(&scratch);
    proto_buf_fini(&m);
}

static void
test_channel_valid(void **state)
{
    (void)state;
    assert_true(proto_channel_valid(proto_span("room:1", 6), 128));
    assert_true(proto_channel_valid(proto_span("a/b@c=d+e-f_g.h", 15), 128));
    assert_false(proto_channel_valid(proto_span("", 0), 128));
    assert_false(proto_channel_valid(proto_span("a b", 3), 128));
    assert_false(proto_channel_valid(proto_span("a*", 2), 128));
    assert_false(proto_channel_valid(proto_span("\xc3\xa9", 2), 128));
    assert_false(proto_channel_valid(proto_span("abcd", 4), 3));
    assert_true(proto_channel_valid(proto_span("abc", 3), 3));
}

static void
test_encode_channel_events(void **state)
{
    proto_buf_t out, tmp, data;

    (void)state;
    proto_buf_init(&out, 0);
    proto_buf_init(&tmp, 0);
    proto_buf_init(&data, 0);
    s_j2m("{\"t\":\"hi\"}", &data);
    proto_span_t d = proto_span(proto_buf_payload(&data), data.len);

    assert_int_equal(proto_envelope_encode_msg(PROTO_ENC_JSON, proto_span("room", 4),
                                               proto_span("e1", 2), 5, proto_span("alice", 5), d,
                                               &out),
                     PROTO_OK);
    assert_int_equal(proto_buf_append(&out, "", 1), 0);
    assert_string_equal(
        (const char *)proto_buf_payload(&out),
        "{\"v\":1,\"op\":\"msg\",\"channel\":\"room\",\"epoch\":\"e1\",\"offset\":5,"
        "\"user\":\"alice\",\"data\":{\"t\":\"hi\"}}");
    /* msgpack carries the same fields; no user from the backend */
    proto_buf_reset(&out);
    assert_int_equal(proto_envelope_encode_msg(PROTO_ENC_MSGPACK, proto_span("room", 4),
                                               proto_span("e1", 2), 5, proto_span(NULL, 0), d,
                                               &out),
                     PROTO_OK);
    assert_string_equal(
        s_m2j(proto_span(proto_buf_payload(&out), out.len), &tmp),
        "{\"v\":1,\"op\":\"msg\",\"channel\":\"room\",\"epoch\":\"e1\",\"offset\":5,"
        "\"data\":{\"t\":\"hi\"}}");
    proto_buf_reset(&out);
    assert_int_equal(proto_envelope_encode_presence(PROTO_ENC_JSON, true, proto_span("room", 4),
                                                    proto_span("bob", 3), &out),
                     PROTO_OK);
    assert_int_equal(proto_buf_append(&out, "", 1), 0);
    assert_string_equal((const char *)proto_buf_payload(&out),
                        "{\"v\":1,\"op\":\"join\",\"channel\":\"room\",\"user\":\"bob\"}");
    proto_buf_reset(&out);
    assert_int_equal(proto_envelope_encode_presence(PROTO_ENC_MSGPACK, false, proto_span("room", 4),
                                                    proto_span("bob", 3), &out),
                     PROTO_OK);
    assert_string_equal(s_m2j(proto_span(proto_buf_payload(&out), out.len), &tmp),
                        "{\"v\":1,\"op\":\"leave\",\"channel\":\"room\",\"user\":\"bob\"}");
    /* bad UTF-8 in a field is refused, nothing appended */
    proto_buf_reset(&out);
    assert_int_equal(proto_envelope_encode_presence(PROTO_ENC_JSON, true, proto_span("\xff", 1),
                                                    proto_span("bob", 3), &out),
                     PROTO_MALFORMED);
    assert_int_equal(out.len, 0);
    proto_buf_fini(&out);
    proto_buf_fini(&tmp);
    proto_buf_fini(&data);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_json_decode_full),
        cmocka_unit_test(test_channel_fields_both_encodings),
        cmocka_unit_test(test_channel_valid),
        cmocka_unit_test(test_encode_channel_events),
        cmocka_unit_test(test_json_decode_minimal),
        cmocka_unit_test(test_json_decode_scratch_reuse),
        cmocka_unit_test(test_ops),
        cmocka_unit_test(test_decode_cases_both_encodings),
        cmocka_unit_test(test_json_decode_errors),
        cmocka_unit_test(test_mpk_decode_full_zero_copy),
        cmocka_unit_test(test_mpk_decode_errors),
        cmocka_unit_test(test_mpk_decode_depth),
        cmocka_unit_test(test_decode_truncated_every_byte),
        cmocka_unit_test(test_encode_json_reference),
        cmocka_unit_test(test_encode_mpk_reference),
        cmocka_unit_test(test_encode_roundtrip_all_forms),
        cmocka_unit_test(test_decode_then_reply_roundtrip),
        cmocka_unit_test(test_encode_rejects),
        cmocka_unit_test(test_convert_reference),
        cmocka_unit_test(test_convert_floats_and_ints),
        cmocka_unit_test(test_convert_rejects),
        cmocka_unit_test(test_convert_depth),
        cmocka_unit_test(test_utf8_table),
        cmocka_unit_test(test_utf8_exhaustive_codepoints),
        cmocka_unit_test(test_svc_code_valid),
        cmocka_unit_test(test_err_names),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
