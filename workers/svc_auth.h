/*
 * svc_auth.h - configuration of the `auth` service (wk_svc_auth, declared
 * with the other built-in services in service.h).
 *
 * The gateway authenticates a client by sending `auth` a REQ with flag
 * PROTO_BK_F_GW and the payload {"token": "<compact JWS>"}; the service
 * verifies the token (jwt.h) and replies {"user", "exp", "info": {"sub",
 * "pub"}}, or errors with one of the codes in docs/security.md.
 *
 * Threads: the configuration is process-wide. Call these on the main
 * thread before the runtime that runs `auth` starts, and unconfigure after
 * it is destroyed.
 */
#ifndef WSGATE_SVC_AUTH_H
#define WSGATE_SVC_AUTH_H

#include <stddef.h>
#include <stdint.h>

typedef struct {
    const char *keys_path; /* the key file (docs/security.md); required */
    uint32_t leeway_s;     /* taken as given; wsgate-worker's default is WK_JWT_DEFAULT_LEEWAY_S */
    const char *iss;       /* NULL or "": not checked */
    const char *aud;       /* NULL or "": not checked */
    int64_t (*now_fn)(void); /* unix seconds; NULL: time(). Tests pass a fixed clock */
} wk_svc_auth_cfg_t;

/*
 * Loads the keys and keeps a copy of cfg (strings copied). Replaces an
 * earlier configuration. 0, or -1 with the problem in err (the earlier
 * configuration is then kept). Until configured, `auth` answers every
 * request `internal`.
 */
int wk_svc_auth_configure(const wk_svc_auth_cfg_t *cfg, char *err, size_t errsz);

/* Frees the keys; `auth` is unconfigured again. */
void wk_svc_auth_unconfigure(void);

#endif
