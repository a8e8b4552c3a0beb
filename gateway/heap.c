#include "heap.h"

#include <stdlib.h>

void
gw_heap_init(gw_heap_t *h)
{
    h->v = NULL;
    h->n = h->cap = 0;
}

void
gw_heap_fini(gw_heap_t *h)
{
    free(h->v);
    gw_heap_init(h);
}

int
gw_heap_push(gw_heap_t *h, gw_heap_item_t it)
{
    size_t i, parent;

    if (h->n == h->cap) {
        size_t cap = h->cap ? h->cap * 2 : 256;
        gw_heap_item_t *v = realloc(h->v, cap * sizeof(*v));

        if (!v)
            return -1;
        h->v = v;
        h->cap = cap;
    }
    for (i = h->n++; i > 0; i = parent) {
        parent = (i - 1) / 2;
        if (h->v[parent].due_ms <= it.due_ms)
            break;
        h->v[i] = h->v[parent];
    }
    h->v[i] = it;
    return 0;
}

const gw_heap_item_t *
gw_heap_top(const gw_heap_t *h)
{
    return h->n ? &h->v[0] : NULL;
}

void
gw_heap_pop(gw_heap_t *h)
{
    gw_heap_item_t last;
    size_t i = 0, child;

    if (!h->n)
        return;
    last = h->v[--h->n];
    while ((child = 2 * i + 1) < h->n) {
        if (child + 1 < h->n && h->v[child + 1].due_ms < h->v[child].due_ms)
            child++;
        if (last.due_ms <= h->v[child].due_ms)
            break;
        h->v[i] = h->v[child];
        i = child;
    }
    h->v[i] = last;
    /* give memory back after a storm of short-lived entries */
    if (h->cap > 1024 && h->n < h->cap / 4) {
        gw_heap_item_t *v = realloc(h->v, (h->cap / 2) * sizeof(*v));

        if (v) {
            h->v = v;
            h->cap /= 2;
        }
    }
}
