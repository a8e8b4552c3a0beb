/*
 * test_fanout.c - load/fanout.c: publications through the real codecs
 * (the request decoded as the gateway decodes it, the delivery encoded as
 * the gateway encodes it, then read back), the accounting of what a
 * subscriber saw from a sequence of (publisher, seq, offset) deliveries,
 * and burst completion.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "envelope.h"
#include "fanout.h"
#include "mpk.h"

#define E1 "9f2c41d0"

/* What a subscriber gets for a publication: the request decoded the way
 * the gateway decodes a client frame, its data re-encoded as a msg. */
static void
deliver(proto_enc_t pub_enc, proto_enc_t sub_enc, const char *user, uint32_t publisher,
        uint64_t seq, uint64_t t_ns, proto_span_t pad, uint64_t offset, proto_buf_t *msg)
{
    proto_buf_t req, scratch;
    proto_envelope_t env;
    const char *err = NULL;

    proto_buf_init(&req, 0);
    proto_buf_init(&scratch, 0);
    assert_int_equal(ld_fan_pub_request(pub_enc, "bench:1", 77, publisher, seq, t_ns, pad, &req),
                     0);
    assert_int_equal(
        proto_envelope_decode(pub_enc, proto_buf_payload(&req), req.len, &scratch, &env, &err),
        PROTO_OK);
    assert_int_equal(env.op, PROTO_OP_PUB);
    assert_int_equal(env.id.kind, PROTO_ID_UINT);
    assert_int_equal(env.id.u, 77);
    assert_int_equal(env.channel.len, 7);
    assert_memory_equal(env.channel.ptr, "bench:1", 7);
    proto_buf_reset(msg);
    assert_int_equal(proto_envelope_encode_msg(sub_enc, env.channel, proto_span(E1, 8), offset,
                                               proto_span(user, strlen(user)), env.data, msg),
                     PROTO_OK);
    proto_buf_fini(&req);
    proto_buf_fini(&scratch);
}

static void
test_publication_round_trip(void **state)
{
    static const proto_enc_t encs[] = {PROTO_ENC_JSON, PROTO_ENC_MSGPACK};
    static const char *users[] = {"", "alice", "user-123"};
    proto_buf_t msg, scratch;
    ld_fan_msg_t m;
    size_t a, b, u;

    (void)state;
    proto_buf_init(&msg, 0);
    proto_buf_init(&scratch, 0);
    for (a = 0; a < 2; a++) {
        for (b = 0; b < 2; b++) {
            for (u = 0; u < 3; u++) {
                proto_span_t pad = proto_span(u == 2 ? "abcdefghij" : "", u == 2 ? 10 : 0);

                deliver(encs[a], encs[b], users[u], 3, 17, 123456789012345ull, pad, 4242, &msg);
                assert_int_equal(
                    ld_fan_parse(encs[b], proto_buf_payload(&msg), msg.len, &scratch, &m),
                    LD_FAN_MSG);
                assert_int_equal(m.channel.len, 7);
                assert_memory_equal(m.channel.ptr, "bench:1", 7);
                assert_int_equal(m.epoch, ld_fan_epoch(proto_span(E1, 8)));
                assert_int_equal(m.offset, 4242);
                assert_int_equal(m.publisher, 3);
                assert_int_equal(m.seq, 17);
                assert_int_equal(m.t_ns, 123456789012345ull);
            }
        }
    }
    /* the largest values the data can carry */
    deliver(PROTO_ENC_JSON, PROTO_ENC_JSON, "", UINT32_MAX, UINT32_MAX, INT64_MAX,
            proto_span("", 0), 1, &msg);
    assert_int_equal(ld_fan_parse(PROTO_ENC_JSON, proto_buf_payload(&msg), msg.len, &scratch, &m),
                     LD_FAN_MSG);
    assert_int_equal(m.publisher, UINT32_MAX);
    assert_int_equal(m.t_ns, INT64_MAX);
    proto_buf_fini(&msg);
    proto_buf_fini(&scratch);
}

static ld_fan_kind_t
parse_json(const char *text, ld_fan_msg_t *m)
{
    proto_buf_t scratch;
    ld_fan_kind_t k;

    proto_buf_init(&scratch, 0);
    k = ld_fan_parse(PROTO_ENC_JSON, (const uint8_t *)text, strlen(text), &scratch, m);
    proto_buf_fini(&scratch);
    return k;
}

static void
test_parse_other_layouts(void **state)
{
    ld_fan_msg_t m;
    proto_buf_t b, scratch;

    (void)state;
    /* another key order and an escaped user: the converter reads them */
    assert_int_equal(parse_json("{\"op\":\"msg\",\"data\":[1,2,3,\"x\"],\"offset\":5,"
                                "\"epoch\":\"e1\",\"channel\":\"c\",\"v\":1}",
                                &m),
                     LD_FAN_MSG);
    assert_int_equal(m.offset, 5);
    assert_int_equal(m.publisher, 1);
    assert_int_equal(m.seq, 2);
    assert_int_equal(m.t_ns, 3);
    assert_int_equal(m.epoch, ld_fan_epoch(proto_span("e1", 2)));
    assert_int_equal(parse_json("{\"v\":1,\"op\":\"msg\",\"channel\":\"c\",\"epoch\":\"e1\","
                                "\"offset\":6,\"user\":\"a\\\"b\",\"data\":[4,5,6]}",
                                &m),
                     LD_FAN_MSG);
    assert_int_equal(m.offset, 6);
    assert_int_equal(m.seq, 5);

    /* not deliveries of this tool */
    assert_int_equal(parse_json("{\"v\":1,\"op\":\"res\",\"id\":0,\"data\":null}", &m),
                     LD_FAN_OTHER);
    assert_int_equal(parse_json("{\"v\":1,\"op\":\"join\",\"channel\":\"c\",\"user\":\"u\"}", &m),
                     LD_FAN_OTHER);
    assert_int_equal(parse_json("{\"v\":1,\"op\":\"msg\",\"channel\":\"c\",\"epoch\":\"e\","
                                "\"offset\":1,\"data\":{\"text\":\"hi\"}}",
                                &m),
                     LD_FAN_FOREIGN);
    assert_int_equal(parse_json("{\"v\":1,\"op\":\"msg\",\"channel\":\"c\",\"epoch\":\"e\","
                                "\"offset\":1,\"data\":[1,-2,3]}",
                                &m),
                     LD_FAN_FOREIGN);
    assert_int_equal(parse_json("{\"v\":1,\"op\":\"msg\",\"channel\":\"c\",\"epoch\":\"e\","
                                "\"offset\":1,\"data\":[99999999999,2,3]}",
                                &m),
                     LD_FAN_FOREIGN);
    /* a msg without its offset, or no envelope at all */
    assert_int_equal(parse_json("{\"v\":1,\"op\":\"msg\",\"channel\":\"c\",\"epoch\":\"e\","
                                "\"data\":[1,2,3]}",
                                &m),
                     LD_FAN_MALFORMED);
    assert_int_equal(parse_json("{\"v\":1,\"op\":\"msg\",\"channel\":\"c\",\"epo", &m),
                     LD_FAN_MALFORMED);
    assert_int_equal(parse_json("[1,2,3]", &m), LD_FAN_MALFORMED);

    /* msgpack: a res is another op */
    proto_buf_init(&b, 0);
    proto_buf_init(&scratch, 0);
    assert_int_equal(mpk_write_map(&b, 2), 0);
    assert_int_equal(mpk_write_cstr(&b, "op"), 0);
    assert_int_equal(mpk_write_cstr(&b, "res"), 0);
    assert_int_equal(mpk_write_cstr(&b, "id"), 0);
    assert_int_equal(mpk_write_uint(&b, 3), 0);
    assert_int_equal(ld_fan_parse(PROTO_ENC_MSGPACK, proto_buf_payload(&b), b.len, &scratch, &m),
                     LD_FAN_OTHER);
    /* and a truncated map is no envelope */
    assert_int_equal(
        ld_fan_parse(PROTO_ENC_MSGPACK, proto_buf_payload(&b), b.len - 3, &scratch, &m),
        LD_FAN_MALFORMED);
    proto_buf_fini(&b);
    proto_buf_fini(&scratch);
}

static void
test_epoch_hash(void **state)
{
    (void)state;
    assert_int_equal(ld_fan_epoch(proto_span("abc", 3)), ld_fan_epoch(proto_span("abc", 3)));
    assert_int_not_equal(ld_fan_epoch(proto_span("abc", 3)), ld_fan_epoch(proto_span("abd", 3)));
    assert_int_not_equal(ld_fan_epoch(proto_span("", 0)), LD_FAN_EPOCH_NONE);
}

static ld_fan_msg_t
ev(uint32_t publisher, uint64_t seq, uint64_t offset, const char *epoch)
{
    ld_fan_msg_t m;

    memset(&m, 0, sizeof(m));
    m.publisher = publisher;
    m.seq = seq;
    m.offset = offset;
    m.epoch = ld_fan_epoch(proto_span(epoch, strlen(epoch)));
    return m;
}

static void
test_accounting(void **state)
{
    uint32_t seq[2] = {0, 0};
    ld_fan_counts_t c;
    ld_fan_sub_t s;
    ld_fan_msg_t m;

    (void)state;
    memset(&c, 0, sizeof(c));
    ld_fan_sub_init(&s, seq);
    ld_fan_sub_base(&s, ld_fan_epoch(proto_span("E", 1)), 10); /* the sub answer */

    /* in order: two publishers interleaved, offsets 11, 12, 13 */
    m = ev(0, 1, 11, "E");
    assert_true(ld_fan_sub_observe(&s, 2, &m, &c));
    m = ev(1, 1, 12, "E");
    assert_true(ld_fan_sub_observe(&s, 2, &m, &c));
    m = ev(0, 2, 13, "E");
    assert_true(ld_fan_sub_observe(&s, 2, &m, &c));
    assert_int_equal(s.received, 3);
    assert_int_equal(c.out_of_order, 0);
    assert_int_equal(ld_fan_sub_missing(&s, 3), 0);

    /* offset 14 never came: 15 is out of order, and one is missing */
    m = ev(1, 3, 15, "E");
    assert_true(ld_fan_sub_observe(&s, 2, &m, &c));
    assert_int_equal(c.out_of_order, 1);
    assert_int_equal(s.received, 4);
    assert_int_equal(ld_fan_sub_missing(&s, 5), 1);

    /* 13 again: a duplicate, not counted received, and out of order */
    m = ev(0, 2, 13, "E");
    assert_false(ld_fan_sub_observe(&s, 2, &m, &c));
    assert_int_equal(c.duplicates, 1);
    assert_int_equal(c.out_of_order, 2);
    assert_int_equal(s.received, 4);
    /* back at 13, the channel's next is 14: in order again */
    m = ev(0, 3, 14, "E");
    assert_true(ld_fan_sub_observe(&s, 2, &m, &c));
    assert_int_equal(c.out_of_order, 2);
    assert_int_equal(s.received, 5);
    /* publisher 1's seq 2 after its seq 3: late, so counted with the
     * duplicates (not received), and 16 skips 15 */
    m = ev(1, 2, 16, "E");
    assert_false(ld_fan_sub_observe(&s, 2, &m, &c));
    assert_int_equal(c.duplicates, 2);
    assert_int_equal(c.out_of_order, 3);

    /* the channel restarted elsewhere: new epoch, offsets from 1 */
    m = ev(0, 4, 1, "F");
    assert_true(ld_fan_sub_observe(&s, 2, &m, &c));
    assert_int_equal(c.out_of_order, 4);
    assert_int_equal(c.epoch_changes, 1);
    m = ev(0, 5, 2, "F");
    assert_true(ld_fan_sub_observe(&s, 2, &m, &c));
    assert_int_equal(c.out_of_order, 4);

    /* a publisher this run does not have */
    m = ev(2, 1, 3, "F");
    assert_false(ld_fan_sub_observe(&s, 2, &m, &c));
    assert_int_equal(c.foreign, 1);

    assert_int_equal(c.deliveries, 10);
    assert_int_equal(s.received, 7);
    assert_int_equal(ld_fan_sub_missing(&s, 7), 0);
    assert_int_equal(ld_fan_sub_missing(&s, 10), 3);
    assert_int_equal(seq[0], 5);
    assert_int_equal(seq[1], 3);
}

static void
test_accounting_without_base(void **state)
{
    uint32_t seq[1] = {0};
    ld_fan_counts_t c;
    ld_fan_sub_t s;
    ld_fan_msg_t m;

    (void)state;
    memset(&c, 0, sizeof(c));
    ld_fan_sub_init(&s, seq);
    /* no sub answer seen: the first delivery is the base, whatever it is */
    m = ev(0, 1, 500, "E");
    assert_true(ld_fan_sub_observe(&s, 1, &m, &c));
    m = ev(0, 2, 501, "E");
    assert_true(ld_fan_sub_observe(&s, 1, &m, &c));
    assert_int_equal(c.out_of_order, 0);
    /* with a base, a first delivery that skips is out of order */
    ld_fan_sub_init(&s, seq);
    seq[0] = 0;
    ld_fan_sub_base(&s, ld_fan_epoch(proto_span("E", 1)), 0);
    m = ev(0, 1, 2, "E");
    assert_true(ld_fan_sub_observe(&s, 1, &m, &c));
    assert_int_equal(c.out_of_order, 1);
}

static void
test_burst(void **state)
{
    ld_burst_t a, b, m;
    uint64_t full = 0;

    (void)state;
    memset(&a, 0, sizeof(a));
    memset(&b, 0, sizeof(b));
    memset(&m, 0, sizeof(m));
    /* two processes' subscribers: 3 and 2 of 5 */
    ld_burst_record(&a, 5000000);
    ld_burst_record(&a, 9000000);
    ld_burst_record(&a, 7000000);
    ld_burst_record(&b, 4000000);
    assert_false(ld_burst_full(&a, 5, &full));
    ld_burst_merge(&m, &a);
    ld_burst_merge(&m, &b);
    /* one subscriber still lacks it: not delivered yet */
    assert_false(ld_burst_full(&m, 5, &full));
    assert_int_equal(m.delivered, 4);
    ld_burst_record(&b, 12000000); /* the last one, in the second process */
    memset(&m, 0, sizeof(m));
    ld_burst_merge(&m, &b);
    ld_burst_merge(&m, &a);
    assert_true(ld_burst_full(&m, 5, &full));
    assert_int_equal(full, 12000000); /* the slowest subscriber's time */
    assert_int_equal(m.min_ns, 4000000);
    assert_int_equal(m.max_ns, 12000000);
    assert_false(ld_burst_full(&m, 6, &full));
    assert_false(ld_burst_full(&m, 0, &full)); /* no subscriber: nothing to time */
    /* a zero latency still counts as a first delivery */
    memset(&a, 0, sizeof(a));
    ld_burst_record(&a, 0);
    assert_int_equal(a.min_ns, 1);
    assert_true(ld_burst_full(&a, 1, &full));
    assert_int_equal(full, 0);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_publication_round_trip),
        cmocka_unit_test(test_parse_other_layouts),
        cmocka_unit_test(test_epoch_hash),
        cmocka_unit_test(test_accounting),
        cmocka_unit_test(test_accounting_without_base),
        cmocka_unit_test(test_burst),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
