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
#include <dirent.h>
#include <jansson.h>
#include <xxhash.h>

#include "tests/cli/dist_test_util.h"
#include "tests/test_tmpdir.h"

#ifdef CISPO_HAVE_CUDA
#include <cuda_runtime.h>

#include "kernels/backend.h"
#include "model/model.h"
#include "model/model_config.h"
#include "model/safetensors_internal.h"
#include "trainer/train_ckpt.h"

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

/* The 16 hex digits after `"xxh3":"` in the row of `rank`'s log that contains `want`; 0 if none. */
static int find_hash(const char *run, int rank, const char *want, char hash[17]) {
    char p[800];
    snprintf(p, sizeof p, "%s/%s/dist/rank_%04d.jsonl", tmp, run, rank);
    char *s = slurp(p, NULL), *at = s ? strstr(s, want) : NULL;
    const char *h = at ? strstr(at, "\"xxh3\":\"") : NULL;
    int ok = h != NULL;
    if (ok) snprintf(hash, 17, "%.16s", h + 8);
    free(s);
    return ok;
}

/* XXH3 of the FP32 parameters of checkpoint `dir` and of their BF16 rounding, as hex. */
static void ckpt_hashes(const char *dir, char fp32[17], char bf16[17]) {
    char cfgp[1024];
    assert_true(snprintf(cfgp, sizeof cfgp, "%s/config.json", dir) < (int)sizeof cfgp);
    ModelConfig cfg;
    assert_int_equal(model_config_load_hf(&cfg, cfgp), 0);
    KernelCtx ctx;
    kernel_ctx_init(&ctx, kernels_cpu(), model_ws_bytes(&cfg, kernels_cpu(), 16));
    Model m;
    assert_int_equal(model_init(&m, &cfg, &ctx, 16, 1), 0);
    assert_int_equal(train_ckpt_load_params(dir, &ctx, &m), 0);
    const float *w = m.param_mem;
    uint16_t *b = malloc(m.n_params * sizeof(uint16_t));
    for (size_t i = 0; i < m.n_params; i++) b[i] = st_f32_to_bf16(w[i]);
    snprintf(fp32, 17, "%016llx", (unsigned long long)XXH3_64bits(w, m.n_params * sizeof(float)));
    snprintf(bf16, 17, "%016llx", (unsigned long long)XXH3_64bits(b, m.n_params * sizeof(uint16_t)));
    free(b);
    model_free(&m);
    kernel_ctx_free(&ctx);
}

static int cmp_str(const void *a, const void *b) { return strcmp(*(char *const *)a, *(char *const *)b); }

/* The run's checkpoint directories (checkpoints/step_*), sorted: entry i is after RL step i + 1. */
static int ckpt_dirs(const char *run, char out[][900], int cap) {
    char root[800];
    snprintf(root, sizeof root, "%s/%s/checkpoints", tmp, run);
    DIR *dir = opendir(root);
    assert_non_null(dir);
    char *names[64];
    int n = 0;
    for (struct dirent *e; (e = readdir(dir)) != NULL && n < 64;)
        if (!strncmp(e->d_name, "step_", 5)) names[n++] = strdup(e->d_name);
    closedir(dir);
    qsort(names, (size_t)n, sizeof names[0], cmp_str);
    for (int i = 0; i < n; i++) {
        if (i < cap) snprintf(out[i], 900, "%s/%s", root, names[i]);
        free(names[i]);
    }
    return n;
}

/* Every row of metrics.jsonl has a finite reward_mean, and loss / grad_norm finite where present;
 * at least one row has a loss. timing.jsonl's first row has weight_sync_s > 0 and its bytes. */
static void check_metrics(const char *run, int steps, double want_bytes) {
    char p[800];
    snprintf(p, sizeof p, "%s/%s/metrics.jsonl", tmp, run);
    char *s = slurp(p, NULL);
    assert_non_null(s);
    int rows = 0, losses = 0;
    for (char *line = strtok(s, "\n"); line; line = strtok(NULL, "\n"), rows++) {
        json_t *o = json_loads(line, 0, NULL);
        assert_non_null(o);
        assert_true(json_is_number(json_object_get(o, "reward_mean")));
        assert_true(isfinite(json_number_value(json_object_get(o, "reward_mean"))));
        const char *keys[] = {"loss", "grad_norm"};
        for (int k = 0; k < 2; k++) {
            json_t *v = json_object_get(o, keys[k]);
            if (json_is_number(v)) assert_true(isfinite(json_number_value(v)));
            losses += k == 0 && json_is_number(v);
        }
        json_decref(o);
    }
    free(s);
    assert_int_equal(rows, steps);
    assert_true(losses > 0);
    snprintf(p, sizeof p, "%s/%s/timing.jsonl", tmp, run);
    s = slurp(p, NULL);
    assert_non_null(s);
    json_t *o = json_loads(strtok(s, "\n"), 0, NULL);
    assert_non_null(o);
    double sync_s = json_number_value(json_object_get(o, "weight_sync_s"));
    double sync_b = json_number_value(json_object_get(o, "weight_sync_bytes"));
    fprintf(stderr, "%s: step 1 weight sync %.3f ms, %.0f bytes\n", run, sync_s * 1e3, sync_b);
    assert_true(sync_s > 0);
    if (want_bytes > 0) assert_true(sync_b == want_bytes);
    json_decref(o);
    free(s);
}

static void test_rollout_rank_holds_bf16_of_learner_weights(void **state) {
    assert_int_equal(train("g11", 2, "rl.steps=3 ckpt.every=1 ckpt.keep_last=10 dist.colocated=false "
                                     "dist.learner_ranks=1 dist.rollout_ranks=1"), 0);
    char dirs[8][900];
    assert_int_equal(ckpt_dirs("g11", dirs, 8), 3);
    for (int v = 1; v <= 2; v++) { /* versions 1 and 2 (step 3's update has no later rollout) */
        char want[200], sent[17], got[17], upd[17], fp32[17], bf16[17];
        snprintf(want, sizeof want, "\"event\":\"wsend\",\"rank\":0,\"step\":%d,\"version\":%d,", v, v);
        assert_true(find_hash("g11", 0, want, sent));
        snprintf(want, sizeof want, "\"event\":\"recv\",\"rank\":1,\"step\":%d,\"version\":%d,", v, v);
        assert_true(find_hash("g11", 1, want, got));
        snprintf(want, sizeof want, "\"event\":\"update\",\"rank\":0,\"step\":%d,\"version\":%d,", v, v);
        assert_true(find_hash("g11", 0, want, upd));
        ckpt_hashes(dirs[v - 1], fp32, bf16);
        fprintf(stderr, "version %d: fp32 %s (update %s), bf16 %s (sent %s, received %s)\n", v, fp32, upd, bf16, sent,
                got);
        assert_string_equal(upd, fp32);  /* the checkpoint holds the learner's weights of version v */
        assert_string_equal(sent, bf16); /* rank 0 sent their BF16 rounding (device kernel = host reference) */
        assert_string_equal(got, sent);  /* and the rollout rank holds exactly that */
        assert_string_not_equal(bf16, fp32);
    }
    check_metrics("g11", 3, 0);
}

static void test_staleness_one_on_gpus(void **state) {
    assert_int_equal(train("g11s", 2, "rl.steps=4 rl.old_logp=rollout dist.colocated=false dist.learner_ranks=1 "
                                      "dist.rollout_ranks=1 dist.max_staleness=1"), 0);
    for (int v = 1; v <= 2; v++) { /* version v generates step v + 1 (0-based), received after batch v */
        char want[200], sent[17], got[17];
        snprintf(want, sizeof want, "\"event\":\"wsend\",\"rank\":0,\"step\":%d,\"version\":%d,", v + 1, v);
        assert_true(find_hash("g11s", 0, want, sent));
        snprintf(want, sizeof want, "\"event\":\"recv\",\"rank\":1,\"step\":%d,\"version\":%d,", v + 1, v);
        assert_true(find_hash("g11s", 1, want, got));
        assert_string_equal(got, sent);
    }
    char want[100], h[17];
    snprintf(want, sizeof want, "\"event\":\"recv\",\"rank\":1,\"step\":4,"); /* no version 3: nothing needs it */
    assert_false(find_hash("g11s", 1, want, h));
    check_metrics("g11s", 4, 0);
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
