/*
 * log.h - the daemons' log: one line per event on stderr, as text
 * ("wsgate: info: worker w1 joined") or as one JSON object per line
 * (log-format = json) for log shippers:
 *
 *   {"ts":"2026-11-23T14:41:11.123Z","level":"info","proc":"wsgate",
 *    "id":"gw-1","msg":"worker w1 joined"}
 *
 * A request can be followed through the fleet by its "req" field,
 * "<gateway id>:<rid>": the gateway logs it when it sends and answers the
 * request, the worker when it receives and answers it (at debug level;
 * the worker learns the gateway's id from WELCOME).
 *
 * Process-wide; set up once at start, before any thread exists. Lines are
 * written with one fwrite so concurrent writers (the ZAP thread) do not
 * interleave within a line.
 */
#ifndef WSGATE_PROTO_LOG_H
#define WSGATE_PROTO_LOG_H

#include <stdbool.h>
#include <stdint.h>

typedef enum {
    PROTO_LOG_ERR = 0,
    PROTO_LOG_WARN,
    PROTO_LOG_INFO,
    PROTO_LOG_DEBUG
} proto_log_level_t;

/* prog: "wsgate", "wsgate-worker" (borrowed: a literal). */
void proto_log_init(const char *prog, bool json, int level);
/* The process's id (gateway or worker id), copied; in every JSON line. */
void proto_log_set_id(const char *id);
bool proto_log_on(int level);
void proto_log(int level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* At most a few lines a second whatever the caller's rate. */
void proto_log_limited(int level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* A line about request rid of gateway gw_id ("req" field). */
void proto_log_req(int level, const char *gw_id, uint64_t rid, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

/* "text" or "json": 0, else -1. */
int proto_log_format_parse(const char *s, bool *json);

#endif
