/*
 * test_rendezvous.c - rendezvous hashing (protocol/rendezvous.c).
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "testutil.h"

#include <xxhash.h>

#include "rendezvous.h"

#define N_KEYS 100000

static uint64_t
s_seed(int i)
{
    char id[32];

    snprintf(id, sizeof id, "worker-%d", i);
    return proto_rdv_seed(s_cspan(id));
}

static uint64_t
s_key(unsigned i)
{
    char key[32];

    snprintf(key, sizeof key, "user:%u", i);
    return proto_rdv_key(s_cspan("chat"), s_cspan(key));
}

static void
test_hash_inputs(void **state)
{
    (void)state;
    /* deterministic, and XXH3 as documented */
    assert_true(proto_rdv_seed(s_cspan("w1")) == proto_rdv_seed(s_cspan("w1")));
    assert_true(proto_rdv_seed(s_cspan("w1")) != proto_rdv_seed(s_cspan("w2")));
    assert_true(proto_rdv_seed(s_cspan("w1")) == XXH3_64bits("w1", 2));
    assert_true(proto_rdv_key(s_cspan("chat"), s_cspan("k")) == XXH3_64bits("chat\0k", 6));
    assert_true(proto_rdv_key(s_cspan("chat"), proto_span(NULL, 0)) == XXH3_64bits("chat\0", 5));
    /* the separator keeps svc and key apart */
    assert_true(proto_rdv_key(s_cspan("ab"), s_cspan("c")) !=
                proto_rdv_key(s_cspan("a"), s_cspan("bc")));
}

/* Every gateway must pick the same worker for a key, across versions: a
 * change here reshuffles every key in a rolling upgrade. */
static void
test_reference_values(void **state)
{
    uint64_t seed = proto_rdv_seed(s_cspan("worker-1"));
    uint64_t key = proto_rdv_key(s_cspan("chat"), s_cspan("room-1"));

    (void)state;
    assert_true(seed == 0x2ec5ed283b4e684bULL);
    assert_true(key == 0x32e962da5c609462ULL);
    assert_true(proto_rdv_score(seed, key) == 0x43629f14ff80a7beULL);
}

static void
test_key_long_inputs(void **state)
{
    /* past the stack buffer, the streaming path hashes the same bytes */
    size_t lens[] = {0, 1, 255, 256, 446, 447, 448, 511, 512, 600, 5000};
    char *key = malloc(5000);
    char *cat = malloc(64 + 1 + 5000);

    (void)state;
    for (size_t i = 0; i < 5000; i++)
        key[i] = (char)('a' + i % 26);
    memset(cat, 's', 64);
    cat[64] = 0;
    memcpy(cat + 65, key, 5000);
    for (size_t k = 0; k < sizeof lens / sizeof lens[0]; k++) {
        uint64_t want = XXH3_64bits(cat, 65 + lens[k]);
        assert_true(proto_rdv_key(proto_span(cat, 64), proto_span(key, lens[k])) == want);
    }
    free(key);
    free(cat);
}

static void
test_score_properties(void **state)
{
    (void)state;
    /* not symmetric in (seed, key) */
    assert_true(proto_rdv_score(1, 2) != proto_rdv_score(2, 1));
    assert_true(proto_rdv_score(s_seed(1), s_key(1)) != proto_rdv_score(s_key(1), s_seed(1)));
    /* seed ^ key collisions do not give equal scores */
    assert_true(proto_rdv_score(0x10, 0x01) != proto_rdv_score(0x01, 0x10));
    assert_true(proto_rdv_score(0, 0) != proto_rdv_score(1, 1));
}

static void
test_pick_empty_and_single(void **state)
{
    uint64_t seeds[1] = {s_seed(1)};

    (void)state;
    assert_int_equal(proto_rdv_pick(seeds, 0, 123), -1);
    assert_int_equal(proto_rdv_pick(NULL, 0, 123), -1);
    for (unsigned i = 0; i < 100; i++)
        assert_int_equal(proto_rdv_pick(seeds, 1, s_key(i)), 0);
}

static void
test_spread_four_workers(void **state)
{
    uint64_t seeds[4];
    unsigned count[4] = {0};

    (void)state;
    for (int w = 0; w < 4; w++)
        seeds[w] = s_seed(w);
    for (unsigned i = 0; i < N_KEYS; i++) {
        int p = proto_rdv_pick(seeds, 4, s_key(i));
        assert_true(p >= 0 && p < 4);
        count[p]++;
    }
    for (int w = 0; w < 4; w++) {
        /* 25% +- 10% of 25% */
        if (count[w] < N_KEYS / 4 * 9 / 10 || count[w] > N_KEYS / 4 * 11 / 10)
            fail_msg("worker %d got %u of %u keys", w, count[w], N_KEYS);
    }
}

static void
test_spread_sequential_ids(void **state)
{
    /* numeric keys and near-identical worker ids are the usual worst case
     * for weak mixes */
    uint64_t seeds[8];
    unsigned count[8] = {0};
    char k[16];

    (void)state;
    for (int w = 0; w < 8; w++)
        seeds[w] = s_seed(w);
    for (unsigned i = 0; i < N_KEYS; i++) {
        snprintf(k, sizeof k, "%u", i);
        count[proto_rdv_pick(seeds, 8, proto_rdv_key(s_cspan("s"), s_cspan(k)))]++;
    }
    for (int w = 0; w < 8; w++) {
        if (count[w] < N_KEYS / 8 * 9 / 10 || count[w] > N_KEYS / 8 * 11 / 10)
            fail_msg("worker %d got %u of %u keys", w, count[w], N_KEYS);
    }
}

static void
test_remove_worker_moves_only_its_keys(void **state)
{
    uint64_t four[4], three[3];
    unsigned moved = 0, owned = 0;

    (void)state;
    for (int w = 0; w < 4; w++)
        four[w] = s_seed(w);
    /* worker 2 leaves */
    three[0] = four[0];
    three[1] = four[1];
    three[2] = four[3];
    for (unsigned i = 0; i < N_KEYS; i++) {
        uint64_t h = s_key(i);
        uint64_t before = four[proto_rdv_pick(four, 4, h)];
        uint64_t after = three[proto_rdv_pick(three, 3, h)];
        if (before == four[2]) {
            owned++;
            /* every key it owned moves, somewhere else */
            assert_true(after != four[2]);
            moved++;
        } else {
            /* nobody else's key moves */
            if (after != before)
                fail_msg("key %u moved though its worker stayed", i);
        }
    }
    assert_int_equal(moved, owned);
    assert_true(owned > N_KEYS / 4 * 9 / 10 && owned < N_KEYS / 4 * 11 / 10);
}

static void
test_add_worker_takes_a_fifth(void **state)
{
    uint64_t seeds[5];
    unsigned taken = 0;

    (void)state;
    for (int w = 0; w < 5; w++)
        seeds[w] = s_seed(w);
    for (unsigned i = 0; i < N_KEYS; i++) {
        uint64_t h = s_key(i);
        int before = proto_rdv_pick(seeds, 4, h);
        int after = proto_rdv_pick(seeds, 5, h);
        if (after != before) {
            /* keys move only to the newcomer */
            assert_int_equal(after, 4);
            taken++;
        }
    }
    if (taken < N_KEYS / 5 * 9 / 10 || taken > N_KEYS / 5 * 11 / 10)
        fail_msg("the fifth worker took %u of %u keys", taken, N_KEYS);
}

static void
test_order_independent(void **state)
{
    uint64_t seeds[6], shuffled[6];
    static const int perm[6] = {3, 5, 0, 4, 1, 2};

    (void)state;
    for (int w = 0; w < 6; w++)
        seeds[w] = s_seed(w + 10);
    for (int w = 0; w < 6; w++)
        shuffled[w] = seeds[perm[w]];
    for (unsigned i = 0; i < N_KEYS / 10; i++) {
        uint64_t h = s_key(i);
        int a = proto_rdv_pick(seeds, 6, h);
        int b = proto_rdv_pick(shuffled, 6, h);
        assert_true(seeds[a] == shuffled[b]);
    }
}

static void
test_ties_go_to_lower_seed(void **state)
{
    /* Equal scores need equal seeds here, so the tie rule shows as "the
     * first of equal seeds" and as order independence among them. */
    uint64_t seeds[3] = {7, 7, 7};

    (void)state;
    assert_int_equal(proto_rdv_pick(seeds, 3, 42), 0);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_hash_inputs),
        cmocka_unit_test(test_reference_values),
        cmocka_unit_test(test_key_long_inputs),
        cmocka_unit_test(test_score_properties),
        cmocka_unit_test(test_pick_empty_and_single),
        cmocka_unit_test(test_spread_four_workers),
        cmocka_unit_test(test_spread_sequential_ids),
        cmocka_unit_test(test_remove_worker_moves_only_its_keys),
        cmocka_unit_test(test_add_worker_takes_a_fifth),
        cmocka_unit_test(test_order_independent),
        cmocka_unit_test(test_ties_go_to_lower_seed),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
