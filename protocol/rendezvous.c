/*
 * rendezvous.c - highest-random-weight hashing.
 *
 * The score must behave like an independent uniform draw per (worker, key)
 * pair: that is what makes the spread even and makes a worker's arrival or
 * departure move only its own keys. XXH3 gives well spread 64-bit inputs;
 * the mix below turns the pair into one such draw.
 */
#include "rendezvous.h"

#include <string.h>

#define XXH_STATIC_LINKING_ONLY /* XXH3_state_t on the stack */
#include <xxhash.h>

/* svc + separator + key for every valid envelope fits here; anything
 * longer goes through the streaming API, which hashes the same bytes. */
#define RDV_KEY_STACK 512

uint64_t
proto_rdv_seed(proto_span_t worker_id)
{
    return XXH3_64bits(worker_id.ptr, worker_id.len);
}

uint64_t
proto_hash64(const void *p, size_t len)
{
    return XXH3_64bits(p, len);
}

uint64_t
proto_rdv_key(proto_span_t svc, proto_span_t key)
{
    /* The 0 byte keeps ("ab", "c") and ("a", "bc") apart: service names
     * never contain it. */
    static const uint8_t sep = 0;
    uint8_t buf[RDV_KEY_STACK];
    XXH3_state_t st;

    if (svc.len < sizeof buf && key.len < sizeof buf - svc.len) {
        if (svc.len)
            memcpy(buf, svc.ptr, svc.len);
        buf[svc.len] = sep;
        if (key.len)
            memcpy(buf + svc.len + 1, key.ptr, key.len);
        return XXH3_64bits(buf, svc.len + 1 + key.len);
    }
    XXH3_64bits_reset(&st);
    XXH3_64bits_update(&st, svc.ptr, svc.len);
    XXH3_64bits_update(&st, &sep, 1);
    XXH3_64bits_update(&st, key.ptr, key.len);
    return XXH3_64bits_digest(&st);
}

/* The murmur3 / splitmix64 finaliser: a bijection with full avalanche. */
static uint64_t
s_mix(uint64_t x)
{
    x ^= x >> 33;
    x *= 0xff51afd7ed558ccdULL;
    x ^= x >> 33;
    x *= 0xc4ceb9fe1a85ec53ULL;
    x ^= x >> 33;
    return x;
}

uint64_t
proto_rdv_score(uint64_t seed, uint64_t key_hash)
{
    /* One round of seed ^ hash alone is symmetric in its arguments and
     * lets structure in the xor show through; feeding the seed in again
     * before a second round breaks both. */
    return s_mix(s_mix(seed ^ key_hash) + seed);
}

int
proto_rdv_pick(const uint64_t *seeds, size_t n, uint64_t key_hash)
{
    int best = -1;
    uint64_t best_score = 0;

    for (size_t i = 0; i < n; i++) {
        uint64_t s = proto_rdv_score(seeds[i], key_hash);
        if (best < 0 || s > best_score || (s == best_score && seeds[i] < seeds[best])) {
            best = (int)i;
            best_score = s;
        }
    }
    return best;
}
