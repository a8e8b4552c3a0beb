#include "config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <errno.h>
#include <stddef.h>

#include "../protocol/envelope.h"
#include "../protocol/log.h"
#include "../protocol/settings.h"

void
gw_config_defaults(gw_config_t *cfg)
{
    memset(cfg, 0, sizeof(*cfg));
    snprintf(cfg->listen_host, sizeof(cfg->listen_host), "127.0.0.1");
    cfg->listen_port = 8080;
    snprintf(cfg->admin_host, sizeof(cfg->admin_host), "127.0.0.1");
    cfg->admin_port = 9090;
    snprintf(cfg->backend, sizeof(cfg->backend), "tcp://127.0.0.1:7001");
    cfg->max_message = 64 * 1024;
    cfg->max_conns = 10000;
    cfg->ping_ms = 25000;
    cfg->idle_ms = 60000;
    cfg->max_inflight = 64;
    cfg->sendq_msgs = 1024;
    cfg->sendq_bytes = 1024 * 1024;
    cfg->request_timeout_ms = 10000;
    cfg->worker_timeout_ms = 3000;
    cfg->drain_ms = 2000;
    snprintf(cfg->auth, sizeof(cfg->auth), "none");
    snprintf(cfg->auth_service, sizeof(cfg->auth_service), "auth");
    cfg->auth_timeout_ms = 5000;
    cfg->auth_grace_ms = 10000;
    cfg->allow_no_origin = true;
    snprintf(cfg->channel_service, sizeof(cfg->channel_service), "chan");
    cfg->max_subs = 64;
    cfg->max_channel_len = 128;
    snprintf(cfg->log_format, sizeof(cfg->log_format), "text");
}

static int
s_hostport(const char *arg, char *host, size_t hostsz, int *port)
{
    const char *colon = strrchr(arg, ':');
    char *end;
    long p;

    if (!colon || (size_t)(colon - arg) >= hostsz)
        return -1;
    p = strtol(colon + 1, &end, 10);
    if (*end || p < 0 || p > 65535 || end == colon + 1)
        return -1;
    memcpy(host, arg, (size_t)(colon - arg));
    host[colon - arg] = '\0';
    *port = (int)p;
    return 0;
}

static int
s_set_hostport(void *obj, const proto_setting_t *s, const char *val, char *err, size_t errsz)
{
    char *host = (char *)obj + s->off;
    int *port = (int *)((char *)obj + s->off2);

    if (s_hostport(val, host, s->size, port)) {
        snprintf(err, errsz, "expected HOST:PORT, got '%s'", val);
        return -1;
    }
    return 0;
}

static void
s_show_hostport(const void *obj, const proto_setting_t *s, FILE *f)
{
    fprintf(f, "%s = %s:%d\n", s->name, (const char *)obj + s->off,
            *(const int *)((const char *)obj + s->off2));
}

static int
s_set_raw(void *obj, const proto_setting_t *s, const char *val, char *err, size_t errsz)
{
    gw_config_t *cfg = obj;
    const char *eq = strchr(val, '=');
    gw_raw_endpoint_t *r;

    (void)s;
    if (cfg->n_raw == GW_MAX_RAW) {
        snprintf(err, errsz, "at most %d raw endpoints", GW_MAX_RAW);
        return -1;
    }
    r = &cfg->raw[cfg->n_raw];
    if (!eq || val[0] != '/' || (size_t)(eq - val) >= sizeof(r->path) ||
        !proto_svc_valid(proto_span(eq + 1, strlen(eq + 1)))) {
        snprintf(err, errsz, "expected /PATH=SERVICE, got '%s'", val);
        return -1;
    }
    memcpy(r->path, val, (size_t)(eq - val));
    r->path[eq - val] = '\0';
    snprintf(r->service, sizeof(r->service), "%s", eq + 1);
    cfg->n_raw++;
    return 0;
}

static void
s_reset_raw(void *obj, const proto_setting_t *s)
{
    (void)s;
    ((gw_config_t *)obj)->n_raw = 0;
}

static void
s_show_raw(const void *obj, const proto_setting_t *s, FILE *f)
{
    const gw_config_t *cfg = obj;
    int i;

    for (i = 0; i < cfg->n_raw; i++)
        fprintf(f, "%s = %s=%s\n", s->name, cfg->raw[i].path, cfg->raw[i].service);
}

static int
s_set_connev(void *obj, const proto_setting_t *s, const char *val, char *err, size_t errsz)
{
    gw_config_t *cfg = obj;

    (void)s;
    if (cfg->n_conn_events == GW_MAX_CONN_EVENTS ||
        !proto_svc_valid(proto_span(val, strlen(val)))) {
        snprintf(err, errsz, "bad service '%s' (at most %d)", val, GW_MAX_CONN_EVENTS);
        return -1;
    }
    snprintf(cfg->conn_events[cfg->n_conn_events++], 65, "%s", val);
    return 0;
}

static void
s_reset_connev(void *obj, const proto_setting_t *s)
{
    (void)s;
    ((gw_config_t *)obj)->n_conn_events = 0;
}

static void
s_show_connev(const void *obj, const proto_setting_t *s, FILE *f)
{
    const gw_config_t *cfg = obj;
    int i;

    for (i = 0; i < cfg->n_conn_events; i++)
        fprintf(f, "%s = %s\n", s->name, cfg->conn_events[i]);
}

static int
s_set_id(void *obj, const proto_setting_t *s, const char *val, char *err, size_t errsz)
{
    if (!val[0] || strlen(val) > 128) {
        snprintf(err, errsz, "1 to 128 characters");
        return -1;
    }
    return proto_setting_set_str(obj, s, val, err, errsz);
}

static int
s_set_svc(void *obj, const proto_setting_t *s, const char *val, char *err, size_t errsz)
{
    if (!proto_svc_valid(proto_span(val, strlen(val)))) {
        snprintf(err, errsz, "expected a service name ([a-z0-9_.-], 1..64), got '%s'", val);
        return -1;
    }
    return proto_setting_set_str(obj, s, val, err, errsz);
}

static int
s_set_auth(void *obj, const proto_setting_t *s, const char *val, char *err, size_t errsz)
{
    if (strcmp(val, "none") && strcmp(val, "required")) {
        snprintf(err, errsz, "expected none or required, got '%s'", val);
        return -1;
    }
    return proto_setting_set_str(obj, s, val, err, errsz);
}

static int
s_set_origin(void *obj, const proto_setting_t *s, const char *val, char *err, size_t errsz)
{
    gw_config_t *cfg = obj;
    size_t n = strlen(val);

    (void)s;
    /* scheme://host[:port], nothing after: that is all an Origin holds */
    if (cfg->n_origins == GW_MAX_ORIGINS || n == 0 || n >= sizeof(cfg->origins[0]) ||
        !strstr(val, "://") || strchr(strstr(val, "://") + 3, '/')) {
        snprintf(err, errsz, "expected SCHEME://HOST[:PORT] (at most %d), got '%s'", GW_MAX_ORIGINS,
                 val);
        return -1;
    }
    memcpy(cfg->origins[cfg->n_origins++], val, n + 1);
    return 0;
}

static void
s_reset_origin(void *obj, const proto_setting_t *s)
{
    (void)s;
    ((gw_config_t *)obj)->n_origins = 0;
}

static void
s_show_origin(const void *obj, const proto_setting_t *s, FILE *f)
{
    const gw_config_t *cfg = obj;
    int i;

    for (i = 0; i < cfg->n_origins; i++)
        fprintf(f, "%s = %s\n", s->name, cfg->origins[i]);
}

/* One allow-list entry against an Origin, case-insensitively (RFC 6454
 * serialises scheme and host in lower case, but be lenient). A '*' matches
 * one or more characters of the host up to the next '.' or ':', so the
 * pattern "https://" "*.example.com" takes https://a.example.com, not
 * https://example.com nor https://a.b.example.com. */
static bool
s_origin_match(const char *pat, const char *o)
{
    while (*pat) {
        if (*pat == '*') {
            size_t n = 0;

            while (o[n] && o[n] != '.' && o[n] != ':' && o[n] != '/')
                n++;
            if (n == 0)
                return false;
            o += n;
            pat++;
            continue;
        }
        if (!*o || (*pat | 0x20) != (*o | 0x20))
            return false;
        pat++;
        o++;
    }
    return *o == '\0';
}

bool
gw_config_origin_ok(const gw_config_t *cfg, const char *origin)
{
    int i;

    if (!cfg->n_origins)
        return true;
    for (i = 0; i < cfg->n_origins; i++)
        if (s_origin_match(cfg->origins[i], origin))
            return true;
    return false;
}

static int
s_set_log_format(void *obj, const proto_setting_t *s, const char *val, char *err, size_t errsz)
{
    bool json;

    if (proto_log_format_parse(val, &json)) {
        snprintf(err, errsz, "expected text or json, got '%s'", val);
        return -1;
    }
    ((gw_config_t *)obj)->log_json = json;
    return proto_setting_set_str(obj, s, val, err, errsz);
}

#define F(field) offsetof(gw_config_t, field), 0, sizeof(((gw_config_t *)0)->field)
#define NUM(name, field, max, help)                                                                \
    {                                                                                              \
        name, "N", help, proto_setting_set_num, proto_setting_show_num, NULL, F(field), 0, max     \
    }
#define STR(name, meta, field, help)                                                               \
    {                                                                                              \
        name, meta, help, proto_setting_set_str, proto_setting_show_str, NULL, F(field), 0, 0      \
    }

/* Every gateway setting, once: flag, file key and environment variable. */
static const proto_setting_t s_settings[] = {
    {"listen", "HOST:PORT", "websocket/http listener (127.0.0.1:8080)", s_set_hostport,
     s_show_hostport, NULL, offsetof(gw_config_t, listen_host), offsetof(gw_config_t, listen_port),
     sizeof(((gw_config_t *)0)->listen_host), 0, 0},
    {"admin", "HOST:PORT", "/metrics and /healthz listener (127.0.0.1:9090; port 0: off)",
     s_set_hostport, s_show_hostport, NULL, offsetof(gw_config_t, admin_host),
     offsetof(gw_config_t, admin_port), sizeof(((gw_config_t *)0)->admin_host), 0, 0},
    STR("backend", "ENDPOINT", backend, "ZeroMQ ROUTER bind for workers (tcp://127.0.0.1:7001)"),
    {"raw", "PATH=SERVICE", "raw endpoint, repeatable (default /raw/echo=echo)", s_set_raw,
     s_show_raw, s_reset_raw, 0, 0, 0, 0, 0},
    STR("static", "DIR", static_dir, "serve files from DIR at /"),
    NUM("max-message", max_message, 64u << 20, "largest client message (65536); larger: 1009"),
    NUM("max-conns", max_conns, 10000000, "connections per process (10000); beyond: HTTP 503"),
    NUM("ping-ms", ping_ms, 3600000, "keep-alive ping interval (25000; 0: off)"),
    NUM("idle-ms", idle_ms, 86400000, "close a connection silent this long (60000): 4002"),
    NUM("max-inflight", max_inflight, 1000000, "requests in flight per connection (64)"),
    NUM("sendq-msgs", sendq_msgs, 10000000, "send queue bound per connection (1024)"),
    NUM("sendq-bytes", sendq_bytes, 1u << 30, "send queue bound per connection (1048576)"),
    NUM("request-timeout-ms", request_timeout_ms, 3600000,
        "answer `timeout` after this (10000; 0: never)"),
    NUM("worker-timeout-ms", worker_timeout_ms, 3600000, "forget a worker silent this long (3000)"),
    NUM("drain-ms", drain_ms, 3600000, "on SIGTERM, spread the 1001 closes over this (2000)"),
    {"conn-events", "SERVICE", "tell SERVICE of every /ws open and close, repeatable", s_set_connev,
     s_show_connev, s_reset_connev, 0, 0, 0, 0, 0},
    {"reuseport", NULL, "share the listen port with other gateway processes",
     proto_setting_set_bool, proto_setting_show_bool, NULL, F(reuseport), 0, 0},
    {"id", "NAME", "gateway id (hostname-pid)", s_set_id, proto_setting_show_str, NULL, F(id), 0,
     0},
    STR("curve-secret-file", "FILE", curve_secret_file,
        "CURVE on the backend: the gateway's secret key (wsgate-keygen)"),
    STR("curve-allow-file", "FILE", curve_allow_file,
        "CURVE: the workers' public keys allowed in, one a line"),
    {"auth", "MODE", "none (every /ws client anonymous: development) or required (none)",
     s_set_auth, proto_setting_show_str, NULL, F(auth), 0, 0},
    {"auth-service", "SERVICE", "the service that verifies tokens (auth)", s_set_svc,
     proto_setting_show_str, NULL, F(auth_service), 0, 0},
    {"dev-token", "SERVICE",
     "DEVELOPMENT ONLY: POST /dev/token on the public listener gets a token for any user from "
     "SERVICE (off)",
     s_set_svc, proto_setting_show_str, NULL, F(dev_token_service), 0, 0},
    NUM("auth-timeout-ms", auth_timeout_ms, 3600000,
        "auth=required: close 4004 when not authenticated after this (5000)"),
    NUM("auth-grace-ms", auth_grace_ms, 86400000,
        "close 4005 this long after the token expired without a refresh (10000)"),
    STR("raw-auth", "MODE", raw_auth,
        "auth=required with raw endpoints: must be none (raw clients stay anonymous)"),
    {"origin", "ORIGIN", "allowed Origin at the handshake, repeatable; '*' in the host (any)",
     s_set_origin, s_show_origin, s_reset_origin, 0, 0, 0, 0, 0},
    {"allow-no-origin", "BOOL", "admit clients that send no Origin header, e.g. devices (true)",
     proto_setting_set_bool, proto_setting_show_bool, NULL, F(allow_no_origin), 0, 0},
    {"channel-service", "SERVICE", "the channel actors' service (chan)", s_set_svc,
     proto_setting_show_str, NULL, F(channel_service), 0, 0},
    NUM("max-subs", max_subs, 65536, "subscriptions per connection (64)"),
    NUM("max-channel-len", max_channel_len, PROTO_CHANNEL_MAX, "bytes in a channel name (128)"),
    STR("api-key-file", "FILE", api_key_file,
        "admin listener: POST /publish needs this key as a bearer token (off)"),
    {"log-format", "FORMAT", "text, or json: one object per line (text)", s_set_log_format,
     proto_setting_show_str, NULL, F(log_format), 0, 0},
};

static const proto_settings_t s_table = {
    .prog = "wsgate",
    .section = "gateway",
    .other_section = "worker",
    .env_prefix = "WSGATE_",
    .tab = s_settings,
    .n = sizeof(s_settings) / sizeof(s_settings[0]),
};

void
gw_config_print(const gw_config_t *cfg, FILE *f)
{
    proto_settings_print(&s_table, cfg, f);
}

/* The API key: the file's first line, 16..GW_API_KEY_MAX printable bytes. */
static int
s_read_api_key(gw_config_t *cfg)
{
    FILE *f = fopen(cfg->api_key_file, "r");
    char line[GW_API_KEY_MAX + 8];
    size_t n;

    if (!f) {
        fprintf(stderr, "wsgate: api-key-file %s: %s\n", cfg->api_key_file, strerror(errno));
        return -1;
    }
    if (!fgets(line, sizeof(line), f))
        line[0] = '\0';
    fclose(f);
    n = strcspn(line, "\r\n");
    line[n] = '\0';
    for (size_t i = 0; i < n; i++) {
        if (line[i] <= ' ' || line[i] > '~')
            n = 0;
    }
    if (n < 16 || n > GW_API_KEY_MAX) {
        fprintf(stderr,
                "wsgate: api-key-file %s: the first line must be 16..%d printable "
                "characters without spaces\n",
                cfg->api_key_file, GW_API_KEY_MAX);
        return -1;
    }
    memcpy(cfg->api_key, line, n + 1);
    return 0;
}

int
gw_config_parse(gw_config_t *cfg, int argc, char **argv)
{
    int rc = proto_settings_parse(&s_table, cfg, argc, argv, &cfg->verbose, &cfg->check_config);

    if (rc)
        return rc;
    /* The default raw endpoint is a development convenience: not under
     * auth = required, where raw endpoints must be asked for. */
    if (cfg->n_raw == 0 && strcmp(cfg->auth, "required")) {
        snprintf(cfg->raw[0].path, sizeof(cfg->raw[0].path), "/raw/echo");
        snprintf(cfg->raw[0].service, sizeof(cfg->raw[0].service), "echo");
        cfg->n_raw = 1;
    }
    if (!cfg->id[0]) {
        char host[64] = "gw";

        gethostname(host, sizeof(host) - 1);
        host[sizeof(host) - 1] = '\0';
        snprintf(cfg->id, sizeof(cfg->id), "%s-%d", host, (int)getpid());
    }
    if (cfg->max_message == 0 || cfg->max_conns == 0 || cfg->max_inflight == 0 ||
        cfg->sendq_msgs == 0 || cfg->sendq_bytes == 0) {
        fprintf(stderr, "wsgate: limits must be positive\n");
        return -1;
    }
    if (cfg->ping_ms && cfg->idle_ms <= cfg->ping_ms) {
        fprintf(stderr, "wsgate: --idle-ms must be larger than --ping-ms\n");
        return -1;
    }
    cfg->auth_required = !strcmp(cfg->auth, "required");
    if (cfg->auth_required && cfg->n_raw && strcmp(cfg->raw_auth, "none")) {
        fprintf(stderr, "wsgate: auth = required, but raw endpoints cannot authenticate: set "
                        "raw-auth = none to run them anonymous, or remove them\n");
        return -1;
    }
    if (cfg->raw_auth[0] && strcmp(cfg->raw_auth, "none")) {
        fprintf(stderr, "wsgate: raw-auth: expected none, got '%s'\n", cfg->raw_auth);
        return -1;
    }
    if (!strcmp(cfg->auth_service, cfg->channel_service)) {
        fprintf(stderr, "wsgate: auth-service and channel-service must differ\n");
        return -1;
    }
    if (cfg->max_subs == 0 || cfg->max_channel_len == 0) {
        fprintf(stderr, "wsgate: limits must be positive\n");
        return -1;
    }
    if (cfg->api_key_file[0] && s_read_api_key(cfg) != 0)
        return -1;
    if (!cfg->curve_secret_file[0] != !cfg->curve_allow_file[0]) {
        fprintf(stderr, "wsgate: CURVE needs both curve-secret-file (the gateway's key) and "
                        "curve-allow-file (the workers' public keys)\n");
        return -1;
    }
    return 0;
}
