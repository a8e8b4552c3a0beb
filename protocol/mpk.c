/*
 * mpk.c - bounded msgpack token reader, and writers over msgpack-c's packer.
 *
 * The reader never trusts a declared length: every str/bin/ext length is
 * checked against the bytes left, and every array/map count against the
 * least number of bytes its elements could take (one per element, two per
 * map pair). So a tiny hostile input can neither make us read past its end
 * nor make a caller pre-size anything from a count it cannot back up.
 */
#include "mpk.h"

#include <string.h>

#include <msgpack.h>

/* mpk_skip() keeps one counter per open container on the stack. Depth
 * limits beyond this are clamped to it; the project's limit is
 * MPK_MAX_DEPTH, far below. */
#define MPK_SKIP_STACK 256

static uint16_t
s_be16(const uint8_t *p)
{
    return (uint16_t)((uint16_t)p[0] << 8 | p[1]);
}

static uint32_t
s_be32(const uint8_t *p)
{
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

static uint64_t
s_be64(const uint8_t *p)
{
    return (uint64_t)s_be32(p) << 32 | s_be32(p + 4);
}

/* Reads an n-byte big-endian length at p (n is 1, 2 or 4). */
static uint32_t
s_len(const uint8_t *p, unsigned n)
{
    if (n == 1)
        return p[0];
    if (n == 2)
        return s_be16(p);
    return s_be32(p);
}

static void
s_set_int(mpk_item_t *out, int64_t v)
{
    if (v >= 0) {
        out->type = MPK_UINT;
        out->v.u = (uint64_t)v;
    } else {
        out->type = MPK_INT;
        out->v.i = v;
    }
}

proto_rc_t
mpk_read(mpk_reader_t *r, mpk_item_t *out)
{
    const uint8_t *p = r->p;
    size_t left = mpk_reader_left(r);
    uint8_t c;
    unsigned lenbytes;
    uint32_t n;
    mpk_type_t type;

    if (left == 0)
        return PROTO_NEED_MORE;
    c = *p++;
    left--;

    if (c <= 0x7f) {
        out->type = MPK_UINT;
        out->v.u = c;
        goto done;
    }
    if (c >= 0xe0) {
        out->type = MPK_INT;
        out->v.i = (int8_t)c;
        goto done;
    }
    if (c <= 0x8f) {
        n = c & 0x0f;
        type = MPK_MAP;
        goto container;
    }
    if (c <= 0x9f) {
        n = c & 0x0f;
        type = MPK_ARRAY;
        goto container;
    }
    if (c <= 0xbf) {
        n = c & 0x1f;
        type = MPK_STR;
        goto bytes;
    }

    switch (c) {
    case 0xc0:
        out->type = MPK_NIL;
        goto done;
    case 0xc2:
    case 0xc3:
        out->type = MPK_BOOL;
        out->v.b = c == 0xc3;
        goto done;
    case 0xc4:
    case 0xc5:
    case 0xc6:
        lenbytes = 1u << (c - 0xc4);
        type = MPK_BIN;
        goto sized_bytes;
    case 0xc7:
    case 0xc8:
    case 0xc9:
        lenbytes = 1u << (c - 0xc7);
        if (left < lenbytes + 1)
            return PROTO_NEED_MORE;
        n = s_len(p, lenbytes);
        p += lenbytes;
        left -= lenbytes;
        goto ext;
    case 0xca: {
        uint32_t bits;
        float f;
        if (left < 4)
            return PROTO_NEED_MORE;
        bits = s_be32(p);
        memcpy(&f, &bits, sizeof f);
        out->type = MPK_FLOAT;
        out->v.f = f;
        p += 4;
        goto done;
    }
    case 0xcb: {
        uint64_t bits;
        double d;
        if (left < 8)
            return PROTO_NEED_MORE;
        bits = s_be64(p);
        memcpy(&d, &bits, sizeof d);
        out->type = MPK_FLOAT;
        out->v.f = d;
        p += 8;
        goto done;
    }
    case 0xcc:
    case 0xcd:
    case 0xce:
    case 0xcf: {
        unsigned w = 1u << (c - 0xcc);
        if (left < w)
            return PROTO_NEED_MORE;
        out->type = MPK_UINT;
        out->v.u = w == 8 ? s_be64(p) : s_len(p, w);
        p += w;
        goto done;
    }
    case 0xd0:
        if (left < 1)
            return PROTO_NEED_MORE;
        s_set_int(out, (int8_t)p[0]);
        p += 1;
        goto done;
    case 0xd1:
        if (left < 2)
            return PROTO_NEED_MORE;
        s_set_int(out, (int16_t)s_be16(p));
        p += 2;
        goto done;
    case 0xd2:
        if (left < 4)
            return PROTO_NEED_MORE;
        s_set_int(out, (int32_t)s_be32(p));
        p += 4;
        goto done;
    case 0xd3:
        if (left < 8)
            return PROTO_NEED_MORE;
        s_set_int(out, (int64_t)s_be64(p));
        p += 8;
        goto done;
    case 0xd4:
    case 0xd5:
    case 0xd6:
    case 0xd7:
    case 0xd8:
        n = 1u << (c - 0xd4);
        goto ext;
    case 0xd9:
    case 0xda:
    case 0xdb:
        lenbytes = 1u << (c - 0xd9);
        type = MPK_STR;
        goto sized_bytes;
    case 0xdc:
    case 0xdd:
        lenbytes = c == 0xdc ? 2 : 4;
        if (left < lenbytes)
            return PROTO_NEED_MORE;
        n = s_len(p, lenbytes);
        p += lenbytes;
        left -= lenbytes;
        type = MPK_ARRAY;
        goto container;
    case 0xde:
    case 0xdf:
        lenbytes = c == 0xde ? 2 : 4;
        if (left < lenbytes)
            return PROTO_NEED_MORE;
        n = s_len(p, lenbytes);
        p += lenbytes;
        left -= lenbytes;
        type = MPK_MAP;
        goto container;
    default: /* 0xc1, never used */
        return PROTO_MALFORMED;
    }

sized_bytes:
    if (left < lenbytes)
        return PROTO_NEED_MORE;
    n = s_len(p, lenbytes);
    p += lenbytes;
    left -= lenbytes;
bytes:
    if (left < n)
        return PROTO_NEED_MORE;
    out->type = type;
    out->v.s = proto_span(p, n);
    p += n;
    goto done;

ext:
    /* p is at the type byte */
    if (left < 1 || left - 1 < n)
        return PROTO_NEED_MORE;
    out->type = MPK_EXT;
    out->v.ext.type = (int8_t)p[0];
    out->v.ext.data = proto_span(p + 1, n);
    p += 1 + (size_t)n;
    goto done;

container:
    /* Each element needs at least one byte, each map pair two: a count that
     * cannot fit is a lie, not a short read. */
    if ((uint64_t)n * (type == MPK_MAP ? 2 : 1) > left)
        return PROTO_MALFORMED;
    out->type = type;
    out->v.n = n;

done:
    r->p = p;
    return PROTO_OK;
}

proto_rc_t
mpk_skip(mpk_reader_t *r, unsigned max_depth, proto_span_t *span)
{
    /* pending[d]: values still to read in the container open at depth d+1 */
    uint64_t pending[MPK_SKIP_STACK];
    unsigned depth = 0;
    const uint8_t *start = r->p;
    mpk_item_t it;
    proto_rc_t rc;

    if (max_depth > MPK_SKIP_STACK)
        max_depth = MPK_SKIP_STACK;

    for (;;) {
        rc = mpk_read(r, &it);
        if (rc != PROTO_OK)
            goto out_rewind;
        if ((it.type == MPK_ARRAY || it.type == MPK_MAP) && it.v.n > 0) {
            if (depth >= max_depth) {
                rc = PROTO_TOO_BIG;
                goto out_rewind;
            }
            pending[depth++] = (uint64_t)it.v.n * (it.type == MPK_MAP ? 2 : 1);
            continue;
        }
        if ((it.type == MPK_ARRAY || it.type == MPK_MAP) && depth >= max_depth) {
            /* an empty container still counts as one level */
            rc = PROTO_TOO_BIG;
            goto out_rewind;
        }
        /* a complete value: close every container it completes */
        while (depth > 0 && --pending[depth - 1] == 0)
            depth--;
        if (depth == 0)
            break;
    }
    if (span)
        *span = proto_span(start, (size_t)(r->p - start));
    return PROTO_OK;

out_rewind:
    r->p = start;
    return rc;
}

proto_rc_t
mpk_validate(const void *buf, size_t len, unsigned max_depth)
{
    mpk_reader_t r;
    proto_rc_t rc;

    mpk_reader_init(&r, buf, len);
    rc = mpk_skip(&r, max_depth, NULL);
    if (rc != PROTO_OK)
        return rc;
    return mpk_reader_left(&r) == 0 ? PROTO_OK : PROTO_MALFORMED;
}

/* Reads one token of the wanted type; the reader stays put otherwise. */
static proto_rc_t
s_read_type(mpk_reader_t *r, mpk_type_t want, mpk_item_t *it)
{
    const uint8_t *start = r->p;
    proto_rc_t rc = mpk_read(r, it);

    if (rc != PROTO_OK)
        return rc;
    if (it->type != want) {
        r->p = start;
        return PROTO_MALFORMED;
    }
    return PROTO_OK;
}

proto_rc_t
mpk_read_uint(mpk_reader_t *r, uint64_t *out)
{
    mpk_item_t it;
    proto_rc_t rc = s_read_type(r, MPK_UINT, &it);

    if (rc == PROTO_OK)
        *out = it.v.u;
    return rc;
}

proto_rc_t
mpk_read_str(mpk_reader_t *r, proto_span_t *out)
{
    mpk_item_t it;
    proto_rc_t rc = s_read_type(r, MPK_STR, &it);

    if (rc == PROTO_OK)
        *out = it.v.s;
    return rc;
}

proto_rc_t
mpk_read_array(mpk_reader_t *r, uint32_t *n)
{
    mpk_item_t it;
    proto_rc_t rc = s_read_type(r, MPK_ARRAY, &it);

    if (rc == PROTO_OK)
        *n = it.v.n;
    return rc;
}

proto_rc_t
mpk_read_map(mpk_reader_t *r, uint32_t *n)
{
    mpk_item_t it;
    proto_rc_t rc = s_read_type(r, MPK_MAP, &it);

    if (rc == PROTO_OK)
        *n = it.v.n;
    return rc;
}

/*
 * Writers. Each one reserves room for its whole encoding first, so the
 * packer's callback cannot fail half way and a failed write appends
 * nothing.
 */

/* Longest header msgpack puts in front of a value or its body. */
#define MPK_HDR_MAX 9

static int
s_pk_append(void *data, const char *buf, size_t len)
{
    return proto_buf_append((proto_buf_t *)data, buf, len);
}

static int
s_pk_begin(proto_buf_t *b, msgpack_packer *pk, size_t body)
{
    if (body > SIZE_MAX - MPK_HDR_MAX || proto_buf_reserve(b, MPK_HDR_MAX + body) < 0)
        return -1;
    msgpack_packer_init(pk, b, s_pk_append);
    return 0;
}

int
mpk_write_nil(proto_buf_t *b)
{
    msgpack_packer pk;

    if (s_pk_begin(b, &pk, 0) < 0)
        return -1;
    return msgpack_pack_nil(&pk);
}

int
mpk_write_bool(proto_buf_t *b, bool v)
{
    msgpack_packer pk;

    if (s_pk_begin(b, &pk, 0) < 0)
        return -1;
    return v ? msgpack_pack_true(&pk) : msgpack_pack_false(&pk);
}

int
mpk_write_uint(proto_buf_t *b, uint64_t v)
{
    msgpack_packer pk;

    if (s_pk_begin(b, &pk, 0) < 0)
        return -1;
    return msgpack_pack_uint64(&pk, v);
}

int
mpk_write_int(proto_buf_t *b, int64_t v)
{
    msgpack_packer pk;

    if (s_pk_begin(b, &pk, 0) < 0)
        return -1;
    return msgpack_pack_int64(&pk, v);
}

int
mpk_write_double(proto_buf_t *b, double v)
{
    msgpack_packer pk;

    if (s_pk_begin(b, &pk, 0) < 0)
        return -1;
    return msgpack_pack_double(&pk, v);
}

int
mpk_write_str(proto_buf_t *b, const void *s, size_t len)
{
    msgpack_packer pk;

    if (len > UINT32_MAX || s_pk_begin(b, &pk, len) < 0)
        return -1;
    if (msgpack_pack_str(&pk, len) < 0)
        return -1;
    return msgpack_pack_str_body(&pk, s, len);
}

int
mpk_write_cstr(proto_buf_t *b, const char *s)
{
    return mpk_write_str(b, s, strlen(s));
}

int
mpk_write_bin(proto_buf_t *b, const void *p, size_t len)
{
    msgpack_packer pk;

    if (len > UINT32_MAX || s_pk_begin(b, &pk, len) < 0)
        return -1;
    if (msgpack_pack_bin(&pk, len) < 0)
        return -1;
    return msgpack_pack_bin_body(&pk, p, len);
}

int
mpk_write_array(proto_buf_t *b, uint32_t n)
{
    msgpack_packer pk;

    if (s_pk_begin(b, &pk, 0) < 0)
        return -1;
    return msgpack_pack_array(&pk, n);
}

int
mpk_write_map(proto_buf_t *b, uint32_t n)
{
    msgpack_packer pk;

    if (s_pk_begin(b, &pk, 0) < 0)
        return -1;
    return msgpack_pack_map(&pk, n);
}

int
mpk_write_raw(proto_buf_t *b, const void *p, size_t len)
{
    return proto_buf_append(b, p, len);
}
