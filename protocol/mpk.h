/*
 * mpk.h - bounded msgpack reading and msgpack writing.
 *
 * Reading: msgpack-c's unpacker trusts declared lengths (a 5-byte input can
 * ask it for ~96 GB), and it cannot give the byte span of a nested value,
 * which is what lets the gateway forward a client's `data` without
 * re-encoding it. mpk_read() reads one token and checks every declared
 * length against the bytes that remain; nothing is allocated, strings and
 * binaries come back as spans into the input.
 *
 * Writing goes through msgpack-c's packer into a proto_buf_t.
 *
 * All functions are pure and may be called from any thread.
 */
#ifndef WSGATE_MPK_H
#define WSGATE_MPK_H

#include "proto.h"

/* Deepest nesting accepted by mpk_skip()/mpk_validate() and the converters. */
#define MPK_MAX_DEPTH 32

typedef enum {
    MPK_NIL,
    MPK_BOOL,
    MPK_UINT,  /* positive integers, whatever their encoding */
    MPK_INT,   /* negative integers */
    MPK_FLOAT, /* float 32 and float 64, widened */
    MPK_STR,
    MPK_BIN,
    MPK_ARRAY, /* n elements follow */
    MPK_MAP,   /* n key/value pairs follow */
    MPK_EXT,
} mpk_type_t;

typedef struct {
    mpk_type_t type;
    union {
        bool b;
        uint64_t u;
        int64_t i;
        double f;
        proto_span_t s; /* MPK_STR, MPK_BIN: points into the input */
        uint32_t n;     /* MPK_ARRAY, MPK_MAP */
        struct {
            int8_t type;
            proto_span_t data;
        } ext;
    } v;
} mpk_item_t;

typedef struct {
    const uint8_t *p;
    const uint8_t *end;
} mpk_reader_t;

static inline void
mpk_reader_init(mpk_reader_t *r, const void *p, size_t len)
{
    r->p = (const uint8_t *)p;
    r->end = len ? r->p + len : r->p; /* NULL + 0 is undefined in C */
}

static inline size_t
mpk_reader_left(const mpk_reader_t *r)
{
    return (size_t)(r->end - r->p);
}

/*
 * Reads one token. On PROTO_OK the reader has advanced past the token (for
 * STR/BIN/EXT past their bytes too; for ARRAY/MAP only past the header).
 * PROTO_NEED_MORE: input ends inside the token. PROTO_MALFORMED: reserved
 * byte 0xc1, or an array/map whose declared count cannot fit in the bytes
 * left (each element takes at least one byte). The reader does not move on
 * error.
 */
proto_rc_t mpk_read(mpk_reader_t *r, mpk_item_t *out);

/* Skips one whole value, nested ones included, at most max_depth deep
 * (deeper: PROTO_TOO_BIG). On PROTO_OK, *span (if not NULL) is the value's
 * encoded bytes. */
proto_rc_t mpk_skip(mpk_reader_t *r, unsigned max_depth, proto_span_t *span);

/* PROTO_OK if buf holds exactly one well-formed value, nothing after it. */
proto_rc_t mpk_validate(const void *buf, size_t len, unsigned max_depth);

/* Convenience readers: PROTO_MALFORMED if the next token has another type. */
proto_rc_t mpk_read_uint(mpk_reader_t *r, uint64_t *out);
proto_rc_t mpk_read_str(mpk_reader_t *r, proto_span_t *out);
proto_rc_t mpk_read_array(mpk_reader_t *r, uint32_t *n);
proto_rc_t mpk_read_map(mpk_reader_t *r, uint32_t *n);

/* Writers: append to b. Return 0, or -1 when out of memory. */
int mpk_write_nil(proto_buf_t *b);
int mpk_write_bool(proto_buf_t *b, bool v);
int mpk_write_uint(proto_buf_t *b, uint64_t v);
int mpk_write_int(proto_buf_t *b, int64_t v);
int mpk_write_double(proto_buf_t *b, double v);
int mpk_write_str(proto_buf_t *b, const void *s, size_t len);
int mpk_write_cstr(proto_buf_t *b, const char *s);
int mpk_write_bin(proto_buf_t *b, const void *p, size_t len);
int mpk_write_array(proto_buf_t *b, uint32_t n);
int mpk_write_map(proto_buf_t *b, uint32_t n);
/* Appends bytes that already are one encoded msgpack value. */
int mpk_write_raw(proto_buf_t *b, const void *p, size_t len);

#endif
