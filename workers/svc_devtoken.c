/*
 * svc_devtoken.c - the `devtoken` service, the development token issuer
 * (svc_devtoken.h says what it is for and why it must not run in
 * production).
 *
 * Stateless: every message ends with WK_STOP. Retry-safe: a second token
 * for the same user is as good as the first.
 */
#include "svc_devtoken.h"

#include "../protocol/backend.h"
#include "../protocol/mpk.h"
#include "jwt.h"
#include "service.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <jansson.h>

static struct {
    wk_jwt_keys_t *keys; /* NULL: not configured */
    char *kid;
    uint32_t ttl_s;
    json_t *channels; /* array of pattern strings */
    char *iss, *aud;
    int64_t (*now_fn)(void);
} s_dev;

void
wk_svc_devtoken_unconfigure(void)
{
    wk_jwt_keys_destroy(&s_dev.keys);
    free(s_dev.kid);
    free(s_dev.iss);
    free(s_dev.aud);
    json_decref(s_dev.channels);
    memset(&s_dev, 0, sizeof(s_dev));
}

/* "a,b,c" into a JSON array of non-empty patterns. NULL when malformed. */
static json_t *
s_patterns(const char *list, char *err, size_t errsz)
{
    json_t *arr = json_array();
    const char *p = list, *e;

    while (arr && p && *p) {
        e = strchr(p, ',');
        size_t n = e ? (size_t)(e - p) : strlen(p);
        if (n == 0 || n > WK_JWT_MAX_PATTERN || json_array_size(arr) >= WK_JWT_MAX_PATTERNS ||
            json_array_append_new(arr, json_stringn(p, n))) {
            snprintf(err, errsz, "devtoken: channels: empty, over %d bytes or over %d patterns",
                     WK_JWT_MAX_PATTERN, WK_JWT_MAX_PATTERNS);
            json_decref(arr);
            return NULL;
        }
        p = e ? e + 1 : NULL;
    }
    return arr;
}

int
wk_svc_devtoken_configure(const wk_svc_devtoken_cfg_t *cfg, char *err, size_t errsz)
{
    wk_jwt_keys_t *keys;
    json_t *chans;
    char probe[WK_JWT_MAX_TOKEN];

    if (!cfg->keys_path || !cfg->keys_path[0] || !cfg->kid || !cfg->kid[0] || !cfg->ttl_s) {
        snprintf(err, errsz, "devtoken: needs the auth key file, a kid and a ttl");
        return -1;
    }
    if (!(chans = s_patterns(cfg->channels ? cfg->channels : "", err, errsz)))
        return -1;
    if (!(keys = wk_jwt_keys_load(cfg->keys_path, err, errsz))) {
        json_decref(chans);
        return -1;
    }
    if (wk_jwt_sign_hs256(keys, cfg->kid, "{}", probe, sizeof(probe)) < 0) {
        snprintf(err, errsz, "devtoken: kid '%s' is not an HS256-only key in %s", cfg->kid,
                 cfg->keys_path);
        wk_jwt_keys_destroy(&keys);
        json_decref(chans);
        return -1;
    }
    wk_svc_devtoken_unconfigure();
    s_dev.keys = keys;
    s_dev.channels = chans;
    s_dev.ttl_s = cfg->ttl_s;
    s_dev.now_fn = cfg->now_fn;
    s_dev.kid = strdup(cfg->kid);
    s_dev.iss = cfg->iss && cfg->iss[0] ? strdup(cfg->iss) : NULL;
    s_dev.aud = cfg->aud && cfg->aud[0] ? strdup(cfg->aud) : NULL;
    if (!s_dev.kid || (cfg->iss && cfg->iss[0] && !s_dev.iss) ||
        (cfg->aud && cfg->aud[0] && !s_dev.aud)) {
        wk_svc_devtoken_unconfigure();
        snprintf(err, errsz, "devtoken: out of memory");
        return -1;
    }
    return 0;
}

/* The user of a {"user": str} map, checked: 1 ok, 0 missing or bad. */
static int
s_request_user(proto_span_t data, proto_span_t *user)
{
    mpk_reader_t r;
    uint32_t n;
    int found = 0;

    mpk_reader_init(&r, data.ptr, data.len);
    if (mpk_read_map(&r, &n) != PROTO_OK)
        return 0;
    for (uint32_t i = 0; i < n; i++) {
        proto_span_t key;
        if (mpk_read_str(&r, &key) != PROTO_OK)
            return 0;
        if (key.len == 4 && memcmp(key.ptr, "user", 4) == 0) {
            if (found || mpk_read_str(&r, user) != PROTO_OK)
                return 0;
            found = 1;
        } else if (mpk_skip(&r, MPK_MAX_DEPTH, NULL) != PROTO_OK) {
            return 0;
        }
    }
    if (!found || user->len == 0 || user->len > WK_DEVTOKEN_USER_MAX)
        return 0;
    for (size_t i = 0; i < user->len; i++) {
        unsigned char c = user->ptr[i];
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '_' || c == '.' || c == '-'))
            return 0;
    }
    return 1;
}

/* The claims, as compact JSON text (owned), or NULL. */
static char *
s_claims(proto_span_t user, int64_t now, uint64_t exp)
{
    json_t *c = json_pack("{s:s%, s:I, s:I, s:{s:O, s:O}}", "sub", (const char *)user.ptr, user.len,
                          "iat", (json_int_t)now, "exp", (json_int_t)exp, "channels", "sub",
                          s_dev.channels, "pub", s_dev.channels);
    char *text = NULL;

    if (c && (!s_dev.iss || !json_object_set_new(c, "iss", json_string(s_dev.iss))) &&
        (!s_dev.aud || !json_object_set_new(c, "aud", json_string(s_dev.aud))))
        text = json_dumps(c, JSON_COMPACT);
    json_decref(c);
    return text;
}

static int
devtoken_handle(wk_actor_t *a, void *state, const wk_msg_t *m)
{
    char tok[WK_JWT_MAX_TOKEN];
    proto_span_t user;
    proto_buf_t b;
    char *claims;
    long n;

    (void)state;
    if (m->kind != WK_MSG_REQ || m->rid == 0)
        return WK_STOP;
    if (!(m->flags & PROTO_BK_F_GW) || (m->flags & PROTO_BK_F_RAW)) {
        wk_error(a, m, "forbidden", "devtoken is called by the gateway only (POST /dev/token)");
        return WK_STOP;
    }
    if (!s_dev.keys) {
        wk_error(a, m, "internal", "devtoken is not configured");
        return WK_STOP;
    }
    if (!s_request_user(m->data, &user)) {
        wk_error(a, m, "bad_request", "expected {\"user\": 1..64 bytes of [A-Za-z0-9_.-]}");
        return WK_STOP;
    }
    int64_t now = s_dev.now_fn ? s_dev.now_fn() : (int64_t)time(NULL);
    uint64_t exp = (uint64_t)now + s_dev.ttl_s;
    if (!(claims = s_claims(user, now, exp)))
        return WK_STOP; /* unanswered: the runtime answers `internal` */
    n = wk_jwt_sign_hs256(s_dev.keys, s_dev.kid, claims, tok, sizeof(tok));
    free(claims);
    if (n < 0)
        return WK_STOP;
    proto_buf_init(&b, 0);
    if (!mpk_write_map(&b, 3) && !mpk_write_cstr(&b, "token") &&
        !mpk_write_str(&b, tok, (size_t)n) && !mpk_write_cstr(&b, "exp") &&
        !mpk_write_uint(&b, exp) && !mpk_write_cstr(&b, "user") &&
        !mpk_write_str(&b, user.ptr, user.len))
        wk_reply(a, m, proto_buf_payload(&b), b.len);
    proto_buf_fini(&b);
    return WK_STOP;
}

const wk_service_t wk_svc_devtoken = {"devtoken", NULL, devtoken_handle, NULL, WK_SVC_RETRY_SAFE};
