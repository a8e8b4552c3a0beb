/*
 * wsc_client.h - libwsgate-client: a small C client for wsgate gateways,
 * for devices (docs/protocol.md; README.md in this folder).
 *
 * One wsc_client_t is one logical session with a gateway: it connects
 * (ws:// or wss://, subprotocol wsgate.v1.msgpack), authenticates with a
 * token from the application's callback, subscribes to channels, and
 * carries requests, publications and pushes. It reconnects by itself
 * with exponential backoff and full jitter, re-authenticates, resubscribes
 * and recovers missed publications. What the application sends waits in
 * a bounded queue while the connection is down; over the bound the oldest
 * message is dropped and counted.
 *
 * A URL whose path starts with /raw/ selects raw mode: no envelope, no
 * auth, no channels; wsc_send_raw() frames go out as they are and every
 * frame received arrives as a WSC_EV_RAW message.
 *
 * THREADING: single thread. Every function here, and every callback, runs
 * on the thread that calls wsc_service(); the client takes no locks and
 * starts no threads. Call wsc_service() from the device's main loop; the
 * callbacks run inside it. Callbacks may call wsc_request(),
 * wsc_publish(), wsc_subscribe() and friends, but not wsc_service() or
 * wsc_client_destroy().
 *
 * Data is msgpack: `data` arguments are exactly one encoded msgpack value
 * (NULL and 0 for nil) and data handed to callbacks is one value too,
 * borrowed for the duration of the callback.
 */
#ifndef WSC_CLIENT_H
#define WSC_CLIENT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct wsc_client wsc_client_t;

typedef enum {
    WSC_STATE_DISCONNECTED = 0, /* waiting to (re)connect */
    WSC_STATE_CONNECTING,       /* TCP/TLS, upgrade, auth, resubscriptions */
    WSC_STATE_CONNECTED,        /* session ready: the queue is flowing */
} wsc_state_t;

const char *wsc_state_name(wsc_state_t s);

/*
 * State changes. On WSC_STATE_DISCONNECTED, code is the websocket close
 * code the gateway sent (1001 shutdown, 4003 auth failed, ...; see
 * docs/protocol.md), 1006 when the connection ended without one (refused,
 * reset, handshake failed: reason says what), or the code this client
 * closed with (1000, reason saying why, e.g. "auth: no_service").
 * `reason` is borrowed. code and reason are 0 / "" for other states.
 */
typedef void(wsc_state_fn)(wsc_client_t *c, wsc_state_t state, int code, const char *reason,
                           void *user);

/*
 * The token for the next `auth`: called at each connection and before the
 * last token expires (refresh). Return a NUL-terminated string the client
 * copies at once, or NULL for no authentication.
 */
typedef const char *(wsc_token_fn)(wsc_client_t *c, void *user);

/* The answer to a request or publication. */
typedef struct {
    uint64_t id;         /* as returned by wsc_request/wsc_publish; 0: the gateway
                            could not parse a frame at all */
    bool ok;             /* res: data is the result; err: code and msg */
    const uint8_t *data; /* ok: one msgpack value (NULL: nil) */
    size_t len;
    const char *code; /* !ok: the gateway's or the service's code, or the client's own:
                         "disconnected" (sent, then the connection was lost before
                         the answer: it may or may not have been carried out) and
                         "dropped" (dropped from the full queue, never sent) */
    const char *msg;  /* !ok: human-readable text */
} wsc_reply_t;

typedef void(wsc_reply_fn)(wsc_client_t *c, const wsc_reply_t *r, void *user);

typedef enum {
    WSC_EV_PUSH = 1, /* a service sent to this connection: svc, data */
    WSC_EV_PUB,      /* a publication on a subscribed channel: channel, epoch,
                        offset, user ("" from the backend), data; recovered
                        publications after a reconnect arrive the same way */
    WSC_EV_JOIN,     /* presence (channel, user) */
    WSC_EV_LEAVE,
    WSC_EV_SUBSCRIBED, /* a subscription is (re)established: channel, epoch,
                          offset; recovered false after a reconnect means the
                          gap could not be filled: reload state */
    WSC_EV_SUB_FAILED, /* refused for good (forbidden, bad_channel, ...): channel,
                          code; the subscription is forgotten */
    WSC_EV_RAW,        /* raw mode: one frame, data/len, binary */
} wsc_event_kind_t;

typedef struct {
    wsc_event_kind_t kind;
    const char *svc;
    const char *channel;
    const char *epoch;
    const char *user;
    const char *code;
    uint64_t offset;
    bool recovered;
    bool binary;
    const uint8_t *data; /* msgpack value (raw mode: the frame's bytes); NULL: nil */
    size_t len;
} wsc_event_t;

typedef void(wsc_event_fn)(wsc_client_t *c, const wsc_event_t *ev, void *user);

typedef struct {
    const char *url;             /* ws[s]://host[:port][/path]; path /ws by default */
    const char *ca_file;         /* wss: PEM CA bundle to verify the gateway with (NULL:
                                    the system's) */
    bool insecure;               /* wss: accept any certificate and host name (tests only) */
    size_t queue_max;            /* messages held while offline or busy (default 256) */
    size_t max_message;          /* largest server message accepted (default 1 MiB);
                                    larger ones are discarded and counted */
    uint32_t backoff_base_ms;    /* first reconnect delay bound (default 500) */
    uint32_t backoff_max_ms;     /* largest (default 30000) */
    uint32_t connect_timeout_ms; /* TCP + TLS + upgrade (default 10000) */
    uint32_t max_inflight;       /* requests and publications sent and not yet answered
                                    (default 64, the gateway's --max-inflight); more
                                    wait in the queue */
    wsc_token_fn *token;
    wsc_state_fn *on_state;
    wsc_reply_fn *on_reply;
    wsc_event_fn *on_event;
    void *user; /* passed to every callback */
} wsc_config_t;

/*
 * A client for cfg (copied; strings too). It starts connecting on the
 * first wsc_service(). NULL when the URL is invalid, TLS is wanted but
 * unavailable, or memory runs out.
 */
wsc_client_t *wsc_client_new(const wsc_config_t *cfg);
/* Closes the connection (1000), frees everything; queued messages are
 * lost and no callback is called any more. Accepts NULL; sets *self_p to
 * NULL. */
void wsc_client_destroy(wsc_client_t **self_p);

/*
 * Does the client's work: connects when due, reads, writes, runs timers,
 * calls callbacks. Waits at most timeout_ms (0: do not wait) for network
 * activity. Returns 0, or -1 on a fatal error of the event library.
 */
int wsc_service(wsc_client_t *c, int timeout_ms);

/*
 * Queues a request to service svc, actor key `key` (NULL: the connection's
 * own actor), with data. Its answer comes to on_reply with the id stored
 * in *id (if id is not NULL). 0, or -1 when an argument is invalid (raw
 * mode, service name, key, data not one msgpack value) or out of memory.
 */
int wsc_request(wsc_client_t *c, const char *svc, const char *key, const uint8_t *data, size_t len,
                uint64_t *id);
/* Queues a publication on channel; answered like a request. */
int wsc_publish(wsc_client_t *c, const char *channel, const uint8_t *data, size_t len,
                uint64_t *id);
/* Adds a channel to the session: subscribed now if connected, and again
 * (with recovery) after every reconnect. Events arrive at on_event. 0, or
 * -1 (raw mode, bad name, already in the set, out of memory). */
int wsc_subscribe(wsc_client_t *c, const char *channel);
int wsc_unsubscribe(wsc_client_t *c, const char *channel);
/* Raw mode only: queues one frame. */
int wsc_send_raw(wsc_client_t *c, const void *p, size_t len, bool binary);

wsc_state_t wsc_state(const wsc_client_t *c);

typedef struct {
    uint64_t queued;     /* messages waiting now */
    uint64_t dropped;    /* dropped from the full queue, ever */
    uint64_t sent;       /* messages written to the socket (session ones included) */
    uint64_t received;   /* messages received */
    uint64_t inflight;   /* requests sent and not yet answered */
    uint64_t connects;   /* sessions established (WSC_STATE_CONNECTED) */
    uint64_t attempts;   /* connection attempts */
    uint64_t bad_frames; /* server messages discarded: malformed, over max_message,
                            of the wrong frame type, or answering nothing we sent */
} wsc_stats_t;

void wsc_stats(const wsc_client_t *c, wsc_stats_t *out);

#endif
