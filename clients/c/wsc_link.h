/*
 * wsc_link.h - the C client's one websocket connection, over
 * libwebsockets' client side. The only file of the client that includes
 * <libwebsockets.h> is wsc_link.c.
 *
 * A link owns an lws context (its own poll loop, no listener) and at
 * most one connection at a time. It reassembles fragmented messages up to
 * max_message bytes and hands whole ones up; it writes one message per
 * writeable callback, as lws requires. Everything runs on the thread that
 * calls wsc_link_service(); the ops are called from inside it, never from
 * wsc_link_destroy().
 */
#ifndef WSC_LINK_H
#define WSC_LINK_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "wsc_url.h"

typedef struct wsc_link wsc_link_t;

typedef struct {
    void (*opened)(void *u); /* upgrade done, subprotocol agreed */
    /* one whole message; p is borrowed */
    void (*message)(void *u, const uint8_t *p, size_t len, bool binary);
    /* a message over max_message was discarded */
    void (*oversized)(void *u);
    /* the socket can take one message: call wsc_link_write() at most once;
     * return -1 to close (the close code set with wsc_link_close()) */
    int (*writeable)(void *u);
    /* the connection (or attempt) is over: code as in wsc_state_fn */
    void (*closed)(void *u, int code, const char *reason);
} wsc_link_ops_t;

typedef struct {
    const char *ca_file;
    bool insecure;
    size_t max_message;
    uint32_t connect_timeout_ms;
} wsc_link_config_t;

/* NULL when lws cannot create its context (e.g. TLS setup failed). */
wsc_link_t *wsc_link_new(const wsc_link_config_t *cfg, const wsc_link_ops_t *ops, void *u);
void wsc_link_destroy(wsc_link_t **self_p);

/* Bytes of headroom each message written needs in front of its payload. */
size_t wsc_link_headroom(void);

/* Starts connecting to url with subprotocol (NULL: none). 0, or -1 when
 * a connection exists already or the attempt failed at once (then
 * `closed` has been called, or will be on the next service). */
int wsc_link_connect(wsc_link_t *self, const wsc_url_t *url, const char *subprotocol);
bool wsc_link_busy(const wsc_link_t *self);
/* Asks for a `writeable` call when the socket can take a message. */
void wsc_link_want_write(wsc_link_t *self);
/* Only from `writeable`: writes p[0..len), which has wsc_link_headroom()
 * bytes in front of it that lws may scribble on. 0 or -1. */
int wsc_link_write(wsc_link_t *self, uint8_t *p, size_t len, bool binary);
/* Closes the connection with code and reason (the close frame goes out
 * from the next writeable); `closed` follows, with this code. */
void wsc_link_close(wsc_link_t *self, int code, const char *reason);

/* Runs lws for one wait of at most timeout_ms (0: no wait). 0 or -1. */
int wsc_link_service(wsc_link_t *self, int timeout_ms);

#endif
