/*
 * link.h - the worker's ZeroMQ side: one DEALER per gateway.
 *
 * The link connects a DEALER to every gateway endpoint, announces the
 * worker with HELLO right away and then every hello_ms (the heartbeat, and
 * how a restarted gateway relearns its workers), decodes what the gateways
 * send and delivers it to a runtime, and sends the runtime's outputs back
 * on the link they belong to. It never blocks on a send: a full queue
 * drops the message (counted), and the gateway times the request out.
 *
 * A link is used by one thread, the one that runs its runtime.
 */
#ifndef WSGATE_LINK_H
#define WSGATE_LINK_H

#include "actor.h"

#define WK_LINK_DEFAULT_HELLO_MS 1000
#define WK_DEFAULT_DRAIN_MS 10000 /* longest wait for the gateways to acknowledge a drain */
#define WK_LINK_HWM 100000

typedef struct wk_link wk_link_t;

typedef struct {
    const char *const *endpoints; /* borrowed for wk_link_new only */
    size_t n_endpoints;
    const char *worker_id; /* 1..PROTO_BK_WORKER_ID_MAX bytes; copied */
    uint64_t hello_ms;     /* 0: WK_LINK_DEFAULT_HELLO_MS */
    uint64_t drain_ms;     /* longest wait for gateways' DRAINING; 0: no drain */
    bool verbose;          /* log debug lines (WELCOME, ...) */
    /* CURVE: both set, or both NULL (plain TCP). The worker's own secret
     * key and the gateways' public key, Z85 (40 characters); copied into
     * the sockets. The worker's public key is derived from its secret. */
    const char *curve_secret;
    const char *curve_server;
} wk_link_cfg_t;

typedef struct {
    uint64_t rx;          /* messages received */
    uint64_t malformed;   /* undecodable headers, wrong frame counts */
    uint64_t bad_version; /* headers of another protocol version */
    uint64_t unexpected;  /* well-formed, but not a type a worker receives */
    uint64_t welcome;     /* WELCOME messages */
    uint64_t refused;     /* deliveries the runtime refused (it answered or counted them) */
    uint64_t tx;          /* messages sent */
    uint64_t tx_dropped;  /* sends that failed: queue full, bad origin, no memory */
    uint64_t hello;       /* HELLOs queued */
    uint64_t pub_tx;      /* PUBs queued (one per gateway per wk_broadcast_pub) */
    uint64_t pub_dropped; /* ... that a gateway's queue refused (also in tx_dropped) */
    uint64_t publish_ok;  /* PUBLISHED answers: the publication went out */
    uint64_t publish_err; /* PUBLISHED answers with an error code (logged, rate-limited) */
} wk_link_stats_t;

/*
 * Creates the ZeroMQ context and connects one DEALER per endpoint (the
 * endpoint's index is the `origin` of its messages). NULL on bad
 * arguments, an endpoint ZeroMQ rejects, or out of memory; the reason is
 * printed to stderr.
 */
wk_link_t *wk_link_new(const wk_link_cfg_t *cfg);

/* Closes the sockets (linger 0: queued messages are dropped) and the
 * context. Accepts NULL; sets *link_p to NULL. */
void wk_link_destroy(wk_link_t **link_p);

/*
 * The runtime output that sends on this link: pass it to wk_runtime_new()
 * with the link as out_ctx. pub_fn sends on every gateway; publish_fn with
 * WK_ORIGIN_ANY picks the first gateway that answered our last HELLOs
 * (else the first one: ZeroMQ queues it until that gateway is back).
 */
extern const wk_out_t wk_link_out;

/*
 * Runs the loop: HELLOs, receive and deliver to rt (borrowed; its outputs
 * must go to this link), run rt until it drains, passivate idle actors.
 * When stop_fd (or -1 for none) becomes readable: with drain_ms 0, returns
 * 0 at once without reading it. Otherwise it reads it and drains: DRAIN to
 * every gateway (they route no new keys here and answer DRAINING), serve
 * what arrives until every gateway has answered or drain_ms passed and the
 * runtime is idle, then BYE and return 0; stop_fd readable again during the
 * drain returns 0 at once. -1 on a ZeroMQ failure that cannot be retried.
 */
int wk_link_run(wk_link_t *link, wk_runtime_t *rt, int stop_fd);

void wk_link_stats(const wk_link_t *link, wk_link_stats_t *out);

#endif
