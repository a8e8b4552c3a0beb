/*
 * wsc_queue.h - the C client's bounded outgoing queue.
 *
 * Everything the application sends (requests, publications, raw frames)
 * waits here until the connection can take it: while offline, while the
 * session is being set up (auth, subscriptions), and while the socket is
 * busy. The bound is a number of messages; a push over it drops the
 * OLDEST message (the newest reading is the one worth keeping) and counts
 * it. The dropped message is handed back so the caller can tell whoever
 * waits for its reply.
 *
 * Not thread-safe: the client's one thread owns it.
 */
#ifndef WSC_QUEUE_H
#define WSC_QUEUE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* One outgoing websocket message with `head` bytes of headroom in front
 * of its payload (lws_write needs LWS_PRE there). */
typedef struct wsc_msg {
    struct wsc_msg *next;
    uint64_t id; /* the request id waiting for a reply; 0: none */
    size_t head;
    size_t len;
    bool binary;
    uint8_t buf[]; /* head + len bytes */
} wsc_msg_t;

/* A message holding a copy of p[0..len). NULL when out of memory. */
wsc_msg_t *wsc_msg_new(size_t head, const void *p, size_t len, bool binary, uint64_t id);
void wsc_msg_destroy(wsc_msg_t **self_p);
static inline uint8_t *
wsc_msg_payload(wsc_msg_t *m)
{
    return m->buf + m->head;
}

typedef struct wsc_queue wsc_queue_t;

/* A queue of at most max messages (max >= 1). NULL when out of memory. */
wsc_queue_t *wsc_queue_new(size_t max);
/* Frees the queue and every message still in it. Accepts NULL. */
void wsc_queue_destroy(wsc_queue_t **self_p);

/*
 * Appends *msg_p and takes ownership of it (*msg_p becomes NULL). If the
 * queue was full, the oldest message is removed, counted as dropped and
 * returned: the caller owns it (frees it with wsc_msg_destroy). Otherwise
 * NULL.
 */
wsc_msg_t *wsc_queue_push(wsc_queue_t *self, wsc_msg_t **msg_p);
/* Puts a message back at the head (one popped but not written after
 * all). Ignores the bound: the message was already counted in. */
void wsc_queue_unpop(wsc_queue_t *self, wsc_msg_t **msg_p);
/* Removes and returns the oldest message (the caller owns it), or NULL. */
wsc_msg_t *wsc_queue_pop(wsc_queue_t *self);

size_t wsc_queue_count(const wsc_queue_t *self);
size_t wsc_queue_max(const wsc_queue_t *self);
/* Messages pushed in all, and dropped at the bound, since creation. */
uint64_t wsc_queue_pushed(const wsc_queue_t *self);
uint64_t wsc_queue_dropped(const wsc_queue_t *self);

#endif
