/*
 * envelope.h - the client protocol v1 envelope (docs/protocol.md).
 *
 * One envelope, two encodings: a JSON object on text frames
 * (subprotocol wsgate.v1.json, or none) and a msgpack map on binary frames
 * (wsgate.v1.msgpack). Both carry the same fields; the decoder turns either
 * into one internal form whose `data` is always msgpack, so workers never
 * see which encoding the client spoke. The encoders turn a worker's msgpack
 * `data` back into the client's encoding.
 *
 * Pure functions, callable from any thread.
 */
#ifndef WSGATE_ENVELOPE_H
#define WSGATE_ENVELOPE_H

#include "proto.h"

#define PROTO_VERSION 1
#define PROTO_SVC_MAX 64      /* bytes in a service name: [a-z0-9_.-]+ */
#define PROTO_KEY_MAX 256     /* bytes in an actor key: any UTF-8 */
#define PROTO_ID_MAX 64       /* bytes in a string request id */
#define PROTO_CODE_MAX 32     /* bytes in an error code: [a-z0-9_]+ */
#define PROTO_CHANNEL_MAX 255 /* bytes in a channel name (the gateway may set a lower limit) */
#define PROTO_TOKEN_MAX 8192  /* bytes in an auth token */
#define PROTO_EPOCH_MAX 32    /* bytes in a channel epoch */

typedef enum {
    PROTO_ENC_JSON = 0,
    PROTO_ENC_MSGPACK = 1,
} proto_enc_t;

/* Client operations. */
typedef enum {
    PROTO_OP_REQ = 1,
    PROTO_OP_AUTH,
    PROTO_OP_SUB,
    PROTO_OP_UNSUB,
    PROTO_OP_PUB,
    PROTO_OP_PRESENCE,
    PROTO_OP_HISTORY,
} proto_op_t;

/* The documented error codes the gateway itself produces. Workers may send
 * these or codes of their own (same character set). */
typedef enum {
    PROTO_ERR_BAD_REQUEST = 0,
    PROTO_ERR_NO_SERVICE,
    PROTO_ERR_TOO_LARGE,
    PROTO_ERR_OVERLOADED,
    PROTO_ERR_TIMEOUT,
    PROTO_ERR_INTERNAL,
    PROTO_ERR_UNAVAILABLE,
    PROTO_ERR_UNAUTHENTICATED, /* auth = required and the connection has not authenticated */
    PROTO_ERR_FORBIDDEN,       /* not allowed (reserved services; channel permissions) */
    PROTO_ERR_BAD_CHANNEL,     /* channel name: characters or length */
    PROTO_ERR_TOO_MANY_SUBS,   /* over the subscriptions per connection */
    PROTO_ERR_ALREADY_SUBSCRIBED,
    PROTO_ERR_NOT_SUBSCRIBED,
    PROTO_ERR__COUNT
} proto_err_t;

/* "bad_request", "no_service", ... */
const char *proto_err_name(proto_err_t e);

typedef enum {
    PROTO_ID_NONE = 0,
    PROTO_ID_UINT, /* non-negative integer, at most 2^63-1 */
    PROTO_ID_STR,  /* string of 1..PROTO_ID_MAX bytes */
} proto_id_kind_t;

/* A client's request id, kept by value so it outlives the frame. */
typedef struct {
    uint8_t kind; /* proto_id_kind_t */
    uint8_t len;  /* PROTO_ID_STR */
    uint64_t u;   /* PROTO_ID_UINT */
    char s[PROTO_ID_MAX];
} proto_id_t;

typedef struct {
    proto_op_t op;
    proto_id_t id;
    proto_span_t svc;     /* required for REQ */
    proto_span_t key;     /* len 0: absent (the connection is the key) */
    proto_span_t data;    /* one msgpack value; absent data decodes as nil */
    proto_span_t channel; /* required for SUB, UNSUB, PUB, PRESENCE, HISTORY: UTF-8, 1..255 bytes
                             (proto_channel_valid() is the gateway's stricter check) */
    proto_span_t token;   /* required for AUTH: 1..PROTO_TOKEN_MAX bytes of UTF-8 */
    proto_span_t epoch;   /* SUB: recover from (epoch, offset); len 0: no recovery */
    uint64_t offset;      /* SUB with epoch: the last offset the client saw */
    uint32_t limit;       /* HISTORY: most publications wanted (0: absent) */
    bool presence;        /* SUB: also deliver join/leave events */
} proto_envelope_t;

/*
 * Decodes one client frame.
 *
 * Spans in *env point into `in` (msgpack) or into `scratch` (JSON, where
 * svc, key and data are re-encoded), so they live as long as both do.
 * scratch is reset first and may be reused across calls.
 *
 * PROTO_OK, or PROTO_MALFORMED / PROTO_TOO_BIG with *err set to a short
 * static text for the client (the gateway replies `bad_request` with it).
 * On failure env->id still holds the request's id when the id itself was
 * well-formed, so the error reply can carry it.
 *
 * Checks: top level is a map/object; `v` absent or 1; `op` absent ("req")
 * or a known op; `id` as proto_id_t allows; `svc` present for req, 1..64
 * bytes of [a-z0-9_.-]; `key` 1..256 bytes; unknown fields are ignored;
 * nesting at most MPK_MAX_DEPTH.
 */
proto_rc_t proto_envelope_decode(proto_enc_t enc, const uint8_t *in, size_t len,
                                 proto_buf_t *scratch, proto_envelope_t *env, const char **err);

/*
 * Encoders append one whole client frame to out (out is not reset).
 * `data` is one msgpack value from a worker. For JSON it is converted;
 * values JSON cannot carry (bin, ext, non-string map keys, integers over
 * 2^63-1, NaN or infinities) give PROTO_MALFORMED and nothing is appended.
 * PROTO_NOMEM on allocation failure.
 *
 *   res:  {"v":1,"op":"res","id":ID,"data":DATA}
 *   err:  {"v":1,"op":"err","id":ID,"code":CODE,"msg":MSG}   (id omitted if none)
 *   push: {"v":1,"op":"push","svc":SVC,"data":DATA}
 */
proto_rc_t proto_envelope_encode_res(proto_enc_t enc, const proto_id_t *id, proto_span_t data,
                                     proto_buf_t *out);
proto_rc_t proto_envelope_encode_err(proto_enc_t enc, const proto_id_t *id, proto_span_t code,
                                     proto_span_t msg, proto_buf_t *out);
proto_rc_t proto_envelope_encode_push(proto_enc_t enc, proto_span_t svc, proto_span_t data,
                                      proto_buf_t *out);

/*
 * Server -> client channel events, in the client's encoding:
 *   msg:   {"v":1,"op":"msg","channel":C,"epoch":E,"offset":N,"user":U,"data":DATA}
 *          ("user" left out when empty: a publication from the backend)
 *   join:  {"v":1,"op":"join","channel":C,"user":U}
 *   leave: {"v":1,"op":"leave","channel":C,"user":U}
 */
proto_rc_t proto_envelope_encode_msg(proto_enc_t enc, proto_span_t channel, proto_span_t epoch,
                                     uint64_t offset, proto_span_t user, proto_span_t data,
                                     proto_buf_t *out);
proto_rc_t proto_envelope_encode_presence(proto_enc_t enc, bool join, proto_span_t channel,
                                          proto_span_t user, proto_buf_t *out);

/* True if s is a channel name of 1..max bytes of [A-Za-z0-9_.:@/=+-]
 * (max at most PROTO_CHANNEL_MAX). */
bool proto_channel_valid(proto_span_t s, size_t max);

/* True if s is a valid service name / error code (character set and length). */
bool proto_svc_valid(proto_span_t s);
bool proto_code_valid(proto_span_t s);

/* True if p[0..len) is valid UTF-8 (no overlongs, no surrogates, <= U+10FFFF). */
bool proto_utf8_valid(const uint8_t *p, size_t len);

/* JSON text <-> one msgpack value, for the codecs above and for tools
 * (streamed by protocol/json.c). proto_json_to_mpk appends to out:
 * PROTO_MALFORMED for invalid JSON, PROTO_TOO_BIG past MPK_MAX_DEPTH levels
 * (out unchanged on failure); proto_mpk_to_json appends JSON text, failing
 * as the encoders above do. */
proto_rc_t proto_json_to_mpk(const uint8_t *json, size_t len, proto_buf_t *out);
proto_rc_t proto_mpk_to_json(proto_span_t mpk, proto_buf_t *out);

#endif
