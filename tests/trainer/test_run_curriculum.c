/* tests/trainer/test_run_curriculum.c: the curricula as the RL loop sees them: off by default (the
 * draw is problems_train's, the budget rollout.max_new_tokens); the mixture's family choice follows
 * the weights at the step (only the first family at step 0 with mix_start 1,0); the difficulty stays
 * in the family's window; config errors name the key; and the whole state (controller history as
 * exact bits, levels, counts, the pass-rate table) round-trips through a state.h5 file.
 * labels: unit
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <math.h>
#include <stdio.h>
#include <string.h>

#include "../test_tmpdir.h"
#include "core/error.h"
#include "trainer/run_curriculum.h"

static void load(RunConfig *rc, int n, char **ov) { assert_int_equal(run_config_load(rc, NULL, n, ov), 0); }

static void test_off_by_default(void **st) {
    (void)st;
    RunConfig rc;
    load(&rc, 0, NULL);
    ProblemSet ps;
    assert_int_equal(problems_init(&ps, &rc), 0);
    RunCurriculum cu;
    assert_int_equal(run_curriculum_init(&cu, &rc, &ps), 0);
    assert_false(cu.budget_on || cu.tasks_on);
    assert_int_equal(run_curriculum_budget(&cu, &rc), rc.rl_max_new);
    Problem a, b;
    int f;
    for (uint64_t i = 0; i < 20; i++) {
        run_curriculum_draw(&cu, &ps, 3, i, &a, &f);
        problems_train(&ps, i, &b);
        assert_string_equal(a.prompt, b.prompt);
    }
    run_curriculum_free(&cu);
    problems_free(&ps);
}

static void test_mixture_and_levels(void **st) {
    (void)st;
    char *ov[] = {"data.tasks=runsum,add", "data.difficulty_min=3", "data.difficulty_max=6", "curriculum.mix_start=1,0",
                  "curriculum.mix_end=0,1", "curriculum.mix_steps=10", "curriculum.difficulty_window=2"};
    RunConfig rc;
    load(&rc, 7, ov);
    ProblemSet ps;
    assert_int_equal(problems_init(&ps, &rc), 0);
    RunCurriculum cu;
    assert_int_equal(run_curriculum_init(&cu, &rc, &ps), 0);
    assert_true(cu.tasks_on && !cu.budget_on);
    int n_add[3] = {0, 0, 0}, f;
    long steps[3] = {0, 5, 10};
    Problem p;
    for (int s = 0; s < 3; s++)
        for (uint64_t i = 0; i < 400; i++) {
            run_curriculum_draw(&cu, &ps, steps[s], i, &p, &f);
            assert_string_equal(p.family, f ? "add" : "runsum");
            assert_true(p.difficulty >= 3 && p.difficulty <= 4);
            n_add[s] += f;
        }
    assert_int_equal(n_add[0], 0);
    assert_true(n_add[1] > 150 && n_add[1] < 250); /* weight 0.5: 200 +- 5 sigma */
    assert_int_equal(n_add[2], 400);
    run_curriculum_free(&cu);
    char *bad[] = {"data.tasks=runsum,add", "curriculum.mix_start=1,0,1"};
    load(&rc, 2, bad);
    assert_int_equal(run_curriculum_init(&cu, &rc, &ps), ERR_CONFIG);
    assert_non_null(strstr(err_msg(), "curriculum.mix_start"));
    char *bad2[] = {"curriculum.budget_stages=32,16"};
    load(&rc, 1, bad2);
    assert_int_equal(run_curriculum_init(&cu, &rc, &ps), ERR_CONFIG);
    assert_non_null(strstr(err_msg(), "increase strictly"));
    problems_free(&ps);
}

static void test_state_round_trip(void **st) {
    (void)st;
    char *ov[] = {"data.tasks=runsum,add", "data.difficulty_min=3", "data.difficulty_max=6",
                  "curriculum.difficulty_window=2", "curriculum.master_rate=0.5", "curriculum.master_samples=8",
                  "curriculum.pass_filter=true", "curriculum.pass_capacity=64", "curriculum.budget_stages=16,32,48",
                  "curriculum.ppl_window=3", "curriculum.min_stage_steps=2", "rollout.max_new_tokens=48",
                  "curriculum.ppl_tol=1"};
    RunConfig rc;
    load(&rc, 13, ov);
    ProblemSet ps;
    assert_int_equal(problems_init(&ps, &rc), 0);
    RunCurriculum a, b;
    assert_int_equal(run_curriculum_init(&a, &rc, &ps), 0);
    Problem p;
    int f;
    for (long s = 1; s <= 9; s++) {
        for (uint64_t i = 0; i < 8; i++) {
            run_curriculum_draw(&a, &ps, s, (uint64_t)s * 8 + i, &p, &f);
            run_curriculum_record(&a, &p, f, (int)((i * 7 + (uint64_t)s) % 5), 4);
        }
        run_curriculum_end_step(&a, &ps, s, 2.0 + 1.0 / (double)s + 1e-3 * (double)(s % 3), 1e9);
    }
    /* history full after step 6 -> stage 1 at step 6; three more values since */
    assert_int_equal(a.budget.st.stage, 1);
    assert_int_equal(a.budget.st.n_hist, 3);
    assert_true(a.tc.raises > 0);
    char dir[128], path[256];
    assert_int_equal(tmpdir_make(dir, sizeof dir, "cispo_curst"), 0);
    snprintf(path, sizeof path, "%s/state.h5", dir);
    H5File h;
    assert_int_equal(h5_create(&h, path), 0);
    assert_int_equal(run_curriculum_save(&a, &h), 0);
    assert_int_equal(h5_close(&h), 0);
    assert_int_equal(run_curriculum_init(&b, &rc, &ps), 0);
    assert_int_equal(run_curriculum_load(&b, dir), 0);
    assert_memory_equal(&a.budget.st, &b.budget.st, sizeof(BudgetState));
    assert_memory_equal(a.tc.lo, b.tc.lo, sizeof a.tc.lo);
    assert_memory_equal(a.tc.lvl_correct, b.tc.lvl_correct, sizeof a.tc.lvl_correct);
    assert_memory_equal(a.tc.lvl_total, b.tc.lvl_total, sizeof a.tc.lvl_total);
    assert_int_equal(a.tc.filtered, b.tc.filtered);
    assert_int_equal(a.tc.raises, b.tc.raises);
    assert_memory_equal(a.tc.table, b.tc.table, 64 * sizeof(PassEntry));
    /* a config whose controller does not fit the saved state is refused */
    RunCurriculum c;
    char *ov2[] = {"data.tasks=runsum,add", "data.difficulty_min=3", "data.difficulty_max=6",
                   "curriculum.difficulty_window=2", "curriculum.pass_capacity=64", "curriculum.budget_stages=48",
                   "curriculum.ppl_window=3", "rollout.max_new_tokens=48"};
    load(&rc, 8, ov2);
    assert_int_equal(run_curriculum_init(&c, &rc, &ps), 0);
    assert_int_equal(run_curriculum_load(&c, dir), ERR_FORMAT); /* stage 1 of a 1-stage list */
    assert_non_null(strstr(err_msg(), "does not fit"));
    run_curriculum_free(&a), run_curriculum_free(&b), run_curriculum_free(&c);
    problems_free(&ps);
    tmpdir_remove(dir);
}

int main(void) {
    const struct CMUnitTest tests[] = {cmocka_unit_test(test_off_by_default), cmocka_unit_test(test_mixture_and_levels),
                                       cmocka_unit_test(test_state_round_trip)};
    return cmocka_run_group_tests(tests, NULL, NULL);
}
