/* tests/rewards/test_reward.c: answer extraction (the format rule and the salvaged answer),
 * reward_score's arithmetic and dispatch: every family's worked solutions score as correct through
 * the full path, noisy ones do not, a broken format is penalised and never correct, "jsonl" goes
 * to the math verifier, and an unknown family is an error naming it.
 * labels: unit
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <stdio.h>
#include <string.h>

#include "core/error.h"
#include "curricula/task.h"
#include "rewards/reward.h"

typedef struct {
    const char *response;
    int ok;
    const char *answer;
} ExtractCase;

static const ExtractCase k_extract[] = {
    {"<think>a</think><answer>42</answer>", 1, "42"},
    {"<answer> 42 </answer>", 1, "42"},
    {"  <think>x\ny</think>\n<answer>42</answer>\n ", 1, "42"},
    {"<answer></answer>", 1, ""},
    {"<think></think><answer>a b</answer>", 1, "a b"},
    {"<think>x</think><answer>42</answer>junk", 0, "42"},
    {"<think>x<answer>1</answer></think><answer>42</answer>", 0, "42"},
    {"<answer>1</answer><answer>2</answer>", 0, "2"},
    {"reasoning<answer>42</answer>", 0, "42"},
    {"<think>x</think>text<answer>42</answer>", 0, "42"},
    {"<think>x<answer>42</answer>", 0, "42"},
    {"<think>x</think><answer>42", 0, "42"},
    {"<think>x</think><answer>41</answer><answer>42", 0, "41"},
    {"<think>a</think><think>b</think><answer>1</answer>", 0, "1"},
    {"</think><answer>1</answer>", 0, "1"},
    {"<answer>4<think>2</answer>", 0, "4<think>2"},
    {"<answer>4</think></answer>", 0, "4</think>"},
    {"no tags at all", 0, ""},
    {"", 0, ""},
};

static void test_extract(void **state) {
    (void)state;
    char ans[TASK_ANSWER_MAX];
    for (size_t i = 0; i < sizeof(k_extract) / sizeof(k_extract[0]); i++) {
        const ExtractCase *c = &k_extract[i];
        memset(ans, 'Z', sizeof(ans));
        int ok = reward_extract_answer(c->response, ans, (int)sizeof(ans));
        if (ok != c->ok || strcmp(ans, c->answer) != 0)
            fail_msg("case %d '%s': got %d '%s', expected %d '%s'", (int)i, c->response, ok, ans, c->ok, c->answer);
    }
}

/* An answer longer than the buffer is a format failure (it could not be verified whole). */
static void test_extract_overlong(void **state) {
    (void)state;
    char resp[400], ans[16];
    strcpy(resp, "<answer>");
    memset(resp + 8, '7', 200);
    strcpy(resp + 208, "</answer>");
    assert_int_equal(reward_extract_answer(resp, ans, (int)sizeof(ans)), 0);
    assert_int_equal(strlen(ans), 15);
    strcpy(resp, "<answer>123456789012345</answer>"); /* exactly 15 fits */
    assert_int_equal(reward_extract_answer(resp, ans, (int)sizeof(ans)), 1);
    assert_string_equal(ans, "123456789012345");
}

static const RewardConfig k_rc = {.correct_reward = 1.0f, .wrong_reward = 0.0f, .format_penalty = -0.5f};

/* Every family, every difficulty, through reward_score: worked solutions score 1, noisy ones 0,
 * and the correct answer in a broken format is not correct and pays the penalty. */
static void test_score_families(void **state) {
    (void)state;
    Problem p, q;
    RewardResult res;
    char broken[TASK_SOLUTION_MAX + 16];
    for (const TaskFamily *const *fp = task_families(); *fp != NULL; fp++) {
        const TaskFamily *f = *fp;
        long noisy_correct = 0, n = 0;
        for (int d = f->min_difficulty; d <= f->max_difficulty; d++) {
            for (uint64_t i = 0; i < 50; i++) {
                assert_int_equal(f->generate(&p, d, 99, i, 0.0), 0);
                assert_int_equal(reward_score(&k_rc, &p, p.solution, &res), 0);
                assert_int_equal(res.format_ok, 1);
                assert_int_equal(res.correct, 1);
                assert_true(res.reward == 1.0f);
                assert_string_equal(res.answer, p.answer);
                assert_int_equal(f->generate(&q, d, 99, i, 1.0), 0);
                assert_int_equal(reward_score(&k_rc, &p, q.solution, &res), 0);
                assert_int_equal(res.format_ok, 1);
                noisy_correct += res.correct;
                assert_true(res.reward == (res.correct ? 1.0f : 0.0f));
                snprintf(broken, sizeof(broken), "%s trailing", p.solution);
                assert_int_equal(reward_score(&k_rc, &p, broken, &res), 0);
                assert_int_equal(res.format_ok, 0);
                assert_int_equal(res.correct, 0);
                assert_true(res.reward == -0.5f);
                assert_string_equal(res.answer, p.answer); /* salvaged, for logs */
                n++;
            }
        }
        assert_true(noisy_correct * 100 <= n);
    }
}

static void test_score_jsonl_and_unknown(void **state) {
    (void)state;
    Problem p;
    RewardResult res;
    memset(&p, 0, sizeof(p));
    strcpy(p.family, "jsonl");
    strcpy(p.answer, "1/2");
    assert_int_equal(reward_score(&k_rc, &p, "<think>half</think><answer>\\boxed{0.5}</answer>", &res), 0);
    assert_int_equal(res.format_ok, 1);
    assert_int_equal(res.correct, 1);
    assert_true(res.reward == 1.0f);
    assert_int_equal(reward_score(&k_rc, &p, "<answer>0.6</answer>", &res), 0);
    assert_int_equal(res.correct, 0);
    assert_true(res.reward == 0.0f);
    RewardConfig rc2 = {.correct_reward = 2.0f, .wrong_reward = -1.0f, .format_penalty = -0.25f};
    assert_int_equal(reward_score(&rc2, &p, "<answer>0.5", &res), 0);
    assert_int_equal(res.format_ok, 0);
    assert_int_equal(res.correct, 0);
    assert_true(res.reward == -1.25f);
    assert_int_equal(reward_score(&rc2, &p, "<answer>0.50</answer>", &res), 0);
    assert_true(res.reward == 2.0f);

    strcpy(p.family, "chess");
    p.id = 12;
    assert_int_equal(reward_score(&k_rc, &p, "<answer>1</answer>", &res), ERR_NOTFOUND);
    assert_non_null(strstr(err_msg(), "'chess'"));
    assert_non_null(strstr(err_msg(), "12"));
    assert_int_equal(res.correct, 0);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_extract),
        cmocka_unit_test(test_extract_overlong),
        cmocka_unit_test(test_score_families),
        cmocka_unit_test(test_score_jsonl_and_unknown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
