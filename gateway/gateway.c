/*
 * gateway.c - the data path between client connections and workers.
 *
 * Client frame -> gw_conn_receive() -> (reassembly only if fragmented) ->
 * envelope decode (msgpack: zero copy; JSON: data re-encoded to msgpack
 * once, into a reused scratch buffer) -> route by rendezvous hash ->
 * REQ header + data handed to ZeroMQ (its one copy) -> in-flight entry.
 * Worker REPLY -> in-flight lookup by rid -> connection lookup by id ->
 * encoded once into a gw_msg_t whose headroom lws_write() needs -> the
 * connection's bounded send queue -> lws_write() on writeable.
 */
#include "gateway.h"

#include <inttypes.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <ev.h>

#include "../protocol/mpk.h"
#include "backend.h"
#include "chan.h"
#include "heap.h"
#include "idmap.h"
#include "log.h"

#define GW_CONN_KEY_MAX 24  /* "c:" + 20 digits */
#define GW_DRAIN_MS 2000    /* how long shutdown waits, after the last close, for it to go out */
#define GW_DRAIN_TICK_MS 50 /* between two slices of the shutdown closes */
#define GW_AUTH_TICK_S 0.1  /* auth timeout and token expiry resolution */
#define GW_INFO_MAX 4096    /* bytes of `info` the auth service may attach to a connection */

/* What a request in flight is for: decides what its answer does. */
typedef enum {
    GW_REQ_CLIENT = 0, /* a client's req: the answer goes back as is */
    GW_REQ_AUTH,       /* a token at the auth service */
    GW_REQ_SUB,        /* a subscribe at the channel actor */
    GW_REQ_CHAN,       /* pub, presence, history at the channel actor */
    GW_REQ_HTTP_PUB,   /* POST /publish: conn is the HTTP session */
    GW_REQ_HTTP_DEV,   /* POST /dev/token: conn is the HTTP session */
    GW_REQ_BK_PUB,     /* a worker's PUBLISH: conn is its ref, seq its slot */
} gw_req_kind_t;

/* Heap entry kinds (heap.h) */
enum { GW_TIMER_AUTH = 1, GW_TIMER_EXPIRY = 2 };

typedef struct gw_req {
    uint64_t rid;
    uint64_t conn;
    uint64_t deadline_ms;
    double sent_at;               /* loop time it went to the worker */
    struct gw_req *prev, *next;   /* deadline order: all share one timeout */
    struct gw_req *wprev, *wnext; /* the requests its worker holds */
    int worker;                   /* slot, -1 while not held */
    uint32_t retry_hdr_len;
    uint32_t retry_len;
    uint8_t *retry; /* retry-safe service: REQ header + payload, owned */
    uint8_t kind;   /* gw_req_kind_t */
    uint32_t seq;   /* GW_REQ_SUB: the subscription's tag; GW_REQ_BK_PUB: worker slot */
    proto_id_t id;
} gw_req_t;

struct gw {
    gw_config_t cfg;
    struct ev_loop *loop;
    gw_ws_t *ws;
    gw_backend_t *backend;
    gw_metrics_t m;
    gw_idmap_t conns;
    gw_idmap_t reqs;
    gw_req_t *req_head, *req_tail;
    gw_req_t *req_free;                   /* recycled entries */
    gw_req_t *wreqs[GW_MAX_WORKERS];      /* requests each worker slot holds */
    gw_conn_t *alive_head, *alive_tail;   /* ordered by last_rx_ms */
    gw_conn_t *pinged_head, *pinged_tail; /* pinged, awaiting any frame */
    uint64_t next_conn_id;
    uint64_t conn_floor; /* the first of them */
    uint64_t next_rid;
    ev_timer ka_timer;
    ev_timer req_timer;
    ev_timer drain_timer; /* after the last close: give up waiting */
    ev_timer drain_tick;  /* closes the next slice of drain_ids */
    uint64_t *drain_ids;  /* connections to close at shutdown, in order */
    size_t drain_n, drain_pos;
    ev_signal sigint, sigterm;
    bool shutting_down;
    proto_buf_t scratch; /* envelope decode (JSON) */
    proto_buf_t hdr;     /* backend headers */
    proto_buf_t payload; /* payloads the gateway builds (auth, channel ops) */
    gw_chans_t chans;
    gw_heap_t timers; /* auth timeouts and token expiries */
    ev_timer auth_timer;
    ev_timer rehome_timer; /* membership changed: channel actors may have moved */
    proto_buf_t rehome;    /* the messages a re-homing pass sends */
};

/* --- messages ------------------------------------------------------------ */

gw_msg_t *
gw_msg_from_buf(proto_buf_t *b, bool binary)
{
    size_t len = b->len;
    gw_msg_t *m;

    if (!b->data || b->head != GW_MSG_HEAD)
        return NULL;
    m = (gw_msg_t *)proto_buf_detach(b);
    m->refs = 1;
    m->len = (uint32_t)len;
    m->binary = binary;
    return m;
}

gw_msg_t *
gw_msg_copy(const void *p, size_t len, bool binary)
{
    gw_msg_t *m = malloc(GW_MSG_HEAD + len + 1);

    if (!m)
        return NULL;
    m->refs = 1;
    m->len = (uint32_t)len;
    m->binary = binary;
    if (len)
        memcpy(gw_msg_payload(m), p, len);
    return m;
}

void
gw_msg_unref(gw_msg_t **mp)
{
    gw_msg_t *m = *mp;

    *mp = NULL;
    if (m && --m->refs == 0)
        free(m);
}

/* --- small helpers ------------------------------------------------------- */

uint64_t
gw_now_ms(gw_t *gw)
{
    return (uint64_t)(ev_now(gw->loop) * 1000.0);
}

gw_ws_t *
gw_ws(gw_t *gw)
{
    return gw->ws;
}

gw_metrics_t *
gw_metrics(gw_t *gw)
{
    return &gw->m;
}

const gw_config_t *
gw_config(gw_t *gw)
{
    return &gw->cfg;
}

unsigned
gw_workers_live(gw_t *gw)
{
    return gw->backend ? gw_backend_live(gw->backend) : 0;
}

bool
gw_ready(gw_t *gw, const char **missing)
{
    int i;

    *missing = NULL;
    if (!gw_workers_live(gw))
        return false;
    for (i = 0; i < gw->cfg.n_raw + gw->cfg.n_conn_events; i++) {
        const char *svc =
            i < gw->cfg.n_raw ? gw->cfg.raw[i].service : gw->cfg.conn_events[i - gw->cfg.n_raw];

        if (!gw_backend_offers(gw->backend, proto_span(svc, strlen(svc)))) {
            *missing = svc;
            return false;
        }
    }
    return true;
}

static proto_span_t
s_conn_key(const gw_conn_t *c, char buf[GW_CONN_KEY_MAX])
{
    int n = snprintf(buf, GW_CONN_KEY_MAX, "c:%" PRIu64, c->id);

    return proto_span(buf, (size_t)n);
}

static proto_enc_t
s_enc(const gw_conn_t *c)
{
    return c->kind == GW_CONN_MSGPACK ? PROTO_ENC_MSGPACK : PROTO_ENC_JSON;
}

/* --- keep-alive lists ----------------------------------------------------- */

static void
s_ka_unlink(gw_t *gw, gw_conn_t *c)
{
    gw_conn_t **head, **tail;

    if (c->ka == GW_KA_NONE)
        return;
    head = c->ka == GW_KA_ALIVE ? &gw->alive_head : &gw->pinged_head;
    tail = c->ka == GW_KA_ALIVE ? &gw->alive_tail : &gw->pinged_tail;
    if (c->ka_prev)
        c->ka_prev->ka_next = c->ka_next;
    else
        *head = c->ka_next;
    if (c->ka_next)
        c->ka_next->ka_prev = c->ka_prev;
    else
        *tail = c->ka_prev;
    c->ka_prev = c->ka_next = NULL;
    c->ka = GW_KA_NONE;
}

static void
s_ka_append(gw_t *gw, gw_conn_t *c, int which)
{
    gw_conn_t **head = which == GW_KA_ALIVE ? &gw->alive_head : &gw->pinged_head;
    gw_conn_t **tail = which == GW_KA_ALIVE ? &gw->alive_tail : &gw->pinged_tail;

    c->ka_prev = *tail;
    c->ka_next = NULL;
    if (*tail)
        (*tail)->ka_next = c;
    else
        *head = c;
    *tail = c;
    c->ka = (uint8_t)which;
}

/* One-shot at the earliest deadline, and off when there is none: a loop
 * woken by nothing but traffic is what the missed-wakeup test checks. */
static void
s_auth_timer_arm(gw_t *gw)
{
    const gw_heap_item_t *t = gw_heap_top(&gw->timers);
    double after;

    if (ev_is_active(&gw->auth_timer))
        ev_timer_stop(gw->loop, &gw->auth_timer);
    if (!t)
        return;
    after = ((double)t->due_ms - ev_now(gw->loop) * 1000.0) / 1000.0;
    /* not sooner than GW_AUTH_TICK_S: a storm of opens arms it once */
    ev_timer_set(&gw->auth_timer, after > GW_AUTH_TICK_S ? after : GW_AUTH_TICK_S, 0);
    ev_timer_start(gw->loop, &gw->auth_timer);
}

/* Pushes a deadline and re-arms the timer when it is the earliest. */
static int
s_timer_push(gw_t *gw, gw_heap_item_t t)
{
    if (gw_heap_push(&gw->timers, t))
        return -1;
    if (gw_heap_top(&gw->timers)->due_ms == t.due_ms && gw_heap_top(&gw->timers)->id == t.id)
        s_auth_timer_arm(gw);
    else if (!ev_is_active(&gw->auth_timer))
        s_auth_timer_arm(gw);
    return 0;
}

/* --- send queue ------------------------------------------------------------ */

static void
s_sq_clear(gw_conn_t *c)
{
    gw_sq_node_t *n;

    while ((n = c->sq_head)) {
        c->sq_head = n->next;
        gw_msg_unref(&n->msg);
        free(n);
    }
    c->sq_tail = NULL;
    c->sq_msgs = 0;
    c->sq_bytes = 0;
}

static void
s_close(gw_t *gw, gw_conn_t *c, uint16_t code, gw_close_reason_t reason)
{
    if (c->close_code)
        return;
    c->close_code = code;
    c->close_reason = (uint8_t)reason;
    s_sq_clear(c);
    s_ka_unlink(gw, c);
    gw_ws_request_write(c->wsi);
    /* A client that does not read never makes the socket writeable, so
     * the close frame may never go out: lws kills it after this. */
    gw_ws_close_soon(c->wsi, 2);
}

/* Closes c once what is queued has gone out (an error reply before an
 * auth close): the client learns why. Messages from it are ignored
 * meanwhile; the keep-alive backstop still applies. */
static void
s_close_after_flush(gw_t *gw, gw_conn_t *c, uint16_t code, gw_close_reason_t reason)
{
    if (c->close_code || c->linger_code)
        return;
    if (!c->sq_head) {
        s_close(gw, c, code, reason);
        return;
    }
    c->linger_code = code;
    c->close_reason = (uint8_t)reason;
    gw_ws_request_write(c->wsi);
    gw_ws_close_soon(c->wsi, 5);
}

/* Takes the caller's reference to msg. */
static void
s_enqueue(gw_t *gw, gw_conn_t *c, gw_msg_t *msg)
{
    gw_sq_node_t *n;

    if (c->close_code) {
        gw_msg_unref(&msg);
        return;
    }
    if (c->sq_msgs + 1 > gw->cfg.sendq_msgs || c->sq_bytes + msg->len > gw->cfg.sendq_bytes) {
        gw_msg_unref(&msg);
        gw_log_limited(GW_LOG_INFO, "conn %" PRIu64 ": send queue full, closing", c->id);
        s_close(gw, c, 4001, GW_CLOSE_SLOW_CONSUMER);
        return;
    }
    /*
     * Nothing queued: write it now. Queuing would cost a malloc, arming
     * EPOLLOUT, a wake-up, the writeable callback and disarming EPOLLOUT
     * again, for a socket whose send buffer is almost always empty.
     * Measured on a 10k-subscriber fan-out: epoll_ctl was 15% of the
     * gateway's CPU. lws keeps a partial write's tail itself and drains
     * it first; then gw_ws_write_now() says 0 and the queue takes over.
     */
    if (!c->sq_head && c->wsi && !c->linger_code) {
        int w = gw_ws_write_now(gw->ws, c->wsi, msg, &c->batch_mark);

        if (w != 0) {
            if (w > 0) {
                gw->m.msgs_out++;
                gw->m.bytes_out += msg->len;
            }
            gw_msg_unref(&msg);
            if (w < 0)
                s_close(gw, c, 1011, GW_CLOSE_ERROR);
            return;
        }
    }
    n = malloc(sizeof(*n));
    if (!n) {
        gw_msg_unref(&msg);
        s_close(gw, c, 1011, GW_CLOSE_ERROR);
        return;
    }
    n->msg = msg;
    n->next = NULL;
    if (c->sq_tail)
        c->sq_tail->next = n;
    else
        c->sq_head = n;
    c->sq_tail = n;
    c->sq_msgs++;
    c->sq_bytes += msg->len;
    if (c->sq_msgs == 1)
        gw_ws_request_write(c->wsi);
}

const char *
gw_conn_close_text(const gw_conn_t *c)
{
    return c->close_text ? c->close_text : gw_close_reason_name(c->close_reason);
}

gw_msg_t *
gw_conn_pop(gw_conn_t *c)
{
    gw_sq_node_t *n = c->sq_head;
    gw_msg_t *m;

    if (!n) {
        if (c->linger_code && !c->close_code)
            c->close_code = c->linger_code;
        return NULL;
    }
    c->sq_head = n->next;
    if (!c->sq_head)
        c->sq_tail = NULL;
    m = n->msg;
    c->sq_msgs--;
    c->sq_bytes -= m->len;
    free(n);
    return m;
}

/* --- replies the gateway makes itself --------------------------------------- */

/* An error with a worker's code and text (already validated by the
 * backend decoder). Counted under no gateway code. */
static void
s_send_err_span(gw_t *gw, gw_conn_t *c, const proto_id_t *id, proto_span_t code, proto_span_t text)
{
    proto_buf_t b;
    gw_msg_t *m;

    if (c->kind == GW_CONN_RAW)
        return; /* no envelope to answer in */
    proto_buf_init(&b, GW_MSG_HEAD);
    if (proto_envelope_encode_err(s_enc(c), id, code, text, &b) == PROTO_OK &&
        (m = gw_msg_from_buf(&b, c->kind == GW_CONN_MSGPACK)))
        s_enqueue(gw, c, m);
    proto_buf_fini(&b);
}

static void
s_send_err(gw_t *gw, gw_conn_t *c, const proto_id_t *id, proto_err_t code, const char *text)
{
    const char *name = proto_err_name(code);

    gw->m.errors[code]++;
    s_send_err_span(gw, c, id, proto_span(name, strlen(name)), proto_span(text, strlen(text)));
}

/* An error about a valid request: answered only if it has an id. */
static void
s_req_err(gw_t *gw, gw_conn_t *c, const proto_id_t *id, proto_err_t code, const char *text)
{
    if (id->kind == PROTO_ID_NONE) {
        gw->m.errors[code]++;
        return;
    }
    s_send_err(gw, c, id, code, text);
}

/* --- requests in flight ------------------------------------------------------ */

static void
s_req_unlink(gw_t *gw, gw_req_t *r)
{
    if (r->prev)
        r->prev->next = r->next;
    else
        gw->req_head = r->next;
    if (r->next)
        r->next->prev = r->prev;
    else
        gw->req_tail = r->prev;
    r->prev = r->next = NULL;
}

static void
s_req_wlink(gw_t *gw, gw_req_t *r, int worker)
{
    r->worker = worker;
    r->wprev = NULL;
    r->wnext = gw->wreqs[worker];
    if (r->wnext)
        r->wnext->wprev = r;
    gw->wreqs[worker] = r;
}

static void
s_req_wunlink(gw_t *gw, gw_req_t *r)
{
    if (r->worker < 0)
        return;
    if (r->wprev)
        r->wprev->wnext = r->wnext;
    else
        gw->wreqs[r->worker] = r->wnext;
    if (r->wnext)
        r->wnext->wprev = r->wprev;
    r->wprev = r->wnext = NULL;
    r->worker = -1;
}

/* r must be out of the id map and the deadline list already. */
static void
s_req_free(gw_t *gw, gw_req_t *r)
{
    s_req_wunlink(gw, r);
    free(r->retry);
    r->retry = NULL;
    r->next = gw->req_free;
    gw->req_free = r;
    gw->m.inflight--;
}

static void
s_req_timer_arm(gw_t *gw)
{
    double after;

    if (!gw->cfg.request_timeout_ms || !gw->req_head || ev_is_active(&gw->req_timer))
        return;
    after = ((double)gw->req_head->deadline_ms - ev_now(gw->loop) * 1000.0) / 1000.0;
    ev_timer_set(&gw->req_timer, after > 0 ? after : 0, 0);
    ev_timer_start(gw->loop, &gw->req_timer);
}

static void s_req_fail(gw_t *gw, gw_req_t *r, proto_err_t code, const char *text);

static void
s_req_timer_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
    gw_t *gw = w->data;
    uint64_t now = gw_now_ms(gw);
    gw_req_t *r;

    (void)loop;
    (void)revents;
    while ((r = gw->req_head) && r->deadline_ms <= now) {
        s_req_unlink(gw, r);
        gw_idmap_del(&gw->reqs, r->rid);
        s_req_fail(gw, r, PROTO_ERR_TIMEOUT, "the worker did not answer in time");
        s_req_free(gw, r);
    }
    s_req_timer_arm(gw);
}

/* --- identities and subscriptions ------------------------------------------ */

static proto_span_t
s_user(const gw_conn_t *c)
{
    return c->ident ? proto_span(c->ident->data, c->ident->user_len) : proto_span(NULL, 0);
}

/* The auth service's info for c as one msgpack value (nil when none). */
static proto_span_t
s_info(const gw_conn_t *c)
{
    static const uint8_t nil = 0xc0;

    if (!c->ident || !c->ident->info_len)
        return proto_span(&nil, 1);
    return proto_span(c->ident->data + c->ident->user_len, c->ident->info_len);
}

static proto_span_t
s_svc_span(const char *name)
{
    return proto_span(name, strlen(name));
}

static bool
s_span_is(proto_span_t s, const char *lit)
{
    size_t n = strlen(lit);

    return s.len == n && memcmp(s.ptr, lit, n) == 0;
}

/* Tells the channel actor that c's subscription to ch ended (unsubscribe,
 * close, a failed subscribe): a REQ with rid 0, no answer wanted. */
static void
s_send_leave(gw_t *gw, const gw_conn_t *c, const gw_chan_t *ch)
{
    proto_span_t svc = s_svc_span(gw->cfg.channel_service);
    proto_span_t name = proto_span(ch->name, ch->len);

    proto_buf_reset(&gw->hdr);
    proto_buf_reset(&gw->payload);
    if (proto_bk_encode_req(&gw->hdr, 0, c->id, svc, name, PROTO_BK_F_GW, s_user(c)) ||
        mpk_write_map(&gw->payload, 2) || mpk_write_cstr(&gw->payload, "op") ||
        mpk_write_cstr(&gw->payload, "leave") || mpk_write_cstr(&gw->payload, "channel") ||
        mpk_write_str(&gw->payload, ch->name, ch->len))
        return;
    gw_backend_send_routed(gw->backend, svc, name, &gw->hdr,
                           proto_span(proto_buf_payload(&gw->payload), gw->payload.len), NULL,
                           NULL);
}

static void
s_sub_drop(gw_t *gw, gw_conn_t *c, gw_sub_t *sub, bool tell)
{
    if (tell)
        s_send_leave(gw, c, sub->chan);
    gw_sub_remove(&gw->chans, &c->subs, sub);
    c->n_subs--;
    gw->m.channels = gw->chans.n_chans;
    gw->m.subscriptions = gw->chans.n_active;
}

/* --- requests to workers ------------------------------------------------------ */

/*
 * Sends one REQ (header in gw->hdr is built here) and tracks it. 0 when
 * sent and tracked (*out is the entry); otherwise the proto_err_t to
 * answer with, nothing tracked.
 */
static int
s_req_send(gw_t *gw, gw_req_kind_t kind, uint64_t conn, const proto_id_t *id, proto_span_t svc,
           proto_span_t key, uint32_t flags, proto_span_t user, proto_span_t payload,
           gw_req_t **out)
{
    bool retry_safe = false;
    gw_req_t *r;
    int w = -1, sent;

    proto_buf_reset(&gw->hdr);
    if (proto_bk_encode_req(&gw->hdr, gw->next_rid, conn, svc, key, flags, user))
        return PROTO_ERR_INTERNAL;
    /* Allocated before it is sent, so nothing sent is ever untracked. */
    if (gw->req_free) {
        r = gw->req_free;
        gw->req_free = r->next;
    } else if (!(r = malloc(sizeof(*r)))) {
        return PROTO_ERR_INTERNAL;
    }
    memset(r, 0, sizeof(*r));
    r->worker = -1;
    r->rid = gw->next_rid;
    r->conn = conn;
    r->kind = (uint8_t)kind;
    if (id)
        r->id = *id;
    gw->m.inflight++; /* s_req_free() takes it back on every path */
    sent = gw_backend_send_routed(gw->backend, svc, key, &gw->hdr, payload, &w, &retry_safe);
    if (sent == 0 && gw_idmap_put(&gw->reqs, r->rid, r))
        sent = -3;
    if (sent != 0) {
        s_req_free(gw, r);
        /* -3: it went out but cannot be tracked; its reply will count as
         * unknown. Say so now rather than never. */
        return sent == -1   ? PROTO_ERR_OVERLOADED
               : sent == -3 ? PROTO_ERR_INTERNAL
                            : PROTO_ERR_NO_SERVICE;
    }
    gw->next_rid++;
    gw->m.requests++;
    s_req_wlink(gw, r, w);
    if (proto_log_on(GW_LOG_DEBUG))
        proto_log_req(GW_LOG_DEBUG, gw->cfg.id, r->rid, "sent: conn %" PRIu64 " svc %.*s worker %s",
                      conn, (int)svc.len, (const char *)svc.ptr,
                      gw_backend_worker_id(gw->backend, w));
    if (retry_safe) {
        /* Kept so it can go to another worker if this one dies. */
        r->retry = malloc(gw->hdr.len + payload.len + 1);
        if (r->retry) {
            memcpy(r->retry, proto_buf_payload(&gw->hdr), gw->hdr.len);
            if (payload.len)
                memcpy(r->retry + gw->hdr.len, payload.ptr, payload.len);
            r->retry_hdr_len = (uint32_t)gw->hdr.len;
            r->retry_len = (uint32_t)(gw->hdr.len + payload.len);
        }
    }
    r->deadline_ms = gw_now_ms(gw) + gw->cfg.request_timeout_ms;
    r->sent_at = ev_now(gw->loop);
    r->prev = gw->req_tail;
    r->next = NULL;
    if (gw->req_tail)
        gw->req_tail->next = r;
    else
        gw->req_head = r;
    gw->req_tail = r;
    s_req_timer_arm(gw);
    *out = r;
    return 0;
}

static const char *
s_req_err_text(int code)
{
    switch (code) {
    case PROTO_ERR_OVERLOADED:
        return "the worker's queue is full";
    case PROTO_ERR_NO_SERVICE:
        return "no worker offers this service";
    default:
        return "out of memory";
    }
}

static void s_http_answer_err(gw_t *gw, uint64_t session, unsigned status, const char *code,
                              const char *text);
static void s_on_http_dev(gw_t *gw, gw_req_t *r, const proto_bk_t *hdr, proto_span_t payload);
static void s_bk_published(gw_t *gw, int slot, uint64_t ref, proto_span_t code, proto_span_t msg,
                           uint64_t offset, proto_span_t epoch);

/*
 * A request the gateway itself must answer (deadline, worker lost): the
 * client's error, and what its kind leaves behind undone.
 */
static void
s_req_fail(gw_t *gw, gw_req_t *r, proto_err_t code, const char *text)
{
    gw_conn_t *c;
    gw_sub_t *sub;
    const char *name = proto_err_name(code);

    gw_log_limited(GW_LOG_INFO, "request %s:%" PRIu64 " settled by the gateway: %s", gw->cfg.id,
                   r->rid, name);

    switch (r->kind) {
    case GW_REQ_HTTP_PUB:
    case GW_REQ_HTTP_DEV:
        if (r->kind == GW_REQ_HTTP_PUB)
            gw->m.http_publish[3]++;
        else
            gw->m.dev_tokens[2]++;
        s_http_answer_err(gw, r->conn, code == PROTO_ERR_TIMEOUT ? 504 : 503, name, text);
        return;
    case GW_REQ_BK_PUB:
        s_bk_published(gw, (int)r->seq, r->conn, s_svc_span(name), s_svc_span(text), 0,
                       proto_span(NULL, 0));
        return;
    default:
        break;
    }
    c = gw_idmap_get(&gw->conns, r->conn);
    if (!c)
        return;
    c->inflight--;
    if (r->kind == GW_REQ_AUTH) {
        c->auth_inflight = 0;
        gw->m.auth_transient++;
    }
    /* The channel actor may or may not have taken the subscription: tell
     * it to forget, so its presence does not keep a ghost. */
    if (r->kind == GW_REQ_SUB && (sub = gw_sub_find_seq(c->subs, r->seq)) && !sub->active)
        s_sub_drop(gw, c, sub, true);
    if (r->kind == GW_REQ_AUTH && r->id.kind == PROTO_ID_NONE)
        s_send_err(gw, c, &r->id, code, text); /* query-token auth: still say why */
    else
        s_req_err(gw, c, &r->id, code, text);
}

/* --- client messages ------------------------------------------------------------ */

static int
s_raw_message(gw_t *gw, gw_conn_t *c, const uint8_t *p, size_t len, bool binary)
{
    const char *svc = gw->cfg.raw[c->raw_idx].service;
    proto_span_t svc_s = proto_span(svc, strlen(svc));
    char keybuf[GW_CONN_KEY_MAX];
    proto_span_t key = s_conn_key(c, keybuf);
    int rc;

    proto_buf_reset(&gw->hdr);
    if (proto_bk_encode_req(&gw->hdr, 0, c->id, svc_s, key,
                            PROTO_BK_F_RAW | (binary ? 0 : PROTO_BK_F_TEXT), proto_span(NULL, 0)))
        goto overloaded;
    rc = gw_backend_send_routed(gw->backend, svc_s, key, &gw->hdr, proto_span(p, len), NULL, NULL);
    if (rc == 0) {
        gw->m.requests++;
        return 0;
    }
    if (rc == -1)
        goto overloaded;
    /* There is no request id to answer on a raw endpoint: closing with
     * "try again later" is the only signal a device can act on. */
    gw->m.errors[PROTO_ERR_NO_SERVICE]++;
    c->close_reason = GW_CLOSE_NO_SERVICE;
    return 1013;
overloaded:
    gw->m.errors[PROTO_ERR_OVERLOADED]++;
    c->close_reason = GW_CLOSE_OVERLOADED;
    return 1013;
}

/* Sends a token to the auth service. id NONE: from the query string. */
static void
s_auth_start(gw_t *gw, gw_conn_t *c, const proto_id_t *id, proto_span_t token)
{
    proto_span_t svc = s_svc_span(gw->cfg.auth_service);
    char keybuf[GW_CONN_KEY_MAX];
    gw_req_t *r;
    int err;

    if (c->auth_inflight) {
        s_send_err(gw, c, id, PROTO_ERR_BAD_REQUEST, "authentication already in progress");
        return;
    }
    proto_buf_reset(&gw->payload);
    if (mpk_write_map(&gw->payload, 1) || mpk_write_cstr(&gw->payload, "token") ||
        mpk_write_str(&gw->payload, token.ptr, token.len)) {
        s_send_err(gw, c, id, PROTO_ERR_INTERNAL, "out of memory");
        return;
    }
    /* A per-connection key spreads the verifications over the workers. */
    err = s_req_send(gw, GW_REQ_AUTH, c->id, id, svc, s_conn_key(c, keybuf), PROTO_BK_F_GW,
                     proto_span(NULL, 0),
                     proto_span(proto_buf_payload(&gw->payload), gw->payload.len), &r);
    if (err) {
        gw->m.auth_transient++;
        s_send_err(gw, c, id, (proto_err_t)err, s_req_err_text(err));
        return;
    }
    c->auth_inflight = 1;
    c->inflight++;
}

/* The map a channel op carries to the channel actor: op, channel, user,
 * info, then the op's own fields. */
static int
s_chan_payload(gw_t *gw, const gw_conn_t *c, const proto_envelope_t *env, const char *op)
{
    proto_buf_t *b = &gw->payload;
    bool recover = env->op == PROTO_OP_SUB && env->epoch.len;
    uint32_t n = 4;
    proto_span_t info = s_info(c);

    if (env->op == PROTO_OP_SUB)
        n += 2 + (recover ? 2 : 0); /* presence, data, [epoch, offset] */
    else if (env->op == PROTO_OP_PUB)
        n += 1;
    else if (env->op == PROTO_OP_HISTORY)
        n += 1;
    proto_buf_reset(b);
    if (mpk_write_map(b, n) || mpk_write_cstr(b, "op") || mpk_write_cstr(b, op) ||
        mpk_write_cstr(b, "channel") || mpk_write_str(b, env->channel.ptr, env->channel.len) ||
        mpk_write_cstr(b, "user") || mpk_write_str(b, s_user(c).ptr, s_user(c).len) ||
        mpk_write_cstr(b, "info") || mpk_write_raw(b, info.ptr, info.len))
        return -1;
    if (env->op == PROTO_OP_SUB) {
        if (mpk_write_cstr(b, "presence") || mpk_write_bool(b, env->presence) ||
            mpk_write_cstr(b, "data") || mpk_write_raw(b, env->data.ptr, env->data.len))
            return -1;
        if (recover &&
            (mpk_write_cstr(b, "epoch") || mpk_write_str(b, env->epoch.ptr, env->epoch.len) ||
             mpk_write_cstr(b, "offset") || mpk_write_uint(b, env->offset)))
            return -1;
    } else if (env->op == PROTO_OP_PUB) {
        if (mpk_write_cstr(b, "data") || mpk_write_raw(b, env->data.ptr, env->data.len))
            return -1;
    } else if (env->op == PROTO_OP_HISTORY) {
        if (mpk_write_cstr(b, "limit") || mpk_write_uint(b, env->limit))
            return -1;
    }
    return 0;
}

/* A result envelope with data (one msgpack value; empty: null), queued
 * to c. Sent even without an id (the query-token auth answer). */
static void
s_send_res(gw_t *gw, gw_conn_t *c, const proto_id_t *id, proto_span_t data)
{
    proto_buf_t b;
    gw_msg_t *m;

    proto_buf_init(&b, GW_MSG_HEAD);
    if (proto_envelope_encode_res(s_enc(c), id, data, &b) == PROTO_OK &&
        (m = gw_msg_from_buf(&b, c->kind == GW_CONN_MSGPACK)))
        s_enqueue(gw, c, m);
    proto_buf_fini(&b);
}

static void
s_chan_op(gw_t *gw, gw_conn_t *c, const proto_envelope_t *env)
{
    static const char *const ops[] = {[PROTO_OP_SUB] = "sub",
                                      [PROTO_OP_PUB] = "pub",
                                      [PROTO_OP_PRESENCE] = "presence",
                                      [PROTO_OP_HISTORY] = "history"};
    proto_span_t svc = s_svc_span(gw->cfg.channel_service);
    gw_sub_t *sub = NULL;
    gw_req_t *r;
    int err;

    if (!proto_channel_valid(env->channel, gw->cfg.max_channel_len)) {
        s_req_err(gw, c, &env->id, PROTO_ERR_BAD_CHANNEL,
                  "channel names are 1..max-channel-len bytes of [A-Za-z0-9_.:@/=+-]");
        return;
    }
    if (env->op == PROTO_OP_UNSUB) {
        sub = gw_sub_find(c->subs, env->channel);
        if (!sub) {
            s_req_err(gw, c, &env->id, PROTO_ERR_NOT_SUBSCRIBED, "not subscribed");
            return;
        }
        s_sub_drop(gw, c, sub, true);
        if (env->id.kind != PROTO_ID_NONE)
            s_send_res(gw, c, &env->id, proto_span(NULL, 0));
        return;
    }
    if (c->inflight >= gw->cfg.max_inflight) {
        s_req_err(gw, c, &env->id, PROTO_ERR_OVERLOADED, "too many requests in flight");
        return;
    }
    if (env->op == PROTO_OP_SUB && (sub = gw_sub_find(c->subs, env->channel))) {
        /* Subscribed already: only a recovery makes sense (the client saw
         * the epoch change under it, e.g. the actor moved to another
         * worker). The actor answers it; the subscription stays as is. */
        if (!env->epoch.len || !sub->active) {
            s_req_err(gw, c, &env->id, PROTO_ERR_ALREADY_SUBSCRIBED, "already subscribed");
            return;
        }
        sub = NULL;
        if (s_chan_payload(gw, c, env, "sub")) {
            err = PROTO_ERR_INTERNAL;
            goto fail;
        }
        err =
            s_req_send(gw, GW_REQ_CHAN, c->id, &env->id, svc, env->channel, PROTO_BK_F_GW,
                       s_user(c), proto_span(proto_buf_payload(&gw->payload), gw->payload.len), &r);
        if (err)
            goto fail;
        c->inflight++;
        return;
    }
    if (env->op == PROTO_OP_SUB) {
        if (c->n_subs >= gw->cfg.max_subs) {
            s_req_err(gw, c, &env->id, PROTO_ERR_TOO_MANY_SUBS,
                      "over the subscriptions per connection (max-subs)");
            return;
        }
        sub = gw_sub_add(&gw->chans, c, &c->subs, env->channel, env->presence, ++c->sub_seq);
        if (!sub) {
            s_req_err(gw, c, &env->id, PROTO_ERR_INTERNAL, "out of memory");
            return;
        }
        c->n_subs++;
        gw->m.channels = gw->chans.n_chans;
    }
    if (s_chan_payload(gw, c, env, ops[env->op])) {
        err = PROTO_ERR_INTERNAL;
        goto fail;
    }
    err = s_req_send(gw, env->op == PROTO_OP_SUB ? GW_REQ_SUB : GW_REQ_CHAN, c->id, &env->id, svc,
                     env->channel, PROTO_BK_F_GW, s_user(c),
                     proto_span(proto_buf_payload(&gw->payload), gw->payload.len), &r);
    if (err)
        goto fail;
    if (sub) {
        r->seq = sub->seq;
        /* The first subscription tells us where the channel's actor is;
         * after that only a re-homing pass moves it (s_rehome_cb). */
        if (!sub->chan->owner_seed) {
            sub->chan->owner_seed = gw_backend_seed(gw->backend, r->worker);
            sub->chan->owner_slot = r->worker;
        }
    }
    c->inflight++;
    return;
fail:
    if (sub)
        s_sub_drop(gw, c, sub, false);
    s_req_err(gw, c, &env->id, (proto_err_t)err, s_req_err_text(err));
}

static void
s_ws_message(gw_t *gw, gw_conn_t *c, const uint8_t *p, size_t len, bool binary)
{
    proto_envelope_t env;
    const char *err = NULL;
    char keybuf[GW_CONN_KEY_MAX];
    proto_span_t key;
    proto_rc_t rc;
    gw_req_t *r;
    int e;

    memset(&env, 0, sizeof(env));
    if (binary != (c->kind == GW_CONN_MSGPACK)) {
        s_send_err(gw, c, &env.id, PROTO_ERR_BAD_REQUEST,
                   binary ? "binary frame on the JSON subprotocol"
                          : "text frame on the msgpack subprotocol");
        return;
    }
    rc = proto_envelope_decode(s_enc(c), p, len, &gw->scratch, &env, &err);
    if (rc != PROTO_OK) {
        s_send_err(gw, c, &env.id, PROTO_ERR_BAD_REQUEST, err ? err : "malformed envelope");
        return;
    }
    if (env.op == PROTO_OP_AUTH) {
        /* answered even without an id: a client must learn why it failed */
        s_auth_start(gw, c, &env.id, env.token);
        return;
    }
    if (c->auth == GW_AUTH_NEED) {
        gw->m.unauthenticated++;
        s_req_err(gw, c, &env.id, PROTO_ERR_UNAUTHENTICATED,
                  c->auth_inflight ? "authentication in progress: wait for its answer"
                                   : "authenticate first: {\"op\":\"auth\",\"token\":...}");
        return;
    }
    /* From here on the envelope is valid: a request without an id is
     * fire-and-forget, and its errors are counted, not answered. */
    if (env.op != PROTO_OP_REQ) {
        s_chan_op(gw, c, &env);
        return;
    }
    /* The gateway's own services take only the gateway's requests. */
    if (s_span_is(env.svc, gw->cfg.auth_service) || s_span_is(env.svc, gw->cfg.channel_service)) {
        s_req_err(gw, c, &env.id, PROTO_ERR_FORBIDDEN, "this service takes no client requests");
        return;
    }
    /* "c:<conn>" names a connection's private actor: a client naming one
     * itself could reach another connection's. */
    if (env.key.len >= 2 && env.key.ptr[0] == 'c' && env.key.ptr[1] == ':') {
        s_req_err(gw, c, &env.id, PROTO_ERR_BAD_REQUEST,
                  "keys starting with c: are reserved for per-connection actors");
        return;
    }
    if (c->inflight >= gw->cfg.max_inflight) {
        s_req_err(gw, c, &env.id, PROTO_ERR_OVERLOADED, "too many requests in flight");
        return;
    }
    key = env.key.len ? env.key : s_conn_key(c, keybuf);
    e = s_req_send(gw, GW_REQ_CLIENT, c->id, &env.id, env.svc, key, 0, s_user(c), env.data, &r);
    if (e) {
        s_req_err(gw, c, &env.id, (proto_err_t)e, s_req_err_text(e));
        return;
    }
    c->inflight++;
}

/* Sends a retry-safe request again, to whoever owns its key now. */
static int
s_req_resend(gw_t *gw, gw_req_t *r)
{
    proto_buf_t hdr = {r->retry, 0, r->retry_hdr_len, r->retry_hdr_len};
    proto_span_t payload = proto_span(r->retry + r->retry_hdr_len, r->retry_len - r->retry_hdr_len);
    const char *err;
    proto_bk_t h;
    int w;

    if (proto_bk_decode(r->retry, r->retry_hdr_len, &h, &err) != PROTO_OK ||
        gw_backend_send_routed(gw->backend, h.svc, h.key, &hdr, payload, &w, NULL) != 0)
        return -1;
    s_req_wlink(gw, r, w);
    return 0;
}

void
gw_on_worker_lost(gw_t *gw, int worker)
{
    gw_req_t *r;

    while ((r = gw->wreqs[worker])) {
        s_req_wunlink(gw, r);
        if (r->retry && s_req_resend(gw, r) == 0) {
            gw->m.retried++;
            continue;
        }
        s_req_unlink(gw, r);
        gw_idmap_del(&gw->reqs, r->rid);
        s_req_fail(gw, r, PROTO_ERR_UNAVAILABLE, "the worker holding the request is gone");
        s_req_free(gw, r);
    }
}

/* One whole message. Returns 0 or a close code. */
static int
s_message(gw_t *gw, gw_conn_t *c, const uint8_t *p, size_t len, bool binary)
{
    gw->m.msgs_in++;
    if (!binary && !proto_utf8_valid(p, len)) {
        c->close_reason = GW_CLOSE_BAD_UTF8;
        return 1007;
    }
    if (c->kind == GW_CONN_RAW)
        return s_raw_message(gw, c, p, len, binary);
    s_ws_message(gw, c, p, len, binary);
    return 0;
}

int
gw_conn_receive(gw_t *gw, gw_conn_t *c, const uint8_t *p, size_t len, bool binary, bool first,
                bool final, size_t remaining)
{
    uint8_t *nb;
    size_t need;
    int rc;

    gw->m.bytes_in += len;
    gw_conn_activity(gw, c);
    if (c->close_code || c->linger_code)
        return 0; /* closing: what it sends no longer matters */
    if (first && final)
        return s_message(gw, c, p, len, binary);
    if (first) {
        c->rx_len = 0;
        c->rx_binary = binary;
    }
    need = (size_t)c->rx_len + len;
    if (need + remaining > gw->cfg.max_message) {
        c->close_reason = GW_CLOSE_TOO_LARGE;
        return 1009;
    }
    if (need > c->rx_cap) {
        size_t cap = c->rx_cap ? c->rx_cap : 1024;

        while (cap < need + remaining)
            cap *= 2;
        if (cap > gw->cfg.max_message)
            cap = gw->cfg.max_message;
        nb = realloc(c->rx_buf, cap);
        if (!nb) {
            c->close_reason = GW_CLOSE_ERROR;
            return 1011;
        }
        c->rx_buf = nb;
        c->rx_cap = (uint32_t)cap;
    }
    memcpy(c->rx_buf + c->rx_len, p, len);
    c->rx_len = (uint32_t)need;
    if (!final)
        return 0;
    rc = s_message(gw, c, c->rx_buf, c->rx_len, c->rx_binary);
    /* Idle connections should not pin a reassembly buffer. */
    free(c->rx_buf);
    c->rx_buf = NULL;
    c->rx_len = c->rx_cap = 0;
    return rc;
}

void
gw_conn_activity(gw_t *gw, gw_conn_t *c)
{
    c->last_rx_ms = gw_now_ms(gw);
    if (c->ka == GW_KA_NONE)
        return; /* keep-alive off, or closing */
    s_ka_unlink(gw, c);
    s_ka_append(gw, c, GW_KA_ALIVE);
}

/* --- connection lifecycle -------------------------------------------------------- */

int
gw_admit(gw_t *gw, gw_conn_t *c, const char *path, const char *origin, bool msgpack)
{
    int i;

    memset(c, 0, sizeof(*c));
    /* Cross-site websocket hijacking: a browser always sends Origin, and
     * the page's origin is what decides whether it may talk to us. */
    if (origin ? !gw_config_origin_ok(&gw->cfg, origin) : !gw->cfg.allow_no_origin) {
        gw->m.rejected_origin++;
        return 403;
    }
    if (!strcmp(path, "/ws")) {
        c->kind = msgpack ? GW_CONN_MSGPACK : GW_CONN_JSON;
    } else {
        for (i = 0; i < gw->cfg.n_raw; i++)
            if (!strcmp(path, gw->cfg.raw[i].path))
                break;
        if (i == gw->cfg.n_raw) {
            gw->m.rejected_path++;
            return 404;
        }
        c->kind = GW_CONN_RAW;
        c->raw_idx = (uint8_t)i;
    }
    if (gw->shutting_down || gw->m.connections >= gw->cfg.max_conns) {
        gw->m.rejected_max_conns++;
        return 503;
    }
    c->admitted = 1;
    /* Counted now, not at ESTABLISHED, so a storm of handshakes in
     * progress cannot overshoot the bound. */
    gw->m.connections++;
    return 0;
}

static void
s_conn_event(gw_t *gw, gw_conn_t *c, bool open, uint16_t code)
{
    char keybuf[GW_CONN_KEY_MAX];
    proto_span_t key = s_conn_key(c, keybuf);
    bool raw = c->kind == GW_CONN_RAW;
    /* A raw connection's events go to its endpoint's service; a /ws
     * connection's to every --conn-events service. */
    int i, n = raw ? 1 : gw->cfg.n_conn_events;

    for (i = 0; i < n; i++) {
        const char *svc = raw ? gw->cfg.raw[c->raw_idx].service : gw->cfg.conn_events[i];
        proto_span_t s = proto_span(svc, strlen(svc));

        proto_buf_reset(&gw->hdr);
        if (open ? proto_bk_encode_open(&gw->hdr, c->id, s, key, raw ? PROTO_BK_F_RAW : 0)
                 : proto_bk_encode_closed(&gw->hdr, c->id, s, key, code))
            continue;
        gw_backend_send_routed(gw->backend, s, key, &gw->hdr, proto_span(NULL, 0), NULL, NULL);
    }
}

void
gw_conn_opened(gw_t *gw, gw_conn_t *c, proto_span_t token)
{
    c->id = gw->next_conn_id++;
    if (gw_idmap_put(&gw->conns, c->id, c)) {
        c->id = 0;
        s_close(gw, c, 1011, GW_CLOSE_ERROR);
        return;
    }
    c->opened = 1;
    gw->m.opened++;
    c->last_rx_ms = gw_now_ms(gw);
    if (gw->cfg.ping_ms)
        s_ka_append(gw, c, GW_KA_ALIVE);
    if (c->kind != GW_CONN_RAW && gw->cfg.auth_required) {
        gw_heap_item_t t = {gw_now_ms(gw) + gw->cfg.auth_timeout_ms, c->id, GW_TIMER_AUTH, 0};

        c->auth = GW_AUTH_NEED;
        if (s_timer_push(gw, t)) {
            s_close(gw, c, 1011, GW_CLOSE_ERROR);
            return;
        }
    }
    s_conn_event(gw, c, true, 0);
    if (token.len && c->kind != GW_CONN_RAW) {
        proto_id_t none;

        memset(&none, 0, sizeof(none));
        s_auth_start(gw, c, &none, token);
    }
}

void
gw_conn_closed(gw_t *gw, gw_conn_t *c)
{
    if (!c->admitted)
        return;
    c->admitted = 0;
    gw->m.connections--;
    gw->m.closed[c->close_reason]++;
    s_ka_unlink(gw, c);
    s_sq_clear(c);
    free(c->rx_buf);
    c->rx_buf = NULL;
    free(c->close_text);
    c->close_text = NULL;
    if (!c->opened)
        return;
    /* Every subscription, pending ones too, ends at the channel actor:
     * that is how presence learns of an abrupt disconnect. */
    while (c->subs)
        s_sub_drop(gw, c, c->subs, true);
    free(c->ident);
    c->ident = NULL;
    gw_idmap_del(&gw->conns, c->id);
    /* Requests still in flight stay tracked: their replies are counted as
     * for a connection that is gone, their timeouts drop silently. */
    /* 1006: closed without a close frame either way (RFC 6455 7.1.5). */
    s_conn_event(gw, c, false,
                 c->close_code ? c->close_code : (c->peer_code ? c->peer_code : 1006));
    if (gw->shutting_down && gw->m.connections == 0)
        ev_break(gw->loop, EVBREAK_ALL);
}

/* --- worker messages ------------------------------------------------------------------ */

/* --- channel actors that moved ------------------------------------------------ */

void
gw_on_membership(gw_t *gw)
{
    if (!gw->chans.n_chans || ev_is_active(&gw->rehome_timer))
        return;
    ev_timer_set(&gw->rehome_timer, 0, 0);
    ev_timer_start(gw->loop, &gw->rehome_timer);
}

/* Appends one message for worker slot `slot` to gw->rehome:
 * [slot u32][hdr len u32][payload len u32][hdr][payload]. */
static int
s_rehome_add(gw_t *gw, int slot, const proto_buf_t *hdr, const proto_buf_t *payload)
{
    uint32_t head[3] = {(uint32_t)slot, (uint32_t)hdr->len, (uint32_t)payload->len};

    return proto_buf_append(&gw->rehome, head, sizeof(head)) ||
           proto_buf_append(&gw->rehome, proto_buf_payload(hdr), hdr->len) ||
           proto_buf_append(&gw->rehome, proto_buf_payload(payload), payload->len);
}

/* Plans what one channel needs when its actor is no longer where we told
 * it about our subscribers: the old actor (if its worker still lives)
 * drops every subscriber of this gateway, the new one takes them all,
 * without join events. No send happens here: a send can lose a worker,
 * which frees subscriptions while we walk them. */
static void
s_rehome_chan(gw_t *gw, gw_chan_t *ch)
{
    proto_span_t svc = s_svc_span(gw->cfg.channel_service);
    proto_span_t name = proto_span(ch->name, ch->len);
    int w = gw_backend_route(gw->backend, svc, name, NULL);
    uint64_t seed = gw_backend_seed(gw->backend, w);
    proto_buf_t *p = &gw->payload;
    gw_sub_t *sub;

    if (seed == ch->owner_seed)
        return;
    if (ch->owner_seed && gw_backend_seed(gw->backend, ch->owner_slot) == ch->owner_seed) {
        proto_buf_reset(&gw->hdr);
        proto_buf_reset(p);
        if (!proto_bk_encode_req(&gw->hdr, 0, 0, svc, name, PROTO_BK_F_GW, proto_span(NULL, 0)) &&
            !mpk_write_map(p, 2) && !mpk_write_cstr(p, "op") && !mpk_write_cstr(p, "drop") &&
            !mpk_write_cstr(p, "channel") && !mpk_write_str(p, ch->name, ch->len))
            s_rehome_add(gw, ch->owner_slot, &gw->hdr, p);
    }
    ch->owner_seed = seed;
    ch->owner_slot = w;
    if (!seed || !ch->n_active)
        return;
    proto_buf_reset(&gw->hdr);
    proto_buf_reset(p);
    if (proto_bk_encode_req(&gw->hdr, 0, 0, svc, name, PROTO_BK_F_GW, proto_span(NULL, 0)) ||
        mpk_write_map(p, 3) || mpk_write_cstr(p, "op") || mpk_write_cstr(p, "rejoin") ||
        mpk_write_cstr(p, "channel") || mpk_write_str(p, ch->name, ch->len) ||
        mpk_write_cstr(p, "subs") || mpk_write_array(p, ch->n_active))
        return;
    for (sub = ch->head; sub; sub = sub->next) {
        proto_span_t user = s_user(sub->conn);

        if (mpk_write_array(p, 3) || mpk_write_uint(p, sub->conn->id) ||
            mpk_write_str(p, user.ptr, user.len) || mpk_write_bool(p, sub->presence))
            return;
    }
    s_rehome_add(gw, w, &gw->hdr, p);
}

static void
s_rehome_cb(struct ev_loop *loop, ev_timer *t, int revents)
{
    gw_t *gw = t->data;
    const uint8_t *p, *end;
    size_t i;

    (void)loop;
    (void)revents;
    proto_buf_reset(&gw->rehome);
    for (i = 0; gw->chans.map.slots && i <= gw->chans.map.mask; i++) {
        gw_chan_t *ch = gw->chans.map.slots[i].id ? gw->chans.map.slots[i].ptr : NULL;

        for (; ch; ch = ch->hnext)
            s_rehome_chan(gw, ch);
    }
    p = proto_buf_payload(&gw->rehome);
    end = p ? p + gw->rehome.len : p;
    while (p && p < end) {
        uint32_t head[3];
        proto_buf_t hdr;

        memcpy(head, p, sizeof(head));
        p += sizeof(head);
        hdr = (proto_buf_t){(uint8_t *)p, 0, head[1], head[1]};
        gw_backend_send(gw->backend, (int)head[0], &hdr, proto_span(p + head[1], head[2]));
        p += head[1] + head[2];
    }
    proto_buf_reset(&gw->rehome);
}

/* --- publishing without a client: admin HTTP and a worker's PUBLISH ------- */

/* The trusted pub map for the channel actor: no user, no info. */
static int
s_trusted_pub_payload(gw_t *gw, proto_span_t channel, proto_span_t data)
{
    proto_buf_t *b = &gw->payload;

    proto_buf_reset(b);
    return mpk_write_map(b, 6) || mpk_write_cstr(b, "op") || mpk_write_cstr(b, "pub") ||
           mpk_write_cstr(b, "channel") || mpk_write_str(b, channel.ptr, channel.len) ||
           mpk_write_cstr(b, "user") || mpk_write_str(b, "", 0) || mpk_write_cstr(b, "info") ||
           mpk_write_nil(b) || mpk_write_cstr(b, "data") || mpk_write_raw(b, data.ptr, data.len) ||
           mpk_write_cstr(b, "trusted") || mpk_write_bool(b, true);
}

static void
s_http_answer_err(gw_t *gw, uint64_t session, unsigned status, const char *code, const char *text)
{
    proto_buf_t m, j;

    proto_buf_init(&m, 0);
    proto_buf_init(&j, 0);
    if (!mpk_write_map(&m, 2) && !mpk_write_cstr(&m, "code") && !mpk_write_cstr(&m, code) &&
        !mpk_write_cstr(&m, "msg") && !mpk_write_cstr(&m, text) &&
        proto_mpk_to_json(proto_span(proto_buf_payload(&m), m.len), &j) == PROTO_OK)
        gw_ws_http_answer(gw->ws, session, status, proto_buf_payload(&j), j.len);
    else
        gw_ws_http_answer(gw->ws, session, 500, NULL, 0);
    proto_buf_fini(&m);
    proto_buf_fini(&j);
}

int
gw_http_publish(gw_t *gw, uint64_t session, const uint8_t *body, size_t len, const char **why)
{
    proto_buf_t m;
    mpk_reader_t r;
    proto_span_t channel = proto_span(NULL, 0), data = proto_span(NULL, 0), k, v;
    uint32_t n, i;
    gw_req_t *req;
    int err, status = 400;

    /* no quotes: ws.c puts it in a JSON string as is */
    *why = "expected a JSON object with a channel and data";
    proto_buf_init(&m, 0);
    if (proto_json_to_mpk(body, len, &m) != PROTO_OK)
        goto out;
    mpk_reader_init(&r, proto_buf_payload(&m), m.len);
    if (mpk_read_map(&r, &n) != PROTO_OK)
        goto out;
    for (i = 0; i < n; i++) {
        if (mpk_read_str(&r, &k) != PROTO_OK || mpk_skip(&r, MPK_MAX_DEPTH, &v) != PROTO_OK)
            goto out;
        if (s_span_is(k, "channel")) {
            mpk_reader_t vr;

            mpk_reader_init(&vr, v.ptr, v.len);
            if (mpk_read_str(&vr, &channel) != PROTO_OK)
                goto out;
        } else if (s_span_is(k, "data")) {
            data = v;
        }
    }
    if (!data.len)
        goto out;
    if (!proto_channel_valid(channel, gw->cfg.max_channel_len)) {
        *why = "bad channel name";
        goto out;
    }
    status = 500;
    *why = "out of memory";
    if (s_trusted_pub_payload(gw, channel, data))
        goto out;
    err = s_req_send(gw, GW_REQ_HTTP_PUB, session, NULL, s_svc_span(gw->cfg.channel_service),
                     channel, PROTO_BK_F_GW, proto_span(NULL, 0),
                     proto_span(proto_buf_payload(&gw->payload), gw->payload.len), &req);
    if (err) {
        status = 503;
        *why = s_req_err_text(err);
        goto out;
    }
    status = 0;
out:
    proto_buf_fini(&m);
    if (status == 400)
        gw->m.http_publish[2]++;
    else if (status)
        gw->m.http_publish[3]++;
    return status;
}

/*
 * Relays a service's answer to the HTTP request that asked (POST /publish,
 * POST /dev/token): its reply as JSON with 200, or its error as JSON with
 * 403 (forbidden), 400 (bad_request) or 502. Returns the status sent.
 */
static unsigned
s_http_relay(gw_t *gw, uint64_t session, const proto_bk_t *hdr, proto_span_t payload)
{
    proto_buf_t j;
    unsigned status = 200;

    if (hdr->type == PROTO_BK_ERROR) {
        char code[PROTO_CODE_MAX + 1], text[PROTO_BK_TEXT_MAX + 1];

        snprintf(code, sizeof(code), "%.*s", (int)hdr->code.len, (const char *)hdr->code.ptr);
        snprintf(text, sizeof(text), "%.*s", (int)hdr->text.len, (const char *)hdr->text.ptr);
        status = s_span_is(hdr->code, "forbidden")     ? 403
                 : s_span_is(hdr->code, "bad_request") ? 400
                                                       : 502;
        s_http_answer_err(gw, session, status, code, text);
        return status;
    }
    proto_buf_init(&j, 0);
    if (proto_mpk_to_json(payload, &j) == PROTO_OK) {
        gw_ws_http_answer(gw->ws, session, 200, proto_buf_payload(&j), j.len);
    } else {
        status = 502;
        s_http_answer_err(gw, session, 502, "internal", "the service's answer is not JSON");
    }
    proto_buf_fini(&j);
    return status;
}

static void
s_on_http_pub(gw_t *gw, gw_req_t *r, const proto_bk_t *hdr, proto_span_t payload)
{
    gw->m.http_publish[s_http_relay(gw, r->conn, hdr, payload) == 200 ? 0 : 3]++;
}

/* --- the development token issuer: POST /dev/token ------------------------ */

int
gw_http_dev_token(gw_t *gw, uint64_t session, const uint8_t *body, size_t len, const char **why)
{
    mpk_reader_t r;
    proto_span_t k, user = proto_span(NULL, 0);
    uint32_t n, i;
    gw_req_t *req;
    int err, status = 400;

    *why = "expected a JSON object with a user";
    proto_buf_reset(&gw->payload);
    if (proto_json_to_mpk(body, len, &gw->payload) != PROTO_OK)
        goto out;
    mpk_reader_init(&r, proto_buf_payload(&gw->payload), gw->payload.len);
    if (mpk_read_map(&r, &n) != PROTO_OK)
        goto out;
    for (i = 0; i < n; i++) {
        if (mpk_read_str(&r, &k) != PROTO_OK)
            goto out;
        if (s_span_is(k, "user")) {
            if (mpk_read_str(&r, &user) != PROTO_OK)
                goto out;
        } else if (mpk_skip(&r, MPK_MAX_DEPTH, NULL) != PROTO_OK) {
            goto out;
        }
    }
    /* The user is the actor key: the service checks the rest. */
    if (!user.len || user.len > PROTO_KEY_MAX || (user.len >= 2 && !memcmp(user.ptr, "c:", 2)))
        goto out;
    err = s_req_send(gw, GW_REQ_HTTP_DEV, session, NULL, s_svc_span(gw->cfg.dev_token_service),
                     user, PROTO_BK_F_GW, proto_span(NULL, 0),
                     proto_span(proto_buf_payload(&gw->payload), gw->payload.len), &req);
    if (err) {
        status = 503;
        *why = s_req_err_text(err);
        goto out;
    }
    status = 0;
out:
    if (status)
        gw->m.dev_tokens[status == 400 ? 1 : 2]++;
    return status;
}

static void
s_on_http_dev(gw_t *gw, gw_req_t *r, const proto_bk_t *hdr, proto_span_t payload)
{
    unsigned status = s_http_relay(gw, r->conn, hdr, payload);

    gw->m.dev_tokens[status == 200 ? 0 : status == 400 ? 1 : 2]++;
}

static void
s_bk_published(gw_t *gw, int slot, uint64_t ref, proto_span_t code, proto_span_t msg,
               uint64_t offset, proto_span_t epoch)
{
    proto_buf_reset(&gw->hdr);
    if (proto_bk_encode_published(&gw->hdr, ref, code, msg, offset, epoch) == 0)
        gw_backend_send(gw->backend, slot, &gw->hdr, proto_span(NULL, 0));
}

/* A worker's PUBLISH: a trusted publication through the channel actor,
 * answered with PUBLISHED on the worker's link. */
static void
s_on_publish(gw_t *gw, int slot, const proto_bk_t *hdr, proto_span_t payload)
{
    gw_req_t *r;
    int err;

    if (!proto_channel_valid(hdr->channel, gw->cfg.max_channel_len) ||
        mpk_validate(payload.ptr, payload.len, MPK_MAX_DEPTH) != PROTO_OK) {
        s_bk_published(gw, slot, hdr->rid, s_svc_span("bad_channel"),
                       s_svc_span("bad channel name or data"), 0, proto_span(NULL, 0));
        return;
    }
    if (s_trusted_pub_payload(gw, hdr->channel, payload)) {
        err = PROTO_ERR_INTERNAL;
    } else {
        err = s_req_send(gw, GW_REQ_BK_PUB, hdr->rid, NULL, s_svc_span(gw->cfg.channel_service),
                         hdr->channel, PROTO_BK_F_GW, proto_span(NULL, 0),
                         proto_span(proto_buf_payload(&gw->payload), gw->payload.len), &r);
        if (!err)
            r->seq = (uint32_t)slot;
    }
    if (err)
        s_bk_published(gw, slot, hdr->rid, s_svc_span(proto_err_name((proto_err_t)err)),
                       s_svc_span(s_req_err_text(err)), 0, proto_span(NULL, 0));
}

/* The channel actor's answer to a backend publish: {"offset": N, "epoch": E}. */
static void
s_on_bk_pub(gw_t *gw, gw_req_t *r, const proto_bk_t *hdr, proto_span_t payload)
{
    mpk_reader_t rd;
    proto_span_t k, epoch = proto_span(NULL, 0);
    uint64_t offset = 0;
    uint32_t n, i;

    if (hdr->type == PROTO_BK_ERROR) {
        s_bk_published(gw, (int)r->seq, r->conn, hdr->code, hdr->text, 0, proto_span(NULL, 0));
        return;
    }
    mpk_reader_init(&rd, payload.ptr, payload.len);
    if (mpk_read_map(&rd, &n) == PROTO_OK) {
        for (i = 0; i < n; i++) {
            if (mpk_read_str(&rd, &k) != PROTO_OK)
                break;
            if (s_span_is(k, "offset")) {
                if (mpk_read_uint(&rd, &offset) != PROTO_OK)
                    break;
            } else if (s_span_is(k, "epoch")) {
                if (mpk_read_str(&rd, &epoch) != PROTO_OK || epoch.len > PROTO_BK_EPOCH_MAX)
                    break;
            } else if (mpk_skip(&rd, MPK_MAX_DEPTH, NULL) != PROTO_OK) {
                break;
            }
        }
    }
    s_bk_published(gw, (int)r->seq, r->conn, proto_span(NULL, 0), proto_span(NULL, 0), offset,
                   epoch);
}

/* --- channel fan-out ------------------------------------------------------------ */

/* A PUB from a channel actor: one frame per client encoding, shared by
 * every local subscriber (join/leave only to those who asked). */
static void
s_on_pub(gw_t *gw, const proto_bk_t *hdr, proto_span_t payload)
{
    gw_chan_t *ch = gw_chans_get(&gw->chans, hdr->channel);
    gw_msg_t *enc[2] = {NULL, NULL};
    bool failed[2] = {false, false};
    gw_sub_t *sub;

    gw->m.pubs_in++;
    if (!ch || !ch->head) {
        gw->m.pubs_no_subscribers++;
        return;
    }
    for (sub = ch->head; sub; sub = sub->next) {
        gw_conn_t *c = sub->conn;
        unsigned k = c->kind == GW_CONN_MSGPACK;

        if (hdr->kind != PROTO_BK_PUB_MSG && !sub->presence)
            continue;
        if (!enc[k] && !failed[k]) {
            proto_buf_t b;
            proto_rc_t rc;

            proto_buf_init(&b, GW_MSG_HEAD);
            if (hdr->kind == PROTO_BK_PUB_MSG)
                rc = proto_envelope_encode_msg(s_enc(c), hdr->channel, hdr->epoch, hdr->offset,
                                               hdr->user, payload, &b);
            else
                rc = proto_envelope_encode_presence(s_enc(c), hdr->kind == PROTO_BK_PUB_JOIN,
                                                    hdr->channel, hdr->user, &b);
            if (rc == PROTO_OK)
                enc[k] = gw_msg_from_buf(&b, k);
            proto_buf_fini(&b);
            failed[k] = !enc[k];
            if (failed[k])
                gw->m.dropped_unencodable++;
        }
        if (!enc[k])
            continue;
        if (enc[k]->len > gw->cfg.sendq_bytes) {
            gw->m.dropped_too_large++;
            continue;
        }
        enc[k]->refs++;
        gw->m.deliveries++;
        s_enqueue(gw, c, enc[k]);
    }
    gw_msg_unref(&enc[0]);
    gw_msg_unref(&enc[1]);
}

/* Encodes a worker's REPLY or ERROR for client c as a res/err to id and
 * queues it. false when it could not be carried (an `internal` error was
 * sent instead). */
static bool
s_answer(gw_t *gw, gw_conn_t *c, const proto_id_t *id, const proto_bk_t *hdr, proto_span_t payload)
{
    proto_buf_t b;
    proto_rc_t rc;
    gw_msg_t *m;

    proto_buf_init(&b, GW_MSG_HEAD);
    if (hdr->type == PROTO_BK_REPLY)
        rc = proto_envelope_encode_res(s_enc(c), id, payload, &b);
    else
        rc = proto_envelope_encode_err(s_enc(c), id, hdr->code, hdr->text, &b);
    if (rc != PROTO_OK) {
        proto_buf_fini(&b);
        gw->m.dropped_unencodable++;
        s_send_err(gw, c, id, PROTO_ERR_INTERNAL,
                   "the worker's reply cannot be carried in this encoding");
        return false;
    }
    m = gw_msg_from_buf(&b, c->kind == GW_CONN_MSGPACK);
    proto_buf_fini(&b);
    if (m && m->len > gw->cfg.sendq_bytes) {
        /* It could never fit the send queue: closing the client as a slow
         * consumer would blame it for the worker's reply. */
        gw_msg_unref(&m);
        s_send_err(gw, c, id, PROTO_ERR_TOO_LARGE, "the reply is larger than --sendq-bytes");
        return false;
    }
    if (m) {
        gw->m.replies++;
        s_enqueue(gw, c, m);
    }
    return m != NULL;
}

/* The auth service's answer: {"user": str, "exp": uint, "info": any}. */
static int
s_parse_ident(proto_span_t p, proto_span_t *user, uint64_t *exp, proto_span_t *info)
{
    mpk_reader_t r;
    mpk_item_t it;
    uint32_t n, i;

    *user = *info = proto_span(NULL, 0);
    *exp = 0;
    mpk_reader_init(&r, p.ptr, p.len);
    if (mpk_read_map(&r, &n) != PROTO_OK)
        return -1;
    for (i = 0; i < n; i++) {
        proto_span_t k, v;

        if (mpk_read_str(&r, &k) != PROTO_OK)
            return -1;
        if (s_span_is(k, "user")) {
            if (mpk_read_str(&r, user) != PROTO_OK)
                return -1;
        } else if (s_span_is(k, "exp")) {
            if (mpk_read_uint(&r, exp) != PROTO_OK)
                return -1;
        } else if (s_span_is(k, "info")) {
            if (mpk_skip(&r, MPK_MAX_DEPTH, info) != PROTO_OK)
                return -1;
        } else if (mpk_skip(&r, MPK_MAX_DEPTH, &v) != PROTO_OK) {
            return -1;
        }
    }
    (void)it;
    if (user->len < 1 || user->len > PROTO_BK_USER_MAX || !proto_utf8_valid(user->ptr, user->len) ||
        info->len > GW_INFO_MAX || *exp > (uint64_t)INT64_MAX / 1000)
        return -1;
    return 0;
}

static bool
s_auth_transient(proto_span_t code)
{
    return s_span_is(code, "overloaded") || s_span_is(code, "internal") ||
           s_span_is(code, "unavailable") || s_span_is(code, "timeout");
}

static void
s_on_auth(gw_t *gw, gw_conn_t *c, gw_req_t *r, const proto_bk_t *hdr, proto_span_t payload)
{
    proto_span_t user, info;
    uint64_t exp;
    gw_ident_t *id;
    proto_buf_t b;

    c->auth_inflight = 0;
    if (hdr->type == PROTO_BK_ERROR) {
        s_send_err_span(gw, c, &r->id, hdr->code, hdr->text);
        if (s_auth_transient(hdr->code)) {
            gw->m.auth_transient++;
            return;
        }
        gw->m.auth_failed++;
        /* A failed refresh leaves the connection as it was: its token
         * still runs to its expiry. A failed first auth ends it. */
        if (c->auth != GW_AUTH_OK && gw->cfg.auth_required)
            s_close_after_flush(gw, c, 4003, GW_CLOSE_AUTH_FAILED);
        return;
    }
    if (s_parse_ident(payload, &user, &exp, &info) != 0) {
        gw->m.auth_transient++;
        gw_log_limited(GW_LOG_WARN, "auth service: malformed answer dropped");
        s_send_err(gw, c, &r->id, PROTO_ERR_INTERNAL, "the auth service's answer is malformed");
        return;
    }
    if (c->ident &&
        (c->ident->user_len != user.len || memcmp(c->ident->data, user.ptr, user.len))) {
        gw->m.auth_failed++;
        s_send_err_span(gw, c, &r->id, s_svc_span("user_changed"),
                        s_svc_span("a refresh must keep the connection's user"));
        return;
    }
    id = malloc(sizeof(*id) + user.len + info.len);
    if (!id) {
        s_send_err(gw, c, &r->id, PROTO_ERR_INTERNAL, "out of memory");
        return;
    }
    id->exp = exp;
    id->user_len = (uint16_t)user.len;
    id->info_len = (uint32_t)info.len;
    memcpy(id->data, user.ptr, user.len);
    if (info.len)
        memcpy(id->data + user.len, info.ptr, info.len);
    if (c->ident)
        gw->m.auth_refreshed++;
    else
        gw->m.auth_ok++;
    free(c->ident);
    c->ident = id;
    c->auth = GW_AUTH_OK;
    c->auth_gen++;
    if (exp) {
        gw_heap_item_t t = {exp * 1000 + gw->cfg.auth_grace_ms, c->id, GW_TIMER_EXPIRY,
                            c->auth_gen};

        if (s_timer_push(gw, t)) {
            s_close(gw, c, 1011, GW_CLOSE_ERROR);
            return;
        }
    }
    /* {"user": U, "exp": E}: info stays between the gateway and workers */
    proto_buf_init(&b, 0);
    if (!mpk_write_map(&b, 2) && !mpk_write_cstr(&b, "user") &&
        !mpk_write_str(&b, user.ptr, user.len) && !mpk_write_cstr(&b, "exp") &&
        !mpk_write_uint(&b, exp)) {
        gw->m.replies++;
        s_send_res(gw, c, &r->id, proto_span(proto_buf_payload(&b), b.len));
    }
    proto_buf_fini(&b);
}

static void
s_on_reply(gw_t *gw, const proto_bk_t *hdr, proto_span_t payload)
{
    gw_req_t *r = gw_idmap_del(&gw->reqs, hdr->rid);
    gw_conn_t *c;
    gw_sub_t *sub;

    if (!r) {
        gw->m.dropped_unknown_request++;
        return;
    }
    s_req_unlink(gw, r);
    gw_hist_observe(&gw->m.request, ev_now(gw->loop) - r->sent_at);
    if (proto_log_on(GW_LOG_DEBUG))
        proto_log_req(GW_LOG_DEBUG, gw->cfg.id, r->rid, "answered: %.*s in %.3f ms",
                      hdr->type == PROTO_BK_REPLY ? 2 : (int)hdr->code.len,
                      hdr->type == PROTO_BK_REPLY ? "ok" : (const char *)hdr->code.ptr,
                      (ev_now(gw->loop) - r->sent_at) * 1000.0);
    switch (r->kind) {
    case GW_REQ_HTTP_PUB:
        s_on_http_pub(gw, r, hdr, payload);
        goto out;
    case GW_REQ_HTTP_DEV:
        s_on_http_dev(gw, r, hdr, payload);
        goto out;
    case GW_REQ_BK_PUB:
        s_on_bk_pub(gw, r, hdr, payload);
        goto out;
    default:
        break;
    }
    c = gw_idmap_get(&gw->conns, r->conn);
    if (!c) {
        gw->m.dropped_conn_gone++;
        goto out;
    }
    c->inflight--;
    if (r->kind == GW_REQ_AUTH) {
        s_on_auth(gw, c, r, hdr, payload);
        goto out;
    }
    if (r->kind == GW_REQ_SUB && (sub = gw_sub_find_seq(c->subs, r->seq))) {
        /* Active before the reply is queued: every publication the actor
         * sends after its answer reaches this client, after the answer. */
        if (hdr->type == PROTO_BK_REPLY) {
            gw_sub_activate(&gw->chans, sub);
            gw->m.subscriptions = gw->chans.n_active;
        } else {
            s_sub_drop(gw, c, sub, false);
        }
    }
    if (r->id.kind == PROTO_ID_NONE) {
        gw->m.dropped_no_id++;
        goto out;
    }
    s_answer(gw, c, &r->id, hdr, payload);
out:
    s_req_free(gw, r);
}

static void
s_on_send(gw_t *gw, const proto_bk_t *hdr, proto_span_t payload)
{
    gw_msg_t *enc[3] = {NULL, NULL, NULL}; /* by gw_conn_kind_t */
    bool failed[3] = {false, false, false};
    size_t pos = 0;
    uint64_t id;

    while (proto_bk_next_uint(hdr, &pos, &id)) {
        gw_conn_t *c = gw_idmap_get(&gw->conns, id);
        unsigned k;

        if (!c) {
            gw->m.dropped_conn_gone++;
            continue;
        }
        k = c->kind;
        if (!enc[k] && !failed[k]) {
            /* Encoded once per client encoding, shared by every target. */
            if (k == GW_CONN_RAW) {
                bool text = hdr->flags & PROTO_BK_F_TEXT;

                if (text && !proto_utf8_valid(payload.ptr, payload.len))
                    failed[k] = true;
                else
                    enc[k] = gw_msg_copy(payload.ptr, payload.len, !text);
            } else {
                proto_buf_t b;

                proto_buf_init(&b, GW_MSG_HEAD);
                if (proto_envelope_encode_push(s_enc(c), hdr->svc, payload, &b) == PROTO_OK)
                    enc[k] = gw_msg_from_buf(&b, k == GW_CONN_MSGPACK);
                proto_buf_fini(&b);
                failed[k] = !enc[k];
            }
        }
        if (!enc[k]) {
            gw->m.dropped_unencodable++;
            continue;
        }
        if (enc[k]->len > gw->cfg.sendq_bytes) {
            gw->m.dropped_too_large++;
            continue;
        }
        enc[k]->refs++;
        gw->m.pushes++;
        s_enqueue(gw, c, enc[k]);
    }
    for (pos = 0; pos < 3; pos++)
        gw_msg_unref(&enc[pos]);
}

void
gw_on_backend(gw_t *gw, int worker, const proto_bk_t *hdr, proto_span_t payload)
{
    gw_conn_t *c;

    switch (hdr->type) {
    case PROTO_BK_REPLY:
    case PROTO_BK_ERROR:
        s_on_reply(gw, hdr, payload);
        break;
    case PROTO_BK_SEND:
        s_on_send(gw, hdr, payload);
        break;
    case PROTO_BK_PUB:
        s_on_pub(gw, hdr, payload);
        break;
    case PROTO_BK_PUBLISH:
        s_on_publish(gw, worker, hdr, payload);
        break;
    case PROTO_BK_CLOSE:
        c = gw_idmap_get(&gw->conns, hdr->conn);
        if (!c) {
            gw->m.dropped_conn_gone++;
            break;
        }
        /* A close reason fits in a control frame: at most 123 bytes. */
        if (hdr->text.len && !c->close_code && proto_utf8_valid(hdr->text.ptr, hdr->text.len)) {
            size_t n = hdr->text.len > 123 ? 123 : hdr->text.len;

            while (n < hdr->text.len && n && (hdr->text.ptr[n] & 0xc0) == 0x80)
                n--; /* do not cut a UTF-8 sequence */
            free(c->close_text);
            c->close_text = strndup((const char *)hdr->text.ptr, n);
        }
        /* Only codes an application may send (RFC 6455 7.4). */
        s_close(gw, c,
                (hdr->close_code == 1000 || (hdr->close_code >= 3000 && hdr->close_code <= 4999))
                    ? (uint16_t)hdr->close_code
                    : 1000,
                GW_CLOSE_WORKER);
        break;
    default:
        break;
    }
}

/* --- timers and signals ------------------------------------------------------------------ */

static void
s_ka_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
    gw_t *gw = w->data;
    uint64_t now = gw_now_ms(gw);
    gw_conn_t *c;

    (void)loop;
    (void)revents;
    /* Both lists are in last-activity order: only their heads are due. */
    while ((c = gw->alive_head) && now - c->last_rx_ms >= gw->cfg.ping_ms) {
        s_ka_unlink(gw, c);
        s_ka_append(gw, c, GW_KA_PINGED);
        c->want_ping = 1;
        gw_ws_request_write(c->wsi);
    }
    while ((c = gw->pinged_head) && now - c->last_rx_ms >= gw->cfg.idle_ms)
        s_close(gw, c, 4002, GW_CLOSE_IDLE_TIMEOUT);
}

/* Auth timeouts and token expiries that came due. Entries that no longer
 * apply (connection gone, authenticated since, token refreshed) are
 * skipped. */
static void
s_auth_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
    gw_t *gw = w->data;
    uint64_t now = gw_now_ms(gw);
    const gw_heap_item_t *t;

    (void)loop;
    (void)revents;
    /* A token's exp is unix time; ev_now() is wall-clock time too, so the
     * auth timeouts and the expiries share one clock and one heap. */
    while ((t = gw_heap_top(&gw->timers)) && t->due_ms <= now) {
        gw_heap_item_t it = *t;
        gw_conn_t *c;

        gw_heap_pop(&gw->timers);
        c = gw_idmap_get(&gw->conns, it.id);
        if (!c || c->close_code || c->linger_code)
            continue;
        if (it.kind == GW_TIMER_AUTH && c->auth == GW_AUTH_NEED) {
            s_close(gw, c, 4004, GW_CLOSE_AUTH_TIMEOUT);
        } else if (it.kind == GW_TIMER_EXPIRY && c->auth_gen == it.gen) {
            gw_log_limited(GW_LOG_INFO, "conn %" PRIu64 ": token expired, closing", c->id);
            s_close(gw, c, 4005, GW_CLOSE_TOKEN_EXPIRED);
        }
    }
    s_auth_timer_arm(gw);
}

static void
s_drain_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
    (void)w;
    (void)revents;
    ev_break(loop, EVBREAK_ALL);
}

/*
 * Shutdown closes (1001) go out in slices over --drain-ms, so that clients
 * reconnecting at once (to the other gateways on the port) arrive spread
 * out rather than as one storm. Connections not yet closed keep working.
 */
static void
s_drain_tick_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
    gw_t *gw = w->data;
    size_t slice = gw->drain_n, end;

    (void)revents;
    if (gw->cfg.drain_ms)
        slice = (gw->drain_n * GW_DRAIN_TICK_MS + gw->cfg.drain_ms - 1) / gw->cfg.drain_ms;
    end = gw->drain_pos + slice < gw->drain_n ? gw->drain_pos + slice : gw->drain_n;
    for (; gw->drain_pos < end; gw->drain_pos++) {
        gw_conn_t *c = gw_idmap_get(&gw->conns, gw->drain_ids[gw->drain_pos]);

        if (c)
            s_close(gw, c, 1001, GW_CLOSE_SHUTDOWN);
    }
    if (gw->drain_pos < gw->drain_n)
        return;
    ev_timer_stop(loop, w);
    ev_timer_set(&gw->drain_timer, GW_DRAIN_MS / 1000.0, 0);
    ev_timer_start(loop, &gw->drain_timer);
}

static void
s_signal_cb(struct ev_loop *loop, ev_signal *w, int revents)
{
    gw_t *gw = w->data;
    size_t i;

    (void)revents;
    if (gw->shutting_down) {
        ev_break(loop, EVBREAK_ALL);
        return;
    }
    gw_log(GW_LOG_INFO, "signal %d: closing %" PRIu64 " connections over %u ms", w->signum,
           gw->m.connections, gw->cfg.drain_ms);
    gw->shutting_down = true;
    gw_ws_stop_listening(gw->ws);
    if (gw->m.connections == 0) {
        ev_break(loop, EVBREAK_ALL);
        return;
    }
    gw->drain_ids = malloc((gw->conns.count + 1) * sizeof(*gw->drain_ids));
    for (i = 0; gw->drain_ids && i <= gw->conns.mask; i++)
        if (gw->conns.slots[i].id)
            gw->drain_ids[gw->drain_n++] = gw->conns.slots[i].id;
    if (!gw->drain_ids) {
        /* No memory for an orderly drain: close them all now. */
        for (i = 0; i <= gw->conns.mask; i++)
            if (gw->conns.slots[i].id)
                s_close(gw, gw->conns.slots[i].ptr, 1001, GW_CLOSE_SHUTDOWN);
        ev_timer_set(&gw->drain_timer, GW_DRAIN_MS / 1000.0, 0);
        ev_timer_start(loop, &gw->drain_timer);
        return;
    }
    ev_timer_set(&gw->drain_tick, 0, GW_DRAIN_TICK_MS / 1000.0);
    ev_timer_start(loop, &gw->drain_tick);
}

/* --- lifecycle ---------------------------------------------------------------------------- */

uint64_t
gw_conn_floor(const gw_t *gw)
{
    return gw->conn_floor;
}

gw_t *
gw_new(const gw_config_t *cfg, void *ev_loop)
{
    gw_t *gw = calloc(1, sizeof(*gw));

    if (!gw)
        return NULL;
    gw->cfg = *cfg;
    gw->loop = ev_loop;
    /* before the backend exists: it may report membership at any time */
    ev_init(&gw->rehome_timer, s_rehome_cb);
    gw->rehome_timer.data = gw;
    /* Connection ids start from the wall clock (ms << 12): a restarted
     * gateway never reuses the ids its predecessor handed out, which
     * channel actors may still hold (docs/backend-protocol.md). */
    gw->next_conn_id = ((uint64_t)(ev_time() * 1000.0) << 12) + 1;
    gw->conn_floor = gw->next_conn_id;
    gw->next_rid = 1;
    proto_buf_init(&gw->scratch, 0);
    proto_buf_init(&gw->hdr, 0);
    proto_buf_init(&gw->payload, 0);
    proto_buf_init(&gw->rehome, 0);
    gw_heap_init(&gw->timers);
    if (gw_idmap_init(&gw->conns, 1024) || gw_idmap_init(&gw->reqs, 1024) ||
        gw_chans_init(&gw->chans))
        goto fail;
    gw->backend = gw_backend_new(gw, &gw->cfg, &gw->m, ev_loop);
    if (!gw->backend)
        goto fail;
    gw->ws = gw_ws_new(gw, &gw->cfg, ev_loop);
    if (!gw->ws)
        goto fail;
    ev_init(&gw->req_timer, s_req_timer_cb);
    gw->req_timer.data = gw;
    ev_init(&gw->drain_timer, s_drain_cb);
    gw->drain_timer.data = gw;
    ev_init(&gw->drain_tick, s_drain_tick_cb);
    gw->drain_tick.data = gw;
    ev_init(&gw->auth_timer, s_auth_cb);
    gw->auth_timer.data = gw;
    if (gw->cfg.ping_ms) {
        double tick = gw->cfg.ping_ms / 4000.0;

        if (tick > 1.0)
            tick = 1.0;
        if (tick < 0.02)
            tick = 0.02;
        ev_timer_init(&gw->ka_timer, s_ka_cb, tick, tick);
        gw->ka_timer.data = gw;
        ev_timer_start(ev_loop, &gw->ka_timer);
    }
    ev_signal_init(&gw->sigint, s_signal_cb, SIGINT);
    gw->sigint.data = gw;
    ev_signal_start(ev_loop, &gw->sigint);
    ev_signal_init(&gw->sigterm, s_signal_cb, SIGTERM);
    gw->sigterm.data = gw;
    ev_signal_start(ev_loop, &gw->sigterm);
    return gw;
fail:
    gw_destroy(&gw);
    return NULL;
}

int
gw_run(gw_t *gw)
{
    ev_run(gw->loop, 0);
    return 0;
}

void
gw_destroy(gw_t **self_p)
{
    gw_t *gw = self_p ? *self_p : NULL;
    gw_req_t *r;

    if (!gw)
        return;
    if (ev_is_active(&gw->ka_timer))
        ev_timer_stop(gw->loop, &gw->ka_timer);
    if (ev_is_active(&gw->req_timer))
        ev_timer_stop(gw->loop, &gw->req_timer);
    if (ev_is_active(&gw->drain_timer))
        ev_timer_stop(gw->loop, &gw->drain_timer);
    if (ev_is_active(&gw->drain_tick))
        ev_timer_stop(gw->loop, &gw->drain_tick);
    if (ev_is_active(&gw->auth_timer))
        ev_timer_stop(gw->loop, &gw->auth_timer);
    if (ev_is_active(&gw->rehome_timer))
        ev_timer_stop(gw->loop, &gw->rehome_timer);
    free(gw->drain_ids);
    if (ev_is_active(&gw->sigint))
        ev_signal_stop(gw->loop, &gw->sigint);
    if (ev_is_active(&gw->sigterm))
        ev_signal_stop(gw->loop, &gw->sigterm);
    /* lws first: destroying it closes every connection through
     * gw_conn_closed(), which still uses the backend. */
    gw_ws_destroy(&gw->ws);
    gw_backend_destroy(&gw->backend);
    while ((r = gw->req_head)) {
        gw->req_head = r->next;
        free(r->retry);
        free(r);
    }
    while ((r = gw->req_free)) {
        gw->req_free = r->next;
        free(r);
    }
    gw_idmap_fini(&gw->conns);
    gw_idmap_fini(&gw->reqs);
    gw_chans_fini(&gw->chans);
    gw_heap_fini(&gw->timers);
    proto_buf_fini(&gw->scratch);
    proto_buf_fini(&gw->hdr);
    proto_buf_fini(&gw->payload);
    proto_buf_fini(&gw->rehome);
    free(gw);
    *self_p = NULL;
}

int
gw_metrics_render(gw_t *gw, proto_buf_t *out)
{
    if (gw_metrics_render_counters(&gw->m, gw_workers_live(gw), out))
        return -1;
    return gw_backend_render(gw->backend, out);
}
