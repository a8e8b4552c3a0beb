/*
 * token.c - token sources and HS256 minting (token.h).
 *
 * With token.c's HMAC, handshake.c's SHA-1 is the only other use of
 * OpenSSL in the load tool. The JSON of header and payload is written by
 * hand: a handful of fixed members, and jansson would cost the minting
 * path an allocation per member for nothing.
 */
#include "token.h"

#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>

#define LD_SECRET_MIN 32
#define LD_SECRET_MAX 4096
#define LD_CLAIMS_MAX 2048

struct ld_tokens {
    /* file: lines, each NUL-terminated in `text` */
    char *text;
    char **line;
    size_t *line_len;
    size_t n_lines;
    /* minting */
    bool mint;
    ld_token_hs256_t k; /* strings point at the copies below */
    uint8_t *secret;
    char *kid, *sub_prefix, *iss, *aud;
};

/* ------------------------------------------------------------ minting --- */

int
ld_token_b64url(const uint8_t *p, size_t n, char *out, size_t cap)
{
    static const char abc[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    size_t i, o = 0, need = n / 3 * 4 + (n % 3 ? n % 3 + 1 : 0);
    uint32_t v;

    if (need + 1 > cap)
        return -1;
    for (i = 0; i + 3 <= n; i += 3) {
        v = (uint32_t)p[i] << 16 | (uint32_t)p[i + 1] << 8 | p[i + 2];
        out[o++] = abc[v >> 18];
        out[o++] = abc[(v >> 12) & 63];
        out[o++] = abc[(v >> 6) & 63];
        out[o++] = abc[v & 63];
    }
    if (n - i == 1) {
        v = (uint32_t)p[i] << 16;
        out[o++] = abc[v >> 18];
        out[o++] = abc[(v >> 12) & 63];
    } else if (n - i == 2) {
        v = (uint32_t)p[i] << 16 | (uint32_t)p[i + 1] << 8;
        out[o++] = abc[v >> 18];
        out[o++] = abc[(v >> 12) & 63];
        out[o++] = abc[(v >> 6) & 63];
    }
    out[o] = 0;
    return (int)o;
}

/* A bounded text being written; `len` past `cap` means it did not fit. */
typedef struct {
    char *p;
    size_t cap, len;
} s_text_t;

static void
s_put(s_text_t *t, const char *fmt, ...)
{
    va_list ap;
    int n;

    if (t->len >= t->cap)
        return;
    va_start(ap, fmt);
    n = vsnprintf(t->p + t->len, t->cap - t->len, fmt, ap);
    va_end(ap);
    t->len = n < 0 ? t->cap : t->len + (size_t)n;
}

/* s as a JSON string, quotes included. */
static void
s_put_str(s_text_t *t, const char *s)
{
    const unsigned char *c;

    s_put(t, "\"");
    for (c = (const unsigned char *)s; *c; c++) {
        if (*c == '"' || *c == '\\')
            s_put(t, "\\%c", *c);
        else if (*c < 0x20)
            s_put(t, "\\u%04x", *c);
        else
            s_put(t, "%c", *c);
    }
    s_put(t, "\"");
}

int
ld_token_mint_hs256(const ld_token_hs256_t *k, uint64_t index, uint64_t now_s, char *out,
                    size_t cap)
{
    char json[LD_CLAIMS_MAX], sub[160];
    s_text_t t = {json, sizeof(json), 0};
    uint8_t mac[EVP_MAX_MD_SIZE];
    unsigned mac_len = 0;
    int n, m;
    size_t len;

    /* header */
    s_put(&t, "{\"alg\":\"HS256\",\"typ\":\"JWT\",\"kid\":");
    s_put_str(&t, k->kid);
    s_put(&t, "}");
    if (t.len >= t.cap)
        return -1;
    n = ld_token_b64url((const uint8_t *)json, t.len, out, cap);
    if (n < 0 || (size_t)n + 1 >= cap)
        return -1;
    len = (size_t)n;
    out[len++] = '.';

    /* payload */
    t.len = 0;
    if (snprintf(sub, sizeof(sub), "%s%" PRIu64, k->sub_prefix ? k->sub_prefix : "", index) >=
        (int)sizeof(sub))
        return -1;
    s_put(&t, "{\"sub\":");
    s_put_str(&t, sub);
    s_put(&t, ",\"iat\":%" PRIu64 ",\"exp\":%" PRIu64, now_s, now_s + k->ttl_s);
    if (k->iss) {
        s_put(&t, ",\"iss\":");
        s_put_str(&t, k->iss);
    }
    if (k->aud) {
        s_put(&t, ",\"aud\":");
        s_put_str(&t, k->aud);
    }
    if (k->grant_all)
        s_put(&t, ",\"channels\":{\"sub\":[\"*\"],\"pub\":[\"*\"]}");
    s_put(&t, "}");
    if (t.len >= t.cap)
        return -1;
    n = ld_token_b64url((const uint8_t *)json, t.len, out + len, cap - len);
    if (n < 0)
        return -1;
    len += (size_t)n;

    /* signature over the token's own bytes so far */
    if (!HMAC(EVP_sha256(), k->secret, (int)k->secret_len, (const uint8_t *)out, len, mac,
              &mac_len))
        return -1;
    if (len + 1 >= cap)
        return -1;
    out[len++] = '.';
    m = ld_token_b64url(mac, mac_len, out + len, cap - len);
    if (m < 0)
        return -1;
    return (int)(len + (size_t)m);
}

/* ------------------------------------------------------------ sources --- */

static void
s_err(char *err, size_t errsz, const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(err, errsz, fmt, ap);
    va_end(ap);
}

/* The whole file; NULL with err set. */
static char *
s_slurp(const char *path, size_t max, size_t *len, char *err, size_t errsz)
{
    FILE *f = fopen(path, "rb");
    char *buf = NULL;
    size_t n = 0, cap = 0, got;

    if (!f) {
        s_err(err, errsz, "%s: %s", path, strerror(errno));
        return NULL;
    }
    for (;;) {
        if (n + 4096 + 1 > cap) {
            char *nb;

            cap = cap ? cap * 2 : 8192;
            nb = realloc(buf, cap);
            if (!nb) {
                s_err(err, errsz, "%s: out of memory", path);
                goto out_free;
            }
            buf = nb;
        }
        got = fread(buf + n, 1, cap - n - 1, f);
        n += got;
        if (n > max) {
            s_err(err, errsz, "%s: larger than %zu bytes", path, max);
            goto out_free;
        }
        if (got == 0)
            break;
    }
    if (ferror(f)) {
        s_err(err, errsz, "%s: read error", path);
        goto out_free;
    }
    fclose(f);
    buf[n] = 0;
    *len = n;
    return buf;
out_free:
    free(buf);
    fclose(f);
    return NULL;
}

ld_tokens_t *
ld_tokens_new_file(const char *path, char *err, size_t errsz)
{
    ld_tokens_t *t = calloc(1, sizeof(*t));
    size_t len, i, start, cap = 0, ln = 0;
    char *s;

    if (!t) {
        s_err(err, errsz, "out of memory");
        return NULL;
    }
    t->text = s_slurp(path, (size_t)1 << 30, &len, err, errsz);
    if (!t->text)
        goto out_free;
    s = t->text;
    for (start = 0; start <= len; start = i + 1) {
        for (i = start; i < len && s[i] != '\n'; i++)
            ;
        ln++;
        s[i] = 0;
        if (i > start && s[i - 1] == '\r')
            s[i - 1] = 0;
        if (!s[start])
            continue;
        if (strlen(s + start) > LD_TOKEN_MAX) {
            s_err(err, errsz, "%s:%zu: a token longer than %d bytes", path, ln, LD_TOKEN_MAX);
            goto out_free;
        }
        for (const char *c = s + start; *c; c++) {
            /* the token goes into a JSON string unescaped */
            if (*c <= ' ' || *c > '~' || *c == '"' || *c == '\\') {
                s_err(err, errsz, "%s:%zu: a token holds a blank, a quote or a non-ASCII byte",
                      path, ln);
                goto out_free;
            }
        }
        if (t->n_lines == cap) {
            char **nl;
            size_t *nlen;

            cap = cap ? cap * 2 : 64;
            nl = realloc(t->line, cap * sizeof(*nl));
            if (!nl)
                goto out_nomem;
            t->line = nl;
            nlen = realloc(t->line_len, cap * sizeof(*nlen));
            if (!nlen)
                goto out_nomem;
            t->line_len = nlen;
        }
        t->line[t->n_lines] = s + start;
        t->line_len[t->n_lines++] = strlen(s + start);
    }
    if (!t->n_lines) {
        s_err(err, errsz, "%s: no token in it", path);
        goto out_free;
    }
    return t;
out_nomem:
    s_err(err, errsz, "out of memory");
out_free:
    ld_tokens_destroy(&t);
    return NULL;
}

static int
s_dup(char **dst, const char *src)
{
    if (!src)
        return 0;
    *dst = strdup(src);
    return *dst ? 0 : -1;
}

ld_tokens_t *
ld_tokens_new_hs256(const char *secret_path, const ld_token_hs256_t *k, char *err, size_t errsz)
{
    ld_tokens_t *t = calloc(1, sizeof(*t));
    size_t len;

    if (!t) {
        s_err(err, errsz, "out of memory");
        return NULL;
    }
    t->mint = true;
    t->secret = (uint8_t *)s_slurp(secret_path, LD_SECRET_MAX, &len, err, errsz);
    if (!t->secret)
        goto out_free;
    if (len < LD_SECRET_MIN) {
        /* the worker refuses such a key: every token would fail */
        s_err(err, errsz, "%s: %zu bytes; an HS256 secret has at least %d", secret_path, len,
              LD_SECRET_MIN);
        goto out_free;
    }
    t->k = *k;
    t->k.secret = t->secret;
    t->k.secret_len = len;
    if (s_dup(&t->kid, k->kid ? k->kid : "") || s_dup(&t->sub_prefix, k->sub_prefix) ||
        s_dup(&t->iss, k->iss) || s_dup(&t->aud, k->aud)) {
        s_err(err, errsz, "out of memory");
        goto out_free;
    }
    t->k.kid = t->kid;
    t->k.sub_prefix = t->sub_prefix;
    t->k.iss = t->iss;
    t->k.aud = t->aud;
    return t;
out_free:
    ld_tokens_destroy(&t);
    return NULL;
}

void
ld_tokens_destroy(ld_tokens_t **self_p)
{
    ld_tokens_t *t = *self_p;

    if (!t)
        return;
    free(t->text);
    free(t->line);
    free(t->line_len);
    if (t->secret) {
        OPENSSL_cleanse(t->secret, t->k.secret_len);
        free(t->secret);
    }
    free(t->kid);
    free(t->sub_prefix);
    free(t->iss);
    free(t->aud);
    free(t);
    *self_p = NULL;
}

int
ld_tokens_get(const ld_tokens_t *t, uint64_t index, uint64_t now_s, char *buf, size_t cap,
              const char **tok, size_t *len)
{
    int n;

    if (!t->mint) {
        *tok = t->line[index % t->n_lines];
        *len = t->line_len[index % t->n_lines];
        return 0;
    }
    n = ld_token_mint_hs256(&t->k, index, now_s, buf, cap);
    if (n < 0)
        return -1;
    *tok = buf;
    *len = (size_t)n;
    return 0;
}

size_t
ld_tokens_lines(const ld_tokens_t *t)
{
    return t->n_lines;
}
