/*
 * wsc_backoff.c - exponential backoff with full jitter.
 */
#include "wsc_backoff.h"

uint32_t
wsc_backoff_ceiling(uint32_t base_ms, uint32_t max_ms, unsigned attempt)
{
    uint64_t c = base_ms;

    /* doubling stops as soon as it passes max: no shift overflows */
    while (attempt-- > 0 && c < max_ms)
        c <<= 1;
    return c < max_ms ? (uint32_t)c : max_ms;
}

uint32_t
wsc_backoff_delay(uint32_t base_ms, uint32_t max_ms, unsigned attempt, uint32_t rnd)
{
    uint64_t cap = wsc_backoff_ceiling(base_ms, max_ms, attempt);

    /* scale rnd onto [0, cap]: (cap + 1) * rnd / 2^32, no modulo bias */
    return (uint32_t)(((cap + 1) * (uint64_t)rnd) >> 32);
}
