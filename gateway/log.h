/*
 * log.h - the gateway's stderr log. Structured JSON logs come with the
 * operations issue; callers already say a level.
 */
#ifndef WSGATE_GW_LOG_H
#define WSGATE_GW_LOG_H

typedef enum { GW_LOG_ERR = 0, GW_LOG_WARN, GW_LOG_INFO, GW_LOG_DEBUG } gw_log_level_t;

void gw_log_set_level(int level);
void gw_log(int level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Same, but at most a few lines a second whatever the caller's rate: for
 * paths a misbehaving peer can drive. */
void gw_log_limited(int level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

#endif
