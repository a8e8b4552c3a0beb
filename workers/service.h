/*
 * service.h - the C API for writing a wsgate service.
 *
 * A service is a behaviour run by actors. Every (service, key) pair has at
 * most one live actor in the whole fleet (the gateways route by rendezvous
 * hashing), and an actor handles one message at a time, in arrival order,
 * with private state: no locks are needed, and no state is shared between
 * actors. An actor is created on its first message and passivated (its
 * state given to stop_fn) after an idle time, or earlier when the runtime
 * must make room under its live-actor bound; a later message re-creates it.
 *
 * Threads: one runtime runs on one thread; every function here is called
 * on it, from inside a behaviour.
 *
 * Example (workers/svc_counter.c is the whole of it):
 *
 *   static int counter_start(wk_actor_t *a, void **state) {
 *       (void)a; *state = calloc(1, sizeof(uint64_t));
 *       return *state ? 0 : -1;
 *   }
 *   static int counter_handle(wk_actor_t *a, void *state, const wk_msg_t *m) {
 *       if (m->kind != WK_MSG_REQ) return 0;
 *       uint64_t *n = state; ... encode ++*n as msgpack ...
 *       return wk_reply(a, m, buf, len);
 *   }
 *   const wk_service_t wk_svc_counter = {"counter", counter_start, counter_handle, free_state};
 */
#ifndef WSGATE_SERVICE_H
#define WSGATE_SERVICE_H

#include "../protocol/proto.h"

typedef struct wk_actor wk_actor_t;

typedef enum {
    WK_MSG_REQ,    /* a request (rid != 0: exactly one reply or error is owed) */
    WK_MSG_OPEN,   /* a connection opened (raw endpoints, conn-event services) */
    WK_MSG_CLOSED, /* a connection closed */
    /* Connections of gateway `origin` with ids below `conn` (UINT64_MAX:
     * all) are gone: the gateway restarted or left the fleet, and no
     * CLOSED will come for them. Forget any state kept about them. Only
     * actors that have started get it. */
    WK_MSG_CONNS_GONE,
} wk_msg_kind_t;

/* A message as a behaviour sees it. Borrowed: valid during handle_fn only. */
typedef struct {
    wk_msg_kind_t kind;
    uint32_t origin;     /* which gateway link it came from */
    uint64_t rid;        /* REQ: gateway's request id; 0 = no reply wanted */
    uint64_t conn;       /* the client connection, unique on its gateway */
    uint32_t flags;      /* PROTO_BK_F_RAW, PROTO_BK_F_TEXT, PROTO_BK_F_GW */
    uint32_t close_code; /* CLOSED: the websocket close code, 0 if none */
    proto_span_t data;   /* REQ: msgpack data, or raw bytes with PROTO_BK_F_RAW */
    proto_span_t user;   /* REQ: the connection's user as the gateway knows it; empty when
                            anonymous (or from a gateway that does not send it) */
} wk_msg_t;

/* Return this from handle_fn to passivate the actor right after the message. */
#define WK_STOP 1

typedef struct wk_service {
    const char *name; /* [a-z0-9_.-]{1,64} */
    /* Creates the actor's state (*state is NULL on entry). 0 or -1; on -1
     * the message that woke the actor is answered `internal`. */
    int (*start_fn)(wk_actor_t *a, void **state);
    /* Handles one message: 0, -1 (counted; an unanswered request is then
     * answered `internal`) or WK_STOP. A request with rid != 0 that the
     * behaviour neither replied to nor errored is answered `internal` by the
     * runtime, so the client always gets exactly one reply. */
    int (*handle_fn)(wk_actor_t *a, void *state, const wk_msg_t *m);
    /* Frees the state at passivation. May be NULL. */
    void (*stop_fn)(wk_actor_t *a, void *state);
    /* WK_SVC_* flags, announced to the gateways in HELLO. */
    uint32_t flags;
} wk_service_t;

/* The gateway may send a request again, to another worker, when the worker
 * holding it dies: only for services whose requests are idempotent. */
#define WK_SVC_RETRY_SAFE 0x1 /* == PROTO_BK_SVC_RETRY_SAFE */

/* The actor's key (borrowed, valid while the actor lives) and service. */
proto_span_t wk_actor_key(const wk_actor_t *a);
const wk_service_t *wk_actor_service(const wk_actor_t *a);

/* The runtime's clock in milliseconds (monotonic; what the worker last
 * gave wk_runtime_tick). Tests drive it by hand. */
uint64_t wk_actor_now(const wk_actor_t *a);

/*
 * Pins or unpins the actor. A pinned actor is never passivated for being
 * idle nor evicted to make room under the live-actor bound: use it while
 * the state is something the rest of the system relies on (a channel with
 * subscribers). WK_STOP still stops it, and so does shutdown; passivation
 * unpins. Once unpinned, the idle clock starts from that moment. Call it
 * from the actor's own behaviour. O(1).
 */
void wk_actor_pin(wk_actor_t *a, bool pinned);

/*
 * Outputs, valid inside handle_fn. Each returns 0, or -1 if the message
 * could not be queued to its gateway (counted by the runtime).
 *
 * wk_reply: answers request m with data (one msgpack value; copied).
 * wk_error: answers request m with an error code ([a-z0-9_]{1,32}, the
 *           documented ones or the service's own) and a message.
 * wk_send:  pushes payload to connections on gateway `origin`. For /ws
 *           clients payload is one msgpack value, delivered as a push
 *           envelope from this service; for raw clients it is sent
 *           verbatim, as text if flags has PROTO_BK_F_TEXT.
 * wk_close: asks gateway `origin` to close a connection.
 */
int wk_reply(wk_actor_t *a, const wk_msg_t *m, const void *data, size_t len);
int wk_error(wk_actor_t *a, const wk_msg_t *m, const char *code, const char *text);
int wk_send(wk_actor_t *a, uint32_t origin, const uint64_t *conns, size_t n, uint32_t flags,
            const void *payload, size_t len);
int wk_close(wk_actor_t *a, uint32_t origin, uint64_t conn, uint32_t code, const char *reason);

/*
 * wk_broadcast_pub: sends one PUB [1, 8, channel, kind, offset, epoch, user]
 *           to EVERY gateway the worker is linked to, whichever sent the
 *           message being handled: the channel service's fan-out, one
 *           message per gateway however many subscribers there are. kind is
 *           PROTO_BK_PUB_MSG (payload: data, one msgpack value) or
 *           PROTO_BK_PUB_JOIN / _LEAVE (data ignored, payload nil).
 *           channel: 1..PROTO_BK_CHANNEL_MAX bytes of UTF-8; epoch at most
 *           PROTO_BK_EPOCH_MAX, user at most PROTO_BK_USER_MAX bytes of
 *           UTF-8. -1 when an argument is refused (counted in bad_output)
 *           or a gateway's queue dropped it (out_dropped).
 * wk_publish: publishes data (one msgpack value) on a channel through the
 *           gateway: PUBLISH [1, 9, ref, channel] to the gateway the current
 *           message came from (outside a message: the first live one),
 *           which hands it to the channel's actor as a trusted publication.
 *           Fire and forget: the gateway's PUBLISHED answer is only counted
 *           by the link (wk_link_stats_t publish_ok / publish_err),
 *           never delivered back to the service. 0 when queued.
 */
int wk_broadcast_pub(wk_actor_t *a, proto_span_t channel, uint32_t kind, uint64_t offset,
                     proto_span_t epoch, proto_span_t user, const void *data, size_t len);
int wk_publish(wk_actor_t *a, proto_span_t channel, const void *data, size_t len);

/* Built-in services. */
extern const wk_service_t wk_svc_chan; /* channels; configured by svc_chan.h */
extern const wk_service_t wk_svc_echo;
extern const wk_service_t wk_svc_counter;
extern const wk_service_t wk_svc_auth; /* svc_auth.c; configured by svc_auth.h */
/* DEVELOPMENT ONLY: tokens for anyone (svc_devtoken.h) */
extern const wk_service_t wk_svc_devtoken;

#endif
