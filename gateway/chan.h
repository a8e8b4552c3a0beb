/*
 * chan.h - the gateway's half of channels: which local connections are
 * subscribed to which channel.
 *
 * The channel actor (a worker) decides who may subscribe, numbers the
 * publications and broadcasts them to every gateway; the gateway keeps
 * channel -> local subscribers so one PUB from a worker becomes one
 * encoded frame per client encoding, shared by all of them. Nothing else
 * is kept here: no history, no presence.
 *
 * A subscription is created *pending* when the client asks, and becomes
 * *active* when the channel actor's reply arrives; only active ones get
 * publications. Both kinds count against the connection's limit.
 * Channels are found by a 64-bit hash of their name through an idmap,
 * with a chain for the (astronomically unlikely) collision.
 *
 * Loop thread only, like the rest of the gateway.
 */
#ifndef WSGATE_GW_CHAN_H
#define WSGATE_GW_CHAN_H

#include <stdbool.h>
#include <stdint.h>

#include "../protocol/proto.h"
#include "idmap.h"

struct gw_conn;
struct gw_chan;

typedef struct gw_sub {
    struct gw_sub *prev, *next; /* the channel's active subscribers */
    struct gw_sub *conn_next;   /* the connection's subscriptions */
    struct gw_chan *chan;
    struct gw_conn *conn;
    uint32_t seq; /* tags the subscribe request, unique per connection */
    uint8_t active;
    uint8_t presence; /* also wants join/leave events */
} gw_sub_t;

typedef struct gw_chan {
    struct gw_chan *hnext; /* another channel with the same hash */
    gw_sub_t *head;        /* active subscribers */
    uint64_t hash;
    uint64_t owner_seed; /* the worker its actor was on when we last told it (0: unknown) */
    int owner_slot;      /* ... and that worker's slot then */
    uint32_t n_active;
    uint32_t n_subs; /* active and pending: the channel lives while > 0 */
    uint16_t len;
    char name[]; /* len bytes, NUL-terminated */
} gw_chan_t;

typedef struct {
    gw_idmap_t map; /* hash -> first gw_chan_t */
    uint64_t n_chans;
    uint64_t n_active; /* active subscriptions, all channels */
} gw_chans_t;

int gw_chans_init(gw_chans_t *t);
/* Frees the channels; subscriptions must be gone (connections closed). */
void gw_chans_fini(gw_chans_t *t);
/* The channel, or NULL when no local connection is subscribed. */
gw_chan_t *gw_chans_get(const gw_chans_t *t, proto_span_t name);

/* Adds a pending subscription of c to name and links it to c's list at
 * *list (c's head pointer). NULL when out of memory. */
gw_sub_t *gw_sub_add(gw_chans_t *t, struct gw_conn *c, gw_sub_t **list, proto_span_t name,
                     bool presence, uint32_t seq);
void gw_sub_activate(gw_chans_t *t, gw_sub_t *s);
/* Unlinks s from its channel and from the list at *list, frees it, and the
 * channel with it when s was its last subscription. */
void gw_sub_remove(gw_chans_t *t, gw_sub_t **list, gw_sub_t *s);
gw_sub_t *gw_sub_find(gw_sub_t *list, proto_span_t name);
gw_sub_t *gw_sub_find_seq(gw_sub_t *list, uint32_t seq);

#endif
