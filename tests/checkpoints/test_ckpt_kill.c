/* tests/checkpoints/test_ckpt_kill.c: kill -9 at random moments while checkpoints are written
 * (RELIABILITY.md C1), 20 trials by default (CISPO_KILL_TRIALS=N for more); see kill_trials.h.
 * labels: unit
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include "kill_trials.h"

static void test_kill_trials(void **state) {
    (void)state;
    int trials = 20;
    const char *env = getenv("CISPO_KILL_TRIALS");
    if (env != NULL && env[0] != '\0') trials = atoi(env);
    assert_true(trials > 0);
    KillStats st;
    kt_run(trials, 0xC1u, &st);
    assert_int_equal(st.trials, trials);
    assert_true(st.commits > 0);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_kill_trials),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
