/*
 * test_wsc_backoff.c - reconnect delays (clients/c/wsc_backoff.c):
 * exponential ceilings capped at the maximum, full jitter within
 * [0, ceiling], and spread (not one synchronized value).
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <stdlib.h>
#include <cmocka.h>

#include "wsc_backoff.h"

static void
test_ceiling_doubles_up_to_the_max(void **state)
{
    (void)state;
    assert_int_equal(wsc_backoff_ceiling(500, 30000, 0), 500);
    assert_int_equal(wsc_backoff_ceiling(500, 30000, 1), 1000);
    assert_int_equal(wsc_backoff_ceiling(500, 30000, 2), 2000);
    assert_int_equal(wsc_backoff_ceiling(500, 30000, 5), 16000);
    assert_int_equal(wsc_backoff_ceiling(500, 30000, 6), 30000);
    assert_int_equal(wsc_backoff_ceiling(500, 30000, 1000), 30000); /* no overflow */
    assert_int_equal(wsc_backoff_ceiling(UINT32_MAX, UINT32_MAX, 64), UINT32_MAX);
    assert_int_equal(wsc_backoff_ceiling(0, 100, 10), 0);
}

static void
test_delay_covers_zero_to_the_ceiling(void **state)
{
    (void)state;
    /* the extremes of the random input reach the extremes of the window */
    assert_int_equal(wsc_backoff_delay(500, 30000, 0, 0), 0);
    assert_int_equal(wsc_backoff_delay(500, 30000, 0, UINT32_MAX), 500);
    assert_int_equal(wsc_backoff_delay(500, 30000, 3, UINT32_MAX), 4000);
    assert_int_equal(wsc_backoff_delay(500, 30000, 30, UINT32_MAX), 30000);
    assert_int_equal(wsc_backoff_delay(500, 30000, 30, 1u << 31), 15000);
    assert_int_equal(wsc_backoff_delay(UINT32_MAX, UINT32_MAX, 3, UINT32_MAX), UINT32_MAX);
}

static void
test_jitter_stays_in_bounds_and_spreads(void **state)
{
    unsigned attempt, i, buckets[10];
    uint32_t x = 2463534242u; /* xorshift32 */

    (void)state;
    for (attempt = 0; attempt < 12; attempt++) {
        uint32_t cap = wsc_backoff_ceiling(250, 20000, attempt), lo = UINT32_MAX, hi = 0;

        for (i = 0; i < 10; i++)
            buckets[i] = 0;
        for (i = 0; i < 20000; i++) {
            uint32_t d;

            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            d = wsc_backoff_delay(250, 20000, attempt, x);
            assert_true(d <= cap);
            lo = d < lo ? d : lo;
            hi = d > hi ? d : hi;
            buckets[(uint64_t)d * 10 / ((uint64_t)cap + 1)]++;
        }
        /* full jitter: the whole window is used, roughly evenly (each
         * tenth gets 2000 +- a wide margin), not a fixed delay */
        assert_true(lo < cap / 50 + 1);
        assert_true(hi > cap - cap / 50 - 1);
        for (i = 0; i < 10; i++)
            assert_true(buckets[i] > 1500 && buckets[i] < 2500);
    }
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_ceiling_doubles_up_to_the_max),
        cmocka_unit_test(test_delay_covers_zero_to_the_ceiling),
        cmocka_unit_test(test_jitter_stays_in_bounds_and_spreads),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
