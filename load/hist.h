/*
 * hist.h - a log-linear latency histogram (HdrHistogram's layout, fixed).
 *
 * Values are microseconds from 0 to LD_HIST_MAX_US (60 s); larger values
 * are clamped (and counted in `clamped`). Values below 256 get a bucket
 * each; above, every power of two is cut into 128 buckets, so a bucket is
 * at most 1/128 (0.8%) of its values wide.
 *
 * The layout is the same in every process, so histograms from several
 * load processes merge by adding their counts, and the percentiles of the
 * merge are those of the union of the recorded values (within a bucket).
 * The struct is plain data, fit for a shared mapping; no allocation.
 */
#ifndef WSGATE_LD_HIST_H
#define WSGATE_LD_HIST_H

#include <stdint.h>

#define LD_HIST_SUB_BITS 8 /* 256 exact values, then 128 buckets per octave */
#define LD_HIST_MAX_US 60000000ull
/* 60 s < 2^26: octaves 8..25 above the exact range */
#define LD_HIST_BUCKETS ((26 - LD_HIST_SUB_BITS + 2) * (1u << (LD_HIST_SUB_BITS - 1)))

typedef struct {
    uint64_t n;       /* values recorded */
    uint64_t sum;     /* of the (clamped) values, for the mean */
    uint64_t min;     /* exact; UINT64_MAX while empty */
    uint64_t max;     /* exact (clamped) */
    uint64_t clamped; /* values over LD_HIST_MAX_US */
    uint64_t counts[LD_HIST_BUCKETS];
} ld_hist_t;

void ld_hist_init(ld_hist_t *h);
void ld_hist_record(ld_hist_t *h, uint64_t us);
/* Adds src's values to dst. */
void ld_hist_merge(ld_hist_t *dst, const ld_hist_t *src);
/*
 * The nearest-rank percentile (pct in [0, 100]): the smallest recorded
 * value v such that at least pct% of the values are <= v, as the middle
 * of v's bucket (exact below 256 us, within 0.4% above), never outside
 * [min, max]. 0 when empty; pct 100 is the exact max.
 */
uint64_t ld_hist_percentile(const ld_hist_t *h, double pct);
double ld_hist_mean(const ld_hist_t *h);

/* Bucket arithmetic, exposed for the tests. */
unsigned ld_hist_bucket(uint64_t us);
uint64_t ld_hist_bucket_low(unsigned idx);
uint64_t ld_hist_bucket_width(unsigned idx);

#endif
