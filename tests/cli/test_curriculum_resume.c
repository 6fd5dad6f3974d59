/* tests/cli/test_curriculum_resume.c: the curricula wired into `cispo train`, through the real
 * binary. A run with the output-budget controller (stages 12, 16, 24 tokens), a two-family mixture
 * schedule, difficulty levels and the pass-rate filter (with a table small enough to evict) must
 *   - log every budget transition in metrics.jsonl, exactly where the criteria allow (steps 3 and 6
 *     with min_stage_steps 3 and an always-true plateau test), with the step's budget as "budget";
 *   - record held-out pass@1 in the metrics line every rl.eval_every steps;
 *   - resume bit for bit: stopped after 7 RL steps (mid-stage, the controller's and the curriculum's
 *     state read back from the checkpoint) and resumed to 10, its metrics.jsonl equals a straight run's;
 * and a stage above rollout.max_new_tokens is refused with the key named.
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

static const char *common[] = {
    "model.hidden_size=32", "model.intermediate_size=32", "model.num_layers=2", "model.full_attn_every=2",
    "model.head_dim=8", "model.block_size=4", "sft.steps=100", "sft.batch_size=8", "sft.lr=3e-3",
    "rl.prompts_per_step=4", "rl.group_size=4", "rl.minibatches=2", "rl.max_gen_batches=2", "data.eval_size=8",
    "rollout.max_new_tokens=24", "data.tasks=runsum,add", "data.difficulty_min=3", "data.difficulty_max=4",
    "ckpt.every=5", "run.threads=1", "run.log_level=warn", "rl.eval_every=4",
    "curriculum.budget_stages=12,16,24", "curriculum.ppl_window=1", "curriculum.ppl_tol=1e6",
    "curriculum.p99_frac=0", "curriculum.min_stage_steps=3", "curriculum.mix_start=1,0", "curriculum.mix_end=1,1",
    "curriculum.mix_steps=6", "curriculum.difficulty_window=1", "curriculum.master_rate=0",
    "curriculum.master_samples=24", "curriculum.pass_filter=true", "curriculum.pass_min_samples=4",
    "curriculum.pass_capacity=16"};
enum { N_COMMON = sizeof common / sizeof common[0] };

static int run(const char *name, int rl_steps, const char *extra, int quiet_err) {
    char dir_kv[300], steps_kv[64];
    snprintf(dir_kv, sizeof dir_kv, "run.dir=%s/%s", tmp, name);
    snprintf(steps_kv, sizeof steps_kv, "rl.steps=%d", rl_steps);
    const char *argv[80];
    int n = 0;
    argv[n++] = bin;
    argv[n++] = "train";
    for (int i = 0; i < N_COMMON; i++) argv[n++] = common[i];
    argv[n++] = dir_kv;
    argv[n++] = steps_kv;
    if (extra) argv[n++] = extra;
    argv[n] = NULL;
    pid_t pid = fork();
    if (pid == 0) {
        char log[400];
        snprintf(log, sizeof log, "%s/%s.log", tmp, name);
        if (!freopen("/dev/null", "w", stdout)) _exit(126);
        if (quiet_err && !freopen(log, "w", stderr)) _exit(126);
        execv(bin, (char *const *)argv);
        _exit(127);
    }
    int st;
    waitpid(pid, &st, 0);
    return WIFEXITED(st) ? WEXITSTATUS(st) : 128;
}

static char *slurp(const char *path, long *len) {
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    fseek(f, 0, SEEK_END);
    *len = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *b = calloc((size_t)*len + 1, 1);
    if (fread(b, 1, (size_t)*len, f) != (size_t)*len) *len = -1;
    fclose(f);
    return b;
}

/* Integer value of "key": on line `line` (1-based) of text; -1 if absent. */
static long key_on_line(const char *text, int line, const char *key) {
    const char *p = text;
    for (int i = 1; i < line && p; i++) p = strchr(p, '\n'), p = p ? p + 1 : NULL;
    if (!p) return -1;
    const char *end = strchr(p, '\n');
    char want[80];
    snprintf(want, sizeof want, "\"%s\":", key);
    const char *k = strstr(p, want);
    if (!k || (end && k > end)) return -1;
    return strtol(k + strlen(want), NULL, 10);
}

static void test_transitions_and_resume(void **st) {
    (void)st;
    assert_int_equal(run("straight", 10, NULL, 0), 0);
    assert_int_equal(run("resumed", 7, NULL, 0), 0);
    assert_int_equal(run("resumed", 10, NULL, 0), 0); /* --resume auto from the step-7 checkpoint */
    char pa[400], pb[400];
    long la, lb;
    snprintf(pa, sizeof pa, "%s/straight/metrics.jsonl", tmp);
    snprintf(pb, sizeof pb, "%s/resumed/metrics.jsonl", tmp);
    char *a = slurp(pa, &la), *b = slurp(pb, &lb);
    assert_non_null(a);
    assert_non_null(b);
    assert_int_equal(la, lb);
    assert_memory_equal(a, b, (size_t)la);
    static const long budget[10] = {12, 12, 12, 16, 16, 16, 24, 24, 24, 24};
    for (int s = 1; s <= 10; s++) {
        assert_int_equal(key_on_line(a, s, "step"), s);
        assert_int_equal(key_on_line(a, s, "budget"), budget[s - 1]);
        assert_int_equal(key_on_line(a, s, "budget_transition"), s == 3 || s == 6);
        assert_true(key_on_line(a, s, "response_len_p99") <= budget[s - 1]);
        assert_true(key_on_line(a, s, "filtered") >= 0);
        assert_true(key_on_line(a, s, "difficulty_lo_add") >= 3);
    }
    assert_int_equal(key_on_line(a, 4, "eval_pass1") >= 0, 1);
    assert_int_equal(key_on_line(a, 3, "eval_pass1"), -1);
    /* master_rate 0 raises runsum's level as soon as 24 responses were seen at it */
    assert_int_equal(key_on_line(a, 10, "difficulty_lo_runsum"), 4);
    free(a);
    free(b);
}

static void test_stage_above_buffer_refused(void **st) {
    (void)st;
    assert_int_equal(run("bad", 2, "curriculum.budget_stages=12,48", 1), 1);
    char p[400];
    long len;
    snprintf(p, sizeof p, "%s/bad.log", tmp);
    char *log = slurp(p, &len);
    assert_non_null(log);
    assert_non_null(strstr(log, "curriculum.budget_stages: last stage 48 exceeds rollout.max_new_tokens 24"));
    free(log);
}

int main(void) {
    const char *bdir = getenv("CISPO_BINARY_DIR");
    snprintf(bin, sizeof bin, "%s/cispo", bdir ? bdir : "build");
    if (tmpdir_make(tmp, sizeof tmp, "cispo_curres") != 0) return 1;
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_transitions_and_resume),
        cmocka_unit_test(test_stage_above_buffer_refused),
    };
    int rc = cmocka_run_group_tests(tests, NULL, NULL);
    tmpdir_remove(tmp);
    return rc;
}
