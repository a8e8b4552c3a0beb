/*
 * jwt.h - JSON Web Token (compact JWS) verification for the `auth` service.
 *
 * Only HS256, RS256 and ES256. Keys come from a key file (INI, format in
 * docs/security.md) and nowhere else: the token's `kid` header only picks
 * one of the configured keys by exact name, and `jwk`, `jku`, `x5u`, `x5c`
 * headers are ignored. Every key carries an allow-list of algorithms that
 * matches its type (an HMAC secret never verifies RS/ES, a public key never
 * verifies HS: such a key file is refused at load), so `alg: none` and the
 * HS/RS confusion cannot get through.
 *
 * Checks, in this order (the first failure decides the error code):
 *   1. shape: 1..WK_JWT_MAX_TOKEN bytes, three base64url parts, header and
 *      payload JSON objects, no `crit` header;
 *   2. header: `alg` allowed, key found (by kid, or by alg without kid);
 *   3. signature;
 *   4. claims: types (`sub` 1..128 bytes, `exp`/`nbf`/`iat` non-negative
 *      numbers, `iss` string, `aud` string or array of strings, `channels`),
 *      then time (exp, nbf, iat with the leeway), then iss, then aud.
 * So a token with a bad signature says `bad_signature` whatever its claims
 * hold, and a malformed token costs no public-key operation.
 *
 * This file and jwt.c are the project's adapter for OpenSSL (libcrypto) and
 * for the JSON inside tokens (jansson); jwt.c also reads the key file with
 * inih. Nothing here logs: error codes and texts are static strings that
 * never hold token bytes. Load warnings (a secret readable by others) go to
 * stderr.
 *
 * Threads: a loaded wk_jwt_keys_t is read-only, and wk_jwt_verify() may be
 * called on it from any thread.
 */
#ifndef WSGATE_JWT_H
#define WSGATE_JWT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define WK_JWT_MAX_TOKEN 8192    /* bytes in a compact token; over: token_too_large */
#define WK_JWT_MAX_SUB 128       /* bytes in `sub` */
#define WK_JWT_MAX_PATTERN 128   /* bytes in one channel pattern */
#define WK_JWT_MAX_PATTERNS 32   /* patterns in channels.sub, and in channels.pub */
#define WK_JWT_MAX_KEYS 256      /* keys in one key file (JWKS included) */
#define WK_JWT_MAX_TRIES 4       /* keys tried for a token without kid */
#define WK_JWT_MIN_SECRET 32     /* bytes in an HS256 secret */
#define WK_JWT_MIN_RSA_BITS 2048 /* RS256 modulus */
#define WK_JWT_DEFAULT_LEEWAY_S 30

/* Algorithms, as allow-list bits. */
#define WK_JWT_HS256 0x1
#define WK_JWT_RS256 0x2
#define WK_JWT_ES256 0x4

typedef struct wk_jwt_keys wk_jwt_keys_t;

/* What is checked besides the signature. Strings are borrowed for the call. */
typedef struct {
    uint32_t leeway_s; /* clock skew allowed on exp, nbf and iat */
    const char *iss;   /* NULL or "": `iss` not checked; else it must be equal */
    const char *aud;   /* NULL or "": `aud` not checked; else it must be, or contain, this */
} wk_jwt_opts_t;

/* A list of channel patterns from the `channels` claim. */
typedef struct {
    char v[WK_JWT_MAX_PATTERNS][WK_JWT_MAX_PATTERN + 1]; /* NUL-terminated, 1..128 bytes */
    size_t n;
} wk_jwt_list_t;

/* The claims a verified token gives the gateway. Plain storage (about 8 KB),
 * nothing to free. Strings hold no NUL byte (JSON parsing refuses \u0000). */
typedef struct {
    char sub[WK_JWT_MAX_SUB + 1];
    uint64_t exp;           /* unix seconds, 0 when the token has no exp */
    wk_jwt_list_t chan_sub; /* channels.sub, empty when absent */
    wk_jwt_list_t chan_pub; /* channels.pub, empty when absent */
} wk_jwt_claims_t;

/* Why a token was refused. Both are static strings: safe to send to the
 * client and to log, never token bytes. */
typedef struct {
    const char *code; /* malformed_token, alg_not_allowed, ... (docs/security.md) */
    const char *text; /* a short human text */
} wk_jwt_err_t;

/*
 * Loads the key file at path (and the secret, PEM and JWKS files it names).
 * Returns an owned key set, or NULL with the problem in err (naming file,
 * section and what is wrong; never key material). Warns on stderr when a
 * file holding a secret is readable by others.
 */
wk_jwt_keys_t *wk_jwt_keys_load(const char *path, char *err, size_t errsz);

/* Frees the keys (secrets are wiped). Accepts NULL; sets *keys_p to NULL. */
void wk_jwt_keys_destroy(wk_jwt_keys_t **keys_p);

/* Keys loaded. */
size_t wk_jwt_keys_count(const wk_jwt_keys_t *keys);

/*
 * Verifies the compact token tok[0..len) (not NUL-terminated) at time now
 * (unix seconds) with keys and opts (both borrowed; opts NULL: leeway
 * WK_JWT_DEFAULT_LEEWAY_S, no iss or aud check). 0 with *out filled, or -1
 * with *err set (out is then unspecified). err may be NULL.
 */
int wk_jwt_verify(const wk_jwt_keys_t *keys, const wk_jwt_opts_t *opts, const char *tok, size_t len,
                  int64_t now, wk_jwt_claims_t *out, wk_jwt_err_t *err);

/* Strict base64url without padding (RFC 7515 section 2): the alphabet
 * A-Z a-z 0-9 - _, no '=', no length of 1 mod 4, unused bits zero (one
 * encoding per byte string). Decodes src[0..len) into out, which has room
 * for cap bytes; returns the decoded length, or -1 when src is not strict
 * base64url or does not fit. Exposed for the tests. */
long wk_jwt_b64url_decode(const char *src, size_t len, uint8_t *out, size_t cap);

/* Base64url without padding of src[0..len) into out (cap bytes, NUL
 * included). The length written, or -1 when it does not fit. */
long wk_jwt_b64url_encode(const uint8_t *src, size_t len, char *out, size_t cap);

/*
 * Signs claims_json (a JSON object's text, taken as is) as a compact HS256
 * token with the header {"alg":"HS256","typ":"JWT","kid":kid}, using the
 * HS256 key named kid in keys. Writes the NUL-terminated token into out
 * (cap bytes) and returns its length; -1 when kid names no HS256-only key
 * or the token does not fit. For the development token issuer
 * (svc_devtoken.c): production tokens come from the application's own
 * identity provider, never from a worker.
 */
long wk_jwt_sign_hs256(const wk_jwt_keys_t *keys, const char *kid, const char *claims_json,
                       char *out, size_t cap);

#endif
