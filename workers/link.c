/*
 * link.c - the worker's ZeroMQ adapter (link.h). The only worker file that
 * includes <zmq.h>.
 *
 * Frames on the wire (protocol/backend.h): the gateway's ROUTER strips our
 * routing id, so a DEALER sees exactly [header] or [header][payload], and
 * sends the same. Every send is ZMQ_DONTWAIT: with ZMQ_IMMEDIATE 0 a
 * disconnected gateway's queue fills up to the HWM and then sends fail,
 * which drops the output instead of stalling every other gateway's actors.
 * ZeroMQ checks the HWM on a message's first part only, so a two-part
 * message is queued whole or not at all.
 */
#define _GNU_SOURCE /* getaddrinfo_a */
#include "link.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <zmq.h>

#include "../protocol/log.h"
#include "metrics.h"

/* Messages read from one gateway per loop turn: enough to amortise the
 * poll, few enough that a flooding gateway cannot starve the others, the
 * HELLO timer and passivation. */
#define WK_LINK_BATCH 4096
/* Messages handled per wk_runtime_run() call while draining. */
#define WK_LINK_RUN_BUDGET 4096
/* Log lines about bad input per second; the rest are counted. */
#define WK_LINK_LOG_PER_SEC 5

typedef struct {
    void *sock;
    char *endpoint;
    bool drain_acked;                       /* DRAINING received: nothing more will come from it */
    uint64_t last_welcome;                  /* ms; WELCOME answers each HELLO of a live gateway */
    char gw_id[PROTO_BK_WORKER_ID_MAX + 1]; /* from WELCOME: request ids in logs */
    uint64_t conn_floor; /* from WELCOME: its first connection id; rises when it restarts */
    bool gone_pending;   /* retired by discovery: its connections are yet to be forgotten */
    bool discovered;     /* from --gateway-dns / --gateways-file, not --gateway */
    bool seen;           /* scratch for s_discover */
} wk_gateway_t;

struct wk_link {
    void *zctx;
    wk_gateway_t *gw; /* origin = index; a retired gateway keeps its slot, sock NULL */
    size_t n_gw;
    size_t gw_cap;
    bool curve;
    char curve_secret[41], curve_server[41], curve_public[41];
    char *dns_host, *dns_port; /* --gateway-dns NAME:PORT, or NULL */
    struct s_gai *gai;         /* a re-resolution in flight (getaddrinfo_a), or NULL */
    char *gw_file;             /* --gateways-file, or NULL */
    uint64_t resolve_ms;
    bool hello_due; /* a gateway was discovered: HELLO at once */
    char *worker_id;
    uint64_t hello_ms;
    uint64_t drain_ms;
    bool verbose;
    proto_buf_t scratch; /* output headers, reused */
    wk_link_stats_t st;
    wk_metrics_t *metrics; /* NULL: no --metrics */
    /* rate limit for log lines about the network's input */
    uint64_t log_window;
    unsigned log_lines;
    uint64_t log_suppressed;
};

/* One asynchronous lookup of --gateway-dns. glibc's resolver thread
 * writes into it until it completes, so it is owned apart from the link:
 * a lookup that cannot be cancelled at shutdown is left to finish in it. */
typedef struct s_gai {
    struct gaicb cb;
    struct gaicb *list[1];
    struct addrinfo hints;
    char *host, *port;
} s_gai_t;

static uint64_t
s_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

static void __attribute__((format(printf, 2, 3))) s_log_limited(wk_link_t *l, const char *fmt, ...)
{
    uint64_t window = s_now_ms() / 1000u;
    if (window != l->log_window) {
        if (l->log_suppressed)
            proto_log(PROTO_LOG_WARN, "%llu log lines suppressed",
                      (unsigned long long)l->log_suppressed);
        l->log_window = window;
        l->log_lines = 0;
        l->log_suppressed = 0;
    }
    if (l->log_lines >= WK_LINK_LOG_PER_SEC) {
        l->log_suppressed++;
        return;
    }
    l->log_lines++;
    char line[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(line, sizeof line, fmt, ap);
    va_end(ap);
    proto_log(PROTO_LOG_WARN, "%s", line);
}

/* --- setup ------------------------------------------------------------- */

static int
s_setopt_int(void *sock, int opt, int v)
{
    return zmq_setsockopt(sock, opt, &v, sizeof v);
}

/* Opens a DEALER to endpoint in a new slot. NULL (reason logged) on
 * failure; the slot is then not used. */
static wk_gateway_t *
s_gw_add(wk_link_t *l, const char *endpoint, bool discovered)
{
    if (l->n_gw == l->gw_cap) {
        size_t cap = l->gw_cap ? l->gw_cap * 2 : 4;
        wk_gateway_t *gw = realloc(l->gw, cap * sizeof *gw);
        if (!gw) {
            proto_log(PROTO_LOG_ERR, "out of memory");
            return NULL;
        }
        l->gw = gw;
        l->gw_cap = cap;
    }
    wk_gateway_t *g = &l->gw[l->n_gw];
    memset(g, 0, sizeof *g);
    g->discovered = discovered;
    g->endpoint = strdup(endpoint);
    if (!g->endpoint) {
        proto_log(PROTO_LOG_ERR, "out of memory");
        return NULL;
    }
    l->n_gw++; /* so destroy closes what exists */
    g->sock = zmq_socket(l->zctx, ZMQ_DEALER);
    if (!g->sock) {
        proto_log(PROTO_LOG_ERR, "zmq_socket: %s", zmq_strerror(errno));
        return NULL;
    }
    /* LINGER 0: at shutdown queued outputs are worthless (their
     * requests time out at the gateway anyway). IMMEDIATE 0: queue
     * while a gateway is away, so HELLO is the first thing it reads. */
    if (s_setopt_int(g->sock, ZMQ_LINGER, 0) != 0 ||
        s_setopt_int(g->sock, ZMQ_SNDHWM, WK_LINK_HWM) != 0 ||
        s_setopt_int(g->sock, ZMQ_RCVHWM, WK_LINK_HWM) != 0 ||
        s_setopt_int(g->sock, ZMQ_IMMEDIATE, 0) != 0 ||
        s_setopt_int(g->sock, ZMQ_RECONNECT_IVL, 100) != 0 ||
        s_setopt_int(g->sock, ZMQ_RECONNECT_IVL_MAX, 1000) != 0 ||
        /* ZeroMQ's heartbeats find a dead link (no FIN) and reconnect */
        s_setopt_int(g->sock, ZMQ_HEARTBEAT_IVL, 1000) != 0 ||
        s_setopt_int(g->sock, ZMQ_HEARTBEAT_TIMEOUT, 3000) != 0 ||
        s_setopt_int(g->sock, ZMQ_TCP_KEEPALIVE, 1) != 0 ||
        s_setopt_int(g->sock, ZMQ_TCP_KEEPALIVE_IDLE, 30) != 0 ||
        s_setopt_int(g->sock, ZMQ_TCP_KEEPALIVE_INTVL, 10) != 0) {
        proto_log(PROTO_LOG_ERR, "zmq_setsockopt: %s", zmq_strerror(errno));
        return NULL;
    }
    /* CURVE client: the gateway's ZAP handler checks our public key
     * against its allow-list; a refused handshake is retried by
     * ZeroMQ's reconnect, so adding the key later lets us in. */
    if (l->curve && (zmq_setsockopt(g->sock, ZMQ_CURVE_SERVERKEY, l->curve_server, 40) != 0 ||
                     zmq_setsockopt(g->sock, ZMQ_CURVE_PUBLICKEY, l->curve_public, 40) != 0 ||
                     zmq_setsockopt(g->sock, ZMQ_CURVE_SECRETKEY, l->curve_secret, 40) != 0)) {
        proto_log(PROTO_LOG_ERR, "CURVE keys: %s", zmq_strerror(errno));
        return NULL;
    }
    if (zmq_connect(g->sock, g->endpoint) != 0) {
        proto_log(PROTO_LOG_ERR, "cannot connect to %s: %s", g->endpoint, zmq_strerror(errno));
        return NULL;
    }
    return g;
}

/* Marks endpoint wanted: an existing discovered link to it, or a new one. */
static void
s_discover_one(wk_link_t *l, const char *endpoint)
{
    for (size_t i = 0; i < l->n_gw; i++) {
        if (l->gw[i].sock && l->gw[i].discovered && !strcmp(l->gw[i].endpoint, endpoint)) {
            l->gw[i].seen = true;
            return;
        }
    }
    wk_gateway_t *g = s_gw_add(l, endpoint, true);
    if (g) {
        g->seen = true;
        l->hello_due = true; /* say HELLO to the new one now */
        proto_log(PROTO_LOG_INFO, "gateway %s discovered", endpoint);
    }
    /* a failed slot stays unused (origin numbers never move) */
}

/*
 * Finds the gateways now: every address of --gateway-dns (a headless
 * Service's name gives one per gateway pod) and every line of
 * --gateways-file. New ones get a link; discovered links whose gateway
 * is no longer listed are closed (their origin slot is kept, empty).
 * On a resolver or file error nothing is closed: a DNS hiccup must not
 * cut the worker off. getaddrinfo blocks; in-cluster DNS answers in well
 * under a millisecond, and this runs every resolve_ms only.
 */
/* One pass over what --gateway-dns resolved to (res, or the resolver's
 * error e) and the --gateways-file: new gateways get a link, discovered
 * ones no longer listed lose theirs. */
static int
s_discover_apply(wk_link_t *l, struct addrinfo *res, int e)
{
    int rc = 0;
    for (size_t i = 0; i < l->n_gw; i++)
        l->gw[i].seen = false;
    if (l->dns_host) {
        if (e != 0) {
            proto_log_limited(PROTO_LOG_WARN, "gateway-dns %s: %s", l->dns_host, gai_strerror(e));
            rc = -1;
        }
        for (struct addrinfo *a = res; a; a = a->ai_next) {
            char ip[INET6_ADDRSTRLEN], ep[INET6_ADDRSTRLEN + 32];
            int port;
            if (a->ai_family == AF_INET) {
                struct sockaddr_in *sin = (struct sockaddr_in *)a->ai_addr;
                inet_ntop(AF_INET, &sin->sin_addr, ip, sizeof ip);
                port = ntohs(sin->sin_port);
                snprintf(ep, sizeof ep, "tcp://%s:%d", ip, port);
            } else if (a->ai_family == AF_INET6) {
                struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *)a->ai_addr;
                inet_ntop(AF_INET6, &sin6->sin6_addr, ip, sizeof ip);
                port = ntohs(sin6->sin6_port);
                snprintf(ep, sizeof ep, "tcp://[%s]:%d", ip, port);
            } else {
                continue;
            }
            s_discover_one(l, ep);
        }
    }
    if (l->gw_file) {
        FILE *f = fopen(l->gw_file, "r");
        char line[512];
        if (!f) {
            proto_log_limited(PROTO_LOG_WARN, "gateways-file %s: %s", l->gw_file, strerror(errno));
            rc = -1;
        }
        while (f && fgets(line, sizeof line, f)) {
            char *p = line + strspn(line, " \t");
            p[strcspn(p, " \t\r\n#")] = '\0';
            if (*p)
                s_discover_one(l, p);
        }
        if (f)
            fclose(f);
    }
    if (rc != 0)
        return rc;
    for (size_t i = 0; i < l->n_gw; i++) {
        wk_gateway_t *g = &l->gw[i];
        if (g->sock && g->discovered && !g->seen) {
            proto_log(PROTO_LOG_INFO, "gateway %s no longer listed: link closed", g->endpoint);
            zmq_close(g->sock);
            g->sock = NULL;
            g->gone_pending = true;
        }
    }
    return 0;
}

/* At start, blocking: nothing is served yet, and the first gateways are
 * wanted before the first HELLO. */
static int
s_discover_now(wk_link_t *l)
{
    struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM};
    struct addrinfo *res = NULL;
    int e = l->dns_host ? getaddrinfo(l->dns_host, l->dns_port, &hints, &res) : 0;
    int rc = s_discover_apply(l, res, e);

    if (res)
        freeaddrinfo(res);
    return rc;
}

/*
 * Every resolve_ms afterwards: the lookup runs on glibc's resolver thread
 * (getaddrinfo_a), so a slow or dead DNS server never stalls the actors;
 * s_discover_poll() applies the answer when it is in. A lookup still out
 * at the next round is left to finish. Without --gateway-dns the file is
 * read at once.
 */
static void
s_discover_start(wk_link_t *l)
{
    if (!l->dns_host) {
        (void)s_discover_apply(l, NULL, 0);
        return;
    }
    if (l->gai)
        return;
    s_gai_t *g = calloc(1, sizeof *g);
    if (!g || !(g->host = strdup(l->dns_host)) || !(g->port = strdup(l->dns_port))) {
        if (g) {
            free(g->host);
            free(g);
        }
        return;
    }
    g->hints = (struct addrinfo){.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM};
    g->cb = (struct gaicb){.ar_name = g->host, .ar_service = g->port, .ar_request = &g->hints};
    g->list[0] = &g->cb;
    int e = getaddrinfo_a(GAI_NOWAIT, g->list, 1, NULL);
    if (e != 0) {
        (void)s_discover_apply(l, NULL, e); /* logged, nothing closed */
        free(g->host);
        free(g->port);
        free(g);
        return;
    }
    l->gai = g;
}

static void
s_gai_free(s_gai_t *g)
{
    if (g->cb.ar_result)
        freeaddrinfo(g->cb.ar_result);
    free(g->host);
    free(g->port);
    free(g);
}

/* Applies a finished lookup. */
static void
s_discover_poll(wk_link_t *l)
{
    if (!l->gai)
        return;
    int e = gai_error(&l->gai->cb);
    if (e == EAI_INPROGRESS)
        return;
    (void)s_discover_apply(l, e == 0 ? l->gai->cb.ar_result : NULL, e);
    s_gai_free(l->gai);
    l->gai = NULL;
}

wk_link_t *
wk_link_new(const wk_link_cfg_t *cfg)
{
    if (!cfg || (cfg->n_endpoints && !cfg->endpoints) || cfg->n_endpoints > UINT32_MAX ||
        (cfg->n_endpoints == 0 && !cfg->gateway_dns && !cfg->gateways_file) || !cfg->worker_id ||
        cfg->worker_id[0] == '\0' || strlen(cfg->worker_id) > PROTO_BK_WORKER_ID_MAX) {
        fprintf(stderr, "wsgate-worker: bad link configuration\n");
        return NULL;
    }
    wk_link_t *l = calloc(1, sizeof *l);
    if (!l)
        goto out_nomem;
    l->hello_ms = cfg->hello_ms ? cfg->hello_ms : WK_LINK_DEFAULT_HELLO_MS;
    l->drain_ms = cfg->drain_ms;
    l->verbose = cfg->verbose;
    if (cfg->metrics_listen && !(l->metrics = wk_metrics_new(cfg->metrics_listen))) {
        free(l);
        return NULL;
    }
    proto_buf_init(&l->scratch, 0);
    l->worker_id = strdup(cfg->worker_id);
    if (!l->worker_id)
        goto out_destroy_nomem;
    if ((cfg->curve_secret != NULL) != (cfg->curve_server != NULL) ||
        (cfg->curve_secret && zmq_curve_public(l->curve_public, cfg->curve_secret) != 0)) {
        fprintf(stderr, "wsgate-worker: CURVE needs a valid secret key and the server key\n");
        goto out_destroy;
    }
    if (cfg->curve_secret) {
        l->curve = true;
        snprintf(l->curve_secret, sizeof l->curve_secret, "%s", cfg->curve_secret);
        snprintf(l->curve_server, sizeof l->curve_server, "%s", cfg->curve_server);
    }
    l->zctx = zmq_ctx_new();
    if (!l->zctx) {
        fprintf(stderr, "wsgate-worker: zmq_ctx_new: %s\n", zmq_strerror(errno));
        goto out_destroy;
    }

    for (size_t i = 0; i < cfg->n_endpoints; i++)
        if (!s_gw_add(l, cfg->endpoints[i], false))
            goto out_destroy;
    if (cfg->gateway_dns) {
        const char *colon = strrchr(cfg->gateway_dns, ':');
        if (!colon || colon == cfg->gateway_dns || !colon[1]) {
            fprintf(stderr, "wsgate-worker: --gateway-dns: expected NAME:PORT, got '%s'\n",
                    cfg->gateway_dns);
            goto out_destroy;
        }
        l->dns_host = strndup(cfg->gateway_dns, (size_t)(colon - cfg->gateway_dns));
        l->dns_port = strdup(colon + 1);
        if (!l->dns_host || !l->dns_port)
            goto out_destroy_nomem;
    }
    if (cfg->gateways_file && !(l->gw_file = strdup(cfg->gateways_file)))
        goto out_destroy_nomem;
    l->resolve_ms = cfg->resolve_ms ? cfg->resolve_ms : WK_LINK_DEFAULT_RESOLVE_MS;
    if ((l->dns_host || l->gw_file) && s_discover_now(l) != 0 && l->n_gw == 0)
        proto_log(PROTO_LOG_WARN, "no gateway found yet; trying again every %llu ms",
                  (unsigned long long)l->resolve_ms);
    return l;

out_destroy_nomem:
    fprintf(stderr, "wsgate-worker: out of memory\n");
out_destroy:
    wk_link_destroy(&l);
    return NULL;
out_nomem:
    fprintf(stderr, "wsgate-worker: out of memory\n");
    return NULL;
}

void
wk_link_destroy(wk_link_t **link_p)
{
    if (!link_p || !*link_p)
        return;
    wk_link_t *l = *link_p;
    wk_metrics_destroy(&l->metrics);
    if (l->gai) {
        /* A lookup still running writes into l->gai: cancel it, or give
         * it a moment; one that will not stop is left to the resolver
         * thread (a few hundred bytes, once, at exit). */
        struct timespec ts = {2, 0};
        const struct gaicb *list[1] = {&l->gai->cb};
        if (gai_cancel(&l->gai->cb) == EAI_CANCELED || gai_error(&l->gai->cb) != EAI_INPROGRESS ||
            (gai_suspend(list, 1, &ts) == 0 && gai_error(&l->gai->cb) != EAI_INPROGRESS))
            s_gai_free(l->gai);
        l->gai = NULL;
    }
    free(l->dns_host);
    free(l->dns_port);
    free(l->gw_file);
    memset(l->curve_secret, 0, sizeof l->curve_secret);
    for (size_t i = 0; i < l->n_gw; i++) {
        if (l->gw[i].sock)
            zmq_close(l->gw[i].sock);
        free(l->gw[i].endpoint);
    }
    if (l->zctx) {
        while (zmq_ctx_term(l->zctx) != 0 && errno == EINTR)
            ;
    }
    free(l->gw);
    free(l->worker_id);
    proto_buf_fini(&l->scratch);
    free(l);
    *link_p = NULL;
}

void
wk_link_stats(const wk_link_t *link, wk_link_stats_t *out)
{
    *out = link->st;
}

/* --- output ------------------------------------------------------------ */

/* Sends l->scratch as the header, then the payload if has_payload. */
static int
s_send(wk_link_t *l, uint32_t origin, bool has_payload, const void *payload, size_t len)
{
    if (origin >= l->n_gw || !l->gw[origin].sock) {
        l->st.tx_dropped++; /* no such gateway, or its link was closed */
        return -1;
    }
    void *sock = l->gw[origin].sock;
    if (zmq_send(sock, proto_buf_payload(&l->scratch), l->scratch.len,
                 ZMQ_DONTWAIT | (has_payload ? ZMQ_SNDMORE : 0)) < 0)
        goto out_dropped;
    /* Cannot hit the HWM: the first part was accepted. */
    if (has_payload && zmq_send(sock, payload, len, ZMQ_DONTWAIT) < 0)
        goto out_dropped;
    l->st.tx++;
    return 0;

out_dropped:
    l->st.tx_dropped++;
    s_log_limited(l, "gateway %s: send failed (%s), output dropped", l->gw[origin].endpoint,
                  zmq_strerror(errno));
    return -1;
}

static int
s_out_reply(void *ctx, uint32_t origin, uint64_t rid, const void *data, size_t len)
{
    wk_link_t *l = ctx;
    if (proto_log_on(PROTO_LOG_DEBUG) && origin < l->n_gw)
        proto_log_req(PROTO_LOG_DEBUG, l->gw[origin].gw_id, rid, "answered: ok");
    proto_buf_reset(&l->scratch);
    if (proto_bk_encode_reply(&l->scratch, rid) != 0) {
        l->st.tx_dropped++;
        return -1;
    }
    return s_send(l, origin, true, data, len);
}

static int
s_out_error(void *ctx, uint32_t origin, uint64_t rid, proto_span_t code, proto_span_t msg)
{
    wk_link_t *l = ctx;
    if (proto_log_on(PROTO_LOG_DEBUG) && origin < l->n_gw)
        proto_log_req(PROTO_LOG_DEBUG, l->gw[origin].gw_id, rid, "answered: %.*s", (int)code.len,
                      (const char *)code.ptr);
    proto_buf_reset(&l->scratch);
    if (proto_bk_encode_error(&l->scratch, rid, code, msg) != 0) {
        l->st.tx_dropped++;
        return -1;
    }
    return s_send(l, origin, false, NULL, 0);
}

static int
s_out_send(void *ctx, uint32_t origin, const uint64_t *conns, size_t n, uint32_t flags,
           proto_span_t svc, const void *payload, size_t len)
{
    wk_link_t *l = ctx;
    proto_buf_reset(&l->scratch);
    if (proto_bk_encode_send(&l->scratch, conns, n, flags, svc) != 0) {
        l->st.tx_dropped++;
        return -1;
    }
    return s_send(l, origin, true, payload, len);
}

static int
s_out_close(void *ctx, uint32_t origin, uint64_t conn, uint32_t code, proto_span_t reason)
{
    wk_link_t *l = ctx;
    proto_buf_reset(&l->scratch);
    if (proto_bk_encode_close(&l->scratch, conn, code, reason) != 0) {
        l->st.tx_dropped++;
        return -1;
    }
    return s_send(l, origin, false, NULL, 0);
}

/* One PUB per gateway: the header is encoded once, the payload frame is
 * copied by zmq_send per gateway (ZeroMQ's copy; a zero-copy shared frame
 * would need a refcounted free function for a few hundred bytes). A
 * gateway whose queue is full misses this publication, the others do not
 * wait for it; its clients notice the gap in offsets and recover. */
static int
s_out_pub(void *ctx, proto_span_t channel, uint32_t kind, uint64_t offset, proto_span_t epoch,
          proto_span_t user, const void *payload, size_t len)
{
    wk_link_t *l = ctx;
    int rc = 0;
    proto_buf_reset(&l->scratch);
    if (proto_bk_encode_pub(&l->scratch, channel, kind, offset, epoch, user) != 0) {
        l->st.tx_dropped++;
        l->st.pub_dropped += l->n_gw;
        return -1;
    }
    uint64_t now = s_now_ms();
    for (size_t i = 0; i < l->n_gw; i++) {
        if (!l->gw[i].sock)
            continue;
        /* A gateway that has not answered HELLOs for a long while (five
         * intervals, at least 5 s: far past its own worker timeout, so a
         * merely busy gateway never misses a publication) is gone or cut
         * off: queueing for it would only pile up stale publications (up
         * to the HWM) for when it comes back. Never welcomed: it cannot
         * have subscribed anyone through us. */
        uint64_t quiet = l->hello_ms * 5 > 5000 ? l->hello_ms * 5 : 5000;
        if (!l->gw[i].last_welcome || now - l->gw[i].last_welcome > quiet) {
            l->st.pub_dropped++;
            continue;
        }
        if (s_send(l, (uint32_t)i, true, payload, len) == 0) {
            l->st.pub_tx++;
        } else {
            l->st.pub_dropped++;
            rc = -1;
        }
    }
    return rc;
}

/* A gateway that answered one of our last HELLOs. */
static bool
s_gateway_live(const wk_link_t *l, size_t i, uint64_t now)
{
    return l->gw[i].last_welcome && now - l->gw[i].last_welcome < l->hello_ms * 3 / 2;
}

static int
s_out_publish(void *ctx, uint32_t origin, uint64_t ref, proto_span_t channel, const void *data,
              size_t len)
{
    wk_link_t *l = ctx;
    if (origin == WK_ORIGIN_ANY) {
        uint64_t now = s_now_ms();
        origin = 0;
        for (size_t i = 0; i < l->n_gw; i++) {
            if (s_gateway_live(l, i, now)) {
                origin = (uint32_t)i;
                break;
            }
        }
    }
    proto_buf_reset(&l->scratch);
    if (proto_bk_encode_publish(&l->scratch, ref, channel) != 0) {
        l->st.tx_dropped++;
        return -1;
    }
    return s_send(l, origin, true, data, len);
}

const wk_out_t wk_link_out = {s_out_reply, s_out_error, s_out_send,
                              s_out_close, s_out_pub,   s_out_publish};

/* --- input ------------------------------------------------------------- */

/* Decodes and delivers one received message. hdr_frame and payload are
 * freed by the caller after this returns (the runtime copies what it keeps). */
static void
s_dispatch(wk_link_t *l, uint32_t origin, wk_runtime_t *rt, zmq_msg_t *hdr_frame,
           zmq_msg_t *payload, bool extra_frames)
{
    const char *ep = l->gw[origin].endpoint;
    proto_bk_t hdr;
    const char *err = NULL;
    memset(&hdr, 0, sizeof hdr);
    proto_rc_t rc = proto_bk_decode(zmq_msg_data(hdr_frame), zmq_msg_size(hdr_frame), &hdr, &err);
    if (rc != PROTO_OK) {
        if (hdr.version != 0 && hdr.version != PROTO_BK_VERSION) {
            l->st.bad_version++;
            s_log_limited(l, "gateway %s: protocol version %u, want %d; message dropped", ep,
                          (unsigned)hdr.version, PROTO_BK_VERSION);
        } else {
            l->st.malformed++;
            s_log_limited(l, "gateway %s: malformed header (%s); message dropped", ep,
                          err ? err : (rc == PROTO_TOO_BIG ? "too big" : "?"));
        }
        return;
    }
    if (extra_frames) {
        l->st.malformed++;
        s_log_limited(l, "gateway %s: more than two frames (type %u); message dropped", ep,
                      (unsigned)hdr.type);
        return;
    }

    switch (hdr.type) {
    case PROTO_BK_REQ:
        if (hdr.rid && proto_log_on(PROTO_LOG_DEBUG))
            proto_log_req(PROTO_LOG_DEBUG, l->gw[origin].gw_id, hdr.rid,
                          "received: svc %.*s key %.*s user %.*s", (int)hdr.svc.len,
                          (const char *)hdr.svc.ptr, (int)hdr.key.len, (const char *)hdr.key.ptr,
                          (int)hdr.user.len, (const char *)hdr.user.ptr);
        /* fall through */
    case PROTO_BK_OPEN:
    case PROTO_BK_CLOSED:
        /* A REQ without its payload frame is taken as empty data. */
        if (wk_runtime_deliver(rt, origin, &hdr, payload ? zmq_msg_data(payload) : NULL,
                               payload ? zmq_msg_size(payload) : 0) != 0)
            l->st.refused++;
        break;
    case PROTO_BK_PUBLISHED:
        /* wk_publish is fire and forget: the outcome is counted, and a
         * failure logged, but nothing goes back to the service. */
        if (hdr.code.len == 0) {
            l->st.publish_ok++;
        } else {
            l->st.publish_err++;
            s_log_limited(l, "gateway %s: publish %llu failed: %.*s %.*s", ep,
                          (unsigned long long)hdr.rid, (int)hdr.code.len,
                          (const char *)hdr.code.ptr, (int)hdr.text.len,
                          (const char *)hdr.text.ptr);
        }
        break;
    case PROTO_BK_DRAINING:
        l->gw[origin].drain_acked = true;
        proto_log(PROTO_LOG_DEBUG, "gateway %s: drain acknowledged", ep);
        break;
    case PROTO_BK_WELCOME:
        l->st.welcome++;
        l->gw[origin].last_welcome = s_now_ms();
        if (hdr.conn > l->gw[origin].conn_floor) {
            /* A higher floor than before: a new gateway process behind
             * this link. What actors keep about the old one's
             * connections is stale; no CLOSED will ever come for them. */
            if (l->gw[origin].conn_floor) {
                size_t n = wk_runtime_conns_gone(rt, origin, hdr.conn);
                proto_log(PROTO_LOG_INFO,
                          "gateway %s restarted: %zu actors told its old connections are gone", ep,
                          n);
            }
            l->gw[origin].conn_floor = hdr.conn;
        }
        snprintf(l->gw[origin].gw_id, sizeof l->gw[origin].gw_id, "%.*s", (int)hdr.id.len,
                 (const char *)hdr.id.ptr);
        proto_log(PROTO_LOG_DEBUG, "gateway %s: welcome from %.*s", ep, (int)hdr.id.len,
                  (const char *)hdr.id.ptr);
        break;
    default:
        l->st.unexpected++;
        s_log_limited(l, "gateway %s: unexpected message type %u; dropped", ep, (unsigned)hdr.type);
        break;
    }
}

/* Reads up to WK_LINK_BATCH messages from one gateway. -1 on a fatal
 * ZeroMQ error. */
static int
s_read(wk_link_t *l, uint32_t origin, wk_runtime_t *rt)
{
    void *sock = l->gw[origin].sock;
    for (int n = 0; n < WK_LINK_BATCH; n++) {
        zmq_msg_t hdr_frame, payload, extra;
        zmq_msg_init(&hdr_frame);
        if (zmq_msg_recv(&hdr_frame, sock, ZMQ_DONTWAIT) < 0) {
            int e = errno;
            zmq_msg_close(&hdr_frame);
            if (e == EAGAIN || e == EINTR)
                return 0;
            proto_log(PROTO_LOG_ERR, "gateway %s: receive: %s", l->gw[origin].endpoint,
                      zmq_strerror(e));
            return -1;
        }
        l->st.rx++;
        bool has_payload = false;
        bool extra_frames = false;
        zmq_msg_init(&payload);
        /* The parts of a message arrive together, so these never wait. */
        if (zmq_msg_more(&hdr_frame) && zmq_msg_recv(&payload, sock, ZMQ_DONTWAIT) >= 0) {
            has_payload = true;
            zmq_msg_init(&extra);
            bool more = zmq_msg_more(&payload);
            while (more && zmq_msg_recv(&extra, sock, ZMQ_DONTWAIT) >= 0) {
                extra_frames = true;
                more = zmq_msg_more(&extra);
            }
            zmq_msg_close(&extra);
        }
        s_dispatch(l, origin, rt, &hdr_frame, has_payload ? &payload : NULL, extra_frames);
        zmq_msg_close(&payload);
        zmq_msg_close(&hdr_frame);
    }
    return 0;
}

/* --- loop -------------------------------------------------------------- */

static void
s_send_bare(wk_link_t *l, proto_bk_type_t type)
{
    proto_buf_t b;

    proto_buf_init(&b, 0);
    if (proto_bk_encode_bare(&b, type) == 0) {
        for (size_t i = 0; i < l->n_gw; i++) {
            if (!l->gw[i].sock)
                continue;
            if (zmq_send(l->gw[i].sock, proto_buf_payload(&b), b.len, ZMQ_DONTWAIT) < 0)
                l->st.tx_dropped++;
            else
                l->st.tx++;
            if (type == PROTO_BK_BYE) {
                /* BYE is the last word: let it out before the socket goes. */
                int linger = 1000;
                zmq_setsockopt(l->gw[i].sock, ZMQ_LINGER, &linger, sizeof linger);
            }
        }
    }
    proto_buf_fini(&b);
}

/* A gateway that has not answered our HELLOs lately is gone or cut off:
 * waiting for its DRAINING would only delay the exit until drain_ms. */
static bool
s_all_acked(const wk_link_t *l, uint64_t now)
{
    for (size_t i = 0; i < l->n_gw; i++)
        if (l->gw[i].sock && !l->gw[i].drain_acked &&
            now - l->gw[i].last_welcome < l->hello_ms * 3 / 2)
            return false;
    return true;
}

static int
s_hello_encode(wk_link_t *l, const wk_runtime_t *rt, proto_buf_t *out)
{
    size_t n = 0;
    const wk_service_t *const *svcs = wk_runtime_services(rt, &n);
    proto_span_t names[PROTO_BK_MAX_SERVICES];
    uint32_t flags[PROTO_BK_MAX_SERVICES];
    if (n > PROTO_BK_MAX_SERVICES)
        return -1;
    for (size_t i = 0; i < n; i++) {
        names[i] = proto_span(svcs[i]->name, strlen(svcs[i]->name));
        flags[i] = svcs[i]->flags;
    }
    return proto_bk_encode_hello(out, proto_span(l->worker_id, strlen(l->worker_id)), names, flags,
                                 n);
}

static void
s_hello_send(wk_link_t *l, const proto_buf_t *hello)
{
    for (size_t i = 0; i < l->n_gw; i++) {
        if (!l->gw[i].sock)
            continue;
        if (zmq_send(l->gw[i].sock, proto_buf_payload(hello), hello->len, ZMQ_DONTWAIT) < 0) {
            l->st.tx_dropped++;
            s_log_limited(l, "gateway %s: HELLO not queued (%s)", l->gw[i].endpoint,
                          zmq_strerror(errno));
        } else {
            l->st.hello++;
        }
    }
}

int
wk_link_run(wk_link_t *l, wk_runtime_t *rt, int stop_fd)
{
    int rc = -1;
    proto_buf_t hello;
    proto_buf_init(&hello, 0);
    if (s_hello_encode(l, rt, &hello) != 0) {
        fprintf(stderr, "wsgate-worker: cannot encode HELLO\n");
        goto out_free_hello;
    }
    /* Rebuilt every turn: discovery adds and closes gateway links.
     * items: [stop_fd] [live gateway sockets] [metrics fds]; map[k] is the
     * origin of items[k]. */
    zmq_pollitem_t *items = NULL;
    uint32_t *map = NULL;
    size_t items_cap = 0;

    uint64_t next_hello = 0;  /* now: HELLO right after connect */
    uint64_t drain_until = 0; /* non-zero: draining, give up waiting then */
    uint64_t next_resolve = (l->dns_host || l->gw_file) ? s_now_ms() + l->resolve_ms : UINT64_MAX;
    for (;;) {
        uint64_t now = s_now_ms();
        wk_runtime_tick(rt, now);
        if (now >= next_resolve) {
            s_discover_start(l);
            next_resolve = now + l->resolve_ms;
        }
        s_discover_poll(l);
        for (size_t i = 0; i < l->n_gw; i++) {
            if (l->gw[i].gone_pending) {
                l->gw[i].gone_pending = false;
                (void)wk_runtime_conns_gone(rt, (uint32_t)i, UINT64_MAX);
            }
        }
        if (now >= next_hello || l->hello_due) {
            s_hello_send(l, &hello);
            next_hello = now + l->hello_ms;
            l->hello_due = false;
        }
        if (drain_until && !wk_runtime_busy(rt) && (s_all_acked(l, now) || now >= drain_until)) {
            s_send_bare(l, PROTO_BK_BYE);
            rc = 0;
            goto out_free_items;
        }
        uint64_t deadline = wk_runtime_next_deadline(rt);
        if (deadline > next_hello)
            deadline = next_hello;
        if (deadline > next_resolve)
            deadline = next_resolve;
        if (drain_until && deadline > drain_until)
            deadline = drain_until;
        long timeout = deadline > now ? (long)(deadline - now) : 0;

        size_t need = 1 + l->n_gw + 1 + WK_METRICS_CLIENTS;
        if (need > items_cap) {
            zmq_pollitem_t *ni = realloc(items, need * sizeof *ni);
            uint32_t *nm = ni ? realloc(map, need * sizeof *nm) : NULL;
            if (ni)
                items = ni;
            if (!ni || !nm) {
                proto_log(PROTO_LOG_ERR, "out of memory");
                goto out_free_items;
            }
            map = nm;
            items_cap = need;
        }
        size_t n_items = 0, first_gw, first_metrics;
        if (stop_fd >= 0)
            items[n_items++] = (zmq_pollitem_t){.fd = stop_fd, .events = ZMQ_POLLIN};
        first_gw = n_items;
        for (size_t i = 0; i < l->n_gw; i++) {
            if (!l->gw[i].sock)
                continue;
            map[n_items] = (uint32_t)i;
            items[n_items++] = (zmq_pollitem_t){.socket = l->gw[i].sock, .events = ZMQ_POLLIN};
        }
        first_metrics = n_items;
        if (l->metrics) {
            int fds[1 + WK_METRICS_CLIENTS];
            size_t nf = wk_metrics_fds(l->metrics, fds);
            for (size_t k = 0; k < nf; k++)
                items[n_items++] = (zmq_pollitem_t){.fd = fds[k], .events = ZMQ_POLLIN};
            if (nf > 1 && timeout > 500)
                timeout = 500; /* to expire clients that never send */
        }
        if (l->gai && timeout > 50) {
            timeout = 50; /* a lookup's answer is looked for each turn */
        }
        if (zmq_poll(items, (int)n_items, timeout) < 0) {
            if (errno == EINTR)
                continue;
            proto_log(PROTO_LOG_ERR, "zmq_poll: %s", zmq_strerror(errno));
            goto out_free_items;
        }
        if (stop_fd >= 0 && (items[0].revents & ZMQ_POLLIN)) {
            if (drain_until || !l->drain_ms) {
                rc = 0; /* a second signal, or no drain: leave now */
                goto out_free_items;
            }
            /* First signal: drain. The gateways stop sending us new keys
             * and acknowledge; what is queued is finished, then BYE. */
            char sink[128];
            if (read(stop_fd, sink, sizeof sink) < 0) {
                /* nothing to consume: the fd is only a wake-up */
            }
            proto_log(PROTO_LOG_INFO, "draining");
            s_send_bare(l, PROTO_BK_DRAIN);
            drain_until = s_now_ms() + l->drain_ms;
            continue;
        }
        /* Only when the listener or a client is readable, or a client
         * is connected (its deadline): an accept4() that says EAGAIN at
         * every turn costs a system call per message at light load. */
        bool metrics_due = n_items > first_metrics + 1;
        for (size_t k = first_metrics; k < n_items && !metrics_due; k++)
            metrics_due = items[k].revents != 0;
        if (metrics_due)
            wk_metrics_serve(l->metrics, rt, &l->st, s_now_ms());
        /* Stamp this batch's idle times with the time it arrived. */
        wk_runtime_tick(rt, s_now_ms());
        for (size_t k = first_gw; k < first_metrics; k++) {
            if ((items[k].revents & ZMQ_POLLIN) && s_read(l, map[k], rt) != 0)
                goto out_free_items;
        }
        /* Outputs are sent as behaviours produce them (ZeroMQ's I/O thread
         * flushes), so draining the runtime is all there is to do. */
        while (wk_runtime_run(rt, WK_LINK_RUN_BUDGET) > 0)
            ;
    }

out_free_items:
    free(items);
    free(map);
out_free_hello:
    proto_buf_fini(&hello);
    return rc;
}
