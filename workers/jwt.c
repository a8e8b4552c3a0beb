/*
 * jwt.c - JWT verification (jwt.h): the key file, strict base64url, the
 * three algorithms on OpenSSL 3 EVP, and the claims on jansson.
 *
 * Error texts are string literals, chosen by the code path, so no token
 * byte can reach a message; the key-file messages name files, sections,
 * kids and settings, never key material.
 */
#include "jwt.h"

#include <errno.h>
#include <limits.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <ini.h>
#include <jansson.h>
#include <openssl/bn.h>
#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/ec.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/param_build.h>
#include <openssl/pem.h>

#define S_MAX_KID 128
/* inih (ini.c) cuts section names to 49 bytes without a word: a section
 * that long may have lost its end, so "key " + 44 is the longest kid a
 * section can carry. Longer kids come from a JWKS. */
#define S_INI_SECTION_MAX 49
#define S_MAX_SECRET 4096     /* bytes read from a secret file */
#define S_MAX_PEM (64 * 1024) /* bytes read from a PEM file */
#define S_B64_MAX ((WK_JWT_MAX_TOKEN / 4) * 3 + 3)
#define S_P256_COORD 32 /* bytes in an ES256 r, s, x or y */

typedef struct {
    char *kid;       /* section name or JWK kid; owned */
    unsigned algs;   /* WK_JWT_* allow-list */
    uint8_t *secret; /* HS: owned, wiped on destroy */
    size_t secret_len;
    EVP_PKEY *pkey; /* RS, ES: owned */
} s_key_t;

struct wk_jwt_keys {
    s_key_t *v;
    size_t n;
    EVP_MD *sha256; /* fetched once: an implicit fetch per token costs a lookup */
};

/* --- base64url --------------------------------------------------------- */

static int
s_b64_val(unsigned char c)
{
    if (c >= 'A' && c <= 'Z')
        return c - 'A';
    if (c >= 'a' && c <= 'z')
        return c - 'a' + 26;
    if (c >= '0' && c <= '9')
        return c - '0' + 52;
    if (c == '-')
        return 62;
    if (c == '_')
        return 63;
    return -1;
}

long
wk_jwt_b64url_decode(const char *src, size_t len, uint8_t *out, size_t cap)
{
    size_t full = len / 4, rest = len % 4, n = 0;
    uint32_t acc;
    int v;

    if (rest == 1 || len > (size_t)LONG_MAX / 3 * 4)
        return -1;
    if (full * 3 + (rest ? rest - 1 : 0) > cap)
        return -1;
    for (size_t i = 0; i < full * 4; i += 4) {
        acc = 0;
        for (size_t j = 0; j < 4; j++) {
            if ((v = s_b64_val((unsigned char)src[i + j])) < 0)
                return -1;
            acc = acc << 6 | (uint32_t)v;
        }
        out[n++] = (uint8_t)(acc >> 16);
        out[n++] = (uint8_t)(acc >> 8);
        out[n++] = (uint8_t)acc;
    }
    if (rest) {
        acc = 0;
        for (size_t j = 0; j < rest; j++) {
            if ((v = s_b64_val((unsigned char)src[full * 4 + j])) < 0)
                return -1;
            acc = acc << 6 | (uint32_t)v;
        }
        /* 2 chars carry 12 bits for 1 byte, 3 chars 18 bits for 2: the
         * bits left over must be zero, or two strings would decode alike. */
        if (rest == 2) {
            if (acc & 0xF)
                return -1;
            out[n++] = (uint8_t)(acc >> 4);
        } else {
            if (acc & 0x3)
                return -1;
            out[n++] = (uint8_t)(acc >> 10);
            out[n++] = (uint8_t)(acc >> 2);
        }
    }
    return (long)n;
}

long
wk_jwt_b64url_encode(const uint8_t *src, size_t len, char *out, size_t cap)
{
    static const char abc[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    size_t need = len / 3 * 4 + (len % 3 ? len % 3 + 1 : 0), n = 0, i;
    uint32_t acc;

    if (need >= cap || len > (size_t)LONG_MAX / 4)
        return -1;
    for (i = 0; i + 3 <= len; i += 3) {
        acc = (uint32_t)src[i] << 16 | (uint32_t)src[i + 1] << 8 | src[i + 2];
        out[n++] = abc[acc >> 18 & 63];
        out[n++] = abc[acc >> 12 & 63];
        out[n++] = abc[acc >> 6 & 63];
        out[n++] = abc[acc & 63];
    }
    if (len - i == 1) {
        acc = (uint32_t)src[i] << 16;
        out[n++] = abc[acc >> 18 & 63];
        out[n++] = abc[acc >> 12 & 63];
    } else if (len - i == 2) {
        acc = (uint32_t)src[i] << 16 | (uint32_t)src[i + 1] << 8;
        out[n++] = abc[acc >> 18 & 63];
        out[n++] = abc[acc >> 12 & 63];
        out[n++] = abc[acc >> 6 & 63];
    }
    out[n] = '\0';
    return (long)n;
}

/* --- algorithms -------------------------------------------------------- */

static const struct {
    const char *name;
    unsigned bit;
} s_algs[] = {{"HS256", WK_JWT_HS256}, {"RS256", WK_JWT_RS256}, {"ES256", WK_JWT_ES256}};

#define S_ALGS_PK (WK_JWT_RS256 | WK_JWT_ES256)

/* The bit of an algorithm name, or 0. Exact, case-sensitive (RFC 7518). */
static unsigned
s_alg_bit(const char *name, size_t len)
{
    for (size_t i = 0; i < sizeof s_algs / sizeof s_algs[0]; i++) {
        if (strlen(s_algs[i].name) == len && memcmp(s_algs[i].name, name, len) == 0)
            return s_algs[i].bit;
    }
    return 0;
}

/* --- key set ----------------------------------------------------------- */

static void
s_key_fini(s_key_t *k)
{
    free(k->kid);
    if (k->secret) {
        OPENSSL_cleanse(k->secret, k->secret_len);
        free(k->secret);
    }
    EVP_PKEY_free(k->pkey);
    memset(k, 0, sizeof *k);
}

void
wk_jwt_keys_destroy(wk_jwt_keys_t **keys_p)
{
    if (!keys_p || !*keys_p)
        return;
    wk_jwt_keys_t *keys = *keys_p;
    for (size_t i = 0; i < keys->n; i++)
        s_key_fini(&keys->v[i]);
    free(keys->v);
    EVP_MD_free(keys->sha256);
    free(keys);
    *keys_p = NULL;
}

size_t
wk_jwt_keys_count(const wk_jwt_keys_t *keys)
{
    return keys ? keys->n : 0;
}

static const s_key_t *
s_key_by_kid(const wk_jwt_keys_t *keys, const char *kid, size_t len)
{
    for (size_t i = 0; i < keys->n; i++) {
        if (strlen(keys->v[i].kid) == len && memcmp(keys->v[i].kid, kid, len) == 0)
            return &keys->v[i];
    }
    return NULL;
}

/* --- loading ----------------------------------------------------------- */

/* Everything the loader carries: the set being built, the section being
 * read, the first error. */
typedef struct {
    wk_jwt_keys_t *keys;
    const char *path;
    char err[768];
    bool err_has_place; /* err already names its place; do not add a line */

    /* the [key NAME] section being read */
    char section[64];
    bool in_key;
    bool has_algs;
    unsigned algs;
    char *secret_file;
    char *pem_file;
} s_load_t;

static void __attribute__((format(printf, 2, 3))) s_fail(s_load_t *c, const char *fmt, ...)
{
    va_list ap;
    if (c->err[0])
        return; /* the first problem is the one to fix */
    va_start(ap, fmt);
    vsnprintf(c->err, sizeof c->err, fmt, ap);
    va_end(ap);
}

/* Appends a key; takes ownership of kid, secret and pkey (freed on error). */
static int
s_add_key(s_load_t *c, char *kid, unsigned algs, uint8_t *secret, size_t secret_len, EVP_PKEY *pkey,
          const char *where)
{
    wk_jwt_keys_t *keys = c->keys;
    s_key_t k = {kid, algs, secret, secret_len, pkey};

    if (s_key_by_kid(keys, kid, strlen(kid))) {
        s_fail(c, "%s: kid '%s' given twice (a kid must name one key)", where, kid);
        goto out_free;
    }
    if (keys->n == WK_JWT_MAX_KEYS) {
        s_fail(c, "%s: more than %d keys", where, WK_JWT_MAX_KEYS);
        goto out_free;
    }
    s_key_t *v = realloc(keys->v, (keys->n + 1) * sizeof *v);
    if (!v) {
        s_fail(c, "%s: out of memory", where);
        goto out_free;
    }
    keys->v = v;
    keys->v[keys->n++] = k;
    return 0;
out_free:
    s_key_fini(&k);
    return -1;
}

/*
 * Reads a whole file of at most max bytes. 0 with an owned *buf (one extra
 * NUL byte after len), or -1 with the problem in c. *others: the file is
 * readable by users other than its owner and group.
 */
static int
s_read_file(s_load_t *c, const char *where, const char *file, size_t max, uint8_t **buf,
            size_t *len, bool *others)
{
    struct stat st;
    uint8_t *b = NULL;
    size_t n = 0;
    FILE *f = fopen(file, "re");

    if (!f) {
        s_fail(c, "%s: %s: %s", where, file, strerror(errno));
        return -1;
    }
    if (fstat(fileno(f), &st) != 0 || !S_ISREG(st.st_mode)) {
        s_fail(c, "%s: %s: not a regular file", where, file);
        goto out_close;
    }
    if (others)
        *others = (st.st_mode & S_IROTH) != 0;
    if ((uint64_t)st.st_size > max) {
        s_fail(c, "%s: %s: larger than %zu bytes", where, file, max);
        goto out_close;
    }
    b = malloc(max + 1);
    if (!b) {
        s_fail(c, "%s: out of memory", where);
        goto out_close;
    }
    n = fread(b, 1, max + 1, f);
    if (ferror(f)) {
        s_fail(c, "%s: %s: read error", where, file);
        goto out_free;
    }
    if (n > max) {
        s_fail(c, "%s: %s: larger than %zu bytes", where, file, max);
        goto out_free;
    }
    b[n] = '\0';
    fclose(f);
    *buf = b;
    *len = n;
    return 0;
out_free:
    OPENSSL_cleanse(b, max + 1);
    free(b);
out_close:
    fclose(f);
    return -1;
}

static void
s_warn_readable(const char *file)
{
    fprintf(stderr,
            "wsgate-worker: warning: %s holds a JWT secret and is readable by others "
            "(chmod 600 it)\n",
            file);
}

/* Checks that pkey fits the allow-list: RS256 an RSA key of at least
 * WK_JWT_MIN_RSA_BITS, ES256 an EC key on P-256. */
static int
s_check_pkey(s_load_t *c, const char *where, EVP_PKEY *pkey, unsigned algs)
{
    if (algs == WK_JWT_RS256) {
        if (!EVP_PKEY_is_a(pkey, "RSA")) {
            s_fail(c, "%s: RS256 needs an RSA public key", where);
            return -1;
        }
        if (EVP_PKEY_get_bits(pkey) < WK_JWT_MIN_RSA_BITS) {
            s_fail(c, "%s: RSA key of %d bits, at least %d required", where,
                   EVP_PKEY_get_bits(pkey), WK_JWT_MIN_RSA_BITS);
            return -1;
        }
        return 0;
    }
    if (algs == WK_JWT_ES256) {
        char group[64];
        if (!EVP_PKEY_is_a(pkey, "EC") ||
            !EVP_PKEY_get_group_name(pkey, group, sizeof group, NULL) ||
            (strcmp(group, "prime256v1") != 0 && strcmp(group, "P-256") != 0)) {
            s_fail(c, "%s: ES256 needs an EC public key on P-256", where);
            return -1;
        }
        return 0;
    }
    /* One public key is RSA or EC, never both. */
    s_fail(c, "%s: algs RS256 and ES256 need different key types: one key per algorithm", where);
    return -1;
}

/* Parses "HS256, RS256" into bits. 0, or -1 with the problem in c. */
static int
s_parse_algs(s_load_t *c, const char *where, const char *val, unsigned *out)
{
    unsigned bits = 0;
    const char *p = val;

    while (*p) {
        while (*p == ' ' || *p == '\t' || *p == ',')
            p++;
        const char *start = p;
        while (*p && *p != ',' && *p != ' ' && *p != '\t')
            p++;
        size_t len = (size_t)(p - start);
        if (len == 0)
            break;
        unsigned bit = s_alg_bit(start, len);
        if (!bit) {
            if (len == 4 && strncasecmp(start, "none", 4) == 0)
                s_fail(c, "%s: algs: 'none' is never allowed", where);
            else
                s_fail(c, "%s: algs: unknown algorithm '%.*s' (HS256, RS256, ES256)", where,
                       (int)len, start);
            return -1;
        }
        bits |= bit;
    }
    if (!bits) {
        s_fail(c, "%s: algs: empty (HS256, RS256, ES256)", where);
        return -1;
    }
    *out = bits;
    return 0;
}

/* Loads the [key NAME] section just read into the set. */
static int
s_finish_key(s_load_t *c)
{
    char where[600];
    uint8_t *buf = NULL;
    size_t len = 0;
    bool others = false;
    int rc = -1;

    if (!c->in_key)
        return 0;
    c->in_key = false;
    snprintf(where, sizeof where, "%s: [%s]", c->path, c->section);
    c->err_has_place = true;
    const char *name = c->section + 4; /* after "key " */

    if (!c->has_algs) {
        s_fail(c, "%s: algs missing (the algorithms this key may verify)", where);
        goto out;
    }
    if ((c->algs & WK_JWT_HS256) && (c->algs & S_ALGS_PK)) {
        s_fail(c,
               "%s: algs mixes HS256 with RS256/ES256: an HMAC secret and a public key "
               "are different keys",
               where);
        goto out;
    }
    if (c->algs == WK_JWT_HS256) {
        if (!c->secret_file || c->pem_file) {
            s_fail(c, "%s: an HS256 key needs secret_file and no pem_file", where);
            goto out;
        }
        if (s_read_file(c, where, c->secret_file, S_MAX_SECRET, &buf, &len, &others) != 0)
            goto out;
        if (len < WK_JWT_MIN_SECRET) {
            s_fail(c, "%s: %s: %zu bytes, an HS256 secret needs at least %d", where, c->secret_file,
                   len, WK_JWT_MIN_SECRET);
            goto out;
        }
        if (others)
            s_warn_readable(c->secret_file);
        char *kid = strdup(name);
        if (!kid) {
            s_fail(c, "%s: out of memory", where);
            goto out;
        }
        rc = s_add_key(c, kid, c->algs, buf, len, NULL, where);
        buf = NULL; /* s_add_key owns it now */
        goto out;
    }

    if (!c->pem_file || c->secret_file) {
        s_fail(c, "%s: an RS256/ES256 key needs pem_file and no secret_file", where);
        goto out;
    }
    if (s_read_file(c, where, c->pem_file, S_MAX_PEM, &buf, &len, NULL) != 0)
        goto out;
    if (strstr((char *)buf, "PRIVATE KEY")) {
        /* Verifying needs only the public half; the private one does not
         * belong on every worker. */
        s_fail(c, "%s: %s holds a private key: give the public key (openssl pkey -pubout)", where,
               c->pem_file);
        goto out;
    }
    BIO *bio = BIO_new_mem_buf(buf, (int)len);
    EVP_PKEY *pkey = bio ? PEM_read_bio_PUBKEY(bio, NULL, NULL, NULL) : NULL;
    BIO_free(bio);
    if (!pkey) {
        s_fail(c, "%s: %s: expected a PEM public key (-----BEGIN PUBLIC KEY-----)", where,
               c->pem_file);
        goto out;
    }
    if (s_check_pkey(c, where, pkey, c->algs) != 0) {
        EVP_PKEY_free(pkey);
        goto out;
    }
    char *kid = strdup(name);
    if (!kid) {
        EVP_PKEY_free(pkey);
        s_fail(c, "%s: out of memory", where);
        goto out;
    }
    rc = s_add_key(c, kid, c->algs, NULL, 0, pkey, where);

out:
    if (buf) {
        OPENSSL_cleanse(buf, len);
        free(buf);
    }
    free(c->secret_file);
    free(c->pem_file);
    c->secret_file = c->pem_file = NULL;
    c->has_algs = false;
    c->algs = 0;
    return rc;
}

/* A base64url JWK member into a fresh buffer. 0, or -1 (message in c). */
static int
s_jwk_b64(s_load_t *c, const char *where, json_t *jwk, const char *member, uint8_t **out,
          size_t *out_len)
{
    json_t *v = json_object_get(jwk, member);
    if (!json_is_string(v)) {
        s_fail(c, "%s: '%s' missing or not a string", where, member);
        return -1;
    }
    size_t slen = json_string_length(v);
    uint8_t *b = malloc(slen / 4 * 3 + 3);
    if (!b) {
        s_fail(c, "%s: out of memory", where);
        return -1;
    }
    long n = wk_jwt_b64url_decode(json_string_value(v), slen, b, slen / 4 * 3 + 3);
    if (n <= 0) {
        free(b);
        s_fail(c, "%s: '%s' is not base64url", where, member);
        return -1;
    }
    *out = b;
    *out_len = (size_t)n;
    return 0;
}

/* An RSA public key from n and e. */
static EVP_PKEY *
s_jwk_rsa(s_load_t *c, const char *where, json_t *jwk)
{
    uint8_t *n = NULL, *e = NULL;
    size_t n_len = 0, e_len = 0;
    BIGNUM *bn_n = NULL, *bn_e = NULL;
    OSSL_PARAM_BLD *bld = NULL;
    OSSL_PARAM *params = NULL;
    EVP_PKEY_CTX *ctx = NULL;
    EVP_PKEY *pkey = NULL;

    if (s_jwk_b64(c, where, jwk, "n", &n, &n_len) != 0 ||
        s_jwk_b64(c, where, jwk, "e", &e, &e_len) != 0)
        goto out;
    bn_n = BN_bin2bn(n, (int)n_len, NULL);
    bn_e = BN_bin2bn(e, (int)e_len, NULL);
    bld = OSSL_PARAM_BLD_new();
    if (!bn_n || !bn_e || !bld || !OSSL_PARAM_BLD_push_BN(bld, OSSL_PKEY_PARAM_RSA_N, bn_n) ||
        !OSSL_PARAM_BLD_push_BN(bld, OSSL_PKEY_PARAM_RSA_E, bn_e) ||
        !(params = OSSL_PARAM_BLD_to_param(bld)) ||
        !(ctx = EVP_PKEY_CTX_new_from_name(NULL, "RSA", NULL)) ||
        EVP_PKEY_fromdata_init(ctx) <= 0 ||
        EVP_PKEY_fromdata(ctx, &pkey, EVP_PKEY_PUBLIC_KEY, params) <= 0) {
        s_fail(c, "%s: not a usable RSA public key (n, e)", where);
        EVP_PKEY_free(pkey);
        pkey = NULL;
    }
out:
    EVP_PKEY_CTX_free(ctx);
    OSSL_PARAM_free(params);
    OSSL_PARAM_BLD_free(bld);
    BN_free(bn_n);
    BN_free(bn_e);
    free(n);
    free(e);
    return pkey;
}

/* A P-256 public key from x and y (the point is checked to be on the
 * curve: OpenSSL refuses it otherwise). */
static EVP_PKEY *
s_jwk_ec(s_load_t *c, const char *where, json_t *jwk)
{
    uint8_t *x = NULL, *y = NULL, pt[1 + 2 * S_P256_COORD];
    size_t x_len = 0, y_len = 0;
    OSSL_PARAM params[3];
    EVP_PKEY_CTX *ctx = NULL, *chk = NULL;
    EVP_PKEY *pkey = NULL;
    json_t *crv = json_object_get(jwk, "crv");

    if (!json_is_string(crv) || strcmp(json_string_value(crv), "P-256") != 0) {
        s_fail(c, "%s: crv must be P-256", where);
        return NULL;
    }
    if (s_jwk_b64(c, where, jwk, "x", &x, &x_len) != 0 ||
        s_jwk_b64(c, where, jwk, "y", &y, &y_len) != 0)
        goto out;
    if (x_len != S_P256_COORD || y_len != S_P256_COORD) {
        s_fail(c, "%s: x and y must be %d bytes each", where, S_P256_COORD);
        goto out;
    }
    pt[0] = 0x04; /* uncompressed point */
    memcpy(pt + 1, x, S_P256_COORD);
    memcpy(pt + 1 + S_P256_COORD, y, S_P256_COORD);
    params[0] = OSSL_PARAM_construct_utf8_string(OSSL_PKEY_PARAM_GROUP_NAME, "prime256v1", 0);
    params[1] = OSSL_PARAM_construct_octet_string(OSSL_PKEY_PARAM_PUB_KEY, pt, sizeof pt);
    params[2] = OSSL_PARAM_construct_end();
    if (!(ctx = EVP_PKEY_CTX_new_from_name(NULL, "EC", NULL)) || EVP_PKEY_fromdata_init(ctx) <= 0 ||
        EVP_PKEY_fromdata(ctx, &pkey, EVP_PKEY_PUBLIC_KEY, params) <= 0 ||
        !(chk = EVP_PKEY_CTX_new_from_pkey(NULL, pkey, NULL)) || EVP_PKEY_public_check(chk) <= 0) {
        s_fail(c, "%s: x, y is not a point on P-256", where);
        EVP_PKEY_free(pkey);
        pkey = NULL;
    }
out:
    EVP_PKEY_CTX_free(chk);
    EVP_PKEY_CTX_free(ctx);
    free(x);
    free(y);
    return pkey;
}

/* One JWK of a JWKS file. */
static int
s_load_jwk(s_load_t *c, const char *file, size_t idx, json_t *jwk, bool *has_secret)
{
    char where[600];
    uint8_t *secret = NULL;
    size_t secret_len = 0;
    EVP_PKEY *pkey = NULL;

    snprintf(where, sizeof where, "%s: keys[%zu]", file, idx);
    if (!json_is_object(jwk)) {
        s_fail(c, "%s: not an object", where);
        return -1;
    }
    json_t *kid = json_object_get(jwk, "kid");
    json_t *alg = json_object_get(jwk, "alg");
    json_t *kty = json_object_get(jwk, "kty");
    json_t *use = json_object_get(jwk, "use");
    if (!json_is_string(kid) || json_string_length(kid) == 0 ||
        json_string_length(kid) > S_MAX_KID) {
        s_fail(c, "%s: kid missing, not a string or over %d bytes (every key needs one)", where,
               S_MAX_KID);
        return -1;
    }
    snprintf(where, sizeof where, "%s: keys[%zu] (kid '%s')", file, idx, json_string_value(kid));
    if (!json_is_string(alg)) {
        s_fail(c, "%s: alg missing (every key needs its algorithm)", where);
        return -1;
    }
    unsigned bit = s_alg_bit(json_string_value(alg), json_string_length(alg));
    if (!bit) {
        s_fail(c, "%s: alg '%s' not supported (HS256, RS256, ES256)", where,
               json_string_value(alg));
        return -1;
    }
    if (use && (!json_is_string(use) || strcmp(json_string_value(use), "sig") != 0)) {
        s_fail(c, "%s: use must be \"sig\"", where);
        return -1;
    }
    if (!json_is_string(kty)) {
        s_fail(c, "%s: kty missing", where);
        return -1;
    }
    const char *t = json_string_value(kty);
    if (strcmp(t, "oct") == 0) {
        if (bit != WK_JWT_HS256) {
            s_fail(c, "%s: an oct key is an HMAC secret: alg must be HS256", where);
            return -1;
        }
        if (s_jwk_b64(c, where, jwk, "k", &secret, &secret_len) != 0)
            return -1;
        if (secret_len < WK_JWT_MIN_SECRET) {
            OPENSSL_cleanse(secret, secret_len);
            free(secret);
            s_fail(c, "%s: k is %zu bytes, an HS256 secret needs at least %d", where, secret_len,
                   WK_JWT_MIN_SECRET);
            return -1;
        }
        *has_secret = true;
    } else if (strcmp(t, "RSA") == 0) {
        if (bit != WK_JWT_RS256) {
            s_fail(c, "%s: an RSA key verifies RS256 only", where);
            return -1;
        }
        if (!(pkey = s_jwk_rsa(c, where, jwk)))
            return -1;
    } else if (strcmp(t, "EC") == 0) {
        if (bit != WK_JWT_ES256) {
            s_fail(c, "%s: an EC key verifies ES256 only", where);
            return -1;
        }
        if (!(pkey = s_jwk_ec(c, where, jwk)))
            return -1;
    } else {
        s_fail(c, "%s: kty '%s' not supported (oct, RSA, EC)", where, t);
        return -1;
    }
    if (pkey && s_check_pkey(c, where, pkey, bit) != 0) {
        EVP_PKEY_free(pkey);
        return -1;
    }
    char *k = strdup(json_string_value(kid));
    if (!k) {
        s_fail(c, "%s: out of memory", where);
        if (secret) {
            OPENSSL_cleanse(secret, secret_len);
            free(secret);
        }
        EVP_PKEY_free(pkey);
        return -1;
    }
    return s_add_key(c, k, bit, secret, secret_len, pkey, where);
}

/* A JWKS file: {"keys": [JWK...]}. */
static int
s_load_jwks(s_load_t *c, const char *file)
{
    char where[600];
    json_error_t jerr;
    bool others = false, has_secret = false;
    struct stat st;
    int rc = -1;

    snprintf(where, sizeof where, "%s: [jwks]", c->path);
    if (stat(file, &st) != 0) {
        s_fail(c, "%s: %s: %s", where, file, strerror(errno));
        return -1;
    }
    others = (st.st_mode & S_IROTH) != 0;
    json_t *root = json_load_file(file, JSON_REJECT_DUPLICATES, &jerr);
    if (!root) {
        /* jansson's text names a position, not the content. */
        s_fail(c, "%s: %s:%d: %s", where, file, jerr.line, jerr.text);
        return -1;
    }
    json_t *arr = json_object_get(root, "keys");
    if (!json_is_array(arr)) {
        s_fail(c, "%s: %s: expected {\"keys\": [...]}", where, file);
        goto out;
    }
    for (size_t i = 0; i < json_array_size(arr); i++) {
        if (s_load_jwk(c, file, i, json_array_get(arr, i), &has_secret) != 0)
            goto out;
    }
    if (has_secret && others)
        s_warn_readable(file);
    rc = 0;
out:
    json_decref(root);
    return rc;
}

static int
s_ini_handler(void *user, const char *section, const char *name, const char *value)
{
    s_load_t *c = user;

    if (c->err[0])
        return 0; /* keep the first problem */

    /* A new section: the previous key is complete. */
    if (c->in_key && strcmp(section, c->section) != 0 && s_finish_key(c) != 0)
        return 0;
    c->err_has_place = false;

    if (strcmp(section, "jwks") == 0) {
        if (strcmp(name, "file") != 0) {
            s_fail(c, "[jwks]: unknown setting '%s' (file)", name);
            return 0;
        }
        if (s_load_jwks(c, value) != 0) {
            c->err_has_place = true;
            return 0;
        }
        return 1;
    }
    if (strncmp(section, "key ", 4) != 0) {
        s_fail(c, "[%s]: unknown section ([key NAME] or [jwks])", section);
        return 0;
    }
    const char *kid = section + 4;
    if (!c->in_key) {
        size_t klen = strlen(kid);
        if (klen == 0 || strlen(section) >= S_INI_SECTION_MAX || strpbrk(kid, " \t")) {
            s_fail(c,
                   "[%s]: the key's name (its kid) must be 1..%d characters without blanks "
                   "(longer kids: use a JWKS)",
                   section, S_INI_SECTION_MAX - 5);
            return 0;
        }
        snprintf(c->section, sizeof c->section, "%s", section);
        c->in_key = true;
    }
    if (strcmp(name, "algs") == 0) {
        char where[600];
        snprintf(where, sizeof where, "%s: [%s]", c->path, section);
        if (c->has_algs) {
            s_fail(c, "[%s]: algs given twice", section);
            return 0;
        }
        if (s_parse_algs(c, where, value, &c->algs) != 0) {
            c->err_has_place = true;
            return 0;
        }
        c->has_algs = true;
        return 1;
    }
    char **slot = strcmp(name, "secret_file") == 0 ? &c->secret_file
                  : strcmp(name, "pem_file") == 0  ? &c->pem_file
                                                   : NULL;
    if (!slot) {
        s_fail(c, "[%s]: unknown setting '%s' (algs, secret_file, pem_file)", section, name);
        return 0;
    }
    if (*slot) {
        s_fail(c, "[%s]: %s given twice", section, name);
        return 0;
    }
    if (!value[0]) {
        s_fail(c, "[%s]: %s is empty", section, name);
        return 0;
    }
    if (!(*slot = strdup(value))) {
        s_fail(c, "[%s]: out of memory", section);
        return 0;
    }
    return 1;
}

wk_jwt_keys_t *
wk_jwt_keys_load(const char *path, char *err, size_t errsz)
{
    s_load_t c;

    memset(&c, 0, sizeof c);
    c.path = path;
    c.keys = calloc(1, sizeof *c.keys);
    if (!c.keys) {
        snprintf(err, errsz, "%s: out of memory", path);
        return NULL;
    }
    c.keys->sha256 = EVP_MD_fetch(NULL, "SHA256", NULL);
    if (!c.keys->sha256) {
        snprintf(err, errsz, "%s: OpenSSL has no SHA256", path);
        goto out_free;
    }

    int rc = ini_parse(path, s_ini_handler, &c);
    if (rc == -1) {
        snprintf(err, errsz, "%s: %s", path, strerror(errno));
        goto out_free;
    }
    if (rc == -2) {
        snprintf(err, errsz, "%s: out of memory", path);
        goto out_free;
    }
    if (rc == 0 && !c.err[0])
        s_finish_key(&c);
    if (c.err[0]) {
        if (c.err_has_place)
            snprintf(err, errsz, "%s", c.err);
        else
            snprintf(err, errsz, "%s:%d: %s", path, rc, c.err);
        goto out_free;
    }
    if (rc > 0) {
        snprintf(err, errsz, "%s:%d: syntax error (expected key = value or [section])", path, rc);
        goto out_free;
    }
    if (c.keys->n == 0) {
        snprintf(err, errsz, "%s: no keys ([key NAME] sections or a [jwks] file)", path);
        goto out_free;
    }
    return c.keys;

out_free:
    free(c.secret_file);
    free(c.pem_file);
    wk_jwt_keys_destroy(&c.keys);
    return NULL;
}

/* --- verification ------------------------------------------------------ */

#define S_FAIL(code_, text_)                                                                       \
    do {                                                                                           \
        e.code = (code_);                                                                          \
        e.text = (text_);                                                                          \
        goto out;                                                                                  \
    } while (0)

static const char S_MALFORMED[] = "malformed_token";

/* A base64url part decoded and parsed as one JSON object, or NULL. */
static json_t *
s_json_part(const char *p, size_t len, uint8_t *buf, size_t cap)
{
    long n = wk_jwt_b64url_decode(p, len, buf, cap);
    if (n <= 0)
        return NULL;
    /* Duplicate names are refused: two parsers reading one token two ways
     * is how a signed "sub" becomes another. */
    json_t *v = json_loadb((const char *)buf, (size_t)n, JSON_REJECT_DUPLICATES, NULL);
    if (v && !json_is_object(v)) {
        json_decref(v);
        v = NULL;
    }
    return v;
}

/* RFC 7515 A.3: an ES256 signature is r || s, 32 bytes each; OpenSSL
 * verifies DER. Returns the DER length written to der, or -1. */
static int
s_es256_der(const uint8_t *sig, uint8_t *der, size_t cap)
{
    ECDSA_SIG *es = ECDSA_SIG_new();
    BIGNUM *r = BN_bin2bn(sig, S_P256_COORD, NULL);
    BIGNUM *s = BN_bin2bn(sig + S_P256_COORD, S_P256_COORD, NULL);
    int n = -1;

    if (!es || !r || !s || !ECDSA_SIG_set0(es, r, s)) {
        BN_free(r);
        BN_free(s);
        goto out;
    }
    /* es owns r and s now */
    if (i2d_ECDSA_SIG(es, NULL) > (int)cap)
        goto out;
    unsigned char *p = der;
    n = i2d_ECDSA_SIG(es, &p);
out:
    ECDSA_SIG_free(es);
    return n;
}

/* True when sig is k's signature over input. */
static bool
s_sig_ok(const wk_jwt_keys_t *keys, const s_key_t *k, unsigned alg, const char *input,
         size_t input_len, const uint8_t *sig, size_t sig_len)
{
    if (alg == WK_JWT_HS256) {
        uint8_t mac[EVP_MAX_MD_SIZE];
        unsigned mac_len = 0;
        if (sig_len != 32)
            return false;
        if (!HMAC(keys->sha256, k->secret, (int)k->secret_len, (const unsigned char *)input,
                  input_len, mac, &mac_len) ||
            mac_len != 32)
            return false;
        return CRYPTO_memcmp(mac, sig, 32) == 0;
    }

    uint8_t der[80]; /* two 33-byte INTEGERs and headers: 72 at most */
    if (alg == WK_JWT_ES256) {
        if (sig_len != 2 * S_P256_COORD)
            return false;
        int n = s_es256_der(sig, der, sizeof der);
        if (n <= 0)
            return false;
        sig = der;
        sig_len = (size_t)n;
    }
    EVP_MD_CTX *md = EVP_MD_CTX_new();
    bool ok = md && EVP_DigestVerifyInit(md, NULL, keys->sha256, NULL, k->pkey) == 1 &&
              EVP_DigestVerify(md, sig, sig_len, (const unsigned char *)input, input_len) == 1;
    EVP_MD_CTX_free(md);
    return ok;
}

/* A NumericDate claim: absent (0, *present false), or a non-negative
 * finite number, integer or not; a fraction is rounded the strict way
 * (down for exp, up for nbf and iat). -1 when present but not that. */
static int
s_time_claim(json_t *payload, const char *name, bool round_up, bool *present, int64_t *out)
{
    json_t *v = json_object_get(payload, name);
    *present = v != NULL;
    *out = 0;
    if (!v)
        return 0;
    if (json_is_integer(v)) {
        json_int_t i = json_integer_value(v);
        if (i < 0)
            return -1;
        *out = (int64_t)i;
        return 0;
    }
    if (json_is_real(v)) {
        double d = json_real_value(v);
        if (!isfinite(d) || d < 0 || d >= 9.2e18)
            return -1;
        /* d is in [0, 2^63): truncation is floor */
        *out = (int64_t)d;
        if (round_up && (double)*out < d)
            (*out)++;
        return 0;
    }
    return -1;
}

/* A channels.sub or channels.pub list into out. -1 when malformed. */
static int
s_chan_list(json_t *channels, const char *name, wk_jwt_list_t *out)
{
    json_t *arr = json_object_get(channels, name);
    out->n = 0;
    if (!arr)
        return 0;
    if (!json_is_array(arr) || json_array_size(arr) > WK_JWT_MAX_PATTERNS)
        return -1;
    for (size_t i = 0; i < json_array_size(arr); i++) {
        json_t *s = json_array_get(arr, i);
        if (!json_is_string(s) || json_string_length(s) == 0 ||
            json_string_length(s) > WK_JWT_MAX_PATTERN)
            return -1;
        memcpy(out->v[i], json_string_value(s), json_string_length(s) + 1);
        out->n++;
    }
    return 0;
}

static bool
s_str_eq(json_t *s, const char *want)
{
    return json_is_string(s) && json_string_length(s) == strlen(want) &&
           memcmp(json_string_value(s), want, strlen(want)) == 0;
}

int
wk_jwt_verify(const wk_jwt_keys_t *keys, const wk_jwt_opts_t *opts, const char *tok, size_t len,
              int64_t now, wk_jwt_claims_t *out, wk_jwt_err_t *err)
{
    static const wk_jwt_opts_t s_default_opts = {WK_JWT_DEFAULT_LEEWAY_S, NULL, NULL};
    uint8_t buf[S_B64_MAX];
    json_t *header = NULL, *payload = NULL;
    wk_jwt_err_t e = {NULL, NULL};
    const s_key_t *tries[WK_JWT_MAX_TRIES];
    size_t n_tries = 0;

    if (!opts)
        opts = &s_default_opts;
    if (!tok || len == 0)
        S_FAIL(S_MALFORMED, "empty token");
    if (len > WK_JWT_MAX_TOKEN)
        S_FAIL("token_too_large", "token over 8192 bytes");

    /* 1. Shape: exactly two dots, header and payload not empty. */
    const char *dot1 = memchr(tok, '.', len);
    const char *dot2 = dot1 ? memchr(dot1 + 1, '.', len - (size_t)(dot1 + 1 - tok)) : NULL;
    if (!dot2 || memchr(dot2 + 1, '.', len - (size_t)(dot2 + 1 - tok)))
        S_FAIL(S_MALFORMED, "token is not three dot-separated parts");
    size_t h_len = (size_t)(dot1 - tok), p_len = (size_t)(dot2 - dot1 - 1);
    size_t s_len = len - (size_t)(dot2 + 1 - tok);
    if (h_len == 0 || p_len == 0)
        S_FAIL(S_MALFORMED, "token has an empty header or payload");
    if (!(header = s_json_part(tok, h_len, buf, sizeof buf)))
        S_FAIL(S_MALFORMED, "header is not a base64url JSON object");
    if (!(payload = s_json_part(dot1 + 1, p_len, buf, sizeof buf)))
        S_FAIL(S_MALFORMED, "payload is not a base64url JSON object");
    long sig_len = wk_jwt_b64url_decode(dot2 + 1, s_len, buf, sizeof buf);
    if (sig_len < 0)
        S_FAIL(S_MALFORMED, "signature is not base64url");
    if (json_object_get(header, "crit"))
        S_FAIL(S_MALFORMED, "crit header not supported");

    /* 2. Header: the algorithm, then the key. */
    json_t *alg_j = json_object_get(header, "alg");
    json_t *kid_j = json_object_get(header, "kid");
    if (!json_is_string(alg_j))
        S_FAIL(S_MALFORMED, "header alg missing or not a string");
    if (kid_j && !json_is_string(kid_j))
        S_FAIL(S_MALFORMED, "header kid is not a string");
    unsigned alg = s_alg_bit(json_string_value(alg_j), json_string_length(alg_j));
    if (!alg) {
        if (strcasecmp(json_string_value(alg_j), "none") == 0)
            S_FAIL("alg_not_allowed", "alg none is never accepted");
        S_FAIL("alg_not_allowed", "alg not supported (HS256, RS256, ES256)");
    }
    if (kid_j) {
        /* kid selects among the configured keys, nothing else. */
        const s_key_t *k = s_key_by_kid(keys, json_string_value(kid_j), json_string_length(kid_j));
        if (!k)
            S_FAIL("unknown_key", "no key with this kid");
        if (!(k->algs & alg))
            S_FAIL("alg_not_allowed", "alg not allowed for this key");
        tries[n_tries++] = k;
    } else {
        /* Without kid: the first keys allowing alg, few, because each try
         * of a public key costs a signature check. */
        for (size_t i = 0; i < keys->n && n_tries < WK_JWT_MAX_TRIES; i++) {
            if (keys->v[i].algs & alg)
                tries[n_tries++] = &keys->v[i];
        }
        if (n_tries == 0)
            S_FAIL("unknown_key", "no key for this alg");
    }

    /* 3. Signature over the token's own ASCII header.payload. */
    bool ok = false;
    for (size_t i = 0; i < n_tries && !ok; i++)
        ok = s_sig_ok(keys, tries[i], alg, tok, (size_t)(dot2 - tok), buf, (size_t)sig_len);
    if (!ok)
        S_FAIL("bad_signature", "signature does not verify");

    /* 4. Claims: types, time, issuer, audience. */
    json_t *sub = json_object_get(payload, "sub");
    if (!json_is_string(sub))
        S_FAIL(S_MALFORMED, "sub missing or not a string");
    if (json_string_length(sub) == 0 || json_string_length(sub) > WK_JWT_MAX_SUB)
        S_FAIL(S_MALFORMED, "sub empty or over 128 bytes");
    bool has_exp, has_nbf, has_iat;
    int64_t exp, nbf, iat;
    if (s_time_claim(payload, "exp", false, &has_exp, &exp) != 0)
        S_FAIL(S_MALFORMED, "exp is not a non-negative number");
    if (s_time_claim(payload, "nbf", true, &has_nbf, &nbf) != 0)
        S_FAIL(S_MALFORMED, "nbf is not a non-negative number");
    if (s_time_claim(payload, "iat", true, &has_iat, &iat) != 0)
        S_FAIL(S_MALFORMED, "iat is not a non-negative number");
    json_t *iss = json_object_get(payload, "iss");
    if (iss && !json_is_string(iss))
        S_FAIL(S_MALFORMED, "iss is not a string");
    json_t *aud = json_object_get(payload, "aud");
    if (aud && !json_is_string(aud)) {
        bool strs = json_is_array(aud);
        for (size_t i = 0; strs && i < json_array_size(aud); i++)
            strs = json_is_string(json_array_get(aud, i));
        if (!strs)
            S_FAIL(S_MALFORMED, "aud is not a string or an array of strings");
    }
    json_t *channels = json_object_get(payload, "channels");
    if (channels && (!json_is_object(channels) || s_chan_list(channels, "sub", &out->chan_sub) ||
                     s_chan_list(channels, "pub", &out->chan_pub)))
        S_FAIL(S_MALFORMED, "channels is not {\"sub\": [str], \"pub\": [str]} (1..128 bytes, "
                            "at most 32 each)");
    if (!channels)
        out->chan_sub.n = out->chan_pub.n = 0;

    /* The arithmetic saturates: claims are bounded, now is whatever the
     * caller passes. */
    int64_t leeway = (int64_t)opts->leeway_s;
    if (has_exp && exp <= INT64_MAX - leeway && now > exp + leeway)
        S_FAIL("token_expired", "token expired");
    if (has_nbf && now < nbf - leeway)
        S_FAIL("token_not_yet_valid", "token not valid yet (nbf)");
    if (has_iat && now <= INT64_MAX - leeway && iat > now + leeway)
        S_FAIL("token_not_yet_valid", "token issued in the future (iat)");

    if (opts->iss && opts->iss[0] && !s_str_eq(iss, opts->iss))
        S_FAIL("bad_issuer", "wrong issuer");
    if (opts->aud && opts->aud[0]) {
        bool found = s_str_eq(aud, opts->aud);
        for (size_t i = 0; !found && json_is_array(aud) && i < json_array_size(aud); i++)
            found = s_str_eq(json_array_get(aud, i), opts->aud);
        if (!found)
            S_FAIL("bad_audience", "wrong audience");
    }

    memcpy(out->sub, json_string_value(sub), json_string_length(sub) + 1);
    out->exp = has_exp ? (uint64_t)exp : 0;

out:
    json_decref(header);
    json_decref(payload);
    if (err)
        *err = e;
    return e.code ? -1 : 0;
}

/* --- signing (the development token issuer) ----------------------------- */

long
wk_jwt_sign_hs256(const wk_jwt_keys_t *keys, const char *kid, const char *claims_json, char *out,
                  size_t cap)
{
    const s_key_t *k = kid ? s_key_by_kid(keys, kid, strlen(kid)) : NULL;
    json_t *hdr = NULL;
    char *hdr_json = NULL;
    uint8_t mac[EVP_MAX_MD_SIZE];
    unsigned mac_len = 0;
    long n, m, rc = -1;

    if (!k || k->algs != WK_JWT_HS256 || !claims_json)
        return -1;
    hdr = json_pack("{s:s, s:s, s:s}", "alg", "HS256", "typ", "JWT", "kid", kid);
    hdr_json = hdr ? json_dumps(hdr, JSON_COMPACT) : NULL;
    if (!hdr_json)
        goto out;
    n = wk_jwt_b64url_encode((const uint8_t *)hdr_json, strlen(hdr_json), out, cap);
    if (n < 0 || (size_t)n + 1 >= cap)
        goto out;
    out[n++] = '.';
    m = wk_jwt_b64url_encode((const uint8_t *)claims_json, strlen(claims_json), out + n,
                             cap - (size_t)n);
    if (m < 0 || (size_t)(n + m) + 1 >= cap)
        goto out;
    n += m;
    if (!HMAC(keys->sha256, k->secret, (int)k->secret_len, (const unsigned char *)out, (size_t)n,
              mac, &mac_len) ||
        mac_len != 32)
        goto out;
    out[n++] = '.';
    m = wk_jwt_b64url_encode(mac, mac_len, out + n, cap - (size_t)n);
    if (m < 0)
        goto out;
    rc = n + m;
out:
    OPENSSL_cleanse(mac, sizeof(mac));
    free(hdr_json);
    json_decref(hdr);
    return rc;
}
