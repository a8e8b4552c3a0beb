/*
 * test_hist.c - load/hist.c: bucket layout, percentiles against the exact
 * ones of known data, and the merge of histograms from two processes.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "hist.h"

/* Exact nearest-rank percentile of sorted v[0..n). */
static uint64_t
exact_pct(const uint64_t *v, size_t n, double pct)
{
    size_t rank = (size_t)((pct * (double)n + 99.999999) / 100.0);

    if (rank < 1)
        rank = 1;
    if (rank > n)
        rank = n;
    return v[rank - 1];
}

static int
cmp_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;

    return x < y ? -1 : x > y;
}

static void
assert_near(uint64_t got, uint64_t want)
{
    /* one bucket is at most 1/128 of its values wide; the middle is reported */
    uint64_t tol = want / 100 + 1;

    if (got + tol < want || got > want + tol)
        fail_msg("got %llu, want %llu (+-%llu)", (unsigned long long)got, (unsigned long long)want,
                 (unsigned long long)tol);
}

static uint64_t s_seed = 88172645463325252ull;

static uint64_t
rnd(void)
{
    s_seed ^= s_seed << 13;
    s_seed ^= s_seed >> 7;
    s_seed ^= s_seed << 17;
    return s_seed;
}

static void
test_buckets(void **state)
{
    uint64_t v, prev_low = 0;
    unsigned idx, prev = 0;

    (void)state;
    for (v = 0; v <= LD_HIST_MAX_US; v = v < 4096 ? v + 1 : v + v / 1000 + 1) {
        idx = ld_hist_bucket(v);
        assert_true(idx < LD_HIST_BUCKETS);
        assert_true(idx >= prev);
        assert_true(ld_hist_bucket_low(idx) <= v);
        assert_true(v < ld_hist_bucket_low(idx) + ld_hist_bucket_width(idx));
        if (v < 256)
            assert_int_equal(ld_hist_bucket_width(idx), 1);
        else
            assert_true(ld_hist_bucket_width(idx) * 128 <= v);
        prev = idx;
    }
    /* buckets tile the range: each starts where the previous ended */
    for (idx = 1; idx <= ld_hist_bucket(LD_HIST_MAX_US); idx++) {
        assert_int_equal(ld_hist_bucket_low(idx),
                         ld_hist_bucket_low(idx - 1) + ld_hist_bucket_width(idx - 1));
        assert_true(ld_hist_bucket_low(idx) > prev_low || idx == 0);
        prev_low = ld_hist_bucket_low(idx);
    }
    assert_int_equal(ld_hist_bucket(1000000000ull), ld_hist_bucket(LD_HIST_MAX_US));
}

static void
test_exact_small_values(void **state)
{
    ld_hist_t h;
    uint64_t v;

    (void)state;
    ld_hist_init(&h);
    assert_int_equal(ld_hist_percentile(&h, 50), 0);
    for (v = 1; v <= 200; v++)
        ld_hist_record(&h, v);
    assert_int_equal(h.n, 200);
    assert_int_equal(h.min, 1);
    assert_int_equal(h.max, 200);
    assert_int_equal(ld_hist_percentile(&h, 50), 100);
    assert_int_equal(ld_hist_percentile(&h, 90), 180);
    assert_int_equal(ld_hist_percentile(&h, 99), 198);
    assert_int_equal(ld_hist_percentile(&h, 99.9), 200);
    assert_int_equal(ld_hist_percentile(&h, 100), 200);
    assert_int_equal(ld_hist_percentile(&h, 0), 1);
    assert_true(ld_hist_mean(&h) > 100.49 && ld_hist_mean(&h) < 100.51);
}

static void
test_percentiles_vs_exact(void **state)
{
    static uint64_t v[100000];
    const double pcts[] = {1, 10, 25, 50, 75, 90, 99, 99.9, 99.99};
    size_t n = sizeof(v) / sizeof(v[0]), i;
    ld_hist_t h;

    (void)state;
    ld_hist_init(&h);
    for (i = 0; i < n; i++) {
        /* log-uniform over 1 us .. ~60 s: every octave gets values */
        unsigned octave = (unsigned)(rnd() % 26);

        v[i] = (1ull << octave) + rnd() % (1ull << octave);
        if (v[i] > LD_HIST_MAX_US)
            v[i] = LD_HIST_MAX_US;
        ld_hist_record(&h, v[i]);
    }
    qsort(v, n, sizeof(v[0]), cmp_u64);
    for (i = 0; i < sizeof(pcts) / sizeof(pcts[0]); i++)
        assert_near(ld_hist_percentile(&h, pcts[i]), exact_pct(v, n, pcts[i]));
    assert_int_equal(ld_hist_percentile(&h, 100), v[n - 1]);
    assert_int_equal(h.min, v[0]);
}

static void
test_1_to_1000(void **state)
{
    static uint64_t v[1000];
    ld_hist_t h;
    size_t i;

    (void)state;
    ld_hist_init(&h);
    for (i = 0; i < 1000; i++) {
        v[i] = i + 1;
        ld_hist_record(&h, v[i]);
    }
    assert_near(ld_hist_percentile(&h, 50), 500);
    assert_near(ld_hist_percentile(&h, 90), 900);
    assert_near(ld_hist_percentile(&h, 99), 990);
    assert_near(ld_hist_percentile(&h, 99.9), 999);
    assert_int_equal(ld_hist_percentile(&h, 100), 1000);
}

static void
test_merge_two_processes(void **state)
{
    static uint64_t v[50000];
    const double pcts[] = {50, 90, 99, 99.9};
    size_t n = sizeof(v) / sizeof(v[0]), i;
    ld_hist_t a, b, all, merged;

    (void)state;
    ld_hist_init(&a);
    ld_hist_init(&b);
    ld_hist_init(&all);
    ld_hist_init(&merged);
    for (i = 0; i < n; i++) {
        /* two "processes" with different distributions: 20..2000 us and 1..50 ms */
        v[i] = i % 2 ? 20 + rnd() % 1980 : 1000 + rnd() % 49000;
        ld_hist_record(i % 2 ? &a : &b, v[i]);
        ld_hist_record(&all, v[i]);
    }
    ld_hist_merge(&merged, &a);
    ld_hist_merge(&merged, &b);
    assert_int_equal(merged.n, n);
    assert_int_equal(merged.sum, all.sum);
    assert_int_equal(merged.min, all.min);
    assert_int_equal(merged.max, all.max);
    assert_memory_equal(merged.counts, all.counts, sizeof(all.counts));
    qsort(v, n, sizeof(v[0]), cmp_u64);
    for (i = 0; i < sizeof(pcts) / sizeof(pcts[0]); i++) {
        assert_int_equal(ld_hist_percentile(&merged, pcts[i]), ld_hist_percentile(&all, pcts[i]));
        assert_near(ld_hist_percentile(&merged, pcts[i]), exact_pct(v, n, pcts[i]));
    }
    /* merging an empty histogram changes nothing */
    ld_hist_init(&a);
    ld_hist_merge(&merged, &a);
    assert_int_equal(merged.min, all.min);
    assert_int_equal(merged.n, n);
}

static void
test_clamp(void **state)
{
    ld_hist_t h;

    (void)state;
    ld_hist_init(&h);
    ld_hist_record(&h, 5);
    ld_hist_record(&h, 100000000ull);
    assert_int_equal(h.clamped, 1);
    assert_int_equal(h.max, LD_HIST_MAX_US);
    assert_int_equal(ld_hist_percentile(&h, 100), LD_HIST_MAX_US);
    assert_near(ld_hist_percentile(&h, 99), LD_HIST_MAX_US);
    assert_int_equal(ld_hist_percentile(&h, 50), 5);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_buckets),
        cmocka_unit_test(test_exact_small_values),
        cmocka_unit_test(test_percentiles_vs_exact),
        cmocka_unit_test(test_1_to_1000),
        cmocka_unit_test(test_merge_two_processes),
        cmocka_unit_test(test_clamp),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
