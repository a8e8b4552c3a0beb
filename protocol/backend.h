/*
 * backend.h - the gateway <-> worker protocol v1 (docs/backend-protocol.md).
 *
 * Every backend message is one ZeroMQ multipart message of one or two
 * frames: a header (a msgpack array) and, for the types that carry one, an
 * opaque payload frame. Header: [version, type, fields...]. Receivers ignore
 * trailing elements they do not know, so fields can be added at the end
 * without a version change.
 *
 * Pure functions, callable from any thread.
 */
#ifndef WSGATE_BACKEND_H
#define WSGATE_BACKEND_H

#include "proto.h"

#define PROTO_BK_VERSION 1
#define PROTO_BK_MAX_SERVICES 64   /* services in one HELLO */
#define PROTO_BK_MAX_TARGETS 65536 /* connection ids in one SEND */
#define PROTO_BK_WORKER_ID_MAX 128 /* bytes in a worker or gateway id */
#define PROTO_BK_TEXT_MAX 1024     /* bytes in an error message / close reason */
#define PROTO_BK_USER_MAX 128      /* bytes in a user id (REQ, PUB) */
#define PROTO_BK_EPOCH_MAX 32      /* bytes in a channel epoch (PUB, PUBLISHED) */
#define PROTO_BK_CHANNEL_MAX 255   /* bytes in a channel name (PUB, PUBLISH) */

typedef enum {
    /* worker -> gateway */
    PROTO_BK_HELLO = 1,   /* [1, 1, worker_id, [svc...], [svc_flags...]?] */
    PROTO_BK_REPLY = 2,   /* [1, 2, rid] + payload: msgpack data */
    PROTO_BK_ERROR = 3,   /* [1, 3, rid, code, msg] */
    PROTO_BK_SEND = 4,    /* [1, 4, [conn...], flags, svc] + payload */
    PROTO_BK_CLOSE = 5,   /* [1, 5, conn, close_code, reason] */
    PROTO_BK_DRAIN = 6,   /* [1, 6]: route no new work to me */
    PROTO_BK_BYE = 7,     /* [1, 7]: I am leaving now */
    PROTO_BK_PUB = 8,     /* [1, 8, channel, kind, offset, epoch, user] + payload: fan out */
    PROTO_BK_PUBLISH = 9, /* [1, 9, ref, channel] + payload: publish through the channel service */
    /* gateway -> worker */
    PROTO_BK_WELCOME = 32,   /* [1, 32, gateway_id, conn_floor?] */
    PROTO_BK_OPEN = 33,      /* [1, 33, conn, svc, key, flags] */
    PROTO_BK_REQ = 34,       /* [1, 34, rid, conn, svc, key, flags, user?] + payload */
    PROTO_BK_CLOSED = 35,    /* [1, 35, conn, svc, key, close_code] */
    PROTO_BK_DRAINING = 36,  /* [1, 36]: DRAIN seen; nothing new will follow */
    PROTO_BK_PUBLISHED = 37, /* [1, 37, ref, code, msg, offset, epoch]: PUBLISH's outcome */
} proto_bk_type_t;

/* flags on OPEN, REQ and SEND */
#define PROTO_BK_F_RAW 0x1  /* raw endpoint: payload is the client's bytes verbatim */
#define PROTO_BK_F_TEXT 0x2 /* raw: a text frame (valid UTF-8); else binary */
#define PROTO_BK_F_GW                                                                              \
    0x4 /* the gateway built this REQ (auth, channel ops); payload is a gateway map */

/* PUB kinds */
#define PROTO_BK_PUB_MSG 0   /* a publication: payload is its data */
#define PROTO_BK_PUB_JOIN 1  /* user joined the channel (to subscribers that asked for presence) */
#define PROTO_BK_PUB_LEAVE 2 /* user left it */

/* per-service flags in HELLO */
#define PROTO_BK_SVC_RETRY_SAFE 0x1 /* a request may be sent again to another worker */

/* A decoded header. Spans point into the header frame. */
typedef struct {
    uint32_t version;
    uint32_t type; /* proto_bk_type_t */
    uint64_t rid;  /* REPLY, ERROR, REQ (0: no reply expected); PUBLISH, PUBLISHED: ref */
    uint64_t conn; /* OPEN, REQ, CLOSED, CLOSE; WELCOME: conn_floor (0: not sent) */
    uint32_t flags;
    uint32_t close_code;
    proto_span_t id;          /* HELLO worker id, WELCOME gateway id */
    proto_span_t svc;         /* OPEN, REQ, CLOSED, SEND */
    proto_span_t key;         /* OPEN, REQ, CLOSED */
    proto_span_t code;        /* ERROR */
    proto_span_t text;        /* ERROR message, CLOSE reason */
    proto_span_t list;        /* HELLO: encoded strings; SEND: encoded uints */
    uint32_t list_count;      /* elements in list (validated) */
    proto_span_t svc_flags;   /* HELLO: encoded uints, one per service, or empty */
    uint32_t svc_flags_count; /* 0 (absent) or list_count */
    proto_span_t user;        /* REQ (empty: anonymous or absent), PUB */
    proto_span_t channel;     /* PUB, PUBLISH */
    proto_span_t epoch;       /* PUB, PUBLISHED */
    uint64_t offset;          /* PUB, PUBLISHED */
    uint32_t kind;            /* PUB: PROTO_BK_PUB_* */
} proto_bk_t;

/* True for the types that carry a payload frame (REPLY, SEND, REQ, PUB,
 * PUBLISH); the others are one frame. */
bool proto_bk_has_payload(uint32_t type);

/*
 * Decodes a header frame. PROTO_OK; PROTO_MALFORMED for a wrong shape or
 * type (*err says what); PROTO_TOO_BIG for a list or text over the limits
 * above. A version other than PROTO_BK_VERSION gives PROTO_MALFORMED with
 * hdr->version set, so the caller can count it separately. Unknown types
 * are PROTO_MALFORMED. Lists are validated whole, so the iterators below
 * cannot fail on a decoded header.
 */
proto_rc_t proto_bk_decode(const uint8_t *buf, size_t len, proto_bk_t *hdr, const char **err);

/* Iterate hdr->list: *pos starts at 0; returns false at the end. */
bool proto_bk_next_str(const proto_bk_t *hdr, size_t *pos, proto_span_t *out);
bool proto_bk_next_uint(const proto_bk_t *hdr, size_t *pos, uint64_t *out);
/* The HELLO flags of service i (0 when the worker sent none). */
uint32_t proto_bk_svc_flags(const proto_bk_t *hdr, uint32_t i);

/* Encoders append one header to out. 0, or -1 when out of memory. */
/* svc_flags: one per service, or NULL to send none. */
int proto_bk_encode_hello(proto_buf_t *out, proto_span_t worker_id, const proto_span_t *svcs,
                          const uint32_t *svc_flags, size_t n_svcs);
/* DRAIN, BYE and DRAINING: headers with no fields. */
int proto_bk_encode_bare(proto_buf_t *out, proto_bk_type_t type);
int proto_bk_encode_reply(proto_buf_t *out, uint64_t rid);
int proto_bk_encode_error(proto_buf_t *out, uint64_t rid, proto_span_t code, proto_span_t msg);
int proto_bk_encode_send(proto_buf_t *out, const uint64_t *conns, size_t n_conns, uint32_t flags,
                         proto_span_t svc);
int proto_bk_encode_close(proto_buf_t *out, uint64_t conn, uint32_t close_code,
                          proto_span_t reason);
/* conn_floor: the lowest connection id this gateway process hands out.
 * A worker that sees it rise on a link knows the gateway behind the link
 * restarted: every connection below it is gone (docs/backend-protocol.md). */
int proto_bk_encode_welcome(proto_buf_t *out, proto_span_t gateway_id, uint64_t conn_floor);
int proto_bk_encode_open(proto_buf_t *out, uint64_t conn, proto_span_t svc, proto_span_t key,
                         uint32_t flags);
/* user: empty for anonymous connections (the field is then left out). */
int proto_bk_encode_req(proto_buf_t *out, uint64_t rid, uint64_t conn, proto_span_t svc,
                        proto_span_t key, uint32_t flags, proto_span_t user);
int proto_bk_encode_closed(proto_buf_t *out, uint64_t conn, proto_span_t svc, proto_span_t key,
                           uint32_t close_code);

int proto_bk_encode_pub(proto_buf_t *out, proto_span_t channel, uint32_t kind, uint64_t offset,
                        proto_span_t epoch, proto_span_t user);
int proto_bk_encode_publish(proto_buf_t *out, uint64_t ref, proto_span_t channel);
/* code empty: published at offset/epoch; else failed with code and msg. */
int proto_bk_encode_published(proto_buf_t *out, uint64_t ref, proto_span_t code, proto_span_t msg,
                              uint64_t offset, proto_span_t epoch);

#endif
