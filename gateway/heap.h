/*
 * heap.h - a binary min-heap of deadlines for connection timers whose
 * delays differ (auth timeout, token expiry).
 *
 * Entries are never removed from the middle: the owner checks, when one
 * comes due, whether it still applies (the connection may be gone, the
 * token refreshed) and skips it otherwise. A push is O(log n); a stale
 * entry costs one pop. Loop thread only.
 */
#ifndef WSGATE_GW_HEAP_H
#define WSGATE_GW_HEAP_H

#include <stddef.h>
#include <stdint.h>

typedef struct {
    uint64_t due_ms;
    uint64_t id;   /* connection id */
    uint32_t kind; /* the owner's */
    uint32_t gen;  /* the owner's: tells a current entry from a stale one */
} gw_heap_item_t;

typedef struct {
    gw_heap_item_t *v;
    size_t n, cap;
} gw_heap_t;

void gw_heap_init(gw_heap_t *h);
void gw_heap_fini(gw_heap_t *h);
/* 0, or -1 when out of memory. */
int gw_heap_push(gw_heap_t *h, gw_heap_item_t it);
/* The earliest entry, or NULL when empty. */
const gw_heap_item_t *gw_heap_top(const gw_heap_t *h);
void gw_heap_pop(gw_heap_t *h);

#endif
