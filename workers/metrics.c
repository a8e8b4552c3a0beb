#define _GNU_SOURCE /* accept4 */
#include "metrics.h"

#include <arpa/inet.h>
#include <errno.h>
#include <inttypes.h>
#include <netinet/in.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "../protocol/log.h"

/* --- rendering ----------------------------------------------------------- */

static int
s_put(proto_buf_t *out, const char *fmt, ...)
{
    char line[512];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(line, sizeof line, fmt, ap);
    va_end(ap);
    if (n < 0 || (size_t)n >= sizeof line)
        return -1;
    return proto_buf_append(out, line, (size_t)n) < 0 ? -1 : 0;
}

static int
s_one(proto_buf_t *out, const char *name, const char *type, const char *help, uint64_t v)
{
    return s_put(out, "# HELP %s %s\n# TYPE %s %s\n%s %" PRIu64 "\n", name, help, name, type, name,
                 v);
}

int
wk_metrics_render(const wk_runtime_t *rt, const wk_link_stats_t *ls, proto_buf_t *out)
{
    wk_stats_t st;
    size_t n_svcs;
    const wk_service_t *const *svcs = wk_runtime_services(rt, &n_svcs);
    int rc = 0;

    wk_runtime_stats(rt, &st);
    rc |= s_one(out, "wsgate_worker_actors", "gauge", "Live actors.", st.live_actors);
    rc |= s_one(out, "wsgate_worker_actors_idle", "gauge", "Live actors with an empty mailbox.",
                st.idle_actors);
    rc |= s_one(out, "wsgate_worker_actors_pinned", "gauge",
                "Actors kept from passivation (channels with subscribers).", st.pinned);
    rc |= s_one(out, "wsgate_worker_mailbox_depth", "gauge", "Messages queued in all mailboxes.",
                st.queued);
    rc |=
        s_one(out, "wsgate_worker_actors_started_total", "counter", "Actors started.", st.started);
    rc |= s_one(out, "wsgate_worker_actors_passivated_total", "counter",
                "Actors passivated (idle, evicted, stopped).", st.passivated);
    rc |= s_one(out, "wsgate_worker_overloaded_total", "counter",
                "Messages refused: actor bound or mailbox full.", st.overloaded);
    rc |= s_put(out, "# HELP wsgate_worker_handled_total Messages handled, by service and "
                     "result.\n# TYPE wsgate_worker_handled_total counter\n");
    for (size_t i = 0; i < n_svcs; i++) {
        const wk_svc_stats_t *s = wk_runtime_svc_stats(rt, i);
        const char *name = svcs[i]->name;
        uint64_t other = s->handled - s->replied - s->errored - s->unanswered;

        /* other: messages that want no answer (rid 0, OPEN, CLOSED) */
        if (s->handled < s->replied + s->errored + s->unanswered)
            other = 0;
        rc |= s_put(out, "wsgate_worker_handled_total{service=\"%s\",result=\"ok\"} %" PRIu64 "\n",
                    name, s->replied);
        rc |=
            s_put(out, "wsgate_worker_handled_total{service=\"%s\",result=\"error\"} %" PRIu64 "\n",
                  name, s->errored);
        rc |= s_put(
            out, "wsgate_worker_handled_total{service=\"%s\",result=\"unanswered\"} %" PRIu64 "\n",
            name, s->unanswered);
        rc |= s_put(out,
                    "wsgate_worker_handled_total{service=\"%s\",result=\"no_reply\"} %" PRIu64 "\n",
                    name, other);
    }
    rc |= s_one(out, "wsgate_worker_messages_received_total", "counter",
                "Messages received from gateways.", ls->rx);
    rc |= s_one(out, "wsgate_worker_messages_sent_total", "counter", "Messages sent to gateways.",
                ls->tx);
    rc |= s_one(out, "wsgate_worker_send_dropped_total", "counter",
                "Outputs dropped: a gateway's queue full or gone.", ls->tx_dropped);
    rc |= s_one(out, "wsgate_worker_malformed_total", "counter",
                "Messages from gateways dropped as malformed.",
                ls->malformed + ls->bad_version + ls->unexpected);
    rc |=
        s_one(out, "wsgate_worker_publications_sent_total", "counter",
              "PUB messages sent (one per gateway per publication or presence event).", ls->pub_tx);
    rc |= s_one(out, "wsgate_worker_publications_dropped_total", "counter",
                "PUB messages a gateway's queue refused.", ls->pub_dropped);
    return rc ? -1 : 0;
}

/* --- the responder --------------------------------------------------------- */

typedef struct {
    int fd; /* -1: free */
    uint64_t since_ms;
    size_t got;
    char buf[1024];
} s_client_t;

struct wk_metrics {
    int listen_fd;
    s_client_t c[WK_METRICS_CLIENTS];
};

wk_metrics_t *
wk_metrics_new(const char *hostport)
{
    const char *colon = strrchr(hostport, ':');
    char host[64];
    struct sockaddr_in sa;
    int one = 1;
    wk_metrics_t *m;

    if (!colon || (size_t)(colon - hostport) >= sizeof host) {
        fprintf(stderr, "wsgate-worker: --metrics: expected HOST:PORT, got '%s'\n", hostport);
        return NULL;
    }
    memcpy(host, hostport, (size_t)(colon - hostport));
    host[colon - hostport] = '\0';
    memset(&sa, 0, sizeof sa);
    sa.sin_family = AF_INET;
    sa.sin_port = htons((uint16_t)atoi(colon + 1));
    if (inet_pton(AF_INET, host, &sa.sin_addr) != 1) {
        fprintf(stderr, "wsgate-worker: --metrics: '%s' is not an IPv4 address\n", host);
        return NULL;
    }
    m = calloc(1, sizeof *m);
    if (!m)
        return NULL;
    for (int i = 0; i < WK_METRICS_CLIENTS; i++)
        m->c[i].fd = -1;
    m->listen_fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (m->listen_fd < 0)
        goto fail;
    setsockopt(m->listen_fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    if (bind(m->listen_fd, (struct sockaddr *)&sa, sizeof sa) != 0 || listen(m->listen_fd, 16) != 0)
        goto fail;
    return m;
fail:
    fprintf(stderr, "wsgate-worker: --metrics %s: %s\n", hostport, strerror(errno));
    if (m->listen_fd >= 0)
        close(m->listen_fd);
    free(m);
    return NULL;
}

void
wk_metrics_destroy(wk_metrics_t **m_p)
{
    wk_metrics_t *m = m_p ? *m_p : NULL;
    if (!m)
        return;
    for (int i = 0; i < WK_METRICS_CLIENTS; i++)
        if (m->c[i].fd >= 0)
            close(m->c[i].fd);
    close(m->listen_fd);
    free(m);
    *m_p = NULL;
}

size_t
wk_metrics_fds(const wk_metrics_t *m, int *fds)
{
    size_t n = 0;
    fds[n++] = m->listen_fd;
    for (int i = 0; i < WK_METRICS_CLIENTS; i++)
        if (m->c[i].fd >= 0)
            fds[n++] = m->c[i].fd;
    return n;
}

static void
s_drop(s_client_t *c)
{
    close(c->fd);
    c->fd = -1;
}

/* One answer, then close. The answer is small (a few KiB): a fresh
 * socket's send buffer takes it whole; if not, the scraper sees a short
 * body and retries. */
static void
s_answer(s_client_t *c, const wk_runtime_t *rt, const wk_link_stats_t *ls)
{
    proto_buf_t body, head;
    bool ok =
        strncmp(c->buf, "GET /metrics ", 13) == 0 || strncmp(c->buf, "GET /metrics?", 13) == 0;
    char line[256];

    proto_buf_init(&body, 0);
    proto_buf_init(&head, 0);
    if (ok && wk_metrics_render(rt, ls, &body) != 0)
        ok = false;
    if (!ok) {
        proto_buf_reset(&body);
        proto_buf_append(&body, "not found\n", 10);
    }
    int n = snprintf(line, sizeof line,
                     "HTTP/1.0 %s\r\nContent-Type: text/plain; version=0.0.4; charset=utf-8\r\n"
                     "Content-Length: %zu\r\nConnection: close\r\n\r\n",
                     ok ? "200 OK" : "404 Not Found", body.len);
    if (n > 0 && proto_buf_append(&head, line, (size_t)n) == 0 &&
        proto_buf_append(&head, proto_buf_payload(&body), body.len) == 0) {
        if (send(c->fd, proto_buf_payload(&head), head.len, MSG_DONTWAIT | MSG_NOSIGNAL) < 0)
            proto_log_limited(PROTO_LOG_DEBUG, "metrics: answer not sent: %s", strerror(errno));
    }
    proto_buf_fini(&body);
    proto_buf_fini(&head);
    s_drop(c);
}

void
wk_metrics_serve(wk_metrics_t *m, const wk_runtime_t *rt, const wk_link_stats_t *ls,
                 uint64_t now_ms)
{
    for (;;) {
        int free_i = -1;
        for (int i = 0; i < WK_METRICS_CLIENTS && free_i < 0; i++)
            if (m->c[i].fd < 0)
                free_i = i;
        if (free_i < 0)
            break; /* full: the rest wait in the backlog */
        int fd = accept4(m->listen_fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (fd < 0)
            break;
        m->c[free_i].fd = fd;
        m->c[free_i].since_ms = now_ms;
        m->c[free_i].got = 0;
    }
    for (int i = 0; i < WK_METRICS_CLIENTS; i++) {
        s_client_t *c = &m->c[i];
        if (c->fd < 0)
            continue;
        ssize_t r = recv(c->fd, c->buf + c->got, sizeof c->buf - 1 - c->got, MSG_DONTWAIT);
        if (r == 0 || (r < 0 && errno != EAGAIN && errno != EINTR)) {
            s_drop(c);
            continue;
        }
        if (r > 0)
            c->got += (size_t)r;
        c->buf[c->got] = '\0';
        /* the request line is all we need */
        if (strstr(c->buf, "\r\n") || c->got == sizeof c->buf - 1)
            s_answer(c, rt, ls);
        else if (now_ms - c->since_ms > WK_METRICS_WAIT_MS)
            s_drop(c);
    }
}
