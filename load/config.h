/*
 * config.h - wsgate-load's command line.
 */
#ifndef WSGATE_LD_CONFIG_H
#define WSGATE_LD_CONFIG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <netinet/in.h>

#include "envelope.h"

typedef enum {
    LD_SCENARIO_STORM = 0, /* open N connections (paced), hold them */
    LD_SCENARIO_ECHO,      /* request/reply round trips, closed or open loop */
    LD_SCENARIO_IDLE,      /* hold N connections, answering pings */
    LD_SCENARIO_FANOUT,    /* subscribers to a channel, publishers to it (or bursts) */
} ld_scenario_t;

#define LD_MAX_PROCS 64   /* process i connects from 127.0.j.(2 + i) */
#define LD_MAX_SOURCES 16 /* j < --sources */
#define LD_MAX_CONNS 1000000
#define LD_MAX_SIZE (16u << 20)

typedef struct {
    ld_scenario_t scenario;
    struct sockaddr_in target; /* always in 127.0.0.0/8 */
    char host[80];             /* "ip:port", the Host header */
    char path[256];
    bool raw;        /* raw endpoint: bytes out, the same bytes back */
    proto_enc_t enc; /* envelope encoding */
    char svc[PROTO_SVC_MAX + 1];
    uint32_t conns;
    uint64_t count;      /* echo: requests in all (0: until --duration) */
    double rate;         /* storm/idle: connections/s; echo: requests/s; 0: max / closed loop */
    uint32_t handshakes; /* handshakes in progress at most, per process */
    uint32_t window;     /* echo: requests outstanding per connection */
    size_t size;         /* echo: payload bytes per request */
    uint32_t keys;       /* echo: 0: each connection is its own key; N: keys k0..kN-1 */
    double duration;     /* s: storm/idle: opening phase; echo: sending phase; 0: none */
    double hold;         /* s, storm/idle */
    double timeout;      /* s, hard bound on the whole run */
    double connect_timeout;
    double drain; /* s, echo: wait for missing replies after the last send */
    int procs;
    int sources; /* source addresses per process */
    bool quiet;
    char json_path[512];

    /* authentication: each connection's first message is an auth */
    bool auth;             /* a token source is given */
    char token_file[512];  /* one token per line, round robin */
    char secret_file[512]; /* or: mint HS256 tokens with this secret */
    char kid[129];
    char sub_prefix[101]; /* "sub" = prefix + the connection's index */
    double token_ttl;     /* s */
    char iss[256];        /* "" : no claim */
    char aud[256];
    bool grant_all; /* "channels": {"sub": ["*"], "pub": ["*"]} */

    /* fanout: conns subscribers, publishers publishing (or bursts) */
    char channel[PROTO_CHANNEL_MAX + 1];
    uint32_t publishers;
    uint32_t bursts;    /* 0: the publish phase; K: K single publications */
    double burst_pause; /* s between bursts */
    bool rx_timestamps; /* delivery time: the kernel's receive timestamp */
} ld_config_t;

/*
 * Fills cfg from argv (argv[1] is the scenario). 0: run; 1: help was
 * printed, exit 0; -1: an error was printed to stderr, exit 2. Refuses any
 * target outside 127.0.0.0/8.
 */
int ld_config_parse(ld_config_t *cfg, int argc, char **argv);

const char *ld_scenario_name(ld_scenario_t s);
/* The subprotocol asked for: NULL on raw endpoints. */
const char *ld_config_subprotocol(const ld_config_t *cfg);

/* Share of total for process i of n (the first total % n get one more). */
uint64_t ld_config_share(uint64_t total, int i, int n);

/* Connections of process i: its share of --conns, and for fanout of
 * --publishers. */
uint64_t ld_config_conns_of(const ld_config_t *cfg, int i);

#endif
