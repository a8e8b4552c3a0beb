/*
 * svc_echo.c - the `echo` service: answers a request with its own data.
 *
 * On /ws endpoints the request's data (one msgpack value) is the reply. On
 * raw endpoints there is no request id to answer, so the bytes go back to
 * the connection they came from as a push, in the frame type they came in.
 * Stateless: every key's actor has a NULL state.
 */
#include "../protocol/backend.h"
#include "service.h"

#include <stddef.h>

static int
echo_start(wk_actor_t *a, void **state)
{
    (void)a;
    *state = NULL;
    return 0;
}

static int
echo_handle(wk_actor_t *a, void *state, const wk_msg_t *m)
{
    (void)state;
    if (m->kind != WK_MSG_REQ)
        return 0;
    if (m->flags & PROTO_BK_F_RAW)
        return wk_send(a, m->origin, &m->conn, 1, m->flags & (PROTO_BK_F_RAW | PROTO_BK_F_TEXT),
                       m->data.ptr, m->data.len);
    if (m->rid == 0)
        return 0; /* nobody is waiting for the echo */
    if (m->data.len == 0) {
        /* The gateway sends absent data as nil; an empty frame means the same. */
        static const uint8_t nil = 0xc0;
        return wk_reply(a, m, &nil, 1);
    }
    return wk_reply(a, m, m->data.ptr, m->data.len);
}

/* Echo has no effects: answering a request twice is harmless. */
const wk_service_t wk_svc_echo = {"echo", echo_start, echo_handle, NULL, WK_SVC_RETRY_SAFE};
