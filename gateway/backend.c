#include "backend.h"

#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <ev.h>
#include <zmq.h>

#include "../protocol/keyfile.h"
#include "../protocol/rendezvous.h"
#include "log.h"

#define GW_MAX_SERVICES 256
#define GW_PUMP_BUDGET 4096                      /* messages per pump before letting lws run */
#define GW_ZAP_ENDPOINT "inproc://zeromq.zap.01" /* where libzmq asks */
#define GW_MON_ENDPOINT "inproc://wsgate.backend.monitor" /* the ROUTER's handshake events */

/*
 * The ZAP handler: libzmq asks it, over inproc, whether a CURVE client's
 * public key may connect. It runs on its own thread with its own poll loop
 * so the gateway's edge-triggered ZMQ_FD handling stays as it is, and it
 * touches nothing but its REP socket, its private copy of the allow-list
 * and the atomic counters. It stops when the context is shut down (ETERM).
 * It also reads the ROUTER's monitor: a peer whose handshake fails before
 * ZAP is asked (a worker without CURVE keys: mechanism mismatch; bytes
 * that are not ZMTP) is counted there.
 */
typedef struct {
    void *rep;
    void *mon;                           /* PAIR on GW_MON_ENDPOINT */
    char (*keys)[PROTO_Z85_KEY_LEN + 1]; /* owned, read-only once started */
    size_t n_keys;
    atomic_uint_fast64_t refused;
    atomic_uint_fast64_t handshake_failed;
    pthread_t thread;
    bool started;
} gw_zap_t;

typedef struct {
    bool live;
    bool draining;      /* sent DRAIN: keeps its work, gets no new keys */
    bool unreachable;   /* a send failed: forgotten once queued input is read */
    uint8_t ident[256]; /* ROUTER routing id of the worker's DEALER */
    size_t ident_len;
    char id[PROTO_BK_WORKER_ID_MAX + 1];
    uint64_t seed;
    char (*svcs)[PROTO_SVC_MAX + 1];
    uint32_t *svc_flags; /* PROTO_BK_SVC_*, one per service */
    unsigned n_svcs;
    uint64_t last_hello_ms;
    uint64_t requests;
} gw_worker_t;

/* Service -> the live workers offering it, rebuilt on membership change. */
typedef struct {
    char name[PROTO_SVC_MAX + 1];
    size_t name_len;
    bool retry_safe; /* some worker declared it PROTO_BK_SVC_RETRY_SAFE */
    unsigned n;
    int slots[GW_MAX_WORKERS];
    uint64_t seeds[GW_MAX_WORKERS];
} gw_service_t;

struct gw_backend {
    gw_t *gw;
    const gw_config_t *cfg;
    gw_metrics_t *m;
    struct ev_loop *loop;
    void *zctx;
    void *sock;
    ev_io io;
    ev_prepare prepare;
    ev_idle idle;
    ev_timer heartbeat;  /* checks for workers whose HELLOs stopped */
    bool dirty;          /* the socket was used since ZMQ_EVENTS was last read */
    bool forget_pending; /* some worker is unreachable: forget it after the next drain */
    gw_worker_t workers[GW_MAX_WORKERS];
    unsigned n_live;
    gw_service_t *services;
    unsigned n_services;
    uint64_t last_expiry_ms;
    uint64_t hb_check_ms; /* the expiry timer's interval */
    proto_buf_t scratch;
    gw_zap_t zap; /* CURVE only */
};

static uint64_t
s_now_ms(gw_backend_t *b)
{
    return (uint64_t)(ev_now(b->loop) * 1000.0);
}

static void
s_rebuild_index(gw_backend_t *b)
{
    unsigned i, j, k;

    b->n_services = 0;
    for (i = 0; i < GW_MAX_WORKERS; i++) {
        gw_worker_t *w = &b->workers[i];

        if (!w->live || w->draining || w->unreachable)
            continue;
        for (j = 0; j < w->n_svcs; j++) {
            size_t len = strlen(w->svcs[j]);
            gw_service_t *s = NULL;

            for (k = 0; k < b->n_services; k++)
                if (b->services[k].name_len == len && !memcmp(b->services[k].name, w->svcs[j], len))
                    s = &b->services[k];
            if (!s) {
                if (b->n_services == GW_MAX_SERVICES)
                    continue;
                s = &b->services[b->n_services++];
                memcpy(s->name, w->svcs[j], len + 1);
                s->name_len = len;
                s->n = 0;
                s->retry_safe = false;
            }
            if (w->svc_flags[j] & PROTO_BK_SVC_RETRY_SAFE)
                s->retry_safe = true;
            s->slots[s->n] = (int)i;
            s->seeds[s->n] = w->seed;
            s->n++;
        }
    }
    /* Keys may have moved: the gateway re-homes its channel subscriptions
     * (later, from its own loop turn: we may be deep inside a send). */
    gw_on_membership(b->gw);
}

static void
s_forget(gw_backend_t *b, int slot, const char *why)
{
    gw_worker_t *w = &b->workers[slot];

    if (!w->live)
        return;
    gw_log(GW_LOG_INFO, "worker %s left (%s)", w->id, why);
    w->live = false;
    w->draining = false;
    w->unreachable = false;
    free(w->svcs);
    w->svcs = NULL;
    free(w->svc_flags);
    w->svc_flags = NULL;
    w->n_svcs = 0;
    b->n_live--;
    b->m->workers_left++;
    s_rebuild_index(b);
    /* Last: what the gateway does with the worker's requests may route
     * them again, and must see the membership without this worker. */
    gw_on_worker_lost(b->gw, slot);
}

static void
s_expire(gw_backend_t *b)
{
    uint64_t now = s_now_ms(b);
    unsigned i;

    /*
     * This runs at least every sixth of the timeout. A longer gap means
     * the gateway itself did not run (stopped, or starved of CPU: seen with
     * 100k connections on 2 cores, where workers "left" and rejoined), and
     * the HELLOs of that time may still sit unread in the kernel or in
     * ZeroMQ: a gateway that was not looking cannot call anyone silent.
     * The workers are credited the gap beyond the usual interval.
     */
    uint64_t usual = 2 * b->hb_check_ms;
    if (b->last_expiry_ms && now - b->last_expiry_ms > usual) {
        uint64_t stall = now - b->last_expiry_ms - usual;

        for (i = 0; i < GW_MAX_WORKERS; i++)
            if (b->workers[i].live)
                b->workers[i].last_hello_ms += stall;
        if (stall > 1000)
            gw_log(GW_LOG_WARN, "the gateway did not run for %" PRIu64 " ms", stall);
    }
    b->last_expiry_ms = now;
    for (i = 0; i < GW_MAX_WORKERS; i++)
        if (b->workers[i].live && now - b->workers[i].last_hello_ms > b->cfg->worker_timeout_ms)
            s_forget(b, (int)i, "no hello");
}

static int
s_find(gw_backend_t *b, const uint8_t *ident, size_t len)
{
    unsigned i;

    for (i = 0; i < GW_MAX_WORKERS; i++)
        if (b->workers[i].live && b->workers[i].ident_len == len &&
            !memcmp(b->workers[i].ident, ident, len))
            return (int)i;
    return -1;
}

static int
s_send_frames(gw_backend_t *b, const uint8_t *ident, size_t ident_len, const proto_buf_t *hdr,
              proto_span_t payload)
{
    bool more = payload.ptr != NULL;

    b->dirty = true;
    if (zmq_send(b->sock, ident, ident_len, ZMQ_SNDMORE | ZMQ_DONTWAIT) < 0)
        return errno == EHOSTUNREACH ? -2 : -1;
    /* After the routing frame is accepted the rest of the message cannot
     * fail on HWM: ZeroMQ sends multipart messages atomically. */
    if (zmq_send(b->sock, proto_buf_payload(hdr), hdr->len,
                 (more ? ZMQ_SNDMORE : 0) | ZMQ_DONTWAIT) < 0)
        return -1;
    if (more && zmq_send(b->sock, payload.ptr, payload.len, ZMQ_DONTWAIT) < 0)
        return -1;
    return 0;
}

static uint32_t *
s_copy_flags(const proto_bk_t *hdr)
{
    uint32_t *flags = calloc(hdr->list_count ? hdr->list_count : 1, sizeof(*flags));

    for (uint32_t i = 0; flags && i < hdr->list_count; i++)
        flags[i] = proto_bk_svc_flags(hdr, i);
    return flags;
}

static char (*s_copy_services(const proto_bk_t *hdr))[PROTO_SVC_MAX + 1]
{
    char(*svcs)[PROTO_SVC_MAX + 1] = calloc(hdr->list_count ? hdr->list_count : 1, sizeof(*svcs));
    size_t pos = 0, n = 0;
    proto_span_t s;

    if (!svcs)
        return NULL;
    while (proto_bk_next_str(hdr, &pos, &s)) {
        memcpy(svcs[n], s.ptr, s.len);
        svcs[n][s.len] = '\0';
        n++;
    }
    return svcs;
}

static bool
s_same_services(const gw_worker_t *w, const proto_bk_t *hdr)
{
    size_t pos = 0, n = 0;
    proto_span_t s;

    if (hdr->list_count != w->n_svcs)
        return false;
    while (proto_bk_next_str(hdr, &pos, &s)) {
        if (strlen(w->svcs[n]) != s.len || memcmp(w->svcs[n], s.ptr, s.len) ||
            w->svc_flags[n] != proto_bk_svc_flags(hdr, (uint32_t)n))
            return false;
        n++;
    }
    return true;
}

static void
s_on_hello(gw_backend_t *b, const uint8_t *ident, size_t ident_len, const proto_bk_t *hdr)
{
    int slot = s_find(b, ident, ident_len);
    gw_worker_t *w;
    unsigned i;

    if (slot >= 0) {
        w = &b->workers[slot];
        w->last_hello_ms = s_now_ms(b);
        if (!s_same_services(w, hdr)) {
            /* A worker changes what it offers by saying so in a HELLO. */
            char(*svcs)[PROTO_SVC_MAX + 1] = s_copy_services(hdr);
            uint32_t *flags = s_copy_flags(hdr);

            if (svcs && flags) {
                free(w->svcs);
                free(w->svc_flags);
                w->svcs = svcs;
                w->svc_flags = flags;
                svcs = NULL;
                flags = NULL;
                w->n_svcs = hdr->list_count;
                s_rebuild_index(b);
                gw_log(GW_LOG_INFO, "worker %s now offers %u services", w->id, w->n_svcs);
            }
            free(svcs);
            free(flags);
        }
        goto welcome;
    }
    if (ident_len > sizeof(w->ident))
        return;
    for (i = 0; i < GW_MAX_WORKERS && b->workers[i].live; i++)
        ;
    if (i == GW_MAX_WORKERS) {
        gw_log(GW_LOG_WARN, "worker refused: already %d workers", GW_MAX_WORKERS);
        return;
    }
    w = &b->workers[i];
    memset(w, 0, sizeof(*w));
    w->svcs = s_copy_services(hdr);
    w->svc_flags = s_copy_flags(hdr);
    if (!w->svcs || !w->svc_flags) {
        free(w->svcs);
        free(w->svc_flags);
        w->svcs = NULL;
        w->svc_flags = NULL;
        return;
    }
    w->n_svcs = hdr->list_count;
    memcpy(w->ident, ident, ident_len);
    w->ident_len = ident_len;
    memcpy(w->id, hdr->id.ptr, hdr->id.len);
    w->id[hdr->id.len] = '\0';
    w->seed = proto_rdv_seed(hdr->id);
    w->last_hello_ms = s_now_ms(b);
    w->live = true;
    b->n_live++;
    b->m->workers_joined++;
    s_rebuild_index(b);
    gw_log(GW_LOG_INFO, "worker %s joined with %u services", w->id, w->n_svcs);
welcome:
    /* Every HELLO is answered: the worker's heartbeat from this side. */
    proto_buf_reset(&b->scratch);
    if (proto_bk_encode_welcome(&b->scratch, proto_span(b->cfg->id, strlen(b->cfg->id)),
                                gw_conn_floor(b->gw)) == 0)
        s_send_frames(b, ident, ident_len, &b->scratch, proto_span(NULL, 0));
}

/*
 * DRAIN: the worker keeps what it holds but gets no new keys; DRAINING
 * tells it that nothing sent before it is still on the way (one pipe, in
 * order), so once its mailboxes are empty it can say BYE and go.
 */
static void
s_on_leaving(gw_backend_t *b, const uint8_t *ident, size_t ident_len, uint32_t type)
{
    int slot = s_find(b, ident, ident_len);

    if (slot < 0)
        return;
    if (type == PROTO_BK_BYE) {
        s_forget(b, slot, "bye");
        return;
    }
    if (!b->workers[slot].draining) {
        b->workers[slot].draining = true;
        b->m->workers_drained++;
        s_rebuild_index(b);
        gw_log(GW_LOG_INFO, "worker %s is draining", b->workers[slot].id);
    }
    proto_buf_reset(&b->scratch);
    if (proto_bk_encode_bare(&b->scratch, PROTO_BK_DRAINING) == 0)
        s_send_frames(b, ident, ident_len, &b->scratch, proto_span(NULL, 0));
}

/* Reads one whole multipart message. 1 if one was handled, 0 if none was
 * waiting. */
static int
s_recv_one(gw_backend_t *b)
{
    zmq_msg_t parts[3];
    int n = 0, more = 1;
    size_t extra = 0;
    proto_bk_t hdr;
    const char *err = NULL;
    proto_rc_t rc;

    while (more) {
        zmq_msg_t *p = n < 3 ? &parts[n] : NULL;
        zmq_msg_t spill;

        if (!p)
            p = &spill;
        zmq_msg_init(p);
        if (zmq_msg_recv(p, b->sock, ZMQ_DONTWAIT) < 0) {
            zmq_msg_close(p);
            if (n == 0)
                return 0;
            break; /* cannot happen mid-message: multipart is atomic */
        }
        more = zmq_msg_more(p);
        if (p == &spill) {
            extra++;
            zmq_msg_close(p);
        } else {
            n++;
        }
    }
    b->dirty = true;
    if (n < 2 || extra) {
        b->m->backend_malformed++;
        gw_log_limited(GW_LOG_WARN, "backend: message with %d frames dropped", n + (int)extra);
        goto out;
    }
    rc = proto_bk_decode(zmq_msg_data(&parts[1]), zmq_msg_size(&parts[1]), &hdr, &err);
    if (rc != PROTO_OK) {
        if (hdr.version != PROTO_BK_VERSION && hdr.version != 0)
            b->m->backend_bad_version++;
        b->m->backend_malformed++;
        gw_log_limited(GW_LOG_WARN, "backend: malformed header dropped: %s", err ? err : "?");
        goto out;
    }
    if (hdr.type == PROTO_BK_HELLO) {
        s_on_hello(b, zmq_msg_data(&parts[0]), zmq_msg_size(&parts[0]), &hdr);
    } else if (hdr.type == PROTO_BK_DRAIN || hdr.type == PROTO_BK_BYE) {
        s_on_leaving(b, zmq_msg_data(&parts[0]), zmq_msg_size(&parts[0]), hdr.type);
    } else if (hdr.type == PROTO_BK_REPLY || hdr.type == PROTO_BK_ERROR ||
               hdr.type == PROTO_BK_SEND || hdr.type == PROTO_BK_CLOSE ||
               hdr.type == PROTO_BK_PUB || hdr.type == PROTO_BK_PUBLISH) {
        proto_span_t payload = proto_span(NULL, 0);
        int slot = s_find(b, zmq_msg_data(&parts[0]), zmq_msg_size(&parts[0]));

        if (n == 3)
            payload = proto_span(zmq_msg_data(&parts[2]), zmq_msg_size(&parts[2]));
        if (proto_bk_has_payload(hdr.type) && n != 3) {
            b->m->backend_malformed++;
            gw_log_limited(GW_LOG_WARN, "backend: type %u without its payload frame", hdr.type);
            goto out;
        }
        gw_on_backend(b->gw, slot, &hdr, payload);
    } else {
        b->m->backend_malformed++;
        gw_log_limited(GW_LOG_WARN, "backend: unexpected message type %u", hdr.type);
    }
out:
    while (n > 0)
        zmq_msg_close(&parts[--n]);
    return 1;
}

/* Workers a send found unreachable, now that everything they sent
 * before going (replies, BYE) has been read: what they still hold gets
 * its answer from gw_on_worker_lost(). */
static void
s_forget_unreachable(gw_backend_t *b)
{
    unsigned i;

    b->forget_pending = false;
    for (i = 0; i < GW_MAX_WORKERS; i++)
        if (b->workers[i].live && b->workers[i].unreachable)
            s_forget(b, (int)i, "unreachable");
}

static void s_pump_batch(gw_backend_t *b);

/* Everything the pump makes the gateway write to clients (replies,
 * pushes, publications) goes out as one batch (gw_ws_batch_begin()):
 * nothing here frees an lws connection. */
static void
s_pump(gw_backend_t *b)
{
    gw_ws_batch_begin(gw_ws(b->gw));
    s_pump_batch(b);
    gw_ws_batch_end(gw_ws(b->gw));
}

static void
s_pump_batch(gw_backend_t *b)
{
    unsigned budget = GW_PUMP_BUDGET;
    uint32_t events;
    size_t sz;

    /* Receive until EAGAIN, then read ZMQ_EVENTS once: that read is what
     * lets ZMQ_FD signal again, and it tells whether something arrived
     * meanwhile. (Reading ZMQ_EVENTS before every message costs libzmq a
     * poll() each time: ~7% of the gateway's time under echo load.) */
    for (;;) {
        while (budget && s_recv_one(b))
            budget--;
        if (!budget) {
            /* More may be waiting but lws deserves a turn: an idle
             * watcher keeps the loop from sleeping until we are back. */
            ev_idle_start(b->loop, &b->idle);
            b->dirty = false;
            return;
        }
        sz = sizeof(events);
        if (zmq_getsockopt(b->sock, ZMQ_EVENTS, &events, &sz) < 0 || !(events & ZMQ_POLLIN))
            break;
    }
    ev_idle_stop(b->loop, &b->idle);
    b->dirty = false;
    if (b->forget_pending)
        s_forget_unreachable(b);
}

static void
s_io_cb(struct ev_loop *loop, ev_io *w, int revents)
{
    (void)loop;
    (void)revents;
    s_pump(w->data);
}

static void
s_prepare_cb(struct ev_loop *loop, ev_prepare *w, int revents)
{
    gw_backend_t *b = w->data;

    (void)loop;
    (void)revents;
    if (b->dirty)
        s_pump(b);
}

static void
s_heartbeat_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
    (void)loop;
    (void)revents;
    s_expire(w->data);
}

static void
s_idle_cb(struct ev_loop *loop, ev_idle *w, int revents)
{
    (void)loop;
    (void)revents;
    s_pump(w->data);
}

/* Receives one ZAP request (frames into parts, at most 8). Number of
 * frames, or -1 on ETERM / error. */
static int
s_zap_recv(void *rep, zmq_msg_t *parts, int max)
{
    int n = 0, more;
    size_t sz = sizeof(more);

    do {
        if (n == max) {
            zmq_msg_t skip;

            zmq_msg_init(&skip);
            if (zmq_msg_recv(&skip, rep, 0) < 0) {
                zmq_msg_close(&skip);
                return -1;
            }
            zmq_msg_close(&skip);
        } else {
            zmq_msg_init(&parts[n]);
            if (zmq_msg_recv(&parts[n], rep, 0) < 0) {
                zmq_msg_close(&parts[n]);
                return n ? -1 - n : -1;
            }
            n++;
        }
        if (zmq_getsockopt(rep, ZMQ_RCVMORE, &more, &sz) < 0)
            more = 0;
    } while (more);
    return n;
}

static bool
s_zap_allowed(const gw_zap_t *z, const char *z85)
{
    size_t i;

    for (i = 0; i < z->n_keys; i++)
        if (!memcmp(z->keys[i], z85, PROTO_Z85_KEY_LEN))
            return true;
    return false;
}

/* One monitor event: [u16 event, u32 value][endpoint]. A failed
 * handshake is counted and logged (rate-limited with the ZAP lines). */
static void
s_mon_read(gw_zap_t *z, time_t *window, unsigned *logged)
{
    zmq_msg_t ev, addr;
    uint16_t event = 0;
    uint32_t value = 0;

    zmq_msg_init(&ev);
    zmq_msg_init(&addr);
    if (zmq_msg_recv(&ev, z->mon, ZMQ_DONTWAIT) >= 0 && zmq_msg_size(&ev) >= 6) {
        memcpy(&event, zmq_msg_data(&ev), 2);
        memcpy(&value, (uint8_t *)zmq_msg_data(&ev) + 2, 4);
    }
    if (zmq_msg_more(&ev))
        zmq_msg_recv(&addr, z->mon, ZMQ_DONTWAIT);
    if (event == ZMQ_EVENT_HANDSHAKE_FAILED_PROTOCOL ||
        event == ZMQ_EVENT_HANDSHAKE_FAILED_NO_DETAIL) {
        time_t now = time(NULL);

        atomic_fetch_add(&z->handshake_failed, 1);
        if (now != *window) {
            *window = now;
            *logged = 0;
        }
        if ((*logged)++ < 5)
            gw_log(GW_LOG_WARN, "backend: a peer failed the handshake (%s 0x%x)%s",
                   event == ZMQ_EVENT_HANDSHAKE_FAILED_PROTOCOL ? "protocol error" : "no detail",
                   (unsigned)value,
                   value == ZMQ_PROTOCOL_ERROR_ZMTP_MECHANISM_MISMATCH
                       ? ": a worker without CURVE keys?"
                       : "");
    }
    zmq_msg_close(&ev);
    zmq_msg_close(&addr);
}

/* ZAP (RFC 27): request = version, request id, domain, address, identity,
 * mechanism, credentials...; reply = version, request id, status code,
 * status text, user id, metadata. */
static void *
s_zap_main(void *arg)
{
    gw_zap_t *z = arg;
    zmq_msg_t parts[8];
    time_t window = 0;
    unsigned logged = 0;

    for (;;) {
        char z85[PROTO_Z85_KEY_LEN + 1] = "";
        const char *code = "400", *text = "not allowed";
        bool ok = false;
        int n, i;
        zmq_pollitem_t items[2] = {{.socket = z->rep, .events = ZMQ_POLLIN},
                                   {.socket = z->mon, .events = ZMQ_POLLIN}};

        if (zmq_poll(items, z->mon ? 2 : 1, -1) < 0) {
            if (zmq_errno() == ETERM)
                break;
            continue;
        }
        if (z->mon && (items[1].revents & ZMQ_POLLIN))
            s_mon_read(z, &window, &logged);
        if (!(items[0].revents & ZMQ_POLLIN))
            continue;
        n = s_zap_recv(z->rep, parts, 8);

        if (n < 0) {
            for (i = 0; i < -1 - n; i++)
                zmq_msg_close(&parts[i]);
            if (zmq_errno() == ETERM)
                break;
            continue;
        }
        if (n >= 7 && zmq_msg_size(&parts[5]) == 5 &&
            !memcmp(zmq_msg_data(&parts[5]), "CURVE", 5) && zmq_msg_size(&parts[6]) == 32 &&
            zmq_z85_encode(z85, zmq_msg_data(&parts[6]), 32) != NULL) {
            ok = s_zap_allowed(z, z85);
        }
        if (ok) {
            code = "200";
            text = "OK";
        } else {
            time_t now = time(NULL);

            atomic_fetch_add(&z->refused, 1);
            /* Rate-limited here rather than with gw_log_limited, whose
             * window is not thread-safe; only a prefix of the public key. */
            if (now != window) {
                window = now;
                logged = 0;
            }
            if (logged++ < 5)
                gw_log(GW_LOG_WARN, "backend: refused a worker (CURVE key %.8s...)",
                       z85[0] ? z85 : "none");
        }
        if (n >= 2) {
            zmq_send(z->rep, "1.0", 3, ZMQ_SNDMORE);
            zmq_send(z->rep, zmq_msg_data(&parts[1]), zmq_msg_size(&parts[1]), ZMQ_SNDMORE);
            zmq_send(z->rep, code, 3, ZMQ_SNDMORE);
            zmq_send(z->rep, text, strlen(text), ZMQ_SNDMORE);
            zmq_send(z->rep, ok ? z85 : "", ok ? 8 : 0, ZMQ_SNDMORE);
            zmq_send(z->rep, "", 0, 0);
        }
        for (i = 0; i < n; i++)
            zmq_msg_close(&parts[i]);
    }
    zmq_close(z->rep);
    z->rep = NULL;
    if (z->mon)
        zmq_close(z->mon);
    z->mon = NULL;
    return NULL;
}

/* Makes the ROUTER a CURVE server and starts the ZAP handler, before the
 * ROUTER binds (a CURVE server without a handler lets every client in).
 * 0; -1 with the reason printed. */
static int
s_curve_setup(gw_backend_t *b, const gw_config_t *cfg)
{
    char secret[PROTO_Z85_KEY_LEN + 1], public[PROTO_Z85_KEY_LEN + 1], err[600];
    gw_zap_t *z = &b->zap;
    bool world = false;
    int one = 1;

    if (!cfg->curve_allow_file[0]) {
        fprintf(stderr, "wsgate: --curve-secret-file needs --curve-allow-file (the workers' "
                        "public keys): without it every worker would be refused\n");
        return -1;
    }
    if (proto_key_read(cfg->curve_secret_file, secret, &world, err, sizeof(err)) ||
        proto_key_allow_load(cfg->curve_allow_file, &z->keys, &z->n_keys, err, sizeof(err))) {
        fprintf(stderr, "wsgate: %s\n", err);
        return -1;
    }
    if (world)
        gw_log(GW_LOG_WARN, "%s is readable by others (chmod 600 it)", cfg->curve_secret_file);
    if (z->n_keys == 0)
        gw_log(GW_LOG_WARN, "%s lists no worker keys: every worker is refused",
               cfg->curve_allow_file);
    if (zmq_curve_public(public, secret) != 0) {
        fprintf(stderr, "wsgate: %s: not a CURVE secret key\n", cfg->curve_secret_file);
        return -1;
    }
    z->rep = zmq_socket(b->zctx, ZMQ_REP);
    if (!z->rep || zmq_bind(z->rep, GW_ZAP_ENDPOINT) < 0) {
        fprintf(stderr, "wsgate: ZAP handler: %s\n", zmq_strerror(zmq_errno()));
        return -1;
    }
    if (zmq_setsockopt(b->sock, ZMQ_CURVE_SERVER, &one, sizeof(one)) < 0 ||
        zmq_setsockopt(b->sock, ZMQ_CURVE_SECRETKEY, secret, PROTO_Z85_KEY_LEN) < 0 ||
        zmq_setsockopt(b->sock, ZMQ_ZAP_DOMAIN, "wsgate", 6) < 0) {
        fprintf(stderr, "wsgate: CURVE: %s\n", zmq_strerror(zmq_errno()));
        return -1;
    }
    memset(secret, 0, sizeof(secret));
    /* Handshake failures never reach ZAP: the monitor reports them. Best
     * effort: without it only those go uncounted. */
    if (zmq_socket_monitor(b->sock, GW_MON_ENDPOINT,
                           ZMQ_EVENT_HANDSHAKE_FAILED_PROTOCOL |
                               ZMQ_EVENT_HANDSHAKE_FAILED_NO_DETAIL) == 0) {
        z->mon = zmq_socket(b->zctx, ZMQ_PAIR);
        if (z->mon && zmq_connect(z->mon, GW_MON_ENDPOINT) < 0) {
            zmq_close(z->mon);
            z->mon = NULL;
        }
    }
    /* The thread gets the sockets: pthread_create is the full barrier
     * ZeroMQ asks for when a socket changes threads. */
    if (pthread_create(&z->thread, NULL, s_zap_main, z) != 0) {
        fprintf(stderr, "wsgate: cannot start the ZAP thread\n");
        return -1;
    }
    z->started = true;
    gw_log(GW_LOG_INFO, "CURVE on, server public key %s, %zu worker keys allowed", public,
           z->n_keys);
    return 0;
}

/* Stops the ZAP thread and closes the context. The ROUTER is closed. */
static void
s_ctx_close(gw_backend_t *b)
{
    zmq_ctx_shutdown(b->zctx);
    if (b->zap.started)
        pthread_join(b->zap.thread, NULL);
    else if (b->zap.rep)
        zmq_close(b->zap.rep);
    if (!b->zap.started && b->zap.mon)
        zmq_close(b->zap.mon);
    zmq_ctx_term(b->zctx);
    free(b->zap.keys);
}

gw_backend_t *
gw_backend_new(gw_t *gw, const gw_config_t *cfg, gw_metrics_t *metrics, void *ev_loop)
{
    gw_backend_t *b = calloc(1, sizeof(*b));
    int one = 1, zero = 0, hwm = 100000, hb_ivl = 1000, hb_timeout = 3000, fd;
    double hb_check;
    size_t fdsz = sizeof(fd);

    if (!b)
        return NULL;
    b->gw = gw;
    b->cfg = cfg;
    b->m = metrics;
    b->loop = ev_loop;
    proto_buf_init(&b->scratch, 0);
    b->services = calloc(GW_MAX_SERVICES, sizeof(*b->services));
    if (!b->services)
        goto out_free;
    b->zctx = zmq_ctx_new();
    if (!b->zctx)
        goto out_free;
    b->sock = zmq_socket(b->zctx, ZMQ_ROUTER);
    if (!b->sock)
        goto out_ctx;
    /* Without MANDATORY a ROUTER silently drops messages to peers it does
     * not know; with it, the send fails and the request is answered. */
    zmq_setsockopt(b->sock, ZMQ_ROUTER_MANDATORY, &one, sizeof(one));
    zmq_setsockopt(b->sock, ZMQ_LINGER, &zero, sizeof(zero));
    zmq_setsockopt(b->sock, ZMQ_SNDHWM, &hwm, sizeof(hwm));
    zmq_setsockopt(b->sock, ZMQ_RCVHWM, &hwm, sizeof(hwm));
    /* ZeroMQ's own heartbeats find a TCP link that died without a FIN (a
     * cut cable, a frozen host) and drop it, so the worker reconnects. */
    zmq_setsockopt(b->sock, ZMQ_HEARTBEAT_IVL, &hb_ivl, sizeof(hb_ivl));
    zmq_setsockopt(b->sock, ZMQ_HEARTBEAT_TIMEOUT, &hb_timeout, sizeof(hb_timeout));
    if (cfg->curve_secret_file[0] && s_curve_setup(b, cfg))
        goto out_sock;
    if (zmq_bind(b->sock, cfg->backend) < 0) {
        fprintf(stderr, "wsgate: cannot bind backend %s: %s\n", cfg->backend,
                zmq_strerror(zmq_errno()));
        goto out_sock;
    }
    if (zmq_getsockopt(b->sock, ZMQ_FD, &fd, &fdsz) < 0)
        goto out_sock;
    ev_io_init(&b->io, s_io_cb, fd, EV_READ);
    b->io.data = b;
    ev_io_start(b->loop, &b->io);
    ev_prepare_init(&b->prepare, s_prepare_cb);
    b->prepare.data = b;
    ev_prepare_start(b->loop, &b->prepare);
    ev_idle_init(&b->idle, s_idle_cb);
    b->idle.data = b;
    /* A dead worker's requests are answered when it is found dead, so the
     * check cannot wait for traffic: a sixth of the timeout, 50 ms..1 s. */
    hb_check = cfg->worker_timeout_ms / 6000.0;
    hb_check = hb_check < 0.05 ? 0.05 : hb_check > 1.0 ? 1.0 : hb_check;
    b->hb_check_ms = (uint64_t)(hb_check * 1000.0);
    ev_timer_init(&b->heartbeat, s_heartbeat_cb, hb_check, hb_check);
    b->heartbeat.data = b;
    ev_timer_start(b->loop, &b->heartbeat);
    b->dirty = true;
    return b;

out_sock:
    zmq_close(b->sock);
out_ctx:
    s_ctx_close(b);
out_free:
    free(b->services);
    proto_buf_fini(&b->scratch);
    free(b);
    return NULL;
}

void
gw_backend_destroy(gw_backend_t **self_p)
{
    gw_backend_t *b = self_p ? *self_p : NULL;
    unsigned i;

    if (!b)
        return;
    ev_io_stop(b->loop, &b->io);
    ev_prepare_stop(b->loop, &b->prepare);
    ev_idle_stop(b->loop, &b->idle);
    ev_timer_stop(b->loop, &b->heartbeat);
    zmq_close(b->sock);
    s_ctx_close(b);
    for (i = 0; i < GW_MAX_WORKERS; i++) {
        free(b->workers[i].svcs);
        free(b->workers[i].svc_flags);
    }
    free(b->services);
    proto_buf_fini(&b->scratch);
    free(b);
    *self_p = NULL;
}

int
gw_backend_route(gw_backend_t *b, proto_span_t svc, proto_span_t key, bool *retry_safe)
{
    uint64_t now = s_now_ms(b);
    unsigned k;
    int i;

    if (now - b->last_expiry_ms >= 100)
        s_expire(b);
    for (k = 0; k < b->n_services; k++) {
        gw_service_t *s = &b->services[k];

        if (s->name_len != svc.len || memcmp(s->name, svc.ptr, svc.len))
            continue;
        i = proto_rdv_pick(s->seeds, s->n, proto_rdv_key(svc, key));
        if (retry_safe)
            *retry_safe = s->retry_safe;
        return i < 0 ? -1 : s->slots[i];
    }
    return -1;
}

const char *
gw_backend_worker_id(const gw_backend_t *b, int worker)
{
    if (worker < 0 || worker >= GW_MAX_WORKERS || !b->workers[worker].live)
        return "-";
    return b->workers[worker].id;
}

uint64_t
gw_backend_seed(const gw_backend_t *b, int worker)
{
    if (worker < 0 || worker >= GW_MAX_WORKERS || !b->workers[worker].live)
        return 0;
    return b->workers[worker].seed;
}

int
gw_backend_send(gw_backend_t *b, int worker, const proto_buf_t *hdr, proto_span_t payload)
{
    gw_worker_t *w;
    int rc;

    if (worker < 0 || worker >= GW_MAX_WORKERS || !b->workers[worker].live ||
        b->workers[worker].unreachable)
        return -2;
    w = &b->workers[worker];
    rc = s_send_frames(b, w->ident, w->ident_len, hdr, payload);
    if (rc == 0) {
        w->requests++;
        return 0;
    }
    b->m->backend_send_failed++;
    if (rc == -2 && !w->unreachable) {
        /* Not forgotten here: its last replies (and BYE) may sit unread
         * in our queue, and forgetting now would answer those requests
         * `unavailable`. It leaves the routing at once; the next pump
         * reads what it sent and then forgets it. */
        w->unreachable = true;
        s_rebuild_index(b);
        b->forget_pending = true;
        b->dirty = true;
    }
    return rc;
}

int
gw_backend_send_routed(gw_backend_t *b, proto_span_t svc, proto_span_t key, const proto_buf_t *hdr,
                       proto_span_t payload, int *worker, bool *retry_safe)
{
    int tries, w, rc = -2;

    for (tries = 0; tries < 2 && rc == -2; tries++) {
        w = gw_backend_route(b, svc, key, retry_safe);
        if (w < 0)
            return -2;
        rc = gw_backend_send(b, w, hdr, payload);
        if (rc == 0 && worker)
            *worker = w;
    }
    return rc;
}

bool
gw_backend_offers(gw_backend_t *b, proto_span_t svc)
{
    unsigned k;

    s_expire(b);
    for (k = 0; k < b->n_services; k++)
        if (b->services[k].name_len == svc.len && !memcmp(b->services[k].name, svc.ptr, svc.len))
            return b->services[k].n > 0;
    return false;
}

unsigned
gw_backend_live(gw_backend_t *b)
{
    s_expire(b);
    return b->n_live;
}

uint64_t
gw_backend_auth_refused(const gw_backend_t *b)
{
    return atomic_load(&((gw_backend_t *)b)->zap.refused);
}

int
gw_backend_render(const gw_backend_t *b, proto_buf_t *out)
{
    char line[512];
    unsigned i;
    int n;

    n = snprintf(line, sizeof(line),
                 "# HELP wsgate_backend_auth_refused_total Workers refused by CURVE "
                 "authentication (ZAP).\n"
                 "# TYPE wsgate_backend_auth_refused_total counter\n"
                 "wsgate_backend_auth_refused_total %llu\n"
                 "# HELP wsgate_backend_handshake_failed_total Peers of the backend whose "
                 "ZMTP handshake failed (with CURVE on: e.g. a worker without keys).\n"
                 "# TYPE wsgate_backend_handshake_failed_total counter\n"
                 "wsgate_backend_handshake_failed_total %llu\n",
                 (unsigned long long)gw_backend_auth_refused(b),
                 (unsigned long long)atomic_load(&((gw_backend_t *)b)->zap.handshake_failed));
    if (proto_buf_append(out, line, (size_t)n))
        return -1;
    n = snprintf(line, sizeof(line),
                 "# HELP wsgate_worker_requests_total Requests routed to each live worker.\n"
                 "# TYPE wsgate_worker_requests_total counter\n");
    if (proto_buf_append(out, line, (size_t)n))
        return -1;
    for (i = 0; i < GW_MAX_WORKERS; i++) {
        const gw_worker_t *w = &b->workers[i];
        char id[PROTO_BK_WORKER_ID_MAX + 1];
        size_t j;

        if (!w->live)
            continue;
        /* Label values cannot hold quotes, backslashes or newlines. */
        for (j = 0; w->id[j]; j++)
            id[j] = (w->id[j] == '"' || w->id[j] == '\\' || w->id[j] == '\n') ? '_' : w->id[j];
        id[j] = '\0';
        n = snprintf(line, sizeof(line), "wsgate_worker_requests_total{worker=\"%s\"} %llu\n", id,
                     (unsigned long long)w->requests);
        if (proto_buf_append(out, line, (size_t)n))
            return -1;
    }
    return 0;
}
