/*
 * json.c - streaming JSON <-> msgpack, byte for byte what the jansson DOM
 * path did (see json.h for the one documented difference).
 *
 * Decoding is a recursive descent over the input: each token is checked
 * and, where the caller wants it, written straight out as msgpack. The
 * rules are jansson 2.14's: RFC 8259 grammar; raw bytes valid UTF-8;
 * escapes \" \\ \/ \b \f \n \r \t \uXXXX with surrogates only in pairs;
 * \u0000 allowed in strings but not in object keys; integers must fit
 * int64; reals that overflow a double are refused; repeated keys are
 * refused at any depth; any value deeper than 2048 levels is refused.
 *
 * msgpack map and array headers need their counts before the elements:
 * a one-byte header is reserved and, for the rare container of 16 or more
 * elements, widened at its end by moving that container's bytes (each
 * byte moves at most once per enclosing big container, and emitting stops
 * at the depth limit, so the work stays proportional to the input).
 *
 * Repeated keys: an object's keys are kept on a stack (pointers into the
 * input, or into an arena for keys that had escapes). The first 16 are
 * compared one by one as they come; bigger objects are sorted once at
 * their end, so checking stays O(n log n).
 */
#include "json.h"
#include "envelope.h" /* proto_utf8_valid, the public converters */
#include "mpk.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Keys compared one by one; past this many an object is sorted at its end. */
#define S_SMALL_KEYS 16

enum { S_OK = 0, S_BAD = -1, S_NOMEM = -2 };

/* ---- output ---- */

/* Room for n more bytes at the end of b, or NULL. */
static inline uint8_t *
s_room(proto_buf_t *b, size_t n)
{
    if (!b->data || b->cap - b->head - b->len < n) {
        if (proto_buf_reserve(b, n) < 0)
            return NULL;
    }
    return b->data + b->head + b->len;
}

static inline int
s_put(proto_buf_t *b, const void *p, size_t n)
{
    uint8_t *d = s_room(b, n);

    if (!d)
        return -1;
    memcpy(d, p, n);
    b->len += n;
    return 0;
}

static inline int
s_put1(proto_buf_t *b, uint8_t c)
{
    uint8_t *d = s_room(b, 1);

    if (!d)
        return -1;
    *d = c;
    b->len++;
    return 0;
}

static inline void
s_be16(uint8_t *d, uint32_t v)
{
    d[0] = (uint8_t)(v >> 8);
    d[1] = (uint8_t)v;
}

static inline void
s_be32(uint8_t *d, uint32_t v)
{
    d[0] = (uint8_t)(v >> 24);
    d[1] = (uint8_t)(v >> 16);
    d[2] = (uint8_t)(v >> 8);
    d[3] = (uint8_t)v;
}

static inline void
s_be64(uint8_t *d, uint64_t v)
{
    s_be32(d, (uint32_t)(v >> 32));
    s_be32(d + 4, (uint32_t)v);
}

/* msgpack writers, choosing the same encodings as msgpack-c's packer. */

static int
s_mpk_uint(proto_buf_t *b, uint64_t v)
{
    uint8_t *d = s_room(b, 9);

    if (!d)
        return -1;
    if (v < 128) {
        d[0] = (uint8_t)v;
        b->len += 1;
    } else if (v < 256) {
        d[0] = 0xcc;
        d[1] = (uint8_t)v;
        b->len += 2;
    } else if (v < 65536) {
        d[0] = 0xcd;
        s_be16(d + 1, (uint32_t)v);
        b->len += 3;
    } else if (v <= UINT32_MAX) {
        d[0] = 0xce;
        s_be32(d + 1, (uint32_t)v);
        b->len += 5;
    } else {
        d[0] = 0xcf;
        s_be64(d + 1, v);
        b->len += 9;
    }
    return 0;
}

/* v < 0 */
static int
s_mpk_neg(proto_buf_t *b, int64_t v)
{
    uint8_t *d = s_room(b, 9);

    if (!d)
        return -1;
    if (v >= -32) {
        d[0] = (uint8_t)(int8_t)v;
        b->len += 1;
    } else if (v >= -128) {
        d[0] = 0xd0;
        d[1] = (uint8_t)(int8_t)v;
        b->len += 2;
    } else if (v >= -32768) {
        d[0] = 0xd1;
        s_be16(d + 1, (uint32_t)(uint16_t)(int16_t)v);
        b->len += 3;
    } else if (v >= INT32_MIN) {
        d[0] = 0xd2;
        s_be32(d + 1, (uint32_t)(int32_t)v);
        b->len += 5;
    } else {
        d[0] = 0xd3;
        s_be64(d + 1, (uint64_t)v);
        b->len += 9;
    }
    return 0;
}

static int
s_mpk_str_hdr(proto_buf_t *b, size_t len)
{
    uint8_t *d;

    if (len > UINT32_MAX || !(d = s_room(b, 5 + len)))
        return -1;
    if (len < 32) {
        d[0] = (uint8_t)(0xa0 | len);
        b->len += 1;
    } else if (len < 256) {
        d[0] = 0xd9;
        d[1] = (uint8_t)len;
        b->len += 2;
    } else if (len < 65536) {
        d[0] = 0xda;
        s_be16(d + 1, (uint32_t)len);
        b->len += 3;
    } else {
        d[0] = 0xdb;
        s_be32(d + 1, (uint32_t)len);
        b->len += 5;
    }
    return 0;
}

/* Writes the count of the container whose one-byte header placeholder is
 * at hdr, widening the header (and moving the elements) when needed.
 * fix: 0x80 (map) or 0x90 (array); h16: 0xde or 0xdc (h32 follows). */
static int
s_mpk_fix_hdr(proto_buf_t *b, size_t hdr, size_t count, uint8_t fix, uint8_t h16)
{
    size_t extra;
    uint8_t *base;

    if (count > UINT32_MAX)
        return S_NOMEM; /* what msgpack-c's packer could not write either */
    if (count < 16) {
        proto_buf_payload(b)[hdr] = (uint8_t)(fix | count);
        return S_OK;
    }
    extra = count < 65536 ? 2 : 4;
    if (!s_room(b, extra))
        return S_NOMEM;
    base = proto_buf_payload(b);
    memmove(base + hdr + 1 + extra, base + hdr + 1, b->len - hdr - 1);
    b->len += extra;
    if (extra == 2) {
        base[hdr] = h16;
        s_be16(base + hdr + 1, (uint32_t)count);
    } else {
        base[hdr] = (uint8_t)(h16 + 1);
        s_be32(base + hdr + 1, (uint32_t)count);
    }
    return S_OK;
}

/* ---- keys of the objects being read (a stack) ---- */

typedef struct {
    const uint8_t *p;
    size_t len;
} s_key_t;

typedef struct {
    s_key_t *v;
    size_t n, cap;
    s_key_t inl[32];
} s_keys_t;

static void
s_keys_init(s_keys_t *ks)
{
    ks->v = ks->inl;
    ks->n = 0;
    ks->cap = sizeof ks->inl / sizeof ks->inl[0];
}

static void
s_keys_fini(s_keys_t *ks)
{
    if (ks->v != ks->inl)
        free(ks->v);
}

static int
s_keys_push(s_keys_t *ks, const uint8_t *p, size_t len)
{
    if (ks->n == ks->cap) {
        size_t cap = ks->cap * 2;
        s_key_t *v;

        if (cap > SIZE_MAX / sizeof *v)
            return -1;
        if (ks->v == ks->inl) {
            v = malloc(cap * sizeof *v);
            if (v)
                memcpy(v, ks->inl, sizeof ks->inl);
        } else {
            v = realloc(ks->v, cap * sizeof *v);
        }
        if (!v)
            return -1;
        ks->v = v;
        ks->cap = cap;
    }
    ks->v[ks->n].p = p;
    ks->v[ks->n].len = len;
    ks->n++;
    return 0;
}

/* True if one of v[from..n) equals p[0..len). */
static bool
s_keys_find(const s_keys_t *ks, size_t from, const uint8_t *p, size_t len)
{
    for (size_t i = from; i < ks->n; i++) {
        if (ks->v[i].len == len && memcmp(ks->v[i].p, p, len) == 0)
            return true;
    }
    return false;
}

static int
s_key_cmp(const void *a, const void *b)
{
    const s_key_t *x = a, *y = b;

    if (x->len != y->len)
        return x->len < y->len ? -1 : 1;
    return x->len ? memcmp(x->p, y->p, x->len) : 0;
}

/* True if v[from..n) holds a key twice (reorders them). */
static bool
s_keys_repeat(s_keys_t *ks, size_t from)
{
    size_t n = ks->n - from;
    s_key_t *v = ks->v + from;

    qsort(v, n, sizeof *v, s_key_cmp);
    for (size_t i = 1; i < n; i++) {
        if (s_key_cmp(&v[i - 1], &v[i]) == 0)
            return true;
    }
    return false;
}

/* ---- lexing ---- */

#define S_ONES 0x0101010101010101ULL
#define S_HIGHS 0x8080808080808080ULL

/* Non-zero if a byte of w is 0 / below n (n <= 128); exact as booleans. */
#define S_HAS_ZERO(w) (((w)-S_ONES) & ~(w)&S_HIGHS)
#define S_HAS_LESS(w, n) (((w)-S_ONES * (n)) & ~(w)&S_HIGHS)

/* Non-zero if w holds '"', '\\' or a control character. */
static inline uint64_t
s_word_escapes(uint64_t w)
{
    return S_HAS_LESS(w, 0x20) | S_HAS_ZERO(w ^ (S_ONES * '"')) | S_HAS_ZERO(w ^ (S_ONES * '\\'));
}

/* Length of the valid UTF-8 sequence (2..4 bytes) at p, or 0. The same
 * rules as proto_utf8_valid() (and jansson): no overlongs, no surrogates,
 * nothing past U+10FFFF. */
static inline size_t
s_utf8_seq(const uint8_t *p, const uint8_t *end)
{
    uint8_t c = p[0], lo = 0x80, hi = 0xbf;
    size_t n;

    if (c < 0xc2 || c > 0xf4)
        return 0;
    if (c < 0xe0)
        return (end - p >= 2 && (p[1] & 0xc0) == 0x80) ? 2 : 0;
    if (c == 0xe0)
        lo = 0xa0;
    else if (c == 0xed)
        hi = 0x9f;
    else if (c == 0xf0)
        lo = 0x90;
    else if (c == 0xf4)
        hi = 0x8f;
    n = c < 0xf0 ? 3 : 4;
    if ((size_t)(end - p) < n || p[1] < lo || p[1] > hi || (p[2] & 0xc0) != 0x80)
        return 0;
    if (n == 4 && (p[3] & 0xc0) != 0x80)
        return 0;
    return n;
}

static inline int
s_hexval(uint8_t c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

/* The 4 hex digits at p (p + 4 <= end checked by the caller), or -1. */
static inline int32_t
s_hex4(const uint8_t *p)
{
    int32_t v = 0;

    for (int i = 0; i < 4; i++) {
        int h = s_hexval(p[i]);
        if (h < 0)
            return -1;
        v = (v << 4) | h;
    }
    return v;
}

static inline size_t
s_utf8_len(uint32_t cp)
{
    return cp < 0x80 ? 1 : cp < 0x800 ? 2 : cp < 0x10000 ? 3 : 4;
}

static inline size_t
s_utf8_put(uint8_t *d, uint32_t cp)
{
    if (cp < 0x80) {
        d[0] = (uint8_t)cp;
        return 1;
    }
    if (cp < 0x800) {
        d[0] = (uint8_t)(0xc0 | (cp >> 6));
        d[1] = (uint8_t)(0x80 | (cp & 0x3f));
        return 2;
    }
    if (cp < 0x10000) {
        d[0] = (uint8_t)(0xe0 | (cp >> 12));
        d[1] = (uint8_t)(0x80 | ((cp >> 6) & 0x3f));
        d[2] = (uint8_t)(0x80 | (cp & 0x3f));
        return 3;
    }
    d[0] = (uint8_t)(0xf0 | (cp >> 18));
    d[1] = (uint8_t)(0x80 | ((cp >> 12) & 0x3f));
    d[2] = (uint8_t)(0x80 | ((cp >> 6) & 0x3f));
    d[3] = (uint8_t)(0x80 | (cp & 0x3f));
    return 4;
}

/* A scanned JSON string: its raw bytes between the quotes, and what they
 * decode to. */
typedef struct {
    const uint8_t *raw;
    size_t rawlen;
    size_t len; /* decoded bytes */
    bool esc;   /* has escapes: the raw bytes are not the decoded ones */
    bool nul;   /* decodes to a NUL byte somewhere (\u0000) */
} s_str_t;

typedef struct {
    const uint8_t *p, *end;
    size_t in_len;
    proto_buf_t *out;
    unsigned max_level;
    bool too_deep;
    s_keys_t keys;
    /* Unescaped keys of the objects being read. Live keys are disjoint
     * parts of the input and never longer unescaped, so in_len bytes
     * always suffice and the arena never moves. */
    uint8_t *arena;
    size_t arena_len;
    /* root members wanted by proto_json_decode_root() */
    const char *const *names;
    size_t n_names;
    size_t mpk_index;
    proto_json_field_t *fields;
} s_dec_t;

static inline void
s_ws(s_dec_t *d)
{
    while (d->p < d->end && (*d->p == ' ' || *d->p == '\n' || *d->p == '\r' || *d->p == '\t'))
        d->p++;
}

/* Scans the string whose opening quote is at d->p, checking it all. */
static int
s_scan_str(s_dec_t *d, s_str_t *s)
{
    const uint8_t *p = d->p + 1, *end = d->end;
    size_t saved = 0; /* raw bytes that escapes shrink away */
    bool esc = false, nul = false;

    s->raw = p;
    for (;;) {
        uint8_t c;

        while (end - p >= 8) {
            uint64_t w;
            memcpy(&w, p, 8);
            if ((w & S_HIGHS) | s_word_escapes(w))
                break;
            p += 8;
        }
        if (p == end)
            return S_BAD;
        c = *p;
        if (c == '"')
            break;
        if (c >= 0x80) {
            size_t n = s_utf8_seq(p, end);
            if (!n)
                return S_BAD;
            p += n;
            continue;
        }
        if (c < 0x20)
            return S_BAD;
        if (c != '\\') {
            p++;
            continue;
        }
        esc = true;
        if (end - p < 2)
            return S_BAD;
        switch (p[1]) {
        case '"':
        case '\\':
        case '/':
        case 'b':
        case 'f':
        case 'n':
        case 'r':
        case 't':
            p += 2;
            saved += 1;
            continue;
        case 'u':
            break;
        default:
            return S_BAD;
        }
        int32_t cp;
        if (end - p < 6 || (cp = s_hex4(p + 2)) < 0)
            return S_BAD;
        p += 6;
        if (cp >= 0xd800 && cp <= 0xdbff) {
            int32_t lo;
            if (end - p < 6 || p[0] != '\\' || p[1] != 'u' || (lo = s_hex4(p + 2)) < 0 ||
                lo < 0xdc00 || lo > 0xdfff)
                return S_BAD;
            p += 6;
            saved += 12 - 4;
            continue;
        }
        if (cp >= 0xdc00 && cp <= 0xdfff)
            return S_BAD;
        if (cp == 0)
            nul = true;
        saved += 6 - s_utf8_len((uint32_t)cp);
    }
    s->rawlen = (size_t)(p - s->raw);
    s->len = s->rawlen - saved;
    s->esc = esc;
    s->nul = nul;
    d->p = p + 1;
    return S_OK;
}

/* Writes the s->len decoded bytes of a scanned string to dst. */
static void
s_unescape(uint8_t *dst, const s_str_t *s)
{
    const uint8_t *p = s->raw, *end = s->raw + s->rawlen;

    if (!s->esc) {
        memcpy(dst, p, s->rawlen);
        return;
    }
    while (p < end) {
        const uint8_t *bs = memchr(p, '\\', (size_t)(end - p));
        uint32_t cp;

        if (!bs)
            bs = end;
        memcpy(dst, p, (size_t)(bs - p));
        dst += bs - p;
        p = bs;
        if (p == end)
            break;
        switch (p[1]) {
        case 'b':
            *dst++ = '\b';
            p += 2;
            continue;
        case 'f':
            *dst++ = '\f';
            p += 2;
            continue;
        case 'n':
            *dst++ = '\n';
            p += 2;
            continue;
        case 'r':
            *dst++ = '\r';
            p += 2;
            continue;
        case 't':
            *dst++ = '\t';
            p += 2;
            continue;
        case 'u':
            break;
        default: /* " \ / */
            *dst++ = p[1];
            p += 2;
            continue;
        }
        cp = (uint32_t)s_hex4(p + 2);
        p += 6;
        if (cp >= 0xd800 && cp <= 0xdbff) {
            cp = ((cp - 0xd800) << 10) + ((uint32_t)s_hex4(p + 2) - 0xdc00) + 0x10000;
            p += 6;
        }
        dst += s_utf8_put(dst, cp);
    }
}

static int s_value(s_dec_t *d, unsigned level, bool emit, proto_json_field_t *f);

/* A string value: msgpack when emitting, else its decoded bytes appended
 * to out when f wants it. */
static int
s_string_value(s_dec_t *d, bool emit, proto_json_field_t *f)
{
    s_str_t s;
    int rc = s_scan_str(d, &s);

    if (rc != S_OK)
        return rc;
    if (f) {
        f->kind = PROTO_JSON_STR;
        if (!emit && f->small && s.len <= sizeof f->buf) {
            s_unescape(f->buf, &s);
            f->inl = true;
            f->len = s.len;
        } else if (!emit) {
            uint8_t *dst = s_room(d->out, s.len);
            if (!dst)
                return S_NOMEM;
            s_unescape(dst, &s);
            f->off = d->out->len;
            f->len = s.len;
            d->out->len += s.len;
        }
    }
    if (emit) {
        if (s_mpk_str_hdr(d->out, s.len) < 0)
            return S_NOMEM;
        s_unescape(proto_buf_payload(d->out) + d->out->len, &s);
        d->out->len += s.len;
    }
    return S_OK;
}

static inline bool
s_digit(const uint8_t *p, const uint8_t *end)
{
    return p < end && *p >= '0' && *p <= '9';
}

static int
s_number(s_dec_t *d, bool emit, proto_json_field_t *f)
{
    const uint8_t *s = d->p, *p = d->p, *end = d->end;
    bool neg = false, real = false;

    if (*p == '-') {
        neg = true;
        p++;
    }
    if (p == end)
        return S_BAD;
    if (*p == '0') {
        p++;
        if (s_digit(p, end))
            return S_BAD;
    } else if (s_digit(p, end)) {
        do
            p++;
        while (s_digit(p, end));
    } else {
        return S_BAD;
    }
    if (p < end && *p == '.') {
        real = true;
        p++;
        if (!s_digit(p, end))
            return S_BAD;
        do
            p++;
        while (s_digit(p, end));
    }
    if (p < end && (*p == 'e' || *p == 'E')) {
        real = true;
        p++;
        if (p < end && (*p == '+' || *p == '-'))
            p++;
        if (!s_digit(p, end))
            return S_BAD;
        do
            p++;
        while (s_digit(p, end));
    }
    d->p = p;

    if (!real) {
        uint64_t mag = 0;

        for (const uint8_t *q = s + neg; q < p; q++) {
            unsigned dg = (unsigned)(*q - '0');
            if (mag > (UINT64_MAX - dg) / 10)
                return S_BAD; /* jansson: too big integer */
            mag = mag * 10 + dg;
        }
        if (mag > (uint64_t)INT64_MAX + (neg ? 1 : 0))
            return S_BAD;
        if (neg && mag) {
            int64_t v = mag == (uint64_t)INT64_MAX + 1 ? INT64_MIN : -(int64_t)mag;
            if (f)
                f->kind = PROTO_JSON_NEG;
            return emit && s_mpk_neg(d->out, v) < 0 ? S_NOMEM : S_OK;
        }
        if (f) { /* "-0" too: jansson reads it as the integer 0 */
            f->kind = PROTO_JSON_UINT;
            f->u = mag;
        }
        return emit && s_mpk_uint(d->out, mag) < 0 ? S_NOMEM : S_OK;
    }

    /* strtod needs a terminated copy: use out's spare room, which the
     * double then overwrites. */
    size_t n = (size_t)(p - s);
    uint8_t *tmp = s_room(d->out, n + 9);
    double v;
    uint64_t bits;

    if (!tmp)
        return S_NOMEM;
    memcpy(tmp, s, n);
    tmp[n] = '\0';
    errno = 0;
    v = strtod((const char *)tmp, NULL);
    if ((v == HUGE_VAL || v == -HUGE_VAL) && errno == ERANGE)
        return S_BAD; /* jansson: real number overflow */
    if (f)
        f->kind = PROTO_JSON_REAL;
    if (emit) {
        memcpy(&bits, &v, 8);
        tmp[0] = 0xcb;
        s_be64(tmp + 1, bits);
        d->out->len += 9;
    }
    return S_OK;
}

/* Which wanted root member a key names, or -1. */
static long
s_root_index(const s_dec_t *d, const uint8_t *k, size_t len)
{
    for (size_t i = 0; i < d->n_names; i++) {
        const char *name = d->names[i];
        if (name[0] == (char)(len ? k[0] : 0) && strlen(name) == len && memcmp(name, k, len) == 0)
            return (long)i;
    }
    return -1;
}

static int
s_object(s_dec_t *d, unsigned level, bool emit, bool root)
{
    size_t kfrom = d->keys.n, amark = d->arena_len, hdr = 0, count = 0;
    int rc;

    d->p++; /* '{' */
    if (level > d->max_level) {
        d->too_deep = true;
        emit = false;
    }
    if (emit) {
        hdr = d->out->len;
        if (s_put1(d->out, 0x80) < 0)
            return S_NOMEM;
    }
    s_ws(d);
    if (d->p < d->end && *d->p == '}') {
        d->p++;
        goto out_close;
    }
    for (;;) {
        s_str_t k;
        const uint8_t *kp;

        if (d->p == d->end || *d->p != '"')
            return S_BAD;
        rc = s_scan_str(d, &k);
        if (rc != S_OK)
            return rc;
        if (k.nul)
            return S_BAD; /* jansson: NUL byte in object key not supported */
        kp = k.raw;
        if (k.esc) {
            if (!d->arena && !(d->arena = malloc(d->in_len)))
                return S_NOMEM;
            kp = d->arena + d->arena_len;
            s_unescape(d->arena + d->arena_len, &k);
            d->arena_len += k.len;
        }
        if (count < S_SMALL_KEYS && s_keys_find(&d->keys, kfrom, kp, k.len))
            return S_BAD; /* jansson: duplicate object key */
        if (s_keys_push(&d->keys, kp, k.len) < 0)
            return S_NOMEM;
        if (emit) {
            if (s_mpk_str_hdr(d->out, k.len) < 0)
                return S_NOMEM;
            memcpy(proto_buf_payload(d->out) + d->out->len, kp, k.len);
            d->out->len += k.len;
        }
        s_ws(d);
        if (d->p == d->end || *d->p != ':')
            return S_BAD;
        d->p++;
        if (root) {
            long i = s_root_index(d, kp, k.len);
            if (i < 0) {
                rc = s_value(d, level + 1, false, NULL);
            } else if ((size_t)i == d->mpk_index) {
                proto_json_field_t *f = &d->fields[i];
                size_t start = d->out->len;
                rc = s_value(d, level + 1, true, f);
                f->off = start;
                f->len = d->out->len - start;
            } else {
                rc = s_value(d, level + 1, false, &d->fields[i]);
            }
        } else {
            rc = s_value(d, level + 1, emit, NULL);
        }
        if (rc != S_OK)
            return rc;
        count++;
        s_ws(d);
        if (d->p == d->end)
            return S_BAD;
        if (*d->p == ',') {
            d->p++;
            s_ws(d);
            continue;
        }
        if (*d->p != '}')
            return S_BAD;
        d->p++;
        break;
    }
out_close:
    if (count > S_SMALL_KEYS && s_keys_repeat(&d->keys, kfrom))
        return S_BAD;
    d->keys.n = kfrom;
    d->arena_len = amark;
    return emit ? s_mpk_fix_hdr(d->out, hdr, count, 0x80, 0xde) : S_OK;
}

static int
s_array(s_dec_t *d, unsigned level, bool emit)
{
    size_t hdr = 0, count = 0;
    int rc;

    d->p++; /* '[' */
    if (level > d->max_level) {
        d->too_deep = true;
        emit = false;
    }
    if (emit) {
        hdr = d->out->len;
        if (s_put1(d->out, 0x90) < 0)
            return S_NOMEM;
    }
    s_ws(d);
    if (d->p < d->end && *d->p == ']') {
        d->p++;
        goto out_close;
    }
    for (;;) {
        rc = s_value(d, level + 1, emit, NULL);
        if (rc != S_OK)
            return rc;
        count++;
        s_ws(d);
        if (d->p == d->end)
            return S_BAD;
        if (*d->p == ',') {
            d->p++;
            continue;
        }
        if (*d->p != ']')
            return S_BAD;
        d->p++;
        break;
    }
out_close:
    return emit ? s_mpk_fix_hdr(d->out, hdr, count, 0x90, 0xdc) : S_OK;
}

static int
s_literal(s_dec_t *d, const char *lit, size_t n, uint8_t mpk, bool emit)
{
    if ((size_t)(d->end - d->p) < n || memcmp(d->p, lit, n) != 0)
        return S_BAD;
    d->p += n;
    return emit && s_put1(d->out, mpk) < 0 ? S_NOMEM : S_OK;
}

/* One value at nesting level `level` (the root is 1). emit: append it as
 * msgpack to out. f: say what it was (and, for a string not emitted,
 * append its decoded bytes to out). */
static int
s_value(s_dec_t *d, unsigned level, bool emit, proto_json_field_t *f)
{
    if (level > PROTO_JSON_PARSE_MAX_LEVEL)
        return S_BAD; /* jansson: maximum parsing depth reached */
    s_ws(d);
    if (d->p == d->end)
        return S_BAD;
    switch (*d->p) {
    case '"':
        return s_string_value(d, emit, f);
    case '{':
        if (f)
            f->kind = PROTO_JSON_OBJECT;
        return s_object(d, level, emit, false);
    case '[':
        if (f)
            f->kind = PROTO_JSON_ARRAY;
        return s_array(d, level, emit);
    case 't':
        if (f) {
            f->kind = PROTO_JSON_BOOL;
            f->u = 1;
        }
        return s_literal(d, "true", 4, 0xc3, emit);
    case 'f':
        if (f) {
            f->kind = PROTO_JSON_BOOL;
            f->u = 0;
        }
        return s_literal(d, "false", 5, 0xc2, emit);
    case 'n':
        if (f)
            f->kind = PROTO_JSON_NULL;
        return s_literal(d, "null", 4, 0xc0, emit);
    case '-':
    case '0':
    case '1':
    case '2':
    case '3':
    case '4':
    case '5':
    case '6':
    case '7':
    case '8':
    case '9':
        return s_number(d, emit, f);
    default:
        return S_BAD;
    }
}

static void
s_dec_init(s_dec_t *d, const uint8_t *in, size_t len, proto_buf_t *out, unsigned max_level)
{
    memset(d, 0, sizeof *d);
    d->p = in;
    d->end = len ? in + len : in;
    d->in_len = len;
    d->out = out;
    d->max_level = max_level;
    s_keys_init(&d->keys);
}

static void
s_dec_fini(s_dec_t *d)
{
    s_keys_fini(&d->keys);
    free(d->arena);
}

/* After the root value: only whitespace may follow. */
static int
s_dec_end(s_dec_t *d, int rc)
{
    if (rc != S_OK)
        return rc;
    s_ws(d);
    return d->p == d->end ? S_OK : S_BAD;
}

proto_json_rc_t
proto_json_decode_root(const uint8_t *in, size_t len, const char *const *names, size_t n,
                       size_t mpk_index, uint32_t small_mask, unsigned max_level,
                       proto_json_field_t *fields, proto_buf_t *out)
{
    s_dec_t d;
    bool object;
    int rc;

    for (size_t i = 0; i < n; i++) {
        fields[i].kind = PROTO_JSON_ABSENT;
        fields[i].inl = false;
        fields[i].small = i < 32 && (small_mask >> i & 1);
    }
    s_dec_init(&d, in, len, out, max_level);
    d.names = names;
    d.n_names = n;
    d.mpk_index = mpk_index;
    d.fields = fields;
    s_ws(&d);
    object = d.p < d.end && *d.p == '{';
    rc = s_dec_end(&d, object ? s_object(&d, 1, false, true) : s_value(&d, 1, false, NULL));
    s_dec_fini(&d);
    if (rc == S_NOMEM)
        return PROTO_JSON_NOMEM;
    if (rc != S_OK)
        return PROTO_JSON_INVALID;
    if (!object)
        return PROTO_JSON_NOT_OBJECT;
    return d.too_deep ? PROTO_JSON_TOO_DEEP : PROTO_JSON_OK;
}

proto_rc_t
proto_json_to_mpk(const uint8_t *json, size_t len, proto_buf_t *out)
{
    size_t mark = out->len;
    s_dec_t d;
    int rc;

    s_dec_init(&d, json, len, out, MPK_MAX_DEPTH);
    rc = s_dec_end(&d, s_value(&d, 1, true, NULL));
    s_dec_fini(&d);
    if (rc == S_OK && !d.too_deep)
        return PROTO_OK;
    out->len = mark;
    if (rc == S_NOMEM)
        return PROTO_NOMEM;
    return rc == S_OK ? PROTO_TOO_BIG : PROTO_MALFORMED;
}

/* ---- msgpack -> JSON ---- */

static const char s_hexdig[] = "0123456789ABCDEF";

int
proto_json_put_str(proto_buf_t *out, const uint8_t *s, size_t len)
{
    const uint8_t *p = s, *end = s + len, *run = s;
    uint8_t *d;

    if (s_put1(out, '"') < 0)
        return -1;
    while (p < end) {
        uint8_t c;

        while (end - p >= 8) {
            uint64_t w;
            memcpy(&w, p, 8);
            if (s_word_escapes(w))
                break;
            p += 8;
        }
        if (p == end)
            break;
        c = *p;
        if (c >= 0x20 && c != '"' && c != '\\') {
            p++;
            continue;
        }
        if (p > run && s_put(out, run, (size_t)(p - run)) < 0)
            return -1;
        if (!(d = s_room(out, 6)))
            return -1;
        d[0] = '\\';
        switch (c) {
        case '"':
        case '\\':
            d[1] = c;
            out->len += 2;
            break;
        case '\b':
            d[1] = 'b';
            out->len += 2;
            break;
        case '\f':
            d[1] = 'f';
            out->len += 2;
            break;
        case '\n':
            d[1] = 'n';
            out->len += 2;
            break;
        case '\r':
            d[1] = 'r';
            out->len += 2;
            break;
        case '\t':
            d[1] = 't';
            out->len += 2;
            break;
        default: /* jansson: \u%04X */
            d[1] = 'u';
            d[2] = '0';
            d[3] = '0';
            d[4] = (uint8_t)s_hexdig[c >> 4];
            d[5] = (uint8_t)s_hexdig[c & 15];
            out->len += 6;
            break;
        }
        run = ++p;
    }
    if (p > run && s_put(out, run, (size_t)(p - run)) < 0)
        return -1;
    return s_put1(out, '"');
}

int
proto_json_put_uint(proto_buf_t *out, uint64_t v)
{
    char buf[20];
    size_t i = sizeof buf;

    do {
        buf[--i] = (char)('0' + v % 10);
        v /= 10;
    } while (v);
    return s_put(out, buf + i, sizeof buf - i);
}

static int
s_put_int(proto_buf_t *out, int64_t v)
{
    if (v >= 0)
        return proto_json_put_uint(out, (uint64_t)v);
    if (s_put1(out, '-') < 0)
        return -1;
    return proto_json_put_uint(out, (uint64_t)0 - (uint64_t)v);
}

/* A finite double as jansson prints it with JSON_REAL_PRECISION(17):
 * "%.17g", then ".0" when that reads as an integer, and the exponent
 * without "+" or leading zeros. */
static int
s_put_real(proto_buf_t *out, double v)
{
    char buf[40];
    int n = snprintf(buf, sizeof buf, "%.17g", v);
    size_t len;
    char *start, *end;

    if (n < 0 || (size_t)n >= sizeof buf - 3)
        return -1;
    len = (size_t)n;
    if (!memchr(buf, '.', len) && !memchr(buf, 'e', len)) {
        buf[len++] = '.';
        buf[len++] = '0';
    }
    start = memchr(buf, 'e', len);
    if (start) {
        start++;
        end = start + 1;
        if (*start == '-')
            start++;
        while (end < buf + len && *end == '0')
            end++;
        if (end != start) {
            memmove(start, end, len - (size_t)(end - buf));
            len -= (size_t)(end - start);
        }
    }
    return s_put(out, buf, len);
}

typedef struct {
    proto_buf_t *out;
    s_keys_t keys;
} s_enc_t;

/* Order of failures is the jansson path's, which converted depth first
 * and checked each map key (type, UTF-8, repeat) before its value. */
static proto_rc_t
s_enc_value(s_enc_t *e, mpk_reader_t *r, unsigned depth)
{
    proto_buf_t *out = e->out;
    mpk_item_t it;
    proto_rc_t rc = mpk_read(r, &it);
    int w = 0;

    if (rc != PROTO_OK)
        return rc;
    switch (it.type) {
    case MPK_NIL:
        w = s_put(out, "null", 4);
        break;
    case MPK_BOOL:
        w = it.v.b ? s_put(out, "true", 4) : s_put(out, "false", 5);
        break;
    case MPK_UINT:
        if (it.v.u > (uint64_t)INT64_MAX)
            return PROTO_MALFORMED;
        w = proto_json_put_uint(out, it.v.u);
        break;
    case MPK_INT:
        w = s_put_int(out, it.v.i);
        break;
    case MPK_FLOAT:
        if (!isfinite(it.v.f))
            return PROTO_MALFORMED;
        w = s_put_real(out, it.v.f);
        break;
    case MPK_STR:
        if (!proto_utf8_valid(it.v.s.ptr, it.v.s.len))
            return PROTO_MALFORMED;
        w = proto_json_put_str(out, it.v.s.ptr, it.v.s.len);
        break;
    case MPK_BIN:
    case MPK_EXT:
        return PROTO_MALFORMED;
    case MPK_ARRAY:
        if (depth == 0)
            return PROTO_TOO_BIG;
        if (s_put1(out, '[') < 0)
            return PROTO_NOMEM;
        for (uint32_t i = 0; i < it.v.n; i++) {
            if (i && s_put1(out, ',') < 0)
                return PROTO_NOMEM;
            rc = s_enc_value(e, r, depth - 1);
            if (rc != PROTO_OK)
                return rc;
        }
        w = s_put1(out, ']');
        break;
    case MPK_MAP: {
        size_t kfrom = e->keys.n, own = 0;

        if (depth == 0)
            return PROTO_TOO_BIG;
        if (s_put1(out, '{') < 0)
            return PROTO_NOMEM;
        for (uint32_t i = 0; i < it.v.n; i++) {
            proto_span_t k;

            rc = mpk_read_str(r, &k);
            if (rc != PROTO_OK)
                goto out_map;
            /* a repeated key would silently drop a value in JSON */
            if (!proto_utf8_valid(k.ptr, k.len) ||
                (i < S_SMALL_KEYS && s_keys_find(&e->keys, kfrom, k.ptr, k.len)))
                return PROTO_MALFORMED;
            if (s_keys_push(&e->keys, k.ptr, k.len) < 0)
                return PROTO_NOMEM;
            own++;
            if ((i && s_put1(out, ',') < 0) || proto_json_put_str(out, k.ptr, k.len) < 0 ||
                s_put1(out, ':') < 0)
                return PROTO_NOMEM;
            rc = s_enc_value(e, r, depth - 1);
            if (rc != PROTO_OK)
                goto out_map;
        }
        if (own > S_SMALL_KEYS && s_keys_repeat(&e->keys, kfrom))
            return PROTO_MALFORMED;
        e->keys.n = kfrom;
        w = s_put1(out, '}');
        break;
    out_map:
        /* A key repeated among those read so far failed first in the
         * jansson path, which checked each key as it came. A failed
         * nested map left its keys above ours: drop them. */
        e->keys.n = kfrom + own;
        if (own > S_SMALL_KEYS && s_keys_repeat(&e->keys, kfrom))
            rc = PROTO_MALFORMED;
        e->keys.n = kfrom;
        return rc;
    }
    }
    return w < 0 ? PROTO_NOMEM : PROTO_OK;
}

proto_rc_t
proto_json_put_mpk(proto_buf_t *out, proto_span_t mpk, unsigned max_depth)
{
    size_t mark = out->len;
    mpk_reader_t r;
    s_enc_t e;
    proto_rc_t rc;

    e.out = out;
    s_keys_init(&e.keys);
    mpk_reader_init(&r, mpk.ptr, mpk.len);
    rc = s_enc_value(&e, &r, max_depth);
    s_keys_fini(&e.keys);
    /* the span is the whole value: ending inside it is malformed */
    if (rc == PROTO_NEED_MORE || (rc == PROTO_OK && mpk_reader_left(&r) != 0))
        rc = PROTO_MALFORMED;
    if (rc != PROTO_OK)
        out->len = mark;
    return rc;
}

proto_rc_t
proto_mpk_to_json(proto_span_t mpk, proto_buf_t *out)
{
    return proto_json_put_mpk(out, mpk, MPK_MAX_DEPTH);
}
