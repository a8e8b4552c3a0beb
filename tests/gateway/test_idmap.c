/* tests/gateway/test_idmap.c - gateway/idmap.c against a reference model. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>

#include <cmocka.h>

#include "idmap.h"

static void
test_put_get_del(void **state)
{
    gw_idmap_t m;
    uint64_t i;

    (void)state;
    assert_int_equal(gw_idmap_init(&m, 4), 0);
    for (i = 1; i <= 10000; i++)
        assert_int_equal(gw_idmap_put(&m, i, (void *)(uintptr_t)(i * 3)), 0);
    assert_int_equal(m.count, 10000);
    for (i = 1; i <= 10000; i++)
        assert_ptr_equal(gw_idmap_get(&m, i), (void *)(uintptr_t)(i * 3));
    assert_null(gw_idmap_get(&m, 10001));
    for (i = 1; i <= 10000; i += 2)
        assert_ptr_equal(gw_idmap_del(&m, i), (void *)(uintptr_t)(i * 3));
    assert_null(gw_idmap_del(&m, 1));
    for (i = 1; i <= 10000; i++)
        assert_ptr_equal(gw_idmap_get(&m, i), i % 2 ? NULL : (void *)(uintptr_t)(i * 3));
    assert_int_equal(m.count, 5000);
    gw_idmap_fini(&m);
}

/* Random puts and deletes against a plain array: backward-shift deletion
 * must never lose an entry whose probe run crosses the hole, including
 * runs that wrap around the end of the table. */
static void
test_random_against_model(void **state)
{
    enum { N = 4096, OPS = 200000 };
    static void *model[N];
    gw_idmap_t m;
    unsigned seed = 12345, op;
    uint64_t id;

    (void)state;
    assert_int_equal(gw_idmap_init(&m, 8), 0);
    for (op = 0; op < OPS; op++) {
        seed = seed * 1103515245u + 12345u;
        id = 1 + (seed >> 8) % N;
        if (model[id - 1]) {
            assert_ptr_equal(gw_idmap_del(&m, id), model[id - 1]);
            model[id - 1] = NULL;
        } else {
            model[id - 1] = (void *)(uintptr_t)(op + 1);
            assert_int_equal(gw_idmap_put(&m, id, model[id - 1]), 0);
        }
        if (op % 997 == 0) {
            size_t count = 0;

            for (id = 1; id <= N; id++) {
                assert_ptr_equal(gw_idmap_get(&m, id), model[id - 1]);
                count += model[id - 1] != NULL;
            }
            assert_int_equal(m.count, count);
        }
    }
    gw_idmap_fini(&m);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_put_get_del),
        cmocka_unit_test(test_random_against_model),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
