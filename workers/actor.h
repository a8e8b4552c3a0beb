/*
 * actor.h - the actor runtime that runs wsgate services (service.h).
 *
 * One runtime per thread; nothing here is thread-safe, and every function
 * must be called on the runtime's thread. The runtime keeps one actor per
 * live (service, key): private state, a FIFO mailbox of copied messages and
 * a behaviour (wk_service_t). wk_runtime_deliver() appends a message to its
 * actor's mailbox (creating the actor on its first message);
 * wk_runtime_run() hands queued messages to behaviours, one message per
 * actor per turn, round robin, so a busy key cannot starve the others.
 *
 * Bounds, all answered with `overloaded` to requests that want a reply and
 * counted otherwise: live actors (max_actors; at the bound, the least
 * recently used idle actor is passivated to make room, and if no actor is
 * idle the message is refused) and messages per mailbox (mailbox_max).
 * Idle actors are passivated after idle_ms by wk_runtime_tick(). Pinned
 * actors (wk_actor_pin) are never idle in that sense: neither passivated
 * by time nor evicted.
 *
 * The runtime never touches ZeroMQ: everything it emits goes through a
 * wk_out_t, which the link (link.h) implements with zmq sends and tests
 * implement by recording.
 */
#ifndef WSGATE_ACTOR_H
#define WSGATE_ACTOR_H

#include "../protocol/backend.h"
#include "service.h"

#define WK_DEFAULT_MAX_ACTORS 100000
#define WK_DEFAULT_MAILBOX_MAX 1024
#define WK_DEFAULT_IDLE_MS 60000

typedef struct wk_runtime wk_runtime_t;

/* publish_fn's origin when the behaviour is not handling a message from a
 * gateway: the output picks a live link. */
#define WK_ORIGIN_ANY UINT32_MAX

/*
 * Where the runtime's outputs go. Every pointer argument is borrowed for
 * the call: an implementation that keeps bytes must copy them. Each
 * returns 0, or -1 when the output was dropped (counted in out_dropped).
 * `origin` is the gateway link the triggering message came from (or the
 * one a behaviour named in wk_send/wk_close); the implementation rejects
 * origins it does not know.
 *
 * pub_fn sends one PUB to every gateway link (-1 if any link dropped it);
 * publish_fn one PUBLISH to link `origin` (or any live one for
 * WK_ORIGIN_ANY). Both may be NULL for a runtime whose services never
 * publish: the calls then fail and count as dropped.
 */
typedef struct {
    int (*reply_fn)(void *ctx, uint32_t origin, uint64_t rid, const void *data, size_t len);
    int (*error_fn)(void *ctx, uint32_t origin, uint64_t rid, proto_span_t code, proto_span_t msg);
    int (*send_fn)(void *ctx, uint32_t origin, const uint64_t *conns, size_t n, uint32_t flags,
                   proto_span_t svc, const void *payload, size_t len);
    int (*close_fn)(void *ctx, uint32_t origin, uint64_t conn, uint32_t code, proto_span_t reason);
    int (*pub_fn)(void *ctx, proto_span_t channel, uint32_t kind, uint64_t offset,
                  proto_span_t epoch, proto_span_t user, const void *payload, size_t len);
    int (*publish_fn)(void *ctx, uint32_t origin, uint64_t ref, proto_span_t channel,
                      const void *data, size_t len);
} wk_out_t;

/* Zero fields take the WK_DEFAULT_* values. */
typedef struct {
    uint32_t max_actors;  /* live actors, idle or not */
    uint32_t mailbox_max; /* queued messages per actor */
    uint64_t idle_ms;     /* idle time before passivation */
} wk_runtime_cfg_t;

/* Counters since wk_runtime_new (gauges say so). */
typedef struct {
    uint64_t delivered;    /* messages queued to a mailbox */
    uint64_t handled;      /* messages given to a behaviour (or failed its start) */
    uint64_t errors;       /* handle_fn returned -1 */
    uint64_t start_failed; /* start_fn returned -1 */
    uint64_t unanswered;   /* requests the runtime answered `internal` */
    uint64_t overloaded;   /* messages refused: actor bound or mailbox full */
    uint64_t mailbox_full; /* ... of which for a full mailbox */
    uint64_t no_service;   /* messages for a service this runtime does not run */
    uint64_t started;      /* start_fn calls that succeeded */
    uint64_t passivated;   /* stop_fn calls (idle, evicted, WK_STOP, shutdown) */
    uint64_t evicted;      /* ... of which to make room under max_actors */
    uint64_t bad_output;   /* wk_* calls refused: double reply, bad msgpack, bad code */
    uint64_t out_dropped;  /* outputs the wk_out_t dropped */
    uint64_t pubs;         /* wk_broadcast_pub calls handed to the output */
    uint64_t publishes;    /* wk_publish calls handed to the output */
    uint64_t live_actors;  /* gauge */
    uint64_t idle_actors;  /* gauge: live actors with an empty mailbox */
    uint64_t pinned;       /* gauge: live actors pinned (wk_actor_pin) */
    uint64_t queued;       /* gauge: messages in all mailboxes */
} wk_stats_t;

/*
 * Creates a runtime running services svcs[0..n_svcs) (borrowed: they must
 * outlive the runtime; names must be distinct and valid service names;
 * handle_fn is required, a NULL start_fn leaves the state NULL).
 * Outputs go to out (borrowed) with out_ctx. NULL on bad arguments or out
 * of memory. The clock starts at 0 until the first wk_runtime_tick().
 */
wk_runtime_t *wk_runtime_new(const wk_runtime_cfg_t *cfg, const wk_service_t *const *svcs,
                             size_t n_svcs, const wk_out_t *out, void *out_ctx);

/* Passivates every live actor (stop_fn), drops queued messages without
 * answering them, frees everything. Accepts NULL; sets *rt_p to NULL. */
void wk_runtime_destroy(wk_runtime_t **rt_p);

/*
 * Delivers one REQ, OPEN or CLOSED message from gateway link `origin`.
 * hdr and payload are borrowed: the key is copied into the actor when it is
 * created, payload[0..len) and a REQ's user into the mailbox entry, so both may be freed
 * when this returns. 0 when queued; -1 when refused (other header type, no
 * such service, overloaded, out of memory), in which case a request with
 * rid != 0 has already been answered with an error.
 * May be called from inside a behaviour (the message is queued, never
 * handled re-entrantly).
 */
int wk_runtime_deliver(wk_runtime_t *rt, uint32_t origin, const proto_bk_t *hdr,
                       const void *payload, size_t len);

/*
 * Tells every started actor that the connections of gateway link `origin`
 * with ids below `below` are gone (UINT64_MAX: all of them): a
 * WK_MSG_CONNS_GONE message, queued after what each already has. The link
 * calls it when a gateway's WELCOME shows it restarted (its conn_floor
 * rose) and when discovery retires a gateway. Returns how many actors got
 * it. No CLOSED messages came for those connections: the process that held
 * them died.
 */
size_t wk_runtime_conns_gone(wk_runtime_t *rt, uint32_t origin, uint64_t below);

/* Handles up to budget queued messages; returns how many it handled.
 * Returns 0 when called from inside a behaviour. */
size_t wk_runtime_run(wk_runtime_t *rt, size_t budget);

/* True when messages are waiting in some mailbox. */
bool wk_runtime_busy(const wk_runtime_t *rt);

/*
 * Advances the runtime's clock to now_ms (monotonic milliseconds; a
 * smaller value than the last one is ignored) and passivates actors idle
 * for idle_ms or more. Costs O(1) plus the actors passivated.
 */
void wk_runtime_tick(wk_runtime_t *rt, uint64_t now_ms);

/* The clock value at which the next idle actor is due for passivation,
 * or UINT64_MAX when no actor is idle. For poll timeouts. */
uint64_t wk_runtime_next_deadline(const wk_runtime_t *rt);

/* The services this runtime runs (borrowed, as given to wk_runtime_new). */
const wk_service_t *const *wk_runtime_services(const wk_runtime_t *rt, size_t *n);

/* Built-in service by name, or NULL. */
const wk_service_t *wk_service_find(const char *name);

void wk_runtime_stats(const wk_runtime_t *rt, wk_stats_t *out);

/* Per service (same order as wk_runtime_services()), since wk_runtime_new. */
typedef struct {
    uint64_t handled;    /* messages given to a behaviour */
    uint64_t replied;    /* requests answered with a result */
    uint64_t errored;    /* requests answered with an error by the service */
    uint64_t unanswered; /* requests the runtime answered `internal` */
} wk_svc_stats_t;

/* NULL for an index past the services. */
const wk_svc_stats_t *wk_runtime_svc_stats(const wk_runtime_t *rt, size_t i);

#endif
