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
#include "link.h"

#include <errno.h>
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/signalfd.h>
#include <unistd.h>

#define WK_DEFAULT_GATEWAY "tcp://127.0.0.1:7001"
#define WK_DEFAULT_SERVICES "echo,counter"

typedef struct {
    const char **gateways; /* points into argv, or the default */
    size_t n_gateways;
    char *id;
    const wk_service_t *svcs[PROTO_BK_MAX_SERVICES];
    size_t n_svcs;
    char *svc_list; /* for the start line */
    wk_runtime_cfg_t rt;
    uint64_t hello_ms;
    uint64_t drain_ms;
    bool verbose;
} wk_opts_t;

static void
s_usage(FILE *f)
{
    fprintf(
        f,
        "usage: wsgate-worker [options]\n"
        "  --gateway ENDPOINT  gateway backend endpoint, repeatable (default " WK_DEFAULT_GATEWAY
        ")\n"
        "  --id NAME           worker id (default <hostname>-<pid>)\n"
        "  --services LIST     comma-separated services (default " WK_DEFAULT_SERVICES ")\n"
        "  --max-actors N      live actors (default %d)\n"
        "  --idle-ms N         passivate actors idle this long (default %d)\n"
        "  --mailbox-max N     queued messages per actor (default %d)\n"
        "  --hello-ms N        HELLO / heartbeat interval (default %d)\n"
        "  --drain-ms N        on SIGTERM, wait this long at most for the gateways to\n"
        "                      acknowledge the drain, then finish queued work and leave\n"
        "                      (default %d; 0: leave at once)\n"
        "  --verbose           debug log lines\n"
        "  --help\n",
        WK_DEFAULT_MAX_ACTORS, WK_DEFAULT_IDLE_MS, WK_DEFAULT_MAILBOX_MAX, WK_LINK_DEFAULT_HELLO_MS,
        WK_DEFAULT_DRAIN_MS);
}

/* Parses a decimal in [min, max]. 0 or -1. */
static int
s_parse_u64(const char *s, uint64_t min, uint64_t max, uint64_t *out)
{
    char *end = NULL;
    if (!s || *s < '0' || *s > '9')
        return -1;
    errno = 0;
    unsigned long long v = strtoull(s, &end, 10);
    if (errno != 0 || *end != '\0' || v < min || v > max)
        return -1;
    *out = v;
    return 0;
}

/* Fills o->svcs from a comma-separated list. 0 or -1 (message printed). */
static int
s_parse_services(wk_opts_t *o, const char *list)
{
    char *copy = strdup(list);
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
    free(o->svc_list);
    o->svc_list = strdup(list);
    rc = o->svc_list ? 0 : -1;
out_free_copy:
    free(copy);
    return rc;
}

static void
s_opts_fini(wk_opts_t *o)
{
    free(o->gateways);
    free(o->id);
    free(o->svc_list);
}

/* 0 to run, 1 for --help, 2 for a usage error (message printed). */
static int
s_parse_args(wk_opts_t *o, int argc, char **argv)
{
    enum {
        OPT_GATEWAY = 256,
        OPT_ID,
        OPT_SERVICES,
        OPT_MAX_ACTORS,
        OPT_IDLE_MS,
        OPT_MAILBOX_MAX,
        OPT_HELLO_MS,
        OPT_DRAIN_MS,
        OPT_VERBOSE,
        OPT_HELP
    };
    static const struct option longopts[] = {
        {"gateway", required_argument, NULL, OPT_GATEWAY},
        {"id", required_argument, NULL, OPT_ID},
        {"services", required_argument, NULL, OPT_SERVICES},
        {"max-actors", required_argument, NULL, OPT_MAX_ACTORS},
        {"idle-ms", required_argument, NULL, OPT_IDLE_MS},
        {"mailbox-max", required_argument, NULL, OPT_MAILBOX_MAX},
        {"hello-ms", required_argument, NULL, OPT_HELLO_MS},
        {"drain-ms", required_argument, NULL, OPT_DRAIN_MS},
        {"verbose", no_argument, NULL, OPT_VERBOSE},
        {"help", no_argument, NULL, OPT_HELP},
        {NULL, 0, NULL, 0},
    };
    const char *services = WK_DEFAULT_SERVICES;
    uint64_t v;
    int c;

    o->gateways = calloc((size_t)argc + 1, sizeof *o->gateways);
    if (!o->gateways)
        return 2;
    o->rt.max_actors = WK_DEFAULT_MAX_ACTORS;
    o->rt.idle_ms = WK_DEFAULT_IDLE_MS;
    o->rt.mailbox_max = WK_DEFAULT_MAILBOX_MAX;
    o->hello_ms = WK_LINK_DEFAULT_HELLO_MS;
    o->drain_ms = WK_DEFAULT_DRAIN_MS;

    opterr = 0;
    while ((c = getopt_long(argc, argv, "", longopts, NULL)) != -1) {
        switch (c) {
        case OPT_GATEWAY:
            if (optarg[0] == '\0')
                goto out_bad_value;
            o->gateways[o->n_gateways++] = optarg;
            break;
        case OPT_ID:
            if (optarg[0] == '\0' || strlen(optarg) > PROTO_BK_WORKER_ID_MAX)
                goto out_bad_value;
            free(o->id);
            o->id = strdup(optarg);
            if (!o->id)
                return 2;
            break;
        case OPT_SERVICES:
            services = optarg;
            break;
        case OPT_MAX_ACTORS:
            if (s_parse_u64(optarg, 1, UINT32_MAX, &v) != 0)
                goto out_bad_value;
            o->rt.max_actors = (uint32_t)v;
            break;
        case OPT_IDLE_MS:
            if (s_parse_u64(optarg, 1, UINT32_MAX, &v) != 0)
                goto out_bad_value;
            o->rt.idle_ms = v;
            break;
        case OPT_MAILBOX_MAX:
            if (s_parse_u64(optarg, 1, UINT32_MAX, &v) != 0)
                goto out_bad_value;
            o->rt.mailbox_max = (uint32_t)v;
            break;
        case OPT_HELLO_MS:
            if (s_parse_u64(optarg, 1, 3600000, &v) != 0)
                goto out_bad_value;
            o->hello_ms = v;
            break;
        case OPT_DRAIN_MS:
            if (s_parse_u64(optarg, 0, 3600000, &v) != 0)
                goto out_bad_value;
            o->drain_ms = v;
            break;
        case OPT_VERBOSE:
            o->verbose = true;
            break;
        case OPT_HELP:
            s_usage(stdout);
            return 1;
        default:
            fprintf(stderr, "wsgate-worker: unknown option or missing value: %s\n",
                    argv[optind - 1]);
            s_usage(stderr);
            return 2;
        }
    }
    if (optind < argc) {
        fprintf(stderr, "wsgate-worker: unexpected argument: %s\n", argv[optind]);
        return 2;
    }
    if (o->n_gateways == 0)
        o->gateways[o->n_gateways++] = WK_DEFAULT_GATEWAY;
    if (s_parse_services(o, services) != 0)
        return 2;
    if (!o->id) {
        char host[64];
        if (gethostname(host, sizeof host) != 0)
            snprintf(host, sizeof host, "worker");
        host[sizeof host - 1] = '\0';
        o->id = malloc(PROTO_BK_WORKER_ID_MAX + 1);
        if (!o->id)
            return 2;
        snprintf(o->id, PROTO_BK_WORKER_ID_MAX + 1, "%s-%ld", host, (long)getpid());
    }
    return 0;

out_bad_value:
    fprintf(stderr, "wsgate-worker: bad value for --%s: '%s'\n", longopts[c - OPT_GATEWAY].name,
            optarg);
    return 2;
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
        .endpoints = o.gateways,
        .n_endpoints = o.n_gateways,
        .worker_id = o.id,
        .hello_ms = o.hello_ms,
        .drain_ms = o.drain_ms,
        .verbose = o.verbose,
    };
    link = wk_link_new(&lcfg);
    if (!link)
        goto out_sfd;
    rt = wk_runtime_new(&o.rt, o.svcs, o.n_svcs, &wk_link_out, link);
    if (!rt) {
        fprintf(stderr, "wsgate-worker: cannot create the runtime\n");
        goto out_link;
    }

    fprintf(stderr, "wsgate-worker %s: services %s; gateways ", o.id, o.svc_list);
    for (size_t i = 0; i < o.n_gateways; i++)
        fprintf(stderr, "%s%s", i ? "," : "", o.gateways[i]);
    fputc('\n', stderr);

    if (wk_link_run(link, rt, sfd) == 0) {
        struct signalfd_siginfo si;
        /* With a drain the link has read the first signal itself. */
        if (read(sfd, &si, sizeof si) == (ssize_t)sizeof si)
            fprintf(stderr, "wsgate-worker %s: %s, exiting\n", o.id, strsignal((int)si.ssi_signo));
        else
            fprintf(stderr, "wsgate-worker %s: drained, exiting\n", o.id);
        status = 0;
    }

    wk_stats_t rs;
    wk_link_stats_t ls;
    wk_runtime_stats(rt, &rs);
    wk_link_stats(link, &ls);
    fprintf(stderr,
            "wsgate-worker %s: rx %llu tx %llu dropped %llu malformed %llu; handled %llu "
            "errors %llu unanswered %llu overloaded %llu passivated %llu live %llu\n",
            o.id, (unsigned long long)ls.rx, (unsigned long long)ls.tx,
            (unsigned long long)ls.tx_dropped,
            (unsigned long long)(ls.malformed + ls.bad_version + ls.unexpected),
            (unsigned long long)rs.handled, (unsigned long long)rs.errors,
            (unsigned long long)rs.unanswered, (unsigned long long)rs.overloaded,
            (unsigned long long)rs.passivated, (unsigned long long)rs.live_actors);

    /* The runtime first: stop_fn may still send through the link. */
    wk_runtime_destroy(&rt);
out_link:
    wk_link_destroy(&link);
out_sfd:
    if (sfd >= 0)
        close(sfd);
out_opts:
    s_opts_fini(&o);
    return status;
}
