/*
 * gateway.h - the gateway's data path: connections, requests in flight,
 * and the glue between the websocket side (ws.c) and the backend side
 * (backend.c). See docs/architecture.md.
 *
 * Threads: everything here runs on the one loop thread (libev, which lws
 * also runs on as a foreign loop). Nothing is locked.
 */
#ifndef WSGATE_GATEWAY_H
#define WSGATE_GATEWAY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "../protocol/proto.h"
#include "../protocol/envelope.h"
#include "../protocol/backend.h"
#include "config.h"
#include "metrics.h"

/* Headroom lws_write() needs before a payload (LWS_PRE on 64-bit Linux;
 * ws.c asserts the two agree, since only ws.c may include lws). */
#define GW_PRE 16

/*
 * One outgoing frame, reference-counted: a push to many connections is
 * encoded once per client encoding and shared. lws_write() scribbles its
 * frame header into the GW_PRE bytes before the payload, which is safe to
 * share because writes are sequential and lws copies any unsent rest.
 */
typedef struct gw_msg {
    uint32_t refs;
    uint32_t len;
    uint8_t binary; /* 1: binary frame; 0: text */
    uint8_t pad[7];
    uint8_t data[]; /* GW_PRE headroom, then len payload bytes */
} gw_msg_t;

#define GW_MSG_HEAD (offsetof(gw_msg_t, data) + GW_PRE)

static inline uint8_t *
gw_msg_payload(gw_msg_t *m)
{
    return m->data + GW_PRE;
}
/* Makes a message from a proto_buf_t initialised with head GW_MSG_HEAD,
 * taking its allocation (no copy). NULL on an empty buffer. */
gw_msg_t *gw_msg_from_buf(proto_buf_t *b, bool binary);
gw_msg_t *gw_msg_copy(const void *p, size_t len, bool binary);
void gw_msg_unref(gw_msg_t **m);

typedef struct gw_sq_node {
    struct gw_sq_node *next;
    gw_msg_t *msg;
} gw_sq_node_t;

typedef enum {
    GW_CONN_JSON = 0,    /* /ws, wsgate.v1.json or no subprotocol */
    GW_CONN_MSGPACK = 1, /* /ws, wsgate.v1.msgpack */
    GW_CONN_RAW = 2,     /* a raw endpoint */
} gw_conn_kind_t;

/* Authentication state of a /ws connection. */
enum {
    GW_AUTH_ANON = 0, /* auth = none: anonymous, may still authenticate */
    GW_AUTH_NEED,     /* auth = required and not authenticated yet */
    GW_AUTH_OK,       /* authenticated: c->ident holds who */
};

/* Who an authenticated connection is, as the auth service said. */
typedef struct gw_ident {
    uint64_t exp;      /* unix seconds; 0: the token does not expire */
    uint32_t info_len; /* msgpack value after the user bytes (0: none) */
    uint16_t user_len;
    uint8_t data[]; /* user bytes, then info */
} gw_ident_t;

struct gw_sub;

/* Keep-alive list membership. */
enum { GW_KA_NONE = 0, GW_KA_ALIVE, GW_KA_PINGED };

/*
 * A client connection. It lives in lws's per-session storage and is found
 * from the backend only through the id table, never by a kept pointer.
 */
/* ws.c: which send of the current write batch is a connection's. */
typedef struct {
    uint32_t seq; /* the batch; 0 never is one */
    uint32_t slot;
} gw_wmark_t;

typedef struct gw_conn {
    uint64_t id;
    void *wsi; /* struct lws *, touched by ws.c only */
    struct gw_conn *ka_prev, *ka_next;
    gw_sq_node_t *sq_head, *sq_tail;
    uint32_t sq_msgs;
    uint32_t sq_bytes;
    uint8_t *rx_buf;     /* reassembly of fragmented messages */
    struct gw_sub *subs; /* this connection's channel subscriptions (chan.h) */
    gw_ident_t *ident;   /* owned; NULL while anonymous */
    char *close_text;    /* owned; reason a worker gave for its CLOSE */
    uint32_t rx_len, rx_cap;
    gw_wmark_t batch_mark; /* ws.c: our send in the current write batch */
    uint64_t last_rx_ms;
    uint32_t inflight;
    uint32_t sub_seq;  /* tags subscribe requests */
    uint32_t auth_gen; /* bumps at each successful auth: stale expiry timers */
    uint16_t n_subs;
    uint16_t linger_code; /* close with it once the send queue has gone out */
    uint16_t close_code;  /* non-zero: close with it at the next writeable */
    uint16_t peer_code;   /* the code in the client's close frame, if any */
    uint8_t kind;         /* gw_conn_kind_t */
    uint8_t raw_idx;      /* GW_CONN_RAW: index into cfg->raw */
    uint8_t ka;           /* GW_KA_* */
    uint8_t close_reason; /* gw_close_reason_t, for the metrics */
    uint8_t auth;         /* GW_AUTH_* */
    uint8_t want_ping : 1;
    uint8_t auth_inflight : 1; /* an auth request is at the auth service */
    uint8_t rx_binary : 1;     /* type of the message being reassembled */
    uint8_t admitted : 1;
    uint8_t opened : 1;
} gw_conn_t;

typedef struct gw gw_t;
typedef struct gw_ws gw_ws_t;

gw_t *gw_new(const gw_config_t *cfg, void *ev_loop);
/* The first connection id this process hands out (WELCOME's conn_floor). */
uint64_t gw_conn_floor(const gw_t *gw);
void gw_destroy(gw_t **self_p);
/* Runs the loop until a stop signal and the drain that follows. */
int gw_run(gw_t *gw);

/* --- called by ws.c (the lws callback) ------------------------------- */

/* Admission at the handshake (FILTER_PROTOCOL_CONNECTION): classifies the
 * path and checks the Origin (NULL: the client sent none). 0 to admit; 404
 * for an unknown path; 403 for an Origin not allowed; 503 at the
 * connection bound. */
int gw_admit(gw_t *gw, gw_conn_t *c, const char *path, const char *origin, bool msgpack);
/* The upgrade completed. token: the `token` query parameter (len 0: none),
 * which starts authentication at once. Never logged. */
void gw_conn_opened(gw_t *gw, gw_conn_t *c, proto_span_t token);
/* One received fragment. Returns 0, or a close code to close with. */
int gw_conn_receive(gw_t *gw, gw_conn_t *c, const uint8_t *p, size_t len, bool binary, bool first,
                    bool final, size_t remaining);
void gw_conn_activity(gw_t *gw, gw_conn_t *c);
void gw_conn_closed(gw_t *gw, gw_conn_t *c);
/* The close reason text to send with c->close_code (borrowed). */
const char *gw_conn_close_text(const gw_conn_t *c);
/* Pops the next queued frame (owned by the caller), or NULL. When the
 * queue is empty and a close waits for it (linger_code), sets close_code. */
gw_msg_t *gw_conn_pop(gw_conn_t *c);
gw_metrics_t *gw_metrics(gw_t *gw);
const gw_config_t *gw_config(gw_t *gw);
/* Renders /metrics into out. */
int gw_metrics_render(gw_t *gw, proto_buf_t *out);
/* Number of live workers (for /readyz-like checks and the start line). */
unsigned gw_workers_live(gw_t *gw);
/* Ready: some worker is live, and every service the configuration names
 * (raw endpoints, --conn-events) is offered by one. Otherwise returns
 * false with *missing set to a service nobody offers (NULL: no workers). */
bool gw_ready(gw_t *gw, const char **missing);
uint64_t gw_now_ms(gw_t *gw);

/* --- called by backend.c ----------------------------------------------- */

/* A decoded message from worker slot `worker` (not HELLO). */
void gw_on_backend(gw_t *gw, int worker, const proto_bk_t *hdr, proto_span_t payload);
/* The set of workers offering some service changed: channel actors may
 * have moved. Only schedules the work; safe to call from anywhere. */
void gw_on_membership(gw_t *gw);
/* Worker `worker` is gone (no HELLO in time, unreachable, or BYE): every
 * request it held is sent again (retry-safe services) or answered
 * `unavailable`. Membership no longer includes it. */
void gw_on_worker_lost(gw_t *gw, int worker);

/* --- admin HTTP publish (ws.c's admin vhost) ------------------------------ */

/* POST /publish with body {"channel": C, "data": D} (JSON), after the API
 * key was checked. Returns 0 when the publication went to the channel
 * actor: gw_ws_http_answer(session, ...) follows later. Otherwise an HTTP
 * status to answer with now, and *why a short text. */
int gw_http_publish(gw_t *gw, uint64_t session, const uint8_t *body, size_t len, const char **why);

/*
 * POST /dev/token on the public listener (only with dev-token = SERVICE):
 * body is the request's JSON, {"user": "alice"}, handed to SERVICE (key:
 * the user, flag PROTO_BK_F_GW) as is. Like gw_http_publish(): 0 when sent
 * (gw_ws_http_answer() follows with the service's reply as JSON, or its
 * error), else the HTTP status to answer now with *why.
 */
int gw_http_dev_token(gw_t *gw, uint64_t session, const uint8_t *body, size_t len,
                      const char **why);

/* --- offered by ws.c ----------------------------------------------------- */

/* Answers admin HTTP session `session` (if it is still there) with status
 * and a JSON body (copied). */
void gw_ws_http_answer(gw_ws_t *ws, uint64_t session, unsigned status, const void *body,
                       size_t len);

gw_ws_t *gw_ws(gw_t *gw);
gw_ws_t *gw_ws_new(gw_t *gw, const gw_config_t *cfg, void *ev_loop);
void gw_ws_destroy(gw_ws_t **self_p);
/* Closes the public listener: with SO_REUSEPORT the kernel then gives new
 * connections to the other processes on the port. */
void gw_ws_stop_listening(gw_ws_t *ws);
void gw_ws_request_write(void *wsi);
/*
 * Writes msg to the client now, from outside lws's writeable callback: 1
 * when lws took the frame (sent whole, or its unsent tail kept in lws's
 * own output buffer, which lws drains before anything else), 0 when it
 * cannot take it now (lws still holds an earlier tail: queue it), -1 when
 * the socket failed (close the connection). The caller keeps its
 * reference to msg; the bytes before the payload are overwritten with the
 * frame header, identical for every connection (servers do not mask).
 */
int gw_ws_write_now(gw_ws_t *ws, void *wsi, gw_msg_t *msg, gw_wmark_t *mark);
/*
 * Between these two, gw_ws_write_now() does not send: it adds the frame to
 * a batch that gw_ws_batch_end() submits as io_uring sends in one system
 * call (a send() each costs far more on a VM than the kernel's TCP work).
 * Only around code that cannot free an lws connection (the backend pump):
 * a batched frame refers to the connection's socket until the end. *mark
 * is the connection's own field that says which send of the batch is
 * its: a later frame joins that send (one sendmsg, in order), so a
 * connection gets one send per batch however many frames it is due.
 * Without io_uring (setting io-uring false, or a kernel without it) both
 * do nothing and every write is immediate.
 */
void gw_ws_batch_begin(gw_ws_t *ws);
void gw_ws_batch_end(gw_ws_t *ws);
/* Backstop for closes that wait on a writeable socket: kill after secs. */
void gw_ws_close_soon(void *wsi, int secs);

#endif
