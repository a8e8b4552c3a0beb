/*
 * wsc_client.c - the session: connect, authenticate, resubscribe and
 * recover, the outgoing queue, replies and events, reconnect timing.
 *
 * A session goes through phases on each connection:
 *
 *   IDLE --connect--> OPENING --upgrade--> AUTH --res--> SUBS --all answered--> READY
 *
 * AUTH is skipped without a token, SUBS without subscriptions; raw mode
 * goes from OPENING to READY. Only READY lets the application's queue
 * flow, so nothing the application sent reaches a gateway before the
 * session it belongs to (authenticated, subscribed) exists. Session
 * messages (auth, sub, unsub) go through their own small queue, first.
 *
 * A session that cannot be set up because a service is missing or busy
 * (auth or sub answered no_service, overloaded, unavailable, timeout,
 * internal: typically a gateway that just restarted and has not heard
 * its workers yet) is closed by the client and retried with backoff,
 * like a refused connection. Refusals for good (forbidden, bad_channel)
 * are reported and the subscription forgotten.
 */
#include "wsc_client.h"

#include "wsc_backoff.h"
#include "wsc_frame.h"
#include "wsc_link.h"
#include "wsc_queue.h"
#include "wsc_url.h"

#include "envelope.h"
#include "proto.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>
#include <unistd.h>

#define WSC_SUBPROTOCOL "wsgate.v1.msgpack"
#define WSC_CTRL_MAX 1024 /* session messages per connection: auth + subs */

typedef enum { P_IDLE, P_OPENING, P_AUTH, P_SUBS, P_READY } s_phase_t;

typedef struct {
    char name[PROTO_CHANNEL_MAX + 1];
    char epoch[PROTO_EPOCH_MAX + 1]; /* "" until the first answer */
    uint64_t offset;                 /* last publication delivered */
    uint64_t pending;                /* id of the sub in flight, 0: none */
} s_sub_t;

struct wsc_client {
    wsc_config_t cfg;
    char *url_s;
    char *ca_file_s;
    wsc_url_t url;
    wsc_link_t *link;
    wsc_state_t state;
    s_phase_t phase;
    bool destroying;
    int64_t retry_at;   /* monotonic ms: next attempt while DISCONNECTED */
    unsigned failures;  /* consecutive attempts that did not reach READY */
    int64_t refresh_at; /* monotonic ms: token refresh, 0: none */
    wsc_queue_t *queue;
    wsc_queue_t *ctrl;
    uint64_t next_id;
    uint64_t auth_id;
    uint64_t *inflight;
    size_t ninflight, capinflight;
    s_sub_t *subs;
    size_t nsubs, capsubs;
    proto_buf_t out;
    uint64_t rnd; /* xorshift state when getrandom is unavailable */
    wsc_stats_t st;
};

const char *
wsc_state_name(wsc_state_t s)
{
    switch (s) {
    case WSC_STATE_DISCONNECTED:
        return "disconnected";
    case WSC_STATE_CONNECTING:
        return "connecting";
    case WSC_STATE_CONNECTED:
        return "connected";
    }
    return "?";
}

static int64_t
s_now_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static uint32_t
s_random(wsc_client_t *c)
{
    uint32_t r;

    if (getrandom(&r, sizeof(r), GRND_NONBLOCK) == (ssize_t)sizeof(r))
        return r;
    c->rnd ^= c->rnd << 13;
    c->rnd ^= c->rnd >> 7;
    c->rnd ^= c->rnd << 17;
    return (uint32_t)(c->rnd >> 32);
}

/* Copies a span into a C string buffer of cap bytes (the parsers bound
 * every span and refuse NULs, so nothing is cut in practice). */
static const char *
s_cstr(char *buf, size_t cap, proto_span_t s)
{
    size_t n = s.len < cap - 1 ? s.len : cap - 1;

    if (n)
        memcpy(buf, s.ptr, n);
    buf[n] = 0;
    return buf;
}

static void
s_set_state(wsc_client_t *c, wsc_state_t st, int code, const char *reason)
{
    c->state = st;
    if (c->cfg.on_state && !c->destroying)
        c->cfg.on_state(c, st, code, reason ? reason : "", c->cfg.user);
}

static void
s_reply_err(wsc_client_t *c, uint64_t id, const char *code, const char *msg)
{
    wsc_reply_t r = {.id = id, .ok = false, .code = code, .msg = msg};

    if (c->cfg.on_reply && !c->destroying)
        c->cfg.on_reply(c, &r, c->cfg.user);
}

static void
s_event(wsc_client_t *c, wsc_event_t *ev)
{
    static const char empty[] = "";

    ev->svc = ev->svc ? ev->svc : empty;
    ev->channel = ev->channel ? ev->channel : empty;
    ev->epoch = ev->epoch ? ev->epoch : empty;
    ev->user = ev->user ? ev->user : empty;
    ev->code = ev->code ? ev->code : empty;
    if (ev->data && ev->len == 0)
        ev->data = NULL;
    if (c->cfg.on_event && !c->destroying)
        c->cfg.on_event(c, ev, c->cfg.user);
}

/* ---- in flight ---- */

static int
s_inflight_add(wsc_client_t *c, uint64_t id)
{
    if (c->ninflight == c->capinflight) {
        size_t cap = c->capinflight ? c->capinflight * 2 : 16;
        uint64_t *p = realloc(c->inflight, cap * sizeof(*p));

        if (!p)
            return -1;
        c->inflight = p;
        c->capinflight = cap;
    }
    c->inflight[c->ninflight++] = id;
    return 0;
}

static bool
s_inflight_take(wsc_client_t *c, uint64_t id)
{
    size_t i;

    for (i = 0; i < c->ninflight; i++)
        if (c->inflight[i] == id) {
            c->inflight[i] = c->inflight[--c->ninflight];
            return true;
        }
    return false;
}

/* ---- subscriptions ---- */

static s_sub_t *
s_sub_find(wsc_client_t *c, const char *name, size_t len)
{
    size_t i;

    for (i = 0; i < c->nsubs; i++)
        if (strlen(c->subs[i].name) == len && !memcmp(c->subs[i].name, name, len))
            return &c->subs[i];
    return NULL;
}

static s_sub_t *
s_sub_by_pending(wsc_client_t *c, uint64_t id)
{
    size_t i;

    for (i = 0; i < c->nsubs; i++)
        if (c->subs[i].pending == id)
            return &c->subs[i];
    return NULL;
}

static void
s_sub_remove(wsc_client_t *c, s_sub_t *s)
{
    size_t i = (size_t)(s - c->subs);

    memmove(&c->subs[i], &c->subs[i + 1], (c->nsubs - i - 1) * sizeof(*s));
    c->nsubs--;
}

static bool
s_subs_pending(const wsc_client_t *c)
{
    size_t i;

    for (i = 0; i < c->nsubs; i++)
        if (c->subs[i].pending)
            return true;
    return false;
}

/* ---- sending ---- */

static uint64_t
s_id(wsc_client_t *c)
{
    return ++c->next_id;
}

/* Asks for a writeable callback if something may be written now. */
static void
s_want_write(wsc_client_t *c)
{
    if (wsc_queue_count(c->ctrl) ||
        (c->phase == P_READY && wsc_queue_count(c->queue) && c->ninflight < c->cfg.max_inflight))
        wsc_link_want_write(c->link);
}

/* Moves the frame built in c->out into a queue. */
static int
s_enqueue(wsc_client_t *c, wsc_queue_t *q, bool binary, uint64_t id)
{
    wsc_msg_t *m = wsc_msg_new(wsc_link_headroom(), proto_buf_payload(&c->out), c->out.len, binary,
                               id),
              *old;

    proto_buf_reset(&c->out);
    if (!m)
        return -1;
    old = wsc_queue_push(q, &m);
    if (old) {
        if (old->id)
            s_reply_err(c, old->id, "dropped", "dropped from the full outgoing queue");
        wsc_msg_destroy(&old);
    }
    s_want_write(c);
    return 0;
}

static void
s_close(wsc_client_t *c, int code, const char *reason)
{
    wsc_link_close(c->link, code, reason);
}

static void
s_ready(wsc_client_t *c)
{
    c->phase = P_READY;
    c->failures = 0;
    c->st.connects++;
    s_set_state(c, WSC_STATE_CONNECTED, 0, NULL);
    s_want_write(c);
}

static int
s_send_sub(wsc_client_t *c, s_sub_t *s)
{
    uint64_t id = s_id(c);

    if (wsc_frame_sub(&c->out, id, s->name, s->epoch[0] ? s->epoch : NULL, s->offset) ||
        s_enqueue(c, c->ctrl, true, 0))
        return -1;
    s->pending = id;
    return 0;
}

static void
s_start_subs(wsc_client_t *c)
{
    size_t i;

    c->phase = P_SUBS;
    for (i = 0; i < c->nsubs; i++)
        if (s_send_sub(c, &c->subs[i])) {
            s_close(c, 1000, "out of memory");
            return;
        }
    if (!s_subs_pending(c))
        s_ready(c);
}

static int
s_send_auth(wsc_client_t *c, const char *token)
{
    uint64_t id = s_id(c);

    if (wsc_frame_auth(&c->out, id, token) || s_enqueue(c, c->ctrl, true, 0))
        return -1;
    c->auth_id = id;
    return 0;
}

/* ---- link callbacks ---- */

static void
s_on_opened(void *u)
{
    wsc_client_t *c = u;
    const char *token;

    if (c->url.raw) {
        s_ready(c);
        return;
    }
    token = c->cfg.token ? c->cfg.token(c, c->cfg.user) : NULL;
    if (token && *token) {
        c->phase = P_AUTH;
        if (s_send_auth(c, token))
            s_close(c, 1000, "auth: invalid token");
        return;
    }
    s_start_subs(c);
}

static bool
s_retryable(proto_span_t code)
{
    static const char *const codes[] = {"no_service", "overloaded", "unavailable", "timeout",
                                        "internal"};
    size_t i;

    for (i = 0; i < sizeof(codes) / sizeof(codes[0]); i++)
        if (code.len == strlen(codes[i]) && !memcmp(code.ptr, codes[i], code.len))
            return true;
    return false;
}

static void
s_on_auth(wsc_client_t *c, const wsc_frame_t *f)
{
    char why[64];

    c->auth_id = 0;
    if (f->op == WSC_OP_RES) {
        proto_span_t user;
        uint64_t exp;
        time_t now = time(NULL);

        if (wsc_frame_auth_answer(f->data, &user, &exp) != PROTO_OK)
            c->st.bad_frames++;
        /* refresh at three quarters of the remaining lifetime */
        else if (exp > (uint64_t)now)
            c->refresh_at = s_now_ms() + (int64_t)(exp - (uint64_t)now) * 750;
        if (c->phase == P_AUTH)
            s_start_subs(c);
        return;
    }
    if (c->phase == P_AUTH) {
        if (s_retryable(f->code)) {
            snprintf(why, sizeof(why), "auth: %.*s", (int)f->code.len, (const char *)f->code.ptr);
            s_close(c, 1000, why);
        }
        /* refused for good: the gateway closes with 4003 */
        return;
    }
    /* a refused refresh: try again in a while; the old token runs on */
    c->refresh_at = s_now_ms() + 5000;
}

static void
s_on_sub_answer(wsc_client_t *c, s_sub_t *s, const wsc_frame_t *f)
{
    wsc_event_t ev;
    char epoch[PROTO_EPOCH_MAX + 1], user[WSC_USER_MAX + 1], code[PROTO_CODE_MAX + 1], why[64];
    char chan[PROTO_CHANNEL_MAX + 1];

    s->pending = 0;
    if (f->op == WSC_OP_ERR) {
        if (f->code.len == 18 && !memcmp(f->code.ptr, "already_subscribed", 18)) {
            /* nothing lost: keep it */
        } else if (s_retryable(f->code)) {
            snprintf(why, sizeof(why), "sub: %.*s", (int)f->code.len, (const char *)f->code.ptr);
            s_close(c, 1000, why);
            return;
        } else {
            memcpy(chan, s->name, sizeof(chan));
            s_sub_remove(c, s);
            memset(&ev, 0, sizeof(ev));
            ev.kind = WSC_EV_SUB_FAILED;
            ev.channel = chan;
            ev.code = s_cstr(code, sizeof(code), f->code);
            s_event(c, &ev);
        }
    } else {
        wsc_sub_answer_t a;
        bool had = s->epoch[0] != 0, same;
        uint32_t i, n;

        if (wsc_frame_sub_answer(f->data, &a) != PROTO_OK) {
            c->st.bad_frames++;
            s_close(c, 1000, "sub: malformed answer");
            return;
        }
        s_cstr(epoch, sizeof(epoch), a.epoch);
        same = had && !strcmp(epoch, s->epoch);
        memcpy(chan, s->name, sizeof(chan));
        memset(&ev, 0, sizeof(ev));
        ev.kind = WSC_EV_SUBSCRIBED;
        ev.channel = chan;
        ev.epoch = epoch;
        ev.offset = a.offset;
        ev.recovered = !had || (same && a.recovered);
        s_event(c, &ev);
        /* the callback may have (un)subscribed, moving the array: look again */
        if (!(s = s_sub_find(c, chan, strlen(chan))))
            goto out;
        if (!(same && a.recovered)) {
            snprintf(s->epoch, sizeof(s->epoch), "%s", epoch);
            s->offset = a.offset;
        } else {
            /* exactly the missed publications, in order */
            for (i = 0, n = a.npubs; i < n; i++) {
                uint64_t off;
                proto_span_t u, d;

                if (wsc_frame_sub_answer_next(&a, &off, &u, &d) != PROTO_OK) {
                    c->st.bad_frames++;
                    break;
                }
                if (off <= s->offset)
                    continue;
                s->offset = off;
                memset(&ev, 0, sizeof(ev));
                ev.kind = WSC_EV_PUB;
                ev.channel = chan;
                ev.epoch = epoch;
                ev.offset = off;
                ev.user = s_cstr(user, sizeof(user), u);
                ev.data = d.ptr;
                ev.len = d.len;
                s_event(c, &ev);
                if (!(s = s_sub_find(c, chan, strlen(chan))))
                    goto out;
            }
            if (a.offset > s->offset)
                s->offset = a.offset;
        }
    }
out:
    if (c->phase == P_SUBS && !s_subs_pending(c))
        s_ready(c);
}

static void
s_on_pub(wsc_client_t *c, const wsc_frame_t *f)
{
    s_sub_t *s = s_sub_find(c, (const char *)f->channel.ptr, f->channel.len);
    char channel[PROTO_CHANNEL_MAX + 1], epoch[PROTO_EPOCH_MAX + 1], user[WSC_USER_MAX + 1];
    wsc_event_t ev;

    if (!s || s->pending) /* unsubscribed meanwhile, or the recovery answer will carry it */
        return;
    s_cstr(epoch, sizeof(epoch), f->epoch);
    if (s->epoch[0] && !strcmp(epoch, s->epoch)) {
        if (f->offset <= s->offset)
            return; /* already delivered */
        if (f->offset != s->offset + 1) {
            if (s_send_sub(c, s)) /* a gap: recover from the last one seen */
                s_close(c, 1000, "out of memory");
            return;
        }
    } else if (s->epoch[0]) {
        if (s_send_sub(c, s)) /* another epoch: the answer says what was lost */
            s_close(c, 1000, "out of memory");
        return;
    } else {
        snprintf(s->epoch, sizeof(s->epoch), "%s", epoch);
    }
    s->offset = f->offset;
    memset(&ev, 0, sizeof(ev));
    ev.kind = WSC_EV_PUB;
    ev.channel = s_cstr(channel, sizeof(channel), f->channel);
    ev.epoch = epoch;
    ev.offset = f->offset;
    ev.user = s_cstr(user, sizeof(user), f->user);
    ev.data = f->data.ptr;
    ev.len = f->data.len;
    s_event(c, &ev);
}

static void
s_on_message(void *u, const uint8_t *p, size_t len, bool binary)
{
    wsc_client_t *c = u;
    wsc_frame_t f;
    wsc_event_t ev;
    const char *why;
    char a[PROTO_CHANNEL_MAX + 1], b[WSC_USER_MAX + 1];
    char code[PROTO_CODE_MAX + 1], msg[WSC_MSG_TEXT_MAX + 1];
    s_sub_t *s;

    c->st.received++;
    memset(&ev, 0, sizeof(ev));
    if (c->url.raw) {
        ev.kind = WSC_EV_RAW;
        ev.binary = binary;
        ev.data = p;
        ev.len = len;
        s_event(c, &ev);
        return;
    }
    /* msgpack subprotocol: binary frames only; bad ones harm nothing */
    if (!binary || wsc_frame_parse(p, len, &f, &why) != PROTO_OK) {
        c->st.bad_frames++;
        return;
    }
    switch (f.op) {
    case WSC_OP_RES:
    case WSC_OP_ERR:
        if (!f.has_id) {
            if (f.op == WSC_OP_ERR && !f.str_id) /* a frame the gateway could not read */
                s_reply_err(c, 0, s_cstr(code, sizeof(code), f.code),
                            s_cstr(msg, sizeof(msg), f.msg));
            else
                c->st.bad_frames++;
            return;
        }
        if (f.id && f.id == c->auth_id) {
            s_on_auth(c, &f);
        } else if (f.id && (s = s_sub_by_pending(c, f.id))) {
            s_on_sub_answer(c, s, &f);
        } else if (s_inflight_take(c, f.id)) {
            wsc_reply_t r = {.id = f.id, .ok = f.op == WSC_OP_RES};

            s_want_write(c); /* a slot in flight is free */

            if (r.ok) {
                r.data = f.data.len ? f.data.ptr : NULL;
                r.len = f.data.len;
            } else {
                r.code = s_cstr(code, sizeof(code), f.code);
                r.msg = s_cstr(msg, sizeof(msg), f.msg);
            }
            if (c->cfg.on_reply)
                c->cfg.on_reply(c, &r, c->cfg.user);
        } else if (f.id == 0 || f.id > c->next_id) {
            c->st.bad_frames++; /* answers nothing we sent */
        }
        /* else: the answer to a sub of a channel unsubscribed since */
        return;
    case WSC_OP_PUSH:
        ev.kind = WSC_EV_PUSH;
        ev.svc = s_cstr(a, sizeof(a), f.svc);
        ev.data = f.data.ptr;
        ev.len = f.data.len;
        s_event(c, &ev);
        return;
    case WSC_OP_MSG:
        s_on_pub(c, &f);
        return;
    case WSC_OP_JOIN:
    case WSC_OP_LEAVE:
        if (!s_sub_find(c, (const char *)f.channel.ptr, f.channel.len))
            return;
        ev.kind = f.op == WSC_OP_JOIN ? WSC_EV_JOIN : WSC_EV_LEAVE;
        ev.channel = s_cstr(a, sizeof(a), f.channel);
        ev.user = s_cstr(b, sizeof(b), f.user);
        s_event(c, &ev);
        return;
    }
}

static void
s_on_oversized(void *u)
{
    wsc_client_t *c = u;

    c->st.bad_frames++;
}

static int
s_on_writeable(void *u)
{
    wsc_client_t *c = u;
    wsc_queue_t *from = c->ctrl;
    wsc_msg_t *m = wsc_queue_pop(from);

    /* at most max_inflight unanswered requests: more would be answered
     * `overloaded` by the gateway (--max-inflight); they wait here */
    if (!m && c->phase == P_READY && c->ninflight < c->cfg.max_inflight)
        m = wsc_queue_pop(from = c->queue);
    if (!m)
        return 0;
    /* counted in flight before the write: a write that fails loses the
     * connection, and the request is answered "disconnected" */
    if (m->id && s_inflight_add(c, m->id)) {
        wsc_queue_unpop(from, &m);
        return -1;
    }
    if (wsc_link_write(c->link, wsc_msg_payload(m), m->len, m->binary)) {
        wsc_msg_destroy(&m);
        return -1;
    }
    c->st.sent++;
    wsc_msg_destroy(&m);
    s_want_write(c);
    return 0;
}

static void
s_on_closed(void *u, int code, const char *reason)
{
    wsc_client_t *c = u;
    wsc_msg_t *m;
    size_t i;
    uint32_t delay;

    /* what was sent has no answer coming */
    while (c->ninflight) {
        uint64_t id = c->inflight[--c->ninflight];

        s_reply_err(c, id, "disconnected", "the connection was lost before the answer");
    }
    /* session messages are rebuilt for the next connection */
    while ((m = wsc_queue_pop(c->ctrl)))
        wsc_msg_destroy(&m);
    for (i = 0; i < c->nsubs; i++)
        c->subs[i].pending = 0;
    c->auth_id = 0;
    c->refresh_at = 0;
    c->phase = P_IDLE;
    delay =
        wsc_backoff_delay(c->cfg.backoff_base_ms, c->cfg.backoff_max_ms, c->failures, s_random(c));
    if (c->failures < 64)
        c->failures++;
    c->retry_at = s_now_ms() + delay;
    s_set_state(c, WSC_STATE_DISCONNECTED, code, reason);
}

static const wsc_link_ops_t s_ops = {
    .opened = s_on_opened,
    .message = s_on_message,
    .oversized = s_on_oversized,
    .writeable = s_on_writeable,
    .closed = s_on_closed,
};

/* ---- public ---- */

wsc_client_t *
wsc_client_new(const wsc_config_t *cfg)
{
    wsc_client_t *c;
    wsc_link_config_t lc;

    if (!cfg || !cfg->url)
        return NULL;
    c = calloc(1, sizeof(*c));
    if (!c)
        return NULL;
    c->cfg = *cfg;
    if (!c->cfg.queue_max)
        c->cfg.queue_max = 256;
    if (!c->cfg.max_message)
        c->cfg.max_message = 1 << 20;
    if (!c->cfg.backoff_base_ms)
        c->cfg.backoff_base_ms = 500;
    if (!c->cfg.backoff_max_ms)
        c->cfg.backoff_max_ms = 30000;
    if (c->cfg.backoff_max_ms < c->cfg.backoff_base_ms)
        c->cfg.backoff_max_ms = c->cfg.backoff_base_ms;
    if (!c->cfg.max_inflight)
        c->cfg.max_inflight = 64;
    if (!c->cfg.connect_timeout_ms)
        c->cfg.connect_timeout_ms = 10000;
    c->rnd = (uint64_t)time(NULL) << 20 ^ (uint64_t)getpid() ^ (uintptr_t)c;
    c->rnd |= 1;
    proto_buf_init(&c->out, 0);
    if (wsc_url_parse(cfg->url, &c->url))
        goto out_free;
    c->url_s = strdup(cfg->url);
    c->ca_file_s = cfg->ca_file ? strdup(cfg->ca_file) : NULL;
    if (!c->url_s || (cfg->ca_file && !c->ca_file_s))
        goto out_free;
    c->cfg.url = c->url_s;
    c->cfg.ca_file = c->ca_file_s;
    c->queue = wsc_queue_new(c->cfg.queue_max);
    c->ctrl = wsc_queue_new(WSC_CTRL_MAX);
    if (!c->queue || !c->ctrl)
        goto out_free;
    lc.ca_file = c->ca_file_s;
    lc.insecure = cfg->insecure;
    lc.max_message = c->cfg.max_message;
    lc.connect_timeout_ms = c->cfg.connect_timeout_ms;
    c->link = wsc_link_new(&lc, &s_ops, c);
    if (!c->link)
        goto out_free;
    c->state = WSC_STATE_DISCONNECTED;
    c->retry_at = 0; /* connect at the first service */
    return c;
out_free:
    wsc_queue_destroy(&c->queue);
    wsc_queue_destroy(&c->ctrl);
    free(c->url_s);
    free(c->ca_file_s);
    proto_buf_fini(&c->out);
    free(c);
    return NULL;
}

void
wsc_client_destroy(wsc_client_t **self_p)
{
    wsc_client_t *c;
    int i;

    if (!self_p || !*self_p)
        return;
    c = *self_p;
    c->destroying = true;
    if (wsc_link_busy(c->link)) {
        /* a polite close frame, within a bounded wait */
        s_close(c, 1000, "bye");
        for (i = 0; i < 20 && wsc_link_busy(c->link); i++)
            wsc_link_service(c->link, 10);
    }
    wsc_link_destroy(&c->link);
    wsc_queue_destroy(&c->queue);
    wsc_queue_destroy(&c->ctrl);
    free(c->inflight);
    free(c->subs);
    free(c->url_s);
    free(c->ca_file_s);
    proto_buf_fini(&c->out);
    free(c);
    *self_p = NULL;
}

static int
s_connect(wsc_client_t *c)
{
    c->st.attempts++;
    c->phase = P_OPENING;
    s_set_state(c, WSC_STATE_CONNECTING, 0, NULL);
    /* on failure s_on_closed has run (or will): it schedules the retry */
    return wsc_link_connect(c->link, &c->url, c->url.raw ? NULL : WSC_SUBPROTOCOL);
}

int
wsc_service(wsc_client_t *c, int timeout_ms)
{
    int64_t now = s_now_ms(), wait = timeout_ms < 0 ? 0 : timeout_ms;

    if (c->state == WSC_STATE_DISCONNECTED && !wsc_link_busy(c->link) && now >= c->retry_at)
        s_connect(c);
    if (c->refresh_at && now >= c->refresh_at && c->phase == P_READY && !c->auth_id) {
        const char *token = c->cfg.token ? c->cfg.token(c, c->cfg.user) : NULL;

        c->refresh_at = 0;
        if (token && *token && s_send_auth(c, token))
            c->refresh_at = now + 5000;
    }
    if (c->state == WSC_STATE_DISCONNECTED && !wsc_link_busy(c->link) && c->retry_at - now < wait)
        wait = c->retry_at > now ? c->retry_at - now : 0;
    if (c->refresh_at && c->refresh_at - now < wait)
        wait = c->refresh_at > now ? c->refresh_at - now : 0;
    return wsc_link_service(c->link, (int)wait);
}

int
wsc_request(wsc_client_t *c, const char *svc, const char *key, const uint8_t *data, size_t len,
            uint64_t *id)
{
    uint64_t rid;

    if (c->url.raw)
        return -1;
    rid = s_id(c);
    if (wsc_frame_req(&c->out, rid, svc, key, data, len))
        return -1;
    if (id)
        *id = rid;
    return s_enqueue(c, c->queue, true, rid);
}

int
wsc_publish(wsc_client_t *c, const char *channel, const uint8_t *data, size_t len, uint64_t *id)
{
    uint64_t rid;

    if (c->url.raw)
        return -1;
    rid = s_id(c);
    if (wsc_frame_pub(&c->out, rid, channel, data, len))
        return -1;
    if (id)
        *id = rid;
    return s_enqueue(c, c->queue, true, rid);
}

int
wsc_subscribe(wsc_client_t *c, const char *channel)
{
    s_sub_t *s;

    if (c->url.raw || !wsc_frame_channel_ok(channel) || s_sub_find(c, channel, strlen(channel)))
        return -1;
    if (c->nsubs == c->capsubs) {
        size_t cap = c->capsubs ? c->capsubs * 2 : 4;
        s_sub_t *p = realloc(c->subs, cap * sizeof(*p));

        if (!p)
            return -1;
        c->subs = p;
        c->capsubs = cap;
    }
    s = &c->subs[c->nsubs++];
    memset(s, 0, sizeof(*s));
    snprintf(s->name, sizeof(s->name), "%s", channel);
    if (c->phase == P_SUBS || c->phase == P_READY)
        return s_send_sub(c, s);
    return 0;
}

int
wsc_unsubscribe(wsc_client_t *c, const char *channel)
{
    s_sub_t *s;

    if (c->url.raw || !channel || !(s = s_sub_find(c, channel, strlen(channel))))
        return -1;
    s_sub_remove(c, s);
    if (c->phase == P_SUBS || c->phase == P_READY) {
        if (wsc_frame_unsub(&c->out, channel) || s_enqueue(c, c->ctrl, true, 0))
            return -1;
        if (c->phase == P_SUBS && !s_subs_pending(c))
            s_ready(c);
    }
    return 0;
}

int
wsc_send_raw(wsc_client_t *c, const void *p, size_t len, bool binary)
{
    if (!c->url.raw || (len && !p) || proto_buf_append(&c->out, p, len))
        return -1;
    return s_enqueue(c, c->queue, binary, 0);
}

wsc_state_t
wsc_state(const wsc_client_t *c)
{
    return c->state;
}

void
wsc_stats(const wsc_client_t *c, wsc_stats_t *out)
{
    *out = c->st;
    out->queued = wsc_queue_count(c->queue);
    out->dropped = wsc_queue_dropped(c->queue);
    out->inflight = c->ninflight;
}
