/*
 * test_wsc_frame.c - the C client's envelopes (clients/c/wsc_frame.c).
 *
 * Client frames are checked with the gateway's own decoder
 * (proto_envelope_decode), server frames are made with the gateway's own
 * encoders: the two sides of the protocol are tested against each other.
 * Malformed server frames: truncation at every byte, lying lengths and
 * counts, wrong types, over-long fields, deep nesting.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "testutil.h"

#include "envelope.h"
#include "mpk.h"
#include "wsc_frame.h"

/* ---- client frames, decoded by the gateway's decoder ---- */

static void
s_decode(proto_buf_t *b, proto_envelope_t *env, proto_buf_t *scratch)
{
    const char *err = NULL;

    assert_int_equal(
        proto_envelope_decode(PROTO_ENC_MSGPACK, proto_buf_payload(b), b->len, scratch, env, &err),
        PROTO_OK);
}

static bool
s_span_is(proto_span_t s, const char *lit)
{
    return s.len == strlen(lit) && !memcmp(s.ptr, lit, s.len);
}

static void
test_req_is_what_the_gateway_reads(void **state)
{
    proto_buf_t b, d, scratch;
    proto_envelope_t env;

    (void)state;
    proto_buf_init(&b, 0);
    proto_buf_init(&d, 0);
    proto_buf_init(&scratch, 0);
    assert_int_equal(mpk_write_array(&d, 2) || mpk_write_uint(&d, 7) || mpk_write_cstr(&d, "x"), 0);
    assert_int_equal(wsc_frame_req(&b, 42, "counter", "user:42", proto_buf_payload(&d), d.len), 0);
    s_decode(&b, &env, &scratch);
    assert_int_equal(env.op, PROTO_OP_REQ);
    assert_int_equal(env.id.kind, PROTO_ID_UINT);
    assert_int_equal(env.id.u, 42);
    assert_true(s_span_is(env.svc, "counter"));
    assert_true(s_span_is(env.key, "user:42"));
    assert_int_equal(env.data.len, d.len);
    assert_memory_equal(env.data.ptr, proto_buf_payload(&d), d.len);

    /* no key (the connection's actor), nil data */
    proto_buf_reset(&b);
    assert_int_equal(wsc_frame_req(&b, 1, "echo", NULL, NULL, 0), 0);
    s_decode(&b, &env, &scratch);
    assert_int_equal(env.key.len, 0);
    assert_int_equal(env.data.len, 1);
    assert_int_equal(env.data.ptr[0], 0xc0);
    proto_buf_fini(&b);
    proto_buf_fini(&d);
    proto_buf_fini(&scratch);
}

static void
test_session_ops_are_what_the_gateway_reads(void **state)
{
    proto_buf_t b, scratch;
    proto_envelope_t env;
    uint8_t one = 0x01;

    (void)state;
    proto_buf_init(&b, 0);
    proto_buf_init(&scratch, 0);
    assert_int_equal(wsc_frame_auth(&b, 3, "eyJ.a.b"), 0);
    s_decode(&b, &env, &scratch);
    assert_int_equal(env.op, PROTO_OP_AUTH);
    assert_int_equal(env.id.u, 3);
    assert_true(s_span_is(env.token, "eyJ.a.b"));

    proto_buf_reset(&b);
    assert_int_equal(wsc_frame_sub(&b, 4, "cmd:dev1", NULL, 0), 0);
    s_decode(&b, &env, &scratch);
    assert_int_equal(env.op, PROTO_OP_SUB);
    assert_true(s_span_is(env.channel, "cmd:dev1"));
    assert_int_equal(env.epoch.len, 0);

    proto_buf_reset(&b);
    assert_int_equal(wsc_frame_sub(&b, 5, "cmd:dev1", "9f2c41d0", 17), 0);
    s_decode(&b, &env, &scratch);
    assert_true(s_span_is(env.epoch, "9f2c41d0"));
    assert_int_equal(env.offset, 17);

    proto_buf_reset(&b);
    assert_int_equal(wsc_frame_unsub(&b, "cmd:dev1"), 0);
    s_decode(&b, &env, &scratch);
    assert_int_equal(env.op, PROTO_OP_UNSUB);
    assert_int_equal(env.id.kind, PROTO_ID_NONE); /* fire-and-forget */

    proto_buf_reset(&b);
    assert_int_equal(wsc_frame_pub(&b, 6, "telemetry:dev1", &one, 1), 0);
    s_decode(&b, &env, &scratch);
    assert_int_equal(env.op, PROTO_OP_PUB);
    assert_true(s_span_is(env.channel, "telemetry:dev1"));
    assert_int_equal(env.data.len, 1);
    proto_buf_fini(&b);
    proto_buf_fini(&scratch);
}

static void
test_builders_refuse_bad_arguments_and_leave_the_buffer(void **state)
{
    proto_buf_t b;
    char long_key[PROTO_KEY_MAX + 2], long_chan[PROTO_CHANNEL_MAX + 2];
    const uint8_t two_values[] = {0x01, 0x02}, truncated[] = {0x92, 0x01}, bad[] = {0xc1};

    (void)state;
    memset(long_key, 'k', sizeof(long_key) - 1);
    long_key[sizeof(long_key) - 1] = 0;
    memset(long_chan, 'c', sizeof(long_chan) - 1);
    long_chan[sizeof(long_chan) - 1] = 0;
    proto_buf_init(&b, 0);
    assert_int_equal(wsc_frame_req(&b, 1, "echo", NULL, NULL, 0), 0);
    size_t mark = b.len;
    assert_int_equal(wsc_frame_req(&b, 1, "Echo", NULL, NULL, 0), -1);
    assert_int_equal(wsc_frame_req(&b, 1, NULL, NULL, NULL, 0), -1);
    assert_int_equal(wsc_frame_req(&b, 1, "echo", "c:1", NULL, 0), -1); /* reserved */
    assert_int_equal(wsc_frame_req(&b, 1, "echo", "", NULL, 0), -1);
    assert_int_equal(wsc_frame_req(&b, 1, "echo", long_key, NULL, 0), -1);
    assert_int_equal(wsc_frame_req(&b, 1, "echo", "\xff\xfe", NULL, 0), -1);
    assert_int_equal(wsc_frame_req(&b, 1, "echo", NULL, two_values, 2), -1);
    assert_int_equal(wsc_frame_req(&b, 1, "echo", NULL, truncated, 2), -1);
    assert_int_equal(wsc_frame_req(&b, 1, "echo", NULL, bad, 1), -1);
    assert_int_equal(wsc_frame_pub(&b, 1, "bad name", NULL, 0), -1);
    assert_int_equal(wsc_frame_pub(&b, 1, long_chan, NULL, 0), -1);
    assert_int_equal(wsc_frame_sub(&b, 1, "", NULL, 0), -1);
    assert_int_equal(wsc_frame_sub(&b, 1, "ok", "0123456789abcdef0123456789abcdef0", 1), -1);
    assert_int_equal(wsc_frame_unsub(&b, NULL), -1);
    assert_int_equal(wsc_frame_auth(&b, 1, ""), -1);
    assert_int_equal(wsc_frame_auth(&b, 1, NULL), -1);
    assert_int_equal(b.len, mark);
    proto_buf_fini(&b);
}

/* ---- server frames, made by the gateway's encoders ---- */

static void
s_parse_ok(proto_buf_t *b, wsc_frame_t *f)
{
    const char *why = NULL;

    assert_int_equal(wsc_frame_parse(proto_buf_payload(b), b->len, f, &why), PROTO_OK);
}

static void
test_parses_what_the_gateway_sends(void **state)
{
    proto_buf_t b, d;
    wsc_frame_t f;
    proto_id_t id = {.kind = PROTO_ID_UINT, .u = 9};
    proto_id_t sid = {.kind = PROTO_ID_STR, .len = 1, .s = "a"};
    proto_id_t none = {.kind = PROTO_ID_NONE};

    (void)state;
    proto_buf_init(&b, 0);
    proto_buf_init(&d, 0);
    assert_int_equal(mpk_write_map(&d, 1) || mpk_write_cstr(&d, "k") || mpk_write_double(&d, 1.5),
                     0);
    proto_span_t data = proto_span(proto_buf_payload(&d), d.len);

    assert_int_equal(proto_envelope_encode_res(PROTO_ENC_MSGPACK, &id, data, &b), PROTO_OK);
    s_parse_ok(&b, &f);
    assert_int_equal(f.op, WSC_OP_RES);
    assert_true(f.has_id);
    assert_int_equal(f.id, 9);
    assert_int_equal(f.data.len, d.len);
    assert_memory_equal(f.data.ptr, proto_buf_payload(&d), d.len);

    proto_buf_reset(&b);
    assert_int_equal(proto_envelope_encode_err(PROTO_ENC_MSGPACK, &id, s_cspan("no_service"),
                                               s_cspan("no worker"), &b),
                     PROTO_OK);
    s_parse_ok(&b, &f);
    assert_int_equal(f.op, WSC_OP_ERR);
    assert_true(s_span_is(f.code, "no_service"));
    assert_true(s_span_is(f.msg, "no worker"));

    proto_buf_reset(&b);
    assert_int_equal(proto_envelope_encode_err(PROTO_ENC_MSGPACK, &none, s_cspan("bad_request"),
                                               s_cspan("?"), &b),
                     PROTO_OK);
    s_parse_ok(&b, &f);
    assert_false(f.has_id);

    proto_buf_reset(&b);
    assert_int_equal(proto_envelope_encode_res(PROTO_ENC_MSGPACK, &sid, data, &b), PROTO_OK);
    s_parse_ok(&b, &f);
    assert_false(f.has_id);
    assert_true(f.str_id);

    proto_buf_reset(&b);
    assert_int_equal(proto_envelope_encode_push(PROTO_ENC_MSGPACK, s_cspan("chat"), data, &b),
                     PROTO_OK);
    s_parse_ok(&b, &f);
    assert_int_equal(f.op, WSC_OP_PUSH);
    assert_true(s_span_is(f.svc, "chat"));

    proto_buf_reset(&b);
    assert_int_equal(proto_envelope_encode_msg(PROTO_ENC_MSGPACK, s_cspan("cmd:d1"),
                                               s_cspan("9f2c41d0"), 18, s_cspan(""), data, &b),
                     PROTO_OK);
    s_parse_ok(&b, &f);
    assert_int_equal(f.op, WSC_OP_MSG);
    assert_true(s_span_is(f.channel, "cmd:d1"));
    assert_true(s_span_is(f.epoch, "9f2c41d0"));
    assert_true(f.has_offset);
    assert_int_equal(f.offset, 18);
    assert_int_equal(f.user.len, 0); /* from the backend */

    proto_buf_reset(&b);
    assert_int_equal(proto_envelope_encode_msg(PROTO_ENC_MSGPACK, s_cspan("room:1"), s_cspan("e"),
                                               1, s_cspan("alice"), data, &b),
                     PROTO_OK);
    s_parse_ok(&b, &f);
    assert_true(s_span_is(f.user, "alice"));

    proto_buf_reset(&b);
    assert_int_equal(proto_envelope_encode_presence(PROTO_ENC_MSGPACK, false, s_cspan("room:1"),
                                                    s_cspan("bob"), &b),
                     PROTO_OK);
    s_parse_ok(&b, &f);
    assert_int_equal(f.op, WSC_OP_LEAVE);
    assert_true(s_span_is(f.user, "bob"));
    proto_buf_fini(&b);
    proto_buf_fini(&d);
}

static void
test_every_truncation_is_refused(void **state)
{
    proto_buf_t b;
    wsc_frame_t f;
    const char *why;
    proto_id_t id = {.kind = PROTO_ID_UINT, .u = 123456};
    uint8_t data[] = {0x92, 0xa3, 'a', 'b', 'c', 0xcb, 0, 0, 0, 0, 0, 0, 0, 0};
    size_t n;

    (void)state;
    proto_buf_init(&b, 0);
    assert_int_equal(proto_envelope_encode_msg(PROTO_ENC_MSGPACK, s_cspan("cmd:d1"),
                                               s_cspan("9f2c41d0"), 18, s_cspan("u"),
                                               proto_span(data, sizeof(data)), &b),
                     PROTO_OK);
    for (n = 0; n < b.len; n++) {
        why = NULL;
        assert_int_not_equal(wsc_frame_parse(proto_buf_payload(&b), n, &f, &why), PROTO_OK);
        assert_non_null(why);
    }
    proto_buf_reset(&b);
    assert_int_equal(
        proto_envelope_encode_res(PROTO_ENC_MSGPACK, &id, proto_span(data, sizeof(data)), &b),
        PROTO_OK);
    for (n = 0; n < b.len; n++)
        assert_int_not_equal(wsc_frame_parse(proto_buf_payload(&b), n, &f, &why), PROTO_OK);
    proto_buf_fini(&b);
}

typedef struct {
    const char *hex;
    proto_rc_t rc;
} bad_case_t;

/* 81 a2 "op" a3 "res" is {"op":"res"}; keys and values in hex below */
static const bad_case_t s_bad[] = {
    {"", PROTO_MALFORMED},
    {"c0", PROTO_MALFORMED},                                  /* nil, not a map */
    {"92 01 02", PROTO_MALFORMED},                            /* an array */
    {"a3 72 65 73", PROTO_MALFORMED},                         /* a string */
    {"80", PROTO_MALFORMED},                                  /* {}: no op */
    {"81 a2 6f 70 a3 66 6f 6f", PROTO_MALFORMED},             /* op "foo" */
    {"81 a2 6f 70 01", PROTO_MALFORMED},                      /* op 1 */
    {"81 01 a3 72 65 73", PROTO_MALFORMED},                   /* key 1 */
    {"81 a2 6f 70 a3 72 65 73 00", PROTO_MALFORMED},          /* a byte after the map */
    {"82 a2 6f 70 a3 72 65 73 a1 76 02", PROTO_MALFORMED},    /* v 2 */
    {"82 a2 6f 70 a3 72 65 73 a2 69 64 c3", PROTO_MALFORMED}, /* id true */
    {"82 a2 6f 70 a3 72 65 73 a2 69 64 ff", PROTO_MALFORMED}, /* id -1 */
    {"81 a2 6f 70 a3 65 72 72", PROTO_MALFORMED},             /* err without code */
    {"81 a2 6f 70 a4 70 75 73 68", PROTO_MALFORMED},          /* push without svc */
    {"81 a2 6f 70 a3 6d 73 67", PROTO_MALFORMED},             /* msg without channel */
    {"81 a2 6f 70 a4 6a 6f 69 6e", PROTO_MALFORMED},          /* join without channel */
    /* a map that says 4 billion pairs, in 5 bytes */
    {"df ff ff ff ff a2 6f 70", PROTO_MALFORMED},
    /* a str32 key that says 4 GB */
    {"81 db ff ff ff ff 6f 70", PROTO_MALFORMED},
    /* {"op":"res","data": bin32 of 4 GB} */
    {"82 a2 6f 70 a3 72 65 73 a4 64 61 74 61 c6 ff ff ff ff 00", PROTO_MALFORMED},
    /* {"op":"res","data": array32 of 4 billion} */
    {"82 a2 6f 70 a3 72 65 73 a4 64 61 74 61 dd ff ff ff ff 00", PROTO_MALFORMED},
    /* reserved byte 0xc1 as data */
    {"82 a2 6f 70 a3 72 65 73 a4 64 61 74 61 c1", PROTO_MALFORMED},
    /* channel with a space */
    {"82 a2 6f 70 a4 6a 6f 69 6e a7 63 68 61 6e 6e 65 6c a3 61 20 62", PROTO_MALFORMED},
    /* channel with a NUL */
    {"82 a2 6f 70 a4 6a 6f 69 6e a7 63 68 61 6e 6e 65 6c a3 61 00 62", PROTO_MALFORMED},
    /* code with an upper-case letter */
    {"82 a2 6f 70 a3 65 72 72 a4 63 6f 64 65 a3 42 61 64", PROTO_MALFORMED},
    /* code of 33 bytes */
    {"82 a2 6f 70 a3 65 72 72 a4 63 6f 64 65 d9 21"
     " 61 61 61 61 61 61 61 61 61 61 61 61 61 61 61 61"
     " 61 61 61 61 61 61 61 61 61 61 61 61 61 61 61 61 61",
     PROTO_TOO_BIG},
    /* offset -1 */
    {"82 a2 6f 70 a3 6d 73 67 a6 6f 66 66 73 65 74 ff", PROTO_MALFORMED},
    /* user not UTF-8 */
    {"82 a2 6f 70 a4 6a 6f 69 6e a4 75 73 65 72 a2 ff fe", PROTO_MALFORMED},
};

static void
test_malformed_frames_are_refused(void **state)
{
    uint8_t buf[256];
    wsc_frame_t f;
    const char *why;
    size_t i, n;

    (void)state;
    for (i = 0; i < sizeof(s_bad) / sizeof(s_bad[0]); i++) {
        n = s_hex(s_bad[i].hex, buf, sizeof(buf));
        why = NULL;
        /* the buffer is exactly n bytes, so ASan sees any over-read */
        uint8_t *p = malloc(n ? n : 1);
        memcpy(p, buf, n);
        proto_rc_t rc = wsc_frame_parse(p, n, &f, &why);
        free(p);
        if (rc != s_bad[i].rc)
            fail_msg("case %zu (%s): rc %d, want %d", i, s_bad[i].hex, rc, s_bad[i].rc);
        assert_non_null(why);
    }
}

static void
test_nesting_is_bounded(void **state)
{
    proto_buf_t b;
    wsc_frame_t f;
    const char *why;
    int depth;

    (void)state;
    for (depth = MPK_MAX_DEPTH - 1; depth <= MPK_MAX_DEPTH + 1; depth++) {
        int i;

        proto_buf_init(&b, 0);
        assert_int_equal(mpk_write_map(&b, 2) || mpk_write_cstr(&b, "op") ||
                             mpk_write_cstr(&b, "res") || mpk_write_cstr(&b, "data"),
                         0);
        for (i = 0; i < depth; i++)
            assert_int_equal(mpk_write_array(&b, 1), 0);
        assert_int_equal(mpk_write_nil(&b), 0);
        proto_rc_t rc = wsc_frame_parse(proto_buf_payload(&b), b.len, &f, &why);
        if (depth <= MPK_MAX_DEPTH) /* MPK_MAX_DEPTH containers deep, no more */
            assert_int_equal(rc, PROTO_OK);
        else
            assert_int_equal(rc, PROTO_TOO_BIG);
        proto_buf_fini(&b);
    }
}

static void
test_unknown_fields_are_skipped(void **state)
{
    proto_buf_t b;
    wsc_frame_t f;

    (void)state;
    proto_buf_init(&b, 0);
    assert_int_equal(mpk_write_map(&b, 4) || mpk_write_cstr(&b, "future") ||
                         mpk_write_array(&b, 2) || mpk_write_uint(&b, 1) || mpk_write_map(&b, 0) ||
                         mpk_write_cstr(&b, "op") || mpk_write_cstr(&b, "res") ||
                         mpk_write_cstr(&b, "id") || mpk_write_uint(&b, 5) ||
                         mpk_write_cstr(&b, "v") || mpk_write_uint(&b, 1),
                     0);
    s_parse_ok(&b, &f);
    assert_int_equal(f.id, 5);
    assert_null(f.data.ptr); /* absent: nil */
    proto_buf_fini(&b);
}

/* ---- answers ---- */

static void
s_pub(proto_buf_t *b, uint64_t off, const char *user, uint64_t v)
{
    assert_int_equal(mpk_write_map(b, 3) || mpk_write_cstr(b, "offset") || mpk_write_uint(b, off) ||
                         mpk_write_cstr(b, "user") || mpk_write_cstr(b, user) ||
                         mpk_write_cstr(b, "data") || mpk_write_uint(b, v),
                     0);
}

static void
test_sub_answer_with_recovered_pubs(void **state)
{
    proto_buf_t b;
    wsc_sub_answer_t a;
    uint64_t off;
    proto_span_t u, d;

    (void)state;
    proto_buf_init(&b, 0);
    assert_int_equal(mpk_write_map(&b, 4) || mpk_write_cstr(&b, "epoch") ||
                         mpk_write_cstr(&b, "e1") || mpk_write_cstr(&b, "offset") ||
                         mpk_write_uint(&b, 12) || mpk_write_cstr(&b, "recovered") ||
                         mpk_write_bool(&b, true) || mpk_write_cstr(&b, "pubs") ||
                         mpk_write_array(&b, 2),
                     0);
    s_pub(&b, 11, "", 110);
    s_pub(&b, 12, "alice", 120);
    assert_int_equal(wsc_frame_sub_answer(proto_span(proto_buf_payload(&b), b.len), &a), PROTO_OK);
    assert_true(s_span_is(a.epoch, "e1"));
    assert_int_equal(a.offset, 12);
    assert_true(a.recovered);
    assert_int_equal(a.npubs, 2);
    assert_int_equal(wsc_frame_sub_answer_next(&a, &off, &u, &d), PROTO_OK);
    assert_int_equal(off, 11);
    assert_int_equal(u.len, 0);
    assert_int_equal(d.len, 1);
    assert_int_equal(d.ptr[0], 110);
    assert_int_equal(wsc_frame_sub_answer_next(&a, &off, &u, &d), PROTO_OK);
    assert_int_equal(off, 12);
    assert_true(s_span_is(u, "alice"));
    /* no more than announced */
    assert_int_equal(wsc_frame_sub_answer_next(&a, &off, &u, &d), PROTO_MALFORMED);

    /* malformed: no epoch; pubs not an array; a pub without offset */
    proto_buf_reset(&b);
    assert_int_equal(mpk_write_map(&b, 1) || mpk_write_cstr(&b, "offset") || mpk_write_uint(&b, 1),
                     0);
    assert_int_equal(wsc_frame_sub_answer(proto_span(proto_buf_payload(&b), b.len), &a),
                     PROTO_MALFORMED);
    proto_buf_reset(&b);
    assert_int_equal(mpk_write_map(&b, 2) || mpk_write_cstr(&b, "epoch") ||
                         mpk_write_cstr(&b, "e") || mpk_write_cstr(&b, "pubs") ||
                         mpk_write_uint(&b, 3),
                     0);
    assert_int_equal(wsc_frame_sub_answer(proto_span(proto_buf_payload(&b), b.len), &a),
                     PROTO_MALFORMED);
    proto_buf_reset(&b);
    assert_int_equal(mpk_write_map(&b, 2) || mpk_write_cstr(&b, "epoch") ||
                         mpk_write_cstr(&b, "e") || mpk_write_cstr(&b, "pubs") ||
                         mpk_write_array(&b, 1) || mpk_write_map(&b, 1) ||
                         mpk_write_cstr(&b, "data") || mpk_write_nil(&b),
                     0);
    assert_int_equal(wsc_frame_sub_answer(proto_span(proto_buf_payload(&b), b.len), &a), PROTO_OK);
    assert_int_equal(wsc_frame_sub_answer_next(&a, &off, &u, &d), PROTO_MALFORMED);
    /* not a map at all */
    assert_int_equal(wsc_frame_sub_answer(proto_span("\xc0", 1), &a), PROTO_MALFORMED);
    proto_buf_fini(&b);
}

static void
test_auth_answer(void **state)
{
    proto_buf_t b;
    proto_span_t user;
    uint64_t exp;

    (void)state;
    proto_buf_init(&b, 0);
    assert_int_equal(mpk_write_map(&b, 2) || mpk_write_cstr(&b, "user") ||
                         mpk_write_cstr(&b, "alice") || mpk_write_cstr(&b, "exp") ||
                         mpk_write_uint(&b, 1767225600),
                     0);
    assert_int_equal(wsc_frame_auth_answer(proto_span(proto_buf_payload(&b), b.len), &user, &exp),
                     PROTO_OK);
    assert_true(s_span_is(user, "alice"));
    assert_int_equal(exp, 1767225600);
    proto_buf_reset(&b);
    assert_int_equal(
        mpk_write_map(&b, 1) || mpk_write_cstr(&b, "exp") || mpk_write_cstr(&b, "soon"), 0);
    assert_int_equal(wsc_frame_auth_answer(proto_span(proto_buf_payload(&b), b.len), &user, &exp),
                     PROTO_MALFORMED);
    proto_buf_fini(&b);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_req_is_what_the_gateway_reads),
        cmocka_unit_test(test_session_ops_are_what_the_gateway_reads),
        cmocka_unit_test(test_builders_refuse_bad_arguments_and_leave_the_buffer),
        cmocka_unit_test(test_parses_what_the_gateway_sends),
        cmocka_unit_test(test_every_truncation_is_refused),
        cmocka_unit_test(test_malformed_frames_are_refused),
        cmocka_unit_test(test_nesting_is_bounded),
        cmocka_unit_test(test_unknown_fields_are_skipped),
        cmocka_unit_test(test_sub_answer_with_recovered_pubs),
        cmocka_unit_test(test_auth_answer),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
