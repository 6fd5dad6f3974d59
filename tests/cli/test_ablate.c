/* tests/cli/test_ablate.c: `cispo ablate` at toy scale through the real binary (2 algorithms x
 * 2 seeds, 4 RL steps, --jobs 2): one shared SFT base model, one run directory per (algo, seed)
 * whose config names that algo, seed and the base model; ablation.csv with a header and one row per
 * evaluation (steps 0, 2, 4 for every run, pass@1 in [0, 1]); ablation.md with a row per algorithm
 * and the CISPO/DAPO ratio line; ablation.png when python3 has matplotlib. Runs of the same seed see
 * the same first training batch (same data order): their step-1 response counts before dynamic
 * sampling agree. A second invocation reuses the base model and the finished runs (their
 * metrics.jsonl unchanged); one with a changed SFT setting is refused with the key named. Bad flags
 * exit with status 2.
 * labels: unit
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>
#include <cmocka.h>

#include "../test_tmpdir.h"

static char tmp[128], bin[600];

static int run_ablate(const char *extra, const char *log_name) {
    char dir_kv[300];
    snprintf(dir_kv, sizeof dir_kv, "run.dir=%s/abl", tmp);
    const char *argv[] = {bin, "ablate", "--algos", "cispo,dapo", "--seeds", "2", "--jobs", "2", "--eval-every", "2",
                          "model.hidden_size=32", "model.intermediate_size=32", "model.num_layers=2",
                          "model.full_attn_every=2", "model.head_dim=8", "model.block_size=4", "sft.steps=60",
                          "sft.batch_size=8", "sft.lr=3e-3", "rl.prompts_per_step=4", "rl.group_size=4",
                          "rl.minibatches=4", "rl.max_gen_batches=2", "data.eval_size=8", "rollout.max_new_tokens=24",
                          "data.difficulty_max=4", "rl.steps=4", "ckpt.every=0", "run.log_level=warn", dir_kv, extra,
                          NULL};
    pid_t pid = fork();
    if (pid == 0) {
        char log[300];
        snprintf(log, sizeof log, "%s/%s", tmp, log_name);
        if (!freopen(log, "w", stdout) || dup2(fileno(stdout), 2) < 0) _exit(126);
        execv(bin, (char *const *)argv);
        _exit(127);
    }
    int st;
    waitpid(pid, &st, 0);
    return WIFEXITED(st) ? WEXITSTATUS(st) : 128;
}

/* tmp/rel/name */
static char *slurp(const char *rel, const char *name) {
    char path[400];
    snprintf(path, sizeof path, "%s/%s%s%s", tmp, rel, name[0] ? "/" : "", name);
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    char *b = calloc(1 << 20, 1);
    size_t n = fread(b, 1, (1 << 20) - 1, f);
    b[n] = '\0';
    fclose(f);
    return b;
}

/* The value text after "key": on the first line of s ("" when absent). */
static void first_value(const char *s, const char *key, char *out, size_t cap) {
    char want[64];
    snprintf(want, sizeof want, "\"%s\":", key);
    const char *k = strstr(s, want);
    out[0] = '\0';
    if (k) snprintf(out, cap, "%.*s", (int)strcspn(k + strlen(want), ",}"), k + strlen(want));
}

static void test_ablate_toy(void **st) {
    (void)st;
    assert_int_equal(run_ablate("rl.adv_eps=1e-6", "out1.log"), 0);
    char *csv = slurp("abl/ablation.csv", "");
    assert_non_null(csv);
    assert_true(!strncmp(csv, "algo,seed,step,pass1,passk\n", 27));
    int rows = 0;
    char *save = NULL;
    for (char *line = strtok_r(csv + 27, "\n", &save); line; line = strtok_r(NULL, "\n", &save), rows++) {
        char algo[16];
        long long seed;
        int step;
        double p1, pk;
        assert_int_equal(sscanf(line, "%15[a-z],%lld,%d,%lf,%lf", algo, &seed, &step, &p1, &pk), 5);
        assert_true(!strcmp(algo, "cispo") || !strcmp(algo, "dapo"));
        assert_true(seed == 1 || seed == 2);
        assert_int_equal(step, 2 * (rows % 3));
        assert_true(p1 >= 0 && p1 <= 1 && pk >= p1);
    }
    assert_int_equal(rows, 2 * 2 * 3);
    char *md = slurp("abl/ablation.md", "");
    assert_non_null(md);
    assert_non_null(strstr(md, "| algo | runs | reached target |"));
    assert_non_null(strstr(md, "| cispo | 2 | "));
    assert_non_null(strstr(md, "| dapo | 2 | "));
    assert_non_null(strstr(md, "CISPO/DAPO step ratio"));
    assert_non_null(strstr(md, "mean final pass@1 of DAPO"));
    /* one base model, named by every run's config */
    char *cfg = slurp("abl/runs/dapo_s2", "config.yaml");
    assert_non_null(cfg);
    assert_non_null(strstr(cfg, "algo: dapo"));
    assert_non_null(strstr(cfg, "seed: 2"));
    assert_non_null(strstr(cfg, "/abl/base_model"));
    assert_non_null(strstr(cfg, "sft_first: false"));
    /* same seed, same first batch: the step-1 prompts are the same problems for both algorithms */
    char *mc = slurp("abl/runs/cispo_s1", "metrics.jsonl"), *md1 = slurp("abl/runs/dapo_s1", "metrics.jsonl");
    char a[64], b[64];
    first_value(mc, "reward_mean", a, sizeof a);
    first_value(md1, "reward_mean", b, sizeof b);
    assert_string_equal(a, b); /* same weights, same draws before the first update */
    if (system("python3 -c 'import matplotlib' 2>/dev/null || /usr/bin/python3 -c 'import matplotlib' 2>/dev/null") == 0) {
        char *png = slurp("abl/ablation.png", "");
        assert_non_null(png);
        assert_true(!memcmp(png, "\x89PNG", 4));
        free(png);
    } else {
        fprintf(stderr, "python3 without matplotlib: plot not checked\n");
    }
    /* a second call reuses the base model and the four finished runs */
    assert_int_equal(run_ablate("rl.adv_eps=1e-6", "out2.log"), 0);
    char *out2 = slurp("out2.log", ""), *mc2 = slurp("abl/runs/cispo_s1", "metrics.jsonl");
    assert_null(strstr(out2, "SFT base model:")); /* no second SFT */
    assert_non_null(strstr(out2, "CISPO/DAPO step ratio"));
    assert_string_equal(mc, mc2);
    /* a different SFT setting cannot reuse the base model */
    assert_int_equal(run_ablate("sft.lr=1e-3", "out3.log"), 1);
    char *out3 = slurp("out3.log", "");
    assert_non_null(strstr(out3, "sft.lr: checkpoint 0.003, now 0.001"));
    free(out2), free(out3), free(mc2), free(mc), free(md1), free(cfg), free(md), free(csv);
}

static void test_bad_flags(void **st) {
    (void)st;
    assert_int_equal(run_ablate("--algos=x", "bad.log"), 2);
    char *log = slurp("bad.log", "");
    assert_non_null(strstr(log, "unknown or incomplete option"));
    free(log);
}

int main(void) {
    const char *bdir = getenv("CISPO_BINARY_DIR");
    snprintf(bin, sizeof bin, "%s/cispo", bdir ? bdir : "build");
    if (tmpdir_make(tmp, sizeof tmp, "cispo_ablate") != 0) return 1;
    const struct CMUnitTest tests[] = {cmocka_unit_test(test_ablate_toy), cmocka_unit_test(test_bad_flags)};
    int rc = cmocka_run_group_tests(tests, NULL, NULL);
    tmpdir_remove(tmp);
    return rc;
}
