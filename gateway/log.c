#include "log.h"

#include <stdarg.h>
#include <stdio.h>
#include <time.h>

#define GW_LOG_BURST 10 /* lines a second from gw_log_limited */

static int s_level = GW_LOG_WARN;

void
gw_log_set_level(int level)
{
    s_level = level;
}

static void
s_vlog(int level, const char *fmt, va_list ap)
{
    static const char *names[] = {"error", "warn", "info", "debug"};

    fprintf(stderr, "wsgate: %s: ", names[level]);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
}

void
gw_log(int level, const char *fmt, ...)
{
    va_list ap;

    if (level > s_level)
        return;
    va_start(ap, fmt);
    s_vlog(level, fmt, ap);
    va_end(ap);
}

void
gw_log_limited(int level, const char *fmt, ...)
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
    if (used++ >= GW_LOG_BURST)
        return;
    va_start(ap, fmt);
    s_vlog(level, fmt, ap);
    va_end(ap);
}
