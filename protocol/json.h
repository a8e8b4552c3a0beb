/*
 * json.h - the streaming JSON <-> msgpack transcoder behind the envelope
 * codecs (envelope.c) and proto_json_to_mpk() / proto_mpk_to_json().
 *
 * No DOM: JSON text is lexed once and written straight out as msgpack, and
 * msgpack is read token by token and written straight out as JSON text.
 * It accepts, rejects and prints exactly what jansson 2.14 did with
 * JSON_DECODE_ANY | JSON_REJECT_DUPLICATES | JSON_ALLOW_NUL on the way in
 * and JSON_COMPACT | JSON_REAL_PRECISION(17) on the way out (the
 * differential tests in tests/protocol/test_json_diff.c and
 * tests/fuzz/fuzz_json_diff.c hold it to that), with one documented
 * exception: jansson drops a raw NUL byte right after a number or a
 * literal ("1\0" parses as 1); here any raw NUL byte is invalid JSON.
 *
 * Internal to protocol/. Pure functions, callable from any thread.
 */
#ifndef WSGATE_JSON_H
#define WSGATE_JSON_H

#include "proto.h"

/* jansson's parser refuses values nested deeper than this (the root
 * value is at level 1). */
#define PROTO_JSON_PARSE_MAX_LEVEL 2048

typedef enum {
    PROTO_JSON_ABSENT = 0,
    PROTO_JSON_NULL,
    PROTO_JSON_BOOL,
    PROTO_JSON_UINT, /* an integer >= 0 (JSON "-0" too) */
    PROTO_JSON_NEG,  /* an integer < 0 */
    PROTO_JSON_REAL,
    PROTO_JSON_STR,
    PROTO_JSON_ARRAY,
    PROTO_JSON_OBJECT,
} proto_json_kind_t;

/* Strings of the "small" root members up to this long are kept in the
 * field itself, not in out. */
#define PROTO_JSON_SMALL_MAX 64

/* One member of the root object, as proto_json_decode_root() found it. */
typedef struct {
    proto_json_kind_t kind;
    uint64_t u;      /* BOOL: 0/1; UINT: the value */
    size_t off, len; /* STR: the unescaped bytes at payload(out) + off (or
                        in buf when inl); the msgpack member: its msgpack
                        value at payload(out) + off */
    bool small;      /* set by proto_json_decode_root() from small_mask */
    bool inl;        /* STR: the bytes are buf[0..len) */
    uint8_t buf[PROTO_JSON_SMALL_MAX];
} proto_json_field_t;

typedef enum {
    PROTO_JSON_OK = 0,
    PROTO_JSON_INVALID,    /* not JSON (as jansson saw it) */
    PROTO_JSON_NOT_OBJECT, /* valid JSON whose root is not an object */
    PROTO_JSON_TOO_DEEP,   /* valid, but a container nests past max_level */
    PROTO_JSON_NOMEM,
} proto_json_rc_t;

/*
 * Parses one JSON text whose root should be an object. For the root
 * member whose key is names[i] (i < n), fields[i] says what its value was;
 * strings are unescaped into out, or, for the members whose bit is set in
 * small_mask (1 << i) and strings of at most PROTO_JSON_SMALL_MAX bytes,
 * into fields[i].buf. The member names[mpk_index] is instead
 * transcoded to one msgpack value into out (any kind). Other members are
 * validated only. Containers at nesting level > max_level (the root object
 * is level 1) make PROTO_JSON_TOO_DEEP, once the whole text is known to be
 * valid. fields are filled even then. out is appended to; on failure its
 * length may have grown (the caller resets it).
 */
proto_json_rc_t proto_json_decode_root(const uint8_t *in, size_t len, const char *const *names,
                                       size_t n, size_t mpk_index, uint32_t small_mask,
                                       unsigned max_level, proto_json_field_t *fields,
                                       proto_buf_t *out);

/* Appends s as a JSON string, escaped as jansson's compact output does
 * ('"', '\\', and the control characters; "/" and non-ASCII as they
 * are). s must be valid UTF-8 (the caller checks). -1: out of memory. */
int proto_json_put_str(proto_buf_t *out, const uint8_t *s, size_t len);

/* Appends v in decimal. -1: out of memory. */
int proto_json_put_uint(proto_buf_t *out, uint64_t v);

/*
 * Appends one msgpack value (exactly the whole span) as JSON text, nested
 * at most max_depth containers deep. PROTO_MALFORMED for what JSON cannot
 * carry (bin, ext, non-string or invalid UTF-8 or repeated map keys,
 * invalid UTF-8 strings, integers over 2^63-1, NaN, infinities) and for
 * malformed msgpack; PROTO_TOO_BIG past max_depth; PROTO_NOMEM. On failure
 * out->len is as it was.
 */
proto_rc_t proto_json_put_mpk(proto_buf_t *out, proto_span_t mpk, unsigned max_depth);

#endif
