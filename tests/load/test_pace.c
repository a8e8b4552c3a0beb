/*
 * test_pace.c - load/pace.c on a fake clock: the right number of sends per
 * interval, and the schedule kept when the sender lags.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "pace.h"

#define MS 1000000ull
#define SEC 1000000000ull

static void
test_per_interval(void **state)
{
    const uint64_t t0 = 5 * SEC;
    uint64_t now, due, total = 0, k;
    ld_pace_t p;
    int i;

    (void)state;
    /* 1000/s: event k at t0 + k ms; each 10 ms step releases 10 */
    ld_pace_init(&p, 1000, t0, UINT64_MAX);
    assert_int_equal(ld_pace_due(&p, t0 - 1), 0);
    assert_int_equal(ld_pace_due(&p, t0), 1); /* event 0 is due at once */
    total += ld_pace_take(&p) == t0;
    for (i = 1; i <= 100; i++) {
        now = t0 + (uint64_t)i * 10 * MS;
        due = ld_pace_due(&p, now);
        assert_int_equal(due, 10);
        for (k = 0; k < due; k++)
            ld_pace_take(&p);
        total += due;
        assert_int_equal(ld_pace_due(&p, now), 0);
        assert_int_equal(ld_pace_wait(&p, now), 1 * MS);
    }
    assert_int_equal(total, 1001); /* events 0..1000 over one second */
    assert_int_equal(p.released, 1001);
}

static void
test_fractional_rate(void **state)
{
    ld_pace_t p;

    (void)state;
    /* 3/s: 0, 333333333, 666666666, 1e9 */
    ld_pace_init(&p, 3, 0, UINT64_MAX);
    assert_int_equal(ld_pace_time(&p, 1), 333333333);
    assert_int_equal(ld_pace_time(&p, 2), 666666666);
    assert_int_equal(ld_pace_time(&p, 3), SEC);
    assert_int_equal(ld_pace_due(&p, 333333332), 1);
    assert_int_equal(ld_pace_due(&p, 333333333), 2);
    assert_int_equal(ld_pace_due(&p, SEC - 1), 3);
    assert_int_equal(ld_pace_due(&p, SEC), 4);
    /* no drift over many events */
    ld_pace_init(&p, 7777, 0, UINT64_MAX);
    assert_true(ld_pace_time(&p, 7777000) >= 1000 * SEC - 1000 &&
                ld_pace_time(&p, 7777000) <= 1000 * SEC + 1000);
}

static void
test_lag_keeps_schedule(void **state)
{
    uint64_t t, k;
    ld_pace_t p;

    (void)state;
    ld_pace_init(&p, 1000, 0, UINT64_MAX);
    for (k = 0; k < 10; k++)
        assert_int_equal(ld_pace_take(&p), k * MS);
    /* the sender stalls for half a second: what was due meanwhile comes
     * out at once, each with its scheduled time, not the late send time */
    assert_int_equal(ld_pace_due(&p, 509 * MS), 500);
    for (k = 10; k < 510; k++) {
        t = ld_pace_take(&p);
        assert_int_equal(t, k * MS);
    }
    assert_int_equal(ld_pace_due(&p, 509 * MS), 0);
    /* and the schedule goes on where it was, not from the stall */
    assert_int_equal(ld_pace_wait(&p, 509 * MS), 1 * MS);
    assert_int_equal(ld_pace_due(&p, 520 * MS), 11);
    /* partial catch-up: take fewer than due, the rest stays due */
    ld_pace_take(&p);
    assert_int_equal(ld_pace_due(&p, 520 * MS), 10);
    assert_int_equal(ld_pace_wait(&p, 520 * MS), 0);
}

static void
test_limit(void **state)
{
    ld_pace_t p;
    int i;

    (void)state;
    ld_pace_init(&p, 100, 0, 5);
    assert_int_equal(ld_pace_due(&p, 10 * SEC), 5);
    for (i = 0; i < 5; i++)
        ld_pace_take(&p);
    assert_int_equal(ld_pace_due(&p, 10 * SEC), 0);
    assert_int_equal(ld_pace_wait(&p, 10 * SEC), UINT64_MAX);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_per_interval),
        cmocka_unit_test(test_fractional_rate),
        cmocka_unit_test(test_lag_keeps_schedule),
        cmocka_unit_test(test_limit),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
