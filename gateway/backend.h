/*
 * backend.h - the gateway's ZeroMQ side: the ROUTER workers connect to,
 * worker membership (from HELLOs), and rendezvous routing over it.
 *
 * The ROUTER's ZMQ_FD sits in the gateway's libev loop next to lws's
 * sockets. ZMQ_FD is edge-triggered: it only signals when ZMQ_EVENTS
 * changes, and any zmq_send()/zmq_recv() may consume that change. So the
 * loop never sleeps on the fd alone: a prepare watcher re-reads ZMQ_EVENTS
 * before every sleep whenever the socket was touched since the last read,
 * and drains it. That is the only place input is read, so replies that
 * arrive while the gateway is itself sending are never left unseen.
 *
 * Only this file includes <zmq.h>. Loop thread only.
 */
#ifndef WSGATE_GW_BACKEND_H
#define WSGATE_GW_BACKEND_H

#include "gateway.h"

typedef struct gw_backend gw_backend_t;

#define GW_MAX_WORKERS 256 /* worker slots are 0..GW_MAX_WORKERS-1 */

gw_backend_t *gw_backend_new(gw_t *gw, const gw_config_t *cfg, gw_metrics_t *metrics,
                             void *ev_loop);
void gw_backend_destroy(gw_backend_t **self_p);

/* Picks the live, non-draining worker for (svc, key): its slot, or -1 when
 * none offers svc. *retry_safe (if not NULL) says whether the service's
 * requests may be sent again to another worker. */
int gw_backend_route(gw_backend_t *b, proto_span_t svc, proto_span_t key, bool *retry_safe);

/* Sends [header][payload] (payload may be empty: no frame) to a worker.
 * 0; -1 when the worker's queue is full (caller answers `overloaded`);
 * -2 when the worker is unreachable (it has been forgotten). Never blocks. */
int gw_backend_send(gw_backend_t *b, int worker, const proto_buf_t *hdr, proto_span_t payload);

/* Routes (svc, key) and sends [header][payload] to the chosen worker; a
 * worker the send finds unreachable is forgotten and the route taken again
 * once. 0 with *worker (if not NULL) set; -1 when the worker's queue is
 * full; -2 when no live worker offers svc. *retry_safe as for route. */
int gw_backend_send_routed(gw_backend_t *b, proto_span_t svc, proto_span_t key,
                           const proto_buf_t *hdr, proto_span_t payload, int *worker,
                           bool *retry_safe);

/* Live workers. Membership expires lazily (no timer wakes the loop for
 * it): here, and on every routing decision. */
unsigned gw_backend_live(gw_backend_t *b);
/* The routing seed of the live worker in slot `worker` (a hash of its id,
 * stable across reconnects), or 0 when the slot holds no live worker. */
uint64_t gw_backend_seed(const gw_backend_t *b, int worker);

/* True if a live, non-draining worker offers svc. */
bool gw_backend_offers(gw_backend_t *b, proto_span_t svc);

/* Workers refused by the CURVE ZAP handler (0 without CURVE). Any thread. */
uint64_t gw_backend_auth_refused(const gw_backend_t *b);

/* Appends per-worker metrics lines and wsgate_backend_auth_refused_total. */
int gw_backend_render(const gw_backend_t *b, proto_buf_t *out);

#endif
