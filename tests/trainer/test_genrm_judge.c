/* tests/rewards/test_genrm_judge.c: a tiny judge trained with `cispo sft` on the judge task
 * (curricula/task_judge.c: is this answer the reference's?) scores held-out pairs clearly better
 * than chance when served as a GenRM (trainer/genrm_setup.h: loaded from the SFT run directory's
 * checkpoint, greedy, both positions). Held-out pairs come from another seed than training.
 * Both layers use softmax attention (full_attn_every=1): the demonstration aligns the two answers
 * digit by digit, copying from two prompt lines in turn, which a lightning first layer did not
 * learn (it wrote the same line's digit twice). Measured: 115/120 right after 800 steps, about
 * 65 s of one core; the bar is 90/120 (chance is about 60).
 * The BLAS thread count is pinned to 1 (it changes rounding, and the machine's core count must not
 * matter).
 * labels: slow
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <cmocka.h>

#include "../test_tmpdir.h"

#include "core/error.h"
#include "curricula/task.h"
#include "trainer/commands.h"
#include "trainer/genrm_setup.h"

#define N_PAIRS 120

static void test_trained_judge_beats_chance(void **state) {
    (void)state;
    char dir[64], dir_kv[96], path_kv[128];
    assert_int_equal(tmpdir_make(dir, sizeof dir, "cispo_test_judge"), 0);
    snprintf(dir_kv, sizeof dir_kv, "run.dir=%s", dir);
    char *ov[] = {"sft", dir_kv, "run.threads=1", "data.tasks=judge", "data.difficulty_min=1", "data.difficulty_max=3",
                  "sft.steps=800", "sft.noise=0", "sft.lr=3e-3", "data.eval_size=16", "ckpt.every=0",
                  "model.hidden_size=64", "model.intermediate_size=96", "model.num_layers=2", "model.full_attn_every=1",
                  "model.num_heads=4", "model.num_kv_heads=2", "model.head_dim=16"};
    assert_int_equal(cmd_sft((int)(sizeof ov / sizeof ov[0]) - 1, ov + 1), 0);

    snprintf(path_kv, sizeof path_kv, "reward.genrm_path=%s", dir);
    char *jov[] = {path_kv, "reward.genrm_mode=pairwise", "reward.genrm_max_new=32", "run.threads=1"};
    RunConfig rc;
    assert_int_equal(run_config_load(&rc, NULL, 4, jov), 0);
    Tokenizer tok;
    tokenizer_byte_init(&tok);
    GenrmJudge j;
    int err = genrm_judge_open(&j, &rc, &tok, 32, 96);
    if (err) fail_msg("%s", err_msg());
    static Problem p[N_PAIRS];
    static char q[N_PAIRS][TASK_PROMPT_MAX], ref[N_PAIRS][TASK_ANSWER_MAX];
    const char *qs[N_PAIRS], *refs[N_PAIRS], *resps[N_PAIRS];
    const TaskFamily *f = task_family_find("add");
    for (int i = 0; i < N_PAIRS; i++) { /* held out: seed 424242, never trained on */
        assert_int_equal(task_family_find("judge")->generate(&p[i], 1 + i % 3, 424242, (uint64_t)i, 0.0), 0);
        Problem base;
        f->generate(&base, 1 + i % 3, 424242, (uint64_t)i, 0.0); /* the judge task's underlying problem */
        snprintf(q[i], sizeof q[i], "%s", base.prompt);
        snprintf(ref[i], sizeof ref[i], "%s", base.answer);
        qs[i] = q[i], refs[i] = ref[i], resps[i] = p[i].data;
    }
    static GenrmVerdict v[N_PAIRS];
    assert_int_equal(genrm_score(&j.g, N_PAIRS, qs, refs, resps, v), 0);
    int right = 0, n_same = 0;
    double r_same = 0, r_diff = 0;
    for (int i = 0; i < N_PAIRS; i++) {
        const int same = strcmp(p[i].answer, "same") == 0;
        n_same += same;
        *(same ? &r_same : &r_diff) += v[i].reward;
        right += (v[i].score > -0.5f) == same;
    }
    r_same /= n_same, r_diff /= N_PAIRS - n_same;
    fprintf(stderr, "judge: %d/%d held-out pairs right, mean reward %.3f (same) vs %.3f (different), "
            "parse failures %ld/%ld\n", right, N_PAIRS, r_same, r_diff, j.g.n_parse_fail, j.g.n_judgements);
    assert_true(right >= 0.75 * N_PAIRS);  /* chance is about 0.5 */
    assert_true(r_same - r_diff >= 0.4);
    genrm_judge_close(&j);
    tmpdir_remove(dir);
}

int main(void) {
    const struct CMUnitTest tests[] = {cmocka_unit_test(test_trained_judge_beats_chance)};
    return cmocka_run_group_tests(tests, NULL, NULL);
}
