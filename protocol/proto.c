/*
 * proto.c - the growable output buffer shared by every codec.
 */
#include "proto.h"

#include <stdlib.h>
#include <string.h>

/* First allocation for the payload; small frames then never grow. */
#define PROTO_BUF_MIN 256

void
proto_buf_init(proto_buf_t *b, size_t head)
{
    b->data = NULL;
    b->head = head;
    b->len = 0;
    b->cap = 0;
}

void
proto_buf_fini(proto_buf_t *b)
{
    free(b->data);
    /* head is kept: a finished buffer can be reused with the same headroom */
    b->data = NULL;
    b->len = 0;
    b->cap = 0;
}

void
proto_buf_reset(proto_buf_t *b)
{
    b->len = 0;
}

int
proto_buf_reserve(proto_buf_t *b, size_t n)
{
    size_t used = b->head + b->len;
    size_t need, cap;
    uint8_t *p;

    /* PTRDIFF_MAX: no object may be larger, and asking malloc for more
     * only aborts under sanitizers instead of failing */
    const size_t max = PTRDIFF_MAX;

    if (used < b->head || used > max || n > max - used)
        return -1;
    need = used + n;
    if (b->data && need <= b->cap)
        return 0;

    /* Geometric growth keeps appends amortised O(1). */
    cap = b->cap ? b->cap : b->head + PROTO_BUF_MIN;
    if (cap < b->head)
        return -1;
    while (cap < need) {
        if (cap > max / 2) {
            cap = need;
            break;
        }
        cap *= 2;
    }
    p = realloc(b->data, cap);
    if (!p)
        return -1;
    b->data = p;
    b->cap = cap;
    return 0;
}

int
proto_buf_append(proto_buf_t *b, const void *p, size_t n)
{
    if (proto_buf_reserve(b, n) < 0)
        return -1;
    if (n)
        memcpy(b->data + b->head + b->len, p, n);
    b->len += n;
    return 0;
}

uint8_t *
proto_buf_detach(proto_buf_t *b)
{
    uint8_t *p = b->data;

    b->data = NULL;
    b->len = 0;
    b->cap = 0;
    return p;
}
