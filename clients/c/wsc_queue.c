/*
 * wsc_queue.c - bounded FIFO of outgoing messages, oldest dropped first.
 */
#include "wsc_queue.h"

#include <stdlib.h>
#include <string.h>

struct wsc_queue {
    wsc_msg_t *head;
    wsc_msg_t *tail;
    size_t count;
    size_t max;
    uint64_t pushed;
    uint64_t dropped;
};

wsc_msg_t *
wsc_msg_new(size_t head, const void *p, size_t len, bool binary, uint64_t id)
{
    wsc_msg_t *m;

    if (len > SIZE_MAX - sizeof(*m) - head)
        return NULL;
    m = malloc(sizeof(*m) + head + len);
    if (!m)
        return NULL;
    m->next = NULL;
    m->id = id;
    m->head = head;
    m->len = len;
    m->binary = binary;
    if (len)
        memcpy(m->buf + head, p, len);
    return m;
}

void
wsc_msg_destroy(wsc_msg_t **self_p)
{
    if (self_p && *self_p) {
        free(*self_p);
        *self_p = NULL;
    }
}

wsc_queue_t *
wsc_queue_new(size_t max)
{
    wsc_queue_t *q = calloc(1, sizeof(*q));

    if (!q)
        return NULL;
    q->max = max ? max : 1;
    return q;
}

void
wsc_queue_destroy(wsc_queue_t **self_p)
{
    wsc_queue_t *q;
    wsc_msg_t *m;

    if (!self_p || !*self_p)
        return;
    q = *self_p;
    while ((m = wsc_queue_pop(q)))
        wsc_msg_destroy(&m);
    free(q);
    *self_p = NULL;
}

wsc_msg_t *
wsc_queue_push(wsc_queue_t *self, wsc_msg_t **msg_p)
{
    wsc_msg_t *m = *msg_p, *old = NULL;

    *msg_p = NULL;
    if (self->count >= self->max) {
        old = wsc_queue_pop(self);
        self->dropped++;
    }
    m->next = NULL;
    if (self->tail)
        self->tail->next = m;
    else
        self->head = m;
    self->tail = m;
    self->count++;
    self->pushed++;
    return old;
}

void
wsc_queue_unpop(wsc_queue_t *self, wsc_msg_t **msg_p)
{
    wsc_msg_t *m = *msg_p;

    *msg_p = NULL;
    m->next = self->head;
    self->head = m;
    if (!self->tail)
        self->tail = m;
    self->count++;
}

wsc_msg_t *
wsc_queue_pop(wsc_queue_t *self)
{
    wsc_msg_t *m = self->head;

    if (!m)
        return NULL;
    self->head = m->next;
    if (!self->head)
        self->tail = NULL;
    self->count--;
    m->next = NULL;
    return m;
}

size_t
wsc_queue_count(const wsc_queue_t *self)
{
    return self->count;
}

size_t
wsc_queue_max(const wsc_queue_t *self)
{
    return self->max;
}

uint64_t
wsc_queue_pushed(const wsc_queue_t *self)
{
    return self->pushed;
}

uint64_t
wsc_queue_dropped(const wsc_queue_t *self)
{
    return self->dropped;
}
