/*
 * test_svc_auth.c - the `auth` service (workers/svc_auth.c) through the
 * actor runtime, outputs recorded by a wk_out_t (as in test_actor.c),
 * tokens minted with jwtutil.h, the service's clock fixed at T_NOW.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "../../protocol/mpk.h"
#include "../../workers/actor.h"
#include "../../workers/jwt.h"
#include "../../workers/svc_auth.h"
#include "jwtutil.h"

static t_fx_t g_fx;

/* --- recorded outputs -------------------------------------------------- */

#include "recout.h"

/* --- setup ------------------------------------------------------------- */

static int64_t
s_clock(void)
{
    return T_NOW;
}

static int
s_group_setup(void **st)
{
    (void)st;
    t_fx_init(&g_fx);
    return 0;
}

static int
s_group_teardown(void **st)
{
    (void)st;
    t_fx_fini(&g_fx);
    return 0;
}

static int
s_setup(void **st)
{
    char err[512];
    wk_svc_auth_cfg_t cfg = {g_fx.keyfile, 30, NULL, NULL, s_clock};
    static const wk_service_t *const svcs[] = {&wk_svc_auth, &wk_svc_echo};
    if (wk_svc_auth_configure(&cfg, err, sizeof err) != 0) {
        fprintf(stderr, "configure: %s\n", err);
        return -1;
    }
    *st = wk_runtime_new(NULL, svcs, 2, &s_out, NULL);
    return *st ? 0 : -1;
}

static int
s_teardown(void **st)
{
    wk_runtime_t *rt = *st;
    wk_runtime_destroy(&rt);
    wk_svc_auth_unconfigure();
    s_out_clear();
    free(g_out.v);
    memset(&g_out, 0, sizeof g_out);
    return 0;
}

/* --- requests ---------------------------------------------------------- */

/* {"token": tok} plus, when extra, an unknown key before it. */
static size_t
s_req_map(uint8_t *out, size_t cap, const char *tok, bool extra)
{
    proto_buf_t b;
    proto_buf_init(&b, 0);
    assert_int_equal(mpk_write_map(&b, extra ? 2 : 1), 0);
    if (extra) {
        assert_int_equal(mpk_write_cstr(&b, "origin"), 0);
        assert_int_equal(mpk_write_array(&b, 2), 0);
        assert_int_equal(mpk_write_cstr(&b, "https://app.example"), 0);
        assert_int_equal(mpk_write_uint(&b, 7), 0);
    }
    assert_int_equal(mpk_write_cstr(&b, "token"), 0);
    assert_int_equal(mpk_write_str(&b, tok, strlen(tok)), 0);
    assert_true(b.len <= cap);
    memcpy(out, proto_buf_payload(&b), b.len);
    size_t n = b.len;
    proto_buf_fini(&b);
    return n;
}

static int
s_deliver(wk_runtime_t *rt, uint64_t rid, uint32_t flags, const void *data, size_t len)
{
    proto_bk_t h;
    char key[32];
    memset(&h, 0, sizeof h);
    h.version = PROTO_BK_VERSION;
    h.type = PROTO_BK_REQ;
    h.rid = rid;
    h.conn = 1000 + rid;
    h.flags = flags;
    snprintf(key, sizeof key, "c:%llu", (unsigned long long)h.conn);
    h.svc = proto_span("auth", 4);
    h.key = proto_span(key, strlen(key));
    return wk_runtime_deliver(rt, 0, &h, data, len);
}

static void
s_run(wk_runtime_t *rt)
{
    while (wk_runtime_run(rt, 1000) > 0)
        ;
}

/* Sends tok with the GW flag; returns the error code, or NULL for a reply. */
static const char *
s_auth(wk_runtime_t *rt, uint64_t rid, const char *tok)
{
    static uint8_t buf[WK_JWT_MAX_TOKEN + 256];
    size_t n = s_req_map(buf, sizeof buf, tok, false);
    assert_int_equal(s_deliver(rt, rid, PROTO_BK_F_GW, buf, n), 0);
    s_run(rt);
    const out_rec_t *r = s_out_for(rid);
    return r->kind == OUT_ERROR ? r->code : NULL;
}

/* --- reply decoding ---------------------------------------------------- */

typedef struct {
    char user[256];
    uint64_t exp;
    char sub[8][256];
    size_t n_sub;
    char pub[8][256];
    size_t n_pub;
} reply_t;

static bool
s_key_is(proto_span_t k, const char *s)
{
    return k.len == strlen(s) && memcmp(k.ptr, s, k.len) == 0;
}

static size_t
s_read_list(mpk_reader_t *r, char (*out)[256])
{
    uint32_t n;
    assert_int_equal(mpk_read_array(r, &n), PROTO_OK);
    assert_true(n <= 8);
    for (uint32_t i = 0; i < n; i++) {
        proto_span_t s;
        assert_int_equal(mpk_read_str(r, &s), PROTO_OK);
        s_copy_str(out[i], 256, s);
    }
    return n;
}

/* Decodes {"user", "exp", "info": {"sub", "pub"}}: exactly these keys. */
static void
s_decode_reply(const out_rec_t *rec, reply_t *out)
{
    mpk_reader_t r;
    uint32_t n, m;
    proto_span_t k;
    bool seen_user = false, seen_exp = false, seen_info = false;

    assert_int_not_equal(rec->kind, OUT_ERROR);
    memset(out, 0, sizeof *out);
    assert_int_equal(mpk_validate(rec->data, rec->len, MPK_MAX_DEPTH), PROTO_OK);
    mpk_reader_init(&r, rec->data, rec->len);
    assert_int_equal(mpk_read_map(&r, &n), PROTO_OK);
    assert_int_equal(n, 3);
    for (uint32_t i = 0; i < n; i++) {
        assert_int_equal(mpk_read_str(&r, &k), PROTO_OK);
        if (s_key_is(k, "user")) {
            proto_span_t s;
            assert_int_equal(mpk_read_str(&r, &s), PROTO_OK);
            s_copy_str(out->user, sizeof out->user, s);
            seen_user = true;
        } else if (s_key_is(k, "exp")) {
            assert_int_equal(mpk_read_uint(&r, &out->exp), PROTO_OK);
            seen_exp = true;
        } else if (s_key_is(k, "info")) {
            bool seen_sub = false, seen_pub = false;
            assert_int_equal(mpk_read_map(&r, &m), PROTO_OK);
            assert_int_equal(m, 2);
            for (uint32_t j = 0; j < m; j++) {
                assert_int_equal(mpk_read_str(&r, &k), PROTO_OK);
                if (s_key_is(k, "sub")) {
                    out->n_sub = s_read_list(&r, out->sub);
                    seen_sub = true;
                } else if (s_key_is(k, "pub")) {
                    out->n_pub = s_read_list(&r, out->pub);
                    seen_pub = true;
                } else {
                    fail_msg("unexpected info key %.*s", (int)k.len, (const char *)k.ptr);
                }
            }
            assert_true(seen_sub && seen_pub);
            seen_info = true;
        } else {
            fail_msg("unexpected key %.*s", (int)k.len, (const char *)k.ptr);
        }
    }
    assert_true(seen_user && seen_exp && seen_info);
    assert_int_equal(mpk_reader_left(&r), 0);
}

/* --- tests ------------------------------------------------------------- */

static void
test_reply(void **st)
{
    wk_runtime_t *rt = *st;
    char *tok = t_token(T_RS256, g_fx.rsa, 0, "{\"alg\":\"RS256\",\"kid\":\"rsa1\"}",
                        "{\"sub\":\"alice\",\"exp\":1700003600,\"channels\":"
                        "{\"sub\":[\"room.*\",\"news\"],\"pub\":[\"room.1\"]}}");
    assert_null(s_auth(rt, 1, tok));
    reply_t rep;
    s_decode_reply(s_out_for(1), &rep);
    assert_string_equal(rep.user, "alice");
    assert_int_equal(rep.exp, 1700003600);
    assert_int_equal(rep.n_sub, 2);
    assert_string_equal(rep.sub[0], "room.*");
    assert_string_equal(rep.sub[1], "news");
    assert_int_equal(rep.n_pub, 1);
    assert_string_equal(rep.pub[0], "room.1");
    free(tok);

    /* no exp, no channels: exp 0 and empty lists, still present */
    tok = t_token(T_HS256, g_fx.secret, sizeof g_fx.secret, "{\"alg\":\"HS256\"}",
                  "{\"sub\":\"bob\"}");
    assert_null(s_auth(rt, 2, tok));
    s_decode_reply(s_out_for(2), &rep);
    assert_string_equal(rep.user, "bob");
    assert_int_equal(rep.exp, 0);
    assert_int_equal(rep.n_sub, 0);
    assert_int_equal(rep.n_pub, 0);

    /* unknown keys in the request map are skipped */
    uint8_t buf[1024];
    size_t n = s_req_map(buf, sizeof buf, tok, true);
    assert_int_equal(s_deliver(rt, 3, PROTO_BK_F_GW, buf, n), 0);
    s_run(rt);
    s_decode_reply(s_out_for(3), &rep);
    assert_string_equal(rep.user, "bob");
    free(tok);
    assert_int_equal(s_out_count(OUT_SEND) + s_out_count(OUT_CLOSE), 0);
}

static void
test_forbidden_without_gw_flag(void **st)
{
    wk_runtime_t *rt = *st;
    char *tok = t_token(T_HS256, g_fx.secret, sizeof g_fx.secret, "{\"alg\":\"HS256\"}",
                        "{\"sub\":\"mallory\"}");
    uint8_t buf[1024];
    size_t n = s_req_map(buf, sizeof buf, tok, false);
    /* a client's own request to `auth` (flags 0), and raw client bytes */
    assert_int_equal(s_deliver(rt, 1, 0, buf, n), 0);
    assert_int_equal(s_deliver(rt, 2, PROTO_BK_F_RAW, buf, n), 0);
    assert_int_equal(s_deliver(rt, 3, PROTO_BK_F_RAW | PROTO_BK_F_GW, buf, n), 0);
    s_run(rt);
    for (uint64_t rid = 1; rid <= 3; rid++) {
        const out_rec_t *r = s_out_for(rid);
        assert_int_equal(r->kind, OUT_ERROR);
        assert_string_equal(r->code, "forbidden");
        assert_null(strstr(r->msg, "mallory"));
    }
    /* the same token with the flag is fine */
    assert_null(s_auth(rt, 4, tok));
    free(tok);
}

/* Every refused token gets its code, and no error message holds any part
 * of it; stderr stays silent too. */
static void
test_errors_without_token_text(void **st)
{
    wk_runtime_t *rt = *st;
    const char *hs = "{\"alg\":\"HS256\",\"kid\":\"hs1\"}";
    const size_t sl = sizeof g_fx.secret;
    struct {
        char *tok;
        const char *code;
    } cases[] = {
        {t_token(T_HS256, g_fx.secret, sl, hs, "{\"sub\":\"expired-user\",\"exp\":1699990000}"),
         "token_expired"},
        {t_token(T_HS256, g_fx.secret, sl, hs, "{\"sub\":\"early-user\",\"nbf\":1700090000}"),
         "token_not_yet_valid"},
        {t_token(T_NONE, NULL, 0, "{\"alg\":\"none\"}", "{\"sub\":\"root-user\"}"),
         "alg_not_allowed"},
        {t_token(T_HS256, g_fx.rsa_pub_pem, strlen(g_fx.rsa_pub_pem),
                 "{\"alg\":\"HS256\",\"kid\":\"rsa1\"}", "{\"sub\":\"confused-user\"}"),
         "alg_not_allowed"},
        {t_token(T_HS256, g_fx.secret, sl, "{\"alg\":\"HS256\",\"kid\":\"nokey\"}",
                 "{\"sub\":\"nokid-user\"}"),
         "unknown_key"},
        {t_token(T_HS256, "0123456789abcdef0123456789abcdef", 32, hs, "{\"sub\":\"forged-user\"}"),
         "bad_signature"},
        {t_token(T_HS256, g_fx.secret, sl, hs, "{\"sub\":\"typed-user\",\"exp\":\"soon\"}"),
         "malformed_token"},
        {strdup("eyJhbGciOiJIUzI1NiJ9.not-a-token-at-all"), "malformed_token"},
        {strdup("secret-looking-garbage-without-dots"), "malformed_token"},
    };
    const size_t n_cases = sizeof cases / sizeof cases[0];
    char out_path[256];
    snprintf(out_path, sizeof out_path, "%s", t_path(&g_fx, "svc-stderr.txt"));
    fflush(stderr);
    int saved = dup(2);
    int fd = open(out_path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
    assert_true(saved >= 0 && fd >= 0);
    dup2(fd, 2);
    close(fd);

    for (size_t i = 0; i < n_cases; i++) {
        const char *code = s_auth(rt, 100 + i, cases[i].tok);
        if (!code || strcmp(code, cases[i].code) != 0) {
            dup2(saved, 2);
            fail_msg("case %zu: expected %s, got %s", i, cases[i].code, code ? code : "a reply");
        }
    }
    /* too large: a valid-looking token of 8193 bytes */
    char *big = malloc(WK_JWT_MAX_TOKEN + 2);
    assert_non_null(big);
    memset(big, 'Q', WK_JWT_MAX_TOKEN + 1);
    big[WK_JWT_MAX_TOKEN + 1] = '\0';
    big[20] = big[40] = '.';
    assert_string_equal(s_auth(rt, 200, big), "token_too_large");

    fflush(stderr);
    dup2(saved, 2);
    close(saved);

    /* Nothing of any token in any message: not the whole, not a part,
     * not the subject. */
    for (size_t i = 0; i < g_out.n; i++) {
        const out_rec_t *r = &g_out.v[i];
        assert_int_equal(r->kind, OUT_ERROR);
        assert_true(r->msg[0] != '\0');
        for (size_t j = 0; j < n_cases; j++) {
            const char *t = cases[j].tok;
            assert_null(strstr(r->msg, t));
            for (const char *p = t; *p;) {
                size_t len = strcspn(p, ".");
                if (len >= 4) {
                    char part[WK_JWT_MAX_TOKEN];
                    memcpy(part, p, len);
                    part[len] = '\0';
                    assert_null(strstr(r->msg, part));
                }
                p += len + (p[len] == '.');
            }
            assert_null(strstr(r->msg, "-user"));
        }
        assert_null(strstr(r->msg, "QQQQ"));
    }
    FILE *f = fopen(out_path, "r");
    assert_non_null(f);
    char got[256];
    size_t n = fread(got, 1, sizeof got - 1, f);
    fclose(f);
    got[n] = '\0';
    assert_string_equal(got, ""); /* the service logs nothing */

    for (size_t i = 0; i < n_cases; i++)
        free(cases[i].tok);
    free(big);
}

static void
test_bad_requests(void **st)
{
    wk_runtime_t *rt = *st;
    proto_buf_t b;
    proto_buf_init(&b, 0);

    /* not a map */
    assert_int_equal(mpk_write_cstr(&b, "eyJ.x.y"), 0);
    assert_int_equal(s_deliver(rt, 1, PROTO_BK_F_GW, proto_buf_payload(&b), b.len), 0);
    /* empty payload */
    assert_int_equal(s_deliver(rt, 2, PROTO_BK_F_GW, NULL, 0), 0);
    /* a map without token */
    proto_buf_reset(&b);
    assert_int_equal(mpk_write_map(&b, 1), 0);
    assert_int_equal(mpk_write_cstr(&b, "tok"), 0);
    assert_int_equal(mpk_write_cstr(&b, "x"), 0);
    assert_int_equal(s_deliver(rt, 3, PROTO_BK_F_GW, proto_buf_payload(&b), b.len), 0);
    /* token not a string */
    proto_buf_reset(&b);
    assert_int_equal(mpk_write_map(&b, 1), 0);
    assert_int_equal(mpk_write_cstr(&b, "token"), 0);
    assert_int_equal(mpk_write_bin(&b, "abc", 3), 0);
    assert_int_equal(s_deliver(rt, 4, PROTO_BK_F_GW, proto_buf_payload(&b), b.len), 0);
    /* two tokens, each valid alone */
    char *tok =
        t_token(T_HS256, g_fx.secret, sizeof g_fx.secret, "{\"alg\":\"HS256\"}", "{\"sub\":\"u\"}");
    proto_buf_reset(&b);
    assert_int_equal(mpk_write_map(&b, 2), 0);
    assert_int_equal(mpk_write_cstr(&b, "token"), 0);
    assert_int_equal(mpk_write_cstr(&b, tok), 0);
    assert_int_equal(mpk_write_cstr(&b, "token"), 0);
    assert_int_equal(mpk_write_cstr(&b, tok), 0);
    free(tok);
    assert_int_equal(s_deliver(rt, 5, PROTO_BK_F_GW, proto_buf_payload(&b), b.len), 0);
    /* a map with a non-string key */
    proto_buf_reset(&b);
    assert_int_equal(mpk_write_map(&b, 1), 0);
    assert_int_equal(mpk_write_uint(&b, 1), 0);
    assert_int_equal(mpk_write_cstr(&b, "x"), 0);
    assert_int_equal(s_deliver(rt, 6, PROTO_BK_F_GW, proto_buf_payload(&b), b.len), 0);
    /* rid 0: nobody waits, nothing is sent */
    assert_int_equal(s_deliver(rt, 0, PROTO_BK_F_GW, proto_buf_payload(&b), b.len), 0);
    proto_buf_fini(&b);
    s_run(rt);

    assert_string_equal(s_out_for(1)->code, "bad_request");
    assert_string_equal(s_out_for(2)->code, "bad_request");
    assert_string_equal(s_out_for(3)->code, "malformed_token");
    assert_string_equal(s_out_for(4)->code, "malformed_token");
    assert_string_equal(s_out_for(5)->code, "malformed_token");
    assert_string_equal(s_out_for(6)->code, "bad_request");
    assert_int_equal(g_out.n, 6);
}

static void
test_no_idle_actors(void **st)
{
    wk_runtime_t *rt = *st;
    char *tok =
        t_token(T_HS256, g_fx.secret, sizeof g_fx.secret, "{\"alg\":\"HS256\"}", "{\"sub\":\"u\"}");
    for (uint64_t rid = 1; rid <= 50; rid++)
        assert_null(s_auth(rt, rid, tok));
    free(tok);
    wk_stats_t s;
    wk_runtime_stats(rt, &s);
    /* every connection's actor is gone right after its answer */
    assert_int_equal(s.live_actors, 0);
    assert_int_equal(s.idle_actors, 0);
    assert_int_equal(s.handled, 50);
    assert_int_equal(s.passivated, 50);
    assert_int_equal(s.errors, 0);
    assert_int_equal(s.unanswered, 0);
    assert_int_equal(s.bad_output, 0);
}

static void
test_service_entry(void **st)
{
    wk_runtime_t *rt = *st;
    assert_ptr_equal(wk_service_find("auth"), &wk_svc_auth);
    assert_string_equal(wk_svc_auth.name, "auth");
    assert_true(wk_svc_auth.flags & WK_SVC_RETRY_SAFE);

    /* a failed reconfiguration keeps the keys that work */
    char err[512];
    wk_svc_auth_cfg_t bad = {t_path(&g_fx, "missing.ini"), 30, NULL, NULL, s_clock};
    assert_int_equal(wk_svc_auth_configure(&bad, err, sizeof err), -1);
    assert_non_null(strstr(err, "missing.ini"));
    wk_svc_auth_cfg_t none = {NULL, 30, NULL, NULL, NULL};
    assert_int_equal(wk_svc_auth_configure(&none, err, sizeof err), -1);
    char *tok = t_token(T_ES256, g_fx.ec, 0, "{\"alg\":\"ES256\",\"kid\":\"ec1\"}",
                        "{\"sub\":\"e\",\"iss\":\"https://id.example\",\"aud\":[\"wsgate\"]}");
    assert_null(s_auth(rt, 1, tok));

    /* iss and aud from the configuration */
    wk_svc_auth_cfg_t strict = {g_fx.keyfile, 0, "https://id.example", "other", s_clock};
    assert_int_equal(wk_svc_auth_configure(&strict, err, sizeof err), 0);
    assert_string_equal(s_auth(rt, 2, tok), "bad_audience");
    strict.aud = "wsgate";
    strict.iss = "https://other.example";
    assert_int_equal(wk_svc_auth_configure(&strict, err, sizeof err), 0);
    assert_string_equal(s_auth(rt, 3, tok), "bad_issuer");
    strict.iss = "https://id.example";
    assert_int_equal(wk_svc_auth_configure(&strict, err, sizeof err), 0);
    assert_null(s_auth(rt, 4, tok));
    free(tok);

    /* unconfigured: internal, never a reply */
    wk_svc_auth_unconfigure();
    assert_string_equal(s_auth(rt, 5, "a.b.c"), "internal");
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_reply, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown(test_forbidden_without_gw_flag, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown(test_errors_without_token_text, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown(test_bad_requests, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown(test_no_idle_actors, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown(test_service_entry, s_setup, s_teardown),
    };
    return cmocka_run_group_tests_name("workers.svc_auth", tests, s_group_setup, s_group_teardown);
}
