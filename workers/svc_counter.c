/*
 * svc_counter.c - the `counter` service: a uint64 per key.
 *
 * Each request adds its data to the key's count when the data is a
 * positive integer, and 1 otherwise, and replies with the new count. The
 * count is plain private state: the runtime runs one message at a time per
 * key, so there is nothing to lock. It lives as long as the actor: after
 * passivation the key counts from zero again.
 */
#include "../protocol/mpk.h"
#include "service.h"

#include <stdlib.h>

static int
counter_start(wk_actor_t *a, void **state)
{
    (void)a;
    *state = calloc(1, sizeof(uint64_t));
    return *state ? 0 : -1;
}

/* The increment a request asks for: its data if that is exactly one
 * positive msgpack integer, else 1. */
static uint64_t
counter_step(proto_span_t data)
{
    mpk_reader_t r;
    mpk_item_t it;
    if (data.len == 0)
        return 1;
    mpk_reader_init(&r, data.ptr, data.len);
    if (mpk_read(&r, &it) == PROTO_OK && it.type == MPK_UINT && it.v.u > 0 &&
        mpk_reader_left(&r) == 0)
        return it.v.u;
    return 1;
}

static int
counter_handle(wk_actor_t *a, void *state, const wk_msg_t *m)
{
    if (m->kind != WK_MSG_REQ)
        return 0;
    uint64_t *n = state;
    uint64_t step = counter_step(m->data);
    /* Saturate rather than wrap: a count that jumps back to 0 is a lie. */
    *n = step > UINT64_MAX - *n ? UINT64_MAX : *n + step;
    if (m->rid == 0)
        return 0;

    proto_buf_t out;
    proto_buf_init(&out, 0);
    int rc = -1;
    if (mpk_write_uint(&out, *n) == 0)
        rc = wk_reply(a, m, proto_buf_payload(&out), out.len);
    proto_buf_fini(&out);
    return rc;
}

static void
counter_stop(wk_actor_t *a, void *state)
{
    (void)a;
    free(state);
}

/* Not retry-safe: a replayed increment would count twice. */
const wk_service_t wk_svc_counter = {"counter", counter_start, counter_handle, counter_stop, 0};
