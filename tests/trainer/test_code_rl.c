/* tests/trainer/test_code_rl.c: code tasks in training, through the sandbox. A JSONL of four
 * Python stdin/stdout problems and one math problem (never sandboxed); a tiny model learns the
 * answers by SFT, then RL steps score its programs in the sandbox (run_open sets the verifier up and
 * runs the self-check).
 *   - a normal run: programs ran in the sandbox, every metrics line has reward_masked 0;
 *   - an injected infrastructure failure (the verifier's work folder does not exist, the same hook
 *     as tests/rewards/test_code_verify.c): masked responses are counted (reward_masked > 0), and
 *     none is scored as wrong: the code answers are all masked, the math answers still scored, so
 *     a step's accuracy is the math accuracy (about 1 here) where counting the masked responses as
 *     wrong would give about 1/4; held-out eval (a code task) leaves them out too;
 *   - a sandbox weaker than configured (test hook: no seccomp) stops run_open with the self-check's
 *     message.
 * labels: sandbox
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
#include "rewards/code_verify.h"
#include "trainer/code_setup.h"
#include "trainer/eval.h"
#include "trainer/rl.h"
#include "trainer/sft.h"

static char g_tmp[128], g_jsonl[256];

static const char *k_lines[] = {
    "{\"prompt\": \"Print the sum of the two integers on stdin.\", \"tests\": [{\"input\": \"1 2\\n\", \"output\": \"3\\n\"}, "
    "{\"input\": \"5 7\\n\", \"output\": \"12\\n\"}], \"solution\": \"<answer>print(sum(map(int,input().split())))</answer>\"}",
    "{\"prompt\": \"Print twice the integer on stdin.\", \"tests\": [{\"input\": \"4\\n\", \"output\": \"8\\n\"}], "
    "\"solution\": \"<answer>print(2*int(input()))</answer>\"}",
    "{\"prompt\": \"What is 2+3?\", \"answer\": \"5\", \"solution\": \"<answer>5</answer>\"}",
    "{\"prompt\": \"Print hello.\", \"tests\": [{\"input\": \"\", \"output\": \"hello\\n\"}], "
    "\"solution\": \"<answer>print('hello')</answer>\"}",
    "{\"prompt\": \"Print 42.\", \"tests\": [{\"input\": \"\", \"output\": \"42\"}], \"solution\": \"<answer>print(42)</answer>\"}",
};

static int setup(void **state) {
    (void)state;
    if (tmpdir_make(g_tmp, sizeof g_tmp, "cispo_test_code_rl") != 0) return -1;
    snprintf(g_jsonl, sizeof g_jsonl, "%s/code.jsonl", g_tmp);
    FILE *f = fopen(g_jsonl, "w");
    if (!f) return -1;
    for (size_t i = 0; i < sizeof k_lines / sizeof k_lines[0]; i++) fprintf(f, "%s\n", k_lines[i]);
    return fclose(f);
}

static int teardown(void **state) {
    (void)state;
    if (getenv("KEEP")) return 0;
    return tmpdir_remove(g_tmp);
}

static void config(RunConfig *rc, const char *name, const char *extra) {
    char dir_kv[300], data_kv[300];
    snprintf(dir_kv, sizeof dir_kv, "run.dir=%s/%s", g_tmp, name);
    snprintf(data_kv, sizeof data_kv, "data.jsonl=%s", g_jsonl);
    char *ov[] = {dir_kv, data_kv, "run.threads=1", "model.hidden_size=32", "model.intermediate_size=32",
                  "model.num_layers=2", "model.full_attn_every=2", "model.head_dim=8", "model.block_size=4",
                  "sft.steps=150", "sft.lr=3e-3", "sft.batch_size=8", "rl.steps=2", "rl.prompts_per_step=3",
                  "rl.group_size=4", "rl.dynamic_sampling=false", "data.eval_size=1", "eval.samples=4",
                  "rollout.max_new_tokens=48", "rollout.temperature=0.5", "reward.wrong=-1",
                  "reward.format_penalty=-0.5", (char *)extra};
    int n = (int)(sizeof ov / sizeof ov[0]) - (extra == NULL);
    assert_int_equal(run_config_load(rc, NULL, n, ov), 0);
}

static double mline_num(const char *line, const char *key) {
    char pat[64];
    snprintf(pat, sizeof pat, "\"%s\":", key);
    const char *p = strstr(line, pat);
    assert_non_null(p);
    return atof(p + strlen(pat));
}

/* Sum of `key` (an integer) over the lines of RUN_DIR/metrics.jsonl; checks every line has it.
 * check_acc: on lines where some responses were scored (not masked), accuracy must exceed 0.9. */
static long metrics_sum(const char *dir, const char *key, int check_acc, int per_round) {
    char path[400], line[8192], pat[64];
    snprintf(path, sizeof path, "%s/metrics.jsonl", dir);
    snprintf(pat, sizeof pat, "\"%s\":", key);
    FILE *f = fopen(path, "r");
    assert_non_null(f);
    long sum = 0, lines = 0;
    while (fgets(line, sizeof line, f)) {
        const char *p = strstr(line, pat);
        assert_non_null(p);
        long v = atol(p + strlen(pat));
        sum += v;
        lines++;
        if (check_acc) {
            long n_resp = (long)mline_num(line, "gen_rounds") * per_round;
            if (v < n_resp) assert_true(mline_num(line, "accuracy") > 0.9); /* masked are not wrong */
            assert_true(mline_num(line, "groups_kept") * 4 <= n_resp - v); /* no masked response kept */
        }
    }
    fclose(f);
    assert_int_equal(lines, 2);
    return sum;
}

static void test_code_tasks_train_and_mask(void **state) {
    (void)state;
    RunConfig rc;
    config(&rc, "run", NULL);
    Run r;
    int err = run_open(&r, &rc, NULL, 1);
    if (err) fprintf(stderr, "%s\n", err_msg());
    assert_int_equal(err, 0);
    assert_non_null(r.code); /* code tasks: the verifier is set up and its self-check passed */
    assert_int_equal(r.code->ready, 1);
    SftResult sr;
    RlResult rr;
    assert_int_equal(sft_run(&r, &sr, NULL), 0);
    assert_int_equal(rl_run(&r, &rr, NULL), 0);
    long programs = atomic_load(&r.code->n_programs);
    fprintf(stderr, "normal run: %ld programs verified in the sandbox, accuracy %.3f\n", programs, rr.last_accuracy);
    assert_true(programs > 0); /* responses really went through the sandbox */
    assert_int_equal(metrics_sum(rc.dir, "reward_masked", 0, 0), 0);

    /* Injected infrastructure failure: the verifier's work folder is gone. */
    snprintf(r.code->work_root, sizeof r.code->work_root, "%s/missing", g_tmp);
    long infra0 = atomic_load(&r.code->n_infra);
    assert_int_equal(rl_run(&r, &rr, NULL), 0);
    long masked = metrics_sum(rc.dir, "reward_masked", 1, rc.prompts_per_step * rc.group_size);
    fprintf(stderr, "injected failure: %ld responses masked\n", masked);
    assert_true(masked > 0);
    assert_int_equal(atomic_load(&r.code->n_infra) - infra0, masked);
    EvalResult ev;
    assert_int_equal(eval_run(&r, &ev), 0);
    assert_true(ev.n_masked > 0);
    assert_true(ev.pass1 == 0.0);
    run_close(&r);
    assert_null(r.code);
}

static void test_weak_sandbox_refused(void **state) {
    (void)state;
    RunConfig rc;
    config(&rc, "weak", NULL);
    Run r;
    run_code_test_weaken = SBX_WEAKEN_NO_SECCOMP;
    int err = run_open(&r, &rc, NULL, 1);
    run_code_test_weaken = 0;
    assert_int_equal(err, ERR_UNSUPPORTED);
    assert_non_null(strstr(err_msg(), "code sandbox cannot be used"));
    assert_non_null(strstr(err_msg(), "no seccomp filter"));
    assert_null(r.code);
    run_close(&r);
}

static void test_bad_limits_refused(void **state) {
    (void)state;
    RunConfig rc;
    char *ov[] = {"reward.code_mem_mib=8"};
    assert_int_equal(run_config_load(&rc, NULL, 1, ov), ERR_CONFIG); /* below the 16 MiB floor */
    assert_non_null(strstr(err_msg(), "reward.code_mem_mib"));
}

int main(void) {
    log_set_level(LOG_WARN);
    const struct CMUnitTest tests[] = {cmocka_unit_test(test_bad_limits_refused), cmocka_unit_test(test_weak_sandbox_refused),
                                       cmocka_unit_test(test_code_tasks_train_and_mask)};
    return cmocka_run_group_tests(tests, setup, teardown);
}
