/*
 * report.h - the figures of a run: a progress line, the human summary and
 * the JSON report. The only file of the load tool that uses jansson.
 */
#ifndef WSGATE_LD_REPORT_H
#define WSGATE_LD_REPORT_H

#include <stdio.h>

#include <jansson.h>

#include "config.h"
#include "stats.h"

/* Connections opened per second: established over the span from the first
 * connect() to the last 101. 0 when not measurable. */
double ld_report_accept_rate(const ld_stats_t *s);
/* Replies per second over the span from the first request to the last reply. */
double ld_report_rtt_rate(const ld_stats_t *s);
/* Fanout deliveries per second, from the first publication sent to the
 * last delivery received. */
double ld_report_delivery_rate(const ld_stats_t *s);

/* The whole report as a new JSON object (the caller owns it), or NULL when
 * out of memory. elapsed_s is the run's wall time. */
json_t *ld_report_json(const ld_config_t *cfg, const ld_stats_t *s, double elapsed_s);
/* Writes it to path. 0, or -1 (a message went to stderr). */
int ld_report_write(const char *path, const ld_config_t *cfg, const ld_stats_t *s,
                    double elapsed_s);

void ld_report_text(FILE *f, const ld_config_t *cfg, const ld_stats_t *s, double elapsed_s);

/* One progress line: totals now, rates since prev, dt_s apart. */
void ld_report_progress(FILE *f, const ld_stats_t *now, const ld_stats_t *prev, double t_s,
                        double dt_s);

#endif
