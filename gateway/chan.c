#include "chan.h"

#include <stdlib.h>
#include <string.h>

#include "../protocol/rendezvous.h"

int
gw_chans_init(gw_chans_t *t)
{
    memset(t, 0, sizeof(*t));
    return gw_idmap_init(&t->map, 256);
}

void
gw_chans_fini(gw_chans_t *t)
{
    size_t i;

    for (i = 0; t->map.slots && i <= t->map.mask; i++) {
        gw_chan_t *ch = t->map.slots[i].id ? t->map.slots[i].ptr : NULL;

        while (ch) {
            gw_chan_t *next = ch->hnext;

            free(ch);
            ch = next;
        }
    }
    gw_idmap_fini(&t->map);
}

/* 0 marks an empty idmap slot. */
static uint64_t
s_hash(proto_span_t name)
{
    uint64_t h = proto_hash64(name.ptr, name.len);

    return h ? h : 1;
}

static gw_chan_t *
s_find(gw_chan_t *ch, proto_span_t name)
{
    for (; ch; ch = ch->hnext)
        if (ch->len == name.len && memcmp(ch->name, name.ptr, name.len) == 0)
            return ch;
    return NULL;
}

gw_chan_t *
gw_chans_get(const gw_chans_t *t, proto_span_t name)
{
    return s_find(gw_idmap_get(&t->map, s_hash(name)), name);
}

gw_sub_t *
gw_sub_add(gw_chans_t *t, struct gw_conn *c, gw_sub_t **list, proto_span_t name, bool presence,
           uint32_t seq)
{
    uint64_t h = s_hash(name);
    gw_chan_t *first = gw_idmap_get(&t->map, h);
    gw_chan_t *ch = s_find(first, name);
    gw_sub_t *s = calloc(1, sizeof(*s));

    if (!s)
        return NULL;
    if (!ch) {
        if (name.len > UINT16_MAX || !(ch = calloc(1, sizeof(*ch) + name.len + 1))) {
            free(s);
            return NULL;
        }
        ch->hash = h;
        ch->owner_slot = -1;
        ch->len = (uint16_t)name.len;
        memcpy(ch->name, name.ptr, name.len);
        if (first) {
            /* collision: chain behind the one the map points to */
            ch->hnext = first->hnext;
            first->hnext = ch;
        } else if (gw_idmap_put(&t->map, h, ch)) {
            free(ch);
            free(s);
            return NULL;
        }
        t->n_chans++;
    }
    ch->n_subs++;
    s->chan = ch;
    s->conn = c;
    s->seq = seq;
    s->presence = presence;
    s->conn_next = *list;
    *list = s;
    return s;
}

void
gw_sub_activate(gw_chans_t *t, gw_sub_t *s)
{
    gw_chan_t *ch = s->chan;

    if (s->active)
        return;
    s->active = 1;
    s->prev = NULL;
    s->next = ch->head;
    if (ch->head)
        ch->head->prev = s;
    ch->head = s;
    ch->n_active++;
    t->n_active++;
}

static void
s_chan_free(gw_chans_t *t, gw_chan_t *ch)
{
    gw_chan_t *first = gw_idmap_get(&t->map, ch->hash);

    if (first == ch) {
        gw_idmap_del(&t->map, ch->hash);
        /* cannot fail: the delete just made room */
        if (ch->hnext)
            (void)gw_idmap_put(&t->map, ch->hash, ch->hnext);
    } else {
        while (first && first->hnext != ch)
            first = first->hnext;
        if (first)
            first->hnext = ch->hnext;
    }
    t->n_chans--;
    free(ch);
}

void
gw_sub_remove(gw_chans_t *t, gw_sub_t **list, gw_sub_t *s)
{
    gw_chan_t *ch = s->chan;
    gw_sub_t **pp;

    for (pp = list; *pp; pp = &(*pp)->conn_next) {
        if (*pp == s) {
            *pp = s->conn_next;
            break;
        }
    }
    if (s->active) {
        if (s->prev)
            s->prev->next = s->next;
        else
            ch->head = s->next;
        if (s->next)
            s->next->prev = s->prev;
        ch->n_active--;
        t->n_active--;
    }
    if (--ch->n_subs == 0)
        s_chan_free(t, ch);
    free(s);
}

gw_sub_t *
gw_sub_find(gw_sub_t *list, proto_span_t name)
{
    for (; list; list = list->conn_next)
        if (list->chan->len == name.len && memcmp(list->chan->name, name.ptr, name.len) == 0)
            return list;
    return NULL;
}

gw_sub_t *
gw_sub_find_seq(gw_sub_t *list, uint32_t seq)
{
    for (; list; list = list->conn_next)
        if (list->seq == seq)
            return list;
    return NULL;
}
