/* tests/checkpoints/test_ckpt_kill_slow.c: 100 kill -9 trials while checkpoints are written
 * (RELIABILITY.md C1, the slow figure); see kill_trials.h.
 * labels: slow
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include "kill_trials.h"

static void test_kill_trials_100(void **state) {
    (void)state;
    KillStats st;
    kt_run(100, 0xC1100u, &st);
    assert_int_equal(st.trials, 100);
    assert_true(st.in_commit > 0);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_kill_trials_100),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
