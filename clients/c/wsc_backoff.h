/*
 * wsc_backoff.h - reconnect delays: exponential backoff with full jitter.
 *
 * The n-th consecutive failed attempt (n from 0) waits a uniformly random
 * time in [0, min(max_ms, base_ms * 2^n)] ("full jitter"). After a gateway
 * restart every device computes a different delay, so reconnections
 * spread over the window instead of arriving as one synchronized storm.
 *
 * Pure functions; the caller supplies the randomness.
 */
#ifndef WSC_BACKOFF_H
#define WSC_BACKOFF_H

#include <stdint.h>

/* min(max_ms, base_ms * 2^attempt), without overflow. */
uint32_t wsc_backoff_ceiling(uint32_t base_ms, uint32_t max_ms, unsigned attempt);

/* A delay in [0, wsc_backoff_ceiling(...)] picked by rnd (uniform over
 * all 32-bit values gives a uniform delay). */
uint32_t wsc_backoff_delay(uint32_t base_ms, uint32_t max_ms, unsigned attempt, uint32_t rnd);

#endif
