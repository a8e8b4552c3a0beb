/*
 * test_jwt.c - JWT verification (workers/jwt.c): tokens minted here with
 * OpenSSL (jwtutil.h), keys and key files written to a temporary
 * directory, the clock fixed at T_NOW.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "../../workers/jwt.h"
#include "jwtutil.h"

static t_fx_t g_fx;
static wk_jwt_keys_t *g_keys;

#define HDR_HS "{\"alg\":\"HS256\",\"kid\":\"hs1\",\"typ\":\"JWT\"}"
#define HDR_RS "{\"alg\":\"RS256\",\"kid\":\"rsa1\"}"
#define HDR_ES "{\"alg\":\"ES256\",\"kid\":\"ec1\"}"

/* --- helpers ----------------------------------------------------------- */

static int
s_group_setup(void **st)
{
    char err[512];
    (void)st;
    t_fx_init(&g_fx);
    g_keys = wk_jwt_keys_load(g_fx.keyfile, err, sizeof err);
    if (!g_keys) {
        fprintf(stderr, "key file: %s\n", err);
        return -1;
    }
    return 0;
}

static int
s_group_teardown(void **st)
{
    (void)st;
    wk_jwt_keys_destroy(&g_keys);
    t_fx_fini(&g_fx);
    return 0;
}

/* printf into a static buffer (one at a time). */
static const char *
s_fmt(const char *fmt, ...)
{
    static char buf[16384];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(buf, sizeof buf, fmt, ap);
    va_end(ap);
    assert_true(n >= 0 && (size_t)n < sizeof buf);
    return buf;
}

static char *
s_hs(const char *payload)
{
    return t_token(T_HS256, g_fx.secret, sizeof g_fx.secret, HDR_HS, payload);
}

/* The error text is a fixed phrase: it must not hold any part of the
 * token (and so, in particular, nothing of its claims or signature). */
static void
s_assert_no_token_text(const char *text, const char *tok, size_t len)
{
    assert_non_null(text);
    assert_true(text[0] != '\0');
    size_t start = 0;
    for (size_t i = 0; i <= len; i++) {
        if (i == len || tok[i] == '.') {
            if (i - start >= 4) {
                char part[WK_JWT_MAX_TOKEN + 1];
                memcpy(part, tok + start, i - start);
                part[i - start] = '\0';
                assert_null(strstr(text, part));
            }
            start = i + 1;
        }
    }
}

/* Verifies tok (freed) at T_NOW against keys; expects code (NULL: valid).
 * Fills *out when given. */
static void
s_check_keys(const wk_jwt_keys_t *keys, char *tok, const wk_jwt_opts_t *o, const char *code,
             wk_jwt_claims_t *out)
{
    static wk_jwt_claims_t scratch;
    wk_jwt_err_t e = {"unset", "unset"};
    if (!out)
        out = &scratch;
    int rc = wk_jwt_verify(keys, o, tok, strlen(tok), T_NOW, out, &e);
    if (!code) {
        if (rc != 0)
            fail_msg("expected a valid token, got %s (%s)", e.code, e.text);
        assert_null(e.code);
    } else {
        if (rc == 0)
            fail_msg("expected %s, the token was accepted", code);
        assert_string_equal(e.code, code);
        s_assert_no_token_text(e.text, tok, strlen(tok));
    }
    free(tok);
}

static void
s_check(char *tok, const wk_jwt_opts_t *o, const char *code)
{
    s_check_keys(g_keys, tok, o, code, NULL);
}

/* A token with its raw signature altered by mangle before encoding. */
typedef void (*s_mangle_fn)(uint8_t *sig, size_t *len);

static char *
s_token_mangled(t_alg_t alg, const void *key, size_t key_len, const char *header,
                const char *payload, s_mangle_fn mangle)
{
    char *h = t_b64url(header, strlen(header));
    char *p = t_b64url(payload, strlen(payload));
    char input[4096];
    snprintf(input, sizeof input, "%s.%s", h, p);
    uint8_t sig[600];
    size_t n = t_sign_raw(alg, key, key_len, input, sig);
    mangle(sig, &n);
    char *s = t_b64url(sig, n);
    char *tok = malloc(strlen(input) + strlen(s) + 2);
    assert_non_null(tok);
    sprintf(tok, "%s.%s", input, s);
    free(h);
    free(p);
    free(s);
    return tok;
}

static void
s_flip_first(uint8_t *sig, size_t *len)
{
    (void)len;
    sig[0] ^= 0x01;
}

static void
s_flip_last(uint8_t *sig, size_t *len)
{
    sig[*len - 1] ^= 0x80;
}

static void
s_cut_one(uint8_t *sig, size_t *len)
{
    (void)sig;
    (*len)--;
}

static void
s_add_one(uint8_t *sig, size_t *len)
{
    sig[(*len)++] = 0;
}

/* ES256 as DER (what OpenSSL produces), not r||s: must be refused. */
static void
s_to_der(uint8_t *sig, size_t *len)
{
    ECDSA_SIG *es = ECDSA_SIG_new();
    assert_non_null(es);
    assert_int_equal(*len, 64);
    assert_int_equal(ECDSA_SIG_set0(es, BN_bin2bn(sig, 32, NULL), BN_bin2bn(sig + 32, 32, NULL)),
                     1);
    uint8_t der[80];
    unsigned char *p = der;
    int n = i2d_ECDSA_SIG(es, &p);
    assert_true(n > 64 && n <= 72);
    memcpy(sig, der, (size_t)n);
    *len = (size_t)n;
    ECDSA_SIG_free(es);
}

/* Writes a key file with body (printf, %1$s is the temp dir) and loads it. */
static wk_jwt_keys_t *
s_load_body(char *err, size_t errsz, const char *body)
{
    const char *path = t_path(&g_fx, "test.ini");
    t_write(path, body, strlen(body), 0600);
    err[0] = '\0';
    return wk_jwt_keys_load(path, err, errsz);
}

/* The load must fail with a message holding every needle. */
static void
s_expect_refused(const char *body, const char *needle1, const char *needle2)
{
    char err[1024];
    wk_jwt_keys_t *k = s_load_body(err, sizeof err, body);
    if (k) {
        wk_jwt_keys_destroy(&k);
        fail_msg("key file accepted:\n%s", body);
    }
    if (!strstr(err, needle1) || (needle2 && !strstr(err, needle2)))
        fail_msg("error '%s' lacks '%s' / '%s'", err, needle1, needle2 ? needle2 : "");
}

/* --- base64url --------------------------------------------------------- */

static void
test_b64url(void **st)
{
    (void)st;
    uint8_t in[80], out[80];
    for (size_t len = 0; len <= 70; len++) {
        for (size_t i = 0; i < len; i++)
            in[i] = (uint8_t)(i * 37 + len * 11 + 0xA5);
        char *s = t_b64url(in, len);
        assert_int_equal(wk_jwt_b64url_decode(s, strlen(s), out, sizeof out), (long)len);
        assert_memory_equal(in, out, len);
        /* one byte short of room: refused, not overrun */
        if (len)
            assert_int_equal(wk_jwt_b64url_decode(s, strlen(s), out, len - 1), -1);
        free(s);
    }
    /* every byte value through the alphabet's edges */
    assert_int_equal(wk_jwt_b64url_decode("-_-_", 4, out, sizeof out), 3);
    assert_int_equal(out[0], 0xFB);
    assert_int_equal(out[1], 0xFF);
    assert_int_equal(out[2], 0xBF);
    assert_int_equal(wk_jwt_b64url_decode("AQ", 2, out, sizeof out), 1);
    assert_int_equal(out[0], 1);
    assert_int_equal(wk_jwt_b64url_decode("AAE", 3, out, sizeof out), 2);

    static const char *const bad[] = {
        "A",     /* length 1 mod 4 */
        "AB",    /* trailing bits set: AQ is the only encoding of 0x01 */
        "AAB",   /* likewise for two bytes */
        "AA==",  /* padding */
        "AA=",   /* broken padding */
        "AAA=",  /* padding */
        "A+AA",  /* base64, not base64url */
        "A/AA",  /* likewise */
        "AA AA", /* blank */
        "AAA\n", /* newline */
        "AA.A",  /* a separator */
        "AAAAA", /* 5 characters */
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        if (wk_jwt_b64url_decode(bad[i], strlen(bad[i]), out, sizeof out) != -1)
            fail_msg("'%s' was decoded", bad[i]);
    }
    assert_int_equal(wk_jwt_b64url_decode("AA\0A", 4, out, sizeof out), -1); /* NUL inside */
    assert_int_equal(wk_jwt_b64url_decode("\xc3\xa9"
                                          "AA",
                                          4, out, sizeof out),
                     -1);
    assert_int_equal(wk_jwt_b64url_decode("", 0, out, sizeof out), 0);
}

/* --- valid tokens ------------------------------------------------------ */

static void
test_valid_hs256(void **st)
{
    (void)st;
    wk_jwt_claims_t c;
    memset(&c, 0xAB, sizeof c);
    s_check_keys(g_keys,
                 s_hs(s_fmt("{\"sub\":\"alice\",\"exp\":%lld,\"iat\":%lld,\"channels\":"
                            "{\"sub\":[\"room.*\",\"news\"],\"pub\":[\"room.1\"]}}",
                            T_NOW + 3600, T_NOW)),
                 NULL, NULL, &c);
    assert_string_equal(c.sub, "alice");
    assert_int_equal(c.exp, T_NOW + 3600);
    assert_int_equal(c.chan_sub.n, 2);
    assert_string_equal(c.chan_sub.v[0], "room.*");
    assert_string_equal(c.chan_sub.v[1], "news");
    assert_int_equal(c.chan_pub.n, 1);
    assert_string_equal(c.chan_pub.v[0], "room.1");
}

static void
test_valid_rs256(void **st)
{
    (void)st;
    wk_jwt_claims_t c;
    memset(&c, 0xAB, sizeof c);
    s_check_keys(g_keys,
                 t_token(T_RS256, g_fx.rsa, 0, HDR_RS,
                         s_fmt("{\"sub\":\"bob\",\"exp\":%lld,\"channels\":{\"sub\":[\"a\"]},"
                               "\"extra\":{\"x\":[1,2,3]}}",
                               T_NOW + 60)),
                 NULL, NULL, &c);
    assert_string_equal(c.sub, "bob");
    assert_int_equal(c.exp, T_NOW + 60);
    assert_int_equal(c.chan_sub.n, 1);
    assert_string_equal(c.chan_sub.v[0], "a");
    assert_int_equal(c.chan_pub.n, 0); /* absent list: empty */
}

static void
test_valid_es256(void **st)
{
    (void)st;
    wk_jwt_claims_t c;
    memset(&c, 0xAB, sizeof c);
    /* ECDSA signatures are randomised: sign a few, every one verifies */
    for (int i = 0; i < 8; i++) {
        s_check_keys(g_keys, t_token(T_ES256, g_fx.ec, 0, HDR_ES, "{\"sub\":\"carol\"}"), NULL,
                     NULL, &c);
        assert_string_equal(c.sub, "carol");
        assert_int_equal(c.exp, 0); /* no exp */
        assert_int_equal(c.chan_sub.n, 0);
        assert_int_equal(c.chan_pub.n, 0);
    }
}

static void
test_valid_without_kid(void **st)
{
    (void)st;
    wk_jwt_claims_t c;
    s_check_keys(
        g_keys,
        t_token(T_HS256, g_fx.secret, sizeof g_fx.secret, "{\"alg\":\"HS256\"}", "{\"sub\":\"h\"}"),
        NULL, NULL, &c);
    assert_string_equal(c.sub, "h");
    s_check_keys(g_keys, t_token(T_RS256, g_fx.rsa, 0, "{\"alg\":\"RS256\"}", "{\"sub\":\"r\"}"),
                 NULL, NULL, &c);
    assert_string_equal(c.sub, "r");
    s_check_keys(g_keys, t_token(T_ES256, g_fx.ec, 0, "{\"alg\":\"ES256\"}", "{\"sub\":\"e\"}"),
                 NULL, NULL, &c);
    assert_string_equal(c.sub, "e");
}

/* --- algorithm and key attacks ----------------------------------------- */

static void
test_alg_none(void **st)
{
    (void)st;
    /* unsigned, with the empty signature part of RFC 7519 section 6 */
    s_check(t_token(T_NONE, NULL, 0, "{\"alg\":\"none\"}", "{\"sub\":\"root\"}"), NULL,
            "alg_not_allowed");
    s_check(t_token(T_NONE, NULL, 0, "{\"alg\":\"none\",\"kid\":\"hs1\"}", "{\"sub\":\"root\"}"),
            NULL, "alg_not_allowed");
    s_check(t_token(T_NONE, NULL, 0, "{\"alg\":\"NONE\"}", "{\"sub\":\"root\"}"), NULL,
            "alg_not_allowed");
    /* with a signature part, even one that is a valid HS256 MAC */
    s_check(t_token(T_HS256, g_fx.secret, sizeof g_fx.secret, "{\"alg\":\"none\"}",
                    "{\"sub\":\"root\"}"),
            NULL, "alg_not_allowed");
    s_check(t_token(T_HS256, g_fx.secret, sizeof g_fx.secret, "{\"alg\":\"None\",\"kid\":\"hs1\"}",
                    "{\"sub\":\"root\"}"),
            NULL, "alg_not_allowed");
    /* other algorithms this verifier does not do */
    s_check(t_token(T_HS256, g_fx.secret, sizeof g_fx.secret, "{\"alg\":\"HS512\",\"kid\":\"hs1\"}",
                    "{\"sub\":\"x\"}"),
            NULL, "alg_not_allowed");
    s_check(t_token(T_HS256, g_fx.secret, sizeof g_fx.secret, "{\"alg\":\"hs256\",\"kid\":\"hs1\"}",
                    "{\"sub\":\"x\"}"),
            NULL, "alg_not_allowed");
}

static void
test_hs_rs_confusion(void **st)
{
    (void)st;
    /* The classic: HS256 with the RSA public key's PEM bytes as the HMAC
     * secret, naming the RSA key. */
    const char *pem = g_fx.rsa_pub_pem;
    s_check(t_token(T_HS256, pem, strlen(pem), "{\"alg\":\"HS256\",\"kid\":\"rsa1\"}",
                    "{\"sub\":\"admin\"}"),
            NULL, "alg_not_allowed");
    /* the same without kid: only HS keys are tried, and it is not theirs */
    s_check(t_token(T_HS256, pem, strlen(pem), "{\"alg\":\"HS256\"}", "{\"sub\":\"admin\"}"), NULL,
            "bad_signature");
    /* with a key file that has no HS key at all */
    char err[512];
    wk_jwt_keys_t *rsa_only = s_load_body(
        err, sizeof err, s_fmt("[key rsa1]\nalgs = RS256\npem_file = %s/rsa1.pub.pem\n", g_fx.dir));
    assert_non_null(rsa_only);
    s_check_keys(rsa_only,
                 t_token(T_HS256, pem, strlen(pem), "{\"alg\":\"HS256\"}", "{\"sub\":\"admin\"}"),
                 NULL, "unknown_key", NULL);
    s_check_keys(rsa_only,
                 t_token(T_HS256, pem, strlen(pem), "{\"alg\":\"HS256\",\"kid\":\"rsa1\"}",
                         "{\"sub\":\"admin\"}"),
                 NULL, "alg_not_allowed", NULL);
    wk_jwt_keys_destroy(&rsa_only);
    assert_null(rsa_only);

    /* RS and ES keys do not verify each other's algorithm either */
    s_check(t_token(T_RS256, g_fx.rsa, 0, "{\"alg\":\"RS256\",\"kid\":\"ec1\"}", "{\"sub\":\"x\"}"),
            NULL, "alg_not_allowed");
    s_check(t_token(T_ES256, g_fx.ec, 0, "{\"alg\":\"ES256\",\"kid\":\"rsa1\"}", "{\"sub\":\"x\"}"),
            NULL, "alg_not_allowed");
    s_check(t_token(T_RS256, g_fx.rsa, 0, "{\"alg\":\"RS256\",\"kid\":\"hs1\"}", "{\"sub\":\"x\"}"),
            NULL, "alg_not_allowed");
}

static void
test_unknown_kid(void **st)
{
    (void)st;
    static const char *const kids[] = {
        "hs2", "", "HS1", "hs1 ", "../../etc/passwd", "hs1\\u0000", "http://evil.example/key"};
    for (size_t i = 0; i < sizeof kids / sizeof kids[0]; i++) {
        char hdr[128];
        snprintf(hdr, sizeof hdr, "{\"alg\":\"HS256\",\"kid\":\"%s\"}", kids[i]);
        const char *code = strstr(kids[i], "\\u0000") ? "malformed_token" : "unknown_key";
        s_check(t_token(T_HS256, g_fx.secret, sizeof g_fx.secret, hdr, "{\"sub\":\"x\"}"), NULL,
                code);
    }
}

static void
test_embedded_jwk_ignored(void **st)
{
    (void)st;
    /* A token carrying its own key (jwk header) and signed by it: the key
     * in the token is never used, only the configured ones are tried. */
    EVP_PKEY *evil = t_gen_ec();
    char *x = t_bn_b64(evil, OSSL_PKEY_PARAM_EC_PUB_X, 32);
    char *y = t_bn_b64(evil, OSSL_PKEY_PARAM_EC_PUB_Y, 32);
    char hdr[512];
    snprintf(hdr, sizeof hdr,
             "{\"alg\":\"ES256\",\"jwk\":{\"kty\":\"EC\",\"crv\":\"P-256\",\"x\":\"%s\","
             "\"y\":\"%s\"},\"jku\":\"https://evil.example/jwks\"}",
             x, y);
    s_check(t_token(T_ES256, evil, 0, hdr, "{\"sub\":\"admin\"}"), NULL, "bad_signature");
    free(x);
    free(y);
    EVP_PKEY_free(evil);
}

static void
test_bad_signature(void **st)
{
    (void)st;
    const char *pl = "{\"sub\":\"alice\"}";
    s_mangle_fn flips[] = {s_flip_first, s_flip_last};
    for (size_t i = 0; i < 2; i++) {
        s_check(s_token_mangled(T_HS256, g_fx.secret, sizeof g_fx.secret, HDR_HS, pl, flips[i]),
                NULL, "bad_signature");
        s_check(s_token_mangled(T_RS256, g_fx.rsa, 0, HDR_RS, pl, flips[i]), NULL, "bad_signature");
        s_check(s_token_mangled(T_ES256, g_fx.ec, 0, HDR_ES, pl, flips[i]), NULL, "bad_signature");
    }
    /* a signature of another key of the right type */
    EVP_PKEY *other = t_gen_ec();
    s_check(t_token(T_ES256, other, 0, HDR_ES, pl), NULL, "bad_signature");
    EVP_PKEY_free(other);
    uint8_t other_secret[32];
    memset(other_secret, 7, sizeof other_secret);
    s_check(t_token(T_HS256, other_secret, sizeof other_secret, HDR_HS, pl), NULL, "bad_signature");

    /* a signed token with its payload swapped for another one */
    char *tok = s_hs(pl);
    char *evil = t_b64url("{\"sub\":\"admin\"}", 15);
    char *dot1 = strchr(tok, '.'), *dot2 = strrchr(tok, '.');
    char *forged = malloc(strlen(tok) + strlen(evil) + 1);
    assert_non_null(forged);
    sprintf(forged, "%.*s.%s%s", (int)(dot1 - tok), tok, evil, dot2);
    s_check(forged, NULL, "bad_signature");
    free(evil);
    free(tok);

    /* and an empty signature for each algorithm */
    s_check(t_token(T_NONE, NULL, 0, HDR_HS, pl), NULL, "bad_signature");
    s_check(t_token(T_NONE, NULL, 0, HDR_RS, pl), NULL, "bad_signature");
    s_check(t_token(T_NONE, NULL, 0, HDR_ES, pl), NULL, "bad_signature");
}

static void
test_signature_length(void **st)
{
    (void)st;
    const char *pl = "{\"sub\":\"alice\"}";
    /* ES256 is exactly 64 bytes of r||s */
    s_check(s_token_mangled(T_ES256, g_fx.ec, 0, HDR_ES, pl, s_cut_one), NULL, "bad_signature");
    s_check(s_token_mangled(T_ES256, g_fx.ec, 0, HDR_ES, pl, s_add_one), NULL, "bad_signature");
    s_check(s_token_mangled(T_ES256, g_fx.ec, 0, HDR_ES, pl, s_to_der), NULL, "bad_signature");
    s_check(s_token_mangled(T_HS256, g_fx.secret, sizeof g_fx.secret, HDR_HS, pl, s_cut_one), NULL,
            "bad_signature");
    s_check(s_token_mangled(T_HS256, g_fx.secret, sizeof g_fx.secret, HDR_HS, pl, s_add_one), NULL,
            "bad_signature");
    s_check(s_token_mangled(T_RS256, g_fx.rsa, 0, HDR_RS, pl, s_cut_one), NULL, "bad_signature");
    s_check(s_token_mangled(T_RS256, g_fx.rsa, 0, HDR_RS, pl, s_add_one), NULL, "bad_signature");
}

static void
test_no_kid_tries_bounded(void **st)
{
    (void)st;
    /* Five HS keys; a token without kid is tried against the first
     * WK_JWT_MAX_TRIES only. */
    char body[4096] = "";
    uint8_t secrets[5][32];
    for (int i = 0; i < 5; i++) {
        char name[32];
        memset(secrets[i], 'a' + i, 32);
        snprintf(name, sizeof name, "s%d.secret", i);
        t_write(t_path(&g_fx, name), secrets[i], 32, 0600);
        size_t len = strlen(body);
        snprintf(body + len, sizeof body - len, "[key k%d]\nalgs = HS256\nsecret_file = %s/%s\n", i,
                 g_fx.dir, name);
    }
    char err[512];
    wk_jwt_keys_t *keys = s_load_body(err, sizeof err, body);
    assert_non_null(keys);
    assert_int_equal(wk_jwt_keys_count(keys), 5);
    assert_int_equal(WK_JWT_MAX_TRIES, 4);
    for (int i = 0; i < 5; i++) {
        s_check_keys(keys,
                     t_token(T_HS256, secrets[i], 32, "{\"alg\":\"HS256\"}", "{\"sub\":\"x\"}"),
                     NULL, i < 4 ? NULL : "bad_signature", NULL);
        /* with its kid, the fifth key is found */
        char hdr[64];
        snprintf(hdr, sizeof hdr, "{\"alg\":\"HS256\",\"kid\":\"k%d\"}", i);
        s_check_keys(keys, t_token(T_HS256, secrets[i], 32, hdr, "{\"sub\":\"x\"}"), NULL, NULL,
                     NULL);
    }
    wk_jwt_keys_destroy(&keys);
}

/* --- time, issuer, audience -------------------------------------------- */

static void
test_exp(void **st)
{
    (void)st;
    wk_jwt_opts_t strict = {0, NULL, NULL};
    wk_jwt_claims_t c;
    s_check(s_hs(s_fmt("{\"sub\":\"a\",\"exp\":%lld}", T_NOW - 31)), NULL, "token_expired");
    s_check(s_hs(s_fmt("{\"sub\":\"a\",\"exp\":%lld}", T_NOW - 30)), NULL, NULL); /* leeway */
    s_check(s_hs(s_fmt("{\"sub\":\"a\",\"exp\":%lld}", T_NOW - 1)), NULL, NULL);
    s_check(s_hs(s_fmt("{\"sub\":\"a\",\"exp\":%lld}", T_NOW - 1)), &strict, "token_expired");
    s_check(s_hs(s_fmt("{\"sub\":\"a\",\"exp\":%lld}", T_NOW)), &strict, NULL);
    s_check(s_hs("{\"sub\":\"a\",\"exp\":0}"), NULL, "token_expired");
    /* NumericDate may have a fraction: exp rounds down */
    s_check(s_hs(s_fmt("{\"sub\":\"a\",\"exp\":%lld.5}", T_NOW - 1)), &strict, "token_expired");
    s_check_keys(g_keys, s_hs(s_fmt("{\"sub\":\"a\",\"exp\":%lld.9}", T_NOW + 100)), NULL, NULL,
                 &c);
    assert_int_equal(c.exp, T_NOW + 100);
    s_check(s_hs("{\"sub\":\"a\",\"exp\":1e300}"), NULL, "malformed_token");
    s_check_keys(g_keys, s_hs("{\"sub\":\"a\",\"exp\":9223372036854775807}"), NULL, NULL, &c);
    assert_int_equal(c.exp, INT64_MAX);
    /* a longer leeway */
    wk_jwt_opts_t lax = {300, NULL, NULL};
    s_check(s_hs(s_fmt("{\"sub\":\"a\",\"exp\":%lld}", T_NOW - 299)), &lax, NULL);
    s_check(s_hs(s_fmt("{\"sub\":\"a\",\"exp\":%lld}", T_NOW - 301)), &lax, "token_expired");
}

static void
test_nbf_iat(void **st)
{
    (void)st;
    wk_jwt_opts_t strict = {0, NULL, NULL};
    s_check(s_hs(s_fmt("{\"sub\":\"a\",\"nbf\":%lld}", T_NOW + 30)), NULL, NULL);
    s_check(s_hs(s_fmt("{\"sub\":\"a\",\"nbf\":%lld}", T_NOW + 31)), NULL, "token_not_yet_valid");
    s_check(s_hs(s_fmt("{\"sub\":\"a\",\"nbf\":%lld}", T_NOW + 1)), &strict, "token_not_yet_valid");
    s_check(s_hs(s_fmt("{\"sub\":\"a\",\"nbf\":%lld}", T_NOW)), &strict, NULL);
    /* nbf rounds up */
    s_check(s_hs(s_fmt("{\"sub\":\"a\",\"nbf\":%lld.2}", T_NOW)), &strict, "token_not_yet_valid");
    s_check(s_hs(s_fmt("{\"sub\":\"a\",\"iat\":%lld}", T_NOW + 31)), NULL, "token_not_yet_valid");
    s_check(s_hs(s_fmt("{\"sub\":\"a\",\"iat\":%lld}", T_NOW + 30)), NULL, NULL);
    s_check(s_hs(s_fmt("{\"sub\":\"a\",\"iat\":%lld}", T_NOW - 86400)), NULL, NULL);
    s_check(s_hs(s_fmt("{\"sub\":\"a\",\"iat\":%lld}", T_NOW + 1)), &strict, "token_not_yet_valid");
    /* expiry is checked first */
    s_check(s_hs(s_fmt("{\"sub\":\"a\",\"exp\":%lld,\"nbf\":%lld}", T_NOW - 100, T_NOW + 100)),
            NULL, "token_expired");
}

static void
test_iss(void **st)
{
    (void)st;
    wk_jwt_opts_t o = {30, "https://id.example", NULL};
    s_check(s_hs("{\"sub\":\"a\",\"iss\":\"https://id.example\"}"), &o, NULL);
    s_check(s_hs("{\"sub\":\"a\",\"iss\":\"https://evil.example\"}"), &o, "bad_issuer");
    s_check(s_hs("{\"sub\":\"a\",\"iss\":\"https://id.example/\"}"), &o, "bad_issuer");
    s_check(s_hs("{\"sub\":\"a\",\"iss\":\"https://id.exampl\"}"), &o, "bad_issuer");
    s_check(s_hs("{\"sub\":\"a\"}"), &o, "bad_issuer");
    /* not configured: not checked (but still typed) */
    s_check(s_hs("{\"sub\":\"a\",\"iss\":\"https://evil.example\"}"), NULL, NULL);
    wk_jwt_opts_t empty = {30, "", ""};
    s_check(s_hs("{\"sub\":\"a\",\"iss\":\"x\",\"aud\":\"y\"}"), &empty, NULL);
    /* time before issuer */
    s_check(s_hs(s_fmt("{\"sub\":\"a\",\"iss\":\"x\",\"exp\":%lld}", T_NOW - 100)), &o,
            "token_expired");
}

static void
test_aud(void **st)
{
    (void)st;
    wk_jwt_opts_t o = {30, NULL, "wsgate"};
    s_check(s_hs("{\"sub\":\"a\",\"aud\":\"wsgate\"}"), &o, NULL);
    s_check(s_hs("{\"sub\":\"a\",\"aud\":[\"other\",\"wsgate\"]}"), &o, NULL);
    s_check(s_hs("{\"sub\":\"a\",\"aud\":\"other\"}"), &o, "bad_audience");
    s_check(s_hs("{\"sub\":\"a\",\"aud\":\"wsgatex\"}"), &o, "bad_audience");
    s_check(s_hs("{\"sub\":\"a\",\"aud\":[\"other\",\"more\"]}"), &o, "bad_audience");
    s_check(s_hs("{\"sub\":\"a\",\"aud\":[]}"), &o, "bad_audience");
    s_check(s_hs("{\"sub\":\"a\"}"), &o, "bad_audience");
    /* issuer before audience */
    wk_jwt_opts_t both = {30, "i", "wsgate"};
    s_check(s_hs("{\"sub\":\"a\",\"iss\":\"j\",\"aud\":\"x\"}"), &both, "bad_issuer");
    s_check(s_hs("{\"sub\":\"a\",\"iss\":\"i\",\"aud\":[\"wsgate\"]}"), &both, NULL);
}

/* --- malformed tokens -------------------------------------------------- */

/* header.payload.signature from three already-encoded parts. */
static char *
s_parts(const char *h, const char *p, const char *s)
{
    char *t = malloc(strlen(h) + strlen(p) + strlen(s) + 3);
    assert_non_null(t);
    sprintf(t, "%s.%s.%s", h, p, s);
    return t;
}

/* A token whose header and payload are given raw (not necessarily JSON),
 * with a valid HS256 MAC so only the shape can be wrong. */
static char *
s_hs_raw(const char *header, const char *payload)
{
    return t_token(T_HS256, g_fx.secret, sizeof g_fx.secret, header, payload);
}

static void
test_malformed(void **st)
{
    (void)st;
    wk_jwt_claims_t c;
    wk_jwt_err_t e;

    assert_int_equal(wk_jwt_verify(g_keys, NULL, "", 0, T_NOW, &c, &e), -1);
    assert_string_equal(e.code, "malformed_token");
    assert_int_equal(wk_jwt_verify(g_keys, NULL, NULL, 0, T_NOW, &c, &e), -1);
    assert_string_equal(e.code, "malformed_token");

    char *good = s_hs("{\"sub\":\"a\"}");
    char *dot1 = strchr(good, '.'), *dot2 = strrchr(good, '.');
    char h[256], p[256], s[256];
    snprintf(h, sizeof h, "%.*s", (int)(dot1 - good), good);
    snprintf(p, sizeof p, "%.*s", (int)(dot2 - dot1 - 1), dot1 + 1);
    snprintf(s, sizeof s, "%s", dot2 + 1);

    /* the number of parts */
    s_check(strdup("abc"), NULL, "malformed_token");
    s_check(strdup(s_fmt("%s.%s", h, p)), NULL, "malformed_token");             /* two */
    s_check(strdup(s_fmt("%s.%s.%s.%s", h, p, s, s)), NULL, "malformed_token"); /* four */
    s_check(strdup(s_fmt("%s.%s.%s.", h, p, s)), NULL, "malformed_token");
    s_check(strdup(s_fmt(".%s.%s", p, s)), NULL, "malformed_token");
    s_check(strdup(s_fmt("%s..%s", h, s)), NULL, "malformed_token");
    s_check(strdup(".."), NULL, "malformed_token");
    s_check(strdup("."), NULL, "malformed_token");
    /* bad base64url in each part */
    s_check(s_parts(s_fmt("%s*", h), p, s), NULL, "malformed_token");
    s_check(s_parts(h, s_fmt("%s=", p), s), NULL, "malformed_token");
    s_check(s_parts(h, p, s_fmt("%s==", s)), NULL, "malformed_token");
    s_check(s_parts(h, p, "!!!!"), NULL, "malformed_token");
    s_check(s_parts(s_fmt(" %s", h), p, s), NULL, "malformed_token");
    s_check(s_parts(h, p, s_fmt("%s\n", s)), NULL, "malformed_token");
    free(good);

    /* header and payload must be JSON objects */
    s_check(s_hs_raw("not json", "{\"sub\":\"a\"}"), NULL, "malformed_token");
    s_check(s_hs_raw("[\"HS256\"]", "{\"sub\":\"a\"}"), NULL, "malformed_token");
    s_check(s_hs_raw(HDR_HS " ", "{\"sub\":\"a\"}"), NULL, NULL); /* trailing blank is JSON */
    s_check(s_hs_raw(HDR_HS "x", "{\"sub\":\"a\"}"), NULL, "malformed_token");
    s_check(s_hs_raw(HDR_HS, "\"sub\""), NULL, "malformed_token");
    s_check(s_hs_raw(HDR_HS, "null"), NULL, "malformed_token");
    s_check(s_hs_raw(HDR_HS, "{\"sub\":\"a\""), NULL, "malformed_token");
    s_check(s_hs_raw(HDR_HS, "{\"sub\":\"a\"}{}"), NULL, "malformed_token");
    s_check(s_hs_raw(HDR_HS, "{\"sub\":\"a\\u0000b\"}"), NULL, "malformed_token");
    s_check(s_hs_raw(HDR_HS, "{\"sub\":\"\xff\"}"), NULL, "malformed_token");
    /* duplicate names: which sub would count? */
    s_check(s_hs_raw(HDR_HS, "{\"sub\":\"a\",\"sub\":\"admin\"}"), NULL, "malformed_token");
    s_check(s_hs_raw("{\"alg\":\"HS256\",\"alg\":\"none\"}", "{\"sub\":\"a\"}"), NULL,
            "malformed_token");
    /* header fields */
    s_check(s_hs_raw("{\"kid\":\"hs1\"}", "{\"sub\":\"a\"}"), NULL, "malformed_token");
    s_check(s_hs_raw("{\"alg\":256}", "{\"sub\":\"a\"}"), NULL, "malformed_token");
    s_check(s_hs_raw("{\"alg\":null}", "{\"sub\":\"a\"}"), NULL, "malformed_token");
    s_check(s_hs_raw("{\"alg\":\"HS256\",\"kid\":1}", "{\"sub\":\"a\"}"), NULL, "malformed_token");
    s_check(s_hs_raw("{\"alg\":\"HS256\",\"kid\":\"hs1\",\"crit\":[\"exp\"],\"exp\":1}",
                     "{\"sub\":\"a\"}"),
            NULL, "malformed_token");
}

static void
test_claim_types(void **st)
{
    (void)st;
    static const char *const bad[] = {
        "{}",
        "{\"sub\":\"\"}",
        "{\"sub\":7}",
        "{\"sub\":null}",
        "{\"sub\":[\"a\"]}",
        "{\"sub\":\"a\",\"exp\":\"1700000000\"}",
        "{\"sub\":\"a\",\"exp\":true}",
        "{\"sub\":\"a\",\"exp\":null}",
        "{\"sub\":\"a\",\"exp\":-1}",
        "{\"sub\":\"a\",\"exp\":-0.5}",
        "{\"sub\":\"a\",\"nbf\":[1]}",
        "{\"sub\":\"a\",\"iat\":{}}",
        "{\"sub\":\"a\",\"iss\":5}",
        "{\"sub\":\"a\",\"aud\":5}",
        "{\"sub\":\"a\",\"aud\":[\"x\",1]}",
        "{\"sub\":\"a\",\"aud\":{\"x\":1}}",
        "{\"sub\":\"a\",\"channels\":null}",
        "{\"sub\":\"a\",\"channels\":[]}",
        "{\"sub\":\"a\",\"channels\":\"room\"}",
        "{\"sub\":\"a\",\"channels\":{\"sub\":\"room\"}}",
        "{\"sub\":\"a\",\"channels\":{\"sub\":[1]}}",
        "{\"sub\":\"a\",\"channels\":{\"pub\":[\"\"]}}",
        "{\"sub\":\"a\",\"channels\":{\"pub\":[null]}}",
        "{\"sub\":\"a\",\"channels\":{\"sub\":[\"x\"],\"pub\":{}}}",
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        s_check(s_hs(bad[i]), NULL, "malformed_token");

    /* sub: 1..128 bytes, counted in bytes */
    char sub[512];
    memset(sub, 'u', 128);
    sub[128] = '\0';
    wk_jwt_claims_t c;
    s_check_keys(g_keys, s_hs(s_fmt("{\"sub\":\"%s\"}", sub)), NULL, NULL, &c);
    assert_int_equal(strlen(c.sub), 128);
    s_check(s_hs(s_fmt("{\"sub\":\"%sx\"}", sub)), NULL, "malformed_token");
    sub[0] = '\0';
    for (int i = 0; i < 64; i++)
        strcat(sub, "\xc3\xa9"); /* é, 2 bytes */
    s_check_keys(g_keys, s_hs(s_fmt("{\"sub\":\"%s\"}", sub)), NULL, NULL, &c);
    assert_string_equal(c.sub, sub);
    s_check(s_hs(s_fmt("{\"sub\":\"%s\xc3\xa9\"}", sub)), NULL, "malformed_token");
    /* an escaped character counts decoded */
    s_check_keys(g_keys, s_hs("{\"sub\":\"a\\u00e9\\\"\"}"), NULL, NULL, &c);
    assert_string_equal(c.sub, "a\xc3\xa9\"");

    /* channel patterns: 1..128 bytes, at most 32 per list */
    char pat[200], list[8192];
    memset(pat, 'p', 128);
    pat[128] = '\0';
    strcpy(list, "[");
    for (int i = 0; i < 32; i++)
        sprintf(list + strlen(list), "%s\"c%d\"", i ? "," : "", i);
    strcat(list, "]");
    s_check_keys(g_keys,
                 s_hs(s_fmt("{\"sub\":\"a\",\"channels\":{\"sub\":%s,\"pub\":[\"%s\"],"
                            "\"future\":1}}",
                            list, pat)),
                 NULL, NULL, &c);
    assert_int_equal(c.chan_sub.n, 32);
    assert_string_equal(c.chan_sub.v[31], "c31");
    assert_int_equal(c.chan_pub.n, 1);
    assert_string_equal(c.chan_pub.v[0], pat);
    s_check(s_hs(s_fmt("{\"sub\":\"a\",\"channels\":{\"pub\":[\"%sq\"]}}", pat)), NULL,
            "malformed_token");
    list[strlen(list) - 1] = '\0';
    strcat(list, ",\"c32\"]");
    s_check(s_hs(s_fmt("{\"sub\":\"a\",\"channels\":{\"sub\":%s}}", list)), NULL,
            "malformed_token");
    s_check_keys(g_keys, s_hs("{\"sub\":\"a\",\"channels\":{\"sub\":[]}}"), NULL, NULL, &c);
    assert_int_equal(c.chan_sub.n, 0);
    assert_int_equal(c.chan_pub.n, 0);

    /* a malformed claim in a token with a bad signature: the signature
     * speaks first */
    uint8_t other[32] = {1};
    s_check(t_token(T_HS256, other, sizeof other, HDR_HS, "{\"sub\":7}"), NULL, "bad_signature");
}

static void
test_token_size(void **st)
{
    (void)st;
    wk_jwt_claims_t c;
    wk_jwt_err_t e;
    char *big = malloc(WK_JWT_MAX_TOKEN + 2);
    assert_non_null(big);
    memset(big, 'A', WK_JWT_MAX_TOKEN + 1);
    big[WK_JWT_MAX_TOKEN + 1] = '\0';
    assert_int_equal(wk_jwt_verify(g_keys, NULL, big, WK_JWT_MAX_TOKEN + 1, T_NOW, &c, &e), -1);
    assert_string_equal(e.code, "token_too_large");
    assert_int_equal(wk_jwt_verify(g_keys, NULL, big, SIZE_MAX, T_NOW, &c, &e), -1);
    assert_string_equal(e.code, "token_too_large");
    free(big);

    /* A valid token of exactly WK_JWT_MAX_TOKEN bytes passes; one byte
     * more of padding claim does not. */
    char *pad = malloc(WK_JWT_MAX_TOKEN);
    assert_non_null(pad);
    bool exact = false;
    for (size_t n = 5500; n < 6200 && !exact; n++) {
        memset(pad, 'x', n);
        pad[n] = '\0';
        char *tok = s_hs(s_fmt("{\"sub\":\"a\",\"pad\":\"%s\"}", pad));
        size_t len = strlen(tok);
        if (len == WK_JWT_MAX_TOKEN) {
            exact = true;
            assert_int_equal(wk_jwt_verify(g_keys, NULL, tok, len, T_NOW, &c, &e), 0);
            assert_string_equal(c.sub, "a");
        } else if (len > WK_JWT_MAX_TOKEN) {
            assert_int_equal(wk_jwt_verify(g_keys, NULL, tok, len, T_NOW, &c, &e), -1);
            assert_string_equal(e.code, "token_too_large");
        }
        free(tok);
    }
    assert_true(exact);
    free(pad);
}

/* --- key files --------------------------------------------------------- */

static void
test_keyfile_refusals(void **st)
{
    (void)st;
    const char *d = g_fx.dir;
    EVP_PKEY *small = t_gen_rsa(1024);
    char *small_pem = t_pub_pem(small);
    t_write(t_path(&g_fx, "small.pem"), small_pem, strlen(small_pem), 0644);
    free(small_pem);
    EVP_PKEY_free(small);
    BIO *b = BIO_new_file(t_path(&g_fx, "priv.pem"), "w");
    assert_non_null(b);
    assert_int_equal(PEM_write_bio_PrivateKey(b, g_fx.ec, NULL, NULL, 0, NULL, NULL), 1);
    BIO_free(b);
    t_write(t_path(&g_fx, "short.secret"), "0123456789abcdef0123456789abcde", 31, 0600);
    t_write(t_path(&g_fx, "junk.pem"), "-----BEGIN PUBLIC KEY-----\nAAAA\n", 32, 0644);

    /* one key, HMAC and public-key algorithms */
    s_expect_refused(s_fmt("[key mix]\nalgs = HS256, RS256\nsecret_file = %s/hs1.secret\n", d),
                     "[key mix]", "mixes HS256");
    s_expect_refused(s_fmt("[key mix]\nalgs = RS256,HS256\npem_file = %s/rsa1.pub.pem\n", d),
                     "test.ini: [key mix]", "mixes");
    s_expect_refused(s_fmt("[key two]\nalgs = RS256, ES256\npem_file = %s/rsa1.pub.pem\n", d),
                     "[key two]", "different key types");
    s_expect_refused(s_fmt("[key n]\nalgs = none\nsecret_file = %s/hs1.secret\n", d), "[key n]",
                     "'none' is never allowed");
    s_expect_refused(s_fmt("[key n]\nalgs = HS384\nsecret_file = %s/hs1.secret\n", d),
                     "unknown algorithm 'HS384'", NULL);
    s_expect_refused(s_fmt("[key n]\nalgs = ,\nsecret_file = %s/hs1.secret\n", d), "algs: empty",
                     NULL);
    s_expect_refused(s_fmt("[key n]\nsecret_file = %s/hs1.secret\n", d), "[key n]: algs missing",
                     NULL);
    s_expect_refused(s_fmt("[key n]\nalgs = HS256\nsecret_file = %s/short.secret\n", d), "31 bytes",
                     "at least 32");
    s_expect_refused(s_fmt("[key n]\nalgs = HS256\nsecret_file = %s/nope\n", d), "/nope",
                     "No such file");
    s_expect_refused(s_fmt("[key n]\nalgs = HS256\npem_file = %s/rsa1.pub.pem\n", d),
                     "needs secret_file", NULL);
    s_expect_refused(s_fmt("[key n]\nalgs = RS256\nsecret_file = %s/hs1.secret\n", d),
                     "needs pem_file", NULL);
    s_expect_refused(s_fmt("[key n]\nalgs = RS256\npem_file = %s/ec1.pub.pem\n", d),
                     "RS256 needs an RSA public key", NULL);
    s_expect_refused(s_fmt("[key n]\nalgs = ES256\npem_file = %s/rsa1.pub.pem\n", d),
                     "ES256 needs an EC public key on P-256", NULL);
    s_expect_refused(s_fmt("[key n]\nalgs = RS256\npem_file = %s/small.pem\n", d), "1024 bits",
                     "at least 2048");
    s_expect_refused(s_fmt("[key n]\nalgs = ES256\npem_file = %s/priv.pem\n", d),
                     "holds a private key", NULL);
    s_expect_refused(s_fmt("[key n]\nalgs = ES256\npem_file = %s/junk.pem\n", d),
                     "expected a PEM public key", NULL);
    s_expect_refused(s_fmt("[key a]\nalgs = HS256\nsecret_file = %s/hs1.secret\n"
                           "[key b]\nalgs = ES256\npem_file = %s/ec1.pub.pem\n"
                           "[key a]\nalgs = RS256\npem_file = %s/rsa1.pub.pem\n",
                           d, d, d),
                     "kid 'a' given twice", NULL);
    s_expect_refused(s_fmt("[key n]\nalgs = HS256\nsecret_file = %s/hs1.secret\nsecret = x\n", d),
                     "test.ini:4: [key n]: unknown setting 'secret'", NULL);
    s_expect_refused(s_fmt("[key n]\nalgs = HS256\nalgs = HS256\nsecret_file = %s/hs1.secret\n", d),
                     "test.ini:3", "algs given twice");
    s_expect_refused("[keys]\nalgs = HS256\n", "test.ini:2: [keys]: unknown section", NULL);
    s_expect_refused("algs = HS256\n", "test.ini:1: []: unknown section", NULL);
    s_expect_refused("[key n]\nthis line is junk\n", "test.ini:2: syntax error", NULL);
    /* inih cuts long section names: a kid that might have lost its end is
     * refused, the longest one that cannot is taken */
    char kid[64];
    memset(kid, 'k', 45);
    kid[45] = '\0';
    s_expect_refused(s_fmt("[key %s]\nalgs = HS256\nsecret_file = %s/hs1.secret\n", kid, d),
                     "must be 1..44 characters", NULL);
    kid[44] = '\0';
    char err[512];
    wk_jwt_keys_t *k44 = s_load_body(
        err, sizeof err, s_fmt("[key %s]\nalgs = HS256\nsecret_file = %s/hs1.secret\n", kid, d));
    assert_non_null(k44);
    char hdr[128];
    snprintf(hdr, sizeof hdr, "{\"alg\":\"HS256\",\"kid\":\"%s\"}", kid);
    s_check_keys(k44, t_token(T_HS256, g_fx.secret, sizeof g_fx.secret, hdr, "{\"sub\":\"x\"}"),
                 NULL, NULL, NULL);
    wk_jwt_keys_destroy(&k44);
    /* an indented line continues the previous value (inih): caught */
    s_expect_refused(s_fmt("[key n]\nalgs = HS256\n  secret_file = %s/hs1.secret\n", d),
                     "algs given twice", NULL);
    s_expect_refused("; nothing\n", "no keys", NULL);
    s_expect_refused("", "no keys", NULL);

    assert_null(wk_jwt_keys_load(t_path(&g_fx, "missing.ini"), err, sizeof err));
    assert_non_null(strstr(err, "missing.ini: No such file"));
}

static void
test_secret_readable_warning(void **st)
{
    (void)st;
    t_write(t_path(&g_fx, "open.secret"), g_fx.secret, sizeof g_fx.secret, 0644);
    const char *body = s_fmt("[key open]\nalgs = HS256\nsecret_file = %s/open.secret\n", g_fx.dir);
    char out_path[256], err[512], got[2048];
    snprintf(out_path, sizeof out_path, "%s", t_path(&g_fx, "stderr.txt"));

    for (int round = 0; round < 2; round++) {
        /* round 0: 0644, warned; round 1: 0600, quiet */
        if (round == 1)
            assert_int_equal(chmod(t_path(&g_fx, "open.secret"), 0600), 0);
        fflush(stderr);
        int saved = dup(2);
        int fd = open(out_path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
        assert_true(saved >= 0 && fd >= 0);
        dup2(fd, 2);
        close(fd);
        wk_jwt_keys_t *k = s_load_body(err, sizeof err, body);
        fflush(stderr);
        dup2(saved, 2);
        close(saved);
        assert_non_null(k);
        wk_jwt_keys_destroy(&k);
        FILE *f = fopen(out_path, "r");
        assert_non_null(f);
        size_t n = fread(got, 1, sizeof got - 1, f);
        fclose(f);
        got[n] = '\0';
        if (round == 0) {
            assert_non_null(strstr(got, "open.secret"));
            assert_non_null(strstr(got, "readable by others"));
        } else {
            assert_string_equal(got, "");
        }
    }
}

/* Writes a JWKS with an RSA, an EC and an oct key; returns its path. */
static const char *
s_write_jwks(const uint8_t *oct, size_t oct_len, const char *extra)
{
    char *n = t_bn_b64(g_fx.rsa, OSSL_PKEY_PARAM_RSA_N, 0);
    char *e = t_bn_b64(g_fx.rsa, OSSL_PKEY_PARAM_RSA_E, 0);
    char *x = t_bn_b64(g_fx.ec, OSSL_PKEY_PARAM_EC_PUB_X, 32);
    char *y = t_bn_b64(g_fx.ec, OSSL_PKEY_PARAM_EC_PUB_Y, 32);
    char *k = t_b64url(oct, oct_len);
    static char path[256];
    snprintf(path, sizeof path, "%s", t_path(&g_fx, "jwks.json"));
    t_writef(path,
             "{\"keys\":[\n"
             " {\"kty\":\"RSA\",\"kid\":\"jr\",\"alg\":\"RS256\",\"use\":\"sig\",\"n\":\"%s\","
             "\"e\":\"%s\"},\n"
             " {\"kty\":\"EC\",\"kid\":\"je\",\"alg\":\"ES256\",\"crv\":\"P-256\",\"x\":\"%s\","
             "\"y\":\"%s\"},\n"
             " {\"kty\":\"oct\",\"kid\":\"jo\",\"alg\":\"HS256\",\"k\":\"%s\"}%s\n"
             "]}\n",
             n, e, x, y, k, extra);
    free(n);
    free(e);
    free(x);
    free(y);
    free(k);
    return path;
}

static void
test_jwks(void **st)
{
    (void)st;
    uint8_t oct[40];
    memset(oct, 0x5C, sizeof oct);
    const char *jwks = s_write_jwks(oct, sizeof oct, "");
    char err[1024];
    wk_jwt_keys_t *keys = s_load_body(
        err, sizeof err,
        s_fmt("[key hs1]\nalgs = HS256\nsecret_file = %s/hs1.secret\n[jwks]\nfile = %s\n", g_fx.dir,
              jwks));
    if (!keys)
        fail_msg("%s", err);
    assert_int_equal(wk_jwt_keys_count(keys), 4);
    wk_jwt_claims_t c;
    s_check_keys(keys,
                 t_token(T_RS256, g_fx.rsa, 0, "{\"alg\":\"RS256\",\"kid\":\"jr\"}",
                         "{\"sub\":\"via-rsa\"}"),
                 NULL, NULL, &c);
    assert_string_equal(c.sub, "via-rsa");
    s_check_keys(
        keys,
        t_token(T_ES256, g_fx.ec, 0, "{\"alg\":\"ES256\",\"kid\":\"je\"}", "{\"sub\":\"via-ec\"}"),
        NULL, NULL, &c);
    assert_string_equal(c.sub, "via-ec");
    s_check_keys(keys,
                 t_token(T_HS256, oct, sizeof oct, "{\"alg\":\"HS256\",\"kid\":\"jo\"}",
                         "{\"sub\":\"via-oct\"}"),
                 NULL, NULL, &c);
    assert_string_equal(c.sub, "via-oct");
    /* without kid the oct key is the second HS key tried */
    s_check_keys(keys, t_token(T_HS256, oct, sizeof oct, "{\"alg\":\"HS256\"}", "{\"sub\":\"o\"}"),
                 NULL, NULL, &c);
    /* kid picks the key, the key's alg must match */
    s_check_keys(
        keys,
        t_token(T_RS256, g_fx.rsa, 0, "{\"alg\":\"RS256\",\"kid\":\"je\"}", "{\"sub\":\"x\"}"),
        NULL, "alg_not_allowed", NULL);
    s_check_keys(
        keys,
        t_token(T_HS256, oct, sizeof oct, "{\"alg\":\"HS256\",\"kid\":\"hs1\"}", "{\"sub\":\"x\"}"),
        NULL, "bad_signature", NULL);
    wk_jwt_keys_destroy(&keys);

    /* refusals */
    const char *ini = s_fmt("[jwks]\nfile = %s\n", t_path(&g_fx, "jwks.json"));
    char ini_copy[512];
    snprintf(ini_copy, sizeof ini_copy, "%s", ini);
    static const struct {
        const char *extra;
        const char *needle;
    } bad[] = {
        {",{\"kty\":\"oct\",\"alg\":\"HS256\",\"k\":\"AAAA\"}", "keys[3]: kid missing"},
        {",{\"kty\":\"oct\",\"kid\":\"z\",\"k\":\"AAAA\"}", "(kid 'z'): alg missing"},
        {",{\"kty\":\"oct\",\"kid\":\"z\",\"alg\":\"none\",\"k\":\"AAAA\"}", "alg 'none' not"},
        {",{\"kty\":\"oct\",\"kid\":\"z\",\"alg\":\"RS256\",\"k\":\"AAAA\"}", "alg must be HS256"},
        {",{\"kty\":\"oct\",\"kid\":\"z\",\"alg\":\"HS256\",\"k\":\"AAAA\"}", "at least 32"},
        {",{\"kty\":\"oct\",\"kid\":\"z\",\"alg\":\"HS256\",\"k\":\"A+AA\"}",
         "'k' is not base64url"},
        {",{\"kty\":\"RSA\",\"kid\":\"z\",\"alg\":\"ES256\",\"n\":\"AQAB\",\"e\":\"AQAB\"}",
         "RS256 only"},
        {",{\"kty\":\"RSA\",\"kid\":\"z\",\"alg\":\"RS256\",\"n\":\"AQAB\",\"e\":\"AQAB\"}",
         "at least 2048"},
        {",{\"kty\":\"RSA\",\"kid\":\"z\",\"alg\":\"RS256\",\"e\":\"AQAB\"}", "'n' missing"},
        {",{\"kty\":\"EC\",\"kid\":\"z\",\"alg\":\"ES256\",\"crv\":\"P-384\",\"x\":\"AA\","
         "\"y\":\"AA\"}",
         "crv must be P-256"},
        {",{\"kty\":\"EC\",\"kid\":\"z\",\"alg\":\"ES256\",\"crv\":\"P-256\",\"x\":\"AQ\","
         "\"y\":\"AQ\"}",
         "32 bytes each"},
        {",{\"kty\":\"EC\",\"kid\":\"z\",\"alg\":\"ES256\",\"crv\":\"P-256\","
         "\"x\":\"AQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQE\","
         "\"y\":\"AQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQE\"}",
         "not a point on P-256"},
        {",{\"kty\":\"OKP\",\"kid\":\"z\",\"alg\":\"ES256\"}", "kty 'OKP' not supported"},
        {",{\"kty\":\"oct\",\"kid\":\"jr\",\"alg\":\"HS256\","
         "\"k\":\"AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA\"}",
         "kid 'jr' given twice"},
        {",{\"kty\":\"oct\",\"kid\":\"z\",\"alg\":\"HS256\",\"use\":\"enc\","
         "\"k\":\"AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA\"}",
         "use must be \"sig\""},
        {",7", "keys[3]: not an object"},
        {",", "jwks.json:"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        s_write_jwks(oct, sizeof oct, bad[i].extra);
        s_expect_refused(ini_copy, bad[i].needle, "jwks.json");
    }
    t_writef(t_path(&g_fx, "jwks.json"), "{\"keys\":{}}");
    s_expect_refused(ini_copy, "expected {\"keys\": [...]}", NULL);
    s_expect_refused(s_fmt("[jwks]\nfile = %s/nope.json\n", g_fx.dir), "nope.json", "No such file");
    s_expect_refused(s_fmt("[jwks]\nurl = https://x\n"), "unknown setting 'url'", NULL);
}

/* The development issuer's signer: its tokens verify, its base64url
 * decodes back, and only an HS256-only key signs. The token must equal the
 * independent signer's (jwtutil.h) for the same header and claims. */
static void
test_sign_hs256(void **st)
{
    (void)st;
    char tok[WK_JWT_MAX_TOKEN], b64[72];
    uint8_t raw[48], back[48];
    const char *claims = "{\"sub\":\"dev-user\",\"exp\":1700000600}";

    for (size_t n = 0; n <= sizeof raw; n++) {
        for (size_t i = 0; i < n; i++)
            raw[i] = (uint8_t)(i * 37 + n);
        long m = wk_jwt_b64url_encode(raw, n, b64, sizeof b64);
        assert_true(m >= 0);
        assert_int_equal(strlen(b64), (size_t)m);
        assert_int_equal(wk_jwt_b64url_decode(b64, (size_t)m, back, sizeof back), (long)n);
        assert_memory_equal(raw, back, n);
    }
    assert_int_equal(wk_jwt_b64url_encode(raw, 3, b64, 4), -1); /* no room for the NUL */

    long n = wk_jwt_sign_hs256(g_keys, "hs1", claims, tok, sizeof tok);
    assert_true(n > 0);
    char *ref = t_token(T_HS256, g_fx.secret, sizeof g_fx.secret,
                        "{\"alg\":\"HS256\",\"typ\":\"JWT\",\"kid\":\"hs1\"}", claims);
    assert_string_equal(tok, ref);
    free(ref);
    wk_jwt_claims_t out;
    s_check_keys(g_keys, strdup(tok), NULL, NULL, &out);
    assert_string_equal(out.sub, "dev-user");
    assert_int_equal(out.exp, 1700000600);

    assert_int_equal(wk_jwt_sign_hs256(g_keys, "rsa1", claims, tok, sizeof tok), -1);
    assert_int_equal(wk_jwt_sign_hs256(g_keys, "nosuch", claims, tok, sizeof tok), -1);
    assert_int_equal(wk_jwt_sign_hs256(g_keys, "hs1", claims, tok, 40), -1);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_b64url),
        cmocka_unit_test(test_sign_hs256),
        cmocka_unit_test(test_valid_hs256),
        cmocka_unit_test(test_valid_rs256),
        cmocka_unit_test(test_valid_es256),
        cmocka_unit_test(test_valid_without_kid),
        cmocka_unit_test(test_alg_none),
        cmocka_unit_test(test_hs_rs_confusion),
        cmocka_unit_test(test_unknown_kid),
        cmocka_unit_test(test_embedded_jwk_ignored),
        cmocka_unit_test(test_bad_signature),
        cmocka_unit_test(test_signature_length),
        cmocka_unit_test(test_no_kid_tries_bounded),
        cmocka_unit_test(test_exp),
        cmocka_unit_test(test_nbf_iat),
        cmocka_unit_test(test_iss),
        cmocka_unit_test(test_aud),
        cmocka_unit_test(test_malformed),
        cmocka_unit_test(test_claim_types),
        cmocka_unit_test(test_token_size),
        cmocka_unit_test(test_keyfile_refusals),
        cmocka_unit_test(test_secret_readable_warning),
        cmocka_unit_test(test_jwks),
    };
    return cmocka_run_group_tests_name("workers.jwt", tests, s_group_setup, s_group_teardown);
}
