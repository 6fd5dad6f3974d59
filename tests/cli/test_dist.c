/* tests/cli/test_dist.c: `cispo train` under mpirun (trainer/dist.h), end to end on a tiny model
 * warm-started by a short SFT (so rewards, advantages and gradients are non-trivial).
 * labels: mpi
 *
 * - 1 learner + 1 rollout rank (np 2) gives byte-identical metrics and final weights to a single
 *   process, and the rollout rank received exactly the learner's weights after every update;
 *   `mpirun -np 1` is a single process too;
 * - 2 learners (np 3, one rollout rank) and 2 colocated ranks give the same first update as one
 *   learner on the same global batch, within float tolerance;
 * - np 4 (2 learners + 2 rollout ranks) twice: bit for bit the same metrics and weights;
 * - per-rank checkpoint files: stopped after 2 steps and resumed to 3 at np 2, the run matches the
 *   uninterrupted one byte for byte; resuming at another world size is refused, naming both sizes;
 * - dist.max_staleness 1 (1 learner, 2 rollout ranks): each step generated with the weights one update old;
 * - a learner/rollout split that does not add up to the world is a clear error.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>

#include <cmocka.h>

#include "tests/cli/dist_test_util.h"
#include "tests/test_tmpdir.h"

static char tmp[400], common[2048];

/* `cispo train` for run `name` (np 0: no mpirun) with extra k=v arguments; returns the exit status. */
static int train(const char *name, int np, const char *extra) {
    char cmd[4096], log[600];
    snprintf(log, sizeof log, "%s/%s.log", tmp, name);
    if (np > 0)
        snprintf(cmd, sizeof cmd, "%s -np %d %s train %s run.dir=%s/%s %s", g_mpirun, np, g_bin, common, tmp, name, extra);
    else
        snprintf(cmd, sizeof cmd, "%s train %s run.dir=%s/%s %s", g_bin, common, tmp, name, extra);
    int st = sh_run(cmd, log);
    if (st != 0) print_tail(log);
    return st;
}

static void path(char *out, size_t cap, const char *run, const char *file) {
    snprintf(out, cap, "%s/%s/%s", tmp, run, file);
}

static int setup(void **state) {
    dist_paths();
    if (tmpdir_make(tmp, sizeof tmp, "cispo_dist") != 0) return -1;
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
             "rl.minibatches=2 rl.max_gen_batches=2 ckpt.every=2 --resume auto",
             model, tmp);
    return 0;
}

static int teardown(void **state) {
    tmpdir_remove(tmp);
    return 0;
}

static void test_one_learner_one_rollout_rank_matches_single_process(void **state) {
    char a[800], b[800];
    assert_int_equal(train("single", 0, "rl.steps=3"), 0);
    assert_int_equal(train("d11", 2, "rl.steps=3 dist.colocated=false dist.learner_ranks=1 dist.rollout_ranks=1"), 0);
    path(a, sizeof a, "single", "metrics.jsonl"), path(b, sizeof b, "d11", "metrics.jsonl");
    assert_true(files_equal(a, b));
    path(a, sizeof a, "single", "final_model/model.safetensors"), path(b, sizeof b, "d11", "final_model/model.safetensors");
    assert_true(files_equal(a, b));
    assert_int_equal(train("mp1", 1, "rl.steps=3"), 0); /* mpirun -np 1: a plain single process */
    path(a, sizeof a, "single", "metrics.jsonl"), path(b, sizeof b, "mp1", "metrics.jsonl");
    assert_true(files_equal(a, b));
    snprintf(a, sizeof a, "%s/d11", tmp);
    assert_int_equal(sync_hashes_match(a, 1), 2); /* versions 1 and 2 (step 3's update has no later rollout) */
}

static void expect_close(const char *run, const char *ref) {
    char a[800], b[800];
    double max_abs = 0;
    long n_diff = 0, n_all = 0;
    path(a, sizeof a, ref, "final_model/model.safetensors"), path(b, sizeof b, run, "final_model/model.safetensors");
    assert_int_equal(safetensors_diff(a, b, 1e-6, &max_abs, &n_diff, &n_all), 0);
    /* AdamW's first step moves each weight by about lr (1e-4) times the sign of its gradient, so
     * summation-order noise only shows where a gradient is within rounding of zero */
    fprintf(stderr, "%s vs %s: max |dw| %.3g, %ld of %ld weights differ by > 1e-6\n", run, ref, max_abs, n_diff, n_all);
    assert_true(max_abs <= 2.5e-4);
    assert_true(n_diff * 10000 <= n_all); /* observed: none */
    /* and the step's loss and gradient norm agree */
    path(a, sizeof a, ref, "metrics.jsonl"), path(b, sizeof b, run, "metrics.jsonl");
    char *x = slurp(a, NULL), *y = slurp(b, NULL);
    assert_non_null(x), assert_non_null(y);
    const char *keys[] = {"\"loss\":", "\"grad_norm\":"};
    for (int k = 0; k < 2; k++) {
        double u = atof(strstr(x, keys[k]) + strlen(keys[k])), v = atof(strstr(y, keys[k]) + strlen(keys[k]));
        fprintf(stderr, "  %s %.9g vs %.9g\n", keys[k], u, v);
        assert_true(u != 0);
        assert_true(fabs(u - v) <= 1e-5 * fabs(u));
    }
    free(x), free(y);
}

static void test_two_learners_same_update_as_one(void **state) {
    assert_int_equal(train("one", 0, "rl.steps=1"), 0);
    assert_int_equal(train("d21", 3, "rl.steps=1 dist.colocated=false dist.learner_ranks=2 dist.rollout_ranks=1"), 0);
    expect_close("d21", "one");
    assert_int_equal(train("c2", 2, "rl.steps=1"), 0);
    expect_close("c2", "one");
}

static void test_np4_runs_agree_bit_for_bit(void **state) {
    const char *lay = "rl.steps=3 dist.colocated=false dist.learner_ranks=2 dist.rollout_ranks=2";
    assert_int_equal(train("np4a", 4, lay), 0);
    assert_int_equal(train("np4b", 4, lay), 0);
    char a[800], b[800];
    path(a, sizeof a, "np4a", "metrics.jsonl"), path(b, sizeof b, "np4b", "metrics.jsonl");
    assert_true(files_equal(a, b));
    path(a, sizeof a, "np4a", "final_model/model.safetensors"), path(b, sizeof b, "np4b", "final_model/model.safetensors");
    assert_true(files_equal(a, b));
    snprintf(a, sizeof a, "%s/np4a", tmp);
    assert_int_equal(sync_hashes_match(a, 2), 2);
    assert_int_equal(sync_hashes_match(a, 3), 2);
}

static void test_per_rank_checkpoints_resume_bit_exact(void **state) {
    const char *lay = "dist.colocated=false dist.learner_ranks=1 dist.rollout_ranks=1";
    char extra[400], a[800], b[800];
    snprintf(extra, sizeof extra, "rl.steps=2 %s", lay);
    assert_int_equal(train("res", 2, extra), 0);
    path(a, sizeof a, "res", "checkpoints/latest");
    char *latest = slurp(a, NULL);
    assert_non_null(latest);
    latest[strcspn(latest, "\n")] = '\0';
    for (int r = 0; r < 2; r++) { /* each rank wrote its own file into the checkpoint */
        snprintf(b, sizeof b, "%s/res/checkpoints/%s/rank_%04d.h5", tmp, strrchr(latest, '/') ? strrchr(latest, '/') + 1 : latest, r);
        assert_int_equal(access(b, R_OK), 0);
    }
    free(latest);
    snprintf(extra, sizeof extra, "rl.steps=3 %s", lay);
    assert_int_equal(train("res", 2, extra), 0);
    path(a, sizeof a, "res", "metrics.jsonl"), path(b, sizeof b, "d11", "metrics.jsonl");
    assert_true(files_equal(a, b));
    path(a, sizeof a, "res", "final_model/model.safetensors"), path(b, sizeof b, "d11", "final_model/model.safetensors");
    assert_true(files_equal(a, b));
    /* another world size: refused (colocated 2 ranks -> 3 ranks) */
    assert_int_equal(train("ws", 2, "rl.steps=2"), 0);
    char log[600];
    snprintf(log, sizeof log, "%s/ws3.log", tmp);
    char cmd[4096];
    snprintf(cmd, sizeof cmd, "%s -np 3 %s train %s run.dir=%s/ws rl.steps=3", g_mpirun, g_bin, common, tmp);
    assert_int_not_equal(sh_run(cmd, log), 0);
    assert_true(file_contains(log, "cannot resume from"));
    assert_true(file_contains(log, "with 3 ranks: 2 ranks wrote it"));
}

/* dist.max_staleness 1: the rollout ranks generate step t with weights version max(0, t - 1) (the
 * learner checks the version of every batch) and receive each version with the learner's hash. */
static void test_staleness_one(void **state) {
    assert_int_equal(train("stale", 3, "rl.steps=4 rl.old_logp=rollout dist.colocated=false dist.learner_ranks=1 "
                                       "dist.rollout_ranks=2 dist.max_staleness=1"),
                     0);
    char run[600], log[800];
    snprintf(run, sizeof run, "%s/stale", tmp);
    for (int rank = 1; rank <= 2; rank++) {
        assert_int_equal(sync_hashes_match(run, rank), 2); /* versions 1 and 2, for steps 2 and 3 (0-based) */
        snprintf(log, sizeof log, "%s/dist/rank_%04d.jsonl", run, rank);
        assert_true(file_contains(log, "\"event\":\"recv\",\"rank\":") );
        char want[64];
        snprintf(want, sizeof want, "\"rank\":%d,\"step\":2,\"version\":1,", rank);
        assert_true(file_contains(log, want));
        snprintf(want, sizeof want, "\"rank\":%d,\"step\":3,\"version\":2,", rank);
        assert_true(file_contains(log, want));
    }
    /* staleness without the behaviour log-probs is refused */
    char cmd[4096];
    snprintf(log, sizeof log, "%s/stale_bad.log", tmp);
    snprintf(cmd, sizeof cmd, "%s train %s run.dir=%s/stale_bad dist.colocated=false dist.max_staleness=1", g_bin, common,
             tmp);
    assert_int_not_equal(sh_run(cmd, log), 0);
    assert_true(file_contains(log, "dist.max_staleness (1) > 0 needs rl.old_logp: rollout"));
}

static void test_bad_split_is_a_clear_error(void **state) {
    char cmd[4096], log[600];
    snprintf(log, sizeof log, "%s/bad.log", tmp);
    snprintf(cmd, sizeof cmd, "%s -np 2 %s train %s run.dir=%s/bad dist.colocated=false dist.learner_ranks=2 "
             "dist.rollout_ranks=1", g_mpirun, g_bin, common, tmp);
    assert_int_not_equal(sh_run(cmd, log), 0);
    assert_true(file_contains(log, "dist.learner_ranks (2) + dist.rollout_ranks (1) must equal the 2 ranks"));
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_one_learner_one_rollout_rank_matches_single_process),
        cmocka_unit_test(test_two_learners_same_update_as_one),
        cmocka_unit_test(test_np4_runs_agree_bit_for_bit),
        cmocka_unit_test(test_per_rank_checkpoints_resume_bit_exact),
        cmocka_unit_test(test_staleness_one),
        cmocka_unit_test(test_bad_split_is_a_clear_error),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
