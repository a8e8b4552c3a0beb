/*
 * fuzz_backend.c - libFuzzer target for backend header decoding.
 *
 * A header that decodes is re-encoded from its fields and must decode to
 * the same fields; its list iterators must yield exactly list_count items.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "backend.h"
#include "mpk.h"

#define CHECK(c)                                                                                   \
    do {                                                                                           \
        if (!(c))                                                                                  \
            abort();                                                                               \
    } while (0)

static bool
s_eq(proto_span_t a, proto_span_t b)
{
    return a.len == b.len && (a.len == 0 || memcmp(a.ptr, b.ptr, a.len) == 0);
}

static int
s_reencode(const proto_bk_t *h, proto_buf_t *out)
{
    proto_span_t svcs[PROTO_BK_MAX_SERVICES];
    static uint64_t conns[PROTO_BK_MAX_TARGETS];
    size_t pos = 0, n = 0;

    switch (h->type) {
    case PROTO_BK_HELLO:
        while (proto_bk_next_str(h, &pos, &svcs[n]))
            n++;
        CHECK(n == h->list_count && pos == h->list.len);
        return proto_bk_encode_hello(out, h->id, svcs, NULL, n);
    case PROTO_BK_REPLY:
        return proto_bk_encode_reply(out, h->rid);
    case PROTO_BK_ERROR:
        return proto_bk_encode_error(out, h->rid, h->code, h->text);
    case PROTO_BK_SEND:
        while (proto_bk_next_uint(h, &pos, &conns[n]))
            n++;
        CHECK(n == h->list_count && pos == h->list.len);
        return proto_bk_encode_send(out, conns, n, h->flags, h->svc);
    case PROTO_BK_CLOSE:
        return proto_bk_encode_close(out, h->conn, h->close_code, h->text);
    case PROTO_BK_WELCOME:
        return proto_bk_encode_welcome(out, h->id, h->conn);
    case PROTO_BK_OPEN:
        return proto_bk_encode_open(out, h->conn, h->svc, h->key, h->flags);
    case PROTO_BK_REQ:
        return proto_bk_encode_req(out, h->rid, h->conn, h->svc, h->key, h->flags, h->user);
    case PROTO_BK_CLOSED:
        return proto_bk_encode_closed(out, h->conn, h->svc, h->key, h->close_code);
    case PROTO_BK_PUB:
        return proto_bk_encode_pub(out, h->channel, h->kind, h->offset, h->epoch, h->user);
    case PROTO_BK_PUBLISH:
        return proto_bk_encode_publish(out, h->rid, h->channel);
    case PROTO_BK_PUBLISHED:
        return proto_bk_encode_published(out, h->rid, h->code, h->text, h->offset, h->epoch);
    }
    abort();
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    proto_bk_t h, h2;
    proto_buf_t out;
    const char *err;
    proto_rc_t rc = proto_bk_decode(data, size, &h, &err);

    if (rc != PROTO_OK) {
        CHECK(err != NULL && (rc == PROTO_MALFORMED || rc == PROTO_TOO_BIG));
        return 0;
    }
    CHECK(h.version == PROTO_BK_VERSION);
    proto_buf_init(&out, 0);
    CHECK(s_reencode(&h, &out) == 0);
    CHECK(proto_bk_decode(proto_buf_payload(&out), out.len, &h2, &err) == PROTO_OK);
    CHECK(h.type == h2.type && h.rid == h2.rid && h.conn == h2.conn && h.flags == h2.flags &&
          h.close_code == h2.close_code && h.list_count == h2.list_count);
    CHECK(s_eq(h.id, h2.id) && s_eq(h.svc, h2.svc) && s_eq(h.key, h2.key) &&
          s_eq(h.code, h2.code) && s_eq(h.text, h2.text));
    CHECK(s_eq(h.user, h2.user) && s_eq(h.channel, h2.channel) && s_eq(h.epoch, h2.epoch) &&
          h.offset == h2.offset && h.kind == h2.kind);
    proto_buf_fini(&out);
    return 0;
}
