/*
 * main.c - wsgate-worker: runs wsgate services for one or more gateways.
 *
 * One thread: one runtime (actor.h) fed by one link (link.h). SIGINT and
 * SIGTERM are taken through a signalfd that the link polls alongside its
 * sockets, so a signal never interrupts a behaviour and shutdown is an
 * ordinary return from the loop: sockets closed, actors passivated,
 * everything freed (the ASan leak check runs on the integration tests).
 */
#include "actor.h"
#include "jwt.h"
#include "link.h"
#include "svc_auth.h"
#include "svc_chan.h"
#include "svc_devtoken.h"

#include <errno.h>
#include <stddef.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/signalfd.h>
#include <unistd.h>

#include "../protocol/keyfile.h"
#include "../protocol/log.h"
#include "../protocol/settings.h"

#define WK_DEFAULT_GATEWAY "tcp://127.0.0.1:7001"
#define WK_DEFAULT_SERVICES "echo,counter"

#define WK_MAX_GATEWAYS 64

typedef struct {
    char *gateways[WK_MAX_GATEWAYS]; /* owned */
    size_t n_gateways;
    char id[PROTO_BK_WORKER_ID_MAX + 1];
    char services[512]; /* the list as given, for the start line */
    const wk_service_t *svcs[PROTO_BK_MAX_SERVICES];
    size_t n_svcs;
    wk_runtime_cfg_t rt;
    uint64_t hello_ms;
    uint64_t drain_ms;
    wk_chan_cfg_t chan; /* chan.public_patterns points at chan_public */
    char chan_public[WK_CHAN_PUBLIC_BYTES];
    char curve_secret_file[512];
    char curve_server_key[PROTO_Z85_KEY_LEN + 1];
    char curve_secret[PROTO_Z85_KEY_LEN + 1]; /* read from the file */
    char auth_keys[512];
    uint32_t auth_leeway_s;
    char auth_iss[256];
    char auth_aud[256];
    char dev_kid[WK_JWT_MAX_PATTERN + 1];
    uint32_t dev_ttl_s;
    char dev_channels[512];
    char log_format[8];
    char metrics[80]; /* HOST:PORT or empty */
    char gateway_dns[256];
    char gateways_file[512];
    uint64_t resolve_ms;
    int verbose;
    bool check_config;
} wk_opts_t;

/* Fills o->svcs from o->services. 0 or -1 (message printed). */
static int
s_parse_services(wk_opts_t *o)
{
    char *copy = strdup(o->services);
    if (!copy)
        return -1;
    int rc = -1;
    o->n_svcs = 0;
    char *save = NULL;
    for (char *name = strtok_r(copy, ",", &save); name; name = strtok_r(NULL, ",", &save)) {
        const wk_service_t *svc = wk_service_find(name);
        if (!svc) {
            fprintf(stderr, "wsgate-worker: unknown service '%s'\n", name);
            goto out_free_copy;
        }
        for (size_t i = 0; i < o->n_svcs; i++) {
            if (o->svcs[i] == svc) {
                fprintf(stderr, "wsgate-worker: service '%s' given twice\n", name);
                goto out_free_copy;
            }
        }
        if (o->n_svcs == PROTO_BK_MAX_SERVICES)
            goto out_free_copy;
        o->svcs[o->n_svcs++] = svc;
    }
    if (o->n_svcs == 0) {
        fprintf(stderr, "wsgate-worker: no services\n");
        goto out_free_copy;
    }
    rc = 0;
out_free_copy:
    free(copy);
    return rc;
}

static void
s_opts_fini(wk_opts_t *o)
{
    for (size_t i = 0; i < o->n_gateways; i++)
        free(o->gateways[i]);
    o->n_gateways = 0;
    memset(o->curve_secret, 0, sizeof o->curve_secret);
}

static int
s_set_gateway(void *obj, const proto_setting_t *s, const char *val, char *err, size_t errsz)
{
    wk_opts_t *o = obj;

    (void)s;
    if (val[0] == '\0' || o->n_gateways == WK_MAX_GATEWAYS) {
        snprintf(err, errsz, "expected an endpoint (at most %d), got '%s'", WK_MAX_GATEWAYS, val);
        return -1;
    }
    o->gateways[o->n_gateways] = strdup(val);
    if (!o->gateways[o->n_gateways]) {
        snprintf(err, errsz, "out of memory");
        return -1;
    }
    o->n_gateways++;
    return 0;
}

static void
s_reset_gateway(void *obj, const proto_setting_t *s)
{
    (void)s;
    s_opts_fini(obj);
}

static void
s_show_gateway(const void *obj, const proto_setting_t *s, FILE *f)
{
    const wk_opts_t *o = obj;

    for (size_t i = 0; i < o->n_gateways; i++)
        fprintf(f, "%s = %s\n", s->name, o->gateways[i]);
}

static int
s_set_nonempty(void *obj, const proto_setting_t *s, const char *val, char *err, size_t errsz)
{
    if (val[0] == '\0') {
        snprintf(err, errsz, "must not be empty");
        return -1;
    }
    return proto_setting_set_str(obj, s, val, err, errsz);
}

static int
s_set_chan_public(void *obj, const proto_setting_t *s, const char *val, char *err, size_t errsz)
{
    if (wk_chan_patterns_check(val, err, errsz) != 0)
        return -1;
    return proto_setting_set_str(obj, s, val, err, errsz);
}

static int
s_set_key(void *obj, const proto_setting_t *s, const char *val, char *err, size_t errsz)
{
    if (!proto_z85_key_valid(val, strlen(val))) {
        snprintf(err, errsz, "expected a Z85 public key (40 characters)");
        return -1;
    }
    return proto_setting_set_str(obj, s, val, err, errsz);
}

#define F(field) offsetof(wk_opts_t, field), 0, sizeof(((wk_opts_t *)0)->field)
#define NUM(name, field, min, max, help)                                                           \
    {                                                                                              \
        name, "N", help, proto_setting_set_num, proto_setting_show_num, NULL, F(field), min, max   \
    }

/* Every worker setting, once: flag, file key ([worker]) and environment
 * variable (WSGATE_WORKER_<NAME>). */
static int
s_set_log_format(void *obj, const proto_setting_t *s, const char *val, char *err, size_t errsz)
{
    bool json;
    if (proto_log_format_parse(val, &json) != 0) {
        snprintf(err, errsz, "expected text or json, got '%s'", val);
        return -1;
    }
    return proto_setting_set_str(obj, s, val, err, errsz);
}

static const proto_setting_t s_settings[] = {
    {"gateway", "ENDPOINT", "gateway backend endpoint, repeatable (" WK_DEFAULT_GATEWAY ")",
     s_set_gateway, s_show_gateway, s_reset_gateway, 0, 0, 0, 0, 0},
    {"id", "NAME", "worker id (<hostname>-<pid>)", s_set_nonempty, proto_setting_show_str, NULL,
     F(id), 0, 0},
    {"services", "LIST", "comma-separated services (" WK_DEFAULT_SERVICES ")", s_set_nonempty,
     proto_setting_show_str, NULL, F(services), 0, 0},
    NUM("max-actors", rt.max_actors, 1, UINT32_MAX, "live actors (100000)"),
    NUM("idle-ms", rt.idle_ms, 1, UINT32_MAX, "passivate actors idle this long (60000)"),
    NUM("mailbox-max", rt.mailbox_max, 1, UINT32_MAX, "queued messages per actor (1024)"),
    NUM("hello-ms", hello_ms, 1, 3600000, "HELLO / heartbeat interval (1000)"),
    NUM("drain-ms", drain_ms, 0, 3600000,
        "on SIGTERM, longest wait for the gateways' drain acknowledgements (10000; 0: none)"),
    /* the chan service (svc_chan.h) */
    {"chan-public", "LIST",
     "chan: comma-separated channel patterns (name or prefix*) anyone may subscribe to and "
     "publish on (none)",
     s_set_chan_public, proto_setting_show_str, NULL, F(chan_public), 0, 0},
    NUM("chan-history", chan.history, 0, 1000000, "chan: publications kept per channel (100)"),
    NUM("chan-history-ttl-s", chan.history_ttl_s, 0, 31536000,
        "chan: history kept at most this long, in seconds (300; 0: no limit)"),
    NUM("chan-history-bytes", chan.history_bytes, 0, 1073741824,
        "chan: bytes of publication data kept per channel (1048576)"),
    NUM("chan-max-subscribers", chan.max_subscribers, 1, UINT32_MAX,
        "chan: subscribed connections per channel; more: overloaded (100000)"),
    {"curve-secret-file", "FILE", "CURVE: this worker's secret key (wsgate-keygen)",
     proto_setting_set_str, proto_setting_show_str, NULL, F(curve_secret_file), 0, 0},
    {"curve-server-key", "Z85", "CURVE: the gateways' public key", s_set_key,
     proto_setting_show_str, NULL, F(curve_server_key), 0, 0},
    {"auth-keys", "FILE", "auth: the JWT key file (required with the auth service)", s_set_nonempty,
     proto_setting_show_str, NULL, F(auth_keys), 0, 0},
    NUM("auth-leeway-s", auth_leeway_s, 0, 3600,
        "auth: clock skew allowed on exp, nbf and iat, in seconds (30)"),
    {"auth-iss", "STR", "auth: the issuer tokens must name (not checked)", s_set_nonempty,
     proto_setting_show_str, NULL, F(auth_iss), 0, 0},
    {"auth-aud", "STR", "auth: the audience tokens must name (not checked)", s_set_nonempty,
     proto_setting_show_str, NULL, F(auth_aud), 0, 0},
    {"dev-token-kid", "KID",
     "devtoken (DEVELOPMENT ONLY): sign with this HS256 key of --auth-keys (required with it)",
     s_set_nonempty, proto_setting_show_str, NULL, F(dev_kid), 0, 0},
    NUM("dev-token-ttl-s", dev_ttl_s, 1, 86400, "devtoken: token lifetime in seconds (600)"),
    {"dev-token-channels", "LIST",
     "devtoken: channel patterns granted for sub and pub (room:*,public:*)", s_set_nonempty,
     proto_setting_show_str, NULL, F(dev_channels), 0, 0},
    {"log-format", "FORMAT", "text, or json: one object per line (text)", s_set_log_format,
     proto_setting_show_str, NULL, F(log_format), 0, 0},
    {"metrics", "HOST:PORT", "serve GET /metrics (Prometheus text) there (off)",
     proto_setting_set_str, proto_setting_show_str, NULL, F(metrics), 0, 0},
    {"gateway-dns", "NAME:PORT", "find gateways: every address NAME resolves to (off)",
     proto_setting_set_str, proto_setting_show_str, NULL, F(gateway_dns), 0, 0},
    {"gateways-file", "FILE", "find gateways: endpoints in FILE, one a line (off)",
     proto_setting_set_str, proto_setting_show_str, NULL, F(gateways_file), 0, 0},
    NUM("resolve-ms", resolve_ms, 100, 3600000, "re-resolve gateway-dns / gateways-file (5000)"),
};

static const proto_settings_t s_table = {
    .prog = "wsgate-worker",
    .section = "worker",
    .other_section = "gateway",
    .env_prefix = "WSGATE_WORKER_",
    .tab = s_settings,
    .n = sizeof(s_settings) / sizeof(s_settings[0]),
};

/* Configures the auth service when it is in --services: its key file is
 * required and loaded here, so a bad one stops the worker before it
 * connects, and --check-config checks it. 0 or -1 (message printed). */
static int
s_setup_auth(const wk_opts_t *o)
{
    bool runs = false;
    char err[1024];

    for (size_t i = 0; i < o->n_svcs; i++)
        runs = runs || o->svcs[i] == &wk_svc_auth;
    if (!runs) {
        if (o->auth_keys[0] || o->auth_iss[0] || o->auth_aud[0])
            fprintf(stderr, "wsgate-worker: warning: auth-* settings given, but the auth "
                            "service is not in --services\n");
        return 0;
    }
    if (!o->auth_keys[0]) {
        fprintf(stderr, "wsgate-worker: the auth service needs --auth-keys FILE "
                        "(docs/security.md)\n");
        return -1;
    }
    wk_svc_auth_cfg_t cfg = {
        .keys_path = o->auth_keys,
        .leeway_s = o->auth_leeway_s,
        .iss = o->auth_iss,
        .aud = o->auth_aud,
    };
    if (wk_svc_auth_configure(&cfg, err, sizeof err) != 0) {
        fprintf(stderr, "wsgate-worker: auth-keys: %s\n", err);
        return -1;
    }
    return 0;
}

/* Configures the development token issuer when it is in --services, and
 * says loudly that it runs. 0 or -1 (message printed). */
static int
s_setup_devtoken(const wk_opts_t *o)
{
    bool runs = false;
    char err[1024];

    for (size_t i = 0; i < o->n_svcs; i++)
        runs = runs || o->svcs[i] == &wk_svc_devtoken;
    if (!runs)
        return 0;
    if (!o->auth_keys[0] || !o->dev_kid[0]) {
        fprintf(stderr, "wsgate-worker: the devtoken service needs --auth-keys FILE and "
                        "--dev-token-kid KID (an HS256 key in it)\n");
        return -1;
    }
    wk_svc_devtoken_cfg_t cfg = {
        .keys_path = o->auth_keys,
        .kid = o->dev_kid,
        .ttl_s = o->dev_ttl_s,
        .channels = o->dev_channels,
        .iss = o->auth_iss,
        .aud = o->auth_aud,
    };
    if (wk_svc_devtoken_configure(&cfg, err, sizeof err) != 0) {
        fprintf(stderr, "wsgate-worker: %s\n", err);
        return -1;
    }
    fprintf(stderr, "wsgate-worker: WARNING: the devtoken service is running: it signs a token "
                    "for any user who asks. For development only, never in production.\n");
    return 0;
}

/* 0 to run, 1 for --help or a good --check-config, 2 for a usage error
 * (message printed). */
static int
s_parse_args(wk_opts_t *o, int argc, char **argv)
{
    wk_chan_cfg_defaults(&o->chan);
    o->rt.max_actors = WK_DEFAULT_MAX_ACTORS;
    o->rt.idle_ms = WK_DEFAULT_IDLE_MS;
    o->rt.mailbox_max = WK_DEFAULT_MAILBOX_MAX;
    o->hello_ms = WK_LINK_DEFAULT_HELLO_MS;
    o->resolve_ms = WK_LINK_DEFAULT_RESOLVE_MS;
    o->drain_ms = WK_DEFAULT_DRAIN_MS;
    o->auth_leeway_s = WK_JWT_DEFAULT_LEEWAY_S;
    snprintf(o->services, sizeof o->services, "%s", WK_DEFAULT_SERVICES);
    snprintf(o->log_format, sizeof o->log_format, "text");
    o->dev_ttl_s = 600;
    snprintf(o->dev_channels, sizeof o->dev_channels, "room:*,public:*");

    int rc = proto_settings_parse(&s_table, o, argc, argv, &o->verbose, &o->check_config);
    if (rc != 0)
        return rc > 0 ? 1 : 2;
    if (o->n_gateways == 0 && !o->gateway_dns[0] && !o->gateways_file[0] &&
        s_set_gateway(o, NULL, WK_DEFAULT_GATEWAY, NULL, 0) != 0)
        return 2;
    if (s_parse_services(o) != 0)
        return 2;
    /* Always, whether or not chan runs here: the flags are checked alike. */
    o->chan.public_patterns = o->chan_public;
    char chan_err[256];
    if (wk_chan_configure(&o->chan, chan_err, sizeof chan_err) != 0) {
        fprintf(stderr, "wsgate-worker: %s\n", chan_err);
        return 2;
    }
    if (!o->id[0]) {
        char host[64];
        if (gethostname(host, sizeof host) != 0)
            snprintf(host, sizeof host, "worker");
        host[sizeof host - 1] = '\0';
        snprintf(o->id, sizeof o->id, "%s-%ld", host, (long)getpid());
    }
    if (!o->curve_secret_file[0] != !o->curve_server_key[0]) {
        fprintf(stderr, "wsgate-worker: CURVE needs both --curve-secret-file and "
                        "--curve-server-key\n");
        return 2;
    }
    if (o->curve_secret_file[0]) {
        char err[600];
        bool world = false;

        if (proto_key_read(o->curve_secret_file, o->curve_secret, &world, err, sizeof err) != 0) {
            fprintf(stderr, "wsgate-worker: %s\n", err);
            return 2;
        }
        if (world)
            fprintf(stderr, "wsgate-worker: warning: %s is readable by others (chmod 600 it)\n",
                    o->curve_secret_file);
    }
    if (s_setup_auth(o) != 0 || s_setup_devtoken(o) != 0)
        return 2;
    if (o->check_config) {
        proto_settings_print(&s_table, o, stdout);
        fprintf(stderr, "wsgate-worker: configuration OK\n");
        return 1;
    }
    return 0;
}

int
main(int argc, char **argv)
{
    wk_opts_t o;
    memset(&o, 0, sizeof o);
    int status = 1;
    int sfd = -1;
    wk_link_t *link = NULL;
    wk_runtime_t *rt = NULL;

    int prc = s_parse_args(&o, argc, argv);
    if (prc != 0) {
        status = prc == 1 ? 0 : 2;
        goto out_opts;
    }
    {
        bool json = false;
        (void)proto_log_format_parse(o.log_format, &json);
        proto_log_init("wsgate-worker", json, PROTO_LOG_INFO + o.verbose);
        proto_log_set_id(o.id);
    }

    /* Blocked before ZeroMQ starts its threads, which inherit the mask, so
     * the signals reach nobody but the signalfd. */
    sigset_t sigs;
    sigemptyset(&sigs);
    sigaddset(&sigs, SIGINT);
    sigaddset(&sigs, SIGTERM);
    if (sigprocmask(SIG_BLOCK, &sigs, NULL) != 0 ||
        (sfd = signalfd(-1, &sigs, SFD_CLOEXEC | SFD_NONBLOCK)) < 0) {
        perror("wsgate-worker: signalfd");
        goto out_opts;
    }
    signal(SIGPIPE, SIG_IGN);

    wk_link_cfg_t lcfg = {
        .endpoints = (const char *const *)o.gateways,
        .n_endpoints = o.n_gateways,
        .worker_id = o.id,
        .hello_ms = o.hello_ms,
        .drain_ms = o.drain_ms,
        .verbose = o.verbose,
        .curve_secret = o.curve_secret_file[0] ? o.curve_secret : NULL,
        .curve_server = o.curve_secret_file[0] ? o.curve_server_key : NULL,
        .metrics_listen = o.metrics[0] ? o.metrics : NULL,
        .gateway_dns = o.gateway_dns[0] ? o.gateway_dns : NULL,
        .gateways_file = o.gateways_file[0] ? o.gateways_file : NULL,
        .resolve_ms = o.resolve_ms,
    };
    link = wk_link_new(&lcfg);
    memset(o.curve_secret, 0, sizeof o.curve_secret);
    if (!link)
        goto out_sfd;
    rt = wk_runtime_new(&o.rt, o.svcs, o.n_svcs, &wk_link_out, link);
    if (!rt) {
        fprintf(stderr, "wsgate-worker: cannot create the runtime\n");
        goto out_link;
    }

    {
        char gws[1024];
        size_t off = 0;
        for (size_t i = 0; i < o.n_gateways && off < sizeof gws; i++)
            off +=
                (size_t)snprintf(gws + off, sizeof gws - off, "%s%s", i ? "," : "", o.gateways[i]);
        proto_log(PROTO_LOG_INFO, "services %s; gateways %s%s%s%s%s", o.services,
                  gws[0] ? gws : "-", o.gateway_dns[0] ? "; dns " : "", o.gateway_dns,
                  o.gateways_file[0] ? "; file " : "", o.gateways_file);
    }

    if (wk_link_run(link, rt, sfd) == 0) {
        struct signalfd_siginfo si;
        /* With a drain the link has read the first signal itself. */
        if (read(sfd, &si, sizeof si) == (ssize_t)sizeof si)
            proto_log(PROTO_LOG_INFO, "%s, exiting", strsignal((int)si.ssi_signo));
        else
            proto_log(PROTO_LOG_INFO, "drained, exiting");
        status = 0;
    }

    wk_stats_t rs;
    wk_link_stats_t ls;
    wk_runtime_stats(rt, &rs);
    wk_link_stats(link, &ls);
    proto_log(PROTO_LOG_INFO,
              "rx %llu tx %llu dropped %llu malformed %llu; handled %llu "
              "errors %llu unanswered %llu overloaded %llu passivated %llu live %llu; "
              "pub %llu pub_dropped %llu publish_ok %llu publish_err %llu",
              (unsigned long long)ls.rx, (unsigned long long)ls.tx,
              (unsigned long long)ls.tx_dropped,
              (unsigned long long)(ls.malformed + ls.bad_version + ls.unexpected),
              (unsigned long long)rs.handled, (unsigned long long)rs.errors,
              (unsigned long long)rs.unanswered, (unsigned long long)rs.overloaded,
              (unsigned long long)rs.passivated, (unsigned long long)rs.live_actors,
              (unsigned long long)ls.pub_tx, (unsigned long long)ls.pub_dropped,
              (unsigned long long)ls.publish_ok, (unsigned long long)ls.publish_err);

    /* The runtime first: stop_fn may still send through the link. */
    wk_runtime_destroy(&rt);
out_link:
    wk_link_destroy(&link);
out_sfd:
    if (sfd >= 0)
        close(sfd);
out_opts:
    wk_svc_auth_unconfigure();
    wk_svc_devtoken_unconfigure();
    s_opts_fini(&o);
    return status;
}
