/*
 * token.h - the tokens wsgate-load authenticates its connections with:
 * lines of a file used round robin, or HS256 JSON Web Tokens minted per
 * connection (HMAC-SHA256 from OpenSSL; no JWT library).
 *
 * A token source is built once in the parent before the load processes
 * fork, so every process shares it (copy on write) and nothing is read
 * from disk during a run. Minting is a pure function of the key, the
 * claims, the connection's index and the clock passed in, so tests can
 * check a token byte for byte.
 */
#ifndef WSGATE_LD_TOKEN_H
#define WSGATE_LD_TOKEN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* The gateway and the auth service refuse longer tokens. */
#define LD_TOKEN_MAX 8192

/* What an HS256 token says; the strings are borrowed. */
typedef struct {
    const uint8_t *secret; /* every byte of the secret file */
    size_t secret_len;
    const char *kid;        /* header "kid" */
    const char *sub_prefix; /* "sub" is prefix + the connection's index */
    uint64_t ttl_s;         /* "exp" = "iat" + ttl_s */
    const char *iss;        /* NULL: no "iss" claim */
    const char *aud;        /* NULL: no "aud" claim */
    bool grant_all;         /* "channels": {"sub": ["*"], "pub": ["*"]} */
} ld_token_hs256_t;

/*
 * Mints the compact JWS header.payload.signature for connection `index`
 * at unix time now_s ("iat") into out, NUL-terminated: header
 * {"alg":"HS256","typ":"JWT","kid":K}, payload {"sub","iat","exp"[,"iss"]
 * [,"aud"][,"channels"]}, every part base64url without padding. Returns
 * the token's length, or -1 if it does not fit in cap bytes or OpenSSL
 * fails. Any thread.
 */
int ld_token_mint_hs256(const ld_token_hs256_t *k, uint64_t index, uint64_t now_s, char *out,
                        size_t cap);

/* base64url without padding of p[0..n) into out (NUL-terminated).
 * Returns the length, or -1 if it does not fit in cap bytes. */
int ld_token_b64url(const uint8_t *p, size_t n, char *out, size_t cap);

typedef struct ld_tokens ld_tokens_t;

/*
 * A source of one token per line of path (blank lines skipped, a trailing
 * CR dropped; at least one line; each at most LD_TOKEN_MAX bytes of
 * printable ASCII). NULL with a message in err when it cannot be read.
 */
ld_tokens_t *ld_tokens_new_file(const char *path, char *err, size_t errsz);

/*
 * A source that mints an HS256 token per connection. The secret is read
 * from secret_path (every byte, as the worker reads it: at least 32); the
 * strings of *k are copied, k->secret is ignored. NULL with a message in
 * err on failure.
 */
ld_tokens_t *ld_tokens_new_hs256(const char *secret_path, const ld_token_hs256_t *k, char *err,
                                 size_t errsz);

void ld_tokens_destroy(ld_tokens_t **self_p);

/*
 * The token for connection `index` (global over the processes): the file's
 * line index % lines, or one minted at now_s into buf (cap bytes, at least
 * LD_TOKEN_MAX + 1). *tok points into the source or into buf. 0, or -1 if
 * minting failed.
 */
int ld_tokens_get(const ld_tokens_t *t, uint64_t index, uint64_t now_s, char *buf, size_t cap,
                  const char **tok, size_t *len);

/* Lines of a file source; 0 for a minting one. */
size_t ld_tokens_lines(const ld_tokens_t *t);

#endif
