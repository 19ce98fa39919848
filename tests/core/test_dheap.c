/* sb_dheap: the top is always the earliest deadline through random sets,
 * moves both ways and removals (checked against a scan of all nodes),
 * across the wrap of the 32-bit clock; a node removed twice or never
 * added is left alone. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdlib.h>

#include "sb_dheap.h"

#define NODES 500

static uint32_t rnd(uint64_t *s)
{
    *s = *s * 6364136223846793005ull + 1442695040888963407ull;
    return (uint32_t)(*s >> 33);
}

/* The earliest deadline among the nodes in the heap, by a scan. */
static sb_dheap_node *scan_min(sb_dheap_node *n, size_t count)
{
    sb_dheap_node *best = NULL;
    for (size_t i = 0; i < count; i++)
        if (n[i].pos && (!best || sb_dheap_before(n[i].due_ms, best->due_ms)))
            best = &n[i];
    return best;
}

static void test_random_against_scan(void **state)
{
    (void)state;
    static sb_dheap_node n[NODES];
    sb_dheap h = SB_DHEAP_INIT;
    uint64_t seed = 12345;
    /* Times around the wrap of 2^32. */
    uint32_t base = UINT32_MAX - 50000;
    for (int step = 0; step < 100000; step++) {
        sb_dheap_node *x = &n[rnd(&seed) % NODES];
        if (rnd(&seed) % 4 == 0)
            sb_dheap_remove(&h, x);
        else
            assert_int_equal(sb_dheap_set(&h, x, base + rnd(&seed) % 100000),
                             0);
        sb_dheap_node *top = sb_dheap_top(&h), *want = scan_min(n, NODES);
        if (!want) {
            assert_null(top);
        } else {
            assert_non_null(top);
            assert_int_equal(top->due_ms, want->due_ms);
        }
        size_t in = 0;
        for (size_t i = 0; i < NODES; i++)
            in += n[i].pos != 0;
        assert_int_equal(in, h.len);
    }
    /* Emptied from the top, in order. */
    uint32_t last = 0;
    bool first = true;
    while (sb_dheap_top(&h)) {
        sb_dheap_node *t = sb_dheap_top(&h);
        if (!first) assert_false(sb_dheap_before(t->due_ms, last));
        last = t->due_ms;
        first = false;
        sb_dheap_remove(&h, t);
        assert_int_equal(t->pos, 0);
    }
    sb_dheap_free(&h);
}

static void test_remove_absent(void **state)
{
    (void)state;
    sb_dheap h = SB_DHEAP_INIT;
    sb_dheap_node a = {0, 0}, b = {0, 0};
    sb_dheap_remove(&h, &a);
    assert_int_equal(sb_dheap_set(&h, &a, 5), 0);
    sb_dheap_remove(&h, &b);
    assert_ptr_equal(sb_dheap_top(&h), &a);
    sb_dheap_remove(&h, &a);
    sb_dheap_remove(&h, &a);
    assert_null(sb_dheap_top(&h));
    assert_true(sb_dheap_before(UINT32_MAX, 1));
    assert_false(sb_dheap_before(1, UINT32_MAX));
    sb_dheap_free(&h);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_random_against_scan),
        cmocka_unit_test(test_remove_absent),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
