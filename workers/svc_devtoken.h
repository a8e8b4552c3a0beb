/*
 * svc_devtoken.h - configuration of the `devtoken` service: the
 * DEVELOPMENT token issuer (wk_svc_devtoken, declared in service.h).
 *
 * It hands an HS256 token to anyone who asks, for any user name: it exists
 * so that `make run` can show the browser demo with auth = required and no
 * identity provider. Never run it in production; wsgate-worker warns at
 * start when it does. Tokens are signed with the HS256 key `kid` of the
 * same key file the `auth` service verifies with, so they pass it.
 *
 * Request (from the gateway only, flag PROTO_BK_F_GW: the gateway's
 * `POST /dev/token`, see docs/operations.md):  {"user": "alice"}
 * Reply:  {"token": "<compact JWS>", "exp": <unix s>, "user": "alice"}
 * Errors: forbidden (no GW flag), bad_request (no user, or not 1..64 bytes
 * of [A-Za-z0-9_.-]), internal (not configured).
 *
 * Threads: configure on the main thread before the runtime starts.
 */
#ifndef WSGATE_SVC_DEVTOKEN_H
#define WSGATE_SVC_DEVTOKEN_H

#include <stddef.h>
#include <stdint.h>

#define WK_DEVTOKEN_USER_MAX 64

typedef struct {
    const char *keys_path;   /* the auth key file; required */
    const char *kid;         /* an HS256 key in it; required */
    uint32_t ttl_s;          /* token lifetime, > 0 */
    const char *channels;    /* comma-separated patterns granted for sub and pub */
    const char *iss;         /* NULL or "": no iss claim */
    const char *aud;         /* NULL or "": no aud claim */
    int64_t (*now_fn)(void); /* unix seconds; NULL: time() */
} wk_svc_devtoken_cfg_t;

/* Loads the keys and checks kid names an HS256 key. 0, or -1 with the
 * problem in err (the earlier configuration is then kept). */
int wk_svc_devtoken_configure(const wk_svc_devtoken_cfg_t *cfg, char *err, size_t errsz);

void wk_svc_devtoken_unconfigure(void);

#endif
