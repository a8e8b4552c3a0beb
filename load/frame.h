/*
 * frame.h - websocket frames (RFC 6455 section 5) for the load client.
 *
 * Encoding writes client frames (masked) or, for the tests, unmasked
 * ones. Decoding takes whole frames from a byte stream; the reader on top
 * reassembles fragmented messages and hands out control frames, which may
 * arrive between the fragments of a message.
 *
 * Pure code, no I/O; any thread.
 */
#ifndef WSGATE_LD_FRAME_H
#define WSGATE_LD_FRAME_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "proto.h"

enum {
    LD_WS_CONT = 0x0,
    LD_WS_TEXT = 0x1,
    LD_WS_BINARY = 0x2,
    LD_WS_CLOSE = 0x8,
    LD_WS_PING = 0x9,
    LD_WS_PONG = 0xa,
};

#define LD_FRAME_HDR_MAX 14 /* 2 + 8 (64-bit length) + 4 (mask) */
#define LD_FRAME_CONTROL_MAX 125

/*
 * Writes a frame header to out: FIN bit, opcode, the shortest length
 * form (7, 16 or 64 bits) and, if mask is not NULL, the mask bit and key.
 * Returns the header's length.
 */
size_t ld_frame_header(uint8_t out[LD_FRAME_HDR_MAX], bool fin, unsigned opcode, uint64_t len,
                       const uint8_t mask[4]);

/* dst[i] = src[i] ^ mask[(offset + i) % 4]; dst may equal src. */
void ld_frame_mask(uint8_t *dst, const uint8_t *src, size_t len, const uint8_t mask[4],
                   size_t offset);

/* Header and (masked) payload into out, which has room for
 * LD_FRAME_HDR_MAX + len bytes. Returns the frame's length. */
size_t ld_frame_encode(uint8_t *out, bool fin, unsigned opcode, const void *payload, size_t len,
                       const uint8_t mask[4]);

typedef struct {
    bool fin;
    bool masked;
    unsigned opcode;
    uint8_t mask[4];
    uint64_t len;   /* payload bytes */
    size_t hdr_len; /* payload starts here */
} ld_frame_t;

/*
 * Parses the frame at the start of p[0..n).
 * PROTO_OK: the whole frame (header and payload) is in p; *f describes it.
 * PROTO_NEED_MORE: not yet. PROTO_TOO_BIG: payload over max_len (known as
 * soon as the header is). PROTO_MALFORMED: reserved bits or opcode, a
 * fragmented or over-125-byte control frame, a 64-bit length with its top
 * bit set.
 */
proto_rc_t ld_frame_parse(const uint8_t *p, size_t n, uint64_t max_len, ld_frame_t *f);

/* What one call to ld_frame_reader_next() produced. */
typedef struct {
    unsigned opcode; /* TEXT, BINARY (a whole message), CLOSE, PING, PONG; 0: nothing yet */
    const uint8_t *data;
    size_t len;
    int close_code; /* CLOSE: the code, 1005 if the frame had none */
} ld_frame_event_t;

typedef struct {
    proto_buf_t frag; /* fragments so far (allocated only for fragmented messages) */
    unsigned frag_op; /* opcode of the message being reassembled, 0 if none */
    size_t max_msg;   /* bound on a message, fragments counted together */
    bool client;      /* a client must refuse masked frames from the server */
} ld_frame_reader_t;

void ld_frame_reader_init(ld_frame_reader_t *r, size_t max_msg, bool client);
void ld_frame_reader_fini(ld_frame_reader_t *r);

/*
 * Takes one frame from p[0..n) (unmasking it in place if masked).
 * On PROTO_OK *used is the frame's length and *ev what it completed:
 * ev->opcode 0 for a fragment that does not end its message. ev->data
 * points into p, or into the reader for a reassembled message, and is
 * valid until the next call. PROTO_NEED_MORE: the frame is not whole yet
 * (nothing consumed). PROTO_MALFORMED / PROTO_TOO_BIG: the connection must
 * be failed (a continuation without a message, a new message inside a
 * fragmented one, a 1-byte close payload, a masked frame for a client,
 * over max_msg). PROTO_NOMEM.
 */
proto_rc_t ld_frame_reader_next(ld_frame_reader_t *r, uint8_t *p, size_t n, size_t *used,
                                ld_frame_event_t *ev);

#endif
