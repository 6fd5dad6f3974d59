/* tests/cli/test_dist_wsync.c: the schedule of the GPU runs' BF16 weight sync (trainer/dist_wsync.c)
 * on CPU ranks, through its test hook CISPO_TEST_WSYNC_BF16=1 (host buffers, MPI broadcast instead
 * of NCCL; the same code decides who sends which version when), on the tiny model of test_dist.c.
 * labels: mpi
 *
 * - 1 learner + 1 rollout rank, 3 steps, a checkpoint every step (so every sync sits next to a
 *   checkpoint's collectives): the rollout rank holds BF16(learner weights) after every sync (its
 *   hash = rank 0's "wsend" hash = XXH3 of the BF16 rounding of the step-v checkpoint's FP32
 *   parameters, whose own XXH3 is rank 0's "update" hash); finite metrics; timing.jsonl has the
 *   sync's seconds and 2 bytes per parameter;
 * - stopped after 2 steps and resumed to 3: metrics byte-identical to the uninterrupted run (a
 *   resumed rollout rank rounds the checkpoint's weights to BF16, as it held them);
 * - dist.max_staleness 1 with two rollout ranks (one broadcast to both), 4 steps: versions 1 and 2
 *   arrive for steps 2 and 3, right after the batch of the step before;
 * - without the hook the same layout is the FP32 MPI path (no "wsend" rows).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "tests/cli/dist_test_util.h"
#include "tests/cli/wsync_test_util.h"
#include "tests/test_tmpdir.h"

static char tmp[400], common[2048];

/* `cispo train` under mpirun -np np (with the hook when `hook`) for run `name`; the exit status. */
static int train(const char *name, int np, int hook, const char *extra) {
    char cmd[4096], log[600];
    snprintf(log, sizeof log, "%s/%s.log", tmp, name);
    snprintf(cmd, sizeof cmd, "%s %s -np %d %s train %s run.dir=%s/%s %s", hook ? "CISPO_TEST_WSYNC_BF16=1" : "",
             g_mpirun, np, g_bin, common, tmp, name, extra);
    int st = sh_run(cmd, log);
    if (st != 0) print_tail(log);
    return st;
}

static int setup(void **state) {
    dist_paths();
    if (tmpdir_make(tmp, sizeof tmp, "cispo_dist_wsync") != 0) return -1;
    const char *model = "model.hidden_size=32 model.intermediate_size=32 model.num_layers=2 model.full_attn_every=2 "
                        "model.head_dim=8 model.block_size=4 model.num_experts=1 model.experts_per_tok=1 "
                        "rollout.max_new_tokens=24 data.difficulty_max=4 run.threads=1 run.log_level=warn "
                        "data.eval_size=4 eval.samples=2";
    char cmd[4096], log[600];
    snprintf(log, sizeof log, "%s/sft.log", tmp);
    snprintf(cmd, sizeof cmd, "%s sft %s sft.steps=150 sft.batch_size=8 sft.lr=3e-3 run.dir=%s/sft", g_bin, model, tmp);
    if (sh_run(cmd, log) != 0) {
        print_tail(log);
        return -1;
    }
    snprintf(common, sizeof common,
             "%s model.path=%s/sft/sft_model rl.sft_first=false rl.prompts_per_step=4 rl.group_size=4 "
             "rl.minibatches=2 rl.max_gen_batches=2 ckpt.every=1 ckpt.keep_last=10 --resume auto",
             model, tmp);
    return 0;
}

static int teardown(void **state) {
    tmpdir_remove(tmp);
    return 0;
}

static const char *kLay11 = "dist.colocated=false dist.learner_ranks=1 dist.rollout_ranks=1";

static void test_rollout_rank_holds_bf16_of_learner_weights(void **state) {
    char extra[400], run[600];
    snprintf(extra, sizeof extra, "rl.steps=3 %s", kLay11);
    assert_int_equal(train("w11", 2, 1, extra), 0);
    snprintf(run, sizeof run, "%s/w11", tmp);
    size_t n_params = wsync_check_versions(run, 3, 2, 0, 1, 1); /* step 3's update has no later rollout */
    wsync_check_metrics(run, 3, 2.0 * n_params);
}

static void test_resume_is_bit_exact(void **state) {
    char extra[400], a[800], b[800];
    snprintf(extra, sizeof extra, "rl.steps=2 %s", kLay11);
    assert_int_equal(train("wres", 2, 1, extra), 0);
    snprintf(extra, sizeof extra, "rl.steps=3 %s", kLay11);
    assert_int_equal(train("wres", 2, 1, extra), 0);
    snprintf(a, sizeof a, "%s/w11/metrics.jsonl", tmp);
    snprintf(b, sizeof b, "%s/wres/metrics.jsonl", tmp);
    assert_true(files_equal(a, b));
    snprintf(a, sizeof a, "%s/w11/final_model/model.safetensors", tmp);
    snprintf(b, sizeof b, "%s/wres/final_model/model.safetensors", tmp);
    assert_true(files_equal(a, b));
}

static void test_staleness_one_two_rollout_ranks(void **state) {
    assert_int_equal(train("w12s", 3, 1, "rl.steps=4 rl.old_logp=rollout dist.colocated=false dist.learner_ranks=1 "
                                         "dist.rollout_ranks=2 dist.max_staleness=1"), 0);
    char run[600], h[17];
    snprintf(run, sizeof run, "%s/w12s", tmp);
    wsync_check_versions(run, 4, 2, 1, 1, 2); /* versions 1 and 2 for steps 2 and 3 (0-based), both ranks */
    for (int r = 1; r <= 2; r++) { /* nothing needs version 3 */
        char want[100];
        snprintf(want, sizeof want, "\"event\":\"recv\",\"rank\":%d,\"step\":4,", r);
        assert_false(wsync_find_hash(run, r, want, h));
    }
    wsync_check_metrics(run, 4, 0);
}

static void test_without_the_hook_fp32_path(void **state) {
    char extra[400], p[800];
    snprintf(extra, sizeof extra, "rl.steps=2 %s", kLay11);
    assert_int_equal(train("wfp32", 2, 0, extra), 0);
    snprintf(p, sizeof p, "%s/wfp32/dist/rank_0000.jsonl", tmp);
    assert_false(file_contains(p, "\"wsend\""));
    snprintf(p, sizeof p, "%s/wfp32/dist/rank_0001.jsonl", tmp);
    assert_true(file_contains(p, "\"event\":\"recv\",\"rank\":1,\"step\":1,\"version\":1,"));
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_rollout_rank_holds_bf16_of_learner_weights),
        cmocka_unit_test(test_resume_is_bit_exact),
        cmocka_unit_test(test_staleness_one_two_rollout_ranks),
        cmocka_unit_test(test_without_the_hook_fp32_path),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
