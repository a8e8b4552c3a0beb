/*
 * run.h - one load process: its share of the connections and requests of
 * a scenario, on one epoll loop.
 */
#ifndef WSGATE_LD_RUN_H
#define WSGATE_LD_RUN_H

#include <signal.h>

#include "config.h"
#include "stats.h"
#include "token.h"

/*
 * Runs process `proc` (0 .. cfg->procs - 1) of the scenario: connection
 * and request counts are split over the processes, and with more than one
 * process, process i connects from source addresses 127.0.j.(2 + i).
 * slots are every process's figures (cfg->procs of them, in a shared
 * mapping); this process writes slots[proc] as things happen (the parent
 * may read it at any time) and sets its `done` when they are final.
 * Fanout reads the other slots to keep the processes in step. tokens
 * (borrowed; NULL: no auth) authenticate every connection. *stop (set
 * from a signal handler) ends the run early. Returns 0, or -1 if the run
 * could not be set up (a message went to stderr). Bounded by cfg->timeout.
 */
int ld_run(const ld_config_t *cfg, const ld_tokens_t *tokens, int proc, ld_stats_t *slots,
           volatile sig_atomic_t *stop);

#endif
