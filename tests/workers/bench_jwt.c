/*
 * bench_jwt.c - what one token costs the worker: wk_jwt_verify() alone and
 * the whole auth service path (deliver, decode, verify, encode, reply)
 * through the actor runtime, for HS256, RS256 (2048) and ES256. Not part
 * of the suite (EXCLUDE_FROM_ALL): the figures go to docs/benchmarks.md.
 *
 *   cmake --build build --target bench_jwt && ./build/tests/workers/bench_jwt [seconds]
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>

#include <cmocka.h>

#include "../../protocol/mpk.h"
#include "../../workers/actor.h"
#include "../../workers/jwt.h"
#include "../../workers/svc_auth.h"
#include "jwtutil.h"

static uint64_t g_replies, g_errors;

static int
s_reply(void *ctx, uint32_t origin, uint64_t rid, const void *data, size_t len)
{
    (void)ctx, (void)origin, (void)rid, (void)data, (void)len;
    g_replies++;
    return 0;
}

static int
s_error(void *ctx, uint32_t origin, uint64_t rid, proto_span_t code, proto_span_t msg)
{
    (void)ctx, (void)origin, (void)rid, (void)msg;
    fprintf(stderr, "error %.*s\n", (int)code.len, (const char *)code.ptr);
    g_errors++;
    return 0;
}

static int
s_send(void *ctx, uint32_t origin, const uint64_t *conns, size_t n, uint32_t flags,
       proto_span_t svc, const void *payload, size_t len)
{
    (void)ctx, (void)origin, (void)conns, (void)n, (void)flags, (void)svc, (void)payload, (void)len;
    return 0;
}

static int
s_close(void *ctx, uint32_t origin, uint64_t conn, uint32_t code, proto_span_t reason)
{
    (void)ctx, (void)origin, (void)conn, (void)code, (void)reason;
    return 0;
}

static const wk_out_t s_out = {s_reply, s_error, s_send, s_close};

static double
s_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static int64_t
s_clock(void)
{
    return T_NOW;
}

static void
s_bench(const char *name, const wk_jwt_keys_t *keys, wk_runtime_t *rt, const char *tok, double secs)
{
    wk_jwt_claims_t c;
    wk_jwt_err_t e;
    size_t len = strlen(tok);
    uint64_t n = 0;

    /* verify only */
    double t0 = s_now(), t1;
    do {
        for (int i = 0; i < 64; i++) {
            if (wk_jwt_verify(keys, NULL, tok, len, T_NOW, &c, &e) != 0) {
                fprintf(stderr, "%s: %s\n", name, e.code);
                exit(1);
            }
        }
        n += 64;
        t1 = s_now();
    } while (t1 - t0 < secs);
    double verify_us = (t1 - t0) / (double)n * 1e6;

    /* the service path: one REQ per connection, as the gateway sends them */
    proto_buf_t b;
    proto_buf_init(&b, 0);
    mpk_write_map(&b, 1);
    mpk_write_cstr(&b, "token");
    mpk_write_str(&b, tok, len);
    proto_bk_t h;
    memset(&h, 0, sizeof h);
    h.version = PROTO_BK_VERSION;
    h.type = PROTO_BK_REQ;
    h.flags = PROTO_BK_F_GW;
    h.svc = proto_span("auth", 4);
    char key[32];
    uint64_t m = 0, before = g_replies;
    t0 = s_now();
    do {
        for (int i = 0; i < 64; i++) {
            m++;
            h.rid = m;
            h.conn = m;
            snprintf(key, sizeof key, "c:%llu", (unsigned long long)m);
            h.key = proto_span(key, strlen(key));
            wk_runtime_deliver(rt, 0, &h, proto_buf_payload(&b), b.len);
            wk_runtime_run(rt, 16);
        }
        t1 = s_now();
    } while (t1 - t0 < secs);
    double svc_us = (t1 - t0) / (double)m * 1e6;
    proto_buf_fini(&b);
    if (g_replies - before != m || g_errors) {
        fprintf(stderr, "%s: %llu replies for %llu requests\n", name,
                (unsigned long long)(g_replies - before), (unsigned long long)m);
        exit(1);
    }
    printf("%-6s token %4zu B   verify %7.2f us (%7.0f/s)   auth service %7.2f us (%7.0f/s)\n",
           name, len, verify_us, 1e6 / verify_us, svc_us, 1e6 / svc_us);
}

int
main(int argc, char **argv)
{
    double secs = argc > 1 ? atof(argv[1]) : 2.0;
    t_fx_t fx;
    char err[512];
    t_fx_init(&fx);
    wk_jwt_keys_t *keys = wk_jwt_keys_load(fx.keyfile, err, sizeof err);
    wk_svc_auth_cfg_t cfg = {fx.keyfile, 30, NULL, NULL, s_clock};
    if (!keys || wk_svc_auth_configure(&cfg, err, sizeof err) != 0) {
        fprintf(stderr, "%s\n", err);
        return 1;
    }
    const wk_service_t *svcs[] = {&wk_svc_auth};
    wk_runtime_t *rt = wk_runtime_new(NULL, svcs, 1, &s_out, NULL);

    /* A realistic payload: subject, times, issuer, audience, channels. */
    const char *payload = "{\"sub\":\"user-1234567\",\"iat\":1699999000,\"exp\":1700003600,"
                          "\"iss\":\"https://id.example\",\"aud\":\"wsgate\",\"channels\":"
                          "{\"sub\":[\"room.*\",\"user.1234567\"],\"pub\":[\"room.1\"]}}";
    char *hs = t_token(T_HS256, fx.secret, sizeof fx.secret,
                       "{\"alg\":\"HS256\",\"kid\":\"hs1\",\"typ\":\"JWT\"}", payload);
    char *rs = t_token(T_RS256, fx.rsa, 0, "{\"alg\":\"RS256\",\"kid\":\"rsa1\",\"typ\":\"JWT\"}",
                       payload);
    char *es =
        t_token(T_ES256, fx.ec, 0, "{\"alg\":\"ES256\",\"kid\":\"ec1\",\"typ\":\"JWT\"}", payload);
    printf("%s, %.1f s per figure, one thread\n", OpenSSL_version(OPENSSL_VERSION), secs);
    s_bench("HS256", keys, rt, hs, secs);
    s_bench("RS256", keys, rt, rs, secs);
    s_bench("ES256", keys, rt, es, secs);

    free(hs);
    free(rs);
    free(es);
    wk_runtime_destroy(&rt);
    wk_svc_auth_unconfigure();
    wk_jwt_keys_destroy(&keys);
    t_fx_fini(&fx);
    return 0;
}
