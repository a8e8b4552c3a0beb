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
 *
 * A connection is *set up* when it can be used: after the 101, and with a
 * token source after its auth (id 0) was answered res, and for a fanout
 * subscriber after its sub (id 0) was answered too. `handshaking` counts
 * connections in setup, so --handshakes bounds the whole of it.
 *
 * Fanout runs its processes in step through their shared stats slots:
 * each says when all its subscribers are subscribed (fan_ready); the
 * publishers start when every process has; each says when its publishers
 * are done (fan_pub_done), and the subscribers then wait until they have
 * every publication that was answered res (or --drain), and count what
 * is missing. Conns [0, n_subs) of a process are its subscribers, the
 * rest its publishers; a publication's seq is its request id.
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
#include "fanout.h"
#include "mpk.h"
#include "pace.h"
#include "token.h"

#define LD_EVENTS 1024
_Static_assert(LD_MAX_SOURCES <= LD_NET_MAX_SOURCES, "--sources bound");
#define LD_TICK_NS 100000000ull /* handshake and close deadlines */
#define LD_CLOSE_NS 3000000000ull
#define LD_MAX_MESSAGE (64u << 20)

#define LD_ID_SETUP 0         /* the auth and the sub; requests count from 1 */
#define LD_POLL_NS 1000000ull /* fanout: how often other processes' state is read */

typedef enum {
    PH_CONNECT,
    PH_HOLD,
    PH_BARRIER, /* fanout: until every process has its subscribers subscribed */
    PH_SEND,
    PH_DRAIN,
    PH_SETTLE, /* fanout: until the subscribers have every publication */
    PH_CLOSE,
    PH_DONE,
} ld_phase_t;

typedef enum {
    CS_WS = 0, /* connecting, up to the 101 */
    CS_AUTH,   /* auth sent */
    CS_SUB,    /* fanout subscriber: established, sub sent */
    CS_READY,  /* set up */
    CS_FAILED, /* setup failed and counted; the connection is being closed */
} ld_setup_t;

/* Per-connection setup state, beside the connection. */
typedef struct {
    uint8_t setup;    /* ld_setup_t */
    bool subscribed;  /* fanout: sub answered res */
    uint64_t mark_ns; /* CS_AUTH, CS_SUB: when that request was sent */
} ld_cstate_t;

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
    const ld_tokens_t *tokens; /* NULL: no auth */
    ld_stats_t *st;
    ld_stats_t *all; /* every process's slot (fanout reads the others') */
    volatile sig_atomic_t *stop;
    ld_net_t net;
    ld_conn_t *conns;
    ld_cstate_t *cs;
    ld_peer_t *peers;
    uint32_t n;          /* connections of this process */
    uint32_t key_base;   /* global index of conns[0], for --keys and tokens */
    uint32_t next_start; /* conns[0..next_start) were started */
    uint32_t handshaking;
    uint32_t live; /* started and not ended */
    int proc;
    ld_phase_t phase;
    uint64_t start_ns, hard_end_ns, phase_end_ns;
    bool paced_connect;
    ld_pace_t conn_pace;

    /* echo, and fanout's publishers */
    bool open_loop;
    bool closed_loop; /* a reply sends the next request (not open loop, not bursts) */
    double rate;      /* open loop: this process's requests/s */
    ld_pace_t req_pace;
    uint64_t budget; /* requests this process may still send; UINT64_MAX: no bound */
    uint64_t inflight;
    uint32_t rr;         /* open loop: next connection to try */
    proto_buf_t data;    /* raw: the payload; envelope: its value encoded (mpk) */
    proto_buf_t head;    /* envelope: everything before key and id */
    proto_buf_t expect;  /* JSON: the reply's text after the id */
    proto_buf_t req;     /* a request being built */
    proto_buf_t scratch; /* JSON replies off the fast path, as msgpack */
    char *tokbuf;        /* a minted token */

    /* fanout */
    bool fanout;
    uint32_t n_subs;        /* conns[0, n_subs) subscribe, the rest publish */
    uint32_t pub_base;      /* global publisher index of conns[n_subs] */
    ld_fan_sub_t *subs;     /* n_subs */
    uint32_t *seqs;         /* n_subs x publishers */
    uint64_t subs_total;    /* subscribed, all processes (after the barrier) */
    uint32_t burst_next;    /* bursts sent */
    bool burst_waiting;     /* for the last burst to reach every subscriber */
    uint64_t burst_at_ns;   /* waiting: give up then; else: the next burst */
    uint64_t last_poll_ns;  /* of the other processes' state */
    uint64_t expected;      /* settle: publications answered res, all processes */
    uint64_t settle_end_ns; /* 0: still waiting for every process's publishers */
    /* --rx-timestamps: publications carry CLOCK_REALTIME (the clock of
     * the kernel's receive timestamps), this far from CLOCK_MONOTONIC */
    uint64_t realtime_off_ns;
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
    if (cfg->raw || r->fanout) { /* fanout: the padding of a publication's data */
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
    } else if (r->fanout) {
        /* the publication's seq is its id: 1, 2, ... per publisher */
        proto_buf_reset(&r->req);
        if (ld_fan_pub_request(r->cfg->enc, r->cfg->channel, id,
                               r->pub_base + (c->index - r->n_subs), id, t_ns + r->realtime_off_ns,
                               proto_span(proto_buf_payload(&r->data), r->data.len), &r->req))
            return;
        payload = proto_buf_payload(&r->req);
        len = r->req.len;
        op = r->cfg->enc == PROTO_ENC_MSGPACK ? LD_WS_BINARY : LD_WS_TEXT;
        if (!r->st->first_pub_ns)
            r->st->first_pub_ns = t_ns;
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
    if (r->closed_loop && s_may_send(r) && ld_conn_is_open(c))
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

/* A reply to a request of the scenario (echo, or a publication). */
static void
s_on_reply(ld_run_t *r, ld_conn_t *c, unsigned opcode, const uint8_t *p, size_t len,
           uint64_t now_ns)
{
    ld_peer_t *pe = r->peers ? &r->peers[c->index] : NULL;
    proto_span_t op = {0}, code = {0}, data = {0}, in = proto_span(p, len);
    uint64_t id = 0;

    if (!pe || !pe->slots) {
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
        if (opcode == LD_WS_TEXT && !r->fanout && s_json_fast(r, c, p, len, now_ns))
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
    /* JSON came back through the converter: data is a msgpack str then.
     * A publication's answer is {"epoch","offset"}: any res is good. */
    s_answered(r, c, id, true,
               r->fanout || (data.len == r->data.len &&
                             !memcmp(data.ptr, proto_buf_payload(&r->data), data.len)),
               now_ns);
}

/* Reads a reply into op/id/code/data, through the converter for JSON.
 * -1: not an envelope. */
static int
s_parse_reply(ld_run_t *r, const uint8_t *p, size_t len, proto_span_t *op, uint64_t *id,
              proto_span_t *code, proto_span_t *data)
{
    proto_span_t in = proto_span(p, len);

    if (r->cfg->enc == PROTO_ENC_JSON) {
        proto_buf_reset(&r->scratch);
        if (proto_json_to_mpk(p, len, &r->scratch) != PROTO_OK)
            return -1;
        in = proto_span(proto_buf_payload(&r->scratch), r->scratch.len);
    }
    return s_reply_fields(in, op, id, code, data);
}

static bool
s_span_is(proto_span_t s, const char *lit)
{
    return s.len == strlen(lit) && !memcmp(s.ptr, lit, s.len);
}

/* A process's counter another process may read: one writer, so a plain
 * read and an atomic store. */
static void
s_bump(uint64_t *v)
{
    __atomic_store_n(v, *v + 1, __ATOMIC_RELAXED);
}

/* ---------------------------------------------------------------- setup --- */

static uint64_t
s_global_index(const ld_run_t *r, const ld_conn_t *c)
{
    /* fanout publishers come after every subscriber of every process */
    if (r->fanout && c->index >= r->n_subs)
        return r->cfg->conns + r->pub_base + (c->index - r->n_subs);
    return r->key_base + c->index;
}

static int
s_append(proto_buf_t *b, const char *s)
{
    return proto_buf_append(b, s, strlen(s));
}

/* Sends {"op":OP,"id":0,NAME:VALUE}; value needs no JSON escaping (a token
 * checked by token.c, or a channel name). */
static int
s_send_setup(ld_run_t *r, ld_conn_t *c, const char *op, const char *name, const char *value,
             size_t vlen)
{
    proto_buf_t *b = &r->req;

    proto_buf_reset(b);
    if (r->cfg->enc == PROTO_ENC_MSGPACK) {
        if (mpk_write_map(b, 3) || mpk_write_cstr(b, "op") || mpk_write_cstr(b, op) ||
            mpk_write_cstr(b, "id") || mpk_write_uint(b, LD_ID_SETUP) || mpk_write_cstr(b, name) ||
            mpk_write_str(b, value, vlen))
            return -1;
        return ld_conn_send(&r->net, c, LD_WS_BINARY, proto_buf_payload(b), b->len);
    }
    if (s_append(b, "{\"op\":\"") || s_append(b, op) || s_append(b, "\",\"id\":0,\"") ||
        s_append(b, name) || s_append(b, "\":\"") || proto_buf_append(b, value, vlen) ||
        s_append(b, "\"}"))
        return -1;
    return ld_conn_send(&r->net, c, LD_WS_TEXT, proto_buf_payload(b), b->len);
}

/* Leaves setup: ready, or failed (counted by the caller). */
static void
s_setup_end(ld_run_t *r, ld_cstate_t *cs, ld_setup_t to)
{
    cs->setup = (uint8_t)to;
    r->handshaking--;
}

/* Counts a setup failure of an open connection and closes it. */
static void
s_setup_fail(ld_run_t *r, ld_conn_t *c, ld_fail_t why, const char *code, size_t code_len,
             uint64_t now_ns)
{
    ld_stats_t *st = r->st;

    st->failed++;
    st->fail[why]++;
    if (why == LD_FAIL_AUTH)
        ld_stable_add(&st->auth_errs, code, code_len, 1);
    s_setup_end(r, &r->cs[c->index], CS_FAILED);
    ld_conn_close(&r->net, c, 1000, now_ns);
}

/* The connection can be used: counted as established. */
static void
s_established(ld_run_t *r, ld_conn_t *c, uint64_t now_ns)
{
    ld_stats_t *st = r->st;
    ld_cstate_t *cs = &r->cs[c->index];

    st->established++;
    st->open++;
    if (st->open > st->open_max)
        st->open_max = st->open;
    st->last_open_ns = now_ns;
    if (r->fanout && c->index < r->n_subs) {
        cs->setup = CS_SUB;
        cs->mark_ns = now_ns;
        s_send_setup(r, c, "sub", "channel", r->cfg->channel, strlen(r->cfg->channel));
        return;
    }
    s_setup_end(r, cs, CS_READY);
}

static void
s_send_auth(ld_run_t *r, ld_conn_t *c, uint64_t now_ns)
{
    ld_cstate_t *cs = &r->cs[c->index];
    const char *tok;
    size_t len;

    cs->setup = CS_AUTH;
    cs->mark_ns = now_ns;
    if (ld_tokens_get(r->tokens, s_global_index(r, c), (uint64_t)time(NULL), r->tokbuf,
                      LD_TOKEN_MAX + 1, &tok, &len)) {
        s_setup_fail(r, c, LD_FAIL_OTHER, NULL, 0, now_ns);
        return;
    }
    s_send_setup(r, c, "auth", "token", tok, len);
}

/* The sub answer's data, {"epoch":E,"offset":N,...}: where the channel's
 * deliveries continue from. -1 when it is not that. */
static int
s_sub_answer(proto_span_t data, proto_span_t *epoch, uint64_t *offset)
{
    proto_span_t k;
    mpk_reader_t rd;
    mpk_item_t it;
    uint32_t n, i;
    bool have_offset = false;

    epoch->ptr = NULL;
    mpk_reader_init(&rd, data.ptr, data.len);
    if (mpk_read_map(&rd, &n) != PROTO_OK)
        return -1;
    for (i = 0; i < n; i++) {
        if (mpk_read_str(&rd, &k) != PROTO_OK)
            return -1;
        if (s_span_is(k, "epoch")) {
            if (mpk_read_str(&rd, epoch) != PROTO_OK)
                return -1;
        } else if (s_span_is(k, "offset")) {
            if (mpk_read(&rd, &it) != PROTO_OK || it.type != MPK_UINT)
                return -1;
            *offset = it.v.u;
            have_offset = true;
        } else if (mpk_skip(&rd, MPK_MAX_DEPTH, NULL) != PROTO_OK) {
            return -1;
        }
    }
    return epoch->ptr && have_offset ? 0 : -1;
}

/* The answer to the auth (id 0) or the sub. */
static void
s_on_setup_reply(ld_run_t *r, ld_conn_t *c, const uint8_t *p, size_t len, uint64_t now_ns)
{
    ld_cstate_t *cs = &r->cs[c->index];
    ld_stats_t *st = r->st;
    proto_span_t op = {0}, code = {0}, data = {0};
    uint64_t id = UINT64_MAX;
    bool res, err;

    if (s_parse_reply(r, p, len, &op, &id, &code, &data)) {
        st->bad_replies++;
        return;
    }
    res = s_span_is(op, "res");
    err = s_span_is(op, "err");
    if (id != LD_ID_SETUP || (!res && !err)) {
        if (cs->setup == CS_SUB)
            st->fan_other++;
        else
            st->bad_replies++;
        return;
    }
    if (cs->setup == CS_AUTH) {
        if (err) {
            s_setup_fail(r, c, LD_FAIL_AUTH, code.len ? (const char *)code.ptr : "?",
                         code.len ? code.len : 1, now_ns);
            return;
        }
        ld_hist_record(&st->auth, (now_ns - cs->mark_ns) / 1000);
        s_established(r, c, now_ns);
        return;
    }
    /* CS_SUB */
    ld_hist_record(&st->sub, (now_ns - cs->mark_ns) / 1000);
    if (err) {
        st->sub_failed++;
        ld_stable_add(&st->sub_errs, code.len ? (const char *)code.ptr : "?",
                      code.len ? code.len : 1, 1);
    } else {
        proto_span_t epoch;
        uint64_t offset = 0;

        if (s_sub_answer(data, &epoch, &offset) == 0)
            ld_fan_sub_base(&r->subs[c->index], ld_fan_epoch(epoch), offset);
        cs->subscribed = true;
        s_bump(&st->subscribed);
    }
    s_setup_end(r, cs, CS_READY);
}

/* --------------------------------------------------------------- fanout --- */

static void
s_on_delivery(ld_run_t *r, ld_conn_t *c, const uint8_t *p, size_t len, uint64_t now_ns)
{
    ld_stats_t *st = r->st;
    ld_fan_msg_t m;
    uint64_t lat, rx = now_ns;

    switch (ld_fan_parse(r->cfg->enc, p, len, &r->scratch, &m)) {
    case LD_FAN_MSG:
        break;
    case LD_FAN_OTHER:
        st->fan_other++;
        return;
    case LD_FAN_FOREIGN:
        st->fan.deliveries++;
        st->fan.foreign++;
        return;
    default:
        st->bad_replies++;
        return;
    }
    if (m.channel.len != strlen(r->cfg->channel) ||
        memcmp(m.channel.ptr, r->cfg->channel, m.channel.len)) {
        st->fan_other++;
        return;
    }
    if (!ld_fan_sub_observe(&r->subs[c->index], r->cfg->publishers, &m, &st->fan))
        return;
    if (r->cfg->rx_timestamps)
        rx = r->net.rx_ts_ns ? r->net.rx_ts_ns : now_ns + r->realtime_off_ns;
    lat = rx > m.t_ns ? rx - m.t_ns : 0;
    ld_hist_record(&st->delivery, lat / 1000);
    st->last_deliv_ns = now_ns;
    if (r->cfg->bursts && m.seq >= 1 && m.seq <= LD_MAX_BURSTS) {
        ld_burst_t *b = &st->bursts[m.seq - 1];

        /* the burst's publisher, in another process maybe, reads delivered */
        ld_burst_record(b, lat);
        __atomic_store_n(&b->delivered, b->delivered, __ATOMIC_RELEASE);
    }
}

static void
s_on_message(void *ud, ld_conn_t *c, unsigned opcode, const uint8_t *p, size_t len, uint64_t now_ns)
{
    ld_run_t *r = ud;

    r->st->bytes_in += len;
    switch (r->cs[c->index].setup) {
    case CS_AUTH:
    case CS_SUB:
        s_on_setup_reply(r, c, p, len, now_ns);
        return;
    case CS_READY:
        if (r->fanout && c->index < r->n_subs)
            s_on_delivery(r, c, p, len, now_ns);
        else if (r->cfg->scenario == LD_SCENARIO_ECHO || r->fanout)
            s_on_reply(r, c, opcode, p, len, now_ns);
        else
            r->st->bad_replies++; /* nobody asked */
        return;
    default:
        r->st->bad_replies++;
        return;
    }
}

/* --------------------------------------------------------- connections --- */

static void
s_on_opened(void *ud, ld_conn_t *c, uint64_t now_ns)
{
    ld_run_t *r = ud;

    ld_hist_record(&r->st->handshake, (now_ns - c->start_ns) / 1000);
    if (r->tokens)
        s_send_auth(r, c, now_ns);
    else
        s_established(r, c, now_ns);
}

static void
s_on_pinged(void *ud, ld_conn_t *c, bool answered)
{
    ld_run_t *r = ud;

    r->st->pings++;
    if (answered)
        r->st->pongs++;
    else if (c->state == LD_CONN_CLOSING)
        /* the ping came after our close frame went out: the connection is
         * ending and the tool sends nothing more on it. Counted apart, so
         * that received - answered - while_closing is what went wrong. */
        r->st->pings_closing++;
}

static void
s_on_ended(void *ud, ld_conn_t *c, const ld_conn_end_t *end)
{
    ld_run_t *r = ud;
    ld_stats_t *st = r->st;
    ld_peer_t *p = r->peers ? &r->peers[c->index] : NULL;
    ld_cstate_t *cs = &r->cs[c->index];

    r->live--;
    if (p && p->inflight) {
        st->missing += p->inflight;
        r->inflight -= p->inflight;
        p->inflight = 0;
    }
    if (cs->setup == CS_FAILED)
        return; /* counted when it failed */
    if (cs->setup == CS_WS || cs->setup == CS_AUTH) {
        r->handshaking--;
        if (end->by_client)
            return; /* cancelled at the end of the run */
        st->failed++;
        if (cs->setup == CS_AUTH) {
            /* the server closed before answering: 4004 is its auth
             * timeout, anything else a failure by close code */
            char code[24];
            int n = snprintf(code, sizeof(code), "close_%d", end->close_code);

            if (end->close_code == 4004) {
                st->fail[LD_FAIL_AUTH_TIMEOUT]++;
            } else {
                st->fail[LD_FAIL_AUTH]++;
                ld_stable_add(&st->auth_errs, code, (size_t)n, 1);
            }
            return;
        }
        st->fail[end->fail]++;
        if (end->fail == LD_FAIL_HTTP)
            ld_itable_add(&st->http, end->http_status, 1);
        return;
    }
    if (cs->setup == CS_SUB) {
        /* established, but gone before its sub was answered */
        r->handshaking--;
        cs->setup = CS_READY;
        st->sub_failed++;
        ld_stable_add(&st->sub_errs, "closed", 6, 1);
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

    if (r->cfg->duration &&
        (r->cfg->scenario == LD_SCENARIO_STORM || r->cfg->scenario == LD_SCENARIO_IDLE) &&
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
 * overdue schedule. Requests go out on conns [n_subs, n). */
static bool
s_open_loop(ld_run_t *r, uint64_t now)
{
    uint64_t due = ld_pace_due(&r->req_pace, now);
    uint32_t tried, span = r->n - r->n_subs;
    ld_conn_t *c;

    if (due > r->budget)
        due = r->budget;
    while (due && s_may_send(r) && span) {
        /* the next connection with room in its window */
        for (tried = 0; tried < span; tried++) {
            c = &r->conns[r->n_subs + r->rr];
            r->rr = (r->rr + 1) % span;
            if (ld_conn_is_open(c) && r->peers[c->index].inflight < r->cfg->window)
                break;
        }
        if (tried == span)
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
        if (r->rate > 0)
            ld_pace_init(&r->req_pace, r->rate, now,
                         r->budget == UINT64_MAX ? UINT64_MAX : r->budget);
        else
            r->budget = 0; /* fanout: no publisher in this process */
        return;
    }
    /* closed loop: fill every window, then one request per reply */
    for (k = 0; k < cfg->window; k++)
        for (i = r->n_subs; i < r->n; i++)
            if (s_may_send(r) && ld_conn_is_open(&r->conns[i]))
                s_send(r, &r->conns[i], now);
}

/* ------------------------------------------------------- fanout phases --- */

/* Every process has set the flag at offset `off` of its slot. *gone: one
 * has not and never will (it finished, or failed). */
static bool
s_all_set(const ld_run_t *r, size_t off, bool *gone)
{
    int i;

    for (i = 0; i < r->cfg->procs; i++) {
        uint64_t *flag = (uint64_t *)((char *)&r->all[i] + off);

        if (!__atomic_load_n(flag, __ATOMIC_ACQUIRE)) {
            if (__atomic_load_n(&r->all[i].done, __ATOMIC_ACQUIRE))
                *gone = true;
            return false;
        }
    }
    return true;
}

static uint64_t
s_sum_all(const ld_run_t *r, size_t off)
{
    uint64_t sum = 0;
    int i;

    for (i = 0; i < r->cfg->procs; i++)
        sum += __atomic_load_n((uint64_t *)((char *)&r->all[i] + off), __ATOMIC_RELAXED);
    return sum;
}

/* Every subscriber of every process is subscribed: publish. */
static void
s_begin_fanout(ld_run_t *r, uint64_t now)
{
    r->subs_total = s_sum_all(r, offsetof(ld_stats_t, subscribed));
    if (r->n_subs == r->n)
        r->budget = 0; /* no publisher here: the send phase ends at once */
    if (!r->cfg->bursts) {
        s_begin_send(r, now);
        return;
    }
    r->phase = PH_SEND;
    r->phase_end_ns = r->hard_end_ns;
    r->burst_waiting = false;
    r->burst_at_ns = now;
}

/* Bursts: send one, wait until every subscriber has it (or --drain),
 * pause, again. Returns how long the loop may sleep; 0 with the phase
 * over. */
static uint64_t
s_burst_step(ld_run_t *r, uint64_t now)
{
    ld_conn_t *pub = &r->conns[r->n_subs];
    uint64_t got;
    int i;

    if (r->burst_waiting) {
        got = 0;
        for (i = 0; i < r->cfg->procs; i++)
            got +=
                __atomic_load_n(&r->all[i].bursts[r->burst_next - 1].delivered, __ATOMIC_ACQUIRE);
        if (got < r->subs_total && now < r->burst_at_ns && !*r->stop)
            return LD_POLL_NS;
        r->burst_waiting = false;
        r->burst_at_ns = now + s_secs(r->cfg->burst_pause);
    }
    if (!s_may_send(r) || !ld_conn_is_open(pub))
        return 0;
    if (now < r->burst_at_ns)
        return r->burst_at_ns - now;
    s_send(r, pub, now);
    s_bump(&r->st->bursts_sent);
    r->burst_next++;
    r->burst_waiting = true;
    r->burst_at_ns = now + s_secs(r->cfg->drain);
    return LD_POLL_NS;
}

/* The subscribers' final count, once `expected` publications are known. */
static void
s_fan_account(ld_run_t *r)
{
    ld_stats_t *st = r->st;
    uint32_t i;

    for (i = 0; i < r->n_subs; i++) {
        if (!r->cs[i].subscribed)
            continue;
        st->fan_expected += r->expected;
        st->fan_missing += ld_fan_sub_missing(&r->subs[i], r->expected);
        if (r->subs[i].received > r->expected)
            st->fan_extra += r->subs[i].received - r->expected;
    }
}

static bool
s_fan_complete(const ld_run_t *r)
{
    uint32_t i;

    for (i = 0; i < r->n_subs; i++)
        if (r->cs[i].subscribed && r->subs[i].received < r->expected &&
            ld_conn_is_open(&r->conns[i]))
            return false;
    return true;
}

/* Settle: wait for every process's publishers, then for every delivery
 * of what they published (bounded by --drain). */
static uint64_t
s_settle_step(ld_run_t *r, uint64_t now)
{
    bool gone = false;

    if (!r->settle_end_ns) {
        if (!s_all_set(r, offsetof(ld_stats_t, fan_pub_done), &gone) && !gone && !*r->stop)
            return LD_POLL_NS;
        r->expected = s_sum_all(r, offsetof(ld_stats_t, fan_pub_ok));
        r->settle_end_ns = now + s_secs(r->cfg->drain);
    }
    if (!s_fan_complete(r) && now < r->settle_end_ns && !*r->stop)
        return 10 * LD_POLL_NS;
    s_fan_account(r);
    s_close_all(r, now);
    return 0;
}

/* Phase transitions; returns how long the loop may sleep (ns). */
static uint64_t
s_step(ld_run_t *r, uint64_t now)
{
    uint64_t wait = LD_TICK_NS, w;
    bool gone = false;
    uint32_t i;

    if (now >= r->hard_end_ns && r->phase != PH_DONE) {
        fprintf(stderr, "wsgate-load: process %d: hard timeout (--timeout), stopping\n", r->proc);
        r->st->timed_out = 1;
        for (i = 0; i < r->next_start; i++) {
            ld_peer_t *p = r->peers ? &r->peers[i] : NULL;
            uint8_t setup = r->cs[i].setup;

            if (p && p->inflight)
                r->st->missing += p->inflight;
            if (r->conns[i].state != LD_CONN_DONE && r->conns[i].state != LD_CONN_IDLE) {
                if (setup == CS_READY || setup == CS_SUB)
                    r->st->open--;
                if (setup == CS_WS || setup == CS_AUTH || setup == CS_SUB)
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
        } else if (r->fanout) {
            __atomic_store_n(&r->st->fan_ready, 1, __ATOMIC_RELEASE);
            r->phase = PH_BARRIER;
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
    case PH_BARRIER:
        if (*r->stop) {
            s_close_all(r, now);
            break;
        }
        if (s_all_set(r, offsetof(ld_stats_t, fan_ready), &gone)) {
            s_begin_fanout(r, now);
            return 0;
        }
        if (gone) {
            fprintf(stderr,
                    "wsgate-load: process %d: another load process ended before its "
                    "subscribers were ready\n",
                    r->proc);
            s_close_all(r, now);
            break;
        }
        wait = LD_POLL_NS;
        break;
    case PH_SEND:
        if (r->fanout && r->cfg->bursts) {
            w = *r->stop ? 0 : s_burst_step(r, now);
            if (w) {
                wait = w < wait ? w : wait;
                break;
            }
        } else if (!*r->stop && now < r->phase_end_ns && r->budget &&
                   (r->open_loop || r->inflight)) {
            if (r->open_loop) {
                if (s_open_loop(r, now)) {
                    w = ld_pace_wait(&r->req_pace, s_now());
                    wait = w < wait ? w : wait;
                }
            }
            if (r->phase_end_ns - now < wait)
                wait = r->phase_end_ns - now;
            break;
        }
        r->phase = PH_DRAIN;
        r->phase_end_ns = now + s_secs(r->cfg->drain);
        return 0;
    case PH_DRAIN:
        if (!r->inflight || *r->stop || now >= r->phase_end_ns) {
            if (!r->fanout) {
                s_close_all(r, now); /* ended() counts what is still out as missing */
                break;
            }
            /* replies still out are missing; their publications may still
             * be delivered (counted as extra) */
            r->st->fan_pub_ok = r->st->replies;
            __atomic_store_n(&r->st->fan_pub_done, 1, __ATOMIC_RELEASE);
            r->phase = PH_SETTLE;
            return 0;
        }
        break;
    case PH_SETTLE:
        w = s_settle_step(r, now);
        if (w)
            wait = w < wait ? w : wait;
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

/* Handshake, auth and sub deadlines (all --connect-timeout), and close
 * deadlines. */
static void
s_tick(ld_run_t *r, uint64_t now)
{
    uint64_t limit = s_secs(r->cfg->connect_timeout);
    ld_cstate_t *cs;
    ld_conn_t *c;
    uint32_t i;

    if (!r->handshaking && r->phase != PH_CLOSE)
        return;
    for (i = 0; i < r->next_start; i++) {
        c = &r->conns[i];
        cs = &r->cs[i];
        if (c->state == LD_CONN_DONE)
            continue;
        ld_conn_tick(&r->net, c, now);
        if (!ld_conn_is_open(c) || now < cs->mark_ns + limit)
            continue;
        if (cs->setup == CS_AUTH) {
            s_setup_fail(r, c, LD_FAIL_AUTH_TIMEOUT, NULL, 0, now);
        } else if (cs->setup == CS_SUB) {
            r->st->sub_failed++;
            ld_stable_add(&r->st->sub_errs, "no_answer", 9, 1);
            s_setup_end(r, cs, CS_READY);
        }
    }
}

static int
s_setup(ld_run_t *r, const ld_config_t *cfg, const ld_tokens_t *tokens, int proc, ld_stats_t *slots)
{
    uint32_t i, n_pubs = 0;
    uint64_t count = 0;
    int k;

    r->cfg = cfg;
    r->tokens = tokens;
    r->all = slots;
    r->st = &slots[proc];
    r->proc = proc;
    r->fanout = cfg->scenario == LD_SCENARIO_FANOUT;
    r->n = (uint32_t)ld_config_share(cfg->conns, proc, cfg->procs);
    for (k = 0; k < proc; k++)
        r->key_base += (uint32_t)ld_config_share(cfg->conns, k, cfg->procs);
    r->budget = cfg->count ? ld_config_share(cfg->count, proc, cfg->procs) : UINT64_MAX;
    r->rate = cfg->rate / cfg->procs;
    if (r->fanout) {
        /* publishers after the subscribers; count and rate are theirs */
        r->n_subs = r->n;
        n_pubs = (uint32_t)ld_config_share(cfg->publishers, proc, cfg->procs);
        for (k = 0; k < proc; k++)
            r->pub_base += (uint32_t)ld_config_share(cfg->publishers, k, cfg->procs);
        r->n += n_pubs;
        for (i = 0; i < n_pubs; i++)
            count += ld_config_share(cfg->count, r->pub_base + i, (int)cfg->publishers);
        r->budget = cfg->bursts ? (n_pubs ? cfg->bursts : 0) : cfg->count ? count : UINT64_MAX;
        r->rate = cfg->rate * n_pubs / cfg->publishers;
    }
    r->open_loop =
        (cfg->scenario == LD_SCENARIO_ECHO || r->fanout) && cfg->rate > 0 && !cfg->bursts;
    r->closed_loop = !r->open_loop && !cfg->bursts;
    r->paced_connect =
        (cfg->scenario == LD_SCENARIO_STORM || cfg->scenario == LD_SCENARIO_IDLE) && cfg->rate > 0;
    proto_buf_init(&r->data, 0);
    proto_buf_init(&r->head, 0);
    proto_buf_init(&r->expect, 0);
    proto_buf_init(&r->req, 0);
    proto_buf_init(&r->scratch, 0);
    /* Open-loop sends wake on a timer: the default 50 us of slack would
     * be counted as latency from the schedule. */
    prctl(PR_SET_TIMERSLACK, 1UL, 0, 0, 0);
    /* OpenSSL loads its providers on first use (milliseconds): not inside
     * the first handshakes' latency, nor the first token's */
    {
        char acc[LD_HS_ACCEPT_LEN + 1];

        ld_handshake_accept("dGhlIHNhbXBsZSBub25jZQ==", acc);
    }
    if (tokens) {
        const char *tok;
        size_t len;

        r->tokbuf = malloc(LD_TOKEN_MAX + 1);
        if (!r->tokbuf)
            goto nomem;
        if (ld_tokens_get(tokens, 0, (uint64_t)time(NULL), r->tokbuf, LD_TOKEN_MAX + 1, &tok,
                          &len)) {
            fprintf(stderr, "wsgate-load: cannot mint a token\n");
            return -1;
        }
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
    if (cfg->rx_timestamps) {
        struct timespec rt;
        uint64_t mono = s_now();

        clock_gettime(CLOCK_REALTIME, &rt);
        r->net.rx_timestamps = true;
        r->realtime_off_ns = (uint64_t)rt.tv_sec * 1000000000ull + (uint64_t)rt.tv_nsec - mono;
    }
    r->conns = calloc(r->n, sizeof(*r->conns));
    r->cs = calloc(r->n, sizeof(*r->cs));
    if (!r->conns || !r->cs)
        goto nomem;
    for (i = 0; i < r->n; i++)
        ld_conn_init(&r->conns[i], i);
    if (cfg->scenario == LD_SCENARIO_ECHO || r->fanout) {
        r->peers = calloc(r->n, sizeof(*r->peers));
        if (!r->peers)
            goto nomem;
        for (i = r->n_subs; i < r->n; i++) {
            r->peers[i].slots = calloc(cfg->window, sizeof(ld_slot_t));
            if (!r->peers[i].slots)
                goto nomem;
        }
        if (s_build_templates(r))
            goto nomem;
    }
    if (r->fanout) {
        r->subs = calloc(r->n_subs, sizeof(*r->subs));
        r->seqs = calloc((size_t)r->n_subs * cfg->publishers, sizeof(*r->seqs));
        if (!r->subs || !r->seqs)
            goto nomem;
        for (i = 0; i < r->n_subs; i++)
            ld_fan_sub_init(&r->subs[i], r->seqs + (size_t)i * cfg->publishers);
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
    free(r->cs);
    if (r->peers)
        for (i = 0; i < r->n; i++)
            free(r->peers[i].slots);
    free(r->peers);
    free(r->subs);
    free(r->seqs);
    free(r->tokbuf);
    ld_net_fini(&r->net);
    proto_buf_fini(&r->data);
    proto_buf_fini(&r->head);
    proto_buf_fini(&r->expect);
    proto_buf_fini(&r->req);
    proto_buf_fini(&r->scratch);
}

int
ld_run(const ld_config_t *cfg, const ld_tokens_t *tokens, int proc, ld_stats_t *slots,
       volatile sig_atomic_t *stop)
{
    struct epoll_event evs[LD_EVENTS];
    struct timespec ts;
    uint64_t now, wait, last_tick = 0;
    ld_run_t r;
    int i, n, rc = -1;

    memset(&r, 0, sizeof(r));
    r.stop = stop;
    if (s_setup(&r, cfg, tokens, proc, slots))
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
    __atomic_store_n(&slots[proc].done, 1, __ATOMIC_RELEASE);
    return rc;
}
