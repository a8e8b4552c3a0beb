/*
 * test_wsc_queue.c - the C client's bounded outgoing queue
 * (clients/c/wsc_queue.c): FIFO order, drop-oldest at the bound, counters.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "wsc_queue.h"

static wsc_msg_t *
s_msg(uint64_t id)
{
    char text[32];
    int n = snprintf(text, sizeof(text), "m%llu", (unsigned long long)id);
    wsc_msg_t *m = wsc_msg_new(16, text, (size_t)n, true, id);

    assert_non_null(m);
    return m;
}

static void
test_fifo_order_and_headroom(void **state)
{
    wsc_queue_t *q = wsc_queue_new(4);
    wsc_msg_t *m;
    uint64_t i;

    (void)state;
    for (i = 1; i <= 3; i++) {
        m = s_msg(i);
        assert_null(wsc_queue_push(q, &m));
        assert_null(m); /* ownership taken */
    }
    assert_int_equal(wsc_queue_count(q), 3);
    for (i = 1; i <= 3; i++) {
        m = wsc_queue_pop(q);
        assert_non_null(m);
        assert_int_equal(m->id, i);
        assert_int_equal(m->head, 16);
        assert_memory_equal(wsc_msg_payload(m), "m", 1);
        wsc_msg_destroy(&m);
        assert_null(m);
    }
    assert_null(wsc_queue_pop(q));
    assert_int_equal(wsc_queue_count(q), 0);
    wsc_queue_destroy(&q);
    assert_null(q);
    wsc_queue_destroy(&q); /* NULL is fine */
}

static void
test_full_queue_drops_the_oldest_and_counts(void **state)
{
    wsc_queue_t *q = wsc_queue_new(3);
    wsc_msg_t *m, *old;
    uint64_t i;

    (void)state;
    for (i = 1; i <= 10; i++) {
        m = s_msg(i);
        old = wsc_queue_push(q, &m);
        if (i <= 3) {
            assert_null(old);
        } else {
            /* the oldest goes: 1, 2, ... 7 */
            assert_non_null(old);
            assert_int_equal(old->id, i - 3);
            wsc_msg_destroy(&old);
        }
        assert_true(wsc_queue_count(q) <= 3);
    }
    assert_int_equal(wsc_queue_count(q), 3);
    assert_int_equal(wsc_queue_max(q), 3);
    assert_int_equal(wsc_queue_pushed(q), 10);
    assert_int_equal(wsc_queue_dropped(q), 7);
    /* what remains is the newest three, in order */
    for (i = 8; i <= 10; i++) {
        m = wsc_queue_pop(q);
        assert_int_equal(m->id, i);
        wsc_msg_destroy(&m);
    }
    wsc_queue_destroy(&q);
}

static void
test_unpop_puts_back_at_the_head(void **state)
{
    wsc_queue_t *q = wsc_queue_new(2);
    wsc_msg_t *m;

    (void)state;
    m = s_msg(1);
    wsc_queue_push(q, &m);
    m = s_msg(2);
    wsc_queue_push(q, &m);
    m = wsc_queue_pop(q);
    assert_int_equal(m->id, 1);
    wsc_queue_unpop(q, &m);
    assert_null(m);
    assert_int_equal(wsc_queue_count(q), 2);
    assert_int_equal(wsc_queue_dropped(q), 0);
    m = wsc_queue_pop(q);
    assert_int_equal(m->id, 1);
    wsc_msg_destroy(&m);
    m = wsc_queue_pop(q);
    assert_int_equal(m->id, 2);
    wsc_msg_destroy(&m);
    /* unpop into an empty queue sets the tail too */
    m = s_msg(3);
    wsc_queue_unpop(q, &m);
    m = s_msg(4);
    assert_null(wsc_queue_push(q, &m));
    m = wsc_queue_pop(q);
    assert_int_equal(m->id, 3);
    wsc_msg_destroy(&m);
    m = wsc_queue_pop(q);
    assert_int_equal(m->id, 4);
    wsc_msg_destroy(&m);
    wsc_queue_destroy(&q);
}

static void
test_destroy_frees_what_is_left_and_bound_of_one(void **state)
{
    wsc_queue_t *q = wsc_queue_new(0); /* 0 means 1 */
    wsc_msg_t *m, *old;

    (void)state;
    assert_int_equal(wsc_queue_max(q), 1);
    m = s_msg(1);
    assert_null(wsc_queue_push(q, &m));
    m = s_msg(2);
    old = wsc_queue_push(q, &m);
    assert_int_equal(old->id, 1);
    wsc_msg_destroy(&old);
    m = wsc_msg_new(0, NULL, 0, false, 0); /* empty payloads are fine */
    assert_non_null(m);
    old = wsc_queue_push(q, &m);
    wsc_msg_destroy(&old);
    assert_int_equal(wsc_queue_dropped(q), 2);
    wsc_queue_destroy(&q); /* ASan: nothing leaks */
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_fifo_order_and_headroom),
        cmocka_unit_test(test_full_queue_drops_the_oldest_and_counts),
        cmocka_unit_test(test_unpop_puts_back_at_the_head),
        cmocka_unit_test(test_destroy_frees_what_is_left_and_bound_of_one),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
