/*
 * log.h - the gateway's names for the shared log (protocol/log.h): text or
 * one JSON object per line on stderr, levels, rate-limited variant.
 */
#ifndef WSGATE_GW_LOG_H
#define WSGATE_GW_LOG_H

#include "../protocol/log.h"

enum {
    GW_LOG_ERR = PROTO_LOG_ERR,
    GW_LOG_WARN = PROTO_LOG_WARN,
    GW_LOG_INFO = PROTO_LOG_INFO,
    GW_LOG_DEBUG = PROTO_LOG_DEBUG,
};

#define gw_log proto_log
/* At most a few lines a second whatever the caller's rate: for paths a
 * misbehaving peer can drive. */
#define gw_log_limited proto_log_limited

#endif
