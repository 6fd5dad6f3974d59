/* tests/curricula/test_curriculum.c: the output-budget controller on synthetic metric streams
 * (it advances exactly when the plateau, length and minimum-steps criteria all hold, one stage at
 * a time, never past the last; its state restored mid-stream continues identically), stage-list
 * parsing, and the task curriculum: mixture schedule values, family picks, the pass-rate filter's
 * (0, upper) window, recent-appearance ring, table eviction, and difficulty raises.
 * labels: unit
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <math.h>
#include <string.h>

#include "core/error.h"
#include "curricula/budget.h"
#include "curricula/task_curriculum.h"

static BudgetConfig bcfg(void) {
    BudgetConfig c = {{32, 48, 64}, 3, 2, 0.05, 0.9, 5};
    return c;
}

static void test_parse_stages(void **st) {
    (void)st;
    int v[16], n;
    assert_int_equal(budget_parse_stages("40960, 49152,57344", "k", v, 16, &n), 0);
    assert_int_equal(n, 3);
    assert_int_equal(v[2], 57344);
    assert_int_equal(budget_parse_stages("", "k", v, 16, &n), 0);
    assert_int_equal(n, 0);
    assert_int_equal(budget_parse_stages("32,32", "curriculum.budget_stages", v, 16, &n), ERR_CONFIG);
    assert_non_null(strstr(err_msg(), "increase strictly"));
    assert_int_equal(budget_parse_stages("32,x", "curriculum.budget_stages", v, 16, &n), ERR_CONFIG);
    assert_non_null(strstr(err_msg(), "curriculum.budget_stages"));
    assert_int_equal(budget_parse_stages("1,2,3", "k", v, 2, &n), ERR_CONFIG);
}

/* Flat perplexity and long outputs: the first transition happens exactly at min_steps (the
 * history of 2*window = 4 values is full from step 4), then again min_steps later, then never. */
static void test_advances_when_all_hold(void **st) {
    (void)st;
    BudgetController b;
    BudgetConfig c = bcfg();
    assert_int_equal(budget_init(&b, &c), 0);
    int at[8], na = 0;
    for (int s = 1; s <= 40; s++) {
        BudgetEvent ev;
        int budget = budget_current(&b);
        if (budget_observe(&b, 2.0, 0.95 * budget, &ev)) {
            assert_int_equal(ev.to_budget, c.stages[b.st.stage]);
            assert_int_equal(ev.from_budget, c.stages[b.st.stage - 1]); /* one stage at a time */
            at[na++] = s;
        }
    }
    assert_int_equal(na, 2);
    assert_int_equal(at[0], 5);
    assert_int_equal(at[1], 10);
    assert_int_equal(budget_current(&b), 64);
    assert_int_equal(b.st.transitions, 2);
}

/* Perplexity still falling: no transition however long the outputs; once it flattens, the
 * transition waits until both windows hold flat values. */
static void test_waits_for_plateau(void **st) {
    (void)st;
    BudgetController b;
    BudgetConfig c = bcfg();
    assert_int_equal(budget_init(&b, &c), 0);
    BudgetEvent ev;
    for (int s = 1; s <= 20; s++) assert_int_equal(budget_observe(&b, 10.0 * pow(0.8, s), 40, &ev), 0);
    assert_false(ev.plateau);
    assert_true(ev.long_enough);
    /* relative change of windows (a, a) vs (b, b): 20% per step -> never below 5% */
    assert_true(ev.rel_change > 0.05);
    double flat = 10.0 * pow(0.8, 20);
    assert_int_equal(budget_observe(&b, flat, 40, &ev), 0); /* history: f19 f20 | f20 flat: ~10% */
    assert_int_equal(budget_observe(&b, flat, 40, &ev), 0); /* f20 flat | flat flat: rel 10% */
    assert_int_equal(budget_observe(&b, flat, 40, &ev), 1); /* flat flat | flat flat */
    assert_true(ev.plateau);
    assert_int_equal(ev.to_budget, 48);
}

/* Short outputs: a plateau alone does not advance; the step p99 reaches 0.9 x budget it does. */
static void test_waits_for_length(void **st) {
    (void)st;
    BudgetController b;
    BudgetConfig c = bcfg();
    assert_int_equal(budget_init(&b, &c), 0);
    BudgetEvent ev;
    for (int s = 1; s <= 12; s++) assert_int_equal(budget_observe(&b, 3.0, 28.7, &ev), 0); /* < 28.8 */
    assert_true(ev.plateau);
    assert_false(ev.long_enough);
    assert_int_equal(budget_observe(&b, 3.0, 28.8, &ev), 1);
    assert_int_equal(budget_current(&b), 48);
    /* the history restarted: the next transition needs 2*window new values and min_steps */
    for (int s = 1; s <= 4; s++) assert_int_equal(budget_observe(&b, 3.0, 64, &ev), 0);
    assert_int_equal(budget_observe(&b, 3.0, 64, &ev), 1);
    assert_int_equal(budget_observe(&b, NAN, 64, &ev), 0); /* non-finite: ignored, last stage anyway */
}

/* A controller restored from a mid-stream copy of the state continues exactly like the original. */
static void test_state_round_trip(void **st) {
    (void)st;
    BudgetController a, b;
    BudgetConfig c = bcfg();
    c.min_steps = 3;
    assert_int_equal(budget_init(&a, &c), 0);
    double ppl[60];
    for (int i = 0; i < 60; i++) ppl[i] = 2.0 + 1.0 / (1 + i % 17) + 0.01 * (i % 3);
    for (int i = 0; i < 23; i++) budget_observe(&a, ppl[i], 60, NULL);
    BudgetState saved = a.st;
    assert_int_equal(budget_init(&b, &c), 0);
    assert_int_equal(budget_restore(&b, &saved), 0);
    for (int i = 23; i < 60; i++) {
        BudgetEvent ea, eb;
        assert_int_equal(budget_observe(&a, ppl[i], 60, &ea), budget_observe(&b, ppl[i], 60, &eb));
        assert_int_equal(budget_current(&a), budget_current(&b));
    }
    assert_memory_equal(&a.st, &b.st, sizeof(BudgetState));
    BudgetState bad = saved;
    bad.stage = 3;
    assert_int_equal(budget_restore(&b, &bad), ERR_FORMAT);
}

static TaskCurriculumConfig tcfg(void) {
    TaskCurriculumConfig c;
    memset(&c, 0, sizeof c);
    c.n_fam = 2;
    c.mix_start[0] = 1, c.mix_start[1] = 0;
    c.mix_end[0] = 1, c.mix_end[1] = 3;
    c.mix_steps = 10;
    c.difficulty_min = 2, c.difficulty_max = 5, c.window = 2;
    c.master_rate = 0.8, c.master_samples = 16;
    c.filter = 1, c.pass_upper = 0.9, c.pass_min_samples = 8, c.capacity = 8;
    return c;
}

static void test_mixture_schedule(void **st) {
    (void)st;
    TaskCurriculum tc;
    TaskCurriculumConfig c = tcfg();
    assert_int_equal(tc_init(&tc, &c), 0);
    double w[2];
    tc_weights(&tc, 0, w);
    assert_true(w[0] == 1.0 && w[1] == 0.0);
    tc_weights(&tc, 5, w); /* (1, 1.5) / 2.5 */
    assert_true(fabs(w[0] - 0.4) < 1e-12 && fabs(w[1] - 0.6) < 1e-12);
    tc_weights(&tc, 100, w); /* (1, 3) / 4 */
    assert_true(fabs(w[0] - 0.25) < 1e-12);
    assert_int_equal(tc_pick_family(&tc, 0, 0.999), 0); /* weight 0 is never picked */
    assert_int_equal(tc_pick_family(&tc, 5, 0.39), 0);
    assert_int_equal(tc_pick_family(&tc, 5, 0.41), 1);
    double v[3];
    assert_int_equal(tc_parse_weights("1, 0.5,0", "k", 3, v), 0);
    assert_true(v[1] == 0.5);
    assert_int_equal(tc_parse_weights("1,2", "curriculum.mix_end", 3, v), ERR_CONFIG);
    assert_non_null(strstr(err_msg(), "fewer weights than the 3 families"));
    assert_int_equal(tc_parse_weights("0,0", "k", 2, v), ERR_CONFIG);
    assert_int_equal(tc_parse_weights("", "k", 2, v), 0);
    assert_true(v[0] == 1 && v[1] == 1);
    tc_free(&tc);
}

static void test_pass_filter(void **st) {
    (void)st;
    TaskCurriculum tc;
    TaskCurriculumConfig c = tcfg();
    assert_int_equal(tc_init(&tc, &c), 0);
    assert_true(tc_keep(&tc, 11));                  /* unseen */
    tc_record(&tc, 11, 0, 2, 0, 4);
    assert_true(tc_keep(&tc, 11));                  /* 4 < pass_min_samples */
    tc_record(&tc, 11, 0, 2, 0, 4);
    assert_false(tc_keep(&tc, 11));                 /* 0 of 8: never solved */
    tc_record(&tc, 22, 0, 2, 4, 4);
    tc_record(&tc, 22, 0, 2, 4, 4);
    assert_false(tc_keep(&tc, 22));                 /* 8 of 8 >= 0.9 */
    tc_record(&tc, 33, 0, 2, 7, 8);
    assert_true(tc_keep(&tc, 33));                  /* 0.875 < 0.9 */
    tc_record(&tc, 33, 0, 2, 8, 8);
    assert_false(tc_keep(&tc, 33));                 /* 15/16 = 0.9375 */
    /* only the last TC_RECENT appearances count: four 1-of-4 appearances push 0-of-8 out */
    for (int i = 0; i < TC_RECENT; i++) tc_record(&tc, 11, 0, 2, 1, 4);
    int n;
    assert_true(fabs(tc_pass_rate(&tc, 11, &n) - 0.25) < 1e-12);
    assert_int_equal(n, 16);
    assert_true(tc_keep(&tc, 11));
    /* a full table evicts deterministically and keeps working */
    for (uint64_t k = 100; k < 120; k++) tc_record(&tc, k, 1, 3, 1, 2);
    assert_true(tc_pass_rate(&tc, 119, &n) == 0.5);
    c.filter = 0;
    tc_free(&tc);
    assert_int_equal(tc_init(&tc, &c), 0);
    tc_record(&tc, 11, 0, 2, 0, 8);
    assert_true(tc_keep(&tc, 11)); /* filter off */
    tc_free(&tc);
    tc_free(&tc); /* idempotent */
}

static void test_difficulty_raise(void **st) {
    (void)st;
    TaskCurriculum tc;
    TaskCurriculumConfig c = tcfg();
    assert_int_equal(tc_init(&tc, &c), 0);
    int lo, hi, raised[2];
    tc_difficulty_range(&tc, 0, &lo, &hi);
    assert_true(lo == 2 && hi == 3);
    tc_record(&tc, 1, 0, 2, 12, 12);
    assert_int_equal(tc_end_step(&tc, raised), 0); /* 12 < master_samples */
    tc_record(&tc, 2, 0, 3, 4, 4);
    tc_record(&tc, 3, 1, 2, 0, 16);
    assert_int_equal(tc_end_step(&tc, raised), 1); /* family 0: 16 of 16 */
    assert_true(raised[0] && !raised[1]);
    tc_difficulty_range(&tc, 0, &lo, &hi);
    assert_true(lo == 3 && hi == 4);
    tc_record(&tc, 4, 0, 3, 13, 16);               /* 0.8125 */
    assert_int_equal(tc_end_step(&tc, raised), 1);
    tc_record(&tc, 5, 0, 4, 16, 16);
    assert_int_equal(tc_end_step(&tc, raised), 0); /* window [4, 5] reached data.difficulty_max */
    tc_difficulty_range(&tc, 0, &lo, &hi);
    assert_true(lo == 4 && hi == 5);
    assert_int_equal(tc.raises, 2);
    c.window = 5;
    TaskCurriculum t2;
    assert_int_equal(tc_init(&t2, &c), ERR_CONFIG);
    tc_free(&tc);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_parse_stages),     cmocka_unit_test(test_advances_when_all_hold),
        cmocka_unit_test(test_waits_for_plateau), cmocka_unit_test(test_waits_for_length),
        cmocka_unit_test(test_state_round_trip), cmocka_unit_test(test_mixture_schedule),
        cmocka_unit_test(test_pass_filter),      cmocka_unit_test(test_difficulty_raise),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
