/*
 * main.c - wsgate-load: parses the command line, forks the load
 * processes, prints progress, merges their figures and reports.
 *
 * Every load process (even with --procs 1) is a child: the parent stays
 * free to print progress once a second, to enforce the hard timeout on
 * children that would not end, and to merge the histograms. The children
 * write their figures into one shared anonymous mapping, a slot each.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include "config.h"
#include "report.h"
#include "run.h"
#include "token.h"

#define LD_FD_RESERVE 32 /* descriptors besides the connections */

static volatile sig_atomic_t s_stop;

static void
s_on_signal(int sig)
{
    (void)sig;
    s_stop = 1;
}

static double
s_now_s(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* The token source, built before the fork so every process shares it.
 * 0 (*out NULL without auth), or -1 with a message printed. */
static int
s_tokens(const ld_config_t *cfg, ld_tokens_t **out)
{
    char err[512];

    *out = NULL;
    if (cfg->token_file[0]) {
        *out = ld_tokens_new_file(cfg->token_file, err, sizeof(err));
    } else if (cfg->secret_file[0]) {
        ld_token_hs256_t k = {
            .kid = cfg->kid,
            .sub_prefix = cfg->sub_prefix,
            .ttl_s = (uint64_t)cfg->token_ttl,
            .iss = cfg->iss[0] ? cfg->iss : NULL,
            .aud = cfg->aud[0] ? cfg->aud : NULL,
            .grant_all = cfg->grant_all,
        };

        *out = ld_tokens_new_hs256(cfg->secret_file, &k, err, sizeof(err));
    } else {
        return 0;
    }
    if (!*out) {
        fprintf(stderr, "wsgate-load: %s\n", err);
        return -1;
    }
    return 0;
}

/* The soft open-files limit up to the hard one; -1 if a process's share of
 * the connections cannot fit under it. */
static int
s_files(const ld_config_t *cfg)
{
    uint64_t share = ld_config_conns_of(cfg, 0); /* process 0 has the most */
    struct rlimit rl;

    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
        rl.rlim_cur = rl.rlim_max;
        setrlimit(RLIMIT_NOFILE, &rl);
    }
    if (getrlimit(RLIMIT_NOFILE, &rl) < 0)
        return 0;
    if (rl.rlim_cur != RLIM_INFINITY && share + LD_FD_RESERVE > rl.rlim_cur) {
        fprintf(
            stderr,
            "wsgate-load: %llu connections per process do not fit under the open-files "
            "limit %llu: use --procs %llu or more\n",
            (unsigned long long)share, (unsigned long long)rl.rlim_cur,
            (unsigned long long)((cfg->conns + cfg->publishers + rl.rlim_cur - LD_FD_RESERVE - 1) /
                                 (rl.rlim_cur - LD_FD_RESERVE)));
        return -1;
    }
    return 0;
}

static void
s_sum(ld_stats_t *out, const ld_stats_t *slots, int n)
{
    int i;

    ld_stats_init(out);
    for (i = 0; i < n; i++)
        ld_stats_merge(out, &slots[i]);
}

static void
s_signal_all(const pid_t *pids, int n, int sig)
{
    int i;

    for (i = 0; i < n; i++)
        if (pids[i] > 0)
            kill(pids[i], sig);
}

int
main(int argc, char **argv)
{
    ld_config_t cfg;
    ld_stats_t *slots, *total, *prev;
    ld_tokens_t *tokens;
    pid_t pids[LD_MAX_PROCS];
    struct sigaction sa;
    double t0, last, now, kill_at;
    int i, rc, alive, status, failed = 0;
    size_t map_len;

    rc = ld_config_parse(&cfg, argc, argv);
    if (rc)
        return rc > 0 ? 0 : 2;
    if (s_files(&cfg) || s_tokens(&cfg, &tokens))
        return 2;
    /* two merged copies of the figures: too large for the stack */
    total = malloc(sizeof(*total));
    prev = malloc(sizeof(*prev));
    if (!total || !prev) {
        fprintf(stderr, "wsgate-load: out of memory\n");
        return 1;
    }

    map_len = sizeof(ld_stats_t) * (size_t)cfg.procs;
    slots = mmap(NULL, map_len, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    if (slots == MAP_FAILED) {
        perror("wsgate-load: mmap");
        return 1;
    }
    for (i = 0; i < cfg.procs; i++)
        ld_stats_init(&slots[i]);

    memset(&sa, 0, sizeof(sa));
    sa.sa_handler = s_on_signal;
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    signal(SIGPIPE, SIG_IGN);

    t0 = s_now_s();
    for (i = 0; i < cfg.procs; i++) {
        pids[i] = fork();
        if (pids[i] < 0) {
            perror("wsgate-load: fork");
            s_stop = 1;
            failed = 1;
            break;
        }
        if (pids[i] == 0) {
            /* a child never outlives the parent that would merge its figures */
            prctl(PR_SET_PDEATHSIG, SIGKILL);
            if (getppid() == 1)
                _exit(1);
            rc = ld_run(&cfg, tokens, i, slots, &s_stop);
            munmap(slots, map_len);
            exit(rc ? 1 : 0);
        }
    }
    alive = i;

    /* progress, and the bound on children that would not end */
    ld_stats_init(prev);
    last = t0;
    kill_at = t0 + cfg.timeout + 10;
    while (alive > 0) {
        struct timespec ts = {0, 50 * 1000 * 1000};
        pid_t pid;

        nanosleep(&ts, NULL);
        while ((pid = waitpid(-1, &status, WNOHANG)) > 0) {
            alive--;
            for (i = 0; i < cfg.procs; i++)
                if (pids[i] == pid)
                    pids[i] = -1;
            if (!WIFEXITED(status) || WEXITSTATUS(status)) {
                fprintf(stderr, "wsgate-load: a load process %s %d\n",
                        WIFEXITED(status) ? "exited with" : "died of signal",
                        WIFEXITED(status) ? WEXITSTATUS(status) : WTERMSIG(status));
                failed = 1;
                /* fanout's processes wait for each other: stop the rest */
                if (cfg.scenario == LD_SCENARIO_FANOUT && !s_stop)
                    s_stop = 1;
            }
        }
        now = s_now_s();
        if (s_stop == 1) {
            s_signal_all(pids, cfg.procs, SIGTERM);
            s_stop = 2;
        }
        if (now >= kill_at) {
            fprintf(stderr, "wsgate-load: load processes past the hard timeout: killed\n");
            s_signal_all(pids, cfg.procs, SIGKILL);
            kill_at = now + 3600;
            failed = 1;
        }
        if (!cfg.quiet && now - last >= 1.0) {
            s_sum(total, slots, cfg.procs);
            ld_report_progress(stderr, total, prev, now - t0, now - last);
            memcpy(prev, total, sizeof(*prev));
            last = now;
        }
    }
    now = s_now_s();
    s_sum(total, slots, cfg.procs);
    ld_report_text(stdout, &cfg, total, now - t0);
    fflush(stdout);
    if (total->timed_out)
        failed = 1;
    if (cfg.json_path[0] && ld_report_write(cfg.json_path, &cfg, total, now - t0))
        failed = 1;
    munmap(slots, map_len);
    free(total);
    free(prev);
    ld_tokens_destroy(&tokens);
    return failed ? 1 : 0;
}
