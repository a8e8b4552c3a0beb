/*
 * conn.c - websocket client connection state machine (conn.h).
 *
 * The sockets are edge-triggered (EPOLLET) and registered once for both
 * directions: no epoll_ctl per write, which matters with tens of thousands
 * of connections. In exchange every read goes until the kernel has nothing
 * more, and every write that the kernel does not take whole leaves the
 * rest in c->out for the next EPOLLOUT edge.
 */
#define _GNU_SOURCE
#include "conn.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <netinet/tcp.h>
#include <sys/epoll.h>
#include <sys/random.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define LD_RBUF_SIZE (256u * 1024)

int
ld_net_init(ld_net_t *net)
{
    memset(net, 0, sizeof(*net));
    net->epfd = epoll_create1(EPOLL_CLOEXEC);
    if (net->epfd < 0)
        return -1;
    net->rbuf_cap = LD_RBUF_SIZE;
    net->rbuf = malloc(net->rbuf_cap);
    if (!net->rbuf)
        goto out_close;
    proto_buf_init(&net->wbuf, 0);
    if (getrandom(&net->rng, sizeof(net->rng), 0) != sizeof(net->rng))
        net->rng = (uint64_t)getpid() * 0x9e3779b97f4a7c15ull;
    net->rng |= 1;
    return 0;
out_close:
    close(net->epfd);
    net->epfd = -1;
    return -1;
}

void
ld_net_fini(ld_net_t *net)
{
    if (net->epfd >= 0)
        close(net->epfd);
    net->epfd = -1;
    free(net->rbuf);
    net->rbuf = NULL;
    proto_buf_fini(&net->wbuf);
}

/* xorshift64*: mask keys and nonces need to be unpredictable to
 * intermediaries, not cryptographic; one syscall per process seeds it. */
static uint64_t
s_rand(ld_net_t *net)
{
    net->rng ^= net->rng >> 12;
    net->rng ^= net->rng << 25;
    net->rng ^= net->rng >> 27;
    return net->rng * 0x2545f4914f6cdd1dull;
}

void
ld_conn_init(ld_conn_t *c, uint32_t index)
{
    memset(c, 0, sizeof(*c));
    c->fd = -1;
    c->index = index;
    proto_buf_init(&c->in, 0);
    proto_buf_init(&c->out, 0);
    ld_frame_reader_init(&c->rd, 0, true);
}

void
ld_conn_fini(ld_conn_t *c)
{
    if (c->fd >= 0)
        close(c->fd);
    c->fd = -1;
    proto_buf_fini(&c->in);
    proto_buf_fini(&c->out);
    ld_frame_reader_fini(&c->rd);
}

static ld_fail_t
s_errno_fail(int err)
{
    switch (err) {
    case ECONNREFUSED:
        return LD_FAIL_REFUSED;
    case ECONNRESET:
    case EPIPE:
    case ECONNABORTED:
        return LD_FAIL_RESET;
    case ETIMEDOUT:
        return LD_FAIL_TIMEOUT;
    case EADDRNOTAVAIL:
    case EADDRINUSE:
    case EAGAIN:
        return LD_FAIL_ADDRESS;
    case EMFILE:
    case ENFILE:
        return LD_FAIL_FILES;
    default:
        return LD_FAIL_OTHER;
    }
}

/* The one way out: the fd closes at once, the runner hears of it. Buffers
 * stay until ld_conn_fini(): a caller up the stack may be parsing c->in. */
static void
s_end(ld_net_t *net, ld_conn_t *c, ld_fail_t fail, int status, int code)
{
    ld_conn_end_t end;

    if (c->state == LD_CONN_DONE)
        return;
    if (c->state == LD_CONN_CLOSING) {
        /* the close handshake was under way: how the TCP connection then
         * ended (EOF, reset, our deadline) is no failure */
        fail = LD_FAIL_NONE;
    }
    if (c->peer_code)
        code = c->peer_code;
    end.fail = fail;
    end.http_status = status;
    end.close_code = code;
    end.was_open = c->opened;
    end.by_client = c->by_client;
    c->state = LD_CONN_DONE;
    if (c->fd >= 0)
        close(c->fd);
    c->fd = -1;
    proto_buf_fini(&c->out);
    net->ops->ended(net->ud, c, &end);
}

static int
s_flush(ld_net_t *net, ld_conn_t *c)
{
    uint8_t *p = proto_buf_payload(&c->out);
    ssize_t n;
    size_t off = 0;

    while (off < c->out.len) {
        n = send(c->fd, p + off, c->out.len - off, MSG_NOSIGNAL | MSG_DONTWAIT);
        if (n < 0) {
            if (errno == EAGAIN || errno == EINTR)
                break;
            s_end(net, c, s_errno_fail(errno), 0, 1006);
            return -1;
        }
        off += (size_t)n;
    }
    if (off == c->out.len) {
        proto_buf_fini(&c->out);
    } else if (off) {
        memmove(p, p + off, c->out.len - off);
        c->out.len -= off;
    }
    return 0;
}

static int
s_write(ld_net_t *net, ld_conn_t *c, const void *p, size_t len)
{
    ssize_t n = 0;

    if (!c->out.len && !c->corked) {
        n = send(c->fd, p, len, MSG_NOSIGNAL | MSG_DONTWAIT);
        if (n < 0) {
            if (errno != EAGAIN && errno != EINTR) {
                s_end(net, c, s_errno_fail(errno), 0, 1006);
                return -1;
            }
            n = 0;
        }
        if ((size_t)n == len)
            return 0;
    }
    /* the rest waits for EPOLLOUT */
    if (proto_buf_append(&c->out, (const uint8_t *)p + n, len - (size_t)n)) {
        s_end(net, c, LD_FAIL_OTHER, 0, 1006);
        return -1;
    }
    return 0;
}

static int
s_send_frame(ld_net_t *net, ld_conn_t *c, unsigned opcode, const void *p, size_t len)
{
    uint64_t r = s_rand(net);
    uint8_t mask[4];

    memcpy(mask, &r, 4);
    proto_buf_reset(&net->wbuf);
    if (proto_buf_reserve(&net->wbuf, LD_FRAME_HDR_MAX + len)) {
        s_end(net, c, LD_FAIL_OTHER, 0, 1006);
        return -1;
    }
    net->wbuf.len = ld_frame_encode(proto_buf_payload(&net->wbuf), true, opcode, p, len, mask);
    return s_write(net, c, proto_buf_payload(&net->wbuf), net->wbuf.len);
}

int
ld_conn_send(ld_net_t *net, ld_conn_t *c, unsigned opcode, const void *p, size_t len)
{
    if (c->state != LD_CONN_OPEN)
        return -1;
    return s_send_frame(net, c, opcode, p, len);
}

static void
s_send_request(ld_net_t *net, ld_conn_t *c)
{
    char key[LD_HS_KEY_LEN + 1], req[1024];
    uint8_t nonce[16];
    uint64_t r[2] = {s_rand(net), s_rand(net)};
    int n;

    memcpy(nonce, r, 16);
    ld_handshake_key(nonce, key);
    n = ld_handshake_request(req, sizeof(req), net->host, net->path, key, net->subprotocol);
    if (n < 0 || ld_handshake_accept(key, c->accept)) {
        s_end(net, c, LD_FAIL_OTHER, 0, 0);
        return;
    }
    c->state = LD_CONN_HANDSHAKE;
    s_write(net, c, req, (size_t)n);
}

void
ld_conn_start(ld_net_t *net, ld_conn_t *c, uint64_t now_ns)
{
    struct epoll_event ev;
    int one = 1;

    c->start_ns = now_ns;
    c->deadline_ns = now_ns + net->connect_timeout_ns;
    c->state = LD_CONN_CONNECTING;
    ld_frame_reader_init(&c->rd, net->max_msg, true);
    c->fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (c->fd < 0)
        goto fail;
    setsockopt(c->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    if (net->rx_timestamps)
        setsockopt(c->fd, SOL_SOCKET, SO_TIMESTAMPNS, &one, sizeof(one));
    if (net->n_sources) {
        const struct sockaddr_in *src = &net->sources[c->index % net->n_sources];

        /* The port is chosen at connect() for the (source, target) pair, not
         * at bind() from the whole range: each source address gets its own
         * 28k ephemeral ports towards the target. */
        setsockopt(c->fd, IPPROTO_IP, IP_BIND_ADDRESS_NO_PORT, &one, sizeof(one));
        if (bind(c->fd, (const struct sockaddr *)src, sizeof(*src)) < 0)
            goto fail;
    }
    ev.events = EPOLLIN | EPOLLOUT | EPOLLRDHUP | EPOLLET;
    ev.data.ptr = c;
    if (epoll_ctl(net->epfd, EPOLL_CTL_ADD, c->fd, &ev) < 0)
        goto fail;
    if (connect(c->fd, (const struct sockaddr *)&net->target, sizeof(net->target)) == 0) {
        s_send_request(net, c);
        return;
    }
    if (errno == EINPROGRESS)
        return;
fail:
    s_end(net, c, s_errno_fail(errno), 0, 0);
}

static void
s_pong(ld_net_t *net, ld_conn_t *c, const uint8_t *p, size_t len)
{
    bool ok = c->state == LD_CONN_OPEN && s_send_frame(net, c, LD_WS_PONG, p, len) == 0;

    net->ops->pinged(net->ud, c, ok);
}

/*
 * The server's close frame. The server closes the TCP connection first
 * (RFC 6455 7.1.1), so we wait for its EOF (bounded by the close
 * deadline): the TIME_WAIT then stays on the server's side. On ours it
 * would hold the 4-tuple for a minute, and connect() on loopback spends
 * its time searching ports among such entries after a few storms.
 */
static void
s_closed(ld_net_t *net, ld_conn_t *c, int code, uint64_t now_ns)
{
    uint8_t reply[2] = {(uint8_t)(code >> 8), (uint8_t)code};

    c->peer_code = (uint16_t)code;
    if (c->state != LD_CONN_OPEN)
        return;
    /* echo the code (RFC 6455 5.5.1); a close without one gets none */
    if (s_send_frame(net, c, LD_WS_CLOSE, reply, code == 1005 ? 0 : 2))
        return;
    c->state = LD_CONN_CLOSING;
    c->deadline_ns = now_ns + net->close_timeout_ns;
}

/* Websocket frames in p[0..n); returns the bytes used. */
static size_t
s_frames(ld_net_t *net, ld_conn_t *c, uint8_t *p, size_t n, uint64_t now_ns)
{
    ld_frame_event_t ev;
    size_t off = 0, used;
    proto_rc_t rc;

    while (off < n && c->state >= LD_CONN_OPEN && c->state < LD_CONN_DONE) {
        rc = ld_frame_reader_next(&c->rd, p + off, n - off, &used, &ev);
        if (rc == PROTO_NEED_MORE)
            break;
        if (rc != PROTO_OK) {
            s_end(net, c, LD_FAIL_MALFORMED, 0, 1002);
            break;
        }
        off += used;
        switch (ev.opcode) {
        case LD_WS_TEXT:
        case LD_WS_BINARY:
            if (c->state == LD_CONN_OPEN)
                net->ops->message(net->ud, c, ev.opcode, ev.data, ev.len, now_ns);
            break;
        case LD_WS_PING:
            s_pong(net, c, ev.data, ev.len);
            break;
        case LD_WS_CLOSE:
            s_closed(net, c, ev.close_code, now_ns);
            break;
        default: /* pongs, and fragments that do not end a message */
            break;
        }
    }
    return off;
}

static void
s_handshake(ld_net_t *net, ld_conn_t *c, uint64_t now_ns)
{
    size_t hdr_len, left, used;
    int status;
    ld_hs_rc_t rc;

    rc = ld_handshake_response(proto_buf_payload(&c->in), c->in.len, c->accept, net->subprotocol,
                               &status, &hdr_len);
    switch (rc) {
    case LD_HS_NEED_MORE:
        return;
    case LD_HS_OK:
        break;
    case LD_HS_STATUS:
        s_end(net, c, LD_FAIL_HTTP, status, 0);
        return;
    case LD_HS_BAD_ACCEPT:
        s_end(net, c, LD_FAIL_BAD_ACCEPT, 101, 0);
        return;
    case LD_HS_BAD_PROTOCOL:
        s_end(net, c, LD_FAIL_BAD_PROTOCOL, 101, 0);
        return;
    default:
        s_end(net, c, LD_FAIL_MALFORMED, status, 0);
        return;
    }
    c->state = LD_CONN_OPEN;
    c->opened = true;
    net->ops->opened(net->ud, c, now_ns);
    left = c->in.len - hdr_len;
    used = left ? s_frames(net, c, proto_buf_payload(&c->in) + hdr_len, left, now_ns) : 0;
    if (c->state == LD_CONN_DONE)
        return;
    memmove(proto_buf_payload(&c->in), proto_buf_payload(&c->in) + hdr_len + used, left - used);
    c->in.len = left - used;
}

static void
s_input(ld_net_t *net, ld_conn_t *c, uint8_t *p, size_t n, uint64_t now_ns)
{
    size_t used;

    if (c->state == LD_CONN_HANDSHAKE || c->in.len) {
        if (proto_buf_append(&c->in, p, n)) {
            s_end(net, c, LD_FAIL_OTHER, 0, 1006);
            return;
        }
        if (c->state == LD_CONN_HANDSHAKE) {
            s_handshake(net, c, now_ns);
        } else {
            used = s_frames(net, c, proto_buf_payload(&c->in), c->in.len, now_ns);
            if (c->state != LD_CONN_DONE) {
                memmove(proto_buf_payload(&c->in), proto_buf_payload(&c->in) + used,
                        c->in.len - used);
                c->in.len -= used;
            }
        }
    } else {
        used = s_frames(net, c, p, n, now_ns);
        if (used < n && c->state != LD_CONN_DONE && proto_buf_append(&c->in, p + used, n - used))
            s_end(net, c, LD_FAIL_OTHER, 0, 1006);
    }
    if (c->state == LD_CONN_DONE || (c->state != LD_CONN_HANDSHAKE && !c->in.len))
        proto_buf_fini(&c->in);
}

static void
s_eof(ld_net_t *net, ld_conn_t *c)
{
    int status = 0;
    size_t hl;

    if (c->state == LD_CONN_HANDSHAKE) {
        /* a refusal (503) the server wrote whole before closing was read
         * already; what is left may still hold a status line */
        ld_handshake_response(proto_buf_payload(&c->in), c->in.len, c->accept, NULL, &status, &hl);
        s_end(net, c, status > 0 && status != 101 ? LD_FAIL_HTTP : LD_FAIL_RESET, status, 0);
        return;
    }
    s_end(net, c, LD_FAIL_RESET, 0, 1006); /* no failure if CLOSING */
}

/*
 * recv() with the kernel's receive timestamp into net->rx_ts_ns. For TCP
 * it is the time of the last segment the read took, so a message that
 * came in an earlier segment of the same read is dated a little late:
 * latencies from it err on the long side.
 */
static ssize_t
s_recv_ts(ld_net_t *net, int fd)
{
    char ctrl[CMSG_SPACE(sizeof(struct timespec))];
    struct iovec iov = {net->rbuf, net->rbuf_cap};
    struct msghdr mh;
    struct cmsghdr *cm;
    struct timespec ts;
    ssize_t n;

    memset(&mh, 0, sizeof(mh));
    mh.msg_iov = &iov;
    mh.msg_iovlen = 1;
    mh.msg_control = ctrl;
    mh.msg_controllen = sizeof(ctrl);
    n = recvmsg(fd, &mh, 0);
    net->rx_ts_ns = 0;
    if (n <= 0)
        return n;
    for (cm = CMSG_FIRSTHDR(&mh); cm; cm = CMSG_NXTHDR(&mh, cm)) {
        if (cm->cmsg_level == SOL_SOCKET && cm->cmsg_type == SCM_TIMESTAMPNS) {
            memcpy(&ts, CMSG_DATA(cm), sizeof(ts));
            net->rx_ts_ns = (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
        }
    }
    return n;
}

static void
s_read_all(ld_net_t *net, ld_conn_t *c, uint32_t events, uint64_t now_ns)
{
    ssize_t n;

    while (c->state != LD_CONN_DONE) {
        n = net->rx_timestamps ? s_recv_ts(net, c->fd) : recv(c->fd, net->rbuf, net->rbuf_cap, 0);
        if (n > 0) {
            s_input(net, c, net->rbuf, (size_t)n, now_ns);
            /* A short read emptied the socket: the next byte brings a new
             * edge, so the recv() that would say EAGAIN is saved, unless
             * the peer has hung up and its EOF is still to be read. */
            if ((size_t)n < net->rbuf_cap && !(events & (EPOLLRDHUP | EPOLLHUP | EPOLLERR)))
                return;
            continue;
        }
        if (n == 0) {
            s_eof(net, c);
            return;
        }
        if (errno == EINTR)
            continue;
        if (errno != EAGAIN)
            s_end(net, c, s_errno_fail(errno), 0, 1006);
        return;
    }
}

/*
 * Reads with the connection corked: the requests the runner sends in
 * answer to the replies of one read (a window's worth, closed loop) go
 * out in one send() after it, not one each. That halves the client's
 * syscalls at high rates, so the client is not what a benchmark measures.
 */
static void
s_read(ld_net_t *net, ld_conn_t *c, uint32_t events, uint64_t now_ns)
{
    c->corked = true;
    s_read_all(net, c, events, now_ns);
    c->corked = false;
    if (c->state != LD_CONN_DONE && c->out.len)
        s_flush(net, c);
}

void
ld_conn_event(ld_net_t *net, ld_conn_t *c, uint32_t events, uint64_t now_ns)
{
    int err = 0;
    socklen_t elen = sizeof(err);

    if (c->state == LD_CONN_DONE || c->state == LD_CONN_IDLE)
        return;
    if (c->state == LD_CONN_CONNECTING) {
        if (!(events & (EPOLLOUT | EPOLLERR | EPOLLHUP)))
            return;
        /* A connect that failed says EPOLLERR; only then is SO_ERROR worth
         * its system call (one of a dozen per connection in a storm). */
        if ((events & (EPOLLERR | EPOLLHUP)) &&
            getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &err, &elen) < 0)
            err = errno;
        if (err) {
            s_end(net, c, s_errno_fail(err), 0, 0);
            return;
        }
        s_send_request(net, c);
        if (c->state == LD_CONN_DONE)
            return;
    } else if ((events & EPOLLOUT) && c->out.len) {
        if (s_flush(net, c))
            return;
    }
    if (events & (EPOLLIN | EPOLLRDHUP | EPOLLHUP | EPOLLERR))
        s_read(net, c, events, now_ns);
}

void
ld_conn_tick(ld_net_t *net, ld_conn_t *c, uint64_t now_ns)
{
    if (now_ns < c->deadline_ns)
        return;
    if (c->state == LD_CONN_CONNECTING || c->state == LD_CONN_HANDSHAKE)
        s_end(net, c, LD_FAIL_TIMEOUT, 0, 0);
    else if (c->state == LD_CONN_CLOSING)
        s_end(net, c, LD_FAIL_NONE, 0, 1006);
}

void
ld_conn_close(ld_net_t *net, ld_conn_t *c, int code, uint64_t now_ns)
{
    uint8_t payload[2] = {(uint8_t)(code >> 8), (uint8_t)code};

    if (c->state == LD_CONN_OPEN) {
        c->by_client = true;
        if (s_send_frame(net, c, LD_WS_CLOSE, payload, 2))
            return;
        c->state = LD_CONN_CLOSING;
        c->deadline_ns = now_ns + net->close_timeout_ns;
        return;
    }
    if (c->state == LD_CONN_CONNECTING || c->state == LD_CONN_HANDSHAKE) {
        c->by_client = true;
        s_end(net, c, LD_FAIL_NONE, 0, 0);
    }
}
