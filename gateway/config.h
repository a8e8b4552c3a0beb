/*
 * config.h - the gateway's settings: defaults, then command-line flags.
 *
 * A config file and environment overrides come with the operations issue;
 * every setting already has one place here so they slot in.
 */
#ifndef WSGATE_GW_CONFIG_H
#define WSGATE_GW_CONFIG_H

#include <stddef.h>
#include <stdint.h>
#include <stdbool.h>

#define GW_MAX_RAW 16        /* raw endpoints */
#define GW_MAX_CONN_EVENTS 8 /* services told of every /ws open/close */

typedef struct {
    char path[128];   /* e.g. /raw/echo */
    char service[65]; /* e.g. echo */
} gw_raw_endpoint_t;

typedef struct {
    char listen_host[64];
    int listen_port;
    char admin_host[64];
    int admin_port; /* 0: no admin listener */
    char backend[256];
    char id[129];
    char static_dir[512]; /* empty: no static files */
    gw_raw_endpoint_t raw[GW_MAX_RAW];
    int n_raw;
    char conn_events[GW_MAX_CONN_EVENTS][65];
    int n_conn_events;
    size_t max_message;    /* bytes; larger: close 1009 */
    uint32_t max_conns;    /* per process; beyond: HTTP 503 */
    uint32_t ping_ms;      /* 0: no keep-alive pings and no idle close */
    uint32_t idle_ms;      /* silent this long: close 4002 */
    uint32_t max_inflight; /* requests per connection; over: overloaded */
    uint32_t sendq_msgs;   /* per-connection send queue bounds: over: close 4001 */
    size_t sendq_bytes;
    uint32_t request_timeout_ms; /* 0: none */
    uint32_t worker_timeout_ms;  /* no HELLO for this long: worker is gone */
    uint32_t drain_ms;           /* shutdown: 1001 closes spread over this */
    bool reuseport;
    int verbose;
} gw_config_t;

void gw_config_defaults(gw_config_t *cfg);

/* Parses argv over the defaults. 0 on success; -1 after printing the
 * problem to stderr; 1 when --help was printed. */
int gw_config_parse(gw_config_t *cfg, int argc, char **argv);

#endif
