/*
 * svc_auth.c - the `auth` service: verifies a client's JWT for the gateway.
 *
 * Request (from the gateway only: flag PROTO_BK_F_GW, key c:<conn>):
 *   {"token": "<compact JWS>"}         other keys are ignored
 * Reply:
 *   {"user": <sub>, "exp": <uint, 0: none>, "info": {"sub": [pattern...], "pub": [pattern...]}}
 * Errors: forbidden (a request without the GW flag: a client calling
 * `auth` directly), bad_request (the payload is not a map), and the
 * verification codes of jwt.h (docs/security.md has the table). Error
 * texts are jwt.c's static strings: no token byte is ever echoed or
 * logged.
 *
 * Stateless and retry-safe: the answer depends on the token, the keys and
 * the clock only. Every message ends with WK_STOP, so the actor is freed
 * as soon as it has answered: its key is one connection, which
 * authenticates once, so an idle actor would only hold memory. At 10k new
 * connections a second and the default 60 s idle time that would be 600k
 * idle actors, far over the default max-actors (100k), evicting the
 * actors of stateful services to make room.
 */
#include "svc_auth.h"

#include "../protocol/backend.h"
#include "../protocol/mpk.h"
#include "jwt.h"
#include "service.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static struct {
    wk_jwt_keys_t *keys; /* NULL: not configured */
    wk_jwt_opts_t opts;  /* iss and aud owned */
    int64_t (*now_fn)(void);
} s_auth;

static void
s_opts_free(wk_jwt_opts_t *o)
{
    free((char *)o->iss);
    free((char *)o->aud);
    o->iss = o->aud = NULL;
}

int
wk_svc_auth_configure(const wk_svc_auth_cfg_t *cfg, char *err, size_t errsz)
{
    wk_jwt_opts_t opts = {cfg->leeway_s, NULL, NULL};

    if (!cfg->keys_path || !cfg->keys_path[0]) {
        snprintf(err, errsz, "auth: no key file");
        return -1;
    }
    if ((cfg->iss && cfg->iss[0] && !(opts.iss = strdup(cfg->iss))) ||
        (cfg->aud && cfg->aud[0] && !(opts.aud = strdup(cfg->aud)))) {
        snprintf(err, errsz, "auth: out of memory");
        s_opts_free(&opts);
        return -1;
    }
    wk_jwt_keys_t *keys = wk_jwt_keys_load(cfg->keys_path, err, errsz);
    if (!keys) {
        s_opts_free(&opts);
        return -1;
    }
    wk_svc_auth_unconfigure();
    s_auth.keys = keys;
    s_auth.opts = opts;
    s_auth.now_fn = cfg->now_fn;
    return 0;
}

void
wk_svc_auth_unconfigure(void)
{
    wk_jwt_keys_destroy(&s_auth.keys);
    s_opts_free(&s_auth.opts);
    s_auth.now_fn = NULL;
}

/* The token of a {"token": str, ...} map: 1 found, 0 absent or not a
 * string, -1 not a map of string keys. */
static int
s_request_token(proto_span_t data, proto_span_t *tok)
{
    mpk_reader_t r;
    uint32_t n;
    int found = 0;

    mpk_reader_init(&r, data.ptr, data.len);
    if (mpk_read_map(&r, &n) != PROTO_OK)
        return -1;
    for (uint32_t i = 0; i < n; i++) {
        proto_span_t key;
        mpk_item_t it;
        if (mpk_read_str(&r, &key) != PROTO_OK)
            return -1;
        if (key.len == 5 && memcmp(key.ptr, "token", 5) == 0) {
            /* Two tokens in one request: which one the gateway meant is
             * not for the worker to guess. */
            if (found || mpk_read(&r, &it) != PROTO_OK || it.type != MPK_STR)
                return 0;
            *tok = it.v.s;
            found = 1;
        } else if (mpk_skip(&r, MPK_MAX_DEPTH, NULL) != PROTO_OK) {
            return -1;
        }
    }
    return mpk_reader_left(&r) == 0 ? found : -1;
}

static int
s_write_list(proto_buf_t *b, const wk_jwt_list_t *l)
{
    if (mpk_write_array(b, (uint32_t)l->n))
        return -1;
    for (size_t i = 0; i < l->n; i++) {
        if (mpk_write_cstr(b, l->v[i]))
            return -1;
    }
    return 0;
}

static int
s_reply(wk_actor_t *a, const wk_msg_t *m, const wk_jwt_claims_t *c)
{
    proto_buf_t b;
    int rc = -1;

    proto_buf_init(&b, 0);
    if (mpk_write_map(&b, 3) || mpk_write_cstr(&b, "user") || mpk_write_cstr(&b, c->sub) ||
        mpk_write_cstr(&b, "exp") || mpk_write_uint(&b, c->exp) || mpk_write_cstr(&b, "info") ||
        mpk_write_map(&b, 2) || mpk_write_cstr(&b, "sub") || s_write_list(&b, &c->chan_sub) ||
        mpk_write_cstr(&b, "pub") || s_write_list(&b, &c->chan_pub))
        goto out;
    rc = wk_reply(a, m, proto_buf_payload(&b), b.len);
out:
    proto_buf_fini(&b);
    return rc;
}

static int
auth_handle(wk_actor_t *a, void *state, const wk_msg_t *m)
{
    wk_jwt_claims_t claims;
    wk_jwt_err_t e;
    proto_span_t tok;

    (void)state;
    if (m->kind != WK_MSG_REQ || m->rid == 0)
        return WK_STOP; /* nobody waits for an answer */
    if (!(m->flags & PROTO_BK_F_GW) || (m->flags & PROTO_BK_F_RAW)) {
        /* Client data never has the GW flag: the gateway sets it only on
         * requests it builds itself. */
        wk_error(a, m, "forbidden", "auth is called by the gateway only");
        return WK_STOP;
    }
    if (!s_auth.keys) {
        wk_error(a, m, "internal", "auth is not configured");
        return WK_STOP;
    }
    int found = s_request_token(m->data, &tok);
    if (found < 0) {
        wk_error(a, m, "bad_request", "auth request is not a map");
        return WK_STOP;
    }
    if (found == 0) {
        wk_error(a, m, "malformed_token", "no token string in the request");
        return WK_STOP;
    }
    int64_t now = s_auth.now_fn ? s_auth.now_fn() : (int64_t)time(NULL);
    if (wk_jwt_verify(s_auth.keys, &s_auth.opts, (const char *)tok.ptr, tok.len, now, &claims,
                      &e) != 0) {
        wk_error(a, m, e.code, e.text);
        return WK_STOP;
    }
    /* If the reply cannot be encoded, the runtime answers `internal`. */
    s_reply(a, m, &claims);
    return WK_STOP;
}

/* Retry-safe: verifying a token again has no effect. No start_fn: the
 * state stays NULL. */
const wk_service_t wk_svc_auth = {"auth", NULL, auth_handle, NULL, WK_SVC_RETRY_SAFE};
