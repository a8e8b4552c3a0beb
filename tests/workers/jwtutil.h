/*
 * jwtutil.h - what test_jwt.c and test_svc_auth.c need to mint tokens:
 * keys generated with OpenSSL (RSA 2048, EC P-256, a random HMAC secret),
 * key files in a temporary directory, and a signer that is independent of
 * workers/jwt.c (base64url through OpenSSL's base64 encoder, ES256 r||s
 * from OpenSSL's DER signature). Include after <cmocka.h>.
 */
#ifndef WSGATE_JWTUTIL_H
#define WSGATE_JWTUTIL_H

#include <dirent.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/bn.h>
#include <openssl/core_names.h>
#include <openssl/ec.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/pem.h>
#include <openssl/rand.h>

/* The tests' clock: 2023-11-14T22:13:20Z. */
#define T_NOW 1700000000LL

typedef struct {
    char dir[64];  /* the temporary directory, removed by t_fx_fini */
    EVP_PKEY *rsa; /* private keys: the tests sign with them */
    EVP_PKEY *ec;
    uint8_t secret[48]; /* the HS256 secret */
    char *rsa_pub_pem;  /* public PEMs (owned) */
    char *ec_pub_pem;
    char keyfile[128]; /* [key hs1] HS256, [key rsa1] RS256, [key ec1] ES256 */
} t_fx_t;

/* dir/name, in a static buffer per call site's needs (copy it to keep). */
static inline const char *
t_path(const t_fx_t *fx, const char *name)
{
    static char buf[4][256];
    static int i;
    i = (i + 1) % 4;
    int n = snprintf(buf[i], sizeof buf[i], "%s/%s", fx->dir, name);
    assert_true(n > 0 && (size_t)n < sizeof buf[i]);
    return buf[i];
}

static inline void
t_write(const char *path, const void *data, size_t len, mode_t mode)
{
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, mode);
    assert_true(fd >= 0);
    assert_int_equal(fchmod(fd, mode), 0); /* whatever the umask */
    assert_int_equal(write(fd, data, len), (ssize_t)len);
    close(fd);
}

static inline void
t_writef(const char *path, const char *fmt, ...)
{
    char buf[16384];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(buf, sizeof buf, fmt, ap);
    va_end(ap);
    assert_true(n >= 0 && (size_t)n < sizeof buf);
    t_write(path, buf, (size_t)n, 0600);
}

static inline char *
t_pub_pem(EVP_PKEY *k)
{
    BIO *b = BIO_new(BIO_s_mem());
    assert_non_null(b);
    assert_int_equal(PEM_write_bio_PUBKEY(b, k), 1);
    char *data;
    long n = BIO_get_mem_data(b, &data);
    char *s = malloc((size_t)n + 1);
    assert_non_null(s);
    memcpy(s, data, (size_t)n);
    s[n] = '\0';
    BIO_free(b);
    return s;
}

static inline EVP_PKEY *
t_gen_rsa(unsigned bits)
{
    EVP_PKEY *k = EVP_RSA_gen(bits);
    assert_non_null(k);
    return k;
}

static inline EVP_PKEY *
t_gen_ec(void)
{
    EVP_PKEY *k = EVP_EC_gen("P-256");
    assert_non_null(k);
    return k;
}

/* base64url without padding of p[0..len), via OpenSSL's base64 encoder
 * (not the decoder under test). Returns malloc'd text. */
static inline char *
t_b64url(const void *p, size_t len)
{
    char *s = malloc(len / 3 * 4 + 8);
    assert_non_null(s);
    int n = EVP_EncodeBlock((unsigned char *)s, p, (int)len);
    assert_true(n >= 0);
    while (n > 0 && s[n - 1] == '=')
        n--;
    s[n] = '\0';
    for (int i = 0; i < n; i++) {
        if (s[i] == '+')
            s[i] = '-';
        else if (s[i] == '/')
            s[i] = '_';
    }
    return s;
}

typedef enum { T_HS256, T_RS256, T_ES256, T_NONE } t_alg_t;

/* The signature of input with alg, raw (ES256: r||s). Returns its length. */
static inline size_t
t_sign_raw(t_alg_t alg, const void *key, size_t key_len, const char *input, uint8_t *sig)
{
    if (alg == T_HS256) {
        unsigned n = 0;
        assert_non_null(HMAC(EVP_sha256(), key, (int)key_len, (const unsigned char *)input,
                             strlen(input), sig, &n));
        return n;
    }
    EVP_PKEY *pk = (EVP_PKEY *)key;
    EVP_MD_CTX *md = EVP_MD_CTX_new();
    uint8_t der[600];
    size_t n = sizeof der;
    assert_non_null(md);
    assert_int_equal(EVP_DigestSignInit(md, NULL, EVP_sha256(), NULL, pk), 1);
    assert_int_equal(EVP_DigestSign(md, der, &n, (const unsigned char *)input, strlen(input)), 1);
    EVP_MD_CTX_free(md);
    if (alg == T_RS256) {
        memcpy(sig, der, n);
        return n;
    }
    const unsigned char *p = der;
    ECDSA_SIG *es = d2i_ECDSA_SIG(NULL, &p, (long)n);
    assert_non_null(es);
    assert_int_equal(BN_bn2binpad(ECDSA_SIG_get0_r(es), sig, 32), 32);
    assert_int_equal(BN_bn2binpad(ECDSA_SIG_get0_s(es), sig + 32, 32), 32);
    ECDSA_SIG_free(es);
    return 64;
}

/* A compact token: base64url(header).base64url(payload).base64url(sig).
 * key: the secret for T_HS256 (key_len bytes), an EVP_PKEY for RS/ES,
 * ignored for T_NONE (empty signature). Returns malloc'd text. */
static inline char *
t_token(t_alg_t alg, const void *key, size_t key_len, const char *header, const char *payload)
{
    char *h = t_b64url(header, strlen(header));
    char *p = t_b64url(payload, strlen(payload));
    size_t in_len = strlen(h) + 1 + strlen(p);
    char *input = malloc(in_len + 1);
    assert_non_null(input);
    snprintf(input, in_len + 1, "%s.%s", h, p);
    uint8_t sig[600];
    size_t sig_len = alg == T_NONE ? 0 : t_sign_raw(alg, key, key_len, input, sig);
    char *s = t_b64url(sig, sig_len);
    char *tok = malloc(in_len + 1 + strlen(s) + 1);
    assert_non_null(tok);
    sprintf(tok, "%s.%s", input, s);
    free(h);
    free(p);
    free(input);
    free(s);
    return tok;
}

/* A big number of k as base64url (n, e, qx, qy), padded to pad bytes. */
static inline char *
t_bn_b64(EVP_PKEY *k, const char *param, int pad)
{
    BIGNUM *bn = NULL;
    uint8_t buf[600];
    assert_int_equal(EVP_PKEY_get_bn_param(k, param, &bn), 1);
    int n = pad ? BN_bn2binpad(bn, buf, pad) : BN_bn2bin(bn, buf);
    assert_true(n > 0);
    BN_free(bn);
    return t_b64url(buf, (size_t)n);
}

/* Keys, PEMs and the standard key file in a fresh temporary directory. */
static inline void
t_fx_init(t_fx_t *fx)
{
    memset(fx, 0, sizeof *fx);
    snprintf(fx->dir, sizeof fx->dir, "/tmp/wsgate-jwt-XXXXXX");
    assert_non_null(mkdtemp(fx->dir));
    fx->rsa = t_gen_rsa(2048);
    fx->ec = t_gen_ec();
    assert_int_equal(RAND_bytes(fx->secret, sizeof fx->secret), 1);
    fx->rsa_pub_pem = t_pub_pem(fx->rsa);
    fx->ec_pub_pem = t_pub_pem(fx->ec);
    t_write(t_path(fx, "hs1.secret"), fx->secret, sizeof fx->secret, 0600);
    t_write(t_path(fx, "rsa1.pub.pem"), fx->rsa_pub_pem, strlen(fx->rsa_pub_pem), 0644);
    t_write(t_path(fx, "ec1.pub.pem"), fx->ec_pub_pem, strlen(fx->ec_pub_pem), 0644);
    snprintf(fx->keyfile, sizeof fx->keyfile, "%s", t_path(fx, "keys.ini"));
    t_writef(fx->keyfile,
             "; test keys\n"
             "[key hs1]\nalgs = HS256\nsecret_file = %s/hs1.secret\n\n"
             "[key rsa1]\nalgs = RS256\npem_file = %s/rsa1.pub.pem ; public\n\n"
             "[key ec1]\nalgs = ES256\npem_file = %s/ec1.pub.pem\n",
             fx->dir, fx->dir, fx->dir);
}

/* Removes every file in the directory, then the directory. */
static inline void
t_fx_fini(t_fx_t *fx)
{
    DIR *d = opendir(fx->dir);
    if (d) {
        struct dirent *e;
        while ((e = readdir(d))) {
            if (e->d_name[0] == '.')
                continue;
            unlink(t_path(fx, e->d_name));
        }
        closedir(d);
        rmdir(fx->dir);
    }
    EVP_PKEY_free(fx->rsa);
    EVP_PKEY_free(fx->ec);
    free(fx->rsa_pub_pem);
    free(fx->ec_pub_pem);
}

#endif
