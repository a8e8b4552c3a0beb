/*
 * fanout.h - the pure parts of the fanout scenario: the publications the
 * load tool sends, reading the `msg` events subscribers get, and the
 * accounting of what each subscriber saw (missing, duplicate and
 * out-of-order deliveries) and of bursts.
 *
 * A publication's data is the array [publisher, seq, t_ns] or, with
 * padding, [publisher, seq, t_ns, "aaaa..."]: the publisher's index over
 * all processes, its own sequence number from 1, and the CLOCK_MONOTONIC
 * time it was sent (or scheduled, open loop). Every load process runs on
 * the same machine, so one process's monotonic clock is comparable with
 * another's and the delivery latency is the subscriber's clock at receipt
 * minus t_ns.
 *
 * Plain data and pure functions, no I/O; any thread.
 */
#ifndef WSGATE_LD_FANOUT_H
#define WSGATE_LD_FANOUT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "envelope.h"

#define LD_FAN_MAX_PUBS 256  /* --publishers */
#define LD_MAX_BURSTS 1000   /* --burst */
#define LD_FAN_EPOCH_NONE 0u /* no epoch known yet: ld_fan_epoch() never gives it */

/* The 64-bit hash of an epoch string (FNV-1a, never LD_FAN_EPOCH_NONE). */
uint64_t ld_fan_epoch(proto_span_t epoch);

/*
 * Appends a `pub` request to out: {"op":"pub","id":ID,"channel":C,
 * "data":[P,S,T(,PAD)]}, in JSON or as a msgpack map. pad (letters, or
 * empty: none) pads the data as a string. 0, or -1 when out of memory.
 */
int ld_fan_pub_request(proto_enc_t enc, const char *channel, uint64_t id, uint32_t publisher,
                       uint64_t seq, uint64_t t_ns, proto_span_t pad, proto_buf_t *out);

/* One delivery as a subscriber sees it. */
typedef struct {
    proto_span_t channel; /* points into the message (or the scratch buffer) */
    uint64_t epoch;       /* ld_fan_epoch() of its epoch */
    uint64_t offset;
    uint32_t publisher;
    uint64_t seq;
    uint64_t t_ns;
} ld_fan_msg_t;

typedef enum {
    LD_FAN_MSG = 0,   /* a `msg` whose data is [publisher, seq, t_ns, ...] */
    LD_FAN_OTHER,     /* another op (res, err, join, leave, push) */
    LD_FAN_FOREIGN,   /* a `msg` whose data is not the load tool's */
    LD_FAN_MALFORMED, /* not an envelope at all */
} ld_fan_kind_t;

/*
 * Reads one message from the gateway. JSON in the gateway's own layout
 * ({"v":1,"op":"msg","channel":..,"epoch":..,"offset":..[,"user":..],
 * "data":[..]}) is read in place; any other JSON goes through wsproto's
 * converter into scratch (reset first); msgpack is read as it is.
 */
ld_fan_kind_t ld_fan_parse(proto_enc_t enc, const uint8_t *p, size_t len, proto_buf_t *scratch,
                           ld_fan_msg_t *m);

/*
 * What one subscriber saw of the channel. seq[] holds, per publisher, the
 * highest seq delivered; it is the caller's (n_pubs of them, zeroed).
 */
typedef struct {
    uint64_t epoch;    /* of the last delivery, or of the sub answer */
    uint64_t offset;   /* the last delivery's, or the sub answer's */
    uint64_t received; /* distinct publications: (publisher, seq) seen once */
    uint32_t *seq;
} ld_fan_sub_t;

/* Counters over any number of subscribers (a process's). */
typedef struct {
    uint64_t deliveries;    /* every msg with our data */
    uint64_t duplicates;    /* (publisher, seq) at or below one already delivered:
                               repeated, or late after a later one */
    uint64_t out_of_order;  /* offset not last + 1 in the same epoch, or the epoch changed */
    uint64_t epoch_changes; /* of which the epoch changed */
    uint64_t foreign;       /* publisher index out of range */
} ld_fan_counts_t;

void ld_fan_sub_init(ld_fan_sub_t *s, uint32_t *seq);

/* The sub answer's {"epoch":E,"offset":N}: the next delivery should be
 * N + 1 in E. Without it the first delivery sets the base. */
void ld_fan_sub_base(ld_fan_sub_t *s, uint64_t epoch, uint64_t offset);

/*
 * Accounts one delivery. Returns true when it is a new publication (not a
 * duplicate, publisher in range): the caller then records its latency.
 */
bool ld_fan_sub_observe(ld_fan_sub_t *s, uint32_t n_pubs, const ld_fan_msg_t *m,
                        ld_fan_counts_t *c);

/* Publications this subscriber lacks when `expected` were published. */
static inline uint64_t
ld_fan_sub_missing(const ld_fan_sub_t *s, uint64_t expected)
{
    return s->received < expected ? expected - s->received : 0;
}

/*
 * Bursts: one publication to every subscriber, measured until the last
 * one got it. Each process keeps, per burst, how many of its subscribers
 * got it and the latest latency; the merge over processes adds the counts
 * and keeps the largest latency.
 */
typedef struct {
    uint64_t delivered;
    uint64_t max_ns; /* the slowest delivery: publish time to receipt */
    uint64_t min_ns; /* the fastest; 0 while none */
} ld_burst_t;

void ld_burst_record(ld_burst_t *b, uint64_t latency_ns);
void ld_burst_merge(ld_burst_t *dst, const ld_burst_t *src);

/* True, with *full_ns the time until the last subscriber had it, once
 * `expected` subscribers got the burst; false before (or if expected is 0). */
bool ld_burst_full(const ld_burst_t *b, uint64_t expected, uint64_t *full_ns);

#endif
