/*
 * test_frame.c - load/frame.c: RFC 6455 reference frames, masking, the
 * three length forms, truncation at every byte, fragments with control
 * frames between them, and the protocol errors a client must fail on.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "frame.h"

static const uint8_t s_mask[4] = {0x37, 0xfa, 0x21, 0x3d};

/* RFC 6455 section 5.7 */
static void
test_rfc_examples(void **state)
{
    static const uint8_t hello[] = {0x81, 0x05, 0x48, 0x65, 0x6c, 0x6c, 0x6f};
    static const uint8_t hello_masked[] = {0x81, 0x85, 0x37, 0xfa, 0x21, 0x3d,
                                           0x7f, 0x9f, 0x4d, 0x51, 0x58};
    static const uint8_t ping[] = {0x89, 0x05, 0x48, 0x65, 0x6c, 0x6c, 0x6f};
    static const uint8_t bin256[] = {0x82, 0x7e, 0x01, 0x00};
    static const uint8_t bin64k[] = {0x82, 0x7f, 0, 0, 0, 0, 0, 1, 0, 0};
    uint8_t out[64], hdr[LD_FRAME_HDR_MAX];
    ld_frame_t f;

    (void)state;
    assert_int_equal(ld_frame_encode(out, true, LD_WS_TEXT, "Hello", 5, NULL), sizeof(hello));
    assert_memory_equal(out, hello, sizeof(hello));
    assert_int_equal(ld_frame_encode(out, true, LD_WS_TEXT, "Hello", 5, s_mask),
                     sizeof(hello_masked));
    assert_memory_equal(out, hello_masked, sizeof(hello_masked));
    assert_int_equal(ld_frame_encode(out, true, LD_WS_PING, "Hello", 5, NULL), sizeof(ping));
    assert_memory_equal(out, ping, sizeof(ping));
    assert_int_equal(ld_frame_header(hdr, true, LD_WS_BINARY, 256, NULL), 4);
    assert_memory_equal(hdr, bin256, 4);
    assert_int_equal(ld_frame_header(hdr, true, LD_WS_BINARY, 65536, NULL), 10);
    assert_memory_equal(hdr, bin64k, 10);

    assert_int_equal(ld_frame_parse(hello_masked, sizeof(hello_masked), 1000, &f), PROTO_OK);
    assert_true(f.fin);
    assert_true(f.masked);
    assert_int_equal(f.opcode, LD_WS_TEXT);
    assert_int_equal(f.len, 5);
    assert_int_equal(f.hdr_len, 6);
    assert_memory_equal(f.mask, s_mask, 4);
}

static void
test_lengths_and_truncation(void **state)
{
    const uint64_t lens[] = {0, 1, 125, 126, 127, 1000, 65535, 65536, 70000};
    const size_t hdrs[] = {2, 2, 2, 4, 4, 4, 4, 10, 10};
    uint8_t *payload, *frame, *back;
    size_t i, k, n, m;
    ld_frame_t f;

    (void)state;
    payload = malloc(70000);
    frame = malloc(70000 + LD_FRAME_HDR_MAX);
    back = malloc(70000);
    assert_non_null(payload);
    assert_non_null(frame);
    assert_non_null(back);
    for (i = 0; i < 70000; i++)
        payload[i] = (uint8_t)(i * 7 + 3);
    for (i = 0; i < sizeof(lens) / sizeof(lens[0]); i++) {
        for (m = 0; m < 2; m++) {
            const uint8_t *mask = m ? s_mask : NULL;

            n = ld_frame_encode(frame, true, LD_WS_BINARY, payload, (size_t)lens[i], mask);
            assert_int_equal(n, hdrs[i] + (m ? 4 : 0) + lens[i]);
            /* every proper prefix is incomplete, the whole frame parses */
            for (k = 0; k < n; k += (n > 300 && k > 20 && k < n - 20) ? 97 : 1)
                assert_int_equal(ld_frame_parse(frame, k, 1u << 20, &f), PROTO_NEED_MORE);
            assert_int_equal(ld_frame_parse(frame, n, 1u << 20, &f), PROTO_OK);
            assert_int_equal(f.len, lens[i]);
            assert_int_equal(f.hdr_len, hdrs[i] + (m ? 4 : 0));
            assert_int_equal(f.masked, m);
            if (m) {
                assert_true(lens[i] < 8 ||
                            memcmp(frame + f.hdr_len, payload, (size_t)lens[i]) != 0);
                ld_frame_mask(back, frame + f.hdr_len, (size_t)f.len, f.mask, 0);
                assert_memory_equal(back, payload, (size_t)lens[i]);
            } else if (lens[i]) {
                assert_memory_equal(frame + f.hdr_len, payload, (size_t)lens[i]);
            }
            /* a bound under the length is known from the header alone */
            if (lens[i])
                assert_int_equal(ld_frame_parse(frame, hdrs[i], lens[i] - 1, &f), PROTO_TOO_BIG);
        }
    }
    free(payload);
    free(frame);
    free(back);
}

static void
test_mask_offsets(void **state)
{
    uint8_t src[40], a[40], b[40];
    size_t len, off, i;

    (void)state;
    for (i = 0; i < sizeof(src); i++)
        src[i] = (uint8_t)(i * 31);
    for (len = 0; len <= sizeof(src); len++) {
        for (off = 0; off < 4; off++) {
            ld_frame_mask(a, src, len, s_mask, off);
            for (i = 0; i < len; i++)
                b[i] = src[i] ^ s_mask[(off + i) % 4];
            assert_memory_equal(a, b, len);
            /* in place, and twice is the identity */
            memcpy(b, a, len);
            ld_frame_mask(b, b, len, s_mask, off);
            assert_memory_equal(b, src, len);
        }
    }
}

static void
test_parse_errors(void **state)
{
    ld_frame_t f;
    /* reserved bits; reserved opcodes; fragmented ping; 126-byte close;
     * 64-bit length with the top bit */
    static const uint8_t rsv[] = {0xc1, 0x00};
    static const uint8_t op3[] = {0x83, 0x00};
    static const uint8_t opb[] = {0x8b, 0x00};
    static const uint8_t ping_frag[] = {0x09, 0x00};
    static const uint8_t close126[] = {0x88, 0x7e, 0x00, 0x7e};
    static const uint8_t huge[] = {0x82, 0x7f, 0x80, 0, 0, 0, 0, 0, 0, 0};

    (void)state;
    assert_int_equal(ld_frame_parse(rsv, 2, 100, &f), PROTO_MALFORMED);
    assert_int_equal(ld_frame_parse(op3, 2, 100, &f), PROTO_MALFORMED);
    assert_int_equal(ld_frame_parse(opb, 2, 100, &f), PROTO_MALFORMED);
    assert_int_equal(ld_frame_parse(ping_frag, 2, 100, &f), PROTO_MALFORMED);
    assert_int_equal(ld_frame_parse(close126, 4, 1000, &f), PROTO_MALFORMED);
    assert_int_equal(ld_frame_parse(huge, 10, UINT64_MAX, &f), PROTO_MALFORMED);
}

/* Appends one frame to buf. */
static size_t
put(uint8_t *buf, size_t at, bool fin, unsigned op, const char *s, const uint8_t *mask)
{
    return at + ld_frame_encode(buf + at, fin, op, s, strlen(s), mask);
}

static void
test_reader_fragments_and_control(void **state)
{
    uint8_t buf[256];
    size_t n = 0, off = 0, used;
    ld_frame_reader_t r;
    ld_frame_event_t ev;

    (void)state;
    n = put(buf, n, false, LD_WS_TEXT, "Hel", NULL);
    n = put(buf, n, true, LD_WS_PING, "p1", NULL);
    n = put(buf, n, false, LD_WS_CONT, "l", NULL);
    n = put(buf, n, true, LD_WS_PONG, "", NULL);
    n = put(buf, n, true, LD_WS_CONT, "o", NULL);
    n = put(buf, n, true, LD_WS_BINARY, "whole", NULL);
    buf[n++] = 0x88; /* close 1001 "bye" */
    buf[n++] = 5;
    buf[n++] = 0x03;
    buf[n++] = 0xe9;
    memcpy(buf + n, "bye", 3);
    n += 3;
    n = put(buf, n, true, LD_WS_CLOSE, "", NULL);

    ld_frame_reader_init(&r, 1000, true);
#define NEXT()                                                                                     \
    do {                                                                                           \
        assert_int_equal(ld_frame_reader_next(&r, buf + off, n - off, &used, &ev), PROTO_OK);      \
        off += used;                                                                               \
    } while (0)
    NEXT();
    assert_int_equal(ev.opcode, 0);
    NEXT();
    assert_int_equal(ev.opcode, LD_WS_PING);
    assert_int_equal(ev.len, 2);
    assert_memory_equal(ev.data, "p1", 2);
    NEXT();
    assert_int_equal(ev.opcode, 0);
    NEXT();
    assert_int_equal(ev.opcode, LD_WS_PONG);
    assert_int_equal(ev.len, 0);
    NEXT();
    assert_int_equal(ev.opcode, LD_WS_TEXT);
    assert_int_equal(ev.len, 5);
    assert_memory_equal(ev.data, "Hello", 5);
    NEXT();
    assert_int_equal(ev.opcode, LD_WS_BINARY);
    assert_memory_equal(ev.data, "whole", 5);
    NEXT();
    assert_int_equal(ev.opcode, LD_WS_CLOSE);
    assert_int_equal(ev.close_code, 1001);
    assert_int_equal(ev.len, 5);
    NEXT();
    assert_int_equal(ev.opcode, LD_WS_CLOSE);
    assert_int_equal(ev.close_code, 1005);
    assert_int_equal(off, n);
    assert_int_equal(ld_frame_reader_next(&r, buf + off, 0, &used, &ev), PROTO_NEED_MORE);
#undef NEXT
    ld_frame_reader_fini(&r);
}

/* The same stream cut at every byte: a caller that keeps the unparsed
 * rest and retries with more sees the same messages. */
static void
test_reader_split_everywhere(void **state)
{
    uint8_t buf[512], work[512];
    char big[300];
    size_t n = 0, cut, have, off, used, got;
    ld_frame_reader_t r;
    ld_frame_event_t ev;
    proto_rc_t rc;

    (void)state;
    memset(big, 'z', sizeof(big) - 1);
    big[sizeof(big) - 1] = 0;
    n = put(buf, n, false, LD_WS_BINARY, "ab", NULL);
    n = put(buf, n, true, LD_WS_PING, "x", NULL);
    n = put(buf, n, true, LD_WS_CONT, big, NULL);
    n = put(buf, n, true, LD_WS_TEXT, "t", NULL);
    for (cut = 0; cut <= n; cut++) {
        ld_frame_reader_init(&r, 1000, true);
        memcpy(work, buf, n);
        have = cut;
        off = 0;
        got = 0;
        for (;;) {
            rc = ld_frame_reader_next(&r, work + off, have - off, &used, &ev);
            if (rc == PROTO_NEED_MORE) {
                assert_int_equal(used, 0);
                if (have == n)
                    break;
                have = n; /* the rest arrives */
                continue;
            }
            assert_int_equal(rc, PROTO_OK);
            off += used;
            if (ev.opcode == LD_WS_BINARY) {
                assert_int_equal(ev.len, 2 + strlen(big));
                assert_memory_equal(ev.data, "ab", 2);
                got |= 1;
            } else if (ev.opcode == LD_WS_PING) {
                got |= 2;
            } else if (ev.opcode == LD_WS_TEXT) {
                got |= 4;
            }
        }
        assert_int_equal(off, n);
        assert_int_equal(got, 7);
        ld_frame_reader_fini(&r);
    }
}

static void
test_reader_errors(void **state)
{
    uint8_t buf[128];
    size_t n, used;
    ld_frame_reader_t r;
    ld_frame_event_t ev;

    (void)state;
    /* continuation without a message */
    ld_frame_reader_init(&r, 100, true);
    n = put(buf, 0, true, LD_WS_CONT, "x", NULL);
    assert_int_equal(ld_frame_reader_next(&r, buf, n, &used, &ev), PROTO_MALFORMED);
    ld_frame_reader_fini(&r);

    /* a new message inside a fragmented one */
    ld_frame_reader_init(&r, 100, true);
    n = put(buf, 0, false, LD_WS_TEXT, "x", NULL);
    assert_int_equal(ld_frame_reader_next(&r, buf, n, &used, &ev), PROTO_OK);
    n = put(buf, 0, true, LD_WS_BINARY, "y", NULL);
    assert_int_equal(ld_frame_reader_next(&r, buf, n, &used, &ev), PROTO_MALFORMED);
    ld_frame_reader_fini(&r);

    /* a close with a 1-byte payload */
    ld_frame_reader_init(&r, 100, true);
    n = put(buf, 0, true, LD_WS_CLOSE, "x", NULL);
    assert_int_equal(ld_frame_reader_next(&r, buf, n, &used, &ev), PROTO_MALFORMED);
    ld_frame_reader_fini(&r);

    /* a masked frame from the server: a client fails; a server reader unmasks */
    ld_frame_reader_init(&r, 100, true);
    n = put(buf, 0, true, LD_WS_TEXT, "Hello", s_mask);
    assert_int_equal(ld_frame_reader_next(&r, buf, n, &used, &ev), PROTO_MALFORMED);
    ld_frame_reader_fini(&r);
    ld_frame_reader_init(&r, 100, false);
    assert_int_equal(ld_frame_reader_next(&r, buf, n, &used, &ev), PROTO_OK);
    assert_int_equal(ev.opcode, LD_WS_TEXT);
    assert_memory_equal(ev.data, "Hello", 5);
    ld_frame_reader_fini(&r);

    /* over the message bound: one frame, or fragments counted together */
    ld_frame_reader_init(&r, 4, true);
    n = put(buf, 0, true, LD_WS_TEXT, "Hello", NULL);
    assert_int_equal(ld_frame_reader_next(&r, buf, n, &used, &ev), PROTO_TOO_BIG);
    n = put(buf, 0, false, LD_WS_TEXT, "Hel", NULL);
    assert_int_equal(ld_frame_reader_next(&r, buf, n, &used, &ev), PROTO_OK);
    n = put(buf, 0, true, LD_WS_CONT, "lo", NULL);
    assert_int_equal(ld_frame_reader_next(&r, buf, n, &used, &ev), PROTO_TOO_BIG);
    ld_frame_reader_fini(&r);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_rfc_examples),
        cmocka_unit_test(test_lengths_and_truncation),
        cmocka_unit_test(test_mask_offsets),
        cmocka_unit_test(test_parse_errors),
        cmocka_unit_test(test_reader_fragments_and_control),
        cmocka_unit_test(test_reader_split_everywhere),
        cmocka_unit_test(test_reader_errors),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
