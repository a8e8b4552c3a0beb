/*
 * svc_chan.h - the `chan` service: one actor per channel (key = the
 * channel's name). It decides who may subscribe and publish, numbers the
 * publications, keeps presence and a bounded history, and fans each
 * publication out as one PUB per gateway (wk_broadcast_pub); the gateways
 * deliver to their own subscribers. The protocol it speaks with the
 * gateway is in docs/backend-protocol.md, "Channels".
 *
 * The settings are the worker's (--chan-*), shared by every channel
 * actor. Set them with wk_chan_configure() before the runtime runs; the
 * service reads them on every message, on the runtime's thread.
 */
#ifndef WSGATE_SVC_CHAN_H
#define WSGATE_SVC_CHAN_H

#include "service.h"

#include <stddef.h>
#include <stdint.h>

#define WK_CHAN_DEFAULT_HISTORY 100
#define WK_CHAN_DEFAULT_HISTORY_TTL_S 300
#define WK_CHAN_DEFAULT_HISTORY_BYTES 1048576
#define WK_CHAN_DEFAULT_MAX_SUBSCRIBERS 100000
#define WK_CHAN_PUBLIC_MAX 64     /* patterns in --chan-public */
#define WK_CHAN_PUBLIC_BYTES 1024 /* bytes of the --chan-public list */

typedef struct {
    /* Comma-separated channel patterns anyone may subscribe to and publish
     * on, anonymous connections included: an exact name, or a prefix
     * ending in `*` (`news:*`; `*` alone is every channel). NULL or "":
     * none. Copied. */
    const char *public_patterns;
    uint32_t history;         /* publications kept per channel (0: none) */
    uint64_t history_ttl_s;   /* none kept longer than this (0: no age limit) */
    uint64_t history_bytes;   /* bytes of publication data kept per channel */
    uint32_t max_subscribers; /* connections per channel; more: `overloaded` (>= 1) */
} wk_chan_cfg_t;

/* The WK_CHAN_DEFAULT_* values, no public patterns. */
void wk_chan_cfg_defaults(wk_chan_cfg_t *cfg);

/*
 * Checks cfg and makes it the service's configuration (patterns copied
 * into static storage: nothing to free). 0; or -1 with the problem in err
 * (a malformed pattern, too many, max_subscribers 0), leaving the previous
 * configuration in place. Call it before the runtime runs any chan actor.
 */
int wk_chan_configure(const wk_chan_cfg_t *cfg, char *err, size_t errsz);

/* Checks a --chan-public list as wk_chan_configure would. 0 or -1 (err). */
int wk_chan_patterns_check(const char *list, char *err, size_t errsz);

#endif
