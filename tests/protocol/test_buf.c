/*
 * test_buf.c - proto_buf_t (protocol/proto.c).
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "proto.h"

static void
test_init_empty(void **state)
{
    proto_buf_t b;

    (void)state;
    proto_buf_init(&b, 16);
    assert_null(b.data);
    assert_int_equal(b.head, 16);
    assert_int_equal(b.len, 0);
    assert_null(proto_buf_payload(&b));
    proto_buf_fini(&b);
    proto_buf_fini(&b); /* twice is harmless */
}

static void
test_headroom_kept(void **state)
{
    proto_buf_t b;

    (void)state;
    proto_buf_init(&b, 16);
    assert_int_equal(proto_buf_append(&b, "abc", 3), 0);
    assert_int_equal(b.len, 3);
    assert_true(b.cap >= 19);
    assert_ptr_equal(proto_buf_payload(&b), b.data + 16);
    assert_memory_equal(proto_buf_payload(&b), "abc", 3);
    /* the headroom is writable by the caller (lws_write needs it) */
    memset(b.data, 0xAA, 16);
    assert_memory_equal(proto_buf_payload(&b), "abc", 3);
    proto_buf_fini(&b);
}

static void
test_growth_preserves_bytes(void **state)
{
    proto_buf_t b;
    size_t caps = 0, last_cap = 0;

    (void)state;
    proto_buf_init(&b, 8);
    for (unsigned i = 0; i < 100000; i++) {
        uint8_t c = (uint8_t)(i * 7);
        assert_int_equal(proto_buf_append(&b, &c, 1), 0);
        if (b.cap != last_cap) {
            caps++;
            last_cap = b.cap;
        }
    }
    assert_int_equal(b.len, 100000);
    for (unsigned i = 0; i < 100000; i++)
        assert_int_equal(proto_buf_payload(&b)[i], (uint8_t)(i * 7));
    /* geometric: a handful of reallocations, not one per append */
    assert_true(caps < 20);
    proto_buf_fini(&b);
}

static void
test_reserve_then_write(void **state)
{
    proto_buf_t b;

    (void)state;
    proto_buf_init(&b, 0);
    assert_int_equal(proto_buf_reserve(&b, 1000), 0);
    assert_true(b.cap >= 1000);
    assert_int_equal(b.len, 0);
    assert_non_null(proto_buf_payload(&b));
    assert_int_equal(proto_buf_reserve(&b, SIZE_MAX), -1);
    assert_int_equal(proto_buf_reserve(&b, SIZE_MAX - 10), -1);
    /* a failed reserve leaves the buffer usable */
    assert_int_equal(proto_buf_append(&b, "x", 1), 0);
    assert_int_equal(b.len, 1);
    proto_buf_fini(&b);
}

static void
test_reset_keeps_allocation(void **state)
{
    proto_buf_t b;
    uint8_t *data;

    (void)state;
    proto_buf_init(&b, 4);
    assert_int_equal(proto_buf_append(&b, "hello", 5), 0);
    data = b.data;
    proto_buf_reset(&b);
    assert_int_equal(b.len, 0);
    assert_ptr_equal(b.data, data);
    assert_int_equal(proto_buf_append(&b, "xy", 2), 0);
    assert_memory_equal(proto_buf_payload(&b), "xy", 2);
    proto_buf_fini(&b);
}

static void
test_detach(void **state)
{
    proto_buf_t b;
    uint8_t *p;

    (void)state;
    proto_buf_init(&b, 10);
    assert_int_equal(proto_buf_append(&b, "payload", 7), 0);
    p = proto_buf_detach(&b);
    assert_non_null(p);
    assert_memory_equal(p + 10, "payload", 7);
    assert_null(b.data);
    assert_int_equal(b.len, 0);
    assert_int_equal(b.cap, 0);
    /* b is empty but usable again, with the same headroom */
    assert_int_equal(proto_buf_append(&b, "z", 1), 0);
    assert_ptr_equal(proto_buf_payload(&b), b.data + 10);
    free(p);
    proto_buf_fini(&b);
}

static void
test_append_zero(void **state)
{
    proto_buf_t b;

    (void)state;
    proto_buf_init(&b, 0);
    assert_int_equal(proto_buf_append(&b, NULL, 0), 0);
    assert_int_equal(b.len, 0);
    proto_buf_fini(&b);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_init_empty),
        cmocka_unit_test(test_headroom_kept),
        cmocka_unit_test(test_growth_preserves_bytes),
        cmocka_unit_test(test_reserve_then_write),
        cmocka_unit_test(test_reset_keeps_allocation),
        cmocka_unit_test(test_detach),
        cmocka_unit_test(test_append_zero),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
