/*
 * metrics.h - the gateway's counters, rendered as Prometheus text on the
 * admin listener. Plain integers: one loop thread writes and reads them.
 */
#ifndef WSGATE_GW_METRICS_H
#define WSGATE_GW_METRICS_H

#include <stdint.h>

#include "../protocol/envelope.h"

typedef enum {
    GW_CLOSE_NORMAL = 0,
    GW_CLOSE_TOO_LARGE,
    GW_CLOSE_BAD_UTF8,
    GW_CLOSE_SLOW_CONSUMER,
    GW_CLOSE_IDLE_TIMEOUT,
    GW_CLOSE_NO_SERVICE,
    GW_CLOSE_OVERLOADED,
    GW_CLOSE_WORKER,
    GW_CLOSE_SHUTDOWN,
    GW_CLOSE_ERROR,
    GW_CLOSE_AUTH_FAILED,   /* 4003 */
    GW_CLOSE_AUTH_TIMEOUT,  /* 4004 */
    GW_CLOSE_TOKEN_EXPIRED, /* 4005 */
    GW_CLOSE__COUNT
} gw_close_reason_t;

/* A Prometheus histogram with the fixed bounds GW_HIST_BOUNDS (seconds). */
#define GW_HIST_N 14
typedef struct {
    uint64_t le[GW_HIST_N]; /* observations <= bound i (not cumulative here) */
    uint64_t count;
    double sum;
} gw_hist_t;

void gw_hist_observe(gw_hist_t *h, double seconds);

typedef struct {
    uint64_t connections; /* gauge */
    uint64_t opened;
    uint64_t closed[GW_CLOSE__COUNT];
    uint64_t rejected_max_conns;
    uint64_t rejected_path;
    uint64_t rejected_origin;
    uint64_t auth_ok, auth_failed, auth_refreshed, auth_transient; /* auth results */
    uint64_t unauthenticated; /* messages refused before auth */
    uint64_t channels;        /* gauge: channels with a local subscriber */
    uint64_t subscriptions;   /* gauge: active local subscriptions */
    uint64_t pubs_in;         /* PUB messages from workers */
    uint64_t pubs_no_subscribers;
    uint64_t deliveries;      /* frames queued to subscribers */
    uint64_t http_publish[4]; /* ok, unauthorized, bad_request, failed */
    uint64_t dev_tokens[3];   /* POST /dev/token: ok, bad_request, failed */
    uint64_t msgs_in, bytes_in, msgs_out, bytes_out;
    uint64_t batch_sends;              /* io_uring sends of the write batches */
    uint64_t batch_coalesced;          /* frames that joined a client's send in a batch */
    uint64_t batch_partial;            /* batched sends whose rest went to lws */
    uint64_t requests;                 /* forwarded to a worker */
    uint64_t replies;                  /* worker replies delivered to a client */
    uint64_t pushes;                   /* frames pushed by workers (SEND) */
    uint64_t errors[PROTO_ERR__COUNT]; /* error replies the gateway made */
    uint64_t dropped_conn_gone;
    uint64_t dropped_unknown_request;
    uint64_t dropped_no_id;       /* replies to requests without an id */
    uint64_t dropped_unencodable; /* worker data the client's encoding cannot carry */
    uint64_t dropped_too_large;   /* pushes larger than a whole send queue */
    uint64_t backend_malformed;
    uint64_t backend_bad_version;
    uint64_t backend_send_failed;
    uint64_t workers_joined, workers_left, workers_drained;
    uint64_t retried;    /* requests of a lost worker sent to another */
    uint64_t inflight;   /* gauge */
    gw_hist_t handshake; /* TCP accept -> websocket established */
    gw_hist_t request;   /* REQ sent to a worker -> its answer received */
} gw_metrics_t;

const char *gw_close_reason_name(gw_close_reason_t r);

/* Appends the counters in Prometheus text format. 0, or -1 (no memory). */
int gw_metrics_render_counters(const gw_metrics_t *m, unsigned workers_live, proto_buf_t *out);

#endif
