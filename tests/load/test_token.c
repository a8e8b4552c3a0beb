/*
 * test_token.c - load/token.c: base64url, HS256 minting (the token is
 * taken apart again, its claims read with jansson and its signature
 * recomputed with OpenSSL's HMAC), token files, and the sources.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>
#include <jansson.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>

#include "token.h"

static const uint8_t s_secret[] = "0123456789abcdef0123456789abcdef!"; /* 33 bytes + NUL */

/* base64url without padding, strictly: the test's own decoder. -1 on a
 * byte outside the alphabet or a length no encoder produces. */
static int
b64url_decode(const char *in, size_t n, uint8_t *out, size_t cap)
{
    static const char abc[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    uint32_t acc = 0;
    size_t i, o = 0;
    int bits = 0;

    if (n % 4 == 1)
        return -1;
    for (i = 0; i < n; i++) {
        const char *p = in[i] ? strchr(abc, in[i]) : NULL;

        if (!p)
            return -1;
        acc = acc << 6 | (uint32_t)(p - abc);
        bits += 6;
        if (bits >= 8) {
            bits -= 8;
            if (o == cap)
                return -1;
            out[o++] = (uint8_t)(acc >> bits);
        }
    }
    return (int)o;
}

typedef struct {
    json_t *header, *payload;
    uint8_t sig[64];
    int sig_len;
    size_t signed_len; /* header.payload */
} parts_t;

/* Splits a compact JWS into its three parts and decodes them. */
static void
split(const char *tok, parts_t *p)
{
    const char *d1 = strchr(tok, '.'), *d2 = d1 ? strchr(d1 + 1, '.') : NULL;
    uint8_t buf[4096];
    json_error_t err;
    int n;

    assert_non_null(d1);
    assert_non_null(d2);
    assert_null(strchr(d2 + 1, '.'));
    assert_null(strchr(tok, '=')); /* no padding */
    n = b64url_decode(tok, (size_t)(d1 - tok), buf, sizeof(buf));
    assert_true(n > 0);
    p->header = json_loadb((const char *)buf, (size_t)n, JSON_REJECT_DUPLICATES, &err);
    assert_non_null(p->header);
    n = b64url_decode(d1 + 1, (size_t)(d2 - d1 - 1), buf, sizeof(buf));
    assert_true(n > 0);
    p->payload = json_loadb((const char *)buf, (size_t)n, JSON_REJECT_DUPLICATES, &err);
    assert_non_null(p->payload);
    p->sig_len = b64url_decode(d2 + 1, strlen(d2 + 1), p->sig, sizeof(p->sig));
    p->signed_len = (size_t)(d2 - tok);
}

static void
parts_free(parts_t *p)
{
    json_decref(p->header);
    json_decref(p->payload);
}

static bool
hmac_ok(const char *tok, const parts_t *p, const uint8_t *secret, size_t len)
{
    uint8_t mac[EVP_MAX_MD_SIZE];
    unsigned mac_len = 0;

    assert_non_null(
        HMAC(EVP_sha256(), secret, (int)len, (const uint8_t *)tok, p->signed_len, mac, &mac_len));
    return p->sig_len == (int)mac_len && !CRYPTO_memcmp(mac, p->sig, mac_len);
}

static const char *
jstr(json_t *o, const char *k)
{
    return json_string_value(json_object_get(o, k));
}

static void
test_b64url(void **state)
{
    static const struct {
        const char *in;
        const char *out;
    } v[] = {{"", ""},           {"f", "Zg"},          {"fo", "Zm8"},         {"foo", "Zm9v"},
             {"foob", "Zm9vYg"}, {"fooba", "Zm9vYmE"}, {"foobar", "Zm9vYmFy"}};
    const uint8_t url[] = {0xfb, 0xff, 0xbf}; /* "+/+/" in standard base64 */
    char out[32];
    size_t i;

    (void)state;
    for (i = 0; i < sizeof(v) / sizeof(v[0]); i++) {
        assert_int_equal(
            ld_token_b64url((const uint8_t *)v[i].in, strlen(v[i].in), out, sizeof(out)),
            strlen(v[i].out));
        assert_string_equal(out, v[i].out);
    }
    assert_int_equal(ld_token_b64url(url, 3, out, sizeof(out)), 4);
    assert_string_equal(out, "-_-_");
    assert_int_equal(ld_token_b64url(url, 2, out, sizeof(out)), 3);
    assert_string_equal(out, "-_8");
    /* the NUL must fit too */
    assert_int_equal(ld_token_b64url((const uint8_t *)"foo", 3, out, 4), -1);
    assert_int_equal(ld_token_b64url((const uint8_t *)"foo", 3, out, 5), 4);
}

static void
test_mint_claims_and_signature(void **state)
{
    ld_token_hs256_t k = {
        .secret = s_secret,
        .secret_len = sizeof(s_secret) - 1,
        .kid = "hs1",
        .sub_prefix = "user-",
        .ttl_s = 600,
    };
    char tok[LD_TOKEN_MAX + 1];
    parts_t p;
    int n;

    (void)state;
    n = ld_token_mint_hs256(&k, 42, 1767225600, tok, sizeof(tok));
    assert_true(n > 0);
    assert_int_equal(strlen(tok), n);
    split(tok, &p);
    assert_string_equal(jstr(p.header, "alg"), "HS256");
    assert_string_equal(jstr(p.header, "typ"), "JWT");
    assert_string_equal(jstr(p.header, "kid"), "hs1");
    assert_int_equal(json_object_size(p.header), 3);
    assert_string_equal(jstr(p.payload, "sub"), "user-42");
    assert_int_equal(json_integer_value(json_object_get(p.payload, "iat")), 1767225600);
    assert_int_equal(json_integer_value(json_object_get(p.payload, "exp")), 1767225600 + 600);
    /* no optional claim unless asked for */
    assert_null(json_object_get(p.payload, "iss"));
    assert_null(json_object_get(p.payload, "aud"));
    assert_null(json_object_get(p.payload, "channels"));
    assert_int_equal(p.sig_len, 32);
    assert_true(hmac_ok(tok, &p, s_secret, sizeof(s_secret) - 1));
    /* the secret is every byte: one byte less is another key */
    assert_false(hmac_ok(tok, &p, s_secret, sizeof(s_secret) - 2));

    /* one character changed anywhere in header.payload: the signature no
     * longer matches */
    tok[5] = tok[5] == 'A' ? 'B' : 'A';
    assert_false(hmac_ok(tok, &p, s_secret, sizeof(s_secret) - 1));
    tok[5] = tok[5] == 'A' ? 'B' : 'A';
    tok[p.signed_len - 1] ^= 1;
    assert_false(hmac_ok(tok, &p, s_secret, sizeof(s_secret) - 1));
    parts_free(&p);
}

static void
test_mint_optional_claims(void **state)
{
    ld_token_hs256_t k = {
        .secret = s_secret,
        .secret_len = 32,
        .kid = "k\"1\\",
        .sub_prefix = "",
        .ttl_s = 5,
        .iss = "wsgate-tests",
        .aud = "wsgate",
        .grant_all = true,
    };
    char tok[LD_TOKEN_MAX + 1], tok2[LD_TOKEN_MAX + 1];
    json_t *ch, *a;
    parts_t p;

    (void)state;
    assert_true(ld_token_mint_hs256(&k, 7, 1000, tok, sizeof(tok)) > 0);
    split(tok, &p);
    assert_string_equal(jstr(p.header, "kid"), "k\"1\\"); /* escaped, and read back */
    assert_string_equal(jstr(p.payload, "sub"), "7");
    assert_int_equal(json_integer_value(json_object_get(p.payload, "exp")), 1005);
    assert_string_equal(jstr(p.payload, "iss"), "wsgate-tests");
    assert_string_equal(jstr(p.payload, "aud"), "wsgate");
    ch = json_object_get(p.payload, "channels");
    assert_true(json_is_object(ch));
    a = json_object_get(ch, "sub");
    assert_int_equal(json_array_size(a), 1);
    assert_string_equal(json_string_value(json_array_get(a, 0)), "*");
    a = json_object_get(ch, "pub");
    assert_int_equal(json_array_size(a), 1);
    assert_string_equal(json_string_value(json_array_get(a, 0)), "*");
    assert_true(hmac_ok(tok, &p, s_secret, 32));
    parts_free(&p);

    /* distinct per connection, the same for the same inputs */
    assert_true(ld_token_mint_hs256(&k, 8, 1000, tok2, sizeof(tok2)) > 0);
    assert_string_not_equal(tok, tok2);
    assert_true(ld_token_mint_hs256(&k, 7, 1000, tok2, sizeof(tok2)) > 0);
    assert_string_equal(tok, tok2);

    /* too small an output buffer is an error, not a cut token */
    assert_int_equal(ld_token_mint_hs256(&k, 7, 1000, tok2, 40), -1);
    assert_int_equal(ld_token_mint_hs256(&k, 7, 1000, tok2, strlen(tok)), -1);
    assert_int_equal(ld_token_mint_hs256(&k, 7, 1000, tok2, strlen(tok) + 1), (int)strlen(tok));
}

static void
write_file(const char *path, const void *p, size_t n)
{
    FILE *f = fopen(path, "wb");

    assert_non_null(f);
    assert_int_equal(fwrite(p, 1, n, f), n);
    fclose(f);
}

static void
test_token_file(void **state)
{
    char dir[] = "/tmp/test_ld_token_XXXXXX", path[128], err[256], buf[LD_TOKEN_MAX + 1];
    static const char text[] = "aaa.bbb.ccc\r\n\nddd.eee.fff\n  \nggg";
    ld_tokens_t *t;
    const char *tok;
    size_t len;

    (void)state;
    assert_non_null(mkdtemp(dir));
    snprintf(path, sizeof(path), "%s/tokens", dir);

    write_file(path, text, sizeof(text) - 1);
    t = ld_tokens_new_file(path, err, sizeof(err));
    /* "  " is not a token: a blank inside a line is refused */
    assert_null(t);
    assert_non_null(strstr(err, ":4:"));

    write_file(path, "aaa.bbb.ccc\r\n\nddd.eee.fff\nggg",
               strlen("aaa.bbb.ccc\r\n\nddd.eee.fff\nggg"));
    t = ld_tokens_new_file(path, err, sizeof(err));
    assert_non_null(t);
    assert_int_equal(ld_tokens_lines(t), 3);
    assert_int_equal(ld_tokens_get(t, 0, 0, buf, sizeof(buf), &tok, &len), 0);
    assert_int_equal(len, 11);
    assert_memory_equal(tok, "aaa.bbb.ccc", 11); /* CR dropped */
    assert_int_equal(ld_tokens_get(t, 1, 0, buf, sizeof(buf), &tok, &len), 0);
    assert_string_equal(tok, "ddd.eee.fff");
    assert_int_equal(ld_tokens_get(t, 5, 0, buf, sizeof(buf), &tok, &len), 0);
    assert_string_equal(tok, "ggg"); /* round robin: line 5 % 3 */
    ld_tokens_destroy(&t);
    assert_null(t);
    ld_tokens_destroy(&t); /* NULL is fine */

    write_file(path, "\n\n", 2);
    assert_null(ld_tokens_new_file(path, err, sizeof(err)));
    assert_non_null(strstr(err, "no token"));
    write_file(path, "a\"b\n", 4);
    assert_null(ld_tokens_new_file(path, err, sizeof(err)));
    snprintf(path, sizeof(path), "%s/missing", dir);
    assert_null(ld_tokens_new_file(path, err, sizeof(err)));

    snprintf(path, sizeof(path), "%s/tokens", dir);
    unlink(path);
    rmdir(dir);
}

static void
test_hs256_source(void **state)
{
    char dir[] = "/tmp/test_ld_token_XXXXXX", path[128], err[256];
    char buf[LD_TOKEN_MAX + 1], want[LD_TOKEN_MAX + 1];
    ld_token_hs256_t k = {.kid = "hs1", .sub_prefix = "user-", .ttl_s = 60};
    ld_tokens_t *t;
    const char *tok;
    size_t len;
    parts_t p;

    (void)state;
    assert_non_null(mkdtemp(dir));
    snprintf(path, sizeof(path), "%s/secret", dir);
    /* shorter than 32 bytes: the worker would refuse the key */
    write_file(path, s_secret, 31);
    assert_null(ld_tokens_new_hs256(path, &k, err, sizeof(err)));
    assert_non_null(strstr(err, "32"));
    /* every byte is the secret, a trailing newline included */
    write_file(path, "0123456789abcdef0123456789abcdef\n", 33);
    t = ld_tokens_new_hs256(path, &k, err, sizeof(err));
    assert_non_null(t);
    assert_int_equal(ld_tokens_lines(t), 0);
    assert_int_equal(ld_tokens_get(t, 9, 2000, buf, sizeof(buf), &tok, &len), 0);
    assert_ptr_equal(tok, buf);
    assert_int_equal(strlen(buf), len);
    split(buf, &p);
    assert_string_equal(jstr(p.payload, "sub"), "user-9");
    assert_true(hmac_ok(buf, &p, (const uint8_t *)"0123456789abcdef0123456789abcdef\n", 33));
    assert_false(hmac_ok(buf, &p, (const uint8_t *)"0123456789abcdef0123456789abcdef", 32));
    parts_free(&p);
    k.secret = (const uint8_t *)"0123456789abcdef0123456789abcdef\n";
    k.secret_len = 33;
    assert_true(ld_token_mint_hs256(&k, 9, 2000, want, sizeof(want)) > 0);
    assert_string_equal(buf, want);
    ld_tokens_destroy(&t);
    unlink(path);
    rmdir(dir);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_b64url),
        cmocka_unit_test(test_mint_claims_and_signature),
        cmocka_unit_test(test_mint_optional_claims),
        cmocka_unit_test(test_token_file),
        cmocka_unit_test(test_hs256_source),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
