/*
 * pace.c - send schedule (pace.h).
 */
#include "pace.h"

#include <math.h>

void
ld_pace_init(ld_pace_t *p, double rate, uint64_t start_ns, uint64_t limit)
{
    p->start_ns = start_ns;
    p->interval_ns = 1e9 / rate;
    p->released = 0;
    p->limit = limit;
}

uint64_t
ld_pace_time(const ld_pace_t *p, uint64_t k)
{
    /* from k, not by adding intervals up: no drift over millions of events */
    return p->start_ns + (uint64_t)((double)k * p->interval_ns);
}

uint64_t
ld_pace_due(const ld_pace_t *p, uint64_t now_ns)
{
    uint64_t k;

    if (now_ns < p->start_ns || p->released >= p->limit)
        return 0;
    /* events 0..k are due: k = floor((now - start) / interval) */
    k = (uint64_t)floor((double)(now_ns - p->start_ns) / p->interval_ns);
    /* the division may round either way at the boundary: trust the schedule */
    while (ld_pace_time(p, k + 1) <= now_ns)
        k++;
    while (k > 0 && ld_pace_time(p, k) > now_ns)
        k--;
    k++;
    if (k > p->limit)
        k = p->limit;
    return k > p->released ? k - p->released : 0;
}

uint64_t
ld_pace_take(ld_pace_t *p)
{
    return ld_pace_time(p, p->released++);
}

uint64_t
ld_pace_wait(const ld_pace_t *p, uint64_t now_ns)
{
    uint64_t t;

    if (p->released >= p->limit)
        return UINT64_MAX;
    t = ld_pace_time(p, p->released);
    return t > now_ns ? t - now_ns : 0;
}
