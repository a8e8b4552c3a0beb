/*
 * handshake.h - the client side of the websocket opening handshake
 * (RFC 6455 section 4): the upgrade request, Sec-WebSocket-Accept, and the
 * server's response.
 *
 * The one file that calls OpenSSL (SHA-1 and base64 through EVP). Pure
 * functions; any thread.
 */
#ifndef WSGATE_LD_HANDSHAKE_H
#define WSGATE_LD_HANDSHAKE_H

#include <stddef.h>
#include <stdint.h>

#define LD_HS_KEY_LEN 24    /* base64 of 16 bytes */
#define LD_HS_ACCEPT_LEN 28 /* base64 of a SHA-1 */
#define LD_HS_RESPONSE_MAX 8192

/* Sec-WebSocket-Key from 16 random bytes: out gets 24 characters and NUL. */
void ld_handshake_key(const uint8_t nonce[16], char out[LD_HS_KEY_LEN + 1]);

/* Sec-WebSocket-Accept for key: base64(SHA-1(key + GUID)), 28 characters
 * and NUL. 0, or -1 if OpenSSL fails. */
int ld_handshake_accept(const char *key, char out[LD_HS_ACCEPT_LEN + 1]);

/*
 * The GET upgrade request for path on host (the Host header, "ip:port"),
 * asking for subprotocol unless it is NULL or empty. Returns its length,
 * or -1 if it does not fit in cap bytes.
 */
int ld_handshake_request(char *buf, size_t cap, const char *host, const char *path, const char *key,
                         const char *subprotocol);

typedef enum {
    LD_HS_OK = 0,       /* 101 with the right accept (and subprotocol) */
    LD_HS_NEED_MORE,    /* headers not complete yet */
    LD_HS_STATUS,       /* a status other than 101 (*status says which) */
    LD_HS_BAD_ACCEPT,   /* 101 with a missing or wrong Sec-WebSocket-Accept */
    LD_HS_BAD_PROTOCOL, /* 101 without the subprotocol asked for */
    LD_HS_MALFORMED,    /* not an HTTP response, or headers over LD_HS_RESPONSE_MAX */
} ld_hs_rc_t;

/*
 * Reads the server's response at the start of p[0..n). On LD_HS_OK
 * *hdr_len is where the websocket frames start. *status is the HTTP status
 * as soon as the status line is whole (0 before). expect_accept is the
 * value from ld_handshake_accept(); subprotocol as for the request.
 */
ld_hs_rc_t ld_handshake_response(const uint8_t *p, size_t n, const char *expect_accept,
                                 const char *subprotocol, int *status, size_t *hdr_len);

#endif
