/*
 * actor.c - the actor runtime (actor.h).
 *
 * Every live actor is in the table, and in exactly one of four places:
 *
 *   IDLE     empty mailbox; on the LRU list, oldest first. Passivation by
 *            idle time and eviction under max_actors both take the head.
 *   PARKED   empty mailbox but pinned (wk_actor_pin): on no list at all,
 *            so neither the idle tick nor eviction can reach it.
 *   QUEUED   non-empty mailbox; on the run queue, once.
 *   RUNNING  its behaviour is on the stack (its mailbox may grow meanwhile,
 *            when a behaviour delivers; it is re-queued afterwards).
 *
 * So a delivery, a turn, a pin and a passivation are each O(1) list moves,
 * and an actor that is running, has work or is pinned is never passivated
 * under it. Keeping pinned actors off the LRU (rather than skipping them
 * there) keeps the LRU in idle_since order and its head the only candidate.
 *
 * An actor's state is created lazily, by the first turn (start_fn), not by
 * the delivery: start_fn then runs on the same path as every behaviour,
 * and an actor stopped with WK_STOP while messages wait simply starts
 * again on its next turn, in order.
 */
#include "actor.h"

#include "../protocol/envelope.h"
#include "../protocol/mpk.h"
#include "../protocol/rendezvous.h"

#include <assert.h>
#include <stdlib.h>
#include <string.h>

/* One queued message; the payload is copied into it once, because the
 * frame it came in is freed as soon as wk_runtime_deliver() returns. */
typedef struct wk_mail {
    struct wk_mail *next;
    wk_msg_kind_t kind;
    uint32_t origin;
    uint64_t rid;
    uint64_t conn;
    uint32_t flags;
    uint32_t close_code;
    size_t len;      /* payload bytes, at data */
    size_t user_len; /* REQ's user, right after the payload */
    uint8_t data[];
} wk_mail_t;

typedef enum {
    WK_SCHED_NEW = 0, /* just created, no list yet */
    WK_SCHED_IDLE,
    WK_SCHED_PARKED,
    WK_SCHED_QUEUED,
    WK_SCHED_RUNNING,
} wk_sched_t;

struct wk_actor {
    wk_runtime_t *rt;
    const wk_service_t *svc;
    proto_span_t svc_name;
    uint64_t hash;
    void *state;
    bool started;
    bool pinned;
    uint16_t svc_idx; /* into rt->svcs, for the per-service counters */
    wk_sched_t sched;
    wk_mail_t *mb_head;
    wk_mail_t *mb_tail;
    uint32_t mb_len;
    wk_actor_t *run_next;
    wk_actor_t *lru_prev;
    wk_actor_t *lru_next;
    uint64_t idle_since;
    size_t key_len;
    uint8_t key[];
};

struct wk_runtime {
    wk_runtime_cfg_t cfg;
    const wk_service_t **svcs; /* owned array of borrowed services */
    size_t *svc_name_len;
    wk_svc_stats_t *svc_st; /* per service, same order */
    size_t n_svcs;
    const wk_out_t *out;
    void *out_ctx;

    /* Open addressing, linear probing, backward-shift deletion (no
     * tombstones, so lookups never degrade after churn). cap is a power of
     * two and the load stays at or under one half. */
    wk_actor_t **slots;
    size_t cap;
    size_t count;

    wk_actor_t *run_head;
    wk_actor_t *run_tail;
    wk_actor_t *lru_head; /* least recently used idle actor */
    wk_actor_t *lru_tail;

    uint64_t now;
    bool running;
    uint64_t publish_ref; /* last PUBLISH ref handed out */

    /* The message being handled, so wk_reply/wk_error can check that they
     * answer it, and answer it once. */
    const wk_actor_t *cur_actor;
    const wk_msg_t *cur_msg;
    bool cur_answered;

    wk_stats_t st;
};

#define WK_TABLE_MIN 64

/* --- outputs ----------------------------------------------------------- */

static void
s_out_error(wk_runtime_t *rt, uint32_t origin, uint64_t rid, proto_err_t err, const char *msg)
{
    const char *code = proto_err_name(err);
    if (rt->out->error_fn(rt->out_ctx, origin, rid, proto_span(code, strlen(code)),
                          proto_span(msg, strlen(msg))) != 0)
        rt->st.out_dropped++;
}

/* Length of s cut to at most max bytes without splitting a UTF-8 sequence. */
static size_t
s_text_len(const char *s, size_t max)
{
    size_t len = strlen(s);
    if (len <= max)
        return len;
    len = max;
    while (len > 0 && ((unsigned char)s[len] & 0xC0) == 0x80)
        len--;
    return len;
}

/* --- service table ----------------------------------------------------- */

/* Index of the service called name, or -1. A linear scan: a runtime runs
 * a handful of services. */
static int
s_service_lookup(const wk_runtime_t *rt, proto_span_t name)
{
    for (size_t i = 0; i < rt->n_svcs; i++) {
        if (rt->svc_name_len[i] == name.len && memcmp(rt->svcs[i]->name, name.ptr, name.len) == 0)
            return (int)i;
    }
    return -1;
}

const wk_service_t *
wk_service_find(const char *name)
{
    static const wk_service_t *const builtin[] = {&wk_svc_echo, &wk_svc_counter, &wk_svc_auth,
                                                  &wk_svc_chan, &wk_svc_devtoken};
    if (!name)
        return NULL;
    for (size_t i = 0; i < sizeof builtin / sizeof builtin[0]; i++) {
        if (strcmp(builtin[i]->name, name) == 0)
            return builtin[i];
    }
    return NULL;
}

/* --- actor table ------------------------------------------------------- */

static wk_actor_t *
s_table_find(const wk_runtime_t *rt, const wk_service_t *svc, uint64_t hash, proto_span_t key)
{
    size_t mask = rt->cap - 1;
    for (size_t i = (size_t)hash & mask; rt->slots[i]; i = (i + 1) & mask) {
        wk_actor_t *a = rt->slots[i];
        if (a->hash == hash && a->svc == svc && a->key_len == key.len &&
            (key.len == 0 || memcmp(a->key, key.ptr, key.len) == 0))
            return a;
    }
    return NULL;
}

static void
s_table_place(wk_actor_t **slots, size_t cap, wk_actor_t *a)
{
    size_t mask = cap - 1;
    size_t i = (size_t)a->hash & mask;
    while (slots[i])
        i = (i + 1) & mask;
    slots[i] = a;
}

static int
s_table_insert(wk_runtime_t *rt, wk_actor_t *a)
{
    if ((rt->count + 1) * 2 > rt->cap) {
        size_t cap = rt->cap * 2;
        wk_actor_t **slots = calloc(cap, sizeof *slots);
        if (!slots)
            return -1;
        for (size_t i = 0; i < rt->cap; i++) {
            if (rt->slots[i])
                s_table_place(slots, cap, rt->slots[i]);
        }
        free(rt->slots);
        rt->slots = slots;
        rt->cap = cap;
    }
    s_table_place(rt->slots, rt->cap, a);
    rt->count++;
    return 0;
}

static void
s_table_remove(wk_runtime_t *rt, const wk_actor_t *a)
{
    size_t mask = rt->cap - 1;
    size_t i = (size_t)a->hash & mask;
    while (rt->slots[i] != a) {
        assert(rt->slots[i]);
        i = (i + 1) & mask;
    }
    rt->slots[i] = NULL;
    rt->count--;
    /* Backward shift: pull later members of the probe run into the hole
     * unless their home slot lies cyclically in (hole, j]. */
    for (size_t j = (i + 1) & mask; rt->slots[j]; j = (j + 1) & mask) {
        size_t home = (size_t)rt->slots[j]->hash & mask;
        bool stays = (i <= j) ? (i < home && home <= j) : (i < home || home <= j);
        if (stays)
            continue;
        rt->slots[i] = rt->slots[j];
        rt->slots[j] = NULL;
        i = j;
    }
}

/* --- lists ------------------------------------------------------------- */

static void
s_run_push(wk_runtime_t *rt, wk_actor_t *a)
{
    a->sched = WK_SCHED_QUEUED;
    a->run_next = NULL;
    if (rt->run_tail)
        rt->run_tail->run_next = a;
    else
        rt->run_head = a;
    rt->run_tail = a;
}

static wk_actor_t *
s_run_pop(wk_runtime_t *rt)
{
    wk_actor_t *a = rt->run_head;
    if (a) {
        rt->run_head = a->run_next;
        if (!rt->run_head)
            rt->run_tail = NULL;
        a->run_next = NULL;
    }
    return a;
}

static void
s_lru_push(wk_runtime_t *rt, wk_actor_t *a)
{
    a->sched = WK_SCHED_IDLE;
    a->idle_since = rt->now;
    a->lru_next = NULL;
    a->lru_prev = rt->lru_tail;
    if (rt->lru_tail)
        rt->lru_tail->lru_next = a;
    else
        rt->lru_head = a;
    rt->lru_tail = a;
    rt->st.idle_actors++;
}

static void
s_lru_remove(wk_runtime_t *rt, wk_actor_t *a)
{
    assert(a->sched == WK_SCHED_IDLE);
    if (a->lru_prev)
        a->lru_prev->lru_next = a->lru_next;
    else
        rt->lru_head = a->lru_next;
    if (a->lru_next)
        a->lru_next->lru_prev = a->lru_prev;
    else
        rt->lru_tail = a->lru_prev;
    a->lru_prev = a->lru_next = NULL;
    rt->st.idle_actors--;
}

/* An actor whose mailbox just emptied: on the LRU, or parked if pinned. */
static void
s_idle_push(wk_runtime_t *rt, wk_actor_t *a)
{
    if (a->pinned) {
        a->sched = WK_SCHED_PARKED;
        rt->st.idle_actors++;
    } else {
        s_lru_push(rt, a);
    }
}

/* Takes an idle actor (IDLE or PARKED) off its place, for the run queue. */
static void
s_idle_remove(wk_runtime_t *rt, wk_actor_t *a)
{
    if (a->sched == WK_SCHED_IDLE) {
        s_lru_remove(rt, a);
    } else {
        assert(a->sched == WK_SCHED_PARKED);
        rt->st.idle_actors--;
    }
}

static void
s_pin_set(wk_runtime_t *rt, wk_actor_t *a, bool pinned)
{
    if (a->pinned == pinned)
        return;
    a->pinned = pinned;
    if (pinned)
        rt->st.pinned++;
    else
        rt->st.pinned--;
}

/* --- actor lifecycle --------------------------------------------------- */

static wk_actor_t *
s_actor_new(wk_runtime_t *rt, const wk_service_t *svc, size_t svc_name_len, uint64_t hash,
            proto_span_t key)
{
    wk_actor_t *a = calloc(1, sizeof *a + key.len);
    if (!a)
        return NULL;
    a->rt = rt;
    a->svc = svc;
    a->svc_name = proto_span(svc->name, svc_name_len);
    a->hash = hash;
    a->key_len = key.len;
    if (key.len)
        memcpy(a->key, key.ptr, key.len);
    return a;
}

/* Gives the state to stop_fn; the actor stays in the table. */
static void
s_actor_stop(wk_runtime_t *rt, wk_actor_t *a)
{
    if (!a->started)
        return;
    if (a->svc->stop_fn)
        a->svc->stop_fn(a, a->state);
    a->state = NULL;
    a->started = false;
    s_pin_set(rt, a, false); /* the state that needed it is gone */
    rt->st.passivated++;
}

/* Frees an actor that is on no list. Queued mail is dropped unanswered:
 * only shutdown gets here with mail. */
static void
s_actor_free(wk_runtime_t *rt, wk_actor_t *a)
{
    wk_mail_t *m = a->mb_head;
    while (m) {
        wk_mail_t *next = m->next;
        free(m);
        m = next;
    }
    rt->st.queued -= a->mb_len;
    free(a);
}

/* Passivates and frees an idle actor. */
static void
s_actor_passivate(wk_runtime_t *rt, wk_actor_t *a)
{
    s_lru_remove(rt, a);
    s_actor_stop(rt, a);
    s_table_remove(rt, a);
    s_actor_free(rt, a);
}

/* --- runtime ----------------------------------------------------------- */

wk_runtime_t *
wk_runtime_new(const wk_runtime_cfg_t *cfg, const wk_service_t *const *svcs, size_t n_svcs,
               const wk_out_t *out, void *out_ctx)
{
    if (!svcs || n_svcs == 0 || n_svcs > PROTO_BK_MAX_SERVICES || !out || !out->reply_fn ||
        !out->error_fn || !out->send_fn || !out->close_fn)
        return NULL;
    for (size_t i = 0; i < n_svcs; i++) {
        if (!svcs[i] || !svcs[i]->name || !svcs[i]->handle_fn ||
            !proto_svc_valid(proto_span(svcs[i]->name, strlen(svcs[i]->name))))
            return NULL;
        for (size_t j = 0; j < i; j++) {
            if (strcmp(svcs[i]->name, svcs[j]->name) == 0)
                return NULL;
        }
    }

    wk_runtime_t *rt = calloc(1, sizeof *rt);
    if (!rt)
        return NULL;
    if (cfg)
        rt->cfg = *cfg;
    if (rt->cfg.max_actors == 0)
        rt->cfg.max_actors = WK_DEFAULT_MAX_ACTORS;
    if (rt->cfg.mailbox_max == 0)
        rt->cfg.mailbox_max = WK_DEFAULT_MAILBOX_MAX;
    if (rt->cfg.idle_ms == 0)
        rt->cfg.idle_ms = WK_DEFAULT_IDLE_MS;
    rt->out = out;
    rt->out_ctx = out_ctx;

    rt->svcs = calloc(n_svcs, sizeof *rt->svcs);
    if (!rt->svcs)
        goto out_free_rt;
    rt->svc_name_len = calloc(n_svcs, sizeof *rt->svc_name_len);
    rt->svc_st = calloc(n_svcs, sizeof *rt->svc_st);
    if (!rt->svc_name_len || !rt->svc_st)
        goto out_free_names;
    for (size_t i = 0; i < n_svcs; i++) {
        rt->svcs[i] = svcs[i];
        rt->svc_name_len[i] = strlen(svcs[i]->name);
    }
    rt->n_svcs = n_svcs;

    rt->cap = WK_TABLE_MIN;
    rt->slots = calloc(rt->cap, sizeof *rt->slots);
    if (!rt->slots)
        goto out_free_names;
    return rt;

out_free_names:
    free(rt->svc_name_len);
    free(rt->svc_st);
    free(rt->svcs);
out_free_rt:
    free(rt);
    return NULL;
}

void
wk_runtime_destroy(wk_runtime_t **rt_p)
{
    if (!rt_p || !*rt_p)
        return;
    wk_runtime_t *rt = *rt_p;
    assert(!rt->running);
    for (size_t i = 0; i < rt->cap; i++) {
        wk_actor_t *a = rt->slots[i];
        if (!a)
            continue;
        s_actor_stop(rt, a);
        s_actor_free(rt, a);
    }
    free(rt->slots);
    free(rt->svc_name_len);
    free(rt->svc_st);
    free(rt->svcs);
    free(rt);
    *rt_p = NULL;
}

/* Appends mail to a's mailbox and makes sure a gets a turn. */
static void
s_mail_push(wk_runtime_t *rt, wk_actor_t *a, wk_mail_t *mail)
{
    if (a->mb_tail)
        a->mb_tail->next = mail;
    else
        a->mb_head = mail;
    a->mb_tail = mail;
    a->mb_len++;
    rt->st.queued++;
    rt->st.delivered++;

    switch (a->sched) {
    case WK_SCHED_IDLE:
    case WK_SCHED_PARKED:
        s_idle_remove(rt, a);
        s_run_push(rt, a);
        break;
    case WK_SCHED_NEW:
        s_run_push(rt, a);
        break;
    case WK_SCHED_QUEUED:
    case WK_SCHED_RUNNING:
        break; /* already queued, or re-queued after its turn */
    }
}

int
wk_runtime_deliver(wk_runtime_t *rt, uint32_t origin, const proto_bk_t *hdr, const void *payload,
                   size_t len)
{
    wk_msg_kind_t kind;
    switch (hdr->type) {
    case PROTO_BK_REQ:
        kind = WK_MSG_REQ;
        break;
    case PROTO_BK_OPEN:
        kind = WK_MSG_OPEN;
        break;
    case PROTO_BK_CLOSED:
        kind = WK_MSG_CLOSED;
        break;
    default:
        return -1;
    }
    uint64_t rid = kind == WK_MSG_REQ ? hdr->rid : 0;
    if (len && !payload)
        len = 0;

    int si = s_service_lookup(rt, hdr->svc);
    if (si < 0) {
        rt->st.no_service++;
        if (rid)
            s_out_error(rt, origin, rid, PROTO_ERR_NO_SERVICE, "unknown service");
        return -1;
    }

    const wk_service_t *svc = rt->svcs[si];
    uint64_t hash = proto_rdv_key(hdr->svc, hdr->key);
    wk_actor_t *a = s_table_find(rt, svc, hash, hdr->key);
    if (a && a->mb_len >= rt->cfg.mailbox_max) {
        rt->st.overloaded++;
        rt->st.mailbox_full++;
        if (rid)
            s_out_error(rt, origin, rid, PROTO_ERR_OVERLOADED, "actor mailbox full");
        return -1;
    }
    if (!a && rt->count >= rt->cfg.max_actors) {
        if (!rt->lru_head) {
            rt->st.overloaded++;
            if (rid)
                s_out_error(rt, origin, rid, PROTO_ERR_OVERLOADED, "too many actors");
            return -1;
        }
        s_actor_passivate(rt, rt->lru_head);
        rt->st.evicted++;
    }

    /* Only a REQ carries a user; the decoder leaves it empty otherwise. */
    proto_span_t user = kind == WK_MSG_REQ ? hdr->user : proto_span(NULL, 0);
    if (user.len && !user.ptr)
        user.len = 0;
    wk_mail_t *mail = malloc(sizeof *mail + len + user.len);
    if (!mail)
        goto out_nomem;
    mail->next = NULL;
    mail->kind = kind;
    mail->origin = origin;
    mail->rid = rid;
    mail->conn = hdr->conn;
    mail->flags = hdr->flags;
    mail->close_code = kind == WK_MSG_CLOSED ? hdr->close_code : 0;
    mail->len = len;
    mail->user_len = user.len;
    if (len)
        memcpy(mail->data, payload, len);
    if (user.len)
        memcpy(mail->data + len, user.ptr, user.len);

    if (!a) {
        a = s_actor_new(rt, svc, rt->svc_name_len[si], hash, hdr->key);
        if (a)
            a->svc_idx = (uint16_t)si;
        if (!a)
            goto out_free_mail;
        if (s_table_insert(rt, a) != 0)
            goto out_free_actor;
    }

    s_mail_push(rt, a, mail);
    return 0;

out_free_actor:
    free(a);
out_free_mail:
    free(mail);
out_nomem:
    if (rid)
        s_out_error(rt, origin, rid, PROTO_ERR_INTERNAL, "out of memory");
    return -1;
}

size_t
wk_runtime_conns_gone(wk_runtime_t *rt, uint32_t origin, uint64_t below)
{
    size_t n = 0;

    for (size_t i = 0; i < rt->cap; i++) {
        wk_actor_t *a = rt->slots[i];
        /* Actors not started hold no state; a full mailbox is skipped
         * rather than grown: it is counted like any refused delivery. */
        if (!a || !a->started)
            continue;
        if (a->mb_len >= rt->cfg.mailbox_max) {
            rt->st.overloaded++;
            rt->st.mailbox_full++;
            continue;
        }
        wk_mail_t *mail = calloc(1, sizeof *mail);
        if (!mail)
            break;
        mail->kind = WK_MSG_CONNS_GONE;
        mail->origin = origin;
        mail->conn = below;
        s_mail_push(rt, a, mail);
        n++;
    }
    return n;
}

/* One turn: starts the actor if needed and hands it one message. Returns
 * what the behaviour returned (-1 for a failed start). */
static int
s_actor_turn(wk_runtime_t *rt, wk_actor_t *a, const wk_mail_t *mail)
{
    wk_msg_t m = {
        .kind = mail->kind,
        .origin = mail->origin,
        .rid = mail->rid,
        .conn = mail->conn,
        .flags = mail->flags,
        .close_code = mail->close_code,
        .data = proto_span(mail->data, mail->len),
        .user = proto_span(mail->data + mail->len, mail->user_len),
    };
    const char *why = "request not answered";
    int rc = 0;

    rt->cur_actor = a;
    rt->cur_msg = &m;
    rt->cur_answered = false;

    if (!a->started) {
        void *state = NULL;
        if (a->svc->start_fn && a->svc->start_fn(a, &state) != 0) {
            rt->st.start_failed++;
            why = "actor start failed";
            rc = -1;
        } else {
            a->state = state;
            a->started = true;
            rt->st.started++;
        }
    }
    if (a->started) {
        rc = a->svc->handle_fn(a, a->state, &m);
        if (rc < 0) {
            rt->st.errors++;
            why = "service error";
        }
    }
    rt->st.handled++;
    wk_svc_stats_t *ss = &rt->svc_st[a->svc_idx];
    ss->handled++;

    /* service.h promises the client exactly one reply per request. */
    if (m.kind == WK_MSG_REQ && m.rid != 0 && !rt->cur_answered) {
        rt->st.unanswered++;
        ss->unanswered++;
        s_out_error(rt, m.origin, m.rid, PROTO_ERR_INTERNAL, why);
    }
    rt->cur_actor = NULL;
    rt->cur_msg = NULL;
    return rc;
}

size_t
wk_runtime_run(wk_runtime_t *rt, size_t budget)
{
    /* A behaviour that calls back in would break one-message-at-a-time. */
    if (rt->running)
        return 0;
    rt->running = true;

    size_t n = 0;
    while (n < budget) {
        wk_actor_t *a = s_run_pop(rt);
        if (!a)
            break;
        wk_mail_t *mail = a->mb_head;
        a->mb_head = mail->next;
        if (!a->mb_head)
            a->mb_tail = NULL;
        a->mb_len--;
        rt->st.queued--;
        a->sched = WK_SCHED_RUNNING;

        int rc = s_actor_turn(rt, a, mail);
        free(mail);
        n++;

        if (rc == WK_STOP)
            s_actor_stop(rt, a);
        if (a->mb_head) {
            s_run_push(rt, a); /* to the back: round robin */
        } else if (a->started) {
            s_idle_push(rt, a);
        } else {
            /* Stopped, or its start failed, and nothing waits: drop it. */
            s_table_remove(rt, a);
            s_actor_free(rt, a);
        }
    }
    rt->running = false;
    return n;
}

bool
wk_runtime_busy(const wk_runtime_t *rt)
{
    return rt->run_head != NULL;
}

void
wk_runtime_tick(wk_runtime_t *rt, uint64_t now_ms)
{
    if (now_ms > rt->now)
        rt->now = now_ms;
    /* The LRU list is in idle_since order (the clock never goes back), so
     * only its head can be due. */
    while (rt->lru_head && rt->now - rt->lru_head->idle_since >= rt->cfg.idle_ms)
        s_actor_passivate(rt, rt->lru_head);
}

uint64_t
wk_runtime_next_deadline(const wk_runtime_t *rt)
{
    if (!rt->lru_head)
        return UINT64_MAX;
    return rt->lru_head->idle_since + rt->cfg.idle_ms;
}

const wk_service_t *const *
wk_runtime_services(const wk_runtime_t *rt, size_t *n)
{
    if (n)
        *n = rt->n_svcs;
    return rt->svcs;
}

const wk_svc_stats_t *
wk_runtime_svc_stats(const wk_runtime_t *rt, size_t i)
{
    return i < rt->n_svcs ? &rt->svc_st[i] : NULL;
}

void
wk_runtime_stats(const wk_runtime_t *rt, wk_stats_t *out)
{
    *out = rt->st;
    out->live_actors = rt->count;
}

/* --- service API (service.h) ------------------------------------------- */

proto_span_t
wk_actor_key(const wk_actor_t *a)
{
    return proto_span(a->key, a->key_len);
}

const wk_service_t *
wk_actor_service(const wk_actor_t *a)
{
    return a->svc;
}

uint64_t
wk_actor_now(const wk_actor_t *a)
{
    return a->rt->now;
}

void
wk_actor_pin(wk_actor_t *a, bool pinned)
{
    wk_runtime_t *rt = a->rt;
    if (a->pinned == pinned || (pinned && !a->started))
        return;
    s_pin_set(rt, a, pinned);
    /* Normally called by the running actor, whose place is chosen after
     * its turn (s_idle_push). An idle actor moves at once. */
    if (a->sched == WK_SCHED_IDLE && pinned) {
        s_lru_remove(rt, a);
        s_idle_push(rt, a);
    } else if (a->sched == WK_SCHED_PARKED && !pinned) {
        rt->st.idle_actors--;
        s_lru_push(rt, a); /* the idle clock starts now */
    }
}

/* The checks wk_reply and wk_error share: m is the message being handled
 * by a, a request that wants a reply and has none yet. */
static bool
s_may_answer(const wk_runtime_t *rt, const wk_actor_t *a, const wk_msg_t *m)
{
    return m && rt->cur_msg == m && rt->cur_actor == a && m->kind == WK_MSG_REQ && m->rid != 0 &&
           !rt->cur_answered;
}

int
wk_reply(wk_actor_t *a, const wk_msg_t *m, const void *data, size_t len)
{
    wk_runtime_t *rt = a->rt;
    if (!s_may_answer(rt, a, m) || !data || mpk_validate(data, len, MPK_MAX_DEPTH) != PROTO_OK) {
        rt->st.bad_output++;
        return -1;
    }
    /* Answered even if the output drops it: the gateway times it out, and
     * a second answer would break exactly-one-reply. */
    rt->cur_answered = true;
    rt->svc_st[a->svc_idx].replied++;
    if (rt->out->reply_fn(rt->out_ctx, m->origin, m->rid, data, len) != 0) {
        rt->st.out_dropped++;
        return -1;
    }
    return 0;
}

int
wk_error(wk_actor_t *a, const wk_msg_t *m, const char *code, const char *text)
{
    wk_runtime_t *rt = a->rt;
    if (!s_may_answer(rt, a, m) || !code || !proto_code_valid(proto_span(code, strlen(code)))) {
        rt->st.bad_output++;
        return -1;
    }
    if (!text)
        text = "";
    size_t text_len = s_text_len(text, PROTO_BK_TEXT_MAX);
    if (!proto_utf8_valid((const uint8_t *)text, text_len))
        text_len = 0; /* clients decode it as a string */
    rt->cur_answered = true;
    rt->svc_st[a->svc_idx].errored++;
    if (rt->out->error_fn(rt->out_ctx, m->origin, m->rid, proto_span(code, strlen(code)),
                          proto_span(text, text_len)) != 0) {
        rt->st.out_dropped++;
        return -1;
    }
    return 0;
}

int
wk_send(wk_actor_t *a, uint32_t origin, const uint64_t *conns, size_t n, uint32_t flags,
        const void *payload, size_t len)
{
    wk_runtime_t *rt = a->rt;
    if (n == 0)
        return 0;
    bool ok = conns && n <= PROTO_BK_MAX_TARGETS && (payload || len == 0) &&
              (flags & ~(uint32_t)(PROTO_BK_F_RAW | PROTO_BK_F_TEXT)) == 0;
    if (ok && !(flags & PROTO_BK_F_RAW)) {
        /* /ws clients get it inside a push envelope: one msgpack value. */
        ok = !(flags & PROTO_BK_F_TEXT) && payload &&
             mpk_validate(payload, len, MPK_MAX_DEPTH) == PROTO_OK;
    } else if (ok && (flags & PROTO_BK_F_TEXT)) {
        ok = len == 0 || proto_utf8_valid(payload, len); /* a websocket text frame */
    }
    if (!ok) {
        rt->st.bad_output++;
        return -1;
    }
    if (rt->out->send_fn(rt->out_ctx, origin, conns, n, flags, a->svc_name, payload, len) != 0) {
        rt->st.out_dropped++;
        return -1;
    }
    return 0;
}

int
wk_close(wk_actor_t *a, uint32_t origin, uint64_t conn, uint32_t code, const char *reason)
{
    wk_runtime_t *rt = a->rt;
    if (!reason)
        reason = "";
    size_t len = s_text_len(reason, PROTO_BK_TEXT_MAX);
    if (!proto_utf8_valid((const uint8_t *)reason, len))
        len = 0;
    if (rt->out->close_fn(rt->out_ctx, origin, conn, code, proto_span(reason, len)) != 0) {
        rt->st.out_dropped++;
        return -1;
    }
    return 0;
}

/* What wk_broadcast_pub and wk_publish accept as a channel name: what the
 * backend header decoder takes (protocol/backend.c), so a gateway never
 * drops our PUB as malformed. */
static bool
s_channel_ok(proto_span_t channel)
{
    return channel.len >= 1 && channel.len <= PROTO_BK_CHANNEL_MAX && channel.ptr &&
           proto_utf8_valid(channel.ptr, channel.len);
}

static bool
s_str_ok(proto_span_t s, size_t max)
{
    return s.len <= max && (s.len == 0 || (s.ptr && proto_utf8_valid(s.ptr, s.len)));
}

int
wk_broadcast_pub(wk_actor_t *a, proto_span_t channel, uint32_t kind, uint64_t offset,
                 proto_span_t epoch, proto_span_t user, const void *data, size_t len)
{
    static const uint8_t nil = 0xc0;
    wk_runtime_t *rt = a->rt;
    bool ok = s_channel_ok(channel) && kind <= PROTO_BK_PUB_LEAVE &&
              s_str_ok(epoch, PROTO_BK_EPOCH_MAX) && s_str_ok(user, PROTO_BK_USER_MAX);
    if (ok && kind == PROTO_BK_PUB_MSG) {
        ok = data && mpk_validate(data, len, MPK_MAX_DEPTH) == PROTO_OK;
    } else {
        data = &nil; /* presence events carry no data */
        len = 1;
    }
    if (!ok) {
        rt->st.bad_output++;
        return -1;
    }
    if (!rt->out->pub_fn) {
        rt->st.out_dropped++;
        return -1;
    }
    rt->st.pubs++;
    if (rt->out->pub_fn(rt->out_ctx, channel, kind, offset, epoch, user, data, len) != 0) {
        rt->st.out_dropped++;
        return -1;
    }
    return 0;
}

int
wk_publish(wk_actor_t *a, proto_span_t channel, const void *data, size_t len)
{
    wk_runtime_t *rt = a->rt;
    if (!s_channel_ok(channel) || !data || mpk_validate(data, len, MPK_MAX_DEPTH) != PROTO_OK) {
        rt->st.bad_output++;
        return -1;
    }
    if (!rt->out->publish_fn) {
        rt->st.out_dropped++;
        return -1;
    }
    /* The gateway that sent the message being handled is known to be up;
     * outside a message (stop_fn) the output picks one. */
    uint32_t origin = rt->cur_actor == a && rt->cur_msg ? rt->cur_msg->origin : WK_ORIGIN_ANY;
    rt->st.publishes++;
    if (rt->out->publish_fn(rt->out_ctx, origin, ++rt->publish_ref, channel, data, len) != 0) {
        rt->st.out_dropped++;
        return -1;
    }
    return 0;
}
