/*
 * wsc_frame.h - the client's side of the v1 envelope, in msgpack
 * (subprotocol wsgate.v1.msgpack, docs/protocol.md).
 *
 * protocol/envelope.c decodes what clients send and encodes what the
 * gateway sends; a client needs the opposite two directions. Both are
 * built on protocol/'s bounded msgpack reader and its writers (mpk.h), so
 * there is still one msgpack adapter in the tree.
 *
 * Builders append one client frame to a proto_buf_t. Parsers read one
 * server frame: every declared length is checked against the bytes that
 * remain before anything is read (msgpack-c would trust it), nesting is
 * bounded, nothing is allocated; spans point into the frame.
 *
 * Pure functions, callable from any thread.
 */
#ifndef WSC_FRAME_H
#define WSC_FRAME_H

#include "proto.h"
#include "mpk.h"

#define WSC_USER_MAX 128      /* bytes in a user name (backend-protocol.md) */
#define WSC_MSG_TEXT_MAX 1024 /* bytes in an error's human-readable msg */

/*
 * Client frames. `id` 0 means none (fire-and-forget; unsub uses it).
 * `data` must be exactly one msgpack value (NULL/0: nil). -1 when an
 * argument is invalid (service name, key, channel name, token, data)
 * or memory ran out; b is then left as it was.
 *
 *   req:   {"op":"req","id":ID,"svc":SVC,"key":KEY,"data":DATA}   key NULL: none
 *   auth:  {"op":"auth","id":ID,"token":TOKEN}
 *   sub:   {"op":"sub","id":ID,"channel":C[,"epoch":E,"offset":N]}  epoch NULL: none
 *   unsub: {"op":"unsub","channel":C}
 *   pub:   {"op":"pub","id":ID,"channel":C,"data":DATA}
 */
int wsc_frame_req(proto_buf_t *b, uint64_t id, const char *svc, const char *key,
                  const uint8_t *data, size_t len);
int wsc_frame_auth(proto_buf_t *b, uint64_t id, const char *token);
int wsc_frame_sub(proto_buf_t *b, uint64_t id, const char *channel, const char *epoch,
                  uint64_t offset);
int wsc_frame_unsub(proto_buf_t *b, const char *channel);
int wsc_frame_pub(proto_buf_t *b, uint64_t id, const char *channel, const uint8_t *data,
                  size_t len);

/* True if s may be sent as a channel name / service name / key. */
bool wsc_frame_channel_ok(const char *s);

typedef enum {
    WSC_OP_RES = 1,
    WSC_OP_ERR,
    WSC_OP_PUSH,
    WSC_OP_MSG,
    WSC_OP_JOIN,
    WSC_OP_LEAVE,
} wsc_op_t;

/* One server frame. Spans point into the frame; absent ones have len 0
 * (data: ptr NULL; an absent data means nil). */
typedef struct {
    wsc_op_t op;
    bool has_id; /* an unsigned integer id (the only kind this client sends) */
    bool str_id; /* a string id: not ours */
    uint64_t id;
    proto_span_t code;    /* err: [a-z0-9_]{1,32} */
    proto_span_t msg;     /* err: human-readable, up to WSC_MSG_TEXT_MAX */
    proto_span_t svc;     /* push */
    proto_span_t channel; /* msg, join, leave */
    proto_span_t epoch;   /* msg */
    proto_span_t user;    /* msg (may be absent), join, leave */
    proto_span_t data;    /* res, push, msg: one msgpack value */
    bool has_offset;
    uint64_t offset; /* msg */
} wsc_frame_t;

/*
 * Parses one server frame. PROTO_OK, or PROTO_MALFORMED / PROTO_TOO_BIG
 * with *why set to a short static text. Checks: one map with string
 * keys and nothing after it; a known `op`; `v` absent or 1; each field of
 * the expected type and length (channel, svc, code, epoch, user in the
 * character sets and bounds of docs/protocol.md; strings without NUL);
 * the fields each op needs; nesting at most MPK_MAX_DEPTH. Unknown
 * fields are skipped.
 */
proto_rc_t wsc_frame_parse(const uint8_t *p, size_t len, wsc_frame_t *f, const char **why);

/* The data of a `sub` answer: {"epoch":E,"offset":N,"recovered":B,"pubs":[...]}. */
typedef struct {
    proto_span_t epoch;
    uint64_t offset;
    bool recovered;
    uint32_t npubs;
    mpk_reader_t pubs; /* at the first element of pubs */
} wsc_sub_answer_t;

proto_rc_t wsc_frame_sub_answer(proto_span_t data, wsc_sub_answer_t *a);
/* The next element of a->pubs: {"offset":N,"user":U,"data":D}. Call at
 * most a->npubs times. */
proto_rc_t wsc_frame_sub_answer_next(wsc_sub_answer_t *a, uint64_t *offset, proto_span_t *user,
                                     proto_span_t *data);

/* The data of an `auth` answer: {"user":U,"exp":T}. *exp is 0 when absent. */
proto_rc_t wsc_frame_auth_answer(proto_span_t data, proto_span_t *user, uint64_t *exp);

#endif
