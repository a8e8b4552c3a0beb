/*
 * run.h - one load process: its share of the connections and requests of
 * a scenario, on one epoll loop.
 */
#ifndef WSGATE_LD_RUN_H
#define WSGATE_LD_RUN_H

#include <signal.h>

#include "config.h"
#include "stats.h"

/*
 * Runs process `proc` (0 .. cfg->procs - 1) of the scenario: connection
 * and request counts are split over the processes, and with more than one
 * process, process i connects from source address 127.0.0.(2 + i).
 * Figures go into *st as they happen (the parent may read them at any
 * time); st->done is set when they are final. *stop (set from a signal
 * handler) ends the run early. Returns 0, or -1 if the run could not be
 * set up (a message went to stderr). Bounded by cfg->timeout.
 */
int ld_run(const ld_config_t *cfg, int proc, ld_stats_t *st, volatile sig_atomic_t *stop);

#endif
