/*
 * test_actor.c - the actor runtime (workers/actor.c) and the built-in
 * services (svc_echo.c, svc_counter.c), driven without ZeroMQ: outputs
 * are recorded by a wk_out_t, time is a fake clock given to tick.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "../../protocol/envelope.h"
#include "../../protocol/mpk.h"
#include "../../workers/actor.h"

/* --- recorded outputs -------------------------------------------------- */

#include "recout.h"

/* --- msgpack helpers --------------------------------------------------- */

typedef struct {
    uint8_t b[16];
    size_t len;
} mp_t;

static mp_t
s_mp_uint(uint64_t v)
{
    proto_buf_t b;
    proto_buf_init(&b, 0);
    assert_int_equal(mpk_write_uint(&b, v), 0);
    mp_t m;
    assert_true(b.len <= sizeof m.b);
    memcpy(m.b, proto_buf_payload(&b), b.len);
    m.len = b.len;
    proto_buf_fini(&b);
    return m;
}

static uint64_t
s_reply_uint(const out_rec_t *r)
{
    assert_int_equal(r->kind, OUT_REPLY);
    mpk_reader_t rd;
    mpk_item_t it;
    mpk_reader_init(&rd, r->data, r->len);
    assert_int_equal(mpk_read(&rd, &it), PROTO_OK);
    assert_int_equal(it.type, MPK_UINT);
    assert_int_equal(mpk_reader_left(&rd), 0);
    return it.v.u;
}

/* --- deliveries -------------------------------------------------------- */

static int
s_deliver(wk_runtime_t *rt, uint32_t type, uint32_t origin, uint64_t rid, const char *svc,
          const char *key, uint64_t conn, uint32_t flags, const void *data, size_t len)
{
    proto_bk_t h;
    memset(&h, 0, sizeof h);
    h.version = PROTO_BK_VERSION;
    h.type = type;
    h.rid = rid;
    h.conn = conn;
    h.flags = flags;
    h.svc = proto_span(svc, strlen(svc));
    h.key = proto_span(key, strlen(key));
    return wk_runtime_deliver(rt, origin, &h, data, len);
}

static int
s_req(wk_runtime_t *rt, uint64_t rid, const char *svc, const char *key, uint64_t v)
{
    mp_t m = s_mp_uint(v);
    return s_deliver(rt, PROTO_BK_REQ, 0, rid, svc, key, 7, 0, m.b, m.len);
}

static size_t
s_drain(wk_runtime_t *rt)
{
    size_t total = 0, n;
    while ((n = wk_runtime_run(rt, 1000)) > 0)
        total += n;
    assert_false(wk_runtime_busy(rt));
    return total;
}

static wk_stats_t
s_stats(const wk_runtime_t *rt)
{
    wk_stats_t st;
    wk_runtime_stats(rt, &st);
    return st;
}

/* --- test services ----------------------------------------------------- */

/* `seq`: data is a sequence number; records (key, seq) in handling order. */
#define SEQ_LOG_MAX 4096
static struct {
    char key[16];
    uint64_t seq;
} g_seq_log[SEQ_LOG_MAX];
static size_t g_seq_n;

static int
seq_handle(wk_actor_t *a, void *state, const wk_msg_t *m)
{
    (void)state;
    proto_span_t key = wk_actor_key(a);
    mpk_reader_t rd;
    uint64_t seq = 0;
    mpk_reader_init(&rd, m->data.ptr, m->data.len);
    assert_int_equal(mpk_read_uint(&rd, &seq), PROTO_OK);
    assert_true(g_seq_n < SEQ_LOG_MAX);
    s_copy_str(g_seq_log[g_seq_n].key, sizeof g_seq_log[0].key, key);
    g_seq_log[g_seq_n].seq = seq;
    g_seq_n++;
    return m->rid ? wk_reply(a, m, m->data.ptr, m->data.len) : 0;
}

static const wk_service_t s_svc_seq = {"seq", NULL, seq_handle, NULL, 0};

/* `probe`: what it does is chosen by the request's data (an op below). */
enum {
    OP_REPLY = 1,  /* reply with how many messages this actor has handled */
    OP_SILENT,     /* return 0 without answering */
    OP_FAIL,       /* return -1 without answering */
    OP_DOUBLE,     /* reply, reply again, then error */
    OP_BADDATA,    /* reply with bytes that are not msgpack */
    OP_BADCODE,    /* error with an invalid code */
    OP_STOP,       /* reply, then return WK_STOP */
    OP_ERROR,      /* error with the service's own code */
    OP_REENTER,    /* call the runtime back from inside the behaviour */
    OP_SEND,       /* push to the connection and close it */
    OP_REPLY_FAIL, /* reply, then return -1 */
    OP_PIN,        /* pin, reply */
    OP_UNPIN,      /* unpin, reply */
    OP_PIN_STOP,   /* pin, reply, then return WK_STOP */
    OP_USER,       /* record m->user, reply */
    OP_PUB,        /* wk_broadcast_pub, good and bad arguments */
    OP_PUBLISH,    /* wk_publish, good and bad arguments */
};

typedef struct {
    uint64_t handled;
    int depth;
} probe_state_t;

static struct {
    wk_runtime_t *rt; /* for OP_REENTER */
    bool fail_start;
    int starts;
    int stops;
    int max_depth;
    char last_stopped[16];
    int rc[3];
    size_t reenter_ran;
    int reenter_deliver;
    wk_msg_kind_t last_kind;
    uint64_t last_conn;
    uint32_t last_close_code;
    uint32_t last_origin;
    char last_user[PROTO_BK_USER_MAX + 1];
    int pub_rc[8];
} g_probe;

static int
probe_start(wk_actor_t *a, void **state)
{
    (void)a;
    if (g_probe.fail_start)
        return -1;
    *state = calloc(1, sizeof(probe_state_t));
    if (!*state)
        return -1;
    g_probe.starts++;
    return 0;
}

static void
probe_stop(wk_actor_t *a, void *state)
{
    g_probe.stops++;
    s_copy_str(g_probe.last_stopped, sizeof g_probe.last_stopped, wk_actor_key(a));
    free(state);
}

static int
probe_handle(wk_actor_t *a, void *state, const wk_msg_t *m)
{
    probe_state_t *st = state;
    int rc = 0;
    if (++st->depth > g_probe.max_depth)
        g_probe.max_depth = st->depth;
    st->handled++;
    g_probe.last_kind = m->kind;
    g_probe.last_conn = m->conn;
    g_probe.last_close_code = m->close_code;
    g_probe.last_origin = m->origin;
    s_copy_str(g_probe.last_user, sizeof g_probe.last_user, m->user);
    if (m->kind != WK_MSG_REQ)
        goto out;

    uint64_t op = 0;
    mpk_reader_t rd;
    mpk_reader_init(&rd, m->data.ptr, m->data.len);
    assert_int_equal(mpk_read_uint(&rd, &op), PROTO_OK);
    mp_t n = s_mp_uint(st->handled);
    static const uint8_t bad[] = {0xc1};
    switch (op) {
    case OP_REPLY:
        rc = g_probe.rc[0] = wk_reply(a, m, n.b, n.len);
        break;
    case OP_SILENT:
        break;
    case OP_FAIL:
        rc = -1;
        break;
    case OP_DOUBLE:
        g_probe.rc[0] = wk_reply(a, m, n.b, n.len);
        g_probe.rc[1] = wk_reply(a, m, n.b, n.len);
        g_probe.rc[2] = wk_error(a, m, "internal", "late");
        break;
    case OP_BADDATA:
        g_probe.rc[0] = wk_reply(a, m, bad, sizeof bad);
        break;
    case OP_BADCODE:
        g_probe.rc[0] = wk_error(a, m, "Not A Code", "x");
        break;
    case OP_STOP:
        wk_reply(a, m, n.b, n.len);
        rc = WK_STOP;
        break;
    case OP_ERROR:
        g_probe.rc[0] = wk_error(a, m, "my_code", "custom text");
        break;
    case OP_REENTER: {
        /* Another key has mail waiting: a nested run would handle it. */
        g_probe.reenter_ran = wk_runtime_run(g_probe.rt, 100);
        proto_span_t key = wk_actor_key(a);
        char k[16];
        s_copy_str(k, sizeof k, key);
        g_probe.reenter_deliver = s_req(g_probe.rt, m->rid + 1000, "probe", k, OP_REPLY);
        rc = wk_reply(a, m, n.b, n.len);
        break;
    }
    case OP_SEND: {
        g_probe.rc[0] = wk_send(a, m->origin, &m->conn, 1, 0, n.b, n.len);
        g_probe.rc[1] = wk_close(a, m->origin, m->conn, 4000, "bye");
        g_probe.rc[2] = wk_send(a, m->origin, &m->conn, 1, 0, bad, sizeof bad);
        break;
    }
    case OP_REPLY_FAIL:
        wk_reply(a, m, n.b, n.len);
        rc = -1;
        break;
    case OP_PIN:
    case OP_UNPIN:
        wk_actor_pin(a, op == OP_PIN);
        rc = wk_reply(a, m, n.b, n.len);
        break;
    case OP_PIN_STOP:
        wk_actor_pin(a, true);
        wk_reply(a, m, n.b, n.len);
        rc = WK_STOP;
        break;
    case OP_USER:
        rc = wk_reply(a, m, n.b, n.len);
        break;
    case OP_PUB: {
        proto_span_t ch = proto_span("room:1", 6), ep = proto_span("0badcafe", 8);
        proto_span_t alice = proto_span("alice", 5), none = proto_span(NULL, 0);
        static const uint8_t bad_utf8[] = {0xff};
        char long_user[PROTO_BK_USER_MAX + 1];
        memset(long_user, 'u', sizeof long_user);
        g_probe.pub_rc[0] = wk_broadcast_pub(a, ch, PROTO_BK_PUB_MSG, 7, ep, alice, n.b, n.len);
        /* JOIN: the data is ignored and the payload is nil */
        g_probe.pub_rc[1] = wk_broadcast_pub(a, ch, PROTO_BK_PUB_JOIN, 7, ep, alice, bad, 1);
        g_probe.pub_rc[2] = wk_broadcast_pub(a, none, PROTO_BK_PUB_MSG, 7, ep, alice, n.b, n.len);
        g_probe.pub_rc[3] = wk_broadcast_pub(a, ch, 3, 7, ep, alice, n.b, n.len);
        g_probe.pub_rc[4] = wk_broadcast_pub(a, ch, PROTO_BK_PUB_MSG, 7, ep, alice, bad, 1);
        g_probe.pub_rc[5] =
            wk_broadcast_pub(a, ch, PROTO_BK_PUB_MSG, 7, ep, proto_span(bad_utf8, 1), n.b, n.len);
        g_probe.pub_rc[6] = wk_broadcast_pub(a, ch, PROTO_BK_PUB_MSG, 7, ep,
                                             proto_span(long_user, sizeof long_user), n.b, n.len);
        rc = wk_reply(a, m, n.b, n.len);
        break;
    }
    case OP_PUBLISH: {
        proto_span_t ch = proto_span("news", 4);
        g_probe.pub_rc[0] = wk_publish(a, ch, n.b, n.len);
        g_probe.pub_rc[1] = wk_publish(a, ch, n.b, n.len);
        g_probe.pub_rc[2] = wk_publish(a, ch, bad, sizeof bad);
        g_probe.pub_rc[3] = wk_publish(a, proto_span(NULL, 0), n.b, n.len);
        rc = wk_reply(a, m, n.b, n.len);
        break;
    }
    default:
        fail_msg("unknown op %llu", (unsigned long long)op);
    }
out:
    st->depth--;
    return rc;
}

static const wk_service_t s_svc_probe = {"probe", probe_start, probe_handle, probe_stop, 0};

/* --- fixtures ---------------------------------------------------------- */

static wk_runtime_t *
s_rt_new(uint32_t max_actors, uint32_t mailbox_max, uint64_t idle_ms)
{
    static const wk_service_t *const svcs[] = {&wk_svc_echo, &wk_svc_counter, &s_svc_seq,
                                               &s_svc_probe};
    wk_runtime_cfg_t cfg = {max_actors, mailbox_max, idle_ms};
    wk_runtime_t *rt = wk_runtime_new(&cfg, svcs, sizeof svcs / sizeof svcs[0], &s_out, NULL);
    assert_non_null(rt);
    memset(&g_probe, 0, sizeof g_probe);
    g_probe.rt = rt;
    g_seq_n = 0;
    s_out_clear();
    return rt;
}

static int
s_teardown(void **state)
{
    (void)state;
    s_out_clear();
    free(g_out.v);
    memset(&g_out, 0, sizeof g_out);
    return 0;
}

/* --- tests ------------------------------------------------------------- */

/* Messages for many keys, interleaved and handled in small slices, reach
 * each key in the order they were delivered. */
static void
test_order_per_key(void **state)
{
    (void)state;
    enum { KEYS = 40, PER_KEY = 25 };
    wk_runtime_t *rt = s_rt_new(0, 0, 0);
    uint64_t next[KEYS] = {0};
    uint64_t rng = 12345;
    size_t delivered = 0, handled = 0;
    while (delivered < KEYS * PER_KEY) {
        rng = rng * 6364136223846793005ULL + 1442695040888963407ULL;
        int k = (int)((rng >> 33) % KEYS);
        if (next[k] == PER_KEY)
            continue;
        char key[16];
        snprintf(key, sizeof key, "k%d", k);
        assert_int_equal(s_req(rt, delivered + 1, "seq", key, next[k]++), 0);
        delivered++;
        if (delivered % 7 == 0)
            handled += wk_runtime_run(rt, 3);
    }
    handled += s_drain(rt);
    assert_int_equal(handled, KEYS * PER_KEY);
    assert_int_equal(g_seq_n, KEYS * PER_KEY);

    uint64_t seen[KEYS] = {0};
    for (size_t i = 0; i < g_seq_n; i++) {
        int k = atoi(g_seq_log[i].key + 1);
        assert_int_equal(g_seq_log[i].seq, seen[k]);
        seen[k]++;
    }
    for (int k = 0; k < KEYS; k++)
        assert_int_equal(seen[k], PER_KEY);
    assert_int_equal(g_out.n, KEYS * PER_KEY);
    wk_stats_t st = s_stats(rt);
    assert_int_equal(st.handled, KEYS * PER_KEY);
    assert_int_equal(st.live_actors, KEYS);
    assert_int_equal(st.idle_actors, KEYS);
    assert_int_equal(st.queued, 0);
    wk_runtime_destroy(&rt);
    assert_null(rt);
}

/* A key with a long mailbox takes one turn, then waits for the others. */
static void
test_round_robin(void **state)
{
    (void)state;
    wk_runtime_t *rt = s_rt_new(0, 0, 0);
    for (int i = 0; i < 5; i++)
        assert_int_equal(s_req(rt, 0, "seq", "a", (uint64_t)i), 0);
    assert_int_equal(s_req(rt, 0, "seq", "b", 0), 0);
    assert_int_equal(s_req(rt, 0, "seq", "c", 0), 0);
    assert_int_equal(s_stats(rt).queued, 7);
    assert_int_equal(wk_runtime_run(rt, 3), 3);
    assert_string_equal(g_seq_log[0].key, "a");
    assert_string_equal(g_seq_log[1].key, "b");
    assert_string_equal(g_seq_log[2].key, "c");
    assert_true(wk_runtime_busy(rt));
    assert_int_equal(s_drain(rt), 4);
    assert_int_equal(g_seq_log[6].seq, 4);
    assert_int_equal(g_out.n, 0); /* rid 0: no replies */
    wk_runtime_destroy(&rt);
}

/* A behaviour that calls back into the runtime is not re-entered: run
 * returns 0, and a message it delivers to its own key waits its turn. */
static void
test_one_at_a_time(void **state)
{
    (void)state;
    wk_runtime_t *rt = s_rt_new(0, 0, 0);
    /* Turns: x:1, y:4, x:2 (re-enters while y:5 waits), y:5, x:3, x:1002. */
    assert_int_equal(s_req(rt, 1, "probe", "x", OP_REPLY), 0);
    assert_int_equal(s_req(rt, 4, "probe", "y", OP_REPLY), 0);
    assert_int_equal(s_req(rt, 5, "probe", "y", OP_REPLY), 0);
    assert_int_equal(s_req(rt, 2, "probe", "x", OP_REENTER), 0);
    assert_int_equal(s_req(rt, 3, "probe", "x", OP_REPLY), 0);
    assert_int_equal(s_drain(rt), 6);
    assert_int_equal(g_probe.max_depth, 1);
    assert_int_equal(g_probe.reenter_ran, 0);
    assert_int_equal(g_probe.reenter_deliver, 0);
    /* x saw its messages in arrival order, the one delivered during 2 last. */
    assert_int_equal(s_reply_uint(s_out_for(1)), 1);
    assert_int_equal(s_reply_uint(s_out_for(2)), 2);
    assert_int_equal(s_reply_uint(s_out_for(3)), 3);
    assert_int_equal(s_reply_uint(s_out_for(1002)), 4);
    assert_int_equal(s_reply_uint(s_out_for(5)), 2);
    wk_runtime_destroy(&rt);
}

/* Idle actors are passivated after idle_ms and come back from scratch. */
static void
test_passivation_idle(void **state)
{
    (void)state;
    wk_runtime_t *rt = s_rt_new(0, 0, 1000);
    wk_runtime_tick(rt, 10000);
    assert_int_equal(wk_runtime_next_deadline(rt), UINT64_MAX);
    for (uint64_t i = 1; i <= 3; i++)
        assert_int_equal(s_req(rt, i, "counter", "k", 0), 0);
    assert_int_equal(s_req(rt, 4, "probe", "p", OP_REPLY), 0);
    s_drain(rt);
    assert_int_equal(s_reply_uint(s_out_for(3)), 3);
    assert_int_equal(wk_runtime_next_deadline(rt), 11000);

    wk_runtime_tick(rt, 10999);
    assert_int_equal(s_stats(rt).live_actors, 2);
    /* Activity restarts the idle clock of "k" only. */
    assert_int_equal(s_req(rt, 5, "counter", "k", 0), 0);
    s_drain(rt);
    assert_int_equal(s_reply_uint(s_out_for(5)), 4);

    wk_runtime_tick(rt, 11000);
    wk_stats_t st = s_stats(rt);
    assert_int_equal(st.live_actors, 1);
    assert_int_equal(st.passivated, 1);
    assert_int_equal(g_probe.stops, 1);
    assert_string_equal(g_probe.last_stopped, "p");
    assert_int_equal(wk_runtime_next_deadline(rt), 11999);

    /* A clock going back is ignored. */
    wk_runtime_tick(rt, 5);
    wk_runtime_tick(rt, 11998);
    assert_int_equal(s_stats(rt).live_actors, 1);
    wk_runtime_tick(rt, 11999);
    assert_int_equal(s_stats(rt).live_actors, 0);
    assert_int_equal(s_stats(rt).passivated, 2);

    /* Re-created from scratch. */
    assert_int_equal(s_req(rt, 6, "counter", "k", 0), 0);
    assert_int_equal(s_req(rt, 7, "probe", "p", OP_REPLY), 0);
    s_drain(rt);
    assert_int_equal(s_reply_uint(s_out_for(6)), 1);
    assert_int_equal(s_reply_uint(s_out_for(7)), 1);
    assert_int_equal(g_probe.starts, 2);
    wk_runtime_destroy(&rt);
}

/* An actor with queued messages is not idle, however old. */
static void
test_no_passivation_with_mail(void **state)
{
    (void)state;
    wk_runtime_t *rt = s_rt_new(0, 0, 100);
    assert_int_equal(s_req(rt, 1, "probe", "a", OP_REPLY), 0);
    s_drain(rt);
    assert_int_equal(s_req(rt, 2, "probe", "a", OP_REPLY), 0);
    wk_runtime_tick(rt, 1000000);
    assert_int_equal(g_probe.stops, 0);
    assert_int_equal(s_stats(rt).live_actors, 1);
    s_drain(rt);
    assert_int_equal(s_reply_uint(s_out_for(2)), 2);
    wk_runtime_tick(rt, 1000099);
    assert_int_equal(g_probe.stops, 0);
    wk_runtime_tick(rt, 1000100);
    assert_int_equal(g_probe.stops, 1);
    wk_runtime_destroy(&rt);
}

/* At max_actors the least recently used idle actor makes room; with none
 * idle, new keys are refused `overloaded`. */
static void
test_max_actors(void **state)
{
    (void)state;
    wk_runtime_t *rt = s_rt_new(2, 0, 0);
    assert_int_equal(s_req(rt, 1, "probe", "a", OP_REPLY), 0);
    assert_int_equal(s_req(rt, 2, "probe", "b", OP_REPLY), 0);
    s_drain(rt);
    assert_int_equal(s_req(rt, 3, "probe", "a", OP_REPLY), 0); /* "b" is now the LRU */
    s_drain(rt);
    assert_int_equal(s_req(rt, 4, "probe", "c", OP_REPLY), 0);
    assert_int_equal(g_probe.stops, 1);
    assert_string_equal(g_probe.last_stopped, "b");
    s_drain(rt);
    assert_int_equal(s_reply_uint(s_out_for(4)), 1);
    assert_int_equal(s_req(rt, 5, "probe", "a", OP_REPLY), 0);
    s_drain(rt);
    assert_int_equal(s_reply_uint(s_out_for(5)), 3); /* "a" kept its state */

    /* Both busy: a new key has nowhere to go. */
    assert_int_equal(s_req(rt, 6, "probe", "a", OP_REPLY), 0);
    assert_int_equal(s_req(rt, 7, "probe", "c", OP_REPLY), 0);
    assert_int_equal(s_req(rt, 8, "probe", "d", OP_REPLY), -1);
    const out_rec_t *r = s_out_for(8);
    assert_int_equal(r->kind, OUT_ERROR);
    assert_string_equal(r->code, "overloaded");
    size_t outs = g_out.n;
    assert_int_equal(s_req(rt, 0, "probe", "d", OP_REPLY), -1);
    assert_int_equal(g_out.n, outs); /* rid 0: counted, not answered */
    wk_stats_t st = s_stats(rt);
    assert_int_equal(st.overloaded, 2);
    assert_int_equal(st.mailbox_full, 0);
    assert_int_equal(st.evicted, 1);
    assert_int_equal(st.live_actors, 2);

    s_drain(rt);
    assert_int_equal(s_reply_uint(s_out_for(6)), 4);
    assert_int_equal(s_reply_uint(s_out_for(7)), 2);
    assert_int_equal(g_probe.stops, 1);
    wk_runtime_destroy(&rt);
    assert_int_equal(g_probe.stops, 3);
}

/* A full mailbox refuses `overloaded`, and accepts again once drained. */
static void
test_mailbox_bound(void **state)
{
    (void)state;
    wk_runtime_t *rt = s_rt_new(0, 3, 0);
    for (uint64_t rid = 1; rid <= 5; rid++)
        assert_int_equal(s_req(rt, rid, "probe", "a", OP_REPLY), rid <= 3 ? 0 : -1);
    assert_string_equal(s_out_for(4)->code, "overloaded");
    assert_string_equal(s_out_for(5)->code, "overloaded");
    assert_int_equal(s_req(rt, 6, "probe", "b", OP_REPLY), 0); /* other keys are fine */
    wk_stats_t st = s_stats(rt);
    assert_int_equal(st.overloaded, 2);
    assert_int_equal(st.mailbox_full, 2);
    assert_int_equal(st.queued, 4);
    s_drain(rt);
    assert_int_equal(s_reply_uint(s_out_for(3)), 3);
    assert_int_equal(s_req(rt, 7, "probe", "a", OP_REPLY), 0);
    s_drain(rt);
    assert_int_equal(s_reply_uint(s_out_for(7)), 4);
    wk_runtime_destroy(&rt);
}

/* Every request with a rid gets exactly one answer. */
static void
test_unanswered_is_internal(void **state)
{
    (void)state;
    wk_runtime_t *rt = s_rt_new(0, 0, 0);
    assert_int_equal(s_req(rt, 1, "probe", "a", OP_SILENT), 0);
    assert_int_equal(s_req(rt, 0, "probe", "a", OP_SILENT), 0);
    assert_int_equal(s_req(rt, 2, "probe", "a", OP_FAIL), 0);
    assert_int_equal(s_req(rt, 3, "probe", "a", OP_REPLY_FAIL), 0);
    s_drain(rt);
    assert_int_equal(g_out.n, 3);
    assert_string_equal(s_out_for(1)->code, "internal");
    assert_string_equal(s_out_for(2)->code, "internal");
    assert_int_equal(s_out_for(3)->kind, OUT_REPLY);
    wk_stats_t st = s_stats(rt);
    assert_int_equal(st.unanswered, 2);
    assert_int_equal(st.errors, 2);
    assert_int_equal(st.handled, 4);
    wk_runtime_destroy(&rt);
}

/* A second answer to the same request is refused. */
static void
test_reply_once(void **state)
{
    (void)state;
    wk_runtime_t *rt = s_rt_new(0, 0, 0);
    assert_int_equal(s_req(rt, 1, "probe", "a", OP_DOUBLE), 0);
    s_drain(rt);
    assert_int_equal(g_probe.rc[0], 0);
    assert_int_equal(g_probe.rc[1], -1);
    assert_int_equal(g_probe.rc[2], -1);
    assert_int_equal(g_out.n, 1);
    assert_int_equal(s_out_for(1)->kind, OUT_REPLY);
    assert_int_equal(s_stats(rt).bad_output, 2);
    assert_int_equal(s_stats(rt).unanswered, 0);
    wk_runtime_destroy(&rt);
}

/* Replies that are not msgpack and invalid codes are refused, so the
 * request is answered `internal`; a valid own code goes through. */
static void
test_bad_outputs(void **state)
{
    (void)state;
    wk_runtime_t *rt = s_rt_new(0, 0, 0);
    assert_int_equal(s_req(rt, 1, "probe", "a", OP_BADDATA), 0);
    s_drain(rt);
    assert_int_equal(g_probe.rc[0], -1);
    assert_string_equal(s_out_for(1)->code, "internal");
    assert_int_equal(s_req(rt, 2, "probe", "a", OP_BADCODE), 0);
    s_drain(rt);
    assert_int_equal(g_probe.rc[0], -1);
    assert_string_equal(s_out_for(2)->code, "internal");
    assert_int_equal(s_req(rt, 3, "probe", "a", OP_ERROR), 0);
    s_drain(rt);
    assert_int_equal(g_probe.rc[0], 0);
    assert_string_equal(s_out_for(3)->code, "my_code");
    assert_string_equal(s_out_for(3)->msg, "custom text");
    wk_stats_t st = s_stats(rt);
    assert_int_equal(st.bad_output, 2);
    assert_int_equal(st.unanswered, 2);
    wk_runtime_destroy(&rt);
}

/* wk_send and wk_close reach the output with the actor's service name. */
static void
test_send_close(void **state)
{
    (void)state;
    wk_runtime_t *rt = s_rt_new(0, 0, 0);
    mp_t op = s_mp_uint(OP_SEND);
    assert_int_equal(s_deliver(rt, PROTO_BK_REQ, 3, 0, "probe", "a", 42, 0, op.b, op.len), 0);
    s_drain(rt);
    assert_int_equal(g_probe.rc[0], 0);
    assert_int_equal(g_probe.rc[1], 0);
    assert_int_equal(g_probe.rc[2], -1); /* not msgpack for a /ws client */
    assert_int_equal(g_out.n, 2);
    assert_int_equal(g_out.v[0].kind, OUT_SEND);
    assert_int_equal(g_out.v[0].origin, 3);
    assert_int_equal(g_out.v[0].n_conns, 1);
    assert_int_equal(g_out.v[0].conns[0], 42);
    assert_int_equal(g_out.v[0].flags, 0);
    assert_string_equal(g_out.v[0].svc, "probe");
    assert_int_equal(g_out.v[1].kind, OUT_CLOSE);
    assert_int_equal(g_out.v[1].origin, 3);
    assert_int_equal(g_out.v[1].conn, 42);
    assert_int_equal(g_out.v[1].close_code, 4000);
    assert_string_equal(g_out.v[1].msg, "bye");
    wk_runtime_destroy(&rt);
}

/* A failed start answers `internal`, keeps nothing, and is retried by
 * the next message. */
static void
test_start_failure(void **state)
{
    (void)state;
    wk_runtime_t *rt = s_rt_new(0, 0, 0);
    g_probe.fail_start = true;
    assert_int_equal(s_req(rt, 1, "probe", "a", OP_REPLY), 0);
    s_drain(rt);
    assert_string_equal(s_out_for(1)->code, "internal");
    wk_stats_t st = s_stats(rt);
    assert_int_equal(st.start_failed, 1);
    assert_int_equal(st.live_actors, 0);
    g_probe.fail_start = false;
    assert_int_equal(s_req(rt, 2, "probe", "a", OP_REPLY), 0);
    s_drain(rt);
    assert_int_equal(s_reply_uint(s_out_for(2)), 1);
    assert_int_equal(g_probe.starts, 1);
    wk_runtime_destroy(&rt);
    assert_int_equal(g_probe.stops, 1);
}

/* WK_STOP passivates right after the message; queued messages then meet a
 * fresh actor, in order. */
static void
test_stop_return(void **state)
{
    (void)state;
    wk_runtime_t *rt = s_rt_new(0, 0, 0);
    assert_int_equal(s_req(rt, 1, "probe", "a", OP_REPLY), 0);
    assert_int_equal(s_req(rt, 2, "probe", "a", OP_STOP), 0);
    s_drain(rt);
    assert_int_equal(s_reply_uint(s_out_for(2)), 2);
    assert_int_equal(g_probe.stops, 1);
    assert_int_equal(s_stats(rt).live_actors, 0);

    assert_int_equal(s_req(rt, 3, "probe", "a", OP_STOP), 0);
    assert_int_equal(s_req(rt, 4, "probe", "a", OP_REPLY), 0);
    s_drain(rt);
    assert_int_equal(s_reply_uint(s_out_for(3)), 1);
    assert_int_equal(s_reply_uint(s_out_for(4)), 1);
    assert_int_equal(g_probe.stops, 2);
    assert_int_equal(g_probe.starts, 3);
    assert_int_equal(s_stats(rt).live_actors, 1);
    wk_runtime_destroy(&rt);
    assert_int_equal(g_probe.stops, 3);
}

static void
test_unknown_service(void **state)
{
    (void)state;
    wk_runtime_t *rt = s_rt_new(0, 0, 0);
    assert_int_equal(s_req(rt, 9, "nope", "a", 1), -1);
    const out_rec_t *r = s_out_for(9);
    assert_int_equal(r->kind, OUT_ERROR);
    assert_string_equal(r->code, "no_service");
    assert_int_equal(s_req(rt, 0, "nope", "a", 1), -1);
    assert_int_equal(s_deliver(rt, PROTO_BK_OPEN, 0, 0, "nope", "a", 1, 0, NULL, 0), -1);
    /* A prefix of a service name is another name. */
    assert_int_equal(s_req(rt, 10, "prob", "a", 1), -1);
    assert_int_equal(g_out.n, 2);
    assert_int_equal(s_stats(rt).no_service, 4);
    assert_int_equal(s_stats(rt).live_actors, 0);
    wk_runtime_destroy(&rt);
}

/* OPEN and CLOSED reach the behaviour with their fields and want no reply;
 * headers of other types are refused. */
static void
test_open_closed(void **state)
{
    (void)state;
    wk_runtime_t *rt = s_rt_new(0, 0, 0);
    proto_bk_t h;
    memset(&h, 0, sizeof h);
    h.type = PROTO_BK_CLOSED;
    h.conn = 77;
    h.close_code = 1001;
    h.svc = proto_span("probe", 5);
    h.key = proto_span("k", 1);
    assert_int_equal(s_deliver(rt, PROTO_BK_OPEN, 1, 0, "probe", "k", 77, PROTO_BK_F_RAW, NULL, 0),
                     0);
    s_drain(rt);
    assert_int_equal(g_probe.last_kind, WK_MSG_OPEN);
    assert_int_equal(g_probe.last_conn, 77);
    assert_int_equal(g_probe.last_origin, 1);
    assert_int_equal(wk_runtime_deliver(rt, 2, &h, NULL, 0), 0);
    s_drain(rt);
    assert_int_equal(g_probe.last_kind, WK_MSG_CLOSED);
    assert_int_equal(g_probe.last_close_code, 1001);
    assert_int_equal(g_probe.last_origin, 2);
    assert_int_equal(g_out.n, 0);
    h.type = PROTO_BK_REPLY;
    assert_int_equal(wk_runtime_deliver(rt, 0, &h, NULL, 0), -1);
    h.type = PROTO_BK_WELCOME;
    assert_int_equal(wk_runtime_deliver(rt, 0, &h, NULL, 0), -1);
    assert_int_equal(s_stats(rt).handled, 2);
    wk_runtime_destroy(&rt);
}

/* The payload is copied at delivery: the caller's frame may be reused. */
static void
test_payload_copied(void **state)
{
    (void)state;
    wk_runtime_t *rt = s_rt_new(0, 0, 0);
    uint8_t buf[] = {0x93, 0x01, 0xa2, 'h', 'i', 0xc3}; /* [1, "hi", true] */
    uint8_t want[sizeof buf];
    memcpy(want, buf, sizeof buf);
    char key[] = "kk";
    assert_int_equal(s_deliver(rt, PROTO_BK_REQ, 0, 5, "echo", key, 1, 0, buf, sizeof buf), 0);
    memset(buf, 0xc1, sizeof buf);
    key[0] = 'z';
    s_drain(rt);
    const out_rec_t *r = s_out_for(5);
    assert_int_equal(r->kind, OUT_REPLY);
    assert_memory_equal(r->data, want, sizeof want);
    wk_runtime_destroy(&rt);
}

static void
test_echo(void **state)
{
    (void)state;
    wk_runtime_t *rt = s_rt_new(0, 0, 0);
    static const uint8_t map[] = {0x81, 0xa1, 'a',  0x92,
                                  0x01, 0xcd, 0x12, 0x34}; /* {a:[1,0x1234]} */
    assert_int_equal(s_deliver(rt, PROTO_BK_REQ, 1, 11, "echo", "x", 5, 0, map, sizeof map), 0);
    assert_int_equal(s_deliver(rt, PROTO_BK_REQ, 1, 0, "echo", "x", 5, 0, map, sizeof map), 0);
    assert_int_equal(s_deliver(rt, PROTO_BK_REQ, 0, 12, "echo", "x", 5, 0, NULL, 0), 0);
    assert_int_equal(s_deliver(rt, PROTO_BK_REQ, 2, 0, "echo", "c9", 9,
                               PROTO_BK_F_RAW | PROTO_BK_F_TEXT, "hello", 5),
                     0);
    static const uint8_t bin[] = {0xff, 0x00, 0xc1};
    assert_int_equal(
        s_deliver(rt, PROTO_BK_REQ, 2, 0, "echo", "c8", 8, PROTO_BK_F_RAW, bin, sizeof bin), 0);
    s_drain(rt);
    assert_int_equal(g_out.n, 4);

    const out_rec_t *r = s_out_for(11);
    assert_int_equal(r->kind, OUT_REPLY);
    assert_int_equal(r->origin, 1);
    assert_int_equal(r->len, sizeof map);
    assert_memory_equal(r->data, map, sizeof map);
    r = s_out_for(12);
    assert_int_equal(r->len, 1);
    assert_int_equal(r->data[0], 0xc0);

    const out_rec_t *t = NULL, *b = NULL;
    for (size_t i = 0; i < g_out.n; i++) {
        if (g_out.v[i].kind == OUT_SEND && g_out.v[i].conns[0] == 9)
            t = &g_out.v[i];
        if (g_out.v[i].kind == OUT_SEND && g_out.v[i].conns[0] == 8)
            b = &g_out.v[i];
    }
    assert_non_null(t);
    assert_non_null(b);
    assert_int_equal(t->origin, 2);
    assert_int_equal(t->n_conns, 1);
    assert_int_equal(t->flags, PROTO_BK_F_RAW | PROTO_BK_F_TEXT);
    assert_string_equal(t->svc, "echo");
    assert_int_equal(t->len, 5);
    assert_memory_equal(t->data, "hello", 5);
    assert_int_equal(b->flags, PROTO_BK_F_RAW);
    assert_int_equal(b->len, sizeof bin);
    assert_memory_equal(b->data, bin, sizeof bin);
    wk_runtime_destroy(&rt);
}

static void
test_counter(void **state)
{
    (void)state;
    wk_runtime_t *rt = s_rt_new(0, 0, 0);
    static const uint8_t nil = 0xc0, neg = 0xfd /* -3 */, str[] = {0xa1, '7'};
    static const uint8_t two_uints[] = {0x05, 0x05};
    assert_int_equal(s_deliver(rt, PROTO_BK_REQ, 0, 1, "counter", "x", 1, 0, &nil, 1), 0);
    assert_int_equal(s_req(rt, 2, "counter", "x", 5), 0);
    assert_int_equal(s_deliver(rt, PROTO_BK_REQ, 0, 3, "counter", "x", 1, 0, &neg, 1), 0);
    assert_int_equal(s_deliver(rt, PROTO_BK_REQ, 0, 4, "counter", "x", 1, 0, str, sizeof str), 0);
    assert_int_equal(s_req(rt, 5, "counter", "y", 0), 0); /* 0 is not positive: +1 */
    assert_int_equal(s_req(rt, 0, "counter", "x", 300), 0);
    assert_int_equal(
        s_deliver(rt, PROTO_BK_REQ, 0, 6, "counter", "x", 1, 0, two_uints, sizeof two_uints), 0);
    assert_int_equal(s_req(rt, 7, "counter", "z", UINT64_MAX - 1), 0);
    assert_int_equal(s_req(rt, 8, "counter", "z", 5), 0);
    s_drain(rt);
    assert_int_equal(s_reply_uint(s_out_for(1)), 1);
    assert_int_equal(s_reply_uint(s_out_for(2)), 6);
    assert_int_equal(s_reply_uint(s_out_for(3)), 7);
    assert_int_equal(s_reply_uint(s_out_for(4)), 8);
    assert_int_equal(s_reply_uint(s_out_for(5)), 1);
    assert_int_equal(s_reply_uint(s_out_for(6)), 309);
    assert_int_equal(s_reply_uint(s_out_for(7)), UINT64_MAX - 1);
    assert_int_equal(s_reply_uint(s_out_for(8)), UINT64_MAX);
    assert_int_equal(g_out.n, 8);
    /* OPEN/CLOSED do not count. */
    assert_int_equal(s_deliver(rt, PROTO_BK_OPEN, 0, 0, "counter", "y", 1, 0, NULL, 0), 0);
    assert_int_equal(s_req(rt, 9, "counter", "y", 1), 0);
    s_drain(rt);
    assert_int_equal(s_reply_uint(s_out_for(9)), 2);
    wk_runtime_destroy(&rt);
}

/* Thousands of keys through table growth and deletions: every key keeps
 * finding its own actor (a broken probe sequence restarts counts). */
static void
test_many_keys(void **state)
{
    (void)state;
    enum { KEYS = 3000 };
    wk_runtime_t *rt = s_rt_new(0, 0, 1000);
    char key[16];
    uint64_t rid = 1;
    wk_runtime_tick(rt, 1);
    for (int round = 0; round < 2; round++) {
        for (int k = 0; k < KEYS; k++) {
            snprintf(key, sizeof key, "key-%d", k);
            assert_int_equal(s_req(rt, rid++, "counter", key, 0), 0);
        }
    }
    s_drain(rt);
    for (uint64_t r = 1; r < rid; r++)
        assert_int_equal(s_reply_uint(s_out_for(r)), r <= KEYS ? 1 : 2);
    assert_int_equal(s_stats(rt).live_actors, KEYS);

    /* Odd keys active later: even keys then expire alone. */
    s_out_clear();
    wk_runtime_tick(rt, 501);
    for (int k = 1; k < KEYS; k += 2) {
        snprintf(key, sizeof key, "key-%d", k);
        assert_int_equal(s_req(rt, (uint64_t)k + 1, "counter", key, 0), 0);
    }
    s_drain(rt);
    wk_runtime_tick(rt, 1001);
    assert_int_equal(s_stats(rt).live_actors, KEYS / 2);
    assert_int_equal(s_stats(rt).passivated, KEYS / 2);

    /* Backwards: a key's lookup must not rely on the keys inserted before
     * it (the likely owners of the slots in its probe run) being back. */
    s_out_clear();
    for (int k = KEYS - 1; k >= 0; k--) {
        snprintf(key, sizeof key, "key-%d", k);
        assert_int_equal(s_req(rt, (uint64_t)k + 1, "counter", key, 0), 0);
    }
    s_drain(rt);
    for (int k = 0; k < KEYS; k++)
        assert_int_equal(s_reply_uint(s_out_for((uint64_t)k + 1)), k % 2 ? 4 : 1);
    assert_int_equal(s_stats(rt).live_actors, KEYS);
    wk_runtime_destroy(&rt);
}

/* The same key under two services is two actors. */
static void
test_key_per_service(void **state)
{
    (void)state;
    wk_runtime_t *rt = s_rt_new(0, 0, 0);
    assert_int_equal(s_req(rt, 1, "counter", "same", 0), 0);
    assert_int_equal(s_req(rt, 2, "probe", "same", OP_REPLY), 0);
    assert_int_equal(s_req(rt, 3, "counter", "same", 0), 0);
    s_drain(rt);
    assert_int_equal(s_reply_uint(s_out_for(2)), 1);
    assert_int_equal(s_reply_uint(s_out_for(3)), 2);
    assert_int_equal(s_stats(rt).live_actors, 2);
    wk_runtime_destroy(&rt);
}

/* An output that drops is counted, and the request is not answered twice. */
static void
test_output_dropped(void **state)
{
    (void)state;
    wk_runtime_t *rt = s_rt_new(0, 0, 0);
    g_out.fail = true;
    assert_int_equal(s_req(rt, 1, "probe", "a", OP_REPLY), 0);
    s_drain(rt);
    assert_int_equal(g_probe.rc[0], -1);
    assert_int_equal(g_out.n, 1);
    wk_stats_t st = s_stats(rt);
    assert_int_equal(st.out_dropped, 1);
    assert_int_equal(st.unanswered, 0);
    assert_int_equal(st.errors, 1); /* the behaviour returned wk_reply's -1 */
    wk_runtime_destroy(&rt);
}

/* Shutdown passivates every actor, busy or idle, and frees queued mail. */
static void
test_destroy_with_mail(void **state)
{
    (void)state;
    wk_runtime_t *rt = s_rt_new(0, 0, 0);
    for (int i = 0; i < 3; i++) {
        assert_int_equal(s_req(rt, 0, "probe", "a", OP_REPLY), 0);
        assert_int_equal(s_req(rt, 0, "probe", "b", OP_REPLY), 0);
        assert_int_equal(s_req(rt, 0, "probe", "c", OP_REPLY), 0);
    }
    assert_int_equal(wk_runtime_run(rt, 2), 2); /* a and b started, c not */
    assert_int_equal(g_probe.starts, 2);
    wk_runtime_destroy(&rt);
    assert_null(rt);
    assert_int_equal(g_probe.stops, 2);
    wk_runtime_destroy(&rt); /* NULL is fine */
    wk_runtime_destroy(NULL);
}

/* A pinned actor is neither passivated by idle time nor evicted under
 * max_actors; unpinned, it is idle again from that moment. */
static void
test_pin(void **state)
{
    (void)state;
    wk_runtime_t *rt = s_rt_new(2, 0, 1000);
    wk_runtime_tick(rt, 1000);
    assert_int_equal(s_req(rt, 1, "probe", "a", OP_PIN), 0);
    s_drain(rt);
    wk_stats_t st = s_stats(rt);
    assert_int_equal(st.pinned, 1);
    assert_int_equal(st.idle_actors, 1); /* parked: idle, but off the LRU */
    assert_int_equal(wk_runtime_next_deadline(rt), UINT64_MAX);
    wk_runtime_tick(rt, 1000000);
    assert_int_equal(s_stats(rt).live_actors, 1);
    assert_int_equal(g_probe.stops, 0);

    /* b idle, a pinned: a new key evicts b, never a. */
    assert_int_equal(s_req(rt, 2, "probe", "b", OP_REPLY), 0);
    s_drain(rt);
    assert_int_equal(s_req(rt, 3, "probe", "c", OP_REPLY), 0);
    assert_int_equal(g_probe.stops, 1);
    assert_string_equal(g_probe.last_stopped, "b");
    /* c busy (mail queued), a pinned: nothing can make room. */
    assert_int_equal(s_req(rt, 4, "probe", "d", OP_REPLY), -1);
    assert_string_equal(s_out_for(4)->code, "overloaded");
    s_drain(rt);
    /* Pinned again from its own mail, still the same actor: state kept. */
    assert_int_equal(s_req(rt, 5, "probe", "a", OP_PIN), 0);
    s_drain(rt);
    assert_int_equal(s_reply_uint(s_out_for(5)), 2);
    assert_int_equal(s_stats(rt).pinned, 1);

    /* Unpinned at 1000500: passivated idle_ms after that, not before. */
    wk_runtime_tick(rt, 1000500);
    assert_int_equal(s_req(rt, 6, "probe", "a", OP_UNPIN), 0);
    s_drain(rt);
    st = s_stats(rt);
    assert_int_equal(st.pinned, 0);
    assert_int_equal(st.idle_actors, 2);
    assert_int_equal(st.live_actors, 2);
    wk_runtime_tick(rt, 1001499);
    assert_int_equal(s_stats(rt).live_actors, 1); /* c, idle since 1000000 */
    assert_int_equal(wk_runtime_next_deadline(rt), 1001500);
    wk_runtime_tick(rt, 1001500);
    assert_int_equal(s_stats(rt).live_actors, 0);
    assert_int_equal(s_stats(rt).idle_actors, 0);

    /* WK_STOP ends a pinned actor too, and unpins it. */
    assert_int_equal(s_req(rt, 7, "probe", "e", OP_PIN_STOP), 0);
    s_drain(rt);
    st = s_stats(rt);
    assert_int_equal(st.live_actors, 0);
    assert_int_equal(st.pinned, 0);
    /* Shutdown passivates pinned actors as well. */
    assert_int_equal(s_req(rt, 8, "probe", "f", OP_PIN), 0);
    s_drain(rt);
    int stops = g_probe.stops;
    wk_runtime_destroy(&rt);
    assert_int_equal(g_probe.stops, stops + 1);
}

/* Many pinned and unpinned actors in churn: the LRU stays in order, the
 * gauges add up, and only unpinned actors expire. */
static void
test_pin_churn(void **state)
{
    (void)state;
    enum { KEYS = 200 };
    wk_runtime_t *rt = s_rt_new(0, 0, 100);
    char key[16];
    uint64_t rid = 1;
    for (uint64_t t = 1; t <= 20; t++) {
        wk_runtime_tick(rt, t * 10);
        for (int k = 0; k < KEYS; k++) {
            if ((k + (int)t) % 7 != 0)
                continue;
            snprintf(key, sizeof key, "k%d", k);
            assert_int_equal(s_req(rt, rid++, "probe", key, k % 2 ? OP_PIN : OP_UNPIN), 0);
        }
        s_drain(rt);
    }
    wk_stats_t st = s_stats(rt);
    assert_int_equal(st.live_actors, KEYS);
    assert_int_equal(st.pinned, KEYS / 2);
    assert_int_equal(st.idle_actors, KEYS);
    wk_runtime_tick(rt, 1000000);
    st = s_stats(rt);
    assert_int_equal(st.live_actors, KEYS / 2);
    assert_int_equal(st.pinned, KEYS / 2);
    assert_int_equal(st.idle_actors, KEYS / 2);
    assert_int_equal(wk_runtime_next_deadline(rt), UINT64_MAX);
    wk_runtime_destroy(&rt);
}

/* A REQ's user reaches the behaviour; other kinds have none. */
static void
test_req_user(void **state)
{
    (void)state;
    wk_runtime_t *rt = s_rt_new(0, 0, 0);
    proto_bk_t h;
    mp_t op = s_mp_uint(OP_USER);
    char user[] = "alice@example";
    memset(&h, 0, sizeof h);
    h.type = PROTO_BK_REQ;
    h.rid = 1;
    h.conn = 3;
    h.svc = proto_span("probe", 5);
    h.key = proto_span("k", 1);
    h.user = proto_span(user, strlen(user));
    assert_int_equal(wk_runtime_deliver(rt, 0, &h, op.b, op.len), 0);
    memset(user, 'x', strlen(user)); /* copied at delivery */
    s_drain(rt);
    assert_string_equal(g_probe.last_user, "alice@example");
    h.type = PROTO_BK_OPEN; /* a decoder never sets it there; ignored anyway */
    assert_int_equal(wk_runtime_deliver(rt, 0, &h, NULL, 0), 0);
    s_drain(rt);
    assert_int_equal(g_probe.last_kind, WK_MSG_OPEN);
    assert_string_equal(g_probe.last_user, "");
    h.type = PROTO_BK_REQ;
    h.rid = 2;
    h.user = proto_span(NULL, 0); /* anonymous */
    assert_int_equal(wk_runtime_deliver(rt, 0, &h, op.b, op.len), 0);
    s_drain(rt);
    assert_string_equal(g_probe.last_user, "");
    wk_runtime_destroy(&rt);
}

/* wk_broadcast_pub hands one PUB to the output (which sends it to every
 * gateway) and refuses what a gateway would drop as malformed;
 * wk_publish goes to the origin of the message with a fresh ref. */
static void
test_pub_outputs(void **state)
{
    (void)state;
    wk_runtime_t *rt = s_rt_new(0, 0, 0);
    assert_int_equal(s_deliver(rt, PROTO_BK_REQ, 2, 1, "probe", "k", 5, 0, (uint8_t[]){OP_PUB}, 1),
                     0);
    s_drain(rt);
    assert_int_equal(g_probe.pub_rc[0], 0);
    assert_int_equal(g_probe.pub_rc[1], 0);
    for (int i = 2; i <= 6; i++)
        assert_int_equal(g_probe.pub_rc[i], -1);
    assert_int_equal(g_out.n, 3); /* two PUBs and the reply */
    const out_rec_t *r = &g_out.v[0];
    assert_int_equal(r->kind, OUT_PUB);
    assert_string_equal(r->channel, "room:1");
    assert_int_equal(r->pub_kind, PROTO_BK_PUB_MSG);
    assert_int_equal(r->offset, 7);
    assert_string_equal(r->epoch, "0badcafe");
    assert_string_equal(r->user, "alice");
    assert_int_equal(r->len, 1);
    assert_int_equal(r->data[0], 1); /* the probe's count, msgpack 1 */
    r = &g_out.v[1];
    assert_int_equal(r->pub_kind, PROTO_BK_PUB_JOIN);
    assert_int_equal(r->len, 1);
    assert_int_equal(r->data[0], 0xc0);
    wk_stats_t st = s_stats(rt);
    assert_int_equal(st.pubs, 2);
    assert_int_equal(st.bad_output, 5);

    s_out_clear();
    assert_int_equal(
        s_deliver(rt, PROTO_BK_REQ, 3, 2, "probe", "k", 5, 0, (uint8_t[]){OP_PUBLISH}, 1), 0);
    s_drain(rt);
    assert_int_equal(g_probe.pub_rc[0], 0);
    assert_int_equal(g_probe.pub_rc[1], 0);
    assert_int_equal(g_probe.pub_rc[2], -1);
    assert_int_equal(g_probe.pub_rc[3], -1);
    assert_int_equal(g_out.n, 3);
    assert_int_equal(g_out.v[0].kind, OUT_PUBLISH);
    assert_int_equal(g_out.v[0].origin, 3);
    assert_string_equal(g_out.v[0].channel, "news");
    assert_int_equal(g_out.v[0].ref, 1);
    assert_int_equal(g_out.v[0].len, 1);
    assert_int_equal(g_out.v[0].data[0], 2); /* second message of this actor */
    assert_int_equal(g_out.v[1].ref, 2);
    assert_int_equal(s_stats(rt).publishes, 2);

    /* A full queue: -1 and counted. */
    s_out_clear();
    g_out.fail = true;
    assert_int_equal(
        s_deliver(rt, PROTO_BK_REQ, 0, 3, "probe", "k", 5, 0, (uint8_t[]){OP_PUBLISH}, 1), 0);
    s_drain(rt);
    assert_int_equal(g_probe.pub_rc[0], -1);
    wk_runtime_destroy(&rt);

    /* An output without pub_fn/publish_fn (a runtime whose services never
     * publish): the calls fail, counted as dropped. */
    static const wk_service_t *const svcs[] = {&s_svc_probe};
    wk_out_t bare = s_out;
    bare.pub_fn = NULL;
    bare.publish_fn = NULL;
    rt = wk_runtime_new(NULL, svcs, 1, &bare, NULL);
    assert_non_null(rt);
    s_out_clear();
    assert_int_equal(s_deliver(rt, PROTO_BK_REQ, 0, 1, "probe", "k", 5, 0, (uint8_t[]){OP_PUB}, 1),
                     0);
    assert_int_equal(
        s_deliver(rt, PROTO_BK_REQ, 0, 2, "probe", "k", 5, 0, (uint8_t[]){OP_PUBLISH}, 1), 0);
    s_drain(rt);
    assert_int_equal(g_probe.pub_rc[0], -1);
    assert_int_equal(g_out.n, 2); /* the replies only */
    assert_int_equal(s_stats(rt).out_dropped, 2 + 2);
    wk_runtime_destroy(&rt);
}

static void
test_new_rejects(void **state)
{
    (void)state;
    static const wk_service_t bad_name = {"Bad Name", NULL, seq_handle, NULL, 0};
    static const wk_service_t no_handle = {"nohandle", NULL, NULL, NULL, 0};
    const wk_service_t *dup[] = {&wk_svc_echo, &wk_svc_echo};
    const wk_service_t *bad[] = {&bad_name};
    const wk_service_t *noh[] = {&no_handle};
    const wk_service_t *ok[] = {&wk_svc_echo};
    wk_out_t no_reply = s_out;
    no_reply.reply_fn = NULL;
    assert_null(wk_runtime_new(NULL, dup, 2, &s_out, NULL));
    assert_null(wk_runtime_new(NULL, bad, 1, &s_out, NULL));
    assert_null(wk_runtime_new(NULL, noh, 1, &s_out, NULL));
    assert_null(wk_runtime_new(NULL, ok, 0, &s_out, NULL));
    assert_null(wk_runtime_new(NULL, ok, 1, NULL, NULL));
    assert_null(wk_runtime_new(NULL, ok, 1, &no_reply, NULL));
    wk_runtime_t *rt = wk_runtime_new(NULL, ok, 1, &s_out, NULL);
    assert_non_null(rt);
    size_t n = 0;
    assert_ptr_equal(wk_runtime_services(rt, &n)[0], &wk_svc_echo);
    assert_int_equal(n, 1);
    wk_runtime_destroy(&rt);

    assert_ptr_equal(wk_service_find("echo"), &wk_svc_echo);
    assert_ptr_equal(wk_service_find("counter"), &wk_svc_counter);
    assert_ptr_equal(wk_service_find("chan"), &wk_svc_chan);
    assert_null(wk_service_find("count"));
    assert_null(wk_service_find(NULL));
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_teardown(test_order_per_key, s_teardown),
        cmocka_unit_test_teardown(test_round_robin, s_teardown),
        cmocka_unit_test_teardown(test_one_at_a_time, s_teardown),
        cmocka_unit_test_teardown(test_passivation_idle, s_teardown),
        cmocka_unit_test_teardown(test_no_passivation_with_mail, s_teardown),
        cmocka_unit_test_teardown(test_max_actors, s_teardown),
        cmocka_unit_test_teardown(test_mailbox_bound, s_teardown),
        cmocka_unit_test_teardown(test_unanswered_is_internal, s_teardown),
        cmocka_unit_test_teardown(test_reply_once, s_teardown),
        cmocka_unit_test_teardown(test_bad_outputs, s_teardown),
        cmocka_unit_test_teardown(test_send_close, s_teardown),
        cmocka_unit_test_teardown(test_start_failure, s_teardown),
        cmocka_unit_test_teardown(test_stop_return, s_teardown),
        cmocka_unit_test_teardown(test_unknown_service, s_teardown),
        cmocka_unit_test_teardown(test_open_closed, s_teardown),
        cmocka_unit_test_teardown(test_payload_copied, s_teardown),
        cmocka_unit_test_teardown(test_echo, s_teardown),
        cmocka_unit_test_teardown(test_counter, s_teardown),
        cmocka_unit_test_teardown(test_many_keys, s_teardown),
        cmocka_unit_test_teardown(test_key_per_service, s_teardown),
        cmocka_unit_test_teardown(test_output_dropped, s_teardown),
        cmocka_unit_test_teardown(test_destroy_with_mail, s_teardown),
        cmocka_unit_test_teardown(test_pin, s_teardown),
        cmocka_unit_test_teardown(test_pin_churn, s_teardown),
        cmocka_unit_test_teardown(test_req_user, s_teardown),
        cmocka_unit_test_teardown(test_pub_outputs, s_teardown),
        cmocka_unit_test_teardown(test_new_rejects, s_teardown),
    };
    return cmocka_run_group_tests_name("workers.actor", tests, NULL, NULL);
}
