/*
 * idmap.h - a map from 64-bit ids to pointers.
 *
 * Connection ids and request ids are handed out in increasing order, so a
 * multiplicative hash spreads them perfectly; open addressing with linear
 * probing and backward-shift deletion keeps a lookup at one or two cache
 * lines and needs no tombstones. Id 0 is reserved (empty slot).
 *
 * Not thread-safe: the gateway's loop thread owns every map.
 */
#ifndef WSGATE_GW_IDMAP_H
#define WSGATE_GW_IDMAP_H

#include <stddef.h>
#include <stdint.h>

typedef struct {
    uint64_t id; /* 0: empty */
    void *ptr;
} gw_idmap_slot_t;

typedef struct {
    gw_idmap_slot_t *slots;
    size_t mask; /* capacity - 1, capacity a power of two */
    size_t count;
} gw_idmap_t;

int gw_idmap_init(gw_idmap_t *m, size_t initial);
void gw_idmap_fini(gw_idmap_t *m);
/* 0, or -1 when out of memory. id must be non-zero and not present. */
int gw_idmap_put(gw_idmap_t *m, uint64_t id, void *ptr);
void *gw_idmap_get(const gw_idmap_t *m, uint64_t id);
/* Removes id and returns its pointer, or NULL if absent. */
void *gw_idmap_del(gw_idmap_t *m, uint64_t id);

#endif
