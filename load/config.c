/*
 * config.c - wsgate-load's command line (config.h).
 */
#include "config.h"

#include <arpa/inet.h>
#include <errno.h>
#include <getopt.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fanout.h"

static const char s_usage[] =
    "usage: wsgate-load SCENARIO [options]\n"
    "\n"
    "scenarios:\n"
    "  storm   open --conns connections at --rate per second (0: as fast as the\n"
    "          --handshakes window allows), hold them --hold seconds\n"
    "  echo    --conns connections send --size-byte requests to --svc and wait for\n"
    "          the replies: closed loop with --window outstanding per connection, or\n"
    "          open loop at --rate requests/s (latency from the scheduled send time)\n"
    "  idle    hold --conns connections --hold seconds, answering pings\n"
    "  fanout  --conns subscribers subscribe to --channel; then --publishers\n"
    "          connections publish to it at --rate publications/s in all (0: closed\n"
    "          loop, --window each) for --duration s or --count publications; or,\n"
    "          with --burst K, one publisher sends K single publications, each\n"
    "          timed until the last subscriber had it\n"
    "\n"
    "options:\n"
    "  --target IP:PORT        gateway (loopback only, 127.0.0.0/8)   [127.0.0.1:8080]\n"
    "  --path PATH             websocket path; /raw/... is a raw endpoint   [/ws]\n"
    "  --raw                   raw endpoint mode whatever the path\n"
    "  --enc json|msgpack      envelope encoding (subprotocol wsgate.v1.*)  [json]\n"
    "  --conns N               connections (per run, split over --procs)\n"
    "                          [storm, idle 1000; echo 10; fanout 100]\n"
    "  --rate R                storm/idle: connections/s; echo: requests/s   [0]\n"
    "  --handshakes W          handshakes in progress at most, per process  [256]\n"
    "  --window W              echo: requests outstanding per connection    [1]\n"
    "  --size S                echo: payload bytes per request              [64]\n"
    "  --svc NAME              echo: service                                [echo]\n"
    "  --keys N                echo: spread over keys k0..kN-1 (default: each\n"
    "                          connection is its own key)\n"
    "  --count N               echo: requests in all\n"
    "  --duration S            storm/idle: opening phase bound; echo: sending time\n"
    "                          [echo without --count: 10]\n"
    "  --hold S                storm/idle: hold the connections      [storm 1, idle 10]\n"
    "  --drain S               echo: wait for outstanding replies at the end  [5]\n"
    "  --connect-timeout S     connect start to 101                         [10]\n"
    "  --timeout S             hard bound on the whole run  [duration+hold+60]\n"
    "  --procs P               processes; process i connects from 127.0.j.(2+i)  [1]\n"
    "  --sources S             source addresses per process (j < S)         [4]\n"
    "  --json FILE             write the report as JSON\n"
    "  --quiet                 no progress line\n"
    "\n"
    "authentication (storm, idle, echo, fanout): each connection's first message is\n"
    "{\"op\":\"auth\",\"token\":T}; it counts as established when that is answered res\n"
    "  --token-file FILE       tokens, one per line, used round robin\n"
    "  --hs256-secret-file F   or mint an HS256 JWT per connection, with this secret\n"
    "  --kid KID               the tokens' kid (required with --hs256-secret-file)\n"
    "  --sub-prefix P          claim sub = P + the connection's index    [user-]\n"
    "  --token-ttl-s S         claim exp = iat + S                       [600]\n"
    "  --iss X, --aud Y        claims iss and aud                       [none]\n"
    "  --grant-all             claim channels {\"sub\":[\"*\"],\"pub\":[\"*\"]}\n"
    "\n"
    "fanout:\n"
    "  --channel C             the channel                              [bench]\n"
    "  --publishers P          publisher connections, besides --conns   [1]\n"
    "  --burst K               K bursts instead of the publish phase\n"
    "  --burst-pause S         pause after each burst is delivered      [0.2]\n"
    "  --size S                pad each publication's data with S bytes [0]\n"
    "  --rx-timestamps         time each delivery by the kernel's receive timestamp\n"
    "                          (SO_TIMESTAMPNS), not by when the loop read it\n"
    "  --duration S            publish phase          [5 without --count]\n"
    "  --drain S               wait for replies and deliveries at the end [5]\n";

enum {
    O_TARGET = 256,
    O_PATH,
    O_RAW,
    O_ENC,
    O_CONNS,
    O_RATE,
    O_HANDSHAKES,
    O_WINDOW,
    O_SIZE,
    O_SVC,
    O_KEYS,
    O_COUNT,
    O_DURATION,
    O_HOLD,
    O_DRAIN,
    O_CTIMEOUT,
    O_TIMEOUT,
    O_PROCS,
    O_SOURCES,
    O_JSON,
    O_QUIET,
    O_HELP,
    O_TOKEN_FILE,
    O_SECRET_FILE,
    O_KID,
    O_SUB_PREFIX,
    O_TOKEN_TTL,
    O_ISS,
    O_AUD,
    O_GRANT_ALL,
    O_CHANNEL,
    O_PUBLISHERS,
    O_BURST,
    O_BURST_PAUSE,
    O_RX_TIMESTAMPS,
};

const char *
ld_scenario_name(ld_scenario_t s)
{
    switch (s) {
    case LD_SCENARIO_STORM:
        return "storm";
    case LD_SCENARIO_ECHO:
        return "echo";
    case LD_SCENARIO_IDLE:
        return "idle";
    case LD_SCENARIO_FANOUT:
        return "fanout";
    }
    return "?";
}

const char *
ld_config_subprotocol(const ld_config_t *cfg)
{
    if (cfg->raw)
        return NULL;
    return cfg->enc == PROTO_ENC_MSGPACK ? "wsgate.v1.msgpack" : "wsgate.v1.json";
}

uint64_t
ld_config_share(uint64_t total, int i, int n)
{
    return total / (uint64_t)n + ((uint64_t)i < total % (uint64_t)n ? 1 : 0);
}

uint64_t
ld_config_conns_of(const ld_config_t *cfg, int i)
{
    uint64_t n = ld_config_share(cfg->conns, i, cfg->procs);

    if (cfg->scenario == LD_SCENARIO_FANOUT)
        n += ld_config_share(cfg->publishers, i, cfg->procs);
    return n;
}

/* Copies a string option of at most cap - 1 bytes. */
static int
s_str_opt(const char *opt, const char *arg, char *dst, size_t cap)
{
    if (!arg[0] || strlen(arg) >= cap) {
        fprintf(stderr, "wsgate-load: --%s: 1 to %zu bytes\n", opt, cap - 1);
        return -1;
    }
    strcpy(dst, arg);
    return 0;
}

static int
s_num(const char *opt, const char *arg, double lo, double hi, double *out)
{
    char *end;
    double v;

    errno = 0;
    v = strtod(arg, &end);
    if (errno || end == arg || *end || isnan(v) || v < lo || v > hi) {
        fprintf(stderr, "wsgate-load: --%s: '%s' is not a number in [%g, %g]\n", opt, arg, lo, hi);
        return -1;
    }
    *out = v;
    return 0;
}

static int
s_target(ld_config_t *cfg, const char *arg)
{
    char host[64];
    const char *colon = strrchr(arg, ':');
    double port;
    size_t hlen;

    if (!colon || colon == arg || (hlen = (size_t)(colon - arg)) >= sizeof(host)) {
        fprintf(stderr, "wsgate-load: --target: want IP:PORT, got '%s'\n", arg);
        return -1;
    }
    memcpy(host, arg, hlen);
    host[hlen] = 0;
    if (!strcmp(host, "localhost"))
        strcpy(host, "127.0.0.1");
    if (s_num("target port", colon + 1, 1, 65535, &port))
        return -1;
    memset(&cfg->target, 0, sizeof(cfg->target));
    cfg->target.sin_family = AF_INET;
    cfg->target.sin_port = htons((uint16_t)port);
    if (inet_pton(AF_INET, host, &cfg->target.sin_addr) != 1) {
        fprintf(stderr,
                "wsgate-load: --target: '%s' is not an IPv4 address; only loopback "
                "(127.0.0.0/8) targets are allowed\n",
                host);
        return -1;
    }
    /* A load generator must not be pointed at anything but this machine. */
    if ((ntohl(cfg->target.sin_addr.s_addr) >> 24) != 127) {
        fprintf(stderr,
                "wsgate-load: refusing target %s: only loopback (127.0.0.0/8) targets are "
                "allowed\n",
                host);
        return -1;
    }
    snprintf(cfg->host, sizeof(cfg->host), "%s:%d", host, (int)port);
    return 0;
}

/* The token options hang together: one source; claims only for minting. */
static int
s_auth_check(ld_config_t *cfg, bool claims)
{
    if (cfg->token_file[0] && cfg->secret_file[0]) {
        fprintf(stderr, "wsgate-load: --token-file or --hs256-secret-file, not both\n");
        return -1;
    }
    if (claims && !cfg->secret_file[0]) {
        fprintf(stderr, "wsgate-load: --kid, --sub-prefix, --token-ttl-s, --iss, --aud and "
                        "--grant-all shape minted tokens: they need --hs256-secret-file\n");
        return -1;
    }
    if (cfg->secret_file[0] && !cfg->kid[0]) {
        fprintf(stderr, "wsgate-load: --hs256-secret-file needs --kid (the key's name in the "
                        "worker's key file)\n");
        return -1;
    }
    cfg->auth = cfg->token_file[0] || cfg->secret_file[0];
    if (cfg->auth && cfg->raw) {
        fprintf(stderr, "wsgate-load: raw endpoints have no envelope to authenticate with\n");
        return -1;
    }
    return 0;
}

int
ld_config_parse(ld_config_t *cfg, int argc, char **argv)
{
    static const struct option opts[] = {
        {"target", required_argument, NULL, O_TARGET},
        {"path", required_argument, NULL, O_PATH},
        {"raw", no_argument, NULL, O_RAW},
        {"enc", required_argument, NULL, O_ENC},
        {"conns", required_argument, NULL, O_CONNS},
        {"rate", required_argument, NULL, O_RATE},
        {"handshakes", required_argument, NULL, O_HANDSHAKES},
        {"window", required_argument, NULL, O_WINDOW},
        {"size", required_argument, NULL, O_SIZE},
        {"svc", required_argument, NULL, O_SVC},
        {"keys", required_argument, NULL, O_KEYS},
        {"count", required_argument, NULL, O_COUNT},
        {"duration", required_argument, NULL, O_DURATION},
        {"hold", required_argument, NULL, O_HOLD},
        {"drain", required_argument, NULL, O_DRAIN},
        {"connect-timeout", required_argument, NULL, O_CTIMEOUT},
        {"timeout", required_argument, NULL, O_TIMEOUT},
        {"procs", required_argument, NULL, O_PROCS},
        {"sources", required_argument, NULL, O_SOURCES},
        {"json", required_argument, NULL, O_JSON},
        {"quiet", no_argument, NULL, O_QUIET},
        {"help", no_argument, NULL, O_HELP},
        {"token-file", required_argument, NULL, O_TOKEN_FILE},
        {"hs256-secret-file", required_argument, NULL, O_SECRET_FILE},
        {"kid", required_argument, NULL, O_KID},
        {"sub-prefix", required_argument, NULL, O_SUB_PREFIX},
        {"token-ttl-s", required_argument, NULL, O_TOKEN_TTL},
        {"iss", required_argument, NULL, O_ISS},
        {"aud", required_argument, NULL, O_AUD},
        {"grant-all", no_argument, NULL, O_GRANT_ALL},
        {"channel", required_argument, NULL, O_CHANNEL},
        {"publishers", required_argument, NULL, O_PUBLISHERS},
        {"burst", required_argument, NULL, O_BURST},
        {"burst-pause", required_argument, NULL, O_BURST_PAUSE},
        {"rx-timestamps", no_argument, NULL, O_RX_TIMESTAMPS},
        {NULL, 0, NULL, 0},
    };
    double v, conns = -1, hold = -1, timeout = 0, size = -1, publishers = -1;
    bool raw = false, claims = false;
    int c;

    memset(cfg, 0, sizeof(*cfg));
    if (argc < 2 || !strcmp(argv[1], "--help") || !strcmp(argv[1], "-h")) {
        fputs(s_usage, argc < 2 ? stderr : stdout);
        return argc < 2 ? -1 : 1;
    }
    if (!strcmp(argv[1], "storm")) {
        cfg->scenario = LD_SCENARIO_STORM;
    } else if (!strcmp(argv[1], "echo")) {
        cfg->scenario = LD_SCENARIO_ECHO;
    } else if (!strcmp(argv[1], "idle")) {
        cfg->scenario = LD_SCENARIO_IDLE;
    } else if (!strcmp(argv[1], "fanout")) {
        cfg->scenario = LD_SCENARIO_FANOUT;
    } else {
        fprintf(stderr, "wsgate-load: unknown scenario '%s' (storm, echo, idle, fanout)\n",
                argv[1]);
        return -1;
    }
    if (s_target(cfg, "127.0.0.1:8080"))
        return -1;
    strcpy(cfg->path, "/ws");
    strcpy(cfg->svc, "echo");
    cfg->enc = PROTO_ENC_JSON;
    cfg->handshakes = 256;
    cfg->window = 1;
    cfg->drain = 5;
    cfg->connect_timeout = 10;
    cfg->procs = 1;
    cfg->sources = 4;
    strcpy(cfg->sub_prefix, "user-");
    cfg->token_ttl = 600;
    strcpy(cfg->channel, "bench");
    cfg->burst_pause = 0.2;

    optind = 2;
    opterr = 1;
    while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        switch (c) {
        case O_TARGET:
            if (s_target(cfg, optarg))
                return -1;
            break;
        case O_PATH:
            if (optarg[0] != '/' || strlen(optarg) >= sizeof(cfg->path) ||
                strpbrk(optarg, " \r\n")) {
                fprintf(stderr, "wsgate-load: --path: want /PATH, got '%s'\n", optarg);
                return -1;
            }
            strcpy(cfg->path, optarg);
            break;
        case O_RAW:
            raw = true;
            break;
        case O_ENC:
            if (!strcmp(optarg, "json")) {
                cfg->enc = PROTO_ENC_JSON;
            } else if (!strcmp(optarg, "msgpack")) {
                cfg->enc = PROTO_ENC_MSGPACK;
            } else {
                fprintf(stderr, "wsgate-load: --enc: json or msgpack, not '%s'\n", optarg);
                return -1;
            }
            break;
        case O_CONNS:
            if (s_num("conns", optarg, 1, LD_MAX_CONNS, &conns))
                return -1;
            break;
        case O_RATE:
            if (s_num("rate", optarg, 0, 1e8, &cfg->rate))
                return -1;
            break;
        case O_HANDSHAKES:
            if (s_num("handshakes", optarg, 1, LD_MAX_CONNS, &v))
                return -1;
            cfg->handshakes = (uint32_t)v;
            break;
        case O_WINDOW:
            if (s_num("window", optarg, 1, 65536, &v))
                return -1;
            cfg->window = (uint32_t)v;
            break;
        case O_SIZE:
            if (s_num("size", optarg, 0, LD_MAX_SIZE, &size))
                return -1;
            break;
        case O_SVC: {
            proto_span_t s = proto_span(optarg, strlen(optarg));

            if (!proto_svc_valid(s)) {
                fprintf(stderr, "wsgate-load: --svc: '%s' is not a service name\n", optarg);
                return -1;
            }
            strcpy(cfg->svc, optarg);
            break;
        }
        case O_KEYS:
            if (s_num("keys", optarg, 1, 1e9, &v))
                return -1;
            cfg->keys = (uint32_t)v;
            break;
        case O_COUNT:
            if (s_num("count", optarg, 1, 1e12, &v))
                return -1;
            cfg->count = (uint64_t)v;
            break;
        case O_DURATION:
            if (s_num("duration", optarg, 0, 86400, &cfg->duration))
                return -1;
            break;
        case O_HOLD:
            if (s_num("hold", optarg, 0, 86400, &hold))
                return -1;
            break;
        case O_DRAIN:
            if (s_num("drain", optarg, 0, 600, &cfg->drain))
                return -1;
            break;
        case O_CTIMEOUT:
            if (s_num("connect-timeout", optarg, 0.001, 600, &cfg->connect_timeout))
                return -1;
            break;
        case O_TIMEOUT:
            if (s_num("timeout", optarg, 0.1, 2 * 86400, &timeout))
                return -1;
            break;
        case O_PROCS:
            if (s_num("procs", optarg, 1, LD_MAX_PROCS, &v))
                return -1;
            cfg->procs = (int)v;
            break;
        case O_SOURCES:
            if (s_num("sources", optarg, 1, LD_MAX_SOURCES, &v))
                return -1;
            cfg->sources = (int)v;
            break;
        case O_JSON:
            if (strlen(optarg) >= sizeof(cfg->json_path)) {
                fprintf(stderr, "wsgate-load: --json: path too long\n");
                return -1;
            }
            strcpy(cfg->json_path, optarg);
            break;
        case O_QUIET:
            cfg->quiet = true;
            break;
        case O_HELP:
            fputs(s_usage, stdout);
            return 1;
        case O_TOKEN_FILE:
            if (s_str_opt("token-file", optarg, cfg->token_file, sizeof(cfg->token_file)))
                return -1;
            break;
        case O_SECRET_FILE:
            if (s_str_opt("hs256-secret-file", optarg, cfg->secret_file, sizeof(cfg->secret_file)))
                return -1;
            break;
        case O_KID:
            if (s_str_opt("kid", optarg, cfg->kid, sizeof(cfg->kid)))
                return -1;
            claims = true;
            break;
        case O_SUB_PREFIX:
            /* may be empty: sub is then the index alone */
            if (strlen(optarg) >= sizeof(cfg->sub_prefix)) {
                fprintf(stderr, "wsgate-load: --sub-prefix: at most %zu bytes\n",
                        sizeof(cfg->sub_prefix) - 1);
                return -1;
            }
            strcpy(cfg->sub_prefix, optarg);
            claims = true;
            break;
        case O_TOKEN_TTL:
            if (s_num("token-ttl-s", optarg, 1, 10 * 365 * 86400.0, &cfg->token_ttl))
                return -1;
            claims = true;
            break;
        case O_ISS:
            if (s_str_opt("iss", optarg, cfg->iss, sizeof(cfg->iss)))
                return -1;
            claims = true;
            break;
        case O_AUD:
            if (s_str_opt("aud", optarg, cfg->aud, sizeof(cfg->aud)))
                return -1;
            claims = true;
            break;
        case O_GRANT_ALL:
            cfg->grant_all = true;
            claims = true;
            break;
        case O_CHANNEL:
            if (!proto_channel_valid(proto_span(optarg, strlen(optarg)), PROTO_CHANNEL_MAX)) {
                fprintf(stderr,
                        "wsgate-load: --channel: 1 to %d bytes of [A-Za-z0-9_.:@/=+-], not '%s'\n",
                        PROTO_CHANNEL_MAX, optarg);
                return -1;
            }
            strcpy(cfg->channel, optarg);
            break;
        case O_PUBLISHERS:
            if (s_num("publishers", optarg, 1, LD_FAN_MAX_PUBS, &publishers))
                return -1;
            break;
        case O_BURST:
            if (s_num("burst", optarg, 1, LD_MAX_BURSTS, &v))
                return -1;
            cfg->bursts = (uint32_t)v;
            break;
        case O_BURST_PAUSE:
            if (s_num("burst-pause", optarg, 0, 3600, &cfg->burst_pause))
                return -1;
            break;
        case O_RX_TIMESTAMPS:
            cfg->rx_timestamps = true;
            break;
        default:
            return -1;
        }
    }
    if (optind < argc) {
        fprintf(stderr, "wsgate-load: unexpected argument '%s'\n", argv[optind]);
        return -1;
    }
    cfg->raw = raw || !strncmp(cfg->path, "/raw/", 5);
    if (conns < 0)
        conns = cfg->scenario == LD_SCENARIO_ECHO     ? 10
                : cfg->scenario == LD_SCENARIO_FANOUT ? 100
                                                      : 1000;
    cfg->conns = (uint32_t)conns;
    cfg->size = size >= 0 ? (size_t)size : cfg->scenario == LD_SCENARIO_FANOUT ? 0 : 64;
    if (s_auth_check(cfg, claims))
        return -1;
    if (cfg->scenario == LD_SCENARIO_FANOUT) {
        if (cfg->raw) {
            fprintf(stderr, "wsgate-load: fanout needs the envelope endpoint, not a raw one\n");
            return -1;
        }
        if (cfg->bursts && publishers > 1) {
            fprintf(stderr,
                    "wsgate-load: --burst publishes from one connection: no --publishers\n");
            return -1;
        }
        cfg->publishers = publishers > 0 ? (uint32_t)publishers : 1;
        if (!cfg->bursts && !cfg->count && !cfg->duration)
            cfg->duration = 5;
    } else if (publishers > 0 || cfg->bursts || cfg->rx_timestamps) {
        fprintf(stderr,
                "wsgate-load: --publishers, --burst and --rx-timestamps are fanout options\n");
        return -1;
    }
    if ((uint32_t)cfg->procs > cfg->conns) {
        fprintf(stderr, "wsgate-load: --procs %d is more than --conns %u\n", cfg->procs,
                cfg->conns);
        return -1;
    }
    if (hold < 0)
        hold = cfg->scenario == LD_SCENARIO_IDLE ? 10 : cfg->scenario == LD_SCENARIO_STORM ? 1 : 0;
    cfg->hold = hold;
    if (cfg->scenario == LD_SCENARIO_ECHO) {
        if (!cfg->count && !cfg->duration)
            cfg->duration = 10;
        if (cfg->raw && cfg->size == 0) {
            fprintf(stderr, "wsgate-load: --size 0 on a raw endpoint sends nothing to echo\n");
            return -1;
        }
    }
    /* Every run ends: by default the phases' own bounds plus a minute
     * (fanout: a drain for the replies, one for the deliveries, and each
     * burst may wait a drain for its last subscriber and then pause). */
    v = cfg->duration + cfg->hold + cfg->connect_timeout + cfg->drain + 60;
    if (cfg->scenario == LD_SCENARIO_FANOUT)
        v += cfg->drain + cfg->bursts * (cfg->drain + cfg->burst_pause) + cfg->connect_timeout;
    cfg->timeout = timeout ? timeout : v;
    return 0;
}
