/*
 * rendezvous.h - highest-random-weight (rendezvous) hashing of
 * (service, key) over a set of workers.
 *
 * Each worker is known by a 64-bit seed derived from its id; each request
 * by a 64-bit hash of (service, key). The worker with the highest
 * mix(seed, hash) wins. Adding or removing a worker only moves the keys
 * that it wins or won: every other key keeps its winner. The cost is one
 * mix per candidate worker, with the key hashed once.
 *
 * Pure functions, callable from any thread.
 */
#ifndef WSGATE_RENDEZVOUS_H
#define WSGATE_RENDEZVOUS_H

#include "proto.h"

uint64_t proto_rdv_seed(proto_span_t worker_id);
/* A well-spread 64-bit hash of any bytes (XXH3), for hash tables. */
uint64_t proto_hash64(const void *p, size_t len);
uint64_t proto_rdv_key(proto_span_t svc, proto_span_t key);
uint64_t proto_rdv_score(uint64_t seed, uint64_t key_hash);

/* Index of the winning seed among seeds[0..n), or -1 when n == 0. Ties
 * (practically impossible) go to the lower seed value, so the pick does
 * not depend on the order of seeds. */
int proto_rdv_pick(const uint64_t *seeds, size_t n, uint64_t key_hash);

#endif
