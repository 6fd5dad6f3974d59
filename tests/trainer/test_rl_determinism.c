/* tests/trainer/test_rl_determinism.c: the same config and seed give byte-identical
 * metrics.jsonl (SFT then RL, with dynamic sampling, mini-batches and every loss type), and a
 * different seed gives a different file. Also the dynamic-sampling filter on hand-made groups.
 * labels: unit
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <cmocka.h>

#include "../test_tmpdir.h"

#include "core/error.h"
#include "core/log.h"
#include "trainer/dynamic_sampling.h"
#include "trainer/rl.h"
#include "trainer/sft.h"

static char tmpdir[128];

static char *slurp(const char *path, long *len) {
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    fseek(f, 0, SEEK_END);
    *len = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *buf = malloc((size_t)*len + 1);
    if (fread(buf, 1, (size_t)*len, f) != (size_t)*len) *len = -1;
    buf[*len > 0 ? *len : 0] = '\0';
    fclose(f);
    return buf;
}

/* A tiny run: 2-layer hybrid, 200 SFT steps, 4 RL steps of 4 prompts x 4. */
static char *run_once(const char *name, const char *algo, long long seed, long *len) {
    char dir[256], seed_kv[64], dir_kv[300], algo_kv[64];
    snprintf(dir, sizeof dir, "%s/%s", tmpdir, name);
    snprintf(dir_kv, sizeof dir_kv, "run.dir=%s", dir);
    snprintf(seed_kv, sizeof seed_kv, "run.seed=%lld", seed);
    snprintf(algo_kv, sizeof algo_kv, "rl.algo=%s", algo);
    char *ov[] = {dir_kv, seed_kv, algo_kv, "model.hidden_size=32", "model.intermediate_size=32", "model.num_layers=2",
                  "model.full_attn_every=2", "model.head_dim=8", "model.block_size=4", "sft.steps=200", "sft.lr=3e-3",
                  "sft.batch_size=8", "rl.steps=4", "rl.prompts_per_step=4", "rl.group_size=4", "rl.minibatches=2",
                  "rl.max_gen_batches=2", "data.eval_size=8", "rollout.max_new_tokens=24", "data.difficulty_max=4"};
    RunConfig rc;
    assert_int_equal(run_config_load(&rc, NULL, (int)(sizeof ov / sizeof ov[0]), ov), 0);
    Run r;
    int err = run_open(&r, &rc, NULL, 1);
    if (err) fprintf(stderr, "%s\n", err_msg());
    assert_int_equal(err, 0);
    SftResult sr;
    RlResult rr;
    assert_int_equal(sft_run(&r, &sr, NULL), 0);
    assert_int_equal(rl_run(&r, &rr, NULL), 0);
    run_close(&r);
    char path[400];
    snprintf(path, sizeof path, "%s/metrics.jsonl", dir);
    char *buf = slurp(path, len);
    assert_non_null(buf);
    assert_true(*len > 0);
    return buf;
}

static void same_seed_same_bytes(const char *algo) {
    long la, lb, lc;
    char na[64], nb[64], nc[64];
    snprintf(na, sizeof na, "%s_a", algo);
    snprintf(nb, sizeof nb, "%s_b", algo);
    snprintf(nc, sizeof nc, "%s_c", algo);
    char *a = run_once(na, algo, 7, &la), *b = run_once(nb, algo, 7, &lb), *c = run_once(nc, algo, 8, &lc);
    assert_int_equal(la, lb);
    assert_memory_equal(a, b, (size_t)la);
    assert_true(la != lc || memcmp(a, c, (size_t)la) != 0);
    /* 4 lines, one per step, each with the DESIGN.md keys */
    int lines = 0;
    for (long i = 0; i < la; i++) lines += a[i] == '\n';
    assert_int_equal(lines, 4);
    assert_non_null(strstr(a, "\"reward_mean\""));
    assert_non_null(strstr(a, "\"gen_ppl\""));
    assert_non_null(strstr(a, "\"clip_frac\""));
    assert_non_null(strstr(a, "\"mismatch_corr\""));
    /* the learner ran: some step kept groups and applied updates */
    int updated = 0;
    for (const char *p = strstr(a, "\"updates\":"); p; p = strstr(p + 1, "\"updates\":")) updated |= atoi(p + 10) > 0;
    assert_true(updated);
    free(a);
    free(b);
    free(c);
}

static void test_cispo_deterministic(void **state) { (void)state; same_seed_same_bytes("cispo"); }
static void test_grpo_deterministic(void **state) { (void)state; same_seed_same_bytes("grpo"); }
static void test_dapo_deterministic(void **state) { (void)state; same_seed_same_bytes("dapo"); }

static void test_dynamic_sampling_filter(void **state) {
    (void)state;
    const float r[] = {1, 1, 1, /* all equal: dropped */ 0, 1, 0, /* kept */ 0, 0, 0, /* dropped */
                       -0.5f, -0.5f, 1, /* kept */ 1, 0, 1 /* kept, unless the batch is full */};
    int keep[5];
    assert_int_equal(dynamic_sampling_filter(r, 5, 3, 1, 10, keep), 3);
    int want[5] = {0, 1, 0, 1, 1};
    assert_memory_equal(keep, want, sizeof want);
    assert_int_equal(dynamic_sampling_filter(r, 5, 3, 1, 2, keep), 2); /* room for two */
    assert_int_equal(keep[4], 0);
    assert_int_equal(dynamic_sampling_filter(r, 5, 3, 0, 10, keep), 5); /* filter off */
    const float one[] = {0.3f};
    assert_int_equal(dynamic_sampling_filter(one, 1, 1, 1, 10, keep), 0); /* a group of one carries no signal */
}

static int setup(void **state) {
    (void)state;
    log_set_level(LOG_WARN);
    return tmpdir_make(tmpdir, sizeof tmpdir, "cispo_test_rl");
}

static int teardown(void **state) {
    (void)state;
    return tmpdir_remove(tmpdir);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_dynamic_sampling_filter),
        cmocka_unit_test(test_cispo_deterministic),
        cmocka_unit_test(test_grpo_deterministic),
        cmocka_unit_test(test_dapo_deterministic),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
