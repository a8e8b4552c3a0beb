/*
 * hist.c - log-linear histogram: see hist.h for the layout.
 */
#include "hist.h"

#include <math.h>
#include <string.h>

#define SUB_HALF (1u << (LD_HIST_SUB_BITS - 1)) /* buckets per octave */
#define EXACT (1u << LD_HIST_SUB_BITS)          /* values with a bucket each */

_Static_assert(LD_HIST_MAX_US < (1ull << 26), "LD_HIST_BUCKETS assumes 60 s < 2^26 us");

void
ld_hist_init(ld_hist_t *h)
{
    memset(h, 0, sizeof(*h));
    h->min = UINT64_MAX;
}

unsigned
ld_hist_bucket(uint64_t us)
{
    unsigned msb, shift;

    if (us < EXACT)
        return (unsigned)us;
    if (us > LD_HIST_MAX_US)
        us = LD_HIST_MAX_US;
    msb = 63u - (unsigned)__builtin_clzll(us);
    shift = msb - (LD_HIST_SUB_BITS - 1);
    /* (us >> shift) is in [SUB_HALF, 2 * SUB_HALF): octave msb starts at
     * bucket (msb - SUB_BITS + 2) * SUB_HALF, right after octave msb - 1. */
    return shift * SUB_HALF + (unsigned)(us >> shift);
}

uint64_t
ld_hist_bucket_low(unsigned idx)
{
    unsigned shift;

    if (idx < EXACT)
        return idx;
    shift = idx / SUB_HALF - 1;
    return (uint64_t)(idx - shift * SUB_HALF) << shift;
}

uint64_t
ld_hist_bucket_width(unsigned idx)
{
    return idx < EXACT ? 1 : 1ull << (idx / SUB_HALF - 1);
}

void
ld_hist_record(ld_hist_t *h, uint64_t us)
{
    if (us > LD_HIST_MAX_US) {
        us = LD_HIST_MAX_US;
        h->clamped++;
    }
    h->counts[ld_hist_bucket(us)]++;
    h->n++;
    h->sum += us;
    if (us < h->min)
        h->min = us;
    if (us > h->max)
        h->max = us;
}

void
ld_hist_merge(ld_hist_t *dst, const ld_hist_t *src)
{
    unsigned i;

    if (!src->n)
        return;
    for (i = 0; i < LD_HIST_BUCKETS; i++)
        dst->counts[i] += src->counts[i];
    dst->n += src->n;
    dst->sum += src->sum;
    dst->clamped += src->clamped;
    if (src->min < dst->min)
        dst->min = src->min;
    if (src->max > dst->max)
        dst->max = src->max;
}

uint64_t
ld_hist_percentile(const ld_hist_t *h, double pct)
{
    uint64_t rank, seen = 0, v;
    unsigned i;

    if (!h->n)
        return 0;
    if (pct >= 100.0)
        return h->max;
    if (pct <= 0.0)
        return h->min;
    /* the epsilon keeps 99.9% of 1000 at rank 999 despite rounding */
    rank = (uint64_t)ceil(pct * (double)h->n / 100.0 - 1e-9);
    if (rank < 1)
        rank = 1;
    for (i = 0; i < LD_HIST_BUCKETS; i++) {
        seen += h->counts[i];
        if (seen >= rank)
            break;
    }
    if (i == LD_HIST_BUCKETS)
        return h->max;
    v = ld_hist_bucket_low(i) + ld_hist_bucket_width(i) / 2;
    if (v < h->min)
        v = h->min;
    if (v > h->max)
        v = h->max;
    return v;
}

double
ld_hist_mean(const ld_hist_t *h)
{
    return h->n ? (double)h->sum / (double)h->n : 0.0;
}
