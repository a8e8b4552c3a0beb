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

#include "backend.h"
#include "idmap.h"
#include "log.h"

#define GW_CONN_KEY_MAX 24  /* "c:" + 20 digits */
#define GW_DRAIN_MS 2000    /* how long shutdown waits, after the last close, for it to go out */
#define GW_DRAIN_TICK_MS 50 /* between two slices of the shutdown closes */

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

    if (!n)
        return NULL;
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

static void
s_send_err(gw_t *gw, gw_conn_t *c, const proto_id_t *id, proto_err_t code, const char *text)
{
    const char *name = proto_err_name(code);
    proto_buf_t b;
    gw_msg_t *m;

    gw->m.errors[code]++;
    if (c->kind == GW_CONN_RAW)
        return; /* no envelope to answer in */
    proto_buf_init(&b, GW_MSG_HEAD);
    if (proto_envelope_encode_err(s_enc(c), id, proto_span(name, strlen(name)),
                                  proto_span(text, strlen(text)), &b) != PROTO_OK) {
        proto_buf_fini(&b);
        return;
    }
    m = gw_msg_from_buf(&b, c->kind == GW_CONN_MSGPACK);
    proto_buf_fini(&b);
    if (m)
        s_enqueue(gw, c, m);
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

static void
s_req_timer_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
    gw_t *gw = w->data;
    uint64_t now = gw_now_ms(gw);
    gw_req_t *r;

    (void)loop;
    (void)revents;
    while ((r = gw->req_head) && r->deadline_ms <= now) {
        gw_conn_t *c;

        s_req_unlink(gw, r);
        gw_idmap_del(&gw->reqs, r->rid);
        c = gw_idmap_get(&gw->conns, r->conn);
        if (c) {
            c->inflight--;
            s_req_err(gw, c, &r->id, PROTO_ERR_TIMEOUT, "the worker did not answer in time");
        }
        s_req_free(gw, r);
    }
    s_req_timer_arm(gw);
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

static void
s_ws_message(gw_t *gw, gw_conn_t *c, const uint8_t *p, size_t len, bool binary)
{
    proto_envelope_t env;
    const char *err = NULL;
    char keybuf[GW_CONN_KEY_MAX];
    proto_span_t key;
    proto_rc_t rc;
    bool retry_safe = false;
    gw_req_t *r;
    int w = -1, sent;

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
    /* From here on the envelope is valid: a request without an id is
     * fire-and-forget, and its errors are counted, not answered. */
    if (env.op != PROTO_OP_REQ) {
        s_req_err(gw, c, &env.id, PROTO_ERR_BAD_REQUEST, "operation not supported yet");
        return;
    }
    if (c->inflight >= gw->cfg.max_inflight) {
        s_req_err(gw, c, &env.id, PROTO_ERR_OVERLOADED, "too many requests in flight");
        return;
    }
    key = env.key.len ? env.key : s_conn_key(c, keybuf);
    proto_buf_reset(&gw->hdr);
    if (proto_bk_encode_req(&gw->hdr, gw->next_rid, c->id, env.svc, key, 0, proto_span(NULL, 0))) {
        s_req_err(gw, c, &env.id, PROTO_ERR_INTERNAL, "out of memory");
        return;
    }
    /* Allocated before it is sent, so nothing sent is ever untracked. */
    if (gw->req_free) {
        r = gw->req_free;
        gw->req_free = r->next;
    } else if (!(r = malloc(sizeof(*r)))) {
        s_req_err(gw, c, &env.id, PROTO_ERR_INTERNAL, "out of memory");
        return;
    }
    memset(r, 0, sizeof(*r));
    r->worker = -1;
    r->rid = gw->next_rid;
    r->conn = c->id;
    r->id = env.id;
    gw->m.inflight++; /* s_req_free() takes it back on every path */
    sent = gw_backend_send_routed(gw->backend, env.svc, key, &gw->hdr, env.data, &w, &retry_safe);
    if (sent == 0 && gw_idmap_put(&gw->reqs, r->rid, r))
        sent = -3;
    if (sent != 0) {
        s_req_free(gw, r);
        if (sent == -1)
            s_req_err(gw, c, &env.id, PROTO_ERR_OVERLOADED, "the worker's queue is full");
        else if (sent == -3)
            /* It went out but cannot be tracked: its reply will count as
             * unknown. Say so now rather than never. */
            s_req_err(gw, c, &env.id, PROTO_ERR_INTERNAL, "out of memory");
        else
            s_req_err(gw, c, &env.id, PROTO_ERR_NO_SERVICE, "no worker offers this service");
        return;
    }
    gw->next_rid++;
    gw->m.requests++;
    s_req_wlink(gw, r, w);
    if (retry_safe) {
        /* Kept so it can go to another worker if this one dies. */
        r->retry = malloc(gw->hdr.len + env.data.len + 1);
        if (r->retry) {
            memcpy(r->retry, proto_buf_payload(&gw->hdr), gw->hdr.len);
            if (env.data.len)
                memcpy(r->retry + gw->hdr.len, env.data.ptr, env.data.len);
            r->retry_hdr_len = (uint32_t)gw->hdr.len;
            r->retry_len = (uint32_t)(gw->hdr.len + env.data.len);
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
    c->inflight++;
    s_req_timer_arm(gw);
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
    gw_conn_t *c;

    while ((r = gw->wreqs[worker])) {
        s_req_wunlink(gw, r);
        if (r->retry && s_req_resend(gw, r) == 0) {
            gw->m.retried++;
            continue;
        }
        s_req_unlink(gw, r);
        gw_idmap_del(&gw->reqs, r->rid);
        c = gw_idmap_get(&gw->conns, r->conn);
        if (c) {
            c->inflight--;
            s_req_err(gw, c, &r->id, PROTO_ERR_UNAVAILABLE,
                      "the worker holding the request is gone");
        }
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
    if (c->close_code)
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
gw_admit(gw_t *gw, gw_conn_t *c, const char *path, bool msgpack)
{
    int i;

    memset(c, 0, sizeof(*c));
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
gw_conn_opened(gw_t *gw, gw_conn_t *c)
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
    s_conn_event(gw, c, true, 0);
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

static gw_conn_t *
s_take_req(gw_t *gw, uint64_t rid, gw_req_t **out)
{
    gw_req_t *r = gw_idmap_del(&gw->reqs, rid);
    gw_conn_t *c;

    *out = r;
    if (!r) {
        gw->m.dropped_unknown_request++;
        return NULL;
    }
    s_req_unlink(gw, r);
    gw_hist_observe(&gw->m.request, ev_now(gw->loop) - r->sent_at);
    c = gw_idmap_get(&gw->conns, r->conn);
    if (!c) {
        gw->m.dropped_conn_gone++;
        return NULL;
    }
    c->inflight--;
    return c;
}

static void
s_on_reply(gw_t *gw, const proto_bk_t *hdr, proto_span_t payload)
{
    gw_req_t *r;
    gw_conn_t *c = s_take_req(gw, hdr->rid, &r);
    proto_buf_t b;
    proto_rc_t rc;
    gw_msg_t *m;

    if (!c)
        goto out;
    if (r->id.kind == PROTO_ID_NONE) {
        gw->m.dropped_no_id++;
        goto out;
    }
    proto_buf_init(&b, GW_MSG_HEAD);
    if (hdr->type == PROTO_BK_REPLY)
        rc = proto_envelope_encode_res(s_enc(c), &r->id, payload, &b);
    else
        rc = proto_envelope_encode_err(s_enc(c), &r->id, hdr->code, hdr->text, &b);
    if (rc != PROTO_OK) {
        proto_buf_fini(&b);
        gw->m.dropped_unencodable++;
        s_send_err(gw, c, &r->id, PROTO_ERR_INTERNAL,
                   "the worker's reply cannot be carried in this encoding");
        goto out;
    }
    m = gw_msg_from_buf(&b, c->kind == GW_CONN_MSGPACK);
    proto_buf_fini(&b);
    if (m && m->len > gw->cfg.sendq_bytes) {
        /* It could never fit the send queue: closing the client as a slow
         * consumer would blame it for the worker's reply. */
        gw_msg_unref(&m);
        s_send_err(gw, c, &r->id, PROTO_ERR_TOO_LARGE, "the reply is larger than --sendq-bytes");
    }
    if (m) {
        gw->m.replies++;
        s_enqueue(gw, c, m);
    }
out:
    if (r)
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

    (void)worker;
    switch (hdr->type) {
    case PROTO_BK_REPLY:
    case PROTO_BK_ERROR:
        s_on_reply(gw, hdr, payload);
        break;
    case PROTO_BK_SEND:
        s_on_send(gw, hdr, payload);
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

gw_t *
gw_new(const gw_config_t *cfg, void *ev_loop)
{
    gw_t *gw = calloc(1, sizeof(*gw));

    if (!gw)
        return NULL;
    gw->cfg = *cfg;
    gw->loop = ev_loop;
    gw->next_conn_id = 1;
    gw->next_rid = 1;
    proto_buf_init(&gw->scratch, 0);
    proto_buf_init(&gw->hdr, 0);
    if (gw_idmap_init(&gw->conns, 1024) || gw_idmap_init(&gw->reqs, 1024))
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
    proto_buf_fini(&gw->scratch);
    proto_buf_fini(&gw->hdr);
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
