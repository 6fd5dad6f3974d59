/* tests/trainer/test_masked_groups.c: the group filter for masked rewards (trainer/masked_groups.h)
 * on hand-made groups: a group with any masked response is dropped whatever its rewards, the rest
 * follow the dynamic-sampling filter with the room left, and with no mask the result is exactly
 * dynamic_sampling_filter's.
 * labels: unit
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "trainer/dynamic_sampling.h"
#include "trainer/masked_groups.h"

/* 4 groups of G = 3: informative, masked (and informative), constant, informative. */
static const float k_rew[12] = {1, 0, 0, /**/ 1, 0, 0, /**/ 1, 1, 1, /**/ 0, 0, 1};
static const int k_mask[12] = {0, 0, 0, /**/ 0, 1, 0, /**/ 0, 0, 0, /**/ 0, 0, 0};

static void test_masked_group_dropped(void **state) {
    (void)state;
    int keep[4];
    assert_int_equal(masked_groups_filter(k_rew, k_mask, 4, 3, 0, 4, keep), 3); /* no dynamic sampling */
    assert_int_equal(keep[0], 1);
    assert_int_equal(keep[1], 0);
    assert_int_equal(keep[2], 1);
    assert_int_equal(keep[3], 1);
    assert_int_equal(masked_groups_filter(k_rew, k_mask, 4, 3, 1, 4, keep), 2); /* constant group dropped too */
    assert_int_equal(keep[0] + keep[1] * 2 + keep[2] * 4 + keep[3] * 8, 1 + 8);
}

static void test_room_not_spent_on_masked(void **state) {
    (void)state;
    int keep[4];
    /* room 2: the masked group 1 must not take a place; groups 0 and 2 fill it */
    assert_int_equal(masked_groups_filter(k_rew, k_mask, 4, 3, 0, 2, keep), 2);
    assert_int_equal(keep[0] + keep[1] * 2 + keep[2] * 4 + keep[3] * 8, 1 + 4);
    assert_int_equal(masked_groups_filter(k_rew, k_mask, 4, 3, 1, 1, keep), 1);
    assert_int_equal(keep[0] + keep[1] * 2 + keep[2] * 4 + keep[3] * 8, 1);
    assert_int_equal(masked_groups_filter(k_rew, k_mask, 4, 3, 1, 0, keep), 0);
}

static void test_no_mask_same_as_dynamic_sampling(void **state) {
    (void)state;
    const int none[12] = {0};
    for (int dynamic = 0; dynamic <= 1; dynamic++)
        for (int room = 0; room <= 4; room++) {
            int a[4], b[4];
            assert_int_equal(masked_groups_filter(k_rew, none, 4, 3, dynamic, room, a),
                             dynamic_sampling_filter(k_rew, 4, 3, dynamic, room, b));
            assert_memory_equal(a, b, sizeof a);
        }
    assert_int_equal(masked_count(k_mask, 12), 1);
    assert_int_equal(masked_count(none, 12), 0);
}

int main(void) {
    const struct CMUnitTest tests[] = {cmocka_unit_test(test_masked_group_dropped), cmocka_unit_test(test_room_not_spent_on_masked),
                                       cmocka_unit_test(test_no_mask_same_as_dynamic_sampling)};
    return cmocka_run_group_tests(tests, NULL, NULL);
}
