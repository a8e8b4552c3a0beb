/*
 * backend.c - gateway <-> worker header frames.
 *
 * A header is a msgpack array [version, type, fields...]. The decoder reads
 * the fields of the type in order with exact types, then skips (but still
 * validates) trailing elements it does not know, and insists the frame
 * holds nothing after the array. Lists are walked whole here so that the
 * iterators in backend.h can trust them.
 */
#include "backend.h"
#include "envelope.h"
#include "mpk.h"

#include <string.h>

typedef struct {
    mpk_reader_t r;
    uint32_t left; /* array elements not read yet */
    const char **err;
} s_dec_t;

static proto_rc_t
s_fail(s_dec_t *d, proto_rc_t rc, const char *why)
{
    *d->err = why;
    return rc;
}

/* Takes the next element slot; fails if the array has no more. */
static proto_rc_t
s_next(s_dec_t *d)
{
    if (d->left == 0)
        return s_fail(d, PROTO_MALFORMED, "missing field");
    d->left--;
    return PROTO_OK;
}

static proto_rc_t
s_uint(s_dec_t *d, uint64_t *out, const char *what)
{
    if (s_next(d) != PROTO_OK)
        return PROTO_MALFORMED;
    if (mpk_read_uint(&d->r, out) != PROTO_OK)
        return s_fail(d, PROTO_MALFORMED, what);
    return PROTO_OK;
}

static proto_rc_t
s_u32(s_dec_t *d, uint32_t *out, const char *what)
{
    uint64_t v;

    if (s_uint(d, &v, what) != PROTO_OK)
        return PROTO_MALFORMED;
    if (v > UINT32_MAX)
        return s_fail(d, PROTO_MALFORMED, what);
    *out = (uint32_t)v;
    return PROTO_OK;
}

/* A string of min..max bytes; longer is TOO_BIG. */
static proto_rc_t
s_str(s_dec_t *d, proto_span_t *out, size_t min, size_t max, const char *what)
{
    if (s_next(d) != PROTO_OK)
        return PROTO_MALFORMED;
    if (mpk_read_str(&d->r, out) != PROTO_OK || out->len < min)
        return s_fail(d, PROTO_MALFORMED, what);
    if (out->len > max)
        return s_fail(d, PROTO_TOO_BIG, what);
    return PROTO_OK;
}

/* A str field of UTF-8 (docs/backend-protocol.md: every str is UTF-8). */
static proto_rc_t
s_utf8(s_dec_t *d, proto_span_t *out, size_t min, size_t max, const char *what)
{
    proto_rc_t rc = s_str(d, out, min, max, what);

    if (rc == PROTO_OK && !proto_utf8_valid(out->ptr, out->len))
        rc = s_fail(d, PROTO_MALFORMED, what);
    return rc;
}

static proto_rc_t
s_id(s_dec_t *d, proto_span_t *out)
{
    return s_utf8(d, out, 1, PROTO_BK_WORKER_ID_MAX, "invalid id");
}

static proto_rc_t
s_svc(s_dec_t *d, proto_span_t *out)
{
    /* an over-long name is an invalid name, not a size problem */
    proto_rc_t rc = s_str(d, out, 1, SIZE_MAX, "invalid svc");

    if (rc == PROTO_OK && !proto_svc_valid(*out))
        rc = s_fail(d, PROTO_MALFORMED, "invalid svc");
    return rc;
}

static proto_rc_t
s_key(s_dec_t *d, proto_span_t *out)
{
    return s_utf8(d, out, 0, PROTO_KEY_MAX, "invalid key");
}

/* Error messages and close reasons reach clients as JSON or in a
 * websocket close frame, both of which need UTF-8 too. */
static proto_rc_t
s_text(s_dec_t *d, proto_span_t *out)
{
    return s_utf8(d, out, 0, PROTO_BK_TEXT_MAX, "invalid text");
}

/* A channel name: the character set is the gateway's concern (envelope.h);
 * here it is UTF-8 of 1..PROTO_BK_CHANNEL_MAX bytes. */
static proto_rc_t
s_channel(s_dec_t *d, proto_span_t *out)
{
    return s_utf8(d, out, 1, PROTO_BK_CHANNEL_MAX, "invalid channel");
}

static proto_rc_t
s_user(s_dec_t *d, proto_span_t *out)
{
    return s_utf8(d, out, 0, PROTO_BK_USER_MAX, "invalid user");
}

static proto_rc_t
s_epoch(s_dec_t *d, proto_span_t *out)
{
    return s_utf8(d, out, 0, PROTO_BK_EPOCH_MAX, "invalid epoch");
}

static proto_rc_t
s_code(s_dec_t *d, proto_span_t *out)
{
    proto_rc_t rc = s_str(d, out, 1, SIZE_MAX, "invalid code");

    if (rc == PROTO_OK && !proto_code_valid(*out))
        rc = s_fail(d, PROTO_MALFORMED, "invalid code");
    return rc;
}

/* HELLO's services or SEND's connections: an array whose elements are all
 * service names (want_str) or all uints. hdr->list spans the elements. */
static proto_rc_t
s_list(s_dec_t *d, proto_bk_t *hdr, bool want_str, uint32_t max)
{
    const char *what = want_str ? "invalid service list" : "invalid target list";
    const uint8_t *start;
    uint32_t n;

    if (s_next(d) != PROTO_OK)
        return PROTO_MALFORMED;
    if (mpk_read_array(&d->r, &n) != PROTO_OK)
        return s_fail(d, PROTO_MALFORMED, what);
    if (n > max)
        return s_fail(d, PROTO_TOO_BIG, want_str ? "too many services" : "too many targets");
    start = d->r.p;
    for (uint32_t i = 0; i < n; i++) {
        proto_span_t s;
        uint64_t u;
        if (want_str ? mpk_read_str(&d->r, &s) != PROTO_OK || !proto_svc_valid(s)
                     : mpk_read_uint(&d->r, &u) != PROTO_OK)
            return s_fail(d, PROTO_MALFORMED, what);
    }
    hdr->list = proto_span(start, (size_t)(d->r.p - start));
    hdr->list_count = n;
    return PROTO_OK;
}

/* HELLO's optional per-service flags: uints, exactly one per service. */
static proto_rc_t
s_svc_flags(s_dec_t *d, proto_bk_t *hdr)
{
    const uint8_t *start;
    uint32_t n;

    if (s_next(d) != PROTO_OK)
        return PROTO_MALFORMED;
    if (mpk_read_array(&d->r, &n) != PROTO_OK || n != hdr->list_count)
        return s_fail(d, PROTO_MALFORMED, "invalid service flags");
    start = d->r.p;
    for (uint32_t i = 0; i < n; i++) {
        uint64_t u;

        if (mpk_read_uint(&d->r, &u) != PROTO_OK || u > UINT32_MAX)
            return s_fail(d, PROTO_MALFORMED, "invalid service flags");
    }
    hdr->svc_flags = proto_span(start, (size_t)(d->r.p - start));
    hdr->svc_flags_count = n;
    return PROTO_OK;
}

/* Reads the fields of hdr->type in order. Each reader sets *err; the first
 * failure's code is returned as is, so TOO_BIG stays TOO_BIG. */
static proto_rc_t
s_fields(s_dec_t *d, proto_bk_t *h)
{
    proto_rc_t rc = PROTO_OK;

#define S_FIELD(call)                                                                              \
    do {                                                                                           \
        if ((rc = (call)) != PROTO_OK)                                                             \
            return rc;                                                                             \
    } while (0)

    switch (h->type) {
    case PROTO_BK_HELLO:
        S_FIELD(s_id(d, &h->id));
        S_FIELD(s_list(d, h, true, PROTO_BK_MAX_SERVICES));
        if (d->left > 0)
            S_FIELD(s_svc_flags(d, h));
        break;
    case PROTO_BK_DRAIN:
    case PROTO_BK_BYE:
    case PROTO_BK_DRAINING:
        break;
    case PROTO_BK_REPLY:
        S_FIELD(s_uint(d, &h->rid, "invalid rid"));
        break;
    case PROTO_BK_ERROR:
        S_FIELD(s_uint(d, &h->rid, "invalid rid"));
        S_FIELD(s_code(d, &h->code));
        S_FIELD(s_text(d, &h->text));
        break;
    case PROTO_BK_SEND:
        S_FIELD(s_list(d, h, false, PROTO_BK_MAX_TARGETS));
        S_FIELD(s_u32(d, &h->flags, "invalid flags"));
        S_FIELD(s_svc(d, &h->svc));
        break;
    case PROTO_BK_CLOSE:
        S_FIELD(s_uint(d, &h->conn, "invalid conn"));
        S_FIELD(s_u32(d, &h->close_code, "invalid close code"));
        S_FIELD(s_text(d, &h->text));
        break;
    case PROTO_BK_WELCOME:
        S_FIELD(s_id(d, &h->id));
        if (d->left > 0) /* conn_floor, since WELCOME had 3 fields */
            S_FIELD(s_uint(d, &h->conn, "invalid conn floor"));
        break;
    case PROTO_BK_OPEN:
        S_FIELD(s_uint(d, &h->conn, "invalid conn"));
        S_FIELD(s_svc(d, &h->svc));
        S_FIELD(s_key(d, &h->key));
        S_FIELD(s_u32(d, &h->flags, "invalid flags"));
        break;
    case PROTO_BK_REQ:
        S_FIELD(s_uint(d, &h->rid, "invalid rid"));
        S_FIELD(s_uint(d, &h->conn, "invalid conn"));
        S_FIELD(s_svc(d, &h->svc));
        S_FIELD(s_key(d, &h->key));
        S_FIELD(s_u32(d, &h->flags, "invalid flags"));
        if (d->left > 0)
            S_FIELD(s_user(d, &h->user));
        break;
    case PROTO_BK_PUB:
        S_FIELD(s_channel(d, &h->channel));
        S_FIELD(s_u32(d, &h->kind, "invalid kind"));
        if (h->kind > PROTO_BK_PUB_LEAVE)
            return s_fail(d, PROTO_MALFORMED, "invalid kind");
        S_FIELD(s_uint(d, &h->offset, "invalid offset"));
        S_FIELD(s_epoch(d, &h->epoch));
        S_FIELD(s_user(d, &h->user));
        break;
    case PROTO_BK_PUBLISH:
        S_FIELD(s_uint(d, &h->rid, "invalid ref"));
        S_FIELD(s_channel(d, &h->channel));
        break;
    case PROTO_BK_PUBLISHED:
        S_FIELD(s_uint(d, &h->rid, "invalid ref"));
        /* empty code: success */
        S_FIELD(s_str(d, &h->code, 0, SIZE_MAX, "invalid code"));
        if (h->code.len && !proto_code_valid(h->code))
            return s_fail(d, PROTO_MALFORMED, "invalid code");
        S_FIELD(s_text(d, &h->text));
        S_FIELD(s_uint(d, &h->offset, "invalid offset"));
        S_FIELD(s_epoch(d, &h->epoch));
        break;
    case PROTO_BK_CLOSED:
        S_FIELD(s_uint(d, &h->conn, "invalid conn"));
        S_FIELD(s_svc(d, &h->svc));
        S_FIELD(s_key(d, &h->key));
        S_FIELD(s_u32(d, &h->close_code, "invalid close code"));
        break;
    default:
        return s_fail(d, PROTO_MALFORMED, "unknown type");
    }
#undef S_FIELD
    return rc;
}

proto_rc_t
proto_bk_decode(const uint8_t *buf, size_t len, proto_bk_t *hdr, const char **err)
{
    s_dec_t d;
    uint64_t v;
    proto_rc_t rc;

    memset(hdr, 0, sizeof *hdr);
    *err = NULL;
    d.err = err;
    mpk_reader_init(&d.r, buf, len);
    if (mpk_read_array(&d.r, &d.left) != PROTO_OK)
        return s_fail(&d, PROTO_MALFORMED, "header must be an array");

    if (s_uint(&d, &v, "invalid version") != PROTO_OK)
        return PROTO_MALFORMED;
    hdr->version = v > UINT32_MAX ? UINT32_MAX : (uint32_t)v;
    if (v != PROTO_BK_VERSION)
        return s_fail(&d, PROTO_MALFORMED, "unsupported version");
    if (s_u32(&d, &hdr->type, "invalid type") != PROTO_OK)
        return PROTO_MALFORMED;

    rc = s_fields(&d, hdr);
    if (rc != PROTO_OK)
        return rc;

    /* fields added by later revisions: skipped, but still well-formed */
    while (d.left > 0) {
        rc = mpk_skip(&d.r, MPK_MAX_DEPTH, NULL);
        if (rc != PROTO_OK) {
            *err = rc == PROTO_TOO_BIG ? "nesting too deep" : "invalid trailing field";
            return rc == PROTO_TOO_BIG ? PROTO_TOO_BIG : PROTO_MALFORMED;
        }
        d.left--;
    }
    if (mpk_reader_left(&d.r) != 0)
        return s_fail(&d, PROTO_MALFORMED, "trailing bytes after header");
    return PROTO_OK;
}

bool
proto_bk_has_payload(uint32_t type)
{
    return type == PROTO_BK_REPLY || type == PROTO_BK_SEND || type == PROTO_BK_REQ ||
           type == PROTO_BK_PUB || type == PROTO_BK_PUBLISH;
}

bool
proto_bk_next_str(const proto_bk_t *hdr, size_t *pos, proto_span_t *out)
{
    mpk_reader_t r;

    if (!hdr->list.ptr || *pos >= hdr->list.len)
        return false;
    mpk_reader_init(&r, hdr->list.ptr + *pos, hdr->list.len - *pos);
    if (mpk_read_str(&r, out) != PROTO_OK)
        return false;
    *pos = (size_t)(r.p - hdr->list.ptr);
    return true;
}

bool
proto_bk_next_uint(const proto_bk_t *hdr, size_t *pos, uint64_t *out)
{
    mpk_reader_t r;

    if (!hdr->list.ptr || *pos >= hdr->list.len)
        return false;
    mpk_reader_init(&r, hdr->list.ptr + *pos, hdr->list.len - *pos);
    if (mpk_read_uint(&r, out) != PROTO_OK)
        return false;
    *pos = (size_t)(r.p - hdr->list.ptr);
    return true;
}

uint32_t
proto_bk_svc_flags(const proto_bk_t *hdr, uint32_t i)
{
    mpk_reader_t r;
    uint64_t u = 0;

    if (i >= hdr->svc_flags_count)
        return 0;
    /* uints were validated; walk to the i-th (services are at most 64) */
    mpk_reader_init(&r, hdr->svc_flags.ptr, hdr->svc_flags.len);
    for (uint32_t k = 0; k <= i; k++)
        if (mpk_read_uint(&r, &u) != PROTO_OK)
            return 0;
    return (uint32_t)u;
}

/* ---- encoders: each appends a whole header or nothing ----
 *
 * Writes are chained with || so they happen in order and stop at the
 * first failure; s_end() then drops the partial header. */

static int
s_begin(proto_buf_t *out, uint32_t n, proto_bk_type_t type)
{
    return mpk_write_array(out, n) || mpk_write_uint(out, PROTO_BK_VERSION) ||
           mpk_write_uint(out, type);
}

static int
s_str_w(proto_buf_t *out, proto_span_t s)
{
    return mpk_write_str(out, s.ptr, s.len);
}

static int
s_end(proto_buf_t *out, size_t mark, bool failed)
{
    if (failed) {
        out->len = mark;
        return -1;
    }
    return 0;
}

int
proto_bk_encode_hello(proto_buf_t *out, proto_span_t worker_id, const proto_span_t *svcs,
                      const uint32_t *svc_flags, size_t n_svcs)
{
    size_t mark = out->len;
    bool failed;

    if (n_svcs > UINT32_MAX)
        return -1;
    failed = s_begin(out, svc_flags ? 5 : 4, PROTO_BK_HELLO) || s_str_w(out, worker_id) ||
             mpk_write_array(out, (uint32_t)n_svcs);
    for (size_t i = 0; i < n_svcs && !failed; i++)
        failed = s_str_w(out, svcs[i]);
    if (svc_flags && !failed) {
        failed = mpk_write_array(out, (uint32_t)n_svcs);
        for (size_t i = 0; i < n_svcs && !failed; i++)
            failed = mpk_write_uint(out, svc_flags[i]);
    }
    return s_end(out, mark, failed);
}

int
proto_bk_encode_bare(proto_buf_t *out, proto_bk_type_t type)
{
    size_t mark = out->len;

    if (type != PROTO_BK_DRAIN && type != PROTO_BK_BYE && type != PROTO_BK_DRAINING)
        return -1;
    return s_end(out, mark, s_begin(out, 2, type));
}

int
proto_bk_encode_reply(proto_buf_t *out, uint64_t rid)
{
    size_t mark = out->len;

    return s_end(out, mark, s_begin(out, 3, PROTO_BK_REPLY) || mpk_write_uint(out, rid));
}

int
proto_bk_encode_error(proto_buf_t *out, uint64_t rid, proto_span_t code, proto_span_t msg)
{
    size_t mark = out->len;

    return s_end(out, mark,
                 s_begin(out, 5, PROTO_BK_ERROR) || mpk_write_uint(out, rid) ||
                     s_str_w(out, code) || s_str_w(out, msg));
}

int
proto_bk_encode_send(proto_buf_t *out, const uint64_t *conns, size_t n_conns, uint32_t flags,
                     proto_span_t svc)
{
    size_t mark = out->len;
    bool failed;

    if (n_conns > UINT32_MAX)
        return -1;
    failed = s_begin(out, 5, PROTO_BK_SEND) || mpk_write_array(out, (uint32_t)n_conns);
    for (size_t i = 0; i < n_conns && !failed; i++)
        failed = mpk_write_uint(out, conns[i]);
    failed = failed || mpk_write_uint(out, flags) || s_str_w(out, svc);
    return s_end(out, mark, failed);
}

int
proto_bk_encode_close(proto_buf_t *out, uint64_t conn, uint32_t close_code, proto_span_t reason)
{
    size_t mark = out->len;

    return s_end(out, mark,
                 s_begin(out, 5, PROTO_BK_CLOSE) || mpk_write_uint(out, conn) ||
                     mpk_write_uint(out, close_code) || s_str_w(out, reason));
}

int
proto_bk_encode_welcome(proto_buf_t *out, proto_span_t gateway_id, uint64_t conn_floor)
{
    size_t mark = out->len;

    return s_end(out, mark,
                 s_begin(out, 4, PROTO_BK_WELCOME) || s_str_w(out, gateway_id) ||
                     mpk_write_uint(out, conn_floor));
}

int
proto_bk_encode_open(proto_buf_t *out, uint64_t conn, proto_span_t svc, proto_span_t key,
                     uint32_t flags)
{
    size_t mark = out->len;

    return s_end(out, mark,
                 s_begin(out, 6, PROTO_BK_OPEN) || mpk_write_uint(out, conn) || s_str_w(out, svc) ||
                     s_str_w(out, key) || mpk_write_uint(out, flags));
}

int
proto_bk_encode_req(proto_buf_t *out, uint64_t rid, uint64_t conn, proto_span_t svc,
                    proto_span_t key, uint32_t flags, proto_span_t user)
{
    size_t mark = out->len;

    return s_end(out, mark,
                 s_begin(out, user.len ? 8 : 7, PROTO_BK_REQ) || mpk_write_uint(out, rid) ||
                     mpk_write_uint(out, conn) || s_str_w(out, svc) || s_str_w(out, key) ||
                     mpk_write_uint(out, flags) || (user.len && s_str_w(out, user)));
}

int
proto_bk_encode_pub(proto_buf_t *out, proto_span_t channel, uint32_t kind, uint64_t offset,
                    proto_span_t epoch, proto_span_t user)
{
    size_t mark = out->len;

    return s_end(out, mark,
                 s_begin(out, 7, PROTO_BK_PUB) || s_str_w(out, channel) ||
                     mpk_write_uint(out, kind) || mpk_write_uint(out, offset) ||
                     s_str_w(out, epoch) || s_str_w(out, user));
}

int
proto_bk_encode_publish(proto_buf_t *out, uint64_t ref, proto_span_t channel)
{
    size_t mark = out->len;

    return s_end(out, mark,
                 s_begin(out, 4, PROTO_BK_PUBLISH) || mpk_write_uint(out, ref) ||
                     s_str_w(out, channel));
}

int
proto_bk_encode_published(proto_buf_t *out, uint64_t ref, proto_span_t code, proto_span_t msg,
                          uint64_t offset, proto_span_t epoch)
{
    size_t mark = out->len;

    return s_end(out, mark,
                 s_begin(out, 7, PROTO_BK_PUBLISHED) || mpk_write_uint(out, ref) ||
                     s_str_w(out, code) || s_str_w(out, msg) || mpk_write_uint(out, offset) ||
                     s_str_w(out, epoch));
}

int
proto_bk_encode_closed(proto_buf_t *out, uint64_t conn, proto_span_t svc, proto_span_t key,
                       uint32_t close_code)
{
    size_t mark = out->len;

    return s_end(out, mark,
                 s_begin(out, 6, PROTO_BK_CLOSED) || mpk_write_uint(out, conn) ||
                     s_str_w(out, svc) || s_str_w(out, key) || mpk_write_uint(out, close_code));
}
