/* tests/cli/test_resume.c: resuming `cispo train` is bit-exact (RELIABILITY.md C4), through the
 * real binary. A straight run of SFT + 12 RL steps is the reference; then
 *   - a run stopped after 6 RL steps and resumed to 12 (`--resume auto`, rl.steps raised);
 *   - a run killed with SIGKILL during SFT, resumed, killed again during RL, resumed again;
 *   - a resume after the newest checkpoint was corrupted (it falls back to the previous one);
 * must all end with byte-identical metrics.jsonl, sft_metrics.jsonl and final parameters, and the
 * same optimizer moments in their last checkpoint; so must a JSONL-dataset run resumed across the
 * point where its data cursor wraps. A resume with a different model shape is refused with the
 * differing key named; `cispo export-hf` of the last checkpoint equals the run's final model.
 * labels: unit
 */
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include <cmocka.h>

#include "../test_tmpdir.h"
#include <fcntl.h>

#include "checkpoints/ckpt.h"
#include "checkpoints/h5io.h"
#include "core/error.h"
#include "core/rng.h"

static char tmp[128], bin[600];

static const char *common[] = {"model.hidden_size=32", "model.intermediate_size=32", "model.num_layers=2",
                               "model.full_attn_every=2", "model.head_dim=8", "model.block_size=4", "sft.steps=200",
                               "sft.batch_size=8", "rl.prompts_per_step=4", "rl.group_size=4", "rl.minibatches=2",
                               "rl.max_gen_batches=2", "data.eval_size=8", "rollout.max_new_tokens=24",
                               "data.difficulty_max=4", "ckpt.every=5", "run.threads=1", "run.log_level=warn",
                               "sft.lr=3e-3"};
enum { N_COMMON = sizeof common / sizeof common[0] };

/* Start `cispo train` for run `name` with rl.steps and optional --resume auto; returns the pid. */
static pid_t start(const char *name, int rl_steps, int resume, const char *extra) {
    static char dir_kv[300], steps_kv[64];
    snprintf(dir_kv, sizeof dir_kv, "run.dir=%s/%s", tmp, name);
    snprintf(steps_kv, sizeof steps_kv, "rl.steps=%d", rl_steps);
    const char *argv[64];
    int n = 0;
    argv[n++] = bin;
    argv[n++] = "train";
    for (int i = 0; i < N_COMMON; i++) argv[n++] = common[i];
    argv[n++] = dir_kv;
    argv[n++] = steps_kv;
    if (extra) argv[n++] = extra;
    argv[n++] = "--resume";
    argv[n++] = resume ? "auto" : "none";
    argv[n] = NULL;
    pid_t pid = fork();
    if (pid == 0) {
        int fd = open("/dev/null", 1);
        if (fd >= 0) dup2(fd, 1);
        execv(bin, (char *const *)argv);
        _exit(127);
    }
    return pid;
}

static int wait_exit(pid_t pid) {
    int st;
    waitpid(pid, &st, 0);
    return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
}

static int run(const char *name, int rl_steps, int resume, const char *extra) {
    return wait_exit(start(name, rl_steps, resume, extra));
}

static long count_lines(const char *path) {
    FILE *f = fopen(path, "r");
    if (!f) return 0;
    long n = 0;
    int c;
    while ((c = fgetc(f)) != EOF) n += c == '\n';
    fclose(f);
    return n;
}

/* Kill the run once `file` of its directory has at least `lines` lines. */
static void kill_at(pid_t pid, const char *name, const char *file, long lines) {
    char path[400];
    snprintf(path, sizeof path, "%s/%s/%s", tmp, name, file);
    for (int i = 0; i < 60000 && count_lines(path) < lines; i++) usleep(1000);
    kill(pid, SIGKILL);
    assert_int_equal(wait_exit(pid), 128 + SIGKILL);
}

static char *slurp(const char *path, long *len) {
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    fseek(f, 0, SEEK_END);
    *len = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *b = malloc((size_t)*len + 1);
    if (fread(b, 1, (size_t)*len, f) != (size_t)*len) *len = -1;
    fclose(f);
    return b;
}

static void same_file(const char *a_run, const char *b_run, const char *file) {
    char pa[400], pb[400];
    long la, lb;
    snprintf(pa, sizeof pa, "%s/%s/%s", tmp, a_run, file);
    snprintf(pb, sizeof pb, "%s/%s/%s", tmp, b_run, file);
    char *a = slurp(pa, &la), *b = slurp(pb, &lb);
    assert_non_null(a);
    assert_non_null(b);
    if (la != lb || memcmp(a, b, (size_t)la) != 0) fprintf(stderr, "%s differs between %s and %s\n", file, a_run, b_run);
    assert_int_equal(la, lb);
    assert_memory_equal(a, b, (size_t)la);
    free(a);
    free(b);
}

/* The optimizer moments of the final checkpoints are bit-identical. */
static void same_moments(const char *a_run, const char *b_run) {
    char pa[400], pb[400];
    snprintf(pa, sizeof pa, "%s/%s/checkpoints/step_0000212/optim.h5", tmp, a_run);
    snprintf(pb, sizeof pb, "%s/%s/checkpoints/step_0000212/optim.h5", tmp, b_run);
    H5File fa, fb;
    assert_int_equal(h5_open(&fa, pa), 0);
    assert_int_equal(h5_open(&fb, pb), 0);
    const char *names[] = {"m/model.embed_tokens.weight", "v/model.embed_tokens.weight", "m/lm_head.weight",
                           "v/model.layers.1.mlp.experts.gate_up_proj"};
    for (int i = 0; i < 4; i++) {
        int nd;
        int64_t dims[4];
        assert_int_equal(h5_shape(&fa, names[i], &nd, dims), 0);
        int64_t n = 1;
        for (int d = 0; d < nd; d++) n *= dims[d];
        float *a = malloc((size_t)n * 4), *b = malloc((size_t)n * 4);
        assert_int_equal(h5_read_f32(&fa, names[i], a, nd, dims), 0);
        assert_int_equal(h5_read_f32(&fb, names[i], b, nd, dims), 0);
        assert_memory_equal(a, b, (size_t)n * 4);
        free(a);
        free(b);
    }
    int64_t sa, sb;
    assert_int_equal(h5_read_i64(&fa, "step", &sa, 0, NULL), 0);
    assert_int_equal(h5_read_i64(&fb, "step", &sb, 0, NULL), 0);
    assert_int_equal(sa, sb);
    assert_int_equal(sa, 24); /* 12 RL steps x 2 mini-batches */
    h5_close(&fa);
    h5_close(&fb);
}

static void same_as_reference(const char *name) {
    same_file("ref", name, "metrics.jsonl");
    same_file("ref", name, "sft_metrics.jsonl");
    same_file("ref", name, "final_model/model.safetensors");
    same_moments("ref", name);
}

static int setup(void **state) {
    (void)state;
    const char *bd = getenv("CISPO_BINARY_DIR");
    snprintf(bin, sizeof bin, "%s/cispo", bd ? bd : "build");
    if (tmpdir_make(tmp, sizeof tmp, "cispo_test_resume")) return -1;
    return run("ref", 12, 0, NULL); /* the straight reference run */
}

static int teardown(void **state) {
    (void)state;
    return tmpdir_remove(tmp);
}

static void test_stop_and_resume(void **state) {
    (void)state;
    assert_int_equal(run("b", 6, 0, NULL), 0);
    assert_int_equal(run("b", 12, 1, NULL), 0);
    same_as_reference("b");
}

static void test_kill_twice_and_resume(void **state) {
    (void)state;
    kill_at(start("c", 12, 0, NULL), "c", "sft_metrics.jsonl", 23); /* during SFT, after the step-20 checkpoint (SFT checkpoints every 5 steps) */
    kill_at(start("c", 12, 1, NULL), "c", "metrics.jsonl", 8);      /* during RL */
    assert_int_equal(run("c", 12, 1, NULL), 0);
    same_as_reference("c");
}

static void test_corrupt_newest_falls_back(void **state) {
    (void)state;
    assert_int_equal(run("d", 12, 0, NULL), 0);
    /* flip a byte in the newest checkpoint's model; verify must reject it */
    char path[400], cmd[900];
    snprintf(path, sizeof path, "%s/d/checkpoints/step_0000212/model.h5", tmp);
    FILE *f = fopen(path, "r+b");
    assert_non_null(f);
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, n / 2, SEEK_SET);
    int c = fgetc(f);
    fseek(f, n / 2, SEEK_SET);
    fputc(c ^ 0x40, f);
    fclose(f);
    snprintf(cmd, sizeof cmd, "'%s' ckpt verify '%s/d/checkpoints/step_0000212' > /dev/null 2>&1", bin, tmp);
    assert_int_not_equal(system(cmd), 0);
    /* resume: the previous checkpoint (step 210 = RL step 10) is used, and the rerun ends the same */
    assert_int_equal(run("d", 12, 1, NULL), 0);
    same_as_reference("d");
}

/* Kill the training binary at random moments (seeded delays between 0 and 2.5 s, so in SFT, in RL,
 * inside checkpoint writes), then resume to the end: every trial ends like the straight run.
 * CISPO_KILL_TRIALS sets the number of trials (default 4). */
static void test_random_kills(void **state) {
    (void)state;
    const char *env = getenv("CISPO_KILL_TRIALS");
    int trials = env ? atoi(env) : 4, killed = 0;
    for (int t = 0; t < trials; t++) {
        char name[32];
        snprintf(name, sizeof name, "k%d", t);
        useconds_t delay = (useconds_t)(2500000.0 * rng_uniform(99, 7, (uint64_t)t));
        pid_t pid = start(name, 12, 0, NULL);
        usleep(delay);
        kill(pid, SIGKILL);
        int st = wait_exit(pid);
        killed += st == 128 + SIGKILL;
        int rc = run(name, 12, 1, NULL); /* may need a second resume if the first lands before any checkpoint */
        assert_int_equal(rc, 0);
        same_as_reference(name);
    }
    fprintf(stderr, "random kills: %d trials, %d killed before finishing, all resumed bit-exact\n", trials, killed);
}

/* `cispo export-hf` of the last checkpoint writes the same file as the run's final_model. */
static void test_export_hf(void **state) {
    (void)state;
    char cmd[2400];
    snprintf(cmd, sizeof cmd, "'%s' export-hf '%s/ref/checkpoints/step_0000212' '%s/exported' > /dev/null", bin, tmp, tmp);
    assert_int_equal(system(cmd), 0);
    same_file("ref/final_model", "exported", "model.safetensors");
    same_file("ref/final_model", "exported", "config.json");
    snprintf(cmd, sizeof cmd, "'%s' ckpt inspect '%s/ref/checkpoints/step_0000212' > '%s/inspect.txt'", bin, tmp, tmp);
    assert_int_equal(system(cmd), 0);
    char path[300];
    long len;
    snprintf(path, sizeof path, "%s/inspect.txt", tmp);
    char *txt = slurp(path, &len);
    assert_non_null(txt);
    txt[len > 0 ? len : 0] = '\0';
    assert_non_null(strstr(txt, "phase RL, 12 steps done"));
    assert_non_null(strstr(txt, "params/model.embed_tokens.weight"));
    free(txt);
}

/* A JSONL dataset whose training part (30 - 8 held out = 22 problems) is not a multiple of the 4
 * prompts per round: the data cursor wraps mid-batch, and a resume across the wrap is exact. */
static void test_jsonl_resume(void **state) {
    (void)state;
    char path[300], kv[400];
    snprintf(path, sizeof path, "%s/data.jsonl", tmp);
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    for (int i = 0; i < 30; i++) {
        int a = 1 + i % 9, b = 1 + (i * 7) % 9, c = 1 + (i * 5) % 9;
        fprintf(f, "{\"prompt\": \"%d+%d+%d=\", \"answer\": %d, \"solution\": \"<think>%d,%d,%d</think><answer>%d</answer>\"}\n",
                a, b, c, a + b + c, a, a + b, a + b + c, a + b + c);
    }
    fclose(f);
    snprintf(kv, sizeof kv, "data.jsonl=%s", path);
    assert_int_equal(run("j_ref", 12, 0, kv), 0);
    assert_int_equal(run("j", 7, 0, kv), 0);
    assert_int_equal(run("j", 12, 1, kv), 0);
    same_file("j_ref", "j", "metrics.jsonl");
    same_file("j_ref", "j", "final_model/model.safetensors");
}

/* Run `cispo train COMMON <tail>` expecting a failure; returns its stderr (caller frees). */
static char *train_fails(const char *tail, const char *label) {
    char cmd[2400], out[300];
    snprintf(out, sizeof out, "%s/%s_err.txt", tmp, label);
    snprintf(cmd, sizeof cmd, "'%s' train", bin);
    for (int i = 0; i < N_COMMON; i++) {
        strcat(cmd, " ");
        strcat(cmd, common[i]);
    }
    snprintf(cmd + strlen(cmd), sizeof cmd - strlen(cmd), " %s > /dev/null 2> '%s'", tail, out);
    assert_int_not_equal(system(cmd), 0);
    long len;
    char *msg = slurp(out, &len);
    assert_non_null(msg);
    msg[len > 0 ? len : 0] = '\0';
    fprintf(stderr, "%s: %s", label, msg);
    return msg;
}

/* A checkpoint that cannot be written stops the run with a clear error and a non-zero exit
 * (here RUN_DIR/checkpoints is a regular file, so the first checkpoint directory cannot be made). */
static void test_write_failure_reported(void **state) {
    (void)state;
    char path[300], tail[400];
    snprintf(path, sizeof path, "%s/w", tmp);
    assert_int_equal(mkdir(path, 0755), 0);
    snprintf(path, sizeof path, "%s/w/checkpoints", tmp);
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    fclose(f);
    snprintf(tail, sizeof tail, "run.dir=%s/w rl.steps=4 --resume none", tmp);
    char *msg = train_fails(tail, "write failure");
    assert_non_null(strstr(msg, "cispo train:"));
    assert_non_null(strstr(msg, "checkpoint step 5"));
    assert_non_null(strstr(msg, "checkpoints exists and is not a directory"));
    free(msg);
}

static void test_refuses_other_model(void **state) {
    (void)state;
    char tail[400];
    snprintf(tail, sizeof tail, "run.dir=%s/ref rl.steps=12 model.hidden_size=48 --resume auto", tmp);
    char *msg = train_fails(tail, "refusal");
    assert_non_null(strstr(msg, "model.hidden_size: checkpoint 32, now 48"));
    free(msg);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_stop_and_resume),
        cmocka_unit_test(test_kill_twice_and_resume),
        cmocka_unit_test(test_corrupt_newest_falls_back),
        cmocka_unit_test(test_random_kills),
        cmocka_unit_test(test_export_hf),
        cmocka_unit_test(test_jsonl_resume),
        cmocka_unit_test(test_write_failure_reported),
        cmocka_unit_test(test_refuses_other_model),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
