/*
 * pace.h - a send schedule: event k is due at start + k / rate.
 *
 * It is a token bucket that never loses tokens: when the sender falls
 * behind (a slow loop, a full window), the events keep their scheduled
 * times and are released as a burst once it can go on. Latency measured
 * from ld_pace_take()'s scheduled time rather than from the real send
 * time therefore includes the time a request waited to be sent, which a
 * closed-loop client would hide (coordinated omission).
 *
 * Plain data on a caller-given clock (nanoseconds), so tests drive it
 * with a fake one.
 */
#ifndef WSGATE_LD_PACE_H
#define WSGATE_LD_PACE_H

#include <stdint.h>

typedef struct {
    uint64_t start_ns;
    double interval_ns; /* 1e9 / rate */
    uint64_t released;  /* events taken so far */
    uint64_t limit;     /* events in all; UINT64_MAX: no bound */
} ld_pace_t;

/* rate in events per second, > 0. */
void ld_pace_init(ld_pace_t *p, double rate, uint64_t start_ns, uint64_t limit);

/* Scheduled time of event k. */
uint64_t ld_pace_time(const ld_pace_t *p, uint64_t k);

/* Events due at now (scheduled at or before it) and not taken yet. */
uint64_t ld_pace_due(const ld_pace_t *p, uint64_t now_ns);

/* Releases the next event and returns its scheduled time. The caller
 * checks ld_pace_due() first; taking early is allowed (a burst). */
uint64_t ld_pace_take(ld_pace_t *p);

/* Nanoseconds from now to the next event (0 if one is due);
 * UINT64_MAX once the limit is reached. */
uint64_t ld_pace_wait(const ld_pace_t *p, uint64_t now_ns);

#endif
