/* tests/cli/wsync_test_util.h: checks of the BF16 weight sync (trainer/dist_wsync.c) shared by
 * test_dist_wsync.c (CPU, the CISPO_TEST_WSYNC_BF16 hook) and test_dist_gpu.c (two GPUs): hashes in
 * RUN_DIR/dist/rank_NNNN.jsonl against the FP32 parameters of the run's checkpoints and their BF16
 * rounding computed here, and finite metrics. Static functions only; include after cmocka.h and
 * dist_test_util.h. */
#ifndef CISPO_TESTS_WSYNC_TEST_UTIL_H
#define CISPO_TESTS_WSYNC_TEST_UTIL_H

#include <dirent.h>
#include <jansson.h>
#include <stdint.h>
#include <xxhash.h>

#include "kernels/backend.h"
#include "model/model.h"
#include "model/model_config.h"
#include "model/safetensors_internal.h"
#include "trainer/train_ckpt.h"

/* The 16 hex digits after `"xxh3":"` in the first row of RUN/dist/rank_RANK.jsonl that contains
 * `want`; 0 if there is none. */
static inline int wsync_find_hash(const char *run, int rank, const char *want, char hash[17]) {
    char p[900];
    snprintf(p, sizeof p, "%s/dist/rank_%04d.jsonl", run, rank);
    char *s = slurp(p, NULL), *at = s ? strstr(s, want) : NULL;
    const char *h = at ? strstr(at, "\"xxh3\":\"") : NULL;
    int ok = h != NULL;
    if (ok) snprintf(hash, 17, "%.16s", h + 8);
    free(s);
    return ok;
}

/* XXH3 (hex) of the FP32 parameters of checkpoint `dir` (loaded on the CPU in the model's parameter
 * order, as param_mem holds them) and of their BF16 rounding; *n_params gets their number. */
static inline void wsync_ckpt_hashes(const char *dir, char fp32[17], char bf16[17], size_t *n_params) {
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
    *n_params = m.n_params;
    free(b);
    model_free(&m);
    kernel_ctx_free(&ctx);
}

static inline int wsync_cmp_str(const void *a, const void *b) { return strcmp(*(char *const *)a, *(char *const *)b); }

/* RUN/checkpoints/step_* sorted (zero-padded global step numbers; with ckpt.every=1 the last
 * rl.steps entries are the checkpoints after RL steps 1, 2, ..., an earlier one the phase start).
 * Returns how many there are. */
static inline int wsync_ckpt_dirs(const char *run, char out[][1024], int cap) {
    char root[900];
    snprintf(root, sizeof root, "%s/checkpoints", run);
    DIR *dir = opendir(root);
    assert_non_null(dir);
    char *names[64];
    int n = 0;
    for (struct dirent *e; (e = readdir(dir)) != NULL && n < 64;)
        if (!strncmp(e->d_name, "step_", 5)) names[n++] = strdup(e->d_name);
    closedir(dir);
    qsort(names, (size_t)n, sizeof names[0], wsync_cmp_str);
    for (int i = 0; i < n; i++) {
        if (i < cap) snprintf(out[i], 1024, "%s/%.100s", root, names[i]);
        free(names[i]);
    }
    return n;
}

/* Versions 1..n_versions of a run of rl_steps steps with ckpt.every=1 (k = dist.max_staleness;
 * version v is needed by step v + k and moves after the batch of step v + k - 1): rank 0 logged
 * "wsend" with the BF16 hash of the checkpoint after step v, every rollout rank in [r0, r1] logged
 * "recv" with the same hash, and rank 0's "update" row of version v has the checkpoint's FP32 hash.
 * Returns n_params. */
static inline size_t wsync_check_versions(const char *run, int rl_steps, int n_versions, int k, int r0, int r1) {
    char dirs[16][1024];
    int nd = wsync_ckpt_dirs(run, dirs, 16), base = nd - rl_steps;
    assert_true(nd <= 16 && base >= 0 && n_versions <= rl_steps);
    size_t n_params = 0;
    for (int v = 1; v <= n_versions; v++) {
        char want[200], sent[17], got[17], upd[17], fp32[17], bf16[17];
        snprintf(want, sizeof want, "\"event\":\"wsend\",\"rank\":0,\"step\":%d,\"version\":%d,", v + k, v);
        assert_true(wsync_find_hash(run, 0, want, sent));
        snprintf(want, sizeof want, "\"event\":\"update\",\"rank\":0,\"step\":%d,\"version\":%d,", v, v);
        assert_true(wsync_find_hash(run, 0, want, upd));
        wsync_ckpt_hashes(dirs[base + v - 1], fp32, bf16, &n_params);
        fprintf(stderr, "version %d: fp32 %s (update row %s), bf16 %s (sent %s)\n", v, fp32, upd, bf16, sent);
        assert_string_equal(upd, fp32); /* the checkpoint holds the learner's weights of version v */
        assert_string_equal(sent, bf16); /* rank 0 sent their BF16 rounding */
        assert_string_not_equal(bf16, fp32);
        for (int r = r0; r <= r1; r++) { /* and each rollout rank holds exactly that */
            snprintf(want, sizeof want, "\"event\":\"recv\",\"rank\":%d,\"step\":%d,\"version\":%d,", r, v + k, v);
            assert_true(wsync_find_hash(run, r, want, got));
            assert_string_equal(got, sent);
        }
    }
    return n_params;
}

/* Every row of RUN/metrics.jsonl has a finite reward_mean, and loss / grad_norm finite where
 * present; at least one row has a loss; `steps` rows. Rank 0's timing.jsonl row 1 has the weight
 * sync: seconds > 0 and `want_bytes` bytes (when > 0). */
static inline void wsync_check_metrics(const char *run, int steps, double want_bytes) {
    char p[900];
    snprintf(p, sizeof p, "%s/metrics.jsonl", run);
    char *s = slurp(p, NULL);
    assert_non_null(s);
    int rows = 0, losses = 0;
    for (char *line = strtok(s, "\n"); line; line = strtok(NULL, "\n"), rows++) {
        json_t *o = json_loads(line, 0, NULL);
        assert_non_null(o);
        json_t *rw = json_object_get(o, "reward_mean");
        assert_true(json_is_number(rw) && isfinite(json_number_value(rw)));
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
    snprintf(p, sizeof p, "%s/timing.jsonl", run);
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

#endif
