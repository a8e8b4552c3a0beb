#include "log.h"

#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>
#include <time.h>

#include <jansson.h>

#define PROTO_LOG_BURST 10 /* lines a second from proto_log_limited */
#define PROTO_LOG_LINE 2048

static const char *s_prog = "wsgate";
static bool s_json;
static int s_level = PROTO_LOG_WARN;
static char s_id[160];

static const char *const s_names[] = {"error", "warn", "info", "debug"};

void
proto_log_init(const char *prog, bool json, int level)
{
    s_prog = prog;
    s_json = json;
    s_level = level;
}

void
proto_log_set_id(const char *id)
{
    snprintf(s_id, sizeof(s_id), "%s", id);
}

bool
proto_log_on(int level)
{
    return level <= s_level;
}

int
proto_log_format_parse(const char *s, bool *json)
{
    if (!strcmp(s, "text")) {
        *json = false;
        return 0;
    }
    if (!strcmp(s, "json")) {
        *json = true;
        return 0;
    }
    return -1;
}

static void
s_json_line(int level, const char *req, const char *msg)
{
    struct timeval tv;
    struct tm tm;
    char ts[64];
    json_t *o = json_object();
    char *line;

    gettimeofday(&tv, NULL);
    gmtime_r(&tv.tv_sec, &tm);
    snprintf(ts, sizeof(ts), "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ", tm.tm_year + 1900,
             tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, (int)(tv.tv_usec / 1000));
    if (!o)
        return;
    json_object_set_new(o, "ts", json_string(ts));
    json_object_set_new(o, "level", json_string(s_names[level]));
    json_object_set_new(o, "proc", json_string(s_prog));
    if (s_id[0])
        json_object_set_new(o, "id", json_string(s_id));
    if (req)
        json_object_set_new(o, "req", json_string(req));
    /* messages may carry bytes from peers: never let them break the line */
    json_object_set_new(o, "msg", json_stringn_nocheck(msg, strlen(msg)));
    line = json_dumps(o, JSON_COMPACT | JSON_PRESERVE_ORDER | JSON_ENSURE_ASCII);
    json_decref(o);
    if (!line)
        return;
    {
        size_t n = strlen(line);

        line[n] = '\n';
        fwrite(line, 1, n + 1, stderr);
        line[n] = '\0';
    }
    free(line);
}

static void
s_vlog(int level, const char *req, const char *fmt, va_list ap)
{
    char msg[PROTO_LOG_LINE], line[PROTO_LOG_LINE + 256];
    int n;

    if (level < 0)
        level = 0;
    if (level > PROTO_LOG_DEBUG)
        level = PROTO_LOG_DEBUG;
    vsnprintf(msg, sizeof(msg), fmt, ap);
    if (s_json) {
        s_json_line(level, req, msg);
        return;
    }
    n = snprintf(line, sizeof(line), "%s: %s: %s%s%s%s\n", s_prog, s_names[level],
                 req ? "[req " : "", req ? req : "", req ? "] " : "", msg);
    if (n > 0)
        fwrite(line, 1, (size_t)n < sizeof(line) ? (size_t)n : sizeof(line) - 1, stderr);
}

void
proto_log(int level, const char *fmt, ...)
{
    va_list ap;

    if (level > s_level)
        return;
    va_start(ap, fmt);
    s_vlog(level, NULL, fmt, ap);
    va_end(ap);
}

void
proto_log_limited(int level, const char *fmt, ...)
{
    static time_t window;
    static unsigned used;
    time_t now;
    va_list ap;

    if (level > s_level)
        return;
    now = time(NULL);
    if (now != window) {
        window = now;
        used = 0;
    }
    if (used++ >= PROTO_LOG_BURST)
        return;
    va_start(ap, fmt);
    s_vlog(level, NULL, fmt, ap);
    va_end(ap);
}

void
proto_log_req(int level, const char *gw_id, uint64_t rid, const char *fmt, ...)
{
    char req[200];
    va_list ap;

    if (level > s_level)
        return;
    snprintf(req, sizeof(req), "%s:%" PRIu64, gw_id && gw_id[0] ? gw_id : "?", rid);
    va_start(ap, fmt);
    s_vlog(level, req, fmt, ap);
    va_end(ap);
}
