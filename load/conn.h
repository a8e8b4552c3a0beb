/*
 * conn.h - one websocket client connection on an epoll set: non-blocking
 * connect, the upgrade, frames in and out, pings answered, the close
 * handshake.
 *
 * Connections are embedded in their runner's array (the struct is public
 * for that) and each is used for one connection attempt. All of one
 * process's connections share an ld_net_t: the epoll set, the target, a
 * read buffer and the callbacks through which the runner learns what
 * happened. Everything runs on the thread of the epoll loop.
 *
 * Memory per idle open connection is the struct alone: bytes are read into
 * the shared buffer and used where they lie; only a frame split across
 * reads, or output the kernel did not take, is kept per connection.
 */
#ifndef WSGATE_LD_CONN_H
#define WSGATE_LD_CONN_H

#include <stdbool.h>
#include <stdint.h>

#include <netinet/in.h>

#include "frame.h"
#include "handshake.h"
#include "stats.h"

#define LD_NET_MAX_SOURCES 16

typedef enum {
    LD_CONN_IDLE = 0,   /* not started */
    LD_CONN_CONNECTING, /* connect() in progress */
    LD_CONN_HANDSHAKE,  /* request sent, waiting for the 101 */
    LD_CONN_OPEN,
    LD_CONN_CLOSING, /* our close frame sent, waiting for the server's */
    LD_CONN_DONE,    /* over; the fd is closed */
} ld_conn_state_t;

typedef struct ld_conn {
    int fd;
    uint8_t state;        /* ld_conn_state_t */
    bool opened;          /* the 101 was received */
    bool corked;          /* reading: sends wait in `out` for one send() after the read */
    bool by_client;       /* the client started the close */
    uint16_t peer_code;   /* the server's close code, 0 before its close frame */
    uint32_t index;       /* the runner's */
    uint64_t start_ns;    /* connect() called */
    uint64_t deadline_ns; /* for the handshake, or the close */
    char accept[LD_HS_ACCEPT_LEN + 1];
    proto_buf_t in;  /* bytes not yet parsed (allocated only while needed) */
    proto_buf_t out; /* bytes the kernel did not take yet */
    ld_frame_reader_t rd;
} ld_conn_t;

/* How a connection ended. */
typedef struct {
    ld_fail_t fail;  /* NONE for a close handshake or a clean EOF */
    int http_status; /* LD_FAIL_HTTP */
    int close_code;  /* the server's close code; 1006 if none came */
    bool was_open;   /* the 101 had been received */
    bool by_client;  /* it ended after ld_conn_close() */
} ld_conn_end_t;

/* The runner's callbacks. A callback may send on or close any connection. */
typedef struct {
    void (*opened)(void *ud, ld_conn_t *c, uint64_t now_ns);
    void (*message)(void *ud, ld_conn_t *c, unsigned opcode, const uint8_t *p, size_t len,
                    uint64_t now_ns);
    void (*pinged)(void *ud, ld_conn_t *c, bool answered);
    /* Once per started connection; c->fd is closed already. */
    void (*ended)(void *ud, ld_conn_t *c, const ld_conn_end_t *end);
} ld_conn_ops_t;

typedef struct {
    int epfd;
    struct sockaddr_in target;
    /* Connection i binds sources[i % n_sources] (port 0); none if 0. */
    struct sockaddr_in sources[LD_NET_MAX_SOURCES];
    unsigned n_sources;
    const char *host; /* Host header */
    const char *path;
    const char *subprotocol; /* NULL: none */
    size_t max_msg;
    uint64_t connect_timeout_ns;
    uint64_t close_timeout_ns;
    const ld_conn_ops_t *ops;
    void *ud;
    uint64_t rng;
    uint8_t *rbuf; /* shared read buffer */
    size_t rbuf_cap;
    proto_buf_t wbuf; /* frame assembly */
    /* SO_TIMESTAMPNS on every socket: rx_ts_ns is the kernel's receive
     * time (CLOCK_REALTIME, ns) of the data the last read returned, valid
     * while its messages are handed to the runner; 0 when none came */
    bool rx_timestamps;
    uint64_t rx_ts_ns;
} ld_net_t;

/* Creates the epoll set and buffers; the caller fills the other fields.
 * 0 or -1 (errno). */
int ld_net_init(ld_net_t *net);
void ld_net_fini(ld_net_t *net);

void ld_conn_init(ld_conn_t *c, uint32_t index);
/* Frees c's buffers; closes the fd without a callback if still open. */
void ld_conn_fini(ld_conn_t *c);

/* Starts the connection attempt. An immediate failure is reported through
 * ended() before this returns. */
void ld_conn_start(ld_net_t *net, ld_conn_t *c, uint64_t now_ns);

/* epoll reported events on c. */
void ld_conn_event(ld_net_t *net, ld_conn_t *c, uint32_t events, uint64_t now_ns);

/* Handshake and close deadlines. */
void ld_conn_tick(ld_net_t *net, ld_conn_t *c, uint64_t now_ns);

/* Sends one message (masked) on an open connection. 0, or -1 if c is not
 * open or the send failed (then ended() has been called). */
int ld_conn_send(ld_net_t *net, ld_conn_t *c, unsigned opcode, const void *p, size_t len);

/* Starts the close handshake of an open connection (code 1000 ...); a
 * connection not open yet is dropped (ended() with LD_FAIL_NONE and
 * by_client). */
void ld_conn_close(ld_net_t *net, ld_conn_t *c, int code, uint64_t now_ns);

static inline bool
ld_conn_is_open(const ld_conn_t *c)
{
    return c->state == LD_CONN_OPEN;
}

#endif
