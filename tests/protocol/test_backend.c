/*
 * test_backend.c - gateway <-> worker header frames (protocol/backend.c).
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

#include "backend.h"
#include "mpk.h"

static bool
s_span_is(proto_span_t s, const char *lit)
{
    return s.len == strlen(lit) && (s.len == 0 || memcmp(s.ptr, lit, s.len) == 0);
}

static proto_rc_t
s_decode(const proto_buf_t *b, proto_bk_t *h, const char **err)
{
    return proto_bk_decode(proto_buf_payload(b), b->len, h, err);
}

/* ---- reference bytes ---- */

static void
s_expect(proto_buf_t *b, const char *hex)
{
    uint8_t want[128];
    size_t n = s_hex(hex, want, sizeof want);

    assert_int_equal(b->len, n);
    assert_memory_equal(proto_buf_payload(b), want, n);
    proto_buf_reset(b);
}

static void
test_reference_bytes(void **state)
{
    proto_buf_t b;
    proto_span_t svcs[2] = {s_cspan("a"), s_cspan("b.c")};
    uint64_t conns[3] = {1, 300, 1ULL << 40};

    (void)state;
    proto_buf_init(&b, 0);
    assert_int_equal(proto_bk_encode_req(&b, 5, 9, s_cspan("chat"), s_cspan("k"), PROTO_BK_F_RAW,
                                         proto_span(NULL, 0)),
                     0);
    s_expect(&b, "97 01 22 05 09 a4 63 68 61 74 a1 6b 01");
    assert_int_equal(proto_bk_encode_hello(&b, s_cspan("w1"), svcs, NULL, 2), 0);
    s_expect(&b, "94 01 01 a2 77 31 92 a1 61 a3 62 2e 63");
    assert_int_equal(proto_bk_encode_send(&b, conns, 3, 2, s_cspan("s")), 0);
    s_expect(&b, "95 01 04 93 01 cd 01 2c cf 00 00 01 00 00 00 00 00 02 a1 73");
    assert_int_equal(proto_bk_encode_reply(&b, 0), 0);
    s_expect(&b, "93 01 02 00");
    assert_int_equal(proto_bk_encode_error(&b, 70000, s_cspan("timeout"), s_cspan("")), 0);
    s_expect(&b, "95 01 03 ce 00 01 11 70 a7 74 69 6d 65 6f 75 74 a0");
    assert_int_equal(proto_bk_encode_close(&b, 3, 1000, s_cspan("bye")), 0);
    s_expect(&b, "95 01 05 03 cd 03 e8 a3 62 79 65");
    assert_int_equal(proto_bk_encode_welcome(&b, s_cspan("gw"), 7), 0);
    s_expect(&b, "94 01 20 a2 67 77 07");
    assert_int_equal(proto_bk_encode_open(&b, 1, s_cspan("x"), s_cspan(""), 3), 0);
    s_expect(&b, "96 01 21 01 a1 78 a0 03");
    assert_int_equal(proto_bk_encode_closed(&b, 1, s_cspan("x"), s_cspan("k"), 1001), 0);
    s_expect(&b, "96 01 23 01 a1 78 a1 6b cd 03 e9");

    /* the worked examples of docs/backend-protocol.md */
    assert_int_equal(proto_bk_encode_req(&b, 5, 42, s_cspan("counter"), s_cspan("user:1"), 0,
                                         proto_span(NULL, 0)),
                     0);
    s_expect(&b, "97 01 22 05 2a a7 63 6f 75 6e 74 65 72 a6 75 73 65 72 3a 31 00");
    assert_int_equal(proto_bk_encode_reply(&b, 5), 0);
    s_expect(&b, "93 01 02 05");
    proto_span_t doc_svcs[2] = {s_cspan("echo"), s_cspan("counter")};
    assert_int_equal(proto_bk_encode_hello(&b, s_cspan("worker-1"), doc_svcs, NULL, 2), 0);
    s_expect(&b, "94 01 01 a8 77 6f 72 6b 65 72 2d 31 92 a4 65 63 68 6f a7 63 6f 75 6e 74 65 72");
    assert_int_equal(proto_bk_encode_error(&b, 5, s_cspan("overloaded"), s_cspan("mailbox full")),
                     0);
    s_expect(&b, "95 01 03 05 aa 6f 76 65 72 6c 6f 61 64 65 64 ac 6d 61 69 6c 62 6f 78 20 66 75 "
                 "6c 6c");
    assert_int_equal(proto_bk_encode_req(&b, 0, 42, s_cspan("echo"), s_cspan("c:42"),
                                         PROTO_BK_F_RAW | PROTO_BK_F_TEXT, proto_span(NULL, 0)),
                     0);
    s_expect(&b, "97 01 22 00 2a a4 65 63 68 6f a4 63 3a 34 32 03");

    /* and the decoder reads a hand-written REQ */
    uint8_t in[32];
    size_t n = s_hex("97 01 22 05 09 a4 63 68 61 74 a1 6b 01", in, sizeof in);
    proto_bk_t h;
    const char *err;
    assert_int_equal(proto_bk_decode(in, n, &h, &err), PROTO_OK);
    assert_int_equal(h.version, 1);
    assert_int_equal(h.type, PROTO_BK_REQ);
    assert_int_equal(h.rid, 5);
    assert_int_equal(h.conn, 9);
    assert_ptr_equal(h.svc.ptr, in + 6);
    assert_true(s_span_is(h.svc, "chat"));
    assert_true(s_span_is(h.key, "k"));
    assert_int_equal(h.flags, PROTO_BK_F_RAW);
    proto_buf_fini(&b);
}

/* ---- round trips, one per type ---- */

static void
test_roundtrip_every_type(void **state)
{
    proto_span_t svcs[3] = {s_cspan("chat"), s_cspan("echo.v2"), s_cspan("a-b_c")};
    uint64_t conns[4] = {0, 1, UINT32_MAX, UINT64_MAX};
    proto_buf_t b;
    proto_bk_t h;
    const char *err;
    proto_span_t s;
    uint64_t u;
    size_t pos;

    (void)state;
    proto_buf_init(&b, 16);

    assert_int_equal(proto_bk_encode_hello(&b, s_cspan("worker-7"), svcs, NULL, 3), 0);
    assert_int_equal(s_decode(&b, &h, &err), PROTO_OK);
    assert_int_equal(h.type, PROTO_BK_HELLO);
    assert_true(s_span_is(h.id, "worker-7"));
    assert_int_equal(h.list_count, 3);
    pos = 0;
    for (int i = 0; i < 3; i++) {
        assert_true(proto_bk_next_str(&h, &pos, &s));
        assert_int_equal(s.len, svcs[i].len);
        assert_memory_equal(s.ptr, svcs[i].ptr, s.len);
    }
    assert_false(proto_bk_next_str(&h, &pos, &s));
    assert_int_equal(pos, h.list.len);

    proto_buf_reset(&b);
    assert_int_equal(proto_bk_encode_hello(&b, s_cspan("w"), NULL, NULL, 0), 0);
    assert_int_equal(s_decode(&b, &h, &err), PROTO_OK);
    assert_int_equal(h.list_count, 0);
    pos = 0;
    assert_false(proto_bk_next_str(&h, &pos, &s));

    proto_buf_reset(&b);
    assert_int_equal(proto_bk_encode_reply(&b, UINT64_MAX), 0);
    assert_int_equal(s_decode(&b, &h, &err), PROTO_OK);
    assert_int_equal(h.type, PROTO_BK_REPLY);
    assert_true(h.rid == UINT64_MAX);

    proto_buf_reset(&b);
    assert_int_equal(
        proto_bk_encode_error(&b, 42, s_cspan("no_service"), s_cspan("no \xc3\xa9 here")), 0);
    assert_int_equal(s_decode(&b, &h, &err), PROTO_OK);
    assert_int_equal(h.type, PROTO_BK_ERROR);
    assert_int_equal(h.rid, 42);
    assert_true(s_span_is(h.code, "no_service"));
    assert_true(s_span_is(h.text, "no \xc3\xa9 here"));

    proto_buf_reset(&b);
    assert_int_equal(
        proto_bk_encode_send(&b, conns, 4, PROTO_BK_F_RAW | PROTO_BK_F_TEXT, s_cspan("chat")), 0);
    assert_int_equal(s_decode(&b, &h, &err), PROTO_OK);
    assert_int_equal(h.type, PROTO_BK_SEND);
    assert_int_equal(h.flags, 3);
    assert_true(s_span_is(h.svc, "chat"));
    assert_int_equal(h.list_count, 4);
    pos = 0;
    for (int i = 0; i < 4; i++) {
        assert_true(proto_bk_next_uint(&h, &pos, &u));
        assert_true(u == conns[i]);
    }
    assert_false(proto_bk_next_uint(&h, &pos, &u));

    proto_buf_reset(&b);
    assert_int_equal(proto_bk_encode_close(&b, 77, 4000, s_cspan("going away")), 0);
    assert_int_equal(s_decode(&b, &h, &err), PROTO_OK);
    assert_int_equal(h.type, PROTO_BK_CLOSE);
    assert_int_equal(h.conn, 77);
    assert_int_equal(h.close_code, 4000);
    assert_true(s_span_is(h.text, "going away"));

    proto_buf_reset(&b);
    assert_int_equal(proto_bk_encode_welcome(&b, s_cspan("gateway-1"), 1ull << 52), 0);
    assert_int_equal(s_decode(&b, &h, &err), PROTO_OK);
    assert_int_equal(h.type, PROTO_BK_WELCOME);
    assert_true(s_span_is(h.id, "gateway-1"));
    assert_int_equal(h.conn, 1ull << 52);
    /* the 3-field WELCOME of earlier gateways: no floor (0) */
    proto_buf_reset(&b);
    static const uint8_t old_welcome[] = {0x93, 0x01, 0x20, 0xa2, 'g', 'w'};
    proto_buf_append(&b, old_welcome, sizeof old_welcome);
    assert_int_equal(s_decode(&b, &h, &err), PROTO_OK);
    assert_int_equal(h.type, PROTO_BK_WELCOME);
    assert_int_equal(h.conn, 0);
    /* a floor that is not a uint */
    proto_buf_reset(&b);
    static const uint8_t bad_welcome[] = {0x94, 0x01, 0x20, 0xa2, 'g', 'w', 0xa1, 'x'};
    proto_buf_append(&b, bad_welcome, sizeof bad_welcome);
    assert_int_equal(s_decode(&b, &h, &err), PROTO_MALFORMED);

    proto_buf_reset(&b);
    assert_int_equal(
        proto_bk_encode_open(&b, 5, s_cspan("raw.echo"), s_cspan("room/1"), PROTO_BK_F_RAW), 0);
    assert_int_equal(s_decode(&b, &h, &err), PROTO_OK);
    assert_int_equal(h.type, PROTO_BK_OPEN);
    assert_int_equal(h.conn, 5);
    assert_true(s_span_is(h.svc, "raw.echo"));
    assert_true(s_span_is(h.key, "room/1"));
    assert_int_equal(h.flags, PROTO_BK_F_RAW);

    proto_buf_reset(&b);
    assert_int_equal(
        proto_bk_encode_req(&b, 0, UINT64_MAX, s_cspan("s"), s_cspan(""), 0, proto_span(NULL, 0)),
        0);
    assert_int_equal(s_decode(&b, &h, &err), PROTO_OK);
    assert_int_equal(h.type, PROTO_BK_REQ);
    assert_int_equal(h.rid, 0);
    assert_true(h.conn == UINT64_MAX);
    assert_int_equal(h.key.len, 0);
    assert_int_equal(h.flags, 0);

    proto_buf_reset(&b);
    assert_int_equal(proto_bk_encode_closed(&b, 8, s_cspan("s"), s_cspan("k"), UINT32_MAX), 0);
    assert_int_equal(s_decode(&b, &h, &err), PROTO_OK);
    assert_int_equal(h.type, PROTO_BK_CLOSED);
    assert_int_equal(h.conn, 8);
    assert_true(s_span_is(h.key, "k"));
    assert_int_equal(h.close_code, UINT32_MAX);

    /* encoders append: two headers back to back */
    proto_buf_reset(&b);
    assert_int_equal(proto_bk_encode_reply(&b, 1), 0);
    size_t first = b.len;
    assert_int_equal(proto_bk_encode_reply(&b, 2), 0);
    assert_int_equal(proto_bk_decode(proto_buf_payload(&b) + first, b.len - first, &h, &err),
                     PROTO_OK);
    assert_int_equal(h.rid, 2);
    proto_buf_fini(&b);
}

/* ---- schema: field kinds per type, to generate good and bad headers ---- */

typedef enum {
    FK_U64,
    FK_U32,
    FK_ID,
    FK_SVC,
    FK_KEY,
    FK_CODE,
    FK_TEXT,
    FK_LSVC,
    FK_LU64,
} fk_t;

typedef struct {
    uint32_t type;
    int n;
    fk_t f[5];
} layout_t;

static const layout_t s_layouts[] = {
    {PROTO_BK_HELLO, 2, {FK_ID, FK_LSVC}},
    {PROTO_BK_REPLY, 1, {FK_U64}},
    {PROTO_BK_ERROR, 3, {FK_U64, FK_CODE, FK_TEXT}},
    {PROTO_BK_SEND, 3, {FK_LU64, FK_U32, FK_SVC}},
    {PROTO_BK_CLOSE, 3, {FK_U64, FK_U32, FK_TEXT}},
    {PROTO_BK_WELCOME, 1, {FK_ID}},
    {PROTO_BK_OPEN, 4, {FK_U64, FK_SVC, FK_KEY, FK_U32}},
    {PROTO_BK_REQ, 5, {FK_U64, FK_U64, FK_SVC, FK_KEY, FK_U32}},
    {PROTO_BK_CLOSED, 4, {FK_U64, FK_SVC, FK_KEY, FK_U32}},
};
#define N_LAYOUTS (sizeof s_layouts / sizeof s_layouts[0])

static void
s_write_good(proto_buf_t *b, fk_t k)
{
    switch (k) {
    case FK_U64:
        mpk_write_uint(b, 1ULL << 40);
        break;
    case FK_U32:
        mpk_write_uint(b, 1000);
        break;
    case FK_ID:
        mpk_write_cstr(b, "id-1");
        break;
    case FK_SVC:
        mpk_write_cstr(b, "svc");
        break;
    case FK_KEY:
        mpk_write_cstr(b, "key");
        break;
    case FK_CODE:
        mpk_write_cstr(b, "code");
        break;
    case FK_TEXT:
        mpk_write_cstr(b, "text");
        break;
    case FK_LSVC:
        mpk_write_array(b, 2);
        mpk_write_cstr(b, "a");
        mpk_write_cstr(b, "b");
        break;
    case FK_LU64:
        mpk_write_array(b, 2);
        mpk_write_uint(b, 1);
        mpk_write_uint(b, 2);
        break;
    }
}

/* Wrong values for a field kind, as msgpack hex; NULL ends each list. */
static const char *const *
s_bad_values(fk_t k)
{
    static const char *const u64[] = {"c0", "a1 31", "ff",       "cb 3f f0 00 00 00 00 00 00",
                                      "90", "c3",    "c4 01 01", NULL};
    static const char *const u32[] = {
        "c0", "a1 31", "ff", "cb 3f f0 00 00 00 00 00 00", "cf 00 00 00 01 00 00 00 00",
        "90", NULL};
    static const char *const id[] = {"c0", "01", "a0", "c4 01 77", "91 a1 77", "a2 c0 80", NULL};
    static const char *const svc[] = {"c0",          "01",       "a0", "a3 42 61 64",
                                      "a3 61 2f 62", "c4 01 61", NULL};
    static const char *const key[] = {"c0", "01", "c4 01 6b", "80", "a1 ff", "a3 ed b0 80", NULL};
    static const char *const code[] = {"c0", "01", "a0", "a3 61 2d 62", "a1 41", NULL};
    static const char *const text[] = {"c0", "01", "a1 ff", "a3 ed a0 80", "c4 01 61", NULL};
    static const char *const lsvc[] = {"c0",    "01",          "80",    "a1 61", "91 a3 42 61 64",
                                       "91 01", "92 a1 61 c0", "91 a0", NULL};
    static const char *const lu64[] = {
        "c0", "01", "80", "91 a1 78", "91 ff", "92 01 c0", "91 cb 3f f0 00 00 00 00 00 00", NULL};

    switch (k) {
    case FK_U64:
        return u64;
    case FK_U32:
        return u32;
    case FK_ID:
        return id;
    case FK_SVC:
        return svc;
    case FK_KEY:
        return key;
    case FK_CODE:
        return code;
    case FK_TEXT:
        return text;
    case FK_LSVC:
        return lsvc;
    case FK_LU64:
        return lu64;
    }
    return NULL;
}

/* Builds [1, type, fields...] with field `bad` (or none: -1) replaced by
 * raw bytes, and `count` elements declared. */
static void
s_build(proto_buf_t *b, const layout_t *l, int bad, const uint8_t *raw, size_t raw_len)
{
    proto_buf_reset(b);
    mpk_write_array(b, 2 + (uint32_t)l->n);
    mpk_write_uint(b, 1);
    mpk_write_uint(b, l->type);
    for (int i = 0; i < l->n; i++) {
        if (i == bad)
            mpk_write_raw(b, raw, raw_len);
        else
            s_write_good(b, l->f[i]);
    }
}

static void
test_wrong_type_every_field(void **state)
{
    proto_buf_t b;
    proto_bk_t h;
    const char *err;
    int checked = 0;

    (void)state;
    proto_buf_init(&b, 0);
    for (size_t li = 0; li < N_LAYOUTS; li++) {
        const layout_t *l = &s_layouts[li];
        s_build(&b, l, -1, NULL, 0);
        assert_int_equal(s_decode(&b, &h, &err), PROTO_OK);
        assert_int_equal(h.type, l->type);
        for (int fi = 0; fi < l->n; fi++) {
            for (const char *const *v = s_bad_values(l->f[fi]); *v; v++) {
                uint8_t raw[32];
                size_t n = s_hex(*v, raw, sizeof raw);
                proto_rc_t rc;
                s_build(&b, l, fi, raw, n);
                err = NULL;
                rc = s_decode(&b, &h, &err);
                if (rc != PROTO_MALFORMED)
                    fail_msg("type %u field %d value %s: rc %d", l->type, fi, *v, rc);
                assert_non_null(err);
                checked++;
            }
        }
    }
    assert_true(checked > 100);
    proto_buf_fini(&b);
}

static void
test_missing_fields(void **state)
{
    proto_buf_t b;
    proto_bk_t h;
    const char *err;

    (void)state;
    proto_buf_init(&b, 0);
    for (size_t li = 0; li < N_LAYOUTS; li++) {
        const layout_t *l = &s_layouts[li];
        /* declare and write only the first `have` fields */
        for (int have = 0; have < l->n; have++) {
            proto_buf_reset(&b);
            mpk_write_array(&b, 2 + (uint32_t)have);
            mpk_write_uint(&b, 1);
            mpk_write_uint(&b, l->type);
            for (int i = 0; i < have; i++)
                s_write_good(&b, l->f[i]);
            err = NULL;
            assert_int_equal(s_decode(&b, &h, &err), PROTO_MALFORMED);
            assert_string_equal(err, "missing field");
        }
    }
    /* not even a type */
    assert_int_equal(proto_bk_decode((const uint8_t *)"\x91\x01", 2, &h, &err), PROTO_MALFORMED);
    assert_int_equal(proto_bk_decode((const uint8_t *)"\x90", 1, &h, &err), PROTO_MALFORMED);
    proto_buf_fini(&b);
}

static void
test_truncated_every_byte(void **state)
{
    proto_buf_t b;
    proto_bk_t h;
    const char *err;

    (void)state;
    proto_buf_init(&b, 0);
    for (size_t li = 0; li < N_LAYOUTS; li++) {
        s_build(&b, &s_layouts[li], -1, NULL, 0);
        assert_int_equal(s_decode(&b, &h, &err), PROTO_OK);
        for (size_t cut = 0; cut < b.len; cut++) {
            uint8_t *p = malloc(cut ? cut : 1);
            proto_rc_t rc;
            memcpy(p, proto_buf_payload(&b), cut);
            err = NULL;
            rc = proto_bk_decode(p, cut, &h, &err);
            if (rc == PROTO_OK)
                fail_msg("type %u: prefix %zu of %zu decoded", s_layouts[li].type, cut, b.len);
            assert_non_null(err);
            free(p);
        }
    }
    proto_buf_fini(&b);
}

static void
test_version_and_type(void **state)
{
    proto_bk_t h;
    const char *err;

    (void)state;
    /* [2, 2, 5]: the version is reported for counting */
    assert_int_equal(proto_bk_decode((const uint8_t *)"\x93\x02\x02\x05", 4, &h, &err),
                     PROTO_MALFORMED);
    assert_int_equal(h.version, 2);
    assert_string_equal(err, "unsupported version");
    assert_int_equal(proto_bk_decode((const uint8_t *)"\x93\x00\x02\x05", 4, &h, &err),
                     PROTO_MALFORMED);
    assert_int_equal(h.version, 0);
    /* a version from the future with a layout we cannot know */
    assert_int_equal(proto_bk_decode((const uint8_t *)"\x92\xcd\x01\x00\xc0", 5, &h, &err),
                     PROTO_MALFORMED);
    assert_int_equal(h.version, 256);
    /* version of the wrong type */
    assert_int_equal(proto_bk_decode((const uint8_t *)"\x93\xa1\x31\x02\x05", 5, &h, &err),
                     PROTO_MALFORMED);
    /* unknown types */
    static const uint8_t types[] = {0, 10, 31, 38, 127};
    for (size_t k = 0; k < sizeof types; k++) {
        uint8_t in[] = {0x93, 0x01, types[k], 0x05};
        assert_int_equal(proto_bk_decode(in, sizeof in, &h, &err), PROTO_MALFORMED);
        assert_int_equal(h.version, 1);
        assert_int_equal(h.type, types[k]);
        assert_string_equal(err, "unknown type");
    }
    /* type over 32 bits */
    assert_int_equal(proto_bk_decode((const uint8_t *)"\x93\x01\xcf\x00\x00\x00\x01\x00\x00\x00"
                                                      "\x02\x05",
                                     12, &h, &err),
                     PROTO_MALFORMED);
    /* not an array */
    assert_int_equal(proto_bk_decode((const uint8_t *)"\x81\x01\x02", 3, &h, &err),
                     PROTO_MALFORMED);
    assert_int_equal(proto_bk_decode((const uint8_t *)"", 0, &h, &err), PROTO_MALFORMED);
    assert_int_equal(proto_bk_decode(NULL, 0, &h, &err), PROTO_MALFORMED);
}

static void
test_trailing(void **state)
{
    proto_buf_t b;
    proto_bk_t h;
    const char *err;

    (void)state;
    proto_buf_init(&b, 0);
    /* [1, 2, 5, "extra", {"a": [1]}]: unknown trailing fields are skipped */
    mpk_write_array(&b, 5);
    mpk_write_uint(&b, 1);
    mpk_write_uint(&b, PROTO_BK_REPLY);
    mpk_write_uint(&b, 5);
    mpk_write_cstr(&b, "extra");
    mpk_write_map(&b, 1);
    mpk_write_cstr(&b, "a");
    mpk_write_array(&b, 1);
    mpk_write_uint(&b, 1);
    assert_int_equal(s_decode(&b, &h, &err), PROTO_OK);
    assert_int_equal(h.rid, 5);

    /* ...but must still be well-formed */
    proto_buf_reset(&b);
    mpk_write_array(&b, 4);
    mpk_write_uint(&b, 1);
    mpk_write_uint(&b, PROTO_BK_REPLY);
    mpk_write_uint(&b, 5);
    mpk_write_raw(&b, "\xc1", 1);
    assert_int_equal(s_decode(&b, &h, &err), PROTO_MALFORMED);

    /* and not too deep */
    proto_buf_reset(&b);
    mpk_write_array(&b, 4);
    mpk_write_uint(&b, 1);
    mpk_write_uint(&b, PROTO_BK_REPLY);
    mpk_write_uint(&b, 5);
    for (int i = 0; i < MPK_MAX_DEPTH + 1; i++)
        mpk_write_array(&b, 1);
    mpk_write_nil(&b);
    assert_int_equal(s_decode(&b, &h, &err), PROTO_TOO_BIG);

    /* bytes after the array: the frame must be exactly one value */
    proto_buf_reset(&b);
    assert_int_equal(proto_bk_encode_reply(&b, 5), 0);
    mpk_write_nil(&b);
    assert_int_equal(s_decode(&b, &h, &err), PROTO_MALFORMED);
    proto_buf_fini(&b);
}

static void
test_limits(void **state)
{
    char big[2048];
    proto_span_t svcs[PROTO_BK_MAX_SERVICES + 1];
    uint64_t *conns = calloc(PROTO_BK_MAX_TARGETS + 1, sizeof *conns);
    proto_buf_t b;
    proto_bk_t h;
    const char *err;

    (void)state;
    memset(big, 'x', sizeof big);
    proto_buf_init(&b, 0);

    /* ids: 1..128 bytes */
    assert_int_equal(proto_bk_encode_welcome(&b, proto_span(big, PROTO_BK_WORKER_ID_MAX), 1), 0);
    assert_int_equal(s_decode(&b, &h, &err), PROTO_OK);
    proto_buf_reset(&b);
    assert_int_equal(proto_bk_encode_welcome(&b, proto_span(big, PROTO_BK_WORKER_ID_MAX + 1), 1),
                     0);
    assert_int_equal(s_decode(&b, &h, &err), PROTO_TOO_BIG);

    /* text: up to 1024 bytes */
    proto_buf_reset(&b);
    assert_int_equal(proto_bk_encode_close(&b, 1, 1000, proto_span(big, PROTO_BK_TEXT_MAX)), 0);
    assert_int_equal(s_decode(&b, &h, &err), PROTO_OK);
    assert_int_equal(h.text.len, PROTO_BK_TEXT_MAX);
    proto_buf_reset(&b);
    assert_int_equal(
        proto_bk_encode_error(&b, 1, s_cspan("x"), proto_span(big, PROTO_BK_TEXT_MAX + 1)), 0);
    assert_int_equal(s_decode(&b, &h, &err), PROTO_TOO_BIG);

    /* keys: 0..256 bytes */
    proto_buf_reset(&b);
    assert_int_equal(
        proto_bk_encode_req(&b, 1, 1, s_cspan("s"), proto_span(big, 256), 0, proto_span(NULL, 0)),
        0);
    assert_int_equal(s_decode(&b, &h, &err), PROTO_OK);
    proto_buf_reset(&b);
    assert_int_equal(
        proto_bk_encode_req(&b, 1, 1, s_cspan("s"), proto_span(big, 257), 0, proto_span(NULL, 0)),
        0);
    assert_int_equal(s_decode(&b, &h, &err), PROTO_TOO_BIG);

    /* services in a HELLO */
    for (int i = 0; i <= PROTO_BK_MAX_SERVICES; i++)
        svcs[i] = s_cspan("svc");
    proto_buf_reset(&b);
    assert_int_equal(proto_bk_encode_hello(&b, s_cspan("w"), svcs, NULL, PROTO_BK_MAX_SERVICES), 0);
    assert_int_equal(s_decode(&b, &h, &err), PROTO_OK);
    assert_int_equal(h.list_count, PROTO_BK_MAX_SERVICES);
    proto_buf_reset(&b);
    assert_int_equal(proto_bk_encode_hello(&b, s_cspan("w"), svcs, NULL, PROTO_BK_MAX_SERVICES + 1),
                     0);
    assert_int_equal(s_decode(&b, &h, &err), PROTO_TOO_BIG);

    /* targets in a SEND */
    for (size_t i = 0; i <= PROTO_BK_MAX_TARGETS; i++)
        conns[i] = i * 1000003u;
    proto_buf_reset(&b);
    assert_int_equal(proto_bk_encode_send(&b, conns, PROTO_BK_MAX_TARGETS, 0, s_cspan("s")), 0);
    assert_int_equal(s_decode(&b, &h, &err), PROTO_OK);
    assert_int_equal(h.list_count, PROTO_BK_MAX_TARGETS);
    size_t pos = 0, count = 0;
    uint64_t u;
    while (proto_bk_next_uint(&h, &pos, &u)) {
        assert_true(u == conns[count]);
        count++;
    }
    assert_int_equal(count, PROTO_BK_MAX_TARGETS);
    proto_buf_reset(&b);
    assert_int_equal(proto_bk_encode_send(&b, conns, PROTO_BK_MAX_TARGETS + 1, 0, s_cspan("s")), 0);
    assert_int_equal(s_decode(&b, &h, &err), PROTO_TOO_BIG);

    free(conns);
    proto_buf_fini(&b);
}

static void
test_oversize_declared_lengths(void **state)
{
    static const char *const cases[] = {
        "dd ff ff ff ff 01 02",             /* array32 of 4G elements */
        "93 01 01 db ff ff ff ff",          /* HELLO id: str32 of 4 GiB */
        "94 01 01 a1 77 dd ff ff ff ff",    /* HELLO list: array32 of 4G */
        "95 01 04 dd 00 01 00 00 01 02",    /* SEND list: 65536 claimed, 2 there */
        "95 01 03 01 a1 78 db 7f ff ff ff", /* ERROR text: str32 of 2 GiB */
    };
    proto_bk_t h;
    const char *err;
    uint8_t in[32];

    (void)state;
    for (size_t k = 0; k < sizeof cases / sizeof cases[0]; k++) {
        size_t n = s_hex(cases[k], in, sizeof in);
        assert_int_equal(proto_bk_decode(in, n, &h, &err), PROTO_MALFORMED);
    }
}

static void
test_iterators_on_empty(void **state)
{
    proto_bk_t h;
    size_t pos = 0;
    proto_span_t s;
    uint64_t u;

    (void)state;
    memset(&h, 0, sizeof h);
    assert_false(proto_bk_next_str(&h, &pos, &s));
    assert_false(proto_bk_next_uint(&h, &pos, &u));
}

/* HELLO's optional per-service flags, and the header-only drain types. */
static void
test_hello_flags_and_drain(void **state)
{
    proto_span_t svcs[] = {s_cspan("echo"), s_cspan("counter")};
    uint32_t flags[] = {PROTO_BK_SVC_RETRY_SAFE, 0};
    const char *err = NULL;
    proto_buf_t b;
    proto_bk_t h;

    (void)state;
    proto_buf_init(&b, 0);
    assert_int_equal(proto_bk_encode_hello(&b, s_cspan("w"), svcs, flags, 2), 0);
    assert_int_equal(proto_bk_decode(proto_buf_payload(&b), b.len, &h, &err), PROTO_OK);
    assert_int_equal(h.list_count, 2);
    assert_int_equal(h.svc_flags_count, 2);
    assert_int_equal(proto_bk_svc_flags(&h, 0), PROTO_BK_SVC_RETRY_SAFE);
    assert_int_equal(proto_bk_svc_flags(&h, 1), 0);
    assert_int_equal(proto_bk_svc_flags(&h, 2), 0);

    /* without flags: every service reads as 0 */
    proto_buf_reset(&b);
    assert_int_equal(proto_bk_encode_hello(&b, s_cspan("w"), svcs, NULL, 2), 0);
    assert_int_equal(proto_bk_decode(proto_buf_payload(&b), b.len, &h, &err), PROTO_OK);
    assert_int_equal(h.svc_flags_count, 0);
    assert_int_equal(proto_bk_svc_flags(&h, 0), 0);

    /* [1, 1, "w", ["a", "b"], [1]]: one flag for two services */
    static const uint8_t short_flags[] = {0x95, 0x01, 0x01, 0xa1, 'w',  0x92,
                                          0xa1, 'a',  0xa1, 'b',  0x91, 0x01};
    assert_int_equal(proto_bk_decode(short_flags, sizeof short_flags, &h, &err), PROTO_MALFORMED);
    assert_string_equal(err, "invalid service flags");
    /* [1, 1, "w", ["a"], ["x"]]: a flag that is not a uint */
    static const uint8_t str_flag[] = {0x95, 0x01, 0x01, 0xa1, 'w', 0x91,
                                       0xa1, 'a',  0x91, 0xa1, 'x'};
    assert_int_equal(proto_bk_decode(str_flag, sizeof str_flag, &h, &err), PROTO_MALFORMED);

    static const proto_bk_type_t bare[] = {PROTO_BK_DRAIN, PROTO_BK_BYE, PROTO_BK_DRAINING};
    for (size_t k = 0; k < 3; k++) {
        proto_buf_reset(&b);
        assert_int_equal(proto_bk_encode_bare(&b, bare[k]), 0);
        assert_int_equal(b.len, 3); /* [1, type] */
        assert_int_equal(proto_bk_decode(proto_buf_payload(&b), b.len, &h, &err), PROTO_OK);
        assert_int_equal(h.type, bare[k]);
    }
    proto_buf_reset(&b);
    assert_int_equal(proto_bk_encode_bare(&b, PROTO_BK_REQ), -1);
    assert_int_equal(b.len, 0);
    proto_buf_fini(&b);
}

static void
test_channel_messages(void **state)
{
    proto_buf_t b;
    proto_bk_t h;
    const char *err;

    (void)state;
    proto_buf_init(&b, 0);
    /* REQ with a user: one more element; without, the 7 of v1 */
    assert_int_equal(proto_bk_encode_req(&b, 5, 9, s_cspan("chan"), s_cspan("room"), PROTO_BK_F_GW,
                                         s_cspan("alice")),
                     0);
    assert_int_equal(s_decode(&b, &h, &err), PROTO_OK);
    assert_true(s_span_is(h.user, "alice"));
    assert_int_equal(h.flags, PROTO_BK_F_GW);
    assert_true(proto_bk_has_payload(h.type));
    s_expect(&b, "98 01 22 05 09 a4 63 68 61 6e a4 72 6f 6f 6d 04 a5 61 6c 69 63 65");

    proto_buf_reset(&b);
    assert_int_equal(proto_bk_encode_pub(&b, s_cspan("room"), PROTO_BK_PUB_JOIN, 300, s_cspan("e1"),
                                         s_cspan("bob")),
                     0);
    assert_int_equal(s_decode(&b, &h, &err), PROTO_OK);
    assert_int_equal(h.type, PROTO_BK_PUB);
    assert_true(s_span_is(h.channel, "room"));
    assert_int_equal(h.kind, PROTO_BK_PUB_JOIN);
    assert_int_equal(h.offset, 300);
    assert_true(s_span_is(h.epoch, "e1"));
    assert_true(s_span_is(h.user, "bob"));
    s_expect(&b, "97 01 08 a4 72 6f 6f 6d 01 cd 01 2c a2 65 31 a3 62 6f 62");
    assert_true(proto_bk_has_payload(PROTO_BK_PUB));

    /* a kind we do not know is malformed, not silently a publication */
    assert_int_equal(
        proto_bk_decode((const uint8_t *)"\x97\x01\x08\xa1r\x03\x00\xa0\xa0", 9, &h, &err),
        PROTO_MALFORMED);
    assert_string_equal(err, "invalid kind");
    /* an empty channel is malformed */
    assert_int_equal(
        proto_bk_decode((const uint8_t *)"\x97\x01\x08\xa0\x00\x00\xa0\xa0", 8, &h, &err),
        PROTO_MALFORMED);

    proto_buf_reset(&b);
    assert_int_equal(proto_bk_encode_publish(&b, 77, s_cspan("news")), 0);
    assert_int_equal(s_decode(&b, &h, &err), PROTO_OK);
    assert_int_equal(h.type, PROTO_BK_PUBLISH);
    assert_int_equal(h.rid, 77);
    assert_true(s_span_is(h.channel, "news"));
    assert_true(proto_bk_has_payload(PROTO_BK_PUBLISH));

    proto_buf_reset(&b);
    assert_int_equal(proto_bk_encode_published(&b, 77, s_cspan(""), s_cspan(""), 12, s_cspan("e2")),
                     0);
    assert_int_equal(s_decode(&b, &h, &err), PROTO_OK);
    assert_int_equal(h.type, PROTO_BK_PUBLISHED);
    assert_int_equal(h.code.len, 0);
    assert_int_equal(h.offset, 12);
    assert_false(proto_bk_has_payload(PROTO_BK_PUBLISHED));
    proto_buf_reset(&b);
    assert_int_equal(
        proto_bk_encode_published(&b, 78, s_cspan("forbidden"), s_cspan("no"), 0, s_cspan("")), 0);
    assert_int_equal(s_decode(&b, &h, &err), PROTO_OK);
    assert_true(s_span_is(h.code, "forbidden"));
    proto_buf_reset(&b);
    assert_int_equal(
        proto_bk_encode_published(&b, 78, s_cspan("Bad Code"), s_cspan(""), 0, s_cspan("")), 0);
    assert_int_equal(s_decode(&b, &h, &err), PROTO_MALFORMED);
    proto_buf_fini(&b);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_reference_bytes),
        cmocka_unit_test(test_channel_messages),
        cmocka_unit_test(test_hello_flags_and_drain),
        cmocka_unit_test(test_roundtrip_every_type),
        cmocka_unit_test(test_wrong_type_every_field),
        cmocka_unit_test(test_missing_fields),
        cmocka_unit_test(test_truncated_every_byte),
        cmocka_unit_test(test_version_and_type),
        cmocka_unit_test(test_trailing),
        cmocka_unit_test(test_limits),
        cmocka_unit_test(test_oversize_declared_lengths),
        cmocka_unit_test(test_iterators_on_empty),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
