/*
 * fuzz_chan.c - libFuzzer target for the chan service (workers/svc_chan.c).
 *
 * The input is a script of gateway REQs to a few channels: per step, one
 * control byte (channel, gateway link, GW flag, rid or not, a clock step)
 * and a length-prefixed payload handed to the service as is. Checks: every
 * REQ with rid != 0 gets exactly one answer, the runtime never has to
 * answer for the service (`unanswered`), every PUB is well-formed for the
 * gateway's header decoder; ASan/LSan check memory, including after
 * shutdown with pinned channels. Small history bounds so that the ring and
 * its eviction are reached quickly.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "../../protocol/backend.h"
#include "../../protocol/envelope.h"
#include "../../protocol/mpk.h"
#include "../../workers/actor.h"
#include "../../workers/svc_chan.h"

#define CHECK(c)                                                                                   \
    do {                                                                                           \
        if (!(c))                                                                                  \
            abort();                                                                               \
    } while (0)

static uint64_t g_answers;

static int
s_reply(void *ctx, uint32_t origin, uint64_t rid, const void *data, size_t len)
{
    (void)ctx, (void)origin;
    CHECK(rid != 0 && mpk_validate(data, len, MPK_MAX_DEPTH) == PROTO_OK);
    g_answers++;
    return 0;
}

static int
s_error(void *ctx, uint32_t origin, uint64_t rid, proto_span_t code, proto_span_t msg)
{
    (void)ctx, (void)origin, (void)msg;
    CHECK(rid != 0 && proto_code_valid(code));
    g_answers++;
    return 0;
}

static int
s_send(void *ctx, uint32_t origin, const uint64_t *conns, size_t n, uint32_t flags,
       proto_span_t svc, const void *payload, size_t len)
{
    (void)ctx, (void)origin, (void)conns, (void)n, (void)flags, (void)svc, (void)payload, (void)len;
    abort(); /* chan never pushes */
}

static int
s_close(void *ctx, uint32_t origin, uint64_t conn, uint32_t code, proto_span_t reason)
{
    (void)ctx, (void)origin, (void)conn, (void)code, (void)reason;
    abort();
}

/* What a gateway would do with the PUB: encode and decode its header. */
static int
s_pub(void *ctx, proto_span_t channel, uint32_t kind, uint64_t offset, proto_span_t epoch,
      proto_span_t user, const void *payload, size_t len)
{
    proto_buf_t b;
    proto_bk_t h;
    const char *err;
    (void)ctx;
    proto_buf_init(&b, 0);
    CHECK(proto_bk_encode_pub(&b, channel, kind, offset, epoch, user) == 0);
    CHECK(proto_bk_decode(proto_buf_payload(&b), b.len, &h, &err) == PROTO_OK);
    CHECK(mpk_validate(payload, len, MPK_MAX_DEPTH) == PROTO_OK);
    proto_buf_fini(&b);
    return 0;
}

static int
s_publish(void *ctx, uint32_t origin, uint64_t ref, proto_span_t channel, const void *data,
          size_t len)
{
    (void)ctx, (void)origin, (void)ref, (void)channel, (void)data, (void)len;
    abort();
}

static const wk_out_t s_out = {s_reply, s_error, s_send, s_close, s_pub, s_publish};

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static const char *const keys[] = {"room:1", "room:2", "lobby", ""};
    static const char *const users[] = {"", "alice", "bob", "\xc3\xa9ve"};
    static const wk_service_t *const svcs[] = {&wk_svc_chan};
    static bool configured;
    if (!configured) {
        wk_chan_cfg_t cfg;
        char err[256];
        wk_chan_cfg_defaults(&cfg);
        cfg.public_patterns = "lobby";
        cfg.history = 4;
        cfg.history_bytes = 64;
        cfg.history_ttl_s = 1;
        cfg.max_subscribers = 8;
        CHECK(wk_chan_configure(&cfg, err, sizeof err) == 0);
        configured = true;
    }
    wk_runtime_cfg_t rcfg = {4, 0, 500}; /* few actors: eviction and passivation happen */
    wk_runtime_t *rt = wk_runtime_new(&rcfg, svcs, 1, &s_out, NULL);
    CHECK(rt);
    uint64_t now = 1, wanted = 0, rid = 1;
    g_answers = 0;

    size_t i = 0;
    while (i + 2 <= size) {
        uint8_t ctl = data[i++];
        size_t len = data[i++];
        if (len > size - i)
            len = size - i;
        proto_bk_t h;
        memset(&h, 0, sizeof h);
        h.version = PROTO_BK_VERSION;
        h.type = PROTO_BK_REQ;
        h.svc = proto_span("chan", 4);
        h.key = proto_span(keys[ctl & 3], strlen(keys[ctl & 3]));
        h.conn = (ctl >> 2) & 3;
        h.flags = (ctl & 0x10) ? 0 : PROTO_BK_F_GW;
        h.rid = (ctl & 0x20) ? 0 : rid++;
        h.user = proto_span(users[(ctl >> 6) & 3], strlen(users[(ctl >> 6) & 3]));
        uint32_t origin = (ctl >> 3) & 1;
        if (wk_runtime_deliver(rt, origin, &h, data + i, len) == 0 && h.rid)
            wanted++;
        else if (h.rid)
            g_answers--; /* refused at delivery: answered there, not by chan */
        i += len;
        if (ctl & 0x80)
            wk_runtime_tick(rt, now += 300);
        while (wk_runtime_run(rt, 64) > 0)
            ;
    }
    wk_stats_t st;
    wk_runtime_stats(rt, &st);
    CHECK(g_answers == wanted);
    CHECK(st.unanswered == 0);
    wk_runtime_destroy(&rt);
    return 0;
}
