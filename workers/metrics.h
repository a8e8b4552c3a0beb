/*
 * metrics.h - the worker's /metrics: Prometheus text from the runtime's
 * and the link's counters, served by a minimal HTTP/1.0 responder on
 * --metrics HOST:PORT, polled in the worker's one loop (link.c).
 *
 * The responder answers GET /metrics (200), anything else 404, and closes
 * every connection after one answer; at most WK_METRICS_CLIENTS requests
 * wait for their bytes at a time, each at most WK_METRICS_WAIT_MS. It is
 * for a Prometheus scraper on a private network, not the internet.
 */
#ifndef WSGATE_WK_METRICS_H
#define WSGATE_WK_METRICS_H

#include "actor.h"
#include "link.h"

#define WK_METRICS_CLIENTS 8
#define WK_METRICS_WAIT_MS 2000

/* Appends the metrics to out. 0, or -1 when out of memory. */
int wk_metrics_render(const wk_runtime_t *rt, const wk_link_stats_t *ls, proto_buf_t *out);

typedef struct wk_metrics wk_metrics_t;

/* Listens on host:port ("HOST:PORT"). NULL with the reason on stderr. */
wk_metrics_t *wk_metrics_new(const char *hostport);
void wk_metrics_destroy(wk_metrics_t **m_p);
/* The fds to poll for input (the listener, then waiting clients); returns
 * how many were written to fds (at most 1 + WK_METRICS_CLIENTS). */
size_t wk_metrics_fds(const wk_metrics_t *m, int *fds);
/* Accepts and answers what is ready (never blocks); expires slow clients. */
void wk_metrics_serve(wk_metrics_t *m, const wk_runtime_t *rt, const wk_link_stats_t *ls,
                      uint64_t now_ms);

#endif
