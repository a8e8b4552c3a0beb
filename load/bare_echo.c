/*
 * bare_echo.c - wsgate-bare-echo: a websocket server that sends every
 * message back as it came (same bytes, same frame type), and nothing else.
 *
 * It is the ceiling the gateway is measured against: the same stack as
 * the gateway (libwebsockets 4.1 on a libev foreign loop with the epoll
 * backend, lws's validity pings off, our own SO_REUSEPORT listener whose
 * sockets are handed to lws), but no envelope, no routing and no worker
 * hop. Any path is accepted; the subprotocols wsgate.v1.json and
 * wsgate.v1.msgpack are selected when asked for, so wsgate-load's clients
 * connect as they would to a gateway.
 *
 * The only file of load/ that includes <libwebsockets.h>.
 */
#define _GNU_SOURCE /* accept4 */
#include <errno.h>
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>
#include <unistd.h>

#include <ev.h>
#include <libwebsockets.h>

#define BE_MAX_MESSAGE (16u << 20)
#define BE_WRITES_PER_CALLBACK 32
#define BE_ACCEPTS_PER_WAKEUP 256

typedef struct be_msg {
    struct be_msg *next;
    size_t len;
    int binary;
    uint8_t buf[]; /* LWS_PRE headroom, then the payload */
} be_msg_t;

/* lws's per-session storage: the messages waiting to go back, and the
 * fragments of the one coming in. */
typedef struct {
    be_msg_t *head, *tail;
    be_msg_t *frag; /* allocated to the message's size as it grows */
    size_t frag_cap;
} be_sess_t;

typedef struct {
    struct lws_context *ctx;
    struct lws_vhost *vh;
    struct ev_loop *loop;
    int listen_fd;
    int nagle;
    ev_io listen_io;
    ev_signal sigint, sigterm;
    void *loops[1];
    struct lws_protocols protos[3];
    lws_retry_bo_t retry;
} be_t;

static be_msg_t *
s_msg_grow(be_msg_t *m, size_t *cap, size_t need)
{
    size_t c = *cap ? *cap : 256;
    be_msg_t *n;

    while (c < need)
        c *= 2;
    if (c == *cap && m)
        return m;
    n = realloc(m, sizeof(*n) + LWS_PRE + c);
    if (!n)
        return NULL;
    if (!m) {
        n->next = NULL;
        n->len = 0;
    }
    *cap = c;
    return n;
}

static int
s_receive(struct lws *wsi, be_sess_t *s, const void *in, size_t len)
{
    be_msg_t *m = s->frag;

    if ((m ? m->len : 0) + len > BE_MAX_MESSAGE) {
        lws_close_reason(wsi, LWS_CLOSE_STATUS_MESSAGE_TOO_LARGE, NULL, 0);
        return -1;
    }
    m = s_msg_grow(m, &s->frag_cap, (m ? m->len : 0) + len);
    if (!m)
        return -1;
    if (!s->frag)
        m->binary = lws_frame_is_binary(wsi);
    s->frag = m;
    if (len)
        memcpy(m->buf + LWS_PRE + m->len, in, len);
    m->len += len;
    if (!lws_is_final_fragment(wsi) || lws_remaining_packet_payload(wsi))
        return 0;
    /* whole: to the send queue */
    s->frag = NULL;
    s->frag_cap = 0;
    m->next = NULL;
    if (s->tail)
        s->tail->next = m;
    else
        s->head = m;
    s->tail = m;
    lws_callback_on_writable(wsi);
    return 0;
}

static int
s_writeable(struct lws *wsi, be_sess_t *s)
{
    be_msg_t *m;
    int i, n;

    for (i = 0; i < BE_WRITES_PER_CALLBACK && (m = s->head); i++) {
        if (lws_send_pipe_choked(wsi))
            break;
        s->head = m->next;
        if (!s->head)
            s->tail = NULL;
        n = lws_write(wsi, m->buf + LWS_PRE, m->len, m->binary ? LWS_WRITE_BINARY : LWS_WRITE_TEXT);
        free(m);
        if (n < 0)
            return -1;
    }
    if (s->head)
        lws_callback_on_writable(wsi);
    return 0;
}

static void
s_sess_free(be_sess_t *s)
{
    be_msg_t *m;

    while ((m = s->head)) {
        s->head = m->next;
        free(m);
    }
    s->tail = NULL;
    free(s->frag);
    s->frag = NULL;
    s->frag_cap = 0;
}

static int
s_cb(struct lws *wsi, enum lws_callback_reasons reason, void *user, void *in, size_t len)
{
    be_sess_t *s = user;

    switch (reason) {
    case LWS_CALLBACK_ESTABLISHED:
        memset(s, 0, sizeof(*s));
        return 0;
    case LWS_CALLBACK_RECEIVE:
        return s_receive(wsi, s, in, len);
    case LWS_CALLBACK_SERVER_WRITEABLE:
        return s_writeable(wsi, s);
    case LWS_CALLBACK_CLOSED:
        s_sess_free(s);
        return 0;
    default:
        break;
    }
    return lws_callback_http_dummy(wsi, reason, user, in, len);
}

static void
s_accept_cb(struct ev_loop *loop, ev_io *w, int revents)
{
    be_t *be = w->data;
    int i, fd, one = 1;

    (void)loop;
    (void)revents;
    for (i = 0; i < BE_ACCEPTS_PER_WAKEUP; i++) {
        fd = accept4(be->listen_fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (fd < 0) {
            if (errno != EAGAIN && errno != EINTR && errno != ECONNABORTED)
                fprintf(stderr, "wsgate-bare-echo: accept: %s\n", strerror(errno));
            return;
        }
        /* lws 4.1 leaves Nagle on for sockets it adopts: a pipelined reply
         * then waits for the ACK of the previous one (the client's next
         * request, or its 40 ms delayed ACK). --nagle keeps it that way, to
         * compare with a gateway that does the same. */
        if (!be->nagle)
            setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
        if (!lws_adopt_socket_vhost(be->vh, fd))
            close(fd);
    }
}

static void
s_signal_cb(struct ev_loop *loop, ev_signal *w, int revents)
{
    (void)w;
    (void)revents;
    ev_break(loop, EVBREAK_ALL);
}

static int
s_listen(const char *hostport, int reuseport)
{
    char host[64];
    const char *colon = strrchr(hostport, ':');
    struct sockaddr_in a;
    int one = 1, fd, port;

    if (!colon || (size_t)(colon - hostport) >= sizeof(host))
        goto bad;
    memcpy(host, hostport, (size_t)(colon - hostport));
    host[colon - hostport] = 0;
    port = atoi(colon + 1);
    memset(&a, 0, sizeof(a));
    a.sin_family = AF_INET;
    a.sin_port = htons((uint16_t)port);
    if (port <= 0 || port > 65535 || inet_pton(AF_INET, host, &a.sin_addr) != 1)
        goto bad;
    fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return -1;
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
    if ((reuseport && setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof(one)) < 0) ||
        bind(fd, (struct sockaddr *)&a, sizeof(a)) < 0 || listen(fd, 4096) < 0) {
        fprintf(stderr, "wsgate-bare-echo: cannot listen on %s: %s\n", hostport, strerror(errno));
        close(fd);
        return -1;
    }
    return fd;
bad:
    fprintf(stderr, "wsgate-bare-echo: --listen: want IPv4:PORT, got '%s'\n", hostport);
    return -1;
}

static void
s_lws_log(int level, const char *line)
{
    (void)level;
    fprintf(stderr, "wsgate-bare-echo: lws: %s", line);
}

int
main(int argc, char **argv)
{
    static const struct option opts[] = {
        {"listen", required_argument, NULL, 'l'},
        {"reuseport", no_argument, NULL, 'r'},
        {"nagle", no_argument, NULL, 'n'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    struct lws_context_creation_info info;
    const char *listen_at = "127.0.0.1:9100";
    int reuseport = 0, nagle = 0, c, rc = 1;
    be_t be;

    while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        switch (c) {
        case 'l':
            listen_at = optarg;
            break;
        case 'r':
            reuseport = 1;
            break;
        case 'n':
            nagle = 1;
            break;
        case 'h':
            printf("usage: wsgate-bare-echo [--listen IP:PORT] [--reuseport] [--nagle]\n"
                   "  echoes every websocket message back (default 127.0.0.1:9100)\n"
                   "  --nagle: leave Nagle's algorithm on (no TCP_NODELAY) on accepted sockets\n");
            return 0;
        default:
            return 2;
        }
    }
    memset(&be, 0, sizeof(be));
    be.listen_fd = -1;
    be.nagle = nagle;
    signal(SIGPIPE, SIG_IGN);
    lws_set_log_level(LLL_ERR, s_lws_log);
    /* epoll: lws's default poll() scans every socket on every wake-up */
    be.loop = ev_default_loop(EVBACKEND_EPOLL);
    if (!be.loop) {
        fprintf(stderr, "wsgate-bare-echo: no epoll event loop\n");
        return 1;
    }
    be.loops[0] = be.loop;
    /* protocol 0 also takes upgrades that name no subprotocol */
    be.protos[0] = (struct lws_protocols){"wsgate.v1.json", s_cb, sizeof(be_sess_t), 0, 0, NULL, 0};
    be.protos[1] =
        (struct lws_protocols){"wsgate.v1.msgpack", s_cb, sizeof(be_sess_t), 0, 1, NULL, 0};
    /* validity pings off, as in the gateway: no per-connection timer */
    be.retry.secs_since_valid_ping = 0;
    be.retry.secs_since_valid_hangup = 0;

    memset(&info, 0, sizeof(info));
    info.options = LWS_SERVER_OPTION_EXPLICIT_VHOSTS | LWS_SERVER_OPTION_LIBEV;
    info.foreign_loops = be.loops;
    info.port = CONTEXT_PORT_NO_LISTEN;
    be.ctx = lws_create_context(&info);
    if (!be.ctx) {
        fprintf(stderr, "wsgate-bare-echo: lws context creation failed\n");
        goto out;
    }
    memset(&info, 0, sizeof(info));
    info.options = LWS_SERVER_OPTION_LIBEV;
    info.vhost_name = "echo";
    info.port = CONTEXT_PORT_NO_LISTEN_SERVER; /* s_listen() owns the listener */
    info.protocols = be.protos;
    info.retry_and_idle_policy = &be.retry;
    info.timeout_secs = 10;
    be.vh = lws_create_vhost(be.ctx, &info);
    if (!be.vh) {
        fprintf(stderr, "wsgate-bare-echo: lws vhost creation failed\n");
        goto out;
    }
    be.listen_fd = s_listen(listen_at, reuseport);
    if (be.listen_fd < 0)
        goto out;
    ev_io_init(&be.listen_io, s_accept_cb, be.listen_fd, EV_READ);
    be.listen_io.data = &be;
    ev_io_start(be.loop, &be.listen_io);
    ev_signal_init(&be.sigint, s_signal_cb, SIGINT);
    ev_signal_init(&be.sigterm, s_signal_cb, SIGTERM);
    ev_signal_start(be.loop, &be.sigint);
    ev_signal_start(be.loop, &be.sigterm);
    fprintf(stderr, "wsgate-bare-echo: listening on ws://%s/\n", listen_at);
    ev_run(be.loop, 0);
    fprintf(stderr, "wsgate-bare-echo: stopped\n");
    ev_io_stop(be.loop, &be.listen_io);
    ev_signal_stop(be.loop, &be.sigint);
    ev_signal_stop(be.loop, &be.sigterm);
    rc = 0;
out:
    if (be.listen_fd >= 0)
        close(be.listen_fd);
    if (be.ctx)
        lws_context_destroy(be.ctx);
    ev_loop_destroy(be.loop);
    return rc;
}
