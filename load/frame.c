/*
 * frame.c - websocket frame codec and message reassembly (frame.h).
 */
#include "frame.h"

#include <string.h>

size_t
ld_frame_header(uint8_t out[LD_FRAME_HDR_MAX], bool fin, unsigned opcode, uint64_t len,
                const uint8_t mask[4])
{
    uint8_t mbit = mask ? 0x80 : 0;
    size_t n;
    int i;

    out[0] = (uint8_t)((fin ? 0x80 : 0) | (opcode & 0x0f));
    if (len < 126) {
        out[1] = (uint8_t)(mbit | len);
        n = 2;
    } else if (len <= 0xffff) {
        out[1] = mbit | 126;
        out[2] = (uint8_t)(len >> 8);
        out[3] = (uint8_t)len;
        n = 4;
    } else {
        out[1] = mbit | 127;
        for (i = 0; i < 8; i++)
            out[2 + i] = (uint8_t)(len >> (56 - 8 * i));
        n = 10;
    }
    if (mask) {
        memcpy(out + n, mask, 4);
        n += 4;
    }
    return n;
}

void
ld_frame_mask(uint8_t *dst, const uint8_t *src, size_t len, const uint8_t mask[4], size_t offset)
{
    uint8_t m[8];
    uint64_t m64, w;
    size_t i = 0;
    int k;

    for (k = 0; k < 8; k++)
        m[k] = mask[(offset + (size_t)k) % 4];
    memcpy(&m64, m, 8);
    /* 8 bytes at a time: the client masks every byte it sends */
    for (; i + 8 <= len; i += 8) {
        memcpy(&w, src + i, 8);
        w ^= m64;
        memcpy(dst + i, &w, 8);
    }
    for (; i < len; i++)
        dst[i] = src[i] ^ m[i % 8];
}

size_t
ld_frame_encode(uint8_t *out, bool fin, unsigned opcode, const void *payload, size_t len,
                const uint8_t mask[4])
{
    size_t h = ld_frame_header(out, fin, opcode, len, mask);

    if (!len)
        return h;
    if (mask)
        ld_frame_mask(out + h, payload, len, mask, 0);
    else
        memmove(out + h, payload, len);
    return h + len;
}

static bool
s_opcode_known(unsigned op)
{
    return op <= LD_WS_BINARY || (op >= LD_WS_CLOSE && op <= LD_WS_PONG);
}

proto_rc_t
ld_frame_parse(const uint8_t *p, size_t n, uint64_t max_len, ld_frame_t *f)
{
    size_t h = 2;
    uint64_t len;
    int i;

    if (n < 2)
        return PROTO_NEED_MORE;
    f->fin = p[0] & 0x80;
    f->opcode = p[0] & 0x0f;
    f->masked = p[1] & 0x80;
    if (p[0] & 0x70 || !s_opcode_known(f->opcode))
        return PROTO_MALFORMED;
    len = p[1] & 0x7f;
    if (f->opcode >= LD_WS_CLOSE && (!f->fin || len > LD_FRAME_CONTROL_MAX))
        return PROTO_MALFORMED;
    if (len == 126) {
        if (n < 4)
            return PROTO_NEED_MORE;
        len = (uint64_t)p[2] << 8 | p[3];
        h = 4;
    } else if (len == 127) {
        if (n < 10)
            return PROTO_NEED_MORE;
        if (p[2] & 0x80)
            return PROTO_MALFORMED;
        len = 0;
        for (i = 0; i < 8; i++)
            len = len << 8 | p[2 + i];
        h = 10;
    }
    if (len > max_len)
        return PROTO_TOO_BIG;
    if (f->masked) {
        if (n < h + 4)
            return PROTO_NEED_MORE;
        memcpy(f->mask, p + h, 4);
        h += 4;
    }
    f->len = len;
    f->hdr_len = h;
    if (n - h < len)
        return PROTO_NEED_MORE;
    return PROTO_OK;
}

void
ld_frame_reader_init(ld_frame_reader_t *r, size_t max_msg, bool client)
{
    proto_buf_init(&r->frag, 0);
    r->frag_op = 0;
    r->max_msg = max_msg;
    r->client = client;
}

void
ld_frame_reader_fini(ld_frame_reader_t *r)
{
    proto_buf_fini(&r->frag);
    r->frag_op = 0;
}

proto_rc_t
ld_frame_reader_next(ld_frame_reader_t *r, uint8_t *p, size_t n, size_t *used, ld_frame_event_t *ev)
{
    ld_frame_t f;
    uint8_t *payload;
    proto_rc_t rc;

    memset(ev, 0, sizeof(*ev));
    *used = 0;
    /* the last reassembled message was valid until this call: an idle
     * connection keeps no buffer */
    if (!r->frag_op && r->frag.data)
        proto_buf_fini(&r->frag);
    rc = ld_frame_parse(p, n, r->max_msg, &f);
    if (rc != PROTO_OK)
        return rc;
    if (f.masked && r->client)
        return PROTO_MALFORMED;
    payload = p + f.hdr_len;
    if (f.masked)
        ld_frame_mask(payload, payload, (size_t)f.len, f.mask, 0);
    *used = f.hdr_len + (size_t)f.len;

    if (f.opcode >= LD_WS_CLOSE) {
        ev->opcode = f.opcode;
        ev->data = payload;
        ev->len = (size_t)f.len;
        if (f.opcode == LD_WS_CLOSE) {
            if (f.len == 1)
                return PROTO_MALFORMED;
            ev->close_code = f.len >= 2 ? (payload[0] << 8 | payload[1]) : 1005;
        }
        return PROTO_OK;
    }
    if (f.opcode == LD_WS_CONT) {
        if (!r->frag_op)
            return PROTO_MALFORMED;
    } else if (r->frag_op) {
        return PROTO_MALFORMED;
    }
    if (f.opcode != LD_WS_CONT && f.fin) {
        /* a whole message in one frame: used where it lies */
        ev->opcode = f.opcode;
        ev->data = payload;
        ev->len = (size_t)f.len;
        return PROTO_OK;
    }
    if (f.opcode != LD_WS_CONT) {
        r->frag_op = f.opcode;
        proto_buf_reset(&r->frag);
    }
    if (r->frag.len + f.len > r->max_msg)
        return PROTO_TOO_BIG;
    if (proto_buf_append(&r->frag, payload, (size_t)f.len))
        return PROTO_NOMEM;
    if (!f.fin)
        return PROTO_OK;
    ev->opcode = r->frag_op;
    ev->data = proto_buf_payload(&r->frag);
    ev->len = r->frag.len;
    r->frag_op = 0;
    return PROTO_OK;
}
