/*
 * proto.h - types shared by every codec in protocol/.
 *
 * protocol/ is the one library that the gateway, the workers and the load
 * tool all link. It is the only code that includes <msgpack.h> and
 * <jansson.h> (but for workers/jwt.c, which parses the JSON inside JWTs);
 * everything else speaks these types.
 */
#ifndef WSGATE_PROTO_H
#define WSGATE_PROTO_H

#include <stddef.h>
#include <stdint.h>
#include <stdbool.h>

/* Return codes of every codec function. */
typedef enum {
    PROTO_OK = 0,
    PROTO_NEED_MORE, /* input ends inside a value */
    PROTO_MALFORMED, /* bytes that are not valid for the format / schema */
    PROTO_TOO_BIG,   /* a declared length or count over a configured bound */
    PROTO_NOMEM,
} proto_rc_t;

/* A borrowed byte span. Never owns its bytes. */
typedef struct {
    const uint8_t *ptr;
    size_t len;
} proto_span_t;

static inline proto_span_t
proto_span(const void *p, size_t len)
{
    proto_span_t s = {(const uint8_t *)p, len};
    return s;
}

/*
 * Growable output buffer with reserved headroom in front of the payload.
 *
 * The gateway hands buffers straight to lws_write(), which needs LWS_PRE
 * bytes before the payload; protocol/ does not know LWS_PRE, so the caller
 * says how much headroom it wants. Bytes written start at data + head.
 * proto_buf_fini() frees; proto_buf_reset() keeps the allocation.
 */
typedef struct {
    uint8_t *data; /* allocation start (owned) */
    size_t head;   /* reserved bytes before the payload */
    size_t len;    /* payload bytes written after head */
    size_t cap;    /* allocation size, head included */
} proto_buf_t;

void proto_buf_init(proto_buf_t *b, size_t head);
void proto_buf_fini(proto_buf_t *b);
void proto_buf_reset(proto_buf_t *b);
/* Ensures room for n more payload bytes. 0 or -1 (out of memory). */
int proto_buf_reserve(proto_buf_t *b, size_t n);
int proto_buf_append(proto_buf_t *b, const void *p, size_t n);
static inline uint8_t *
proto_buf_payload(const proto_buf_t *b)
{
    return b->data ? b->data + b->head : NULL;
}
/* Hands the allocation to the caller (who frees it with free()) and leaves
 * b empty. Payload starts at the returned pointer + b's old head. */
uint8_t *proto_buf_detach(proto_buf_t *b);

#endif
