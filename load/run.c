/*
 * run.c - a load process's epoll loop and the scenarios (run.h).
 *
 * Phases: CONNECT (paced by --rate or windowed by --handshakes), then for
 * storm and idle HOLD, for echo SEND and DRAIN; then CLOSE (close
 * handshakes, bounded) and DONE. Every phase has a time bound and the
 * whole run has --timeout.
 *
 * Echo requests carry per-connection sequential ids; with at most W
 * outstanding per connection, id % W is the request's slot, which holds
 * its send time (or, open loop, its scheduled send time). Raw endpoints
 * have no ids: replies come back in order, so the oldest outstanding
 * request is the one answered.
 */
#define _GNU_SOURCE
#include "run.h"

#include <arpa/inet.h>
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <sys/epoll.h>
#include <sys/prctl.h>

#include "conn.h"
#include "mpk.h"
#include "pace.h"

#define LD_EVENTS 1024
_Static_assert(LD_MAX_SOURCES <= LD_NET_MAX_SOURCES, "--sources bound");
#define LD_TICK_NS 100000000ull /* handshake and close deadlines */
#define LD_CLOSE_NS 3000000000ull
#define LD_MAX_MESSAGE (64u << 20)

typedef enum {
    PH_CONNECT,
    PH_HOLD,
    PH_SEND,
    PH_DRAIN,
    PH_CLOSE,
    PH_DONE,
} ld_phase_t;

typedef struct {
    uint64_t id; /* 0: free */
    uint64_t t_ns;
} ld_slot_t;

/* Per-connection echo state, beside the connection. */
typedef struct {
    uint32_t inflight;
    uint64_t next_id;  /* ids start at 1 */
    uint64_t next_ack; /* raw: the oldest unanswered id */
    ld_slot_t *slots;  /* cfg->window of them */
} ld_peer_t;

typedef struct {
    const ld_config_t *cfg;
    ld_stats_t *st;
    volatile sig_atomic_t *stop;
    ld_net_t net;
    ld_conn_t *conns;
    ld_peer_t *peers;
    uint32_t n;          /* connections of this process */
    uint32_t key_base;   /* global index of conns[0], for --keys */
    uint32_t next_start; /* conns[0..next_start) were started */
    uint32_t handshaking;
    uint32_t live; /* started and not ended */
    int proc;
    ld_phase_t phase;
    uint64_t start_ns, hard_end_ns, phase_end_ns;
    bool paced_connect;
    ld_pace_t conn_pace;

    /* echo */
    bool open_loop;
    ld_pace_t req_pace;
    uint64_t budget; /* requests this process may still send; UINT64_MAX: no bound */
    uint64_t inflight;
    uint32_t rr;         /* open loop: next connection to try */
    proto_buf_t data;    /* raw: the payload; envelope: its value encoded (mpk) */
    proto_buf_t head;    /* envelope: everything before key and id */
    proto_buf_t expect;  /* JSON: the reply's text after the id */
    proto_buf_t req;     /* a request being built */
    proto_buf_t scratch; /* JSON replies off the fast path, as msgpack */
} ld_run_t;

static uint64_t
s_now(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static uint64_t
s_secs(double s)
{
    return (uint64_t)(s * 1e9);
}

/* ------------------------------------------------------------ requests --- */

/*
 * The constant parts of every request, encoded once through wsproto: the
 * data value, and the envelope up to where key and id go. msgpack:
 * map(n) svc data [key] id; JSON: {"svc":..,"data":.. [,"key":..] ,"id":N}.
 */
static int
s_build_templates(ld_run_t *r)
{
    const ld_config_t *cfg = r->cfg;
    proto_buf_t tmp;
    size_t i;
    int rc = -1;

    proto_buf_init(&tmp, 0);
    if (cfg->raw) {
        if (proto_buf_reserve(&r->data, cfg->size))
            goto out;
        for (i = 0; i < cfg->size; i++)
            proto_buf_payload(&r->data)[i] = (uint8_t)('a' + i % 26);
        r->data.len = cfg->size;
        rc = 0;
        goto out;
    }
    /* data: S bytes, a bin for msgpack, a string of letters for JSON */
    if (proto_buf_reserve(&tmp, cfg->size + 1))
        goto out;
    for (i = 0; i < cfg->size; i++)
        proto_buf_payload(&tmp)[i] = (uint8_t)('a' + i % 26);
    tmp.len = cfg->size;
    if (cfg->enc == PROTO_ENC_MSGPACK ? mpk_write_bin(&r->data, proto_buf_payload(&tmp), tmp.len)
                                      : mpk_write_str(&r->data, proto_buf_payload(&tmp), tmp.len))
        goto out;
    if (cfg->enc == PROTO_ENC_MSGPACK) {
        /* the map header is written per request: with or without key */
        if (mpk_write_cstr(&r->head, "svc") || mpk_write_cstr(&r->head, cfg->svc) ||
            mpk_write_cstr(&r->head, "data") ||
            mpk_write_raw(&r->head, proto_buf_payload(&r->data), r->data.len))
            goto out;
        rc = 0;
        goto out;
    }
    proto_buf_reset(&tmp);
    if (mpk_write_map(&tmp, 2) || mpk_write_cstr(&tmp, "svc") || mpk_write_cstr(&tmp, cfg->svc) ||
        mpk_write_cstr(&tmp, "data") ||
        mpk_write_raw(&tmp, proto_buf_payload(&r->data), r->data.len))
        goto out;
    if (proto_mpk_to_json(proto_span(proto_buf_payload(&tmp), tmp.len), &r->head) != PROTO_OK ||
        r->head.len < 2 || proto_buf_payload(&r->head)[r->head.len - 1] != '}')
        goto out;
    r->head.len--; /* key and id follow */
    /* the reply's tail, for the fast path: ,"data":DATA} */
    if (proto_buf_append(&r->expect, ",\"data\":", 8) ||
        proto_mpk_to_json(proto_span(proto_buf_payload(&r->data), r->data.len), &r->expect) !=
            PROTO_OK ||
        proto_buf_append(&r->expect, "}", 1))
        goto out;
    rc = 0;
out:
    proto_buf_fini(&tmp);
    return rc;
}

static int
s_build_request(ld_run_t *r, ld_conn_t *c, uint64_t id)
{
    const ld_config_t *cfg = r->cfg;
    char key[24], num[24];
    int klen = 0, nlen;

    proto_buf_reset(&r->req);
    if (cfg->keys)
        klen = snprintf(key, sizeof(key), "k%u", (r->key_base + c->index) % cfg->keys);
    if (cfg->enc == PROTO_ENC_MSGPACK) {
        if (mpk_write_map(&r->req, cfg->keys ? 4 : 3) ||
            proto_buf_append(&r->req, proto_buf_payload(&r->head), r->head.len) ||
            (cfg->keys &&
             (mpk_write_cstr(&r->req, "key") || mpk_write_str(&r->req, key, (size_t)klen))) ||
            mpk_write_cstr(&r->req, "id") || mpk_write_uint(&r->req, id))
            return -1;
        return 0;
    }
    nlen = snprintf(num, sizeof(num), "%" PRIu64, id);
    if (proto_buf_append(&r->req, proto_buf_payload(&r->head), r->head.len) ||
        (cfg->keys &&
         (proto_buf_append(&r->req, ",\"key\":\"", 8) ||
          proto_buf_append(&r->req, key, (size_t)klen) || proto_buf_append(&r->req, "\"", 1))) ||
        proto_buf_append(&r->req, ",\"id\":", 6) || proto_buf_append(&r->req, num, (size_t)nlen) ||
        proto_buf_append(&r->req, "}", 1))
        return -1;
    return 0;
}

/* Sends the next request on c, stamped t_ns (now, or its scheduled time). */
static void
s_send(ld_run_t *r, ld_conn_t *c, uint64_t t_ns)
{
    ld_peer_t *p = &r->peers[c->index];
    uint64_t id = ++p->next_id;
    ld_slot_t *slot = &p->slots[id % r->cfg->window];
    const uint8_t *payload;
    size_t len;
    unsigned op;

    if (r->cfg->raw) {
        payload = proto_buf_payload(&r->data);
        len = r->data.len;
        op = LD_WS_BINARY;
    } else {
        if (s_build_request(r, c, id))
            return;
        payload = proto_buf_payload(&r->req);
        len = r->req.len;
        op = r->cfg->enc == PROTO_ENC_MSGPACK ? LD_WS_BINARY : LD_WS_TEXT;
    }
    slot->id = id;
    slot->t_ns = t_ns;
    p->inflight++;
    r->inflight++;
    if (r->budget != UINT64_MAX)
        r->budget--;
    r->st->sent++;
    r->st->bytes_out += len;
    if (!r->st->send_start_ns)
        r->st->send_start_ns = t_ns;
    /* on failure ended() has counted this request as missing */
    ld_conn_send(&r->net, c, op, payload, len);
}

static bool
s_may_send(const ld_run_t *r)
{
    return r->phase == PH_SEND && r->budget && !*r->stop;
}

/* A reply to (raw: the oldest request of) c. */
static void
s_answered(ld_run_t *r, ld_conn_t *c, uint64_t id, bool ok, bool good, uint64_t now_ns)
{
    ld_peer_t *p = &r->peers[c->index];
    ld_slot_t *slot = &p->slots[id % r->cfg->window];

    if (!id || slot->id != id || !p->inflight) {
        r->st->bad_replies++;
        return;
    }
    slot->id = 0;
    p->inflight--;
    r->inflight--;
    if (ok) {
        if (good)
            r->st->replies++;
        else
            r->st->bad_replies++;
        ld_hist_record(&r->st->latency, now_ns > slot->t_ns ? (now_ns - slot->t_ns) / 1000 : 0);
    }
    r->st->send_end_ns = now_ns;
    if (!r->open_loop && s_may_send(r) && ld_conn_is_open(c))
        s_send(r, c, now_ns);
}

/* One reply envelope, as msgpack: op, id, error code, data. */
static int
s_reply_fields(proto_span_t in, proto_span_t *op, uint64_t *id, proto_span_t *code,
               proto_span_t *data)
{
    mpk_reader_t rd;
    mpk_item_t it;
    proto_span_t k;
    uint32_t n, i;

    mpk_reader_init(&rd, in.ptr, in.len);
    if (mpk_read_map(&rd, &n) != PROTO_OK)
        return -1;
    for (i = 0; i < n; i++) {
        if (mpk_read_str(&rd, &k) != PROTO_OK)
            return -1;
        if (k.len == 2 && !memcmp(k.ptr, "op", 2)) {
            if (mpk_read_str(&rd, op) != PROTO_OK)
                return -1;
        } else if (k.len == 2 && !memcmp(k.ptr, "id", 2)) {
            if (mpk_read(&rd, &it) != PROTO_OK || it.type != MPK_UINT)
                return -1;
            *id = it.v.u;
        } else if (k.len == 4 && !memcmp(k.ptr, "code", 4)) {
            if (mpk_read_str(&rd, code) != PROTO_OK)
                return -1;
        } else if (k.len == 4 && !memcmp(k.ptr, "data", 4)) {
            if (mpk_skip(&rd, MPK_MAX_DEPTH, data) != PROTO_OK)
                return -1;
        } else if (mpk_skip(&rd, MPK_MAX_DEPTH, NULL) != PROTO_OK) {
            return -1;
        }
    }
    return 0;
}

/*
 * The gateway writes a JSON result as {"v":1,"op":"res","id":N,"data":D}:
 * read that form without a JSON parser, and anything else through
 * wsproto's converter. 1: done here; 0: not this form.
 */
static int
s_json_fast(ld_run_t *r, ld_conn_t *c, const uint8_t *p, size_t len, uint64_t now_ns)
{
    static const char pre[] = "{\"v\":1,\"op\":\"res\",\"id\":";
    size_t i = sizeof(pre) - 1;
    uint64_t id = 0;

    if (len < i + 1 || memcmp(p, pre, i))
        return 0;
    for (; i < len && p[i] >= '0' && p[i] <= '9' && i < sizeof(pre) + 18; i++)
        id = id * 10 + (uint64_t)(p[i] - '0');
    if (len - i != r->expect.len || memcmp(p + i, proto_buf_payload(&r->expect), r->expect.len))
        return 0;
    s_answered(r, c, id, true, true, now_ns);
    return 1;
}

static void
s_on_message(void *ud, ld_conn_t *c, unsigned opcode, const uint8_t *p, size_t len, uint64_t now_ns)
{
    ld_run_t *r = ud;
    ld_peer_t *pe = &r->peers[c->index];
    proto_span_t op = {0}, code = {0}, data = {0}, in = proto_span(p, len);
    uint64_t id = 0;

    r->st->bytes_in += len;
    if (r->cfg->scenario != LD_SCENARIO_ECHO || !pe->slots) {
        r->st->bad_replies++; /* nobody asked */
        return;
    }
    if (r->cfg->raw) {
        bool same = opcode == LD_WS_BINARY && len == r->data.len &&
                    !memcmp(p, proto_buf_payload(&r->data), len);

        s_answered(r, c, pe->inflight ? pe->next_ack++ + 1 : 0, true, same, now_ns);
        return;
    }
    if (r->cfg->enc == PROTO_ENC_JSON) {
        if (opcode == LD_WS_TEXT && s_json_fast(r, c, p, len, now_ns))
            return;
        proto_buf_reset(&r->scratch);
        if (proto_json_to_mpk(p, len, &r->scratch) != PROTO_OK) {
            r->st->bad_replies++;
            return;
        }
        in = proto_span(proto_buf_payload(&r->scratch), r->scratch.len);
    }
    if (s_reply_fields(in, &op, &id, &code, &data)) {
        r->st->bad_replies++;
        return;
    }
    if (op.len == 3 && !memcmp(op.ptr, "err", 3)) {
        r->st->errors++;
        ld_stable_add(&r->st->err_codes, code.len ? (const char *)code.ptr : "?",
                      code.len ? code.len : 1, 1);
        s_answered(r, c, id, false, false, now_ns);
        return;
    }
    if (op.len != 3 || memcmp(op.ptr, "res", 3)) {
        r->st->bad_replies++; /* a push: not asked for */
        return;
    }
    /* JSON came back through the converter: data is a msgpack str then */
    s_answered(r, c, id, true,
               data.len == r->data.len && !memcmp(data.ptr, proto_buf_payload(&r->data), data.len),
               now_ns);
}

/* --------------------------------------------------------- connections --- */

static void
s_on_opened(void *ud, ld_conn_t *c, uint64_t now_ns)
{
    ld_run_t *r = ud;
    ld_stats_t *st = r->st;

    r->handshaking--;
    st->established++;
    st->open++;
    if (st->open > st->open_max)
        st->open_max = st->open;
    st->last_open_ns = now_ns;
    ld_hist_record(&st->handshake, (now_ns - c->start_ns) / 1000);
}

static void
s_on_pinged(void *ud, ld_conn_t *c, bool answered)
{
    ld_run_t *r = ud;

    (void)c;
    r->st->pings++;
    if (answered)
        r->st->pongs++;
}

static void
s_on_ended(void *ud, ld_conn_t *c, const ld_conn_end_t *end)
{
    ld_run_t *r = ud;
    ld_stats_t *st = r->st;
    ld_peer_t *p = r->peers ? &r->peers[c->index] : NULL;

    r->live--;
    if (p && p->inflight) {
        st->missing += p->inflight;
        r->inflight -= p->inflight;
        p->inflight = 0;
    }
    if (!end->was_open) {
        r->handshaking--;
        if (end->by_client)
            return; /* cancelled at the end of the run */
        st->failed++;
        st->fail[end->fail]++;
        if (end->fail == LD_FAIL_HTTP)
            ld_itable_add(&st->http, end->http_status, 1);
        return;
    }
    st->open--;
    if (end->by_client) {
        st->closed_clean++;
        return;
    }
    st->dropped++;
    ld_itable_add(&st->closes, end->close_code ? end->close_code : 1006, 1);
}

static const ld_conn_ops_t s_ops = {s_on_opened, s_on_message, s_on_pinged, s_on_ended};

/* ------------------------------------------------------------- phases --- */

static void
s_start_conns(ld_run_t *r, uint64_t now)
{
    ld_conn_t *c;

    if (r->cfg->duration && r->cfg->scenario != LD_SCENARIO_ECHO &&
        now >= r->start_ns + s_secs(r->cfg->duration))
        r->n = r->next_start; /* the opening phase is over: the rest is not tried */
    while (r->next_start < r->n && r->handshaking < r->cfg->handshakes && !*r->stop) {
        if (r->paced_connect) {
            if (!ld_pace_due(&r->conn_pace, now))
                break;
            ld_pace_take(&r->conn_pace);
        }
        c = &r->conns[r->next_start++];
        if (!r->st->first_start_ns)
            r->st->first_start_ns = now;
        r->st->attempted++;
        r->handshaking++;
        r->live++;
        ld_conn_start(&r->net, c, now);
        now = s_now();
    }
}

/* Sends what the schedule has due. false: every window is full, so the
 * loop should sleep until a reply frees one rather than spin on the
 * overdue schedule. */
static bool
s_open_loop(ld_run_t *r, uint64_t now)
{
    uint64_t due = ld_pace_due(&r->req_pace, now);
    uint32_t tried;
    ld_conn_t *c;

    if (due > r->budget)
        due = r->budget;
    while (due && s_may_send(r)) {
        /* the next connection with room in its window */
        for (tried = 0; tried < r->n; tried++) {
            c = &r->conns[r->rr];
            r->rr = (r->rr + 1) % r->n;
            if (ld_conn_is_open(c) && r->peers[c->index].inflight < r->cfg->window)
                break;
        }
        if (tried == r->n)
            return false; /* the schedule waits; its lateness is measured */
        s_send(r, c, ld_pace_take(&r->req_pace));
        due--;
    }
    return true;
}

static void
s_close_all(ld_run_t *r, uint64_t now)
{
    uint32_t i;

    r->phase = PH_CLOSE;
    r->phase_end_ns = now + LD_CLOSE_NS;
    for (i = 0; i < r->next_start; i++)
        ld_conn_close(&r->net, &r->conns[i], 1000, now);
}

static void
s_begin_send(ld_run_t *r, uint64_t now)
{
    const ld_config_t *cfg = r->cfg;
    uint32_t i, k;

    r->phase = PH_SEND;
    r->phase_end_ns = cfg->duration ? now + s_secs(cfg->duration) : r->hard_end_ns;
    if (r->open_loop) {
        ld_pace_init(&r->req_pace, cfg->rate / cfg->procs, now,
                     r->budget == UINT64_MAX ? UINT64_MAX : r->budget);
        return;
    }
    /* closed loop: fill every window, then one request per reply */
    for (k = 0; k < cfg->window; k++)
        for (i = 0; i < r->n; i++)
            if (s_may_send(r) && ld_conn_is_open(&r->conns[i]))
                s_send(r, &r->conns[i], now);
}

/* Phase transitions; returns how long the loop may sleep (ns). */
static uint64_t
s_step(ld_run_t *r, uint64_t now)
{
    uint64_t wait = LD_TICK_NS, w;
    uint32_t i;

    if (now >= r->hard_end_ns && r->phase != PH_DONE) {
        fprintf(stderr, "wsgate-load: process %d: hard timeout (--timeout), stopping\n", r->proc);
        r->st->timed_out = 1;
        for (i = 0; i < r->next_start; i++) {
            ld_peer_t *p = r->peers ? &r->peers[i] : NULL;

            if (p && p->inflight)
                r->st->missing += p->inflight;
            if (r->conns[i].state != LD_CONN_DONE && r->conns[i].state != LD_CONN_IDLE) {
                if (r->conns[i].opened)
                    r->st->open--;
                else
                    r->handshaking--;
            }
            ld_conn_fini(&r->conns[i]);
        }
        r->phase = PH_DONE;
        return 0;
    }
    switch (r->phase) {
    case PH_CONNECT:
        s_start_conns(r, now);
        if (*r->stop) {
            s_close_all(r, now);
            break;
        }
        if (r->next_start < r->n) {
            if (r->paced_connect && r->handshaking < r->cfg->handshakes) {
                w = ld_pace_wait(&r->conn_pace, now);
                wait = w < wait ? w : wait;
            }
            break;
        }
        if (r->handshaking)
            break;
        if (r->cfg->scenario == LD_SCENARIO_ECHO) {
            s_begin_send(r, now);
        } else {
            r->phase = PH_HOLD;
            r->phase_end_ns = now + s_secs(r->cfg->hold);
        }
        return 0;
    case PH_HOLD:
        if (*r->stop || now >= r->phase_end_ns)
            s_close_all(r, now);
        else if (r->phase_end_ns - now < wait)
            wait = r->phase_end_ns - now;
        break;
    case PH_SEND:
        if (*r->stop || now >= r->phase_end_ns || !r->budget || (!r->open_loop && !r->inflight)) {
            r->phase = PH_DRAIN;
            r->phase_end_ns = now + s_secs(r->cfg->drain);
            return 0;
        }
        if (r->open_loop) {
            if (s_open_loop(r, now)) {
                w = ld_pace_wait(&r->req_pace, s_now());
                wait = w < wait ? w : wait;
            }
        }
        if (r->phase_end_ns - now < wait)
            wait = r->phase_end_ns - now;
        break;
    case PH_DRAIN:
        if (!r->inflight || *r->stop || now >= r->phase_end_ns)
            s_close_all(r, now); /* ended() counts what is still out as missing */
        break;
    case PH_CLOSE:
        if (!r->live) {
            r->phase = PH_DONE;
        } else if (now >= r->phase_end_ns) {
            for (i = 0; i < r->next_start; i++)
                if (r->conns[i].state != LD_CONN_DONE && r->conns[i].state != LD_CONN_IDLE)
                    ld_conn_tick(&r->net, &r->conns[i], UINT64_MAX);
            r->phase = PH_DONE;
        }
        break;
    case PH_DONE:
        break;
    }
    return wait;
}

static void
s_tick(ld_run_t *r, uint64_t now)
{
    uint32_t i;

    if (!r->handshaking && r->phase != PH_CLOSE)
        return;
    for (i = 0; i < r->next_start; i++)
        if (r->conns[i].state != LD_CONN_DONE)
            ld_conn_tick(&r->net, &r->conns[i], now);
}

static int
s_setup(ld_run_t *r, const ld_config_t *cfg, int proc, ld_stats_t *st)
{
    uint32_t i;
    int k;

    r->cfg = cfg;
    r->st = st;
    r->proc = proc;
    r->n = (uint32_t)ld_config_share(cfg->conns, proc, cfg->procs);
    for (k = 0; k < proc; k++)
        r->key_base += (uint32_t)ld_config_share(cfg->conns, k, cfg->procs);
    r->budget = cfg->count ? ld_config_share(cfg->count, proc, cfg->procs) : UINT64_MAX;
    r->open_loop = cfg->scenario == LD_SCENARIO_ECHO && cfg->rate > 0;
    r->paced_connect = cfg->scenario != LD_SCENARIO_ECHO && cfg->rate > 0;
    proto_buf_init(&r->data, 0);
    proto_buf_init(&r->head, 0);
    proto_buf_init(&r->expect, 0);
    proto_buf_init(&r->req, 0);
    proto_buf_init(&r->scratch, 0);
    /* Open-loop sends wake on a timer: the default 50 us of slack would
     * be counted as latency from the schedule. */
    prctl(PR_SET_TIMERSLACK, 1UL, 0, 0, 0);
    /* OpenSSL loads its providers on first use (milliseconds): not inside
     * the first handshakes' latency */
    {
        char acc[LD_HS_ACCEPT_LEN + 1];

        ld_handshake_accept("dGhlIHNhbXBsZSBub25jZQ==", acc);
    }
    if (ld_net_init(&r->net)) {
        perror("wsgate-load: epoll");
        return -1;
    }
    r->net.target = cfg->target;
    /*
     * Process i connects from 127.0.j.(2 + i), j < --sources. connect()
     * searches the ephemeral ports of each (source, target) pair for a free
     * one, and that search grows with how full the range is: 15000
     * connections from one address cost the client more CPU than the
     * gateway spends accepting them. Spread over 4 they do not.
     */
    for (k = 0; k < cfg->sources && cfg->sources * cfg->procs > 1; k++) {
        struct sockaddr_in *sa = &r->net.sources[r->net.n_sources++];

        sa->sin_family = AF_INET;
        sa->sin_addr.s_addr = htonl(0x7f000002u + ((uint32_t)k << 8) + (uint32_t)proc);
    }
    r->net.host = cfg->host;
    r->net.path = cfg->path;
    r->net.subprotocol = ld_config_subprotocol(cfg);
    r->net.max_msg = LD_MAX_MESSAGE;
    r->net.connect_timeout_ns = s_secs(cfg->connect_timeout);
    r->net.close_timeout_ns = LD_CLOSE_NS - LD_TICK_NS;
    r->net.ops = &s_ops;
    r->net.ud = r;
    r->conns = calloc(r->n, sizeof(*r->conns));
    if (!r->conns)
        goto nomem;
    for (i = 0; i < r->n; i++)
        ld_conn_init(&r->conns[i], i);
    if (cfg->scenario == LD_SCENARIO_ECHO) {
        r->peers = calloc(r->n, sizeof(*r->peers));
        if (!r->peers)
            goto nomem;
        for (i = 0; i < r->n; i++) {
            r->peers[i].slots = calloc(cfg->window, sizeof(ld_slot_t));
            if (!r->peers[i].slots)
                goto nomem;
        }
        if (s_build_templates(r))
            goto nomem;
    }
    return 0;
nomem:
    fprintf(stderr, "wsgate-load: out of memory\n");
    return -1;
}

static void
s_teardown(ld_run_t *r)
{
    uint32_t i;

    if (r->conns)
        for (i = 0; i < r->n; i++)
            ld_conn_fini(&r->conns[i]);
    free(r->conns);
    if (r->peers)
        for (i = 0; i < r->n; i++)
            free(r->peers[i].slots);
    free(r->peers);
    ld_net_fini(&r->net);
    proto_buf_fini(&r->data);
    proto_buf_fini(&r->head);
    proto_buf_fini(&r->expect);
    proto_buf_fini(&r->req);
    proto_buf_fini(&r->scratch);
}

int
ld_run(const ld_config_t *cfg, int proc, ld_stats_t *st, volatile sig_atomic_t *stop)
{
    struct epoll_event evs[LD_EVENTS];
    struct timespec ts;
    uint64_t now, wait, last_tick = 0;
    ld_run_t r;
    int i, n, rc = -1;

    memset(&r, 0, sizeof(r));
    r.stop = stop;
    if (s_setup(&r, cfg, proc, st))
        goto out;
    r.start_ns = s_now();
    r.hard_end_ns = r.start_ns + s_secs(cfg->timeout);
    if (r.paced_connect)
        ld_pace_init(&r.conn_pace, cfg->rate / cfg->procs, r.start_ns, r.n);
    r.phase = PH_CONNECT;
    while (r.phase != PH_DONE) {
        now = s_now();
        wait = s_step(&r, now);
        if (r.phase == PH_DONE)
            break;
        ts.tv_sec = (time_t)(wait / 1000000000ull);
        ts.tv_nsec = (long)(wait % 1000000000ull);
        n = epoll_pwait2(r.net.epfd, evs, LD_EVENTS, &ts, NULL);
        if (n < 0 && errno != EINTR) {
            perror("wsgate-load: epoll_pwait2");
            goto out;
        }
        for (i = 0; i < n; i++)
            ld_conn_event(&r.net, evs[i].data.ptr, evs[i].events, s_now());
        now = s_now();
        if (now - last_tick >= LD_TICK_NS) {
            last_tick = now;
            s_tick(&r, now);
        }
    }
    rc = 0;
out:
    s_teardown(&r);
    st->done = 1;
    return rc;
}
