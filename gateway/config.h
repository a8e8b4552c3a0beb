/*
 * config.h - the gateway's settings: defaults < config file (--config,
 * INI) < environment (WSGATE_*) < command-line flags. One table in
 * config.c names every setting for all three (protocol/settings.h).
 */
#ifndef WSGATE_GW_CONFIG_H
#define WSGATE_GW_CONFIG_H

#include <stddef.h>
#include <stdint.h>
#include <stdbool.h>
#include <stdio.h>

#define GW_MAX_RAW 16        /* raw endpoints */
#define GW_MAX_CONN_EVENTS 8 /* services told of every /ws open/close */
#define GW_MAX_ORIGINS 32    /* entries in the Origin allow-list */
#define GW_API_KEY_MAX 256   /* bytes in the admin publish API key */

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
    char curve_secret_file[512]; /* empty: no CURVE on the backend */
    char curve_allow_file[512];  /* workers' public keys, Z85, one a line */
    /* auth (docs/security.md) */
    char auth[16];                     /* "none" or "required" */
    bool auth_required;                /* derived from auth */
    char auth_service[65];             /* verifies tokens (the worker's `auth`) */
    char dev_token_service[65];        /* DEVELOPMENT: POST /dev/token asks it; empty: off */
    uint32_t auth_timeout_ms;          /* unauthenticated this long: close 4004 */
    uint32_t auth_grace_ms;            /* token expired this long without refresh: close 4005 */
    char raw_auth[16];                 /* raw endpoints under auth=required: must say "none" */
    char origins[GW_MAX_ORIGINS][256]; /* allowed Origin values; "*" in the host part matches */
    int n_origins;                     /* 0: any origin */
    bool allow_no_origin;              /* clients that send no Origin (devices) */
    /* channels */
    char channel_service[65];         /* the channel actors' service (`chan`) */
    uint32_t max_subs;                /* subscriptions per connection */
    uint32_t max_channel_len;         /* bytes in a channel name */
    char api_key_file[512];           /* admin POST /publish; empty: publishing over HTTP is off */
    char api_key[GW_API_KEY_MAX + 1]; /* read from api_key_file */
    char log_format[8];               /* "text" or "json" */
    bool log_json;                    /* derived */
    int verbose;
    bool check_config; /* --check-config: validate, print, exit */
} gw_config_t;

void gw_config_defaults(gw_config_t *cfg);

/* Applies, over the defaults: the INI file of --config (section
 * [gateway]), then WSGATE_<NAME> environment variables, then the flags;
 * then validates. 0 on success; -1 after printing the problem (with
 * file:line for the file) to stderr; 1 when --help was printed. */
int gw_config_parse(gw_config_t *cfg, int argc, char **argv);

/* True if origin (NUL-terminated) passes the allow-list. */
bool gw_config_origin_ok(const gw_config_t *cfg, const char *origin);

/* The effective configuration as an INI file (for --check-config). */
void gw_config_print(const gw_config_t *cfg, FILE *f);

#endif
