/*
 * stats.h - what one load process counts, and the merge of several.
 *
 * Plain data of fixed size (no pointers), so each forked process writes
 * its own ld_stats_t in a shared anonymous mapping and the parent reads
 * them for the progress line and merges them for the report. Counters are
 * written by one process only; the parent's progress reads may see a
 * value a moment old, which is all a progress line needs.
 */
#ifndef WSGATE_LD_STATS_H
#define WSGATE_LD_STATS_H

#include <stddef.h>
#include <stdint.h>

#include "fanout.h"
#include "hist.h"

/* Why a connection did not open, or ended before the client closed it. */
typedef enum {
    LD_FAIL_NONE = 0,
    LD_FAIL_REFUSED,      /* connect: ECONNREFUSED */
    LD_FAIL_TIMEOUT,      /* no 101 within --connect-timeout */
    LD_FAIL_HTTP,         /* a status other than 101 (see http[]) */
    LD_FAIL_BAD_ACCEPT,   /* wrong or missing Sec-WebSocket-Accept */
    LD_FAIL_BAD_PROTOCOL, /* subprotocol not selected */
    LD_FAIL_RESET,        /* reset or closed by the server before the handshake ended */
    LD_FAIL_ADDRESS,      /* no local port or address (EADDRNOTAVAIL, EADDRINUSE) */
    LD_FAIL_FILES,        /* out of file descriptors (EMFILE, ENFILE) */
    LD_FAIL_MALFORMED,    /* not HTTP, or a websocket protocol error from the server */
    LD_FAIL_OTHER,        /* any other error */
    LD_FAIL_AUTH,         /* the auth was answered err (see auth_errs), or closed 4003 */
    LD_FAIL_AUTH_TIMEOUT, /* no auth answer within --connect-timeout, or closed 4004 */
    LD_FAIL__COUNT
} ld_fail_t;

/* "refused", "timeout", ... */
const char *ld_fail_name(ld_fail_t f);

#define LD_TABLE_SLOTS 16
#define LD_CODE_MAX 32

/* A small counted set of integer keys (close codes, HTTP statuses). */
typedef struct {
    struct {
        int key;
        uint64_t n;
    } slot[LD_TABLE_SLOTS];
    uint64_t other; /* keys that found no free slot */
} ld_itable_t;

/* The same for error codes of replies (strings up to LD_CODE_MAX). */
typedef struct {
    struct {
        char key[LD_CODE_MAX + 1];
        uint64_t n;
    } slot[LD_TABLE_SLOTS];
    uint64_t other;
} ld_stable_t;

typedef struct {
    /* connections */
    uint64_t attempted;
    uint64_t established;
    uint64_t failed; /* before 101: sum of fail[] */
    uint64_t fail[LD_FAIL__COUNT];
    ld_itable_t http; /* status -> failures with it */
    uint64_t open;    /* open now (gauge) */
    uint64_t open_max;
    uint64_t dropped;        /* open connections that ended before the client closed them */
    ld_itable_t closes;      /* close codes of the server's closes (1006: no close frame) */
    uint64_t closed_clean;   /* closed by the client at the end, close answered */
    uint64_t first_start_ns; /* first connect() (CLOCK_MONOTONIC); 0 if none */
    uint64_t last_open_ns;   /* last 101 received */
    ld_hist_t handshake;     /* us, connect() start -> 101 received */
    /* with a token source a connection is established when its auth is
     * answered res, and last_open_ns is that answer's time */
    ld_stable_t auth_errs; /* LD_FAIL_AUTH by cause: err codes, "close_4003" */
    ld_hist_t auth;        /* us, 101 -> the auth's res */

    /* keep-alive */
    uint64_t pings;
    uint64_t pongs;
    uint64_t pings_closing; /* not answered: our close frame was already out */

    /* requests */
    uint64_t sent;
    uint64_t replies; /* res, or raw echoes */
    uint64_t errors;  /* err replies: sum of err_codes */
    ld_stable_t err_codes;
    uint64_t missing;       /* sent, never answered before the end */
    uint64_t bad_replies;   /* unparsable, unknown id, or data not what was sent */
    uint64_t bytes_out;     /* payload bytes of requests sent */
    uint64_t bytes_in;      /* payload bytes of messages received */
    uint64_t send_start_ns; /* first request */
    uint64_t send_end_ns;   /* last reply */
    ld_hist_t latency;      /* us: send (or scheduled send) -> reply */

    /* fanout; requests above are the publications (replies: answered res) */
    uint64_t subscribed; /* sub answered res */
    uint64_t sub_failed; /* sub answered err: sum of sub_errs */
    ld_stable_t sub_errs;
    ld_hist_t sub;          /* us, sub sent -> res */
    ld_fan_counts_t fan;    /* deliveries seen by this process's subscribers */
    uint64_t fan_other;     /* other messages on subscribers (join, push, ...) */
    uint64_t fan_expected;  /* subscribed x publications answered res, all processes */
    uint64_t fan_missing;   /* of those, not delivered by the end */
    uint64_t fan_extra;     /* delivered beyond that (a publication not answered res) */
    uint64_t first_pub_ns;  /* first publication sent */
    uint64_t last_deliv_ns; /* last delivery received */
    ld_hist_t delivery;     /* us, publication's t_ns -> receipt */
    uint64_t bursts_sent;   /* publisher's process */
    ld_burst_t bursts[LD_MAX_BURSTS];
    /* read by the other processes (atomically): the phases across them */
    uint64_t fan_ready;    /* every subscriber of this process answered, publishers ready */
    uint64_t fan_pub_done; /* this process's publishers finished and their replies came */
    uint64_t fan_pub_ok;   /* publications answered res by then: a late answer does not
                              move it, so every process expects the same */

    uint64_t timed_out; /* the process hit --timeout: the run was cut short */
    uint64_t done;      /* the process finished and the figures are final */
} ld_stats_t;

void ld_stats_init(ld_stats_t *s);
/* Adds src into dst (counters, tables, histograms, time spans). */
void ld_stats_merge(ld_stats_t *dst, const ld_stats_t *src);

void ld_itable_add(ld_itable_t *t, int key, uint64_t n);
/* code is [a-z0-9_]{1,32}; longer ones are cut. */
void ld_stable_add(ld_stable_t *t, const char *code, size_t len, uint64_t n);

#endif
