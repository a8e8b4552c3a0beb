/*
 * test_mpk.c - the bounded msgpack reader and the writers (protocol/mpk.c).
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

#include "mpk.h"

/* ---- reader: one reference vector per format ---- */

typedef struct {
    const char *hex;
    mpk_type_t type;
    uint64_t u;  /* UINT; ARRAY/MAP count; STR/BIN/EXT length */
    int64_t i;   /* INT; EXT type; BOOL */
    double f;    /* FLOAT */
    size_t body; /* STR/BIN/EXT: offset of the bytes in the input */
} rd_case_t;

static const rd_case_t s_rd_cases[] = {
    {"00", MPK_UINT, 0, 0, 0, 0},
    {"7f", MPK_UINT, 127, 0, 0, 0},
    {"cc ff", MPK_UINT, 255, 0, 0, 0},
    {"cd 01 00", MPK_UINT, 256, 0, 0, 0},
    {"ce 00 01 00 00", MPK_UINT, 65536, 0, 0, 0},
    {"cf ff ff ff ff ff ff ff ff", MPK_UINT, UINT64_MAX, 0, 0, 0},
    {"cf 00 00 00 01 00 00 00 00", MPK_UINT, 1ULL << 32, 0, 0, 0},
    {"ff", MPK_INT, 0, -1, 0, 0},
    {"e0", MPK_INT, 0, -32, 0, 0},
    {"d0 80", MPK_INT, 0, -128, 0, 0},
    {"d0 05", MPK_UINT, 5, 0, 0, 0}, /* positive in a signed format is a UINT */
    {"d1 80 00", MPK_INT, 0, -32768, 0, 0},
    {"d1 7f ff", MPK_UINT, 32767, 0, 0, 0},
    {"d2 80 00 00 00", MPK_INT, 0, INT32_MIN, 0, 0},
    {"d3 80 00 00 00 00 00 00 00", MPK_INT, 0, INT64_MIN, 0, 0},
    {"d3 7f ff ff ff ff ff ff ff", MPK_UINT, INT64_MAX, 0, 0, 0},
    {"ca 3f c0 00 00", MPK_FLOAT, 0, 0, 1.5, 0},
    {"ca c0 20 00 00", MPK_FLOAT, 0, 0, -2.5, 0},
    {"cb 3f f8 00 00 00 00 00 00", MPK_FLOAT, 0, 0, 1.5, 0},
    {"cb c0 09 21 fb 54 44 2d 18", MPK_FLOAT, 0, 0, -3.141592653589793, 0},
    {"c0", MPK_NIL, 0, 0, 0, 0},
    {"c2", MPK_BOOL, 0, 0, 0, 0},
    {"c3", MPK_BOOL, 0, 1, 0, 0},
    {"a0", MPK_STR, 0, 0, 0, 1},
    {"a3 61 62 63", MPK_STR, 3, 0, 0, 1},
    {"d9 03 61 62 63", MPK_STR, 3, 0, 0, 2},
    {"da 00 03 61 62 63", MPK_STR, 3, 0, 0, 3},
    {"db 00 00 00 03 61 62 63", MPK_STR, 3, 0, 0, 5},
    {"c4 02 01 02", MPK_BIN, 2, 0, 0, 2},
    {"c5 00 02 01 02", MPK_BIN, 2, 0, 0, 3},
    {"c6 00 00 00 02 01 02", MPK_BIN, 2, 0, 0, 5},
    {"d4 05 aa", MPK_EXT, 1, 5, 0, 2},
    {"d5 05 aa bb", MPK_EXT, 2, 5, 0, 2},
    {"d6 ff 01 02 03 04", MPK_EXT, 4, -1, 0, 2},
    {"d7 01 01 02 03 04 05 06 07 08", MPK_EXT, 8, 1, 0, 2},
    {"d8 02 00 01 02 03 04 05 06 07 08 09 0a 0b 0c 0d 0e 0f", MPK_EXT, 16, 2, 0, 2},
    {"c7 03 fe 01 02 03", MPK_EXT, 3, -2, 0, 3},
    {"c7 00 07", MPK_EXT, 0, 7, 0, 3},
    {"c8 00 01 07 aa", MPK_EXT, 1, 7, 0, 4},
    {"c9 00 00 00 01 07 aa", MPK_EXT, 1, 7, 0, 6},
};

static void
s_check_item(const rd_case_t *c, const uint8_t *in, const mpk_item_t *it)
{
    assert_int_equal(it->type, c->type);
    switch (c->type) {
    case MPK_UINT:
        assert_true(it->v.u == c->u);
        break;
    case MPK_INT:
        assert_true(it->v.i == c->i);
        break;
    case MPK_FLOAT:
        assert_true(it->v.f == c->f);
        break;
    case MPK_BOOL:
        assert_int_equal(it->v.b, c->i != 0);
        break;
    case MPK_STR:
    case MPK_BIN:
        assert_int_equal(it->v.s.len, c->u);
        assert_ptr_equal(it->v.s.ptr, in + c->body);
        break;
    case MPK_EXT:
        assert_int_equal(it->v.ext.type, c->i);
        assert_int_equal(it->v.ext.data.len, c->u);
        assert_ptr_equal(it->v.ext.data.ptr, in + c->body);
        break;
    default:
        break;
    }
}

static void
test_read_every_format(void **state)
{
    (void)state;
    for (size_t k = 0; k < sizeof s_rd_cases / sizeof s_rd_cases[0]; k++) {
        const rd_case_t *c = &s_rd_cases[k];
        uint8_t in[64];
        size_t n = s_hex(c->hex, in, sizeof in);
        mpk_reader_t r;
        mpk_item_t it;

        mpk_reader_init(&r, in, n);
        assert_int_equal(mpk_read(&r, &it), PROTO_OK);
        s_check_item(c, in, &it);
        assert_int_equal(mpk_reader_left(&r), 0);
        /* the whole value, exactly */
        assert_int_equal(mpk_validate(in, n, MPK_MAX_DEPTH), PROTO_OK);
    }
}

static void
test_read_truncated_every_format(void **state)
{
    (void)state;
    for (size_t k = 0; k < sizeof s_rd_cases / sizeof s_rd_cases[0]; k++) {
        uint8_t in[64];
        size_t n = s_hex(s_rd_cases[k].hex, in, sizeof in);

        for (size_t cut = 0; cut < n; cut++) {
            /* a private copy of the prefix, so ASan sees any overread */
            uint8_t *p = malloc(cut ? cut : 1);
            mpk_reader_t r;
            mpk_item_t it;

            memcpy(p, in, cut);
            mpk_reader_init(&r, p, cut);
            assert_int_equal(mpk_read(&r, &it), PROTO_NEED_MORE);
            assert_ptr_equal(r.p, p); /* the reader does not move on error */
            assert_int_not_equal(mpk_validate(p, cut, MPK_MAX_DEPTH), PROTO_OK);
            free(p);
        }
    }
}

static void
test_read_containers(void **state)
{
    uint8_t in[64];
    size_t n;
    mpk_reader_t r;
    mpk_item_t it;

    (void)state;
    static const struct {
        const char *hex;
        mpk_type_t type;
        uint32_t count;
        size_t hdr;
    } cases[] = {
        {"90", MPK_ARRAY, 0, 1},
        {"93 01 02 03", MPK_ARRAY, 3, 1},
        {"dc 00 02 01 02", MPK_ARRAY, 2, 3},
        {"dd 00 00 00 01 c0", MPK_ARRAY, 1, 5},
        {"80", MPK_MAP, 0, 1},
        {"81 a1 61 01", MPK_MAP, 1, 1},
        {"de 00 01 01 02", MPK_MAP, 1, 3},
        {"df 00 00 00 01 01 02", MPK_MAP, 1, 5},
    };
    for (size_t k = 0; k < sizeof cases / sizeof cases[0]; k++) {
        n = s_hex(cases[k].hex, in, sizeof in);
        mpk_reader_init(&r, in, n);
        assert_int_equal(mpk_read(&r, &it), PROTO_OK);
        assert_int_equal(it.type, cases[k].type);
        assert_int_equal(it.v.n, cases[k].count);
        /* only the header is consumed */
        assert_int_equal(r.p - in, cases[k].hdr);
        assert_int_equal(mpk_validate(in, n, MPK_MAX_DEPTH), PROTO_OK);
    }
    /* a header cut inside its count */
    n = s_hex("dc 00", in, sizeof in);
    mpk_reader_init(&r, in, n);
    assert_int_equal(mpk_read(&r, &it), PROTO_NEED_MORE);
    n = s_hex("df 00 00 00", in, sizeof in);
    mpk_reader_init(&r, in, n);
    assert_int_equal(mpk_read(&r, &it), PROTO_NEED_MORE);
}

static void
test_read_reserved_c1(void **state)
{
    uint8_t in[] = {0xc1, 0x00};
    mpk_reader_t r;
    mpk_item_t it;

    (void)state;
    mpk_reader_init(&r, in, sizeof in);
    assert_int_equal(mpk_read(&r, &it), PROTO_MALFORMED);
    assert_ptr_equal(r.p, in);
    assert_int_equal(mpk_validate(in, 1, MPK_MAX_DEPTH), PROTO_MALFORMED);
    /* inside a container too */
    uint8_t nested[] = {0x92, 0x01, 0xc1};
    assert_int_equal(mpk_validate(nested, sizeof nested, MPK_MAX_DEPTH), PROTO_MALFORMED);
}

static void
test_read_oversize_lengths(void **state)
{
    uint8_t in[32];
    size_t n;
    mpk_reader_t r;
    mpk_item_t it;

    (void)state;
    /* str32 / bin32 / ext32 declaring 4 GiB in 5 or 6 bytes: a short read */
    static const char *const short_reads[] = {
        "db ff ff ff ff", "c6 ff ff ff ff", "c9 ff ff ff ff 01",
        "da ff ff 00",    "d9 ff 00",       "c4 10 00",
    };
    for (size_t k = 0; k < sizeof short_reads / sizeof short_reads[0]; k++) {
        n = s_hex(short_reads[k], in, sizeof in);
        mpk_reader_init(&r, in, n);
        assert_int_equal(mpk_read(&r, &it), PROTO_NEED_MORE);
        assert_ptr_equal(r.p, in);
    }
    /* counts that cannot fit in what is left are lies */
    static const char *const lies[] = {
        "dd ff ff ff ff",       /* array32 of 4G elements */
        "df ff ff ff ff",       /* map32 */
        "df 7f ff ff ff 00 00", /* map32, count*2 overflows 32 bits */
        "dc ff ff 01 02 03",    /* array16 */
        "de 00 02 01 02 03",    /* 2 pairs need 4 bytes, 3 left */
        "93 01 02",             /* fixarray 3, two bytes */
        "81 01",                /* fixmap 1, one byte */
    };
    for (size_t k = 0; k < sizeof lies / sizeof lies[0]; k++) {
        n = s_hex(lies[k], in, sizeof in);
        mpk_reader_init(&r, in, n);
        assert_int_equal(mpk_read(&r, &it), PROTO_MALFORMED);
        assert_ptr_equal(r.p, in);
        assert_int_equal(mpk_validate(in, n, MPK_MAX_DEPTH), PROTO_MALFORMED);
        assert_int_equal(mpk_skip(&r, MPK_MAX_DEPTH, NULL), PROTO_MALFORMED);
        assert_ptr_equal(r.p, in);
    }
    /* exactly enough is fine at the header level */
    n = s_hex("de 00 02 01 02 03 04", in, sizeof in);
    mpk_reader_init(&r, in, n);
    assert_int_equal(mpk_read(&r, &it), PROTO_OK);
    assert_int_equal(it.v.n, 2);
}

/* [1, {"a": [true, nil], "b": -1}, "x", 1.5, bin(1)] */
#define NESTED_HEX "95 01 82 a1 61 92 c3 c0 a1 62 ff a1 78 cb 3f f8 00 00 00 00 00 00 c4 01 00"

static void
test_skip_nested_span(void **state)
{
    uint8_t in[64];
    size_t n = s_hex(NESTED_HEX " c0", in, sizeof in);
    mpk_reader_t r;
    proto_span_t span;

    (void)state;
    mpk_reader_init(&r, in, n);
    assert_int_equal(mpk_skip(&r, MPK_MAX_DEPTH, &span), PROTO_OK);
    assert_ptr_equal(span.ptr, in);
    assert_int_equal(span.len, n - 1);
    assert_int_equal(mpk_reader_left(&r), 1);
    assert_int_equal(mpk_skip(&r, MPK_MAX_DEPTH, &span), PROTO_OK);
    assert_int_equal(span.len, 1);
    assert_int_equal(mpk_reader_left(&r), 0);
    /* trailing bytes are not one value */
    assert_int_equal(mpk_validate(in, n, MPK_MAX_DEPTH), PROTO_MALFORMED);
    assert_int_equal(mpk_validate(in, n - 1, MPK_MAX_DEPTH), PROTO_OK);
    /* the nested value is 3 levels deep: [ { [ */
    assert_int_equal(mpk_validate(in, n - 1, 3), PROTO_OK);
    assert_int_equal(mpk_validate(in, n - 1, 2), PROTO_TOO_BIG);
}

static void
test_skip_truncated_every_byte(void **state)
{
    uint8_t in[64];
    size_t n = s_hex(NESTED_HEX, in, sizeof in);

    (void)state;
    for (size_t cut = 0; cut < n; cut++) {
        uint8_t *p = malloc(cut ? cut : 1);
        mpk_reader_t r;
        proto_rc_t rc;

        memcpy(p, in, cut);
        mpk_reader_init(&r, p, cut);
        rc = mpk_skip(&r, MPK_MAX_DEPTH, NULL);
        assert_true(rc == PROTO_NEED_MORE || rc == PROTO_MALFORMED);
        assert_ptr_equal(r.p, p);
        assert_int_not_equal(mpk_validate(p, cut, MPK_MAX_DEPTH), PROTO_OK);
        free(p);
    }
}

static void
test_skip_depth_limit(void **state)
{
    uint8_t in[64];
    mpk_reader_t r;

    (void)state;
    /* 32 nested arrays around a nil: exactly the limit */
    memset(in, 0x91, 32);
    in[32] = 0xc0;
    assert_int_equal(mpk_validate(in, 33, MPK_MAX_DEPTH), PROTO_OK);
    /* one more level */
    memset(in, 0x91, 33);
    in[33] = 0xc0;
    mpk_reader_init(&r, in, 34);
    assert_int_equal(mpk_skip(&r, MPK_MAX_DEPTH, NULL), PROTO_TOO_BIG);
    assert_ptr_equal(r.p, in);
    /* an empty container is a level too */
    memset(in, 0x91, 32);
    in[32] = 0x90;
    assert_int_equal(mpk_validate(in, 33, MPK_MAX_DEPTH), PROTO_TOO_BIG);
    assert_int_equal(mpk_validate(in, 33, MPK_MAX_DEPTH + 1), PROTO_OK);
    /* depth 0: scalars only */
    assert_int_equal(mpk_validate("\x01", 1, 0), PROTO_OK);
    assert_int_equal(mpk_validate("\x90", 1, 0), PROTO_TOO_BIG);
    assert_int_equal(mpk_validate("\x80", 1, 0), PROTO_TOO_BIG);
    /* siblings do not add depth: [[1],[2],[3]] is 2 deep */
    assert_int_equal(mpk_validate("\x93\x91\x01\x91\x02\x91\x03", 7, 2), PROTO_OK);
    /* map values nest too: {"a": {"b": 1}} */
    assert_int_equal(mpk_validate("\x81\xa1"
                                  "a"
                                  "\x81\xa1"
                                  "b"
                                  "\x01",
                                  7, 2),
                     PROTO_OK);
    assert_int_equal(mpk_validate("\x81\xa1"
                                  "a"
                                  "\x81\xa1"
                                  "b"
                                  "\x01",
                                  7, 1),
                     PROTO_TOO_BIG);
}

static void
test_skip_deep_hostile(void **state)
{
    /* a long run of 1-element arrays: no recursion, no crash, whatever
     * the caller asks for */
    size_t n = 200000;
    uint8_t *in = malloc(n + 1);

    (void)state;
    memset(in, 0x91, n);
    in[n] = 0xc0;
    assert_int_equal(mpk_validate(in, n + 1, MPK_MAX_DEPTH), PROTO_TOO_BIG);
    assert_int_equal(mpk_validate(in, n + 1, ~0u), PROTO_TOO_BIG);
    free(in);
}

static void
test_convenience_readers(void **state)
{
    uint8_t in[] = {0xa1, 'x', 0x05, 0x92, 0x81, 0x01, 0x02, 0xff};
    mpk_reader_t r;
    uint64_t u;
    proto_span_t s;
    uint32_t n;

    (void)state;
    mpk_reader_init(&r, in, sizeof in);
    assert_int_equal(mpk_read_uint(&r, &u), PROTO_MALFORMED);
    assert_int_equal(mpk_read_array(&r, &n), PROTO_MALFORMED);
    assert_int_equal(mpk_read_map(&r, &n), PROTO_MALFORMED);
    assert_ptr_equal(r.p, in);
    assert_int_equal(mpk_read_str(&r, &s), PROTO_OK);
    assert_int_equal(s.len, 1);
    assert_int_equal(s.ptr[0], 'x');
    assert_int_equal(mpk_read_str(&r, &s), PROTO_MALFORMED);
    assert_int_equal(mpk_read_uint(&r, &u), PROTO_OK);
    assert_int_equal(u, 5);
    assert_int_equal(mpk_read_map(&r, &n), PROTO_MALFORMED);
    assert_int_equal(mpk_read_array(&r, &n), PROTO_OK);
    assert_int_equal(n, 2);
    assert_int_equal(mpk_read_array(&r, &n), PROTO_MALFORMED);
    assert_int_equal(mpk_read_map(&r, &n), PROTO_OK);
    assert_int_equal(n, 1);
    assert_int_equal(mpk_read_uint(&r, &u), PROTO_OK);
    assert_int_equal(mpk_read_uint(&r, &u), PROTO_OK);
    assert_int_equal(u, 2);
    /* negative is not a uint */
    assert_int_equal(mpk_read_uint(&r, &u), PROTO_MALFORMED);
    assert_int_equal(mpk_reader_left(&r), 1);
    /* empty input, also with no buffer at all */
    mpk_reader_init(&r, in, 0);
    assert_int_equal(mpk_read_uint(&r, &u), PROTO_NEED_MORE);
    mpk_reader_init(&r, NULL, 0);
    assert_int_equal(mpk_reader_left(&r), 0);
    assert_int_equal(mpk_read_uint(&r, &u), PROTO_NEED_MORE);
    assert_int_equal(mpk_validate(NULL, 0, MPK_MAX_DEPTH), PROTO_NEED_MORE);
}

/* ---- writers: smallest encodings, byte for byte ---- */

static void
s_expect(proto_buf_t *b, const char *hex)
{
    uint8_t want[64];
    size_t n = s_hex(hex, want, sizeof want);

    assert_int_equal(b->len, n);
    assert_memory_equal(proto_buf_payload(b), want, n);
    proto_buf_reset(b);
}

static void
test_write_reference(void **state)
{
    proto_buf_t b;

    (void)state;
    proto_buf_init(&b, 0);
    mpk_write_nil(&b);
    s_expect(&b, "c0");
    mpk_write_bool(&b, true);
    mpk_write_bool(&b, false);
    s_expect(&b, "c3 c2");
    mpk_write_uint(&b, 0);
    mpk_write_uint(&b, 127);
    mpk_write_uint(&b, 128);
    mpk_write_uint(&b, 256);
    s_expect(&b, "00 7f cc 80 cd 01 00");
    mpk_write_uint(&b, 65536);
    mpk_write_uint(&b, 1ULL << 32);
    s_expect(&b, "ce 00 01 00 00 cf 00 00 00 01 00 00 00 00");
    mpk_write_uint(&b, UINT64_MAX);
    s_expect(&b, "cf ff ff ff ff ff ff ff ff");
    mpk_write_int(&b, 5);
    mpk_write_int(&b, -1);
    mpk_write_int(&b, -32);
    mpk_write_int(&b, -33);
    mpk_write_int(&b, -129);
    s_expect(&b, "05 ff e0 d0 df d1 ff 7f");
    mpk_write_int(&b, -32769);
    mpk_write_int(&b, INT64_MIN);
    s_expect(&b, "d2 ff ff 7f ff d3 80 00 00 00 00 00 00 00");
    mpk_write_double(&b, 1.5);
    s_expect(&b, "cb 3f f8 00 00 00 00 00 00");
    mpk_write_cstr(&b, "abc");
    mpk_write_str(&b, "", 0);
    s_expect(&b, "a3 61 62 63 a0");
    mpk_write_bin(&b, "\x01\x02", 2);
    s_expect(&b, "c4 02 01 02");
    mpk_write_array(&b, 3);
    mpk_write_array(&b, 16);
    mpk_write_array(&b, 65536);
    s_expect(&b, "93 dc 00 10 dd 00 01 00 00");
    mpk_write_map(&b, 1);
    mpk_write_map(&b, 16);
    mpk_write_map(&b, 70000);
    s_expect(&b, "81 de 00 10 df 00 01 11 70");
    mpk_write_raw(&b, "\x92\x01\x02", 3);
    s_expect(&b, "92 01 02");
    proto_buf_fini(&b);
}

static void
test_write_str_sizes(void **state)
{
    static const struct {
        size_t len;
        uint8_t hdr[5];
        size_t hdr_len;
    } cases[] = {
        {31, {0xbf}, 1},
        {32, {0xd9, 32}, 2},
        {255, {0xd9, 255}, 2},
        {256, {0xda, 0x01, 0x00}, 3},
        {65535, {0xda, 0xff, 0xff}, 3},
        {65536, {0xdb, 0x00, 0x01, 0x00, 0x00}, 5},
    };
    proto_buf_t b;
    char *s = malloc(65536);

    (void)state;
    memset(s, 'q', 65536);
    proto_buf_init(&b, 0);
    for (size_t k = 0; k < sizeof cases / sizeof cases[0]; k++) {
        mpk_reader_t r;
        proto_span_t got;

        proto_buf_reset(&b);
        assert_int_equal(mpk_write_str(&b, s, cases[k].len), 0);
        assert_int_equal(b.len, cases[k].hdr_len + cases[k].len);
        assert_memory_equal(proto_buf_payload(&b), cases[k].hdr, cases[k].hdr_len);
        mpk_reader_init(&r, proto_buf_payload(&b), b.len);
        assert_int_equal(mpk_read_str(&r, &got), PROTO_OK);
        assert_int_equal(got.len, cases[k].len);
        assert_memory_equal(got.ptr, s, got.len);

        /* bin uses c4/c5/c6 at the same thresholds (no fix form) */
        proto_buf_reset(&b);
        assert_int_equal(mpk_write_bin(&b, s, cases[k].len), 0);
        assert_int_equal(proto_buf_payload(&b)[0], cases[k].len < 256     ? 0xc4
                                                   : cases[k].len < 65536 ? 0xc5
                                                                          : 0xc6);
    }
    proto_buf_fini(&b);
    free(s);
}

static void
test_write_read_roundtrip(void **state)
{
    static const int64_t ints[] = {
        0,         1,        -1,     127,       128,       -32,
        -33,       255,      256,    -128,      -129,      65535,
        65536,     -32768,   -32769, INT32_MAX, INT32_MIN, (int64_t)UINT32_MAX + 1,
        INT64_MAX, INT64_MIN};
    static const double dbls[] = {0.0, -0.0, 1e-300, 3.14159, -1e300, 0.1};
    proto_buf_t b;
    mpk_reader_t r;
    mpk_item_t it;

    (void)state;
    proto_buf_init(&b, 7);
    for (size_t k = 0; k < sizeof ints / sizeof ints[0]; k++)
        assert_int_equal(mpk_write_int(&b, ints[k]), 0);
    for (size_t k = 0; k < sizeof dbls / sizeof dbls[0]; k++)
        assert_int_equal(mpk_write_double(&b, dbls[k]), 0);
    assert_int_equal(mpk_write_uint(&b, UINT64_MAX), 0);

    mpk_reader_init(&r, proto_buf_payload(&b), b.len);
    for (size_t k = 0; k < sizeof ints / sizeof ints[0]; k++) {
        assert_int_equal(mpk_read(&r, &it), PROTO_OK);
        if (ints[k] >= 0) {
            assert_int_equal(it.type, MPK_UINT);
            assert_true(it.v.u == (uint64_t)ints[k]);
        } else {
            assert_int_equal(it.type, MPK_INT);
            assert_true(it.v.i == ints[k]);
        }
    }
    for (size_t k = 0; k < sizeof dbls / sizeof dbls[0]; k++) {
        assert_int_equal(mpk_read(&r, &it), PROTO_OK);
        assert_int_equal(it.type, MPK_FLOAT);
        assert_memory_equal(&it.v.f, &dbls[k], sizeof(double));
    }
    assert_int_equal(mpk_read(&r, &it), PROTO_OK);
    assert_true(it.v.u == UINT64_MAX);
    assert_int_equal(mpk_reader_left(&r), 0);
    proto_buf_fini(&b);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_read_every_format),
        cmocka_unit_test(test_read_truncated_every_format),
        cmocka_unit_test(test_read_containers),
        cmocka_unit_test(test_read_reserved_c1),
        cmocka_unit_test(test_read_oversize_lengths),
        cmocka_unit_test(test_skip_nested_span),
        cmocka_unit_test(test_skip_truncated_every_byte),
        cmocka_unit_test(test_skip_depth_limit),
        cmocka_unit_test(test_skip_deep_hostile),
        cmocka_unit_test(test_convenience_readers),
        cmocka_unit_test(test_write_reference),
        cmocka_unit_test(test_write_str_sizes),
        cmocka_unit_test(test_write_read_roundtrip),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
