#include "config.h"

#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <errno.h>

#include "../protocol/envelope.h"

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
s_number(const char *name, const char *arg, uint64_t max, uint64_t *out)
{
    char *end;
    unsigned long long v;

    errno = 0;
    v = strtoull(arg, &end, 10);
    if (errno || *end || end == arg || arg[0] == '-' || v > max) {
        fprintf(stderr, "wsgate: --%s: expected a number up to %llu, got '%s'\n", name,
                (unsigned long long)max, arg);
        return -1;
    }
    *out = v;
    return 0;
}

static void
s_usage(FILE *f)
{
    fputs(
        "usage: wsgate [options]\n"
        "  --listen HOST:PORT        websocket/http listener (127.0.0.1:8080)\n"
        "  --admin HOST:PORT         /metrics and /healthz listener (127.0.0.1:9090; port 0: off)\n"
        "  --backend ENDPOINT        ZeroMQ ROUTER bind for workers (tcp://127.0.0.1:7001)\n"
        "  --raw PATH=SERVICE        raw endpoint, repeatable (default /raw/echo=echo)\n"
        "  --static DIR              serve files from DIR at /\n"
        "  --max-message BYTES       largest client message (65536); larger: close 1009\n"
        "  --max-conns N             connections per process (10000); beyond: HTTP 503\n"
        "  --ping-ms N               keep-alive ping interval (25000; 0: off)\n"
        "  --idle-ms N               close a connection silent this long (60000): 4002\n"
        "  --max-inflight N          requests in flight per connection (64)\n"
        "  --sendq-msgs N            send queue bound per connection (1024)\n"
        "  --sendq-bytes N           send queue bound per connection (1048576)\n"
        "  --request-timeout-ms N    answer `timeout` after this (10000; 0: never)\n"
        "  --worker-timeout-ms N     forget a worker silent this long (3000)\n"
        "  --drain-ms N              on SIGTERM, spread the 1001 closes over this (2000)\n"
        "  --conn-events SERVICE     tell SERVICE of every /ws open and close, repeatable\n"
        "  --reuseport               share the listen port with other gateway processes\n"
        "  --id NAME                 gateway id (hostname-pid)\n"
        "  -v, --verbose             more logging (repeatable)\n",
        f);
}

int
gw_config_parse(gw_config_t *cfg, int argc, char **argv)
{
    enum {
        O_LISTEN = 256,
        O_ADMIN,
        O_BACKEND,
        O_RAW,
        O_STATIC,
        O_MAXMSG,
        O_MAXCONNS,
        O_PING,
        O_IDLE,
        O_INFLIGHT,
        O_SQMSGS,
        O_SQBYTES,
        O_REQTO,
        O_WKTO,
        O_DRAIN,
        O_CONNEV,
        O_REUSEPORT,
        O_ID,
        O_HELP,
    };
    static const struct option opts[] = {
        {"listen", required_argument, NULL, O_LISTEN},
        {"admin", required_argument, NULL, O_ADMIN},
        {"backend", required_argument, NULL, O_BACKEND},
        {"raw", required_argument, NULL, O_RAW},
        {"static", required_argument, NULL, O_STATIC},
        {"max-message", required_argument, NULL, O_MAXMSG},
        {"max-conns", required_argument, NULL, O_MAXCONNS},
        {"ping-ms", required_argument, NULL, O_PING},
        {"idle-ms", required_argument, NULL, O_IDLE},
        {"max-inflight", required_argument, NULL, O_INFLIGHT},
        {"sendq-msgs", required_argument, NULL, O_SQMSGS},
        {"sendq-bytes", required_argument, NULL, O_SQBYTES},
        {"request-timeout-ms", required_argument, NULL, O_REQTO},
        {"worker-timeout-ms", required_argument, NULL, O_WKTO},
        {"drain-ms", required_argument, NULL, O_DRAIN},
        {"conn-events", required_argument, NULL, O_CONNEV},
        {"reuseport", no_argument, NULL, O_REUSEPORT},
        {"id", required_argument, NULL, O_ID},
        {"verbose", no_argument, NULL, 'v'},
        {"help", no_argument, NULL, O_HELP},
        {NULL, 0, NULL, 0},
    };
    uint64_t v;
    int c;

    optind = 0; /* 0: glibc re-initialises, so parsing twice works */
    while ((c = getopt_long(argc, argv, "v", opts, NULL)) != -1) {
        switch (c) {
        case O_LISTEN:
            if (s_hostport(optarg, cfg->listen_host, sizeof(cfg->listen_host), &cfg->listen_port)) {
                fprintf(stderr, "wsgate: --listen: expected HOST:PORT, got '%s'\n", optarg);
                return -1;
            }
            break;
        case O_ADMIN:
            if (s_hostport(optarg, cfg->admin_host, sizeof(cfg->admin_host), &cfg->admin_port)) {
                fprintf(stderr, "wsgate: --admin: expected HOST:PORT, got '%s'\n", optarg);
                return -1;
            }
            break;
        case O_BACKEND:
            snprintf(cfg->backend, sizeof(cfg->backend), "%s", optarg);
            break;
        case O_RAW: {
            const char *eq = strchr(optarg, '=');
            gw_raw_endpoint_t *r;

            if (cfg->n_raw == GW_MAX_RAW) {
                fprintf(stderr, "wsgate: --raw: at most %d raw endpoints\n", GW_MAX_RAW);
                return -1;
            }
            r = &cfg->raw[cfg->n_raw];
            if (!eq || optarg[0] != '/' || (size_t)(eq - optarg) >= sizeof(r->path) ||
                !proto_svc_valid(proto_span(eq + 1, strlen(eq + 1)))) {
                fprintf(stderr, "wsgate: --raw: expected /PATH=SERVICE, got '%s'\n", optarg);
                return -1;
            }
            memcpy(r->path, optarg, (size_t)(eq - optarg));
            r->path[eq - optarg] = '\0';
            snprintf(r->service, sizeof(r->service), "%s", eq + 1);
            cfg->n_raw++;
            break;
        }
        case O_STATIC:
            snprintf(cfg->static_dir, sizeof(cfg->static_dir), "%s", optarg);
            break;
        case O_MAXMSG:
            if (s_number("max-message", optarg, 64u << 20, &v))
                return -1;
            cfg->max_message = v;
            break;
        case O_MAXCONNS:
            if (s_number("max-conns", optarg, 10000000, &v))
                return -1;
            cfg->max_conns = (uint32_t)v;
            break;
        case O_PING:
            if (s_number("ping-ms", optarg, 3600000, &v))
                return -1;
            cfg->ping_ms = (uint32_t)v;
            break;
        case O_IDLE:
            if (s_number("idle-ms", optarg, 86400000, &v))
                return -1;
            cfg->idle_ms = (uint32_t)v;
            break;
        case O_INFLIGHT:
            if (s_number("max-inflight", optarg, 1000000, &v))
                return -1;
            cfg->max_inflight = (uint32_t)v;
            break;
        case O_SQMSGS:
            if (s_number("sendq-msgs", optarg, 10000000, &v))
                return -1;
            cfg->sendq_msgs = (uint32_t)v;
            break;
        case O_SQBYTES:
            if (s_number("sendq-bytes", optarg, 1u << 30, &v))
                return -1;
            cfg->sendq_bytes = v;
            break;
        case O_REQTO:
            if (s_number("request-timeout-ms", optarg, 3600000, &v))
                return -1;
            cfg->request_timeout_ms = (uint32_t)v;
            break;
        case O_WKTO:
            if (s_number("worker-timeout-ms", optarg, 3600000, &v))
                return -1;
            cfg->worker_timeout_ms = (uint32_t)v;
            break;
        case O_DRAIN:
            if (s_number("drain-ms", optarg, 3600000, &v))
                return -1;
            cfg->drain_ms = (uint32_t)v;
            break;
        case O_CONNEV:
            if (cfg->n_conn_events == GW_MAX_CONN_EVENTS ||
                !proto_svc_valid(proto_span(optarg, strlen(optarg)))) {
                fprintf(stderr, "wsgate: --conn-events: bad service '%s' (at most %d)\n", optarg,
                        GW_MAX_CONN_EVENTS);
                return -1;
            }
            snprintf(cfg->conn_events[cfg->n_conn_events++], 65, "%s", optarg);
            break;
        case O_REUSEPORT:
            cfg->reuseport = true;
            break;
        case O_ID:
            if (!optarg[0] || strlen(optarg) > 128) {
                fprintf(stderr, "wsgate: --id: 1 to 128 characters\n");
                return -1;
            }
            snprintf(cfg->id, sizeof(cfg->id), "%s", optarg);
            break;
        case 'v':
            cfg->verbose++;
            break;
        case O_HELP:
            s_usage(stdout);
            return 1;
        default:
            s_usage(stderr);
            return -1;
        }
    }
    if (optind < argc) {
        fprintf(stderr, "wsgate: unexpected argument '%s'\n", argv[optind]);
        return -1;
    }
    if (cfg->n_raw == 0) {
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
    return 0;
}
