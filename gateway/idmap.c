#include "idmap.h"

#include <stdlib.h>

static inline size_t
s_home(const gw_idmap_t *m, uint64_t id)
{
    /* Fibonacci hashing: sequential ids land far apart. */
    return (size_t)((id * 0x9E3779B97F4A7C15ull) >> 20) & m->mask;
}

int
gw_idmap_init(gw_idmap_t *m, size_t initial)
{
    size_t cap = 16;

    while (cap < initial * 2)
        cap <<= 1;
    m->slots = calloc(cap, sizeof(*m->slots));
    if (!m->slots)
        return -1;
    m->mask = cap - 1;
    m->count = 0;
    return 0;
}

void
gw_idmap_fini(gw_idmap_t *m)
{
    free(m->slots);
    m->slots = NULL;
    m->mask = 0;
    m->count = 0;
}

static void
s_insert(gw_idmap_t *m, uint64_t id, void *ptr)
{
    size_t i = s_home(m, id);

    while (m->slots[i].id)
        i = (i + 1) & m->mask;
    m->slots[i].id = id;
    m->slots[i].ptr = ptr;
    m->count++;
}

static int
s_grow(gw_idmap_t *m)
{
    gw_idmap_t bigger;
    size_t i;

    bigger.slots = calloc((m->mask + 1) * 2, sizeof(*bigger.slots));
    if (!bigger.slots)
        return -1;
    bigger.mask = (m->mask + 1) * 2 - 1;
    bigger.count = 0;
    for (i = 0; i <= m->mask; i++)
        if (m->slots[i].id)
            s_insert(&bigger, m->slots[i].id, m->slots[i].ptr);
    free(m->slots);
    *m = bigger;
    return 0;
}

int
gw_idmap_put(gw_idmap_t *m, uint64_t id, void *ptr)
{
    /* Keep the load under 1/2: probes stay short for linear probing. */
    if ((m->count + 1) * 2 > m->mask + 1 && s_grow(m))
        return -1;
    s_insert(m, id, ptr);
    return 0;
}

void *
gw_idmap_get(const gw_idmap_t *m, uint64_t id)
{
    size_t i = s_home(m, id);

    while (m->slots[i].id) {
        if (m->slots[i].id == id)
            return m->slots[i].ptr;
        i = (i + 1) & m->mask;
    }
    return NULL;
}

void *
gw_idmap_del(gw_idmap_t *m, uint64_t id)
{
    size_t i = s_home(m, id), j, home;
    void *ptr;

    while (m->slots[i].id != id) {
        if (!m->slots[i].id)
            return NULL;
        i = (i + 1) & m->mask;
    }
    ptr = m->slots[i].ptr;
    /* Backward-shift: move later members of the run into the hole when
     * their home position allows it, so lookups never need tombstones. */
    j = i;
    for (;;) {
        j = (j + 1) & m->mask;
        if (!m->slots[j].id)
            break;
        home = s_home(m, m->slots[j].id);
        /* slot j may move to i if home is not cyclically in (i, j] */
        if ((j > i && (home <= i || home > j)) || (j < i && (home <= i && home > j))) {
            m->slots[i] = m->slots[j];
            i = j;
        }
    }
    m->slots[i].id = 0;
    m->slots[i].ptr = NULL;
    m->count--;
    return ptr;
}
