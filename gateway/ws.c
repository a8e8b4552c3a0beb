/*
 * ws.c - the libwebsockets adapter: the only file that includes lws.
 *
 * lws runs on the gateway's libev loop (foreign-loop support), so its
 * sockets, the ZeroMQ backend fd and the gateway's timers share one epoll
 * set and one thread. The protocol callback is one switch that calls into
 * gateway.c; no decision is taken here.
 *
 * Two vhosts: the public listener (websocket endpoints, optional static
 * files) and the admin listener (/metrics, /healthz, /readyz).
 */
#define _GNU_SOURCE /* accept4 */
#include "gateway.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#include <ev.h>
#include <liburing.h>
#include <libwebsockets.h>

#include "idmap.h"
#include "log.h"

_Static_assert(GW_PRE == LWS_PRE, "GW_PRE must equal LWS_PRE");

#define GW_WRITES_PER_CALLBACK 32
#define GW_ACCEPTS_PER_WAKEUP 256
/*
 * lws allocates a receive buffer of this size for every connection when it
 * is established, whether it ever receives anything or not; at lws's
 * default (4 KiB) it is most of an idle connection's cost. Measured with
 * 8000 idle connections: 5.4 KB of gateway RSS each at the default, 2.5 KB
 * at 1024, 1.8 KB at 256. Larger messages just arrive in more pieces, which
 * gw_conn_receive() reassembles anyway.
 */
#define GW_RX_CHUNK 256
/*
 * The most lws hands to one send(). Left at 0, lws 4.1 caps every send at
 * rx_buffer_size + LWS_PRE + 4, so with the 256 above a 4 KB reply went
 * out as 15 sends of 276 bytes, each after a trip through the event loop
 * (seen with strace). A send larger than the socket buffer is partial
 * anyway and lws keeps the rest; this only removes the artificial cap.
 * lws allocates nothing per connection for it.
 */
#define GW_TX_CHUNK (1 << 20)

enum { GW_PROTO_JSON = 0, GW_PROTO_MSGPACK = 1 };

/* Sends one io_uring submission may carry; a batch with more is flushed
 * in pieces. */
#define GW_URING_ENTRIES 16384

/* Frames for one connection that one send may carry: a second frame for a
 * connection already in the batch joins its send (a sendmsg with one iovec
 * a frame), and only a connection with more than this many flushes the
 * batch. An echo client with 16 requests out gets its replies in a few
 * sends instead of 16, and so does a subscriber behind on a busy channel. */
#define GW_COALESCE 8

/* One send of the current write batch: the frames of one connection, in
 * order, until the send completes. */
typedef struct {
    struct lws *wsi;
    struct io_uring_sqe *sqe;   /* until the batch is submitted */
    uint32_t n;                 /* frames */
    uint32_t len;               /* their bytes, headers included */
    gw_msg_t *msg[GW_COALESCE]; /* a reference each, dropped at completion */
    struct iovec iov[GW_COALESCE];
    struct msghdr mh; /* once n > 1 */
} s_pend_t;

struct gw_ws {
    gw_t *gw;
    struct lws_context *ctx;
    struct lws_vhost *vh;
    struct ev_loop *loop;
    int listen_fd;
    ev_io listen_io;
    double *accept_at; /* by fd: when it was accepted, for the handshake histogram */
    int accept_at_n;
    void *loops[1];
    struct lws_protocols protos[4];
    struct lws_protocols admin_protos[2];
    struct lws_http_mount mount, dev_mount;
    lws_retry_bo_t retry;
    gw_idmap_t http; /* admin session id -> struct lws *, while a publish is out */
    uint64_t next_session;

    /* Write batching (gw_ws_batch_begin/_end): the frames written while a
     * batch is open become io_uring sends, submitted together. */
    struct io_uring ring;
    bool uring;    /* the ring exists */
    bool batching; /* a batch is open */
    s_pend_t *pend;
    uint32_t n_pend;
    uint32_t batch_seq; /* never 0: a connection's mark of 0 is never "in this batch" */
};

/* Which POST an HTTP request is, once its headers are in. */
enum { S_POST_NONE = 0, S_POST_PUBLISH, S_POST_DEV_TOKEN };

/* An HTTP request on the admin listener, or POST /dev/token on the
 * public one (per-session data of both HTTP protocols). */
typedef struct {
    uint64_t session; /* 0 until a publish went out */
    proto_buf_t body; /* POST body so far; the answer once it came */
    unsigned status;  /* the answer's, once it came */
    uint8_t post : 2; /* S_POST_* */
    uint8_t answered : 1;
    uint8_t too_big : 1;
} s_admin_t;

static int
s_http_reply(struct lws *wsi, unsigned status, const char *ctype, proto_buf_t *body)
{
    uint8_t hdr[LWS_PRE + 512], *start = hdr + LWS_PRE, *p = start, *end = hdr + sizeof(hdr) - 1;

    if (lws_add_http_common_headers(wsi, status, ctype, body->len, &p, end) ||
        lws_finalize_write_http_header(wsi, start, &p, end))
        return -1;
    if (body->len &&
        lws_write(wsi, proto_buf_payload(body), body->len, LWS_WRITE_HTTP_FINAL) != (int)body->len)
        return -1;
    return lws_http_transaction_completed(wsi) ? -1 : 0;
}

/* The Authorization header is "Bearer <api key>", compared in constant
 * time. A gateway without an api-key-file takes no publishes at all. */
static bool
s_api_key_ok(struct lws *wsi, const gw_config_t *cfg)
{
    char hdr[GW_API_KEY_MAX + 16];
    size_t n = strlen(cfg->api_key), i;
    unsigned char diff = 0;

    if (!n || lws_hdr_copy(wsi, hdr, sizeof(hdr), WSI_TOKEN_HTTP_AUTHORIZATION) <= 0 ||
        strncmp(hdr, "Bearer ", 7) || strlen(hdr + 7) != n)
        return false;
    for (i = 0; i < n; i++)
        diff |= (unsigned char)(hdr[7 + i] ^ cfg->api_key[i]);
    return diff == 0;
}

static int
s_admin_get(struct lws *wsi, gw_t *gw, const char *path)
{
    proto_buf_t body;
    unsigned status = 200;
    int rc;

    proto_buf_init(&body, LWS_PRE);
    if (!strcmp(path, "/metrics")) {
        if (gw_metrics_render(gw, &body))
            status = 500;
    } else if (!strcmp(path, "/healthz")) {
        proto_buf_append(&body, "ok\n", 3);
    } else if (!strcmp(path, "/readyz")) {
        const char *missing;
        char line[128];

        if (gw_ready(gw, &missing)) {
            proto_buf_append(&body, "ready\n", 6);
        } else {
            status = 503;
            snprintf(line, sizeof(line), "no live worker%s%s\n", missing ? " offers " : "s",
                     missing ? missing : "");
            proto_buf_append(&body, line, strlen(line));
        }
    } else {
        status = 404;
        proto_buf_append(&body, "not found\n", 10);
    }
    rc = s_http_reply(wsi, status, "text/plain; version=0.0.4; charset=utf-8", &body);
    proto_buf_fini(&body);
    return rc;
}

static int
s_json_reply(struct lws *wsi, unsigned status, const char *text)
{
    proto_buf_t body;
    int rc;

    proto_buf_init(&body, LWS_PRE);
    proto_buf_append(&body, text, strlen(text));
    rc = s_http_reply(wsi, status, "application/json", &body);
    proto_buf_fini(&body);
    return rc;
}

/* The whole body of a POST /publish or /dev/token is in: hand it to the
 * gateway, which answers through gw_ws_http_answer(). */
static int
s_http_post(struct lws *wsi, gw_t *gw, s_admin_t *a)
{
    gw_ws_t *ws = gw_ws(gw);
    const char *why = NULL;
    char text[256];
    int status;

    if (a->too_big) {
        if (a->post == S_POST_PUBLISH)
            gw_metrics(gw)->http_publish[2]++;
        else
            gw_metrics(gw)->dev_tokens[1]++;
        return s_json_reply(wsi, 413, "{\"code\":\"too_large\",\"msg\":\"body over max-message\"}");
    }
    a->session = ++ws->next_session;
    if (gw_idmap_put(&ws->http, a->session, wsi)) {
        a->session = 0;
        return s_json_reply(wsi, 500, "{\"code\":\"internal\",\"msg\":\"out of memory\"}");
    }
    if (a->post == S_POST_PUBLISH)
        status = gw_http_publish(gw, a->session, proto_buf_payload(&a->body), a->body.len, &why);
    else
        status = gw_http_dev_token(gw, a->session, proto_buf_payload(&a->body), a->body.len, &why);
    if (status == 0)
        return 0; /* gw_ws_http_answer() follows */
    gw_idmap_del(&ws->http, a->session);
    a->session = 0;
    snprintf(text, sizeof(text), "{\"code\":\"%s\",\"msg\":\"%s\"}",
             status == 400 ? "bad_request" : "unavailable", why ? why : "");
    return s_json_reply(wsi, (unsigned)status, text);
}

static int s_http_body_cb(struct lws *wsi, enum lws_callback_reasons reason, s_admin_t *a, void *in,
                          size_t len);

static int
s_admin_cb(struct lws *wsi, enum lws_callback_reasons reason, void *user, void *in, size_t len)
{
    gw_t *gw = lws_context_user(lws_get_context(wsi));
    s_admin_t *a = user;

    /* lws allocates the session data with the HTTP transaction: a
     * connection that closes before sending a request has none. */
    if (!a)
        return lws_callback_http_dummy(wsi, reason, user, in, len);
    switch (reason) {
    case LWS_CALLBACK_HTTP:
        memset(a, 0, sizeof(*a));
        proto_buf_init(&a->body, LWS_PRE);
        if (lws_hdr_total_length(wsi, WSI_TOKEN_POST_URI) <= 0)
            return s_admin_get(wsi, gw, in);
        if (strcmp(in, "/publish")) {
            return s_json_reply(wsi, 404, "{\"code\":\"not_found\",\"msg\":\"POST /publish\"}");
        }
        if (!s_api_key_ok(wsi, gw_config(gw))) {
            gw_metrics(gw)->http_publish[1]++;
            gw_log_limited(GW_LOG_INFO, "admin: POST /publish without a valid API key");
            return s_json_reply(wsi, 401,
                                "{\"code\":\"unauthorized\",\"msg\":\"Authorization: Bearer "
                                "<api key> required\"}");
        }
        a->post = S_POST_PUBLISH;
        return 0; /* the body follows */
    default:
        return s_http_body_cb(wsi, reason, a, in, len);
    }
}

/*
 * The request body, the deferred answer and the end of an HTTP request:
 * the same for the admin protocol and the public one.
 */
static int
s_http_body_cb(struct lws *wsi, enum lws_callback_reasons reason, s_admin_t *a, void *in,
               size_t len)
{
    gw_t *gw = lws_context_user(lws_get_context(wsi));

    switch (reason) {
    case LWS_CALLBACK_HTTP_BODY:
        if (!a->post || a->too_big)
            return 0;
        if (a->body.len + len > gw_config(gw)->max_message) {
            a->too_big = 1;
            proto_buf_reset(&a->body);
            return 0;
        }
        if (proto_buf_append(&a->body, in, len) < 0)
            a->too_big = 1;
        return 0;
    case LWS_CALLBACK_HTTP_BODY_COMPLETION:
        if (!a->post)
            return 0;
        return s_http_post(wsi, gw, a);
    case LWS_CALLBACK_HTTP_WRITEABLE:
        if (!a->answered)
            return 0;
        a->answered = 0;
        return s_http_reply(wsi, a->status, "application/json", &a->body);
    case LWS_CALLBACK_CLOSED_HTTP:
        if (a->session)
            gw_idmap_del(&gw_ws(gw)->http, a->session);
        a->session = 0;
        proto_buf_fini(&a->body);
        return 0;
    default:
        break;
    }
    return lws_callback_http_dummy(wsi, reason, a, in, len);
}

/*
 * HTTP on the public listener that is not a file: POST /dev/token, the
 * development token issuer, mounted only with dev-token = SERVICE. Never
 * a websocket: lws would bind an upgrade asking for this protocol's name
 * to it, so such upgrades are refused.
 */
static int
s_pub_http_cb(struct lws *wsi, enum lws_callback_reasons reason, void *user, void *in, size_t len)
{
    gw_t *gw = lws_context_user(lws_get_context(wsi));
    s_admin_t *a = user;

    if (reason == LWS_CALLBACK_FILTER_PROTOCOL_CONNECTION)
        return -1;
    if (!a)
        return lws_callback_http_dummy(wsi, reason, user, in, len);
    if (reason != LWS_CALLBACK_HTTP)
        return s_http_body_cb(wsi, reason, a, in, len);
    memset(a, 0, sizeof(*a));
    proto_buf_init(&a->body, LWS_PRE);
    if (lws_hdr_total_length(wsi, WSI_TOKEN_POST_URI) <= 0) {
        gw_metrics(gw)->dev_tokens[1]++;
        return s_json_reply(wsi, 405,
                            "{\"code\":\"bad_request\",\"msg\":\"POST /dev/token "
                            "{\\\"user\\\": NAME}\"}");
    }
    a->post = S_POST_DEV_TOKEN;
    return 0; /* the body follows */
}

void
gw_ws_http_answer(gw_ws_t *ws, uint64_t session, unsigned status, const void *body, size_t len)
{
    struct lws *wsi = gw_idmap_del(&ws->http, session);
    s_admin_t *a;

    if (!wsi)
        return; /* the client went away first */
    a = lws_wsi_user(wsi);
    a->session = 0;
    a->status = status;
    a->answered = 1;
    proto_buf_reset(&a->body);
    if (len)
        proto_buf_append(&a->body, body, len);
    lws_callback_on_writable(wsi);
}

static int
s_filter(gw_t *gw, struct lws *wsi, gw_conn_t *c)
{
    char path[256], origin[256];
    const struct lws_protocols *pcol = lws_get_protocol(wsi);
    int rc, olen;

    if (lws_hdr_copy(wsi, path, sizeof(path), WSI_TOKEN_GET_URI) <= 0)
        return -1;
    /* An Origin too long to copy is not one we could have allowed. */
    olen = lws_hdr_total_length(wsi, WSI_TOKEN_ORIGIN);
    if (olen > 0 && lws_hdr_copy(wsi, origin, sizeof(origin), WSI_TOKEN_ORIGIN) <= 0)
        snprintf(origin, sizeof(origin), "-");
    rc = gw_admit(gw, c, path, olen > 0 ? origin : NULL, pcol && pcol->id == GW_PROTO_MSGPACK);
    if (rc == 0)
        return 0;
    /*
     * Refused here, before the upgrade, and not from
     * LWS_CALLBACK_HTTP_CONFIRM_UPGRADE (CVE-2025-11677 in lws 4.1.6).
     * lws 4.1 closes a connection denied here without flushing what
     * lws_return_http_status() queued, so the short response goes to the
     * fresh socket directly: its send buffer is empty, the write is whole.
     */
    {
        static const char r503[] = "HTTP/1.1 503 Service Unavailable\r\n"
                                   "content-type: text/plain\r\ncontent-length: 20\r\n"
                                   "connection: close\r\nretry-after: 1\r\n\r\n"
                                   "too many connections";
        static const char r404[] = "HTTP/1.1 404 Not Found\r\n"
                                   "content-type: text/plain\r\ncontent-length: 9\r\n"
                                   "connection: close\r\n\r\nnot found";
        static const char r403[] = "HTTP/1.1 403 Forbidden\r\n"
                                   "content-type: text/plain\r\ncontent-length: 18\r\n"
                                   "connection: close\r\n\r\norigin not allowed";
        const char *r = rc == 503 ? r503 : rc == 403 ? r403 : r404;
        size_t rlen = rc == 503   ? sizeof(r503) - 1
                      : rc == 403 ? sizeof(r403) - 1
                                  : sizeof(r404) - 1;

        if (send(lws_get_socket_fd(wsi), r, rlen, MSG_NOSIGNAL | MSG_DONTWAIT) < 0)
            gw_log_limited(GW_LOG_DEBUG, "refusal not sent");
    }
    return -1;
}

static int
s_writeable(gw_t *gw, struct lws *wsi, gw_conn_t *c)
{
    gw_metrics_t *m = gw_metrics(gw);
    uint8_t ping[LWS_PRE + 8];
    gw_msg_t *msg;
    int i, n;

    if (c->close_code) {
        const char *why = gw_conn_close_text(c);

        lws_close_reason(wsi, (enum lws_close_status)c->close_code, (uint8_t *)why, strlen(why));
        return -1;
    }
    if (c->want_ping) {
        c->want_ping = 0;
        /* lws 4.1 does not report zero-length pongs to the callback, so
         * the ping carries 8 bytes (the send time) for the pong to echo. */
        uint64_t now = gw_now_ms(gw);

        memcpy(ping + LWS_PRE, &now, sizeof(now));
        if (lws_write(wsi, ping + LWS_PRE, sizeof(now), LWS_WRITE_PING) < 0)
            return -1;
    }
    for (i = 0; i < GW_WRITES_PER_CALLBACK; i++) {
        /* The queue first: lws_send_pipe_choked() costs a poll(), and
         * after the last message (the usual case: one reply, one
         * publication) there is nothing left to ask it about. Measured:
         * 14% of the gateway's CPU in a 10k-subscriber fan-out was that
         * poll, half of it after the queue had emptied. */
        if (!c->sq_head) {
            if (gw_conn_pop(c) == NULL && c->close_code) /* a close that waited for the queue */
                lws_callback_on_writable(wsi);
            return 0;
        }
        if (lws_send_pipe_choked(wsi))
            break;
        msg = gw_conn_pop(c);
        n = lws_write(wsi, gw_msg_payload(msg), msg->len,
                      msg->binary ? LWS_WRITE_BINARY : LWS_WRITE_TEXT);
        m->msgs_out++;
        m->bytes_out += msg->len;
        gw_msg_unref(&msg);
        if (n < 0)
            return -1;
    }
    if (c->sq_head)
        lws_callback_on_writable(wsi);
    return 0;
}

static int
s_ws_cb(struct lws *wsi, enum lws_callback_reasons reason, void *user, void *in, size_t len)
{
    gw_t *gw = lws_context_user(lws_get_context(wsi));
    gw_conn_t *c = user;
    int code;

    switch (reason) {
    case LWS_CALLBACK_FILTER_PROTOCOL_CONNECTION:
        return s_filter(gw, wsi, c);
    case LWS_CALLBACK_ESTABLISHED: {
        gw_ws_t *ws = gw_ws(gw);
        int fd = lws_get_socket_fd(wsi);

        if (fd >= 0 && fd < ws->accept_at_n)
            gw_hist_observe(&gw_metrics(gw)->handshake, ev_time() - ws->accept_at[fd]);
        c->wsi = wsi;
        {
            /* The token query parameter, if any: handed over, never logged
             * (lws logs no query strings at the levels we enable). */
            char tok[PROTO_TOKEN_MAX + 8];
            const char *t = NULL;

            if (lws_hdr_total_length(wsi, WSI_TOKEN_HTTP_URI_ARGS) > 0)
                t = lws_get_urlarg_by_name(wsi, "token=", tok, (int)sizeof(tok));
            gw_conn_opened(gw, c, t ? proto_span(t, strlen(t)) : proto_span(NULL, 0));
            explicit_bzero(tok, sizeof(tok));
        }
        return 0;
    }
    case LWS_CALLBACK_RECEIVE:
        code = gw_conn_receive(gw, c, in, len, lws_frame_is_binary(wsi), lws_is_first_fragment(wsi),
                               lws_is_final_fragment(wsi), lws_remaining_packet_payload(wsi));
        if (code) {
            const char *why = gw_conn_close_text(c);

            lws_close_reason(wsi, (enum lws_close_status)code, (uint8_t *)why, strlen(why));
            return -1;
        }
        return 0;
    case LWS_CALLBACK_RECEIVE_PONG:
        gw_conn_activity(gw, c);
        return 0;
    case LWS_CALLBACK_SERVER_WRITEABLE:
        return s_writeable(gw, wsi, c);
    case LWS_CALLBACK_WS_PEER_INITIATED_CLOSE:
        if (len >= 2)
            c->peer_code = (uint16_t)(((const uint8_t *)in)[0] << 8 | ((const uint8_t *)in)[1]);
        return 0;
    case LWS_CALLBACK_CLOSED:
        gw_conn_closed(gw, c);
        return 0;
    case LWS_CALLBACK_CLOSED_HTTP:
        /* an admitted upgrade whose handshake then failed */
        if (c)
            gw_conn_closed(gw, c);
        break;
    default:
        break;
    }
    return lws_callback_http_dummy(wsi, reason, user, in, len);
}

/*
 * The public listener is ours, not lws's: lws 4.1 sets SO_REUSEPORT on no
 * listener (its LISTEN_SHARE option only matters on Windows), and several
 * gateway processes must share the port. We accept and hand each socket
 * to lws, which runs the HTTP upgrade on it as if it had accepted it.
 */
static void
s_accept_cb(struct ev_loop *loop, ev_io *w, int revents)
{
    gw_ws_t *ws = w->data;
    int i, fd;

    (void)loop;
    (void)revents;
    for (i = 0; i < GW_ACCEPTS_PER_WAKEUP; i++) {
        fd = accept4(ws->listen_fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (fd < 0) {
            if (errno != EAGAIN && errno != EINTR && errno != ECONNABORTED)
                gw_log_limited(GW_LOG_WARN, "accept: %s", strerror(errno));
            return;
        }
        if (fd < ws->accept_at_n)
            ws->accept_at[fd] = ev_time();
        if (!lws_adopt_socket_vhost(ws->vh, fd)) {
            gw_log_limited(GW_LOG_WARN, "lws refused an accepted socket");
            close(fd);
        }
    }
}

static int
s_listen(const char *host, int port, bool reuseport)
{
    struct sockaddr_in6 a6;
    struct sockaddr_in a4;
    int one = 1, fd, af;
    struct sockaddr *sa;
    socklen_t salen;

    memset(&a4, 0, sizeof(a4));
    memset(&a6, 0, sizeof(a6));
    if (inet_pton(AF_INET, host, &a4.sin_addr) == 1) {
        af = AF_INET;
        a4.sin_family = AF_INET;
        a4.sin_port = htons((uint16_t)port);
        sa = (struct sockaddr *)&a4;
        salen = sizeof(a4);
    } else if (inet_pton(AF_INET6, host, &a6.sin6_addr) == 1) {
        af = AF_INET6;
        a6.sin6_family = AF_INET6;
        a6.sin6_port = htons((uint16_t)port);
        sa = (struct sockaddr *)&a6;
        salen = sizeof(a6);
    } else {
        fprintf(stderr, "wsgate: --listen: '%s' is not an IP address\n", host);
        return -1;
    }
    fd = socket(af, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return -1;
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
    if (reuseport && setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof(one)) < 0)
        goto fail;
    /* lws 4.1 leaves Nagle on for adopted sockets: a reply then waits for
     * the ACK of the previous one (measured: open-loop p50 5 ms with it,
     * ~1 ms without). Set on the listener, Linux gives it to every
     * accepted socket: one system call less per connection. */
    if (setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one)) < 0 ||
        bind(fd, sa, salen) < 0 || listen(fd, 4096) < 0)
        goto fail;
    return fd;
fail:
    fprintf(stderr, "wsgate: cannot listen on %s:%d: %s\n", host, port, strerror(errno));
    close(fd);
    return -1;
}

void
gw_ws_request_write(void *wsi)
{
    if (wsi)
        lws_callback_on_writable(wsi);
}

/*
 * The websocket header of msg written into its headroom, right before the
 * payload; its length. Servers do not mask, so the header is the same for
 * every connection the shared frame goes to (lws_write writes the same
 * bytes there).
 */
static uint32_t
s_frame_header(gw_msg_t *msg)
{
    uint8_t *p = gw_msg_payload(msg);
    uint64_t len = msg->len;
    uint8_t op = 0x80 | (msg->binary ? 0x2 : 0x1);

    if (len < 126) {
        p[-2] = op;
        p[-1] = (uint8_t)len;
        return 2;
    }
    if (len < 65536) {
        p[-4] = op;
        p[-3] = 126;
        p[-2] = (uint8_t)(len >> 8);
        p[-1] = (uint8_t)len;
        return 4;
    }
    p[-10] = op;
    p[-9] = 127;
    for (int i = 0; i < 8; i++)
        p[-8 + i] = (uint8_t)(len >> (56 - 8 * i));
    return 10;
}

/* Hands the unsent part of a send to lws, frame by frame, as raw bytes. */
static void
s_pend_settle(gw_metrics_t *m, s_pend_t *p, int res)
{
    size_t sent = res > 0 ? (size_t)res : 0;

    if (res == -EAGAIN || (res >= 0 && (uint32_t)res < p->len))
        m->batch_partial++;
    for (uint32_t i = 0; i < p->n; i++) {
        size_t len = p->iov[i].iov_len;

        if (res != -EAGAIN && res < 0)
            ; /* the socket failed: lws sees it on its next poll */
        else if (sent >= len)
            sent -= len;
        else {
            (void)lws_write(p->wsi, (uint8_t *)p->iov[i].iov_base + sent, len - sent,
                            LWS_WRITE_HTTP);
            sent = 0;
        }
        gw_msg_unref(&p->msg[i]);
    }
}

/*
 * Submits the batch and settles every send. A send that wrote part of its
 * frames hands the rest to lws as raw bytes (s_pend_settle; LWS_WRITE_HTTP
 * goes straight to lws's output buffer logic without framing), and one
 * that found the socket full hands lws all of them: lws then sends them
 * before any frame of its own (a PONG, a close) and before ours, which
 * queue while lws_partial_buffered() says so. Errors are left to lws,
 * which sees the dead socket on its next poll.
 */
static void
s_batch_flush(gw_ws_t *ws)
{
    struct io_uring_cqe *cqe;
    uint32_t done = 0;
    int rc;

    if (!ws->n_pend)
        return;
    while (done < ws->n_pend) {
        /* Submits whatever is still queued (a submission may take fewer
         * than all) and waits for a completion: never a wait on sends
         * that were not submitted. */
        rc = io_uring_submit_and_wait(&ws->ring, 1);
        if (rc < 0 && rc != -EINTR && rc != -EAGAIN && rc != -EBUSY) {
            /* Cannot happen with the ring set up and nothing else in
             * flight. The frames' references are kept (a send still
             * queued may read them): a leak, never a use after free. */
            gw_log_limited(GW_LOG_ERR, "io_uring: %s", strerror(-rc));
            ws->uring = ws->batching = false;
            break;
        }
        while (done < ws->n_pend && io_uring_peek_cqe(&ws->ring, &cqe) == 0) {
            s_pend_t *p = &ws->pend[cqe->user_data];
            int res = cqe->res;

            io_uring_cqe_seen(&ws->ring, cqe);
            s_pend_settle(gw_metrics(ws->gw), p, res);
            done++;
        }
    }
    gw_metrics(ws->gw)->batch_sends += done;
    ws->n_pend = 0;
    if (++ws->batch_seq == 0)
        ws->batch_seq = 1;
}

void
gw_ws_batch_begin(gw_ws_t *ws)
{
    ws->batching = ws->uring;
}

void
gw_ws_batch_end(gw_ws_t *ws)
{
    s_batch_flush(ws);
    ws->batching = false;
}

int
gw_ws_write_now(gw_ws_t *ws, void *wsi, gw_msg_t *msg, gw_wmark_t *mark)
{
    struct io_uring_sqe *sqe;
    s_pend_t *p;
    uint32_t hdr;

    if (ws->batching && mark->seq == ws->batch_seq) {
        p = &ws->pend[mark->slot];
        if (p->n < GW_COALESCE) {
            /* joins the connection's send, which becomes a sendmsg */
            hdr = s_frame_header(msg);
            msg->refs++;
            p->msg[p->n] = msg;
            p->iov[p->n] = (struct iovec){gw_msg_payload(msg) - hdr, msg->len + hdr};
            p->len += msg->len + hdr;
            if (++p->n == 2) {
                p->mh = (struct msghdr){.msg_iov = p->iov};
                io_uring_prep_sendmsg(p->sqe, lws_get_socket_fd(wsi), &p->mh,
                                      MSG_NOSIGNAL | MSG_DONTWAIT);
                io_uring_sqe_set_data64(p->sqe, mark->slot);
            }
            p->mh.msg_iovlen = p->n;
            gw_metrics(ws->gw)->batch_coalesced++;
            return 1;
        }
        s_batch_flush(ws); /* its earlier frames first, so frames stay in order */
    }
    if (lws_partial_buffered(wsi))
        return 0;
    if (!ws->batching)
        return lws_write(wsi, gw_msg_payload(msg), msg->len,
                         msg->binary ? LWS_WRITE_BINARY : LWS_WRITE_TEXT) < 0
                   ? -1
                   : 1;
    if (ws->n_pend == GW_URING_ENTRIES)
        s_batch_flush(ws);
    sqe = io_uring_get_sqe(&ws->ring);
    if (!sqe)
        return 0; /* cannot happen: the ring has room for a whole batch */
    hdr = s_frame_header(msg);
    p = &ws->pend[ws->n_pend];
    p->wsi = wsi;
    p->sqe = sqe;
    p->n = 1;
    p->len = msg->len + hdr;
    msg->refs++;
    p->msg[0] = msg;
    p->iov[0] = (struct iovec){gw_msg_payload(msg) - hdr, msg->len + hdr};
    io_uring_prep_send(sqe, lws_get_socket_fd(wsi), p->iov[0].iov_base, p->len,
                       MSG_NOSIGNAL | MSG_DONTWAIT);
    io_uring_sqe_set_data64(sqe, ws->n_pend);
    *mark = (gw_wmark_t){ws->batch_seq, ws->n_pend++};
    return 1;
}

void
gw_ws_close_soon(void *wsi, int secs)
{
    if (wsi)
        lws_set_timeout(wsi, PENDING_TIMEOUT_CLOSE_SEND, secs);
}

/* lws's lines through our log, so JSON output stays one object a line. */
static void
s_lws_log(int level, const char *line)
{
    size_t n = strlen(line);

    while (n && (line[n - 1] == '\n' || line[n - 1] == '\r'))
        n--;
    gw_log(level & LLL_ERR    ? GW_LOG_ERR
           : level & LLL_WARN ? GW_LOG_WARN
                              : GW_LOG_DEBUG,
           "lws: %.*s", (int)n, line);
}

gw_ws_t *
gw_ws_new(gw_t *gw, const gw_config_t *cfg, void *ev_loop)
{
    struct lws_context_creation_info info;
    gw_ws_t *ws = calloc(1, sizeof(*ws));

    if (!ws)
        return NULL;
    ws->gw = gw;
    ws->loop = ev_loop;
    {
        struct rlimit rl;

        /* one slot per possible fd: the process cannot have more sockets */
        if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur != RLIM_INFINITY &&
            rl.rlim_cur <= (1u << 22)) {
            ws->accept_at = calloc(rl.rlim_cur, sizeof(*ws->accept_at));
            ws->accept_at_n = ws->accept_at ? (int)rl.rlim_cur : 0;
        }
    }
    ws->listen_fd = -1;
    ws->loops[0] = ev_loop;
    ws->batch_seq = 1;
    if (cfg->io_uring) {
        int e = io_uring_queue_init(GW_URING_ENTRIES, &ws->ring, 0);

        ws->pend = e == 0 ? calloc(GW_URING_ENTRIES, sizeof(*ws->pend)) : NULL;
        ws->uring = ws->pend != NULL;
        if (e == 0 && !ws->uring)
            io_uring_queue_exit(&ws->ring);
        if (!ws->uring)
            gw_log(GW_LOG_WARN, "io_uring unavailable (%s): one send() per frame",
                   e ? strerror(-e) : "out of memory");
    }
    lws_set_log_level(cfg->verbose >= 2 ? (LLL_ERR | LLL_WARN | LLL_NOTICE) : LLL_ERR, s_lws_log);

    /* Protocol 0 also takes upgrades that name no subprotocol: JSON. */
    ws->protos[0] =
        (struct lws_protocols){"wsgate.v1.json", s_ws_cb, sizeof(gw_conn_t), GW_RX_CHUNK,
                               GW_PROTO_JSON,    NULL,    GW_TX_CHUNK};
    ws->protos[1] =
        (struct lws_protocols){"wsgate.v1.msgpack", s_ws_cb, sizeof(gw_conn_t), GW_RX_CHUNK,
                               GW_PROTO_MSGPACK,    NULL,    GW_TX_CHUNK};
    if (cfg->dev_token_service[0])
        ws->protos[2] =
            (struct lws_protocols){"wsgate-http", s_pub_http_cb, sizeof(s_admin_t), 0, 2, NULL, 0};
    ws->admin_protos[0] =
        (struct lws_protocols){"http", s_admin_cb, sizeof(s_admin_t), 0, 0, NULL, 0};
    if (gw_idmap_init(&ws->http, 16))
        goto fail;

    /* lws's own validity pings off (0, 0): keep-alive is the gateway's,
     * on two O(1) lists, instead of a sorted timer per connection. */
    ws->retry.secs_since_valid_ping = 0;
    ws->retry.secs_since_valid_hangup = 0;

    memset(&info, 0, sizeof(info));
    info.options = LWS_SERVER_OPTION_EXPLICIT_VHOSTS | LWS_SERVER_OPTION_LIBEV;
    info.foreign_loops = ws->loops;
    info.user = gw;
    info.port = CONTEXT_PORT_NO_LISTEN;
    ws->ctx = lws_create_context(&info);
    if (!ws->ctx) {
        fprintf(stderr, "wsgate: lws context creation failed (libev event library plugin?)\n");
        goto fail;
    }

    memset(&info, 0, sizeof(info));
    info.options = LWS_SERVER_OPTION_LIBEV;
    info.vhost_name = "main";
    info.port = CONTEXT_PORT_NO_LISTEN_SERVER; /* s_listen() owns the listener */
    info.protocols = ws->protos;
    info.retry_and_idle_policy = &ws->retry;
    info.keepalive_timeout = 5;
    info.timeout_secs = 10;
    if (cfg->static_dir[0]) {
        ws->mount.mountpoint = "/";
        ws->mount.mountpoint_len = 1;
        ws->mount.origin = cfg->static_dir;
        ws->mount.def = "index.html";
        ws->mount.origin_protocol = LWSMPRO_FILE;
        info.mounts = &ws->mount;
    }
    if (cfg->dev_token_service[0]) {
        /* lws picks the longest matching mountpoint: this one wins over "/" */
        ws->dev_mount.mountpoint = "/dev/token";
        ws->dev_mount.mountpoint_len = 10;
        ws->dev_mount.origin = "wsgate-http";
        ws->dev_mount.origin_protocol = LWSMPRO_CALLBACK;
        ws->dev_mount.mount_next = info.mounts;
        info.mounts = &ws->dev_mount;
    }
    ws->vh = lws_create_vhost(ws->ctx, &info);
    if (!ws->vh) {
        fprintf(stderr, "wsgate: lws vhost creation failed\n");
        goto fail;
    }
    ws->listen_fd = s_listen(cfg->listen_host, cfg->listen_port, cfg->reuseport);
    if (ws->listen_fd < 0)
        goto fail;
    ev_io_init(&ws->listen_io, s_accept_cb, ws->listen_fd, EV_READ);
    ws->listen_io.data = ws;
    ev_io_start(ws->loop, &ws->listen_io);
    if (cfg->admin_port) {
        memset(&info, 0, sizeof(info));
        info.options = LWS_SERVER_OPTION_LIBEV;
        info.vhost_name = "admin";
        info.port = cfg->admin_port;
        info.iface = cfg->admin_host;
        info.protocols = ws->admin_protos;
        info.retry_and_idle_policy = &ws->retry;
        if (!lws_create_vhost(ws->ctx, &info)) {
            fprintf(stderr, "wsgate: cannot listen on %s:%d (admin)\n", cfg->admin_host,
                    cfg->admin_port);
            goto fail;
        }
    }
    return ws;
fail:
    gw_ws_destroy(&ws);
    return NULL;
}

void
gw_ws_stop_listening(gw_ws_t *ws)
{
    if (ws->listen_fd < 0)
        return;
    ev_io_stop(ws->loop, &ws->listen_io);
    close(ws->listen_fd);
    ws->listen_fd = -1;
}

void
gw_ws_destroy(gw_ws_t **self_p)
{
    gw_ws_t *ws = self_p ? *self_p : NULL;

    if (!ws)
        return;
    gw_ws_stop_listening(ws);
    free(ws->accept_at);
    if (ws->ctx)
        lws_context_destroy(ws->ctx);
    gw_idmap_fini(&ws->http);
    if (ws->uring) {
        s_batch_flush(ws);
        io_uring_queue_exit(&ws->ring);
    }
    free(ws->pend);
    free(ws);
    *self_p = NULL;
}
