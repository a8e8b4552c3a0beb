/*
 * fanout.c - publications, deliveries and their accounting (fanout.h).
 *
 * Subscribers read every delivery of a run: at hundreds of thousands a
 * second the client must not be what limits the measurement, so the JSON
 * the gateway writes is read in place, without a JSON parser; anything
 * in another layout still parses, through wsproto's converter.
 */
#include "fanout.h"

#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "mpk.h"

uint64_t
ld_fan_epoch(proto_span_t epoch)
{
    uint64_t h = 0xcbf29ce484222325ull;
    size_t i;

    for (i = 0; i < epoch.len; i++) {
        h ^= epoch.ptr[i];
        h *= 0x100000001b3ull;
    }
    return h == LD_FAN_EPOCH_NONE ? 1 : h;
}

/* ------------------------------------------------------- publications --- */

int
ld_fan_pub_request(proto_enc_t enc, const char *channel, uint64_t id, uint32_t publisher,
                   uint64_t seq, uint64_t t_ns, proto_span_t pad, proto_buf_t *out)
{
    char num[96];
    int n;

    if (enc == PROTO_ENC_MSGPACK) {
        if (mpk_write_map(out, 4) || mpk_write_cstr(out, "op") || mpk_write_cstr(out, "pub") ||
            mpk_write_cstr(out, "id") || mpk_write_uint(out, id) ||
            mpk_write_cstr(out, "channel") || mpk_write_cstr(out, channel) ||
            mpk_write_cstr(out, "data") || mpk_write_array(out, pad.len ? 4 : 3) ||
            mpk_write_uint(out, publisher) || mpk_write_uint(out, seq) ||
            mpk_write_uint(out, t_ns) || (pad.len && mpk_write_str(out, pad.ptr, pad.len)))
            return -1;
        return 0;
    }
    /* channel names are [A-Za-z0-9_.:@/=+-], the padding letters: nothing
     * to escape */
    n = snprintf(num, sizeof(num), "%" PRIu64, id);
    if (proto_buf_append(out, "{\"op\":\"pub\",\"id\":", 17) ||
        proto_buf_append(out, num, (size_t)n) || proto_buf_append(out, ",\"channel\":\"", 12) ||
        proto_buf_append(out, channel, strlen(channel)))
        return -1;
    n = snprintf(num, sizeof(num), "\",\"data\":[%" PRIu32 ",%" PRIu64 ",%" PRIu64, publisher, seq,
                 t_ns);
    if (proto_buf_append(out, num, (size_t)n))
        return -1;
    if (pad.len && (proto_buf_append(out, ",\"", 2) || proto_buf_append(out, pad.ptr, pad.len) ||
                    proto_buf_append(out, "\"", 1)))
        return -1;
    return proto_buf_append(out, "]}", 2);
}

/* ---------------------------------------------------------- deliveries --- */

typedef struct {
    const uint8_t *p, *end;
} s_scan_t;

static bool
s_lit(s_scan_t *s, const char *lit)
{
    size_t n = strlen(lit);

    if ((size_t)(s->end - s->p) < n || memcmp(s->p, lit, n))
        return false;
    s->p += n;
    return true;
}

/* A string's bytes up to its closing quote, which is passed; false on a
 * backslash (an escape: left to the converter) or the end. */
static bool
s_str(s_scan_t *s, proto_span_t *out)
{
    const uint8_t *q = s->p;

    while (q < s->end && *q != '"') {
        if (*q == '\\')
            return false;
        q++;
    }
    if (q == s->end)
        return false;
    *out = proto_span(s->p, (size_t)(q - s->p));
    s->p = q + 1;
    return true;
}

static bool
s_uint(s_scan_t *s, uint64_t *out)
{
    uint64_t v = 0;
    int n = 0;

    while (s->p < s->end && *s->p >= '0' && *s->p <= '9' && n < 19) {
        v = v * 10 + (uint64_t)(*s->p++ - '0');
        n++;
    }
    if (!n || (s->p < s->end && *s->p >= '0' && *s->p <= '9'))
        return false;
    *out = v;
    return true;
}

/* The gateway's layout, read in place. true: *m filled; false: not this
 * layout (the caller falls back to the converter). */
static bool
s_json_fast(const uint8_t *p, size_t len, ld_fan_msg_t *m)
{
    s_scan_t s = {p, p + len};
    proto_span_t epoch, user;
    uint64_t pub;

    if (!len || p[len - 1] != '}' || !s_lit(&s, "{\"v\":1,\"op\":\"msg\",\"channel\":\"") ||
        !s_str(&s, &m->channel) || !s_lit(&s, ",\"epoch\":\"") || !s_str(&s, &epoch) ||
        !s_lit(&s, ",\"offset\":") || !s_uint(&s, &m->offset))
        return false;
    if (s_lit(&s, ",\"user\":\"") && !s_str(&s, &user))
        return false;
    if (!s_lit(&s, ",\"data\":[") || !s_uint(&s, &pub) || pub > UINT32_MAX || !s_lit(&s, ",") ||
        !s_uint(&s, &m->seq) || !s_lit(&s, ",") || !s_uint(&s, &m->t_ns))
        return false;
    if (!s_lit(&s, "]") && !s_lit(&s, ","))
        return false;
    m->publisher = (uint32_t)pub;
    m->epoch = ld_fan_epoch(epoch);
    return true;
}

static bool
s_key(proto_span_t k, const char *name)
{
    return k.len == strlen(name) && !memcmp(k.ptr, name, k.len);
}

/* The envelope as msgpack. */
static ld_fan_kind_t
s_mpk(proto_span_t in, ld_fan_msg_t *m)
{
    proto_span_t k, op = {0}, epoch = {0}, data = {0};
    bool have_offset = false;
    mpk_reader_t rd, dr;
    mpk_item_t it;
    uint64_t v[3];
    uint32_t n, i;

    m->channel = proto_span(NULL, 0);
    mpk_reader_init(&rd, in.ptr, in.len);
    if (mpk_read_map(&rd, &n) != PROTO_OK)
        return LD_FAN_MALFORMED;
    for (i = 0; i < n; i++) {
        if (mpk_read_str(&rd, &k) != PROTO_OK)
            return LD_FAN_MALFORMED;
        if (s_key(k, "op") || s_key(k, "channel") || s_key(k, "epoch")) {
            proto_span_t *dst = s_key(k, "op") ? &op : s_key(k, "epoch") ? &epoch : &m->channel;

            if (mpk_read_str(&rd, dst) != PROTO_OK)
                return LD_FAN_MALFORMED;
        } else if (s_key(k, "offset")) {
            if (mpk_read(&rd, &it) != PROTO_OK || it.type != MPK_UINT)
                return LD_FAN_MALFORMED;
            m->offset = it.v.u;
            have_offset = true;
        } else if (s_key(k, "data")) {
            if (mpk_skip(&rd, MPK_MAX_DEPTH, &data) != PROTO_OK)
                return LD_FAN_MALFORMED;
        } else if (mpk_skip(&rd, MPK_MAX_DEPTH, NULL) != PROTO_OK) {
            return LD_FAN_MALFORMED;
        }
    }
    if (!s_key(op, "msg"))
        return op.len ? LD_FAN_OTHER : LD_FAN_MALFORMED;
    if (!have_offset || !epoch.ptr || !m->channel.ptr)
        return LD_FAN_MALFORMED;
    mpk_reader_init(&dr, data.ptr, data.len);
    if (mpk_read_array(&dr, &n) != PROTO_OK || n < 3)
        return LD_FAN_FOREIGN;
    for (i = 0; i < 3; i++) {
        if (mpk_read(&dr, &it) != PROTO_OK || it.type != MPK_UINT)
            return LD_FAN_FOREIGN;
        v[i] = it.v.u;
    }
    if (v[0] > UINT32_MAX)
        return LD_FAN_FOREIGN;
    m->publisher = (uint32_t)v[0];
    m->seq = v[1];
    m->t_ns = v[2];
    m->epoch = ld_fan_epoch(epoch);
    return LD_FAN_MSG;
}

ld_fan_kind_t
ld_fan_parse(proto_enc_t enc, const uint8_t *p, size_t len, proto_buf_t *scratch, ld_fan_msg_t *m)
{
    static const char head[] = "{\"v\":1,\"op\":\"";
    const size_t hl = sizeof(head) - 1;

    memset(m, 0, sizeof(*m));
    if (enc == PROTO_ENC_JSON) {
        if (s_json_fast(p, len, m))
            return LD_FAN_MSG;
        /* replies and presence events in the gateway's layout */
        if (len > hl + 4 && !memcmp(p, head, hl) && memcmp(p + hl, "msg\"", 4))
            return LD_FAN_OTHER;
        proto_buf_reset(scratch);
        if (proto_json_to_mpk(p, len, scratch) != PROTO_OK)
            return LD_FAN_MALFORMED;
        return s_mpk(proto_span(proto_buf_payload(scratch), scratch->len), m);
    }
    return s_mpk(proto_span(p, len), m);
}

/* --------------------------------------------------------- accounting --- */

void
ld_fan_sub_init(ld_fan_sub_t *s, uint32_t *seq)
{
    memset(s, 0, sizeof(*s));
    s->seq = seq;
}

void
ld_fan_sub_base(ld_fan_sub_t *s, uint64_t epoch, uint64_t offset)
{
    s->epoch = epoch;
    s->offset = offset;
}

bool
ld_fan_sub_observe(ld_fan_sub_t *s, uint32_t n_pubs, const ld_fan_msg_t *m, ld_fan_counts_t *c)
{
    bool fresh;

    c->deliveries++;
    /* order, from the channel's numbering: every delivery is the one
     * after the last, in the same epoch */
    if (s->epoch == LD_FAN_EPOCH_NONE) {
        /* no base: the first delivery is one */
    } else if (m->epoch != s->epoch) {
        c->out_of_order++;
        c->epoch_changes++;
    } else if (m->offset != s->offset + 1) {
        c->out_of_order++;
    }
    s->epoch = m->epoch;
    s->offset = m->offset;

    /* completeness, from the publishers' numbering */
    if (m->publisher >= n_pubs || m->seq > UINT32_MAX) {
        c->foreign++;
        return false;
    }
    fresh = m->seq > s->seq[m->publisher];
    if (!fresh) {
        c->duplicates++;
        return false;
    }
    s->seq[m->publisher] = (uint32_t)m->seq;
    s->received++;
    return true;
}

/* -------------------------------------------------------------- bursts --- */

void
ld_burst_record(ld_burst_t *b, uint64_t latency_ns)
{
    b->delivered++;
    if (latency_ns > b->max_ns)
        b->max_ns = latency_ns;
    if (!b->min_ns || latency_ns < b->min_ns)
        b->min_ns = latency_ns ? latency_ns : 1;
}

void
ld_burst_merge(ld_burst_t *dst, const ld_burst_t *src)
{
    dst->delivered += src->delivered;
    if (src->max_ns > dst->max_ns)
        dst->max_ns = src->max_ns;
    if (src->min_ns && (!dst->min_ns || src->min_ns < dst->min_ns))
        dst->min_ns = src->min_ns;
}

bool
ld_burst_full(const ld_burst_t *b, uint64_t expected, uint64_t *full_ns)
{
    if (!expected || b->delivered < expected)
        return false;
    *full_ns = b->max_ns;
    return true;
}
