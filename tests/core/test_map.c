/* The hash map against a plain array model, through random puts and
 * deletes. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdlib.h>

#include "sb_map.h"

#define N 5000

static void test_model(void **state)
{
    (void)state;
    static int vals[N];
    static int present[N];
    sb_map m = SB_MAP_INIT;
    uint64_t x = 12345;
    for (int round = 0; round < 200000; round++) {
        x = x * 6364136223846793005ULL + 1442695040888963407ULL;
        int k = (int)((x >> 33) % N);
        uint64_t key = (uint64_t)k * 7919; /* clustered keys */
        if ((x >> 20) & 1) {
            vals[k] = round;
            assert_int_equal(sb_map_put(&m, key, &vals[k]), 0);
            present[k] = 1;
        } else {
            void *old = sb_map_del(&m, key);
            assert_true(present[k] ? old == &vals[k] : old == NULL);
            present[k] = 0;
        }
        if (round % 1000 == 0) {
            size_t count = 0;
            for (int i = 0; i < N; i++) {
                void *v = sb_map_get(&m, (uint64_t)i * 7919);
                assert_true(present[i] ? v == &vals[i] : v == NULL);
                count += (size_t)present[i];
            }
            assert_int_equal(count, m.len);
        }
    }
    sb_map_free(&m);
}

int main(void)
{
    const struct CMUnitTest tests[] = {cmocka_unit_test(test_model)};
    return cmocka_run_group_tests(tests, NULL, NULL);
}
