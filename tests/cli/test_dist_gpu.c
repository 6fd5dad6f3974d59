/* tests/cli/test_dist_gpu.c: `cispo train run.backend=cuda` under mpirun on two GPUs (trainer/dist.h,
 * trainer/dist_wsync.c), on the tiny model of test_dist.c warm-started by a short CPU SFT.
 * labels: gpu mpi
 *
 * - 1 learner + 1 rollout rank, 3 steps, a checkpoint every step: after every sync the rollout rank
 *   holds BF16(learner weights): the hash it logged for version v equals rank 0's "wsend" hash, and
 *   both equal XXH3 of the BF16 rounding (model/safetensors.c's st_f32_to_bf16, on the host) of the
 *   FP32 parameters of the step-v checkpoint, whose own XXH3 is rank 0's "update" hash; every
 *   metrics row is finite, and timing.jsonl has the weight-sync seconds and bytes;
 * - the same with dist.max_staleness 1 (4 steps): versions 1 and 2 arrive for steps 2 and 3;
 * - 2 colocated ranks (run.precision fp32, NCCL gradient all-reduce) give the same first update as
 *   one process on the same global batch: loss and gradient norm within 1e-3 relative, no weight
 *   moved by more than 2.5e-4, at most 0.5% of the weights differ by more than 1e-6 (AdamW's first
 *   step moves every weight by about lr times a sign; float atomics and the summation order only
 *   flip signs where a gradient is within rounding of zero).
 * Runs with CISPO_BINARY_DIR's cispo and MPIEXEC (default mpirun), NCCL_NVLS_ENABLE=0. Without a
 * CISPO_CUDA build or with fewer than two GPUs it prints "skipped" and passes, unless
 * CISPO_REQUIRE_GPU=1.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "tests/cli/dist_test_util.h"
#include "tests/test_tmpdir.h"

#ifdef CISPO_HAVE_CUDA
#include <cuda_runtime.h>

#include "tests/cli/wsync_test_util.h"

static char tmp[400], common[2048];

static int train(const char *name, int np, const char *extra) {
    char cmd[4096], log[600];
    snprintf(log, sizeof log, "%s/%s.log", tmp, name);
    if (np > 0)
        snprintf(cmd, sizeof cmd, "%s -x NCCL_NVLS_ENABLE=0 -np %d %s train %s run.dir=%s/%s %s", g_mpirun, np, g_bin,
                 common, tmp, name, extra);
    else
        snprintf(cmd, sizeof cmd, "%s train %s run.dir=%s/%s %s", g_bin, common, tmp, name, extra);
    double t0 = now_s();
    int st = sh_run(cmd, log);
    fprintf(stderr, "%s: exit %d in %.1f s\n", name, st, now_s() - t0);
    if (st != 0) print_tail(log);
    return st;
}

static int setup(void **state) {
    dist_paths();
    if (tmpdir_make(tmp, sizeof tmp, "cispo_dist_gpu") != 0) return -1;
    const char *model = "model.hidden_size=32 model.intermediate_size=32 model.num_layers=2 model.full_attn_every=2 "
                        "model.head_dim=8 model.block_size=4 model.num_experts=1 model.experts_per_tok=1 "
                        "rollout.max_new_tokens=24 data.difficulty_max=4 run.log_level=warn "
                        "data.eval_size=4 eval.samples=2";
    char cmd[4096], log[600];
    snprintf(log, sizeof log, "%s/sft.log", tmp);
    snprintf(cmd, sizeof cmd, "%s sft %s run.threads=1 sft.steps=150 sft.batch_size=8 sft.lr=3e-3 run.dir=%s/sft", g_bin,
             model, tmp);
    if (sh_run(cmd, log) != 0) {
        print_tail(log);
        return -1;
    }
    snprintf(common, sizeof common,
             "%s model.path=%s/sft/sft_model rl.sft_first=false rl.prompts_per_step=4 rl.group_size=4 "
             "rl.minibatches=2 rl.max_gen_batches=2 run.backend=cuda",
             model, tmp);
    return 0;
}

static int teardown(void **state) {
    tmpdir_remove(tmp);
    return 0;
}

static void test_rollout_rank_holds_bf16_of_learner_weights(void **state) {
    assert_int_equal(train("g11", 2, "rl.steps=3 ckpt.every=1 ckpt.keep_last=10 dist.colocated=false "
                                     "dist.learner_ranks=1 dist.rollout_ranks=1"), 0);
    char run[600];
    snprintf(run, sizeof run, "%s/g11", tmp);
    size_t n_params = wsync_check_versions(run, 3, 2, 0, 1, 1); /* step 3's update has no later rollout */
    wsync_check_metrics(run, 3, 2.0 * n_params);
}

static void test_staleness_one_on_gpus(void **state) {
    assert_int_equal(train("g11s", 2, "rl.steps=4 ckpt.every=1 ckpt.keep_last=10 rl.old_logp=rollout "
                                      "dist.colocated=false dist.learner_ranks=1 dist.rollout_ranks=1 "
                                      "dist.max_staleness=1"), 0);
    char run[600], h[17];
    snprintf(run, sizeof run, "%s/g11s", tmp);
    wsync_check_versions(run, 4, 2, 1, 1, 1); /* versions 1 and 2 for steps 2 and 3 (0-based) */
    assert_false(wsync_find_hash(run, 1, "\"event\":\"recv\",\"rank\":1,\"step\":4,", h)); /* none needs 3 */
    wsync_check_metrics(run, 4, 0);
}

static void test_colocated_two_gpus_same_update_as_one(void **state) {
    assert_int_equal(train("one", 0, "rl.steps=1 run.precision=fp32"), 0);
    assert_int_equal(train("c2", 2, "rl.steps=1 run.precision=fp32"), 0);
    char a[800], b[800];
    double max_abs = 0;
    long n_diff = 0, n_all = 0;
    snprintf(a, sizeof a, "%s/one/final_model/model.safetensors", tmp);
    snprintf(b, sizeof b, "%s/c2/final_model/model.safetensors", tmp);
    assert_int_equal(safetensors_diff(a, b, 1e-6, &max_abs, &n_diff, &n_all), 0);
    fprintf(stderr, "c2 vs one: max |dw| %.3g, %ld of %ld weights differ by > 1e-6\n", max_abs, n_diff, n_all);
    assert_true(max_abs <= 2.5e-4);
    assert_true(n_diff * 200 <= n_all);
    snprintf(a, sizeof a, "%s/one/metrics.jsonl", tmp);
    snprintf(b, sizeof b, "%s/c2/metrics.jsonl", tmp);
    char *x = slurp(a, NULL), *y = slurp(b, NULL);
    assert_non_null(x), assert_non_null(y);
    const char *keys[] = {"\"loss\":", "\"grad_norm\":"};
    for (int k = 0; k < 2; k++) {
        const char *px = strstr(x, keys[k]), *py = strstr(y, keys[k]);
        assert_non_null(px), assert_non_null(py);
        double u = atof(px + strlen(keys[k])), v = atof(py + strlen(keys[k]));
        fprintf(stderr, "  %s %.9g vs %.9g\n", keys[k], u, v);
        assert_true(u != 0 && isfinite(u));
        assert_true(fabs(u - v) <= 1e-3 * fabs(u));
    }
    free(x), free(y);
}

int main(void) {
    int ndev = 0;
    if (cudaGetDeviceCount(&ndev) != cudaSuccess) ndev = 0;
    if (ndev < 2) {
        const char *req = getenv("CISPO_REQUIRE_GPU");
        if (req && !strcmp(req, "1")) {
            fprintf(stderr, "test_dist_gpu: %d GPU(s), needs 2, and CISPO_REQUIRE_GPU=1\n", ndev);
            return 1;
        }
        printf("test_dist_gpu: skipped: %d GPU(s); needs 2\n", ndev);
        return 0;
    }
    setenv("NCCL_NVLS_ENABLE", "0", 1);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_rollout_rank_holds_bf16_of_learner_weights),
        cmocka_unit_test(test_staleness_one_on_gpus),
        cmocka_unit_test(test_colocated_two_gpus_same_update_as_one),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}

#else

int main(void) {
    const char *req = getenv("CISPO_REQUIRE_GPU");
    if (req && !strcmp(req, "1")) {
        fprintf(stderr, "test_dist_gpu: built without -DCISPO_CUDA=ON and CISPO_REQUIRE_GPU=1\n");
        return 1;
    }
    printf("test_dist_gpu: skipped: built without -DCISPO_CUDA=ON\n");
    return 0;
}

#endif
