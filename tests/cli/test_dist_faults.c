/* tests/cli/test_dist_faults.c: faults of multi-rank runs (RELIABILITY.md F1, F2).
 * labels: mpi
 *
 * - a hung rank (test hook CISPO_TEST_HANG=1:2) trips the watchdog of dist.timeout_s: the job
 *   ends with status 75 (CISPO_EXIT_WATCHDOG) and a message naming the rank;
 * - a rank killed with SIGKILL mid-run ends the whole job within 10 s (every rank gone), and
 *   scripts/supervise.sh restarts it with --resume auto; the finished run's metrics.jsonl is
 *   byte-identical to an uninterrupted run's. The rank is killed while it is held at a known step
 *   by the hang hook with the watchdog off, so the kill lands at the same place every time.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>

#include <cmocka.h>

#include "tests/cli/dist_test_util.h"
#include "tests/test_tmpdir.h"

static char tmp[400];
static const char *common = "model.hidden_size=32 model.intermediate_size=32 model.num_layers=2 model.full_attn_every=2 "
                            "model.head_dim=8 model.block_size=4 rollout.max_new_tokens=16 data.difficulty_max=4 "
                            "run.threads=1 run.log_level=warn data.eval_size=4 eval.samples=2 rl.sft_first=false "
                            "rl.prompts_per_step=4 rl.group_size=4 rl.minibatches=2 rl.max_gen_batches=1 "
                            "rl.dynamic_sampling=false ckpt.every=2 rl.steps=8";

static int setup(void **state) {
    dist_paths();
    return tmpdir_make(tmp, sizeof tmp, "cispo_faults");
}

static int teardown(void **state) {
    tmpdir_remove(tmp);
    return 0;
}

static void test_hung_rank_trips_watchdog(void **state) {
    char cmd[4096], log[600];
    snprintf(log, sizeof log, "%s/hang.log", tmp);
    snprintf(cmd, sizeof cmd, "CISPO_TEST_HANG=1:2 %s -np 2 %s train %s run.dir=%s/hang dist.timeout_s=2", g_mpirun,
             g_bin, common, tmp);
    double t0 = now_s();
    int st = sh_run(cmd, log);
    double took = now_s() - t0;
    fprintf(stderr, "hung rank: job ended with status %d after %.1f s\n", st, took);
    if (st != 75) print_tail(log);
    assert_int_equal(st, 75);
    assert_true(file_contains(log, "hanging at step 2"));
    assert_true(file_contains(log, "watchdog: no progress for"));
    assert_true(file_contains(log, "(deadline dist.timeout_s = 2 s)"));
    assert_true(file_contains(log, "[cispo rank 1] watchdog") || file_contains(log, "[cispo rank 0] watchdog"));
}

static long read_pid(const char *run, int rank) {
    char p[800];
    snprintf(p, sizeof p, "%s/%s/dist/rank_%04d.pid", tmp, run, rank);
    char *s = slurp(p, NULL);
    long pid = s ? atol(s) : -1;
    free(s);
    return pid;
}

/* A process is gone when kill(pid, 0) fails or /proc says zombie. */
static int gone(long pid) {
    if (kill((pid_t)pid, 0) != 0) return errno == ESRCH;
    char p[64], st[512];
    snprintf(p, sizeof p, "/proc/%ld/stat", pid);
    FILE *f = fopen(p, "r");
    if (!f) return 1;
    size_t n = fread(st, 1, sizeof st - 1, f);
    fclose(f);
    st[n] = '\0';
    const char *rp = strrchr(st, ')');
    return rp && rp[1] == ' ' && rp[2] == 'Z';
}

static void test_killed_rank_ends_job_and_supervisor_resumes(void **state) {
    char cmd[4096], log[600], marker[800], a[800], b[800];
    snprintf(log, sizeof log, "%s/ref.log", tmp);
    snprintf(cmd, sizeof cmd, "%s -np 2 %s train %s run.dir=%s/ref", g_mpirun, g_bin, common, tmp);
    assert_int_equal(sh_run(cmd, log), 0);

    snprintf(log, sizeof log, "%s/sup.log", tmp);
    snprintf(cmd, sizeof cmd,
             "CISPO_TEST_HANG=1:5 %s/scripts/supervise.sh -n 2 -d 0 -- %s -np 2 %s train %s run.dir=%s/kill "
             "dist.timeout_s=0",
             g_src, g_mpirun, g_bin, common, tmp);
    pid_t sup = sh_start(cmd, log);
    snprintf(marker, sizeof marker, "%s/kill/dist/test_hang_1_5", tmp);
    double t0 = now_s();
    while (access(marker, F_OK) != 0 && now_s() - t0 < 120) usleep(50000);
    assert_int_equal(access(marker, F_OK), 0);
    long pid0 = read_pid("kill", 0), pid1 = read_pid("kill", 1);
    assert_true(pid0 > 0 && pid1 > 0);
    assert_int_equal(kill((pid_t)pid1, SIGKILL), 0);
    double tk = now_s();
    while (!(gone(pid0) && gone(pid1)) && now_s() - tk < 30) usleep(20000);
    double ended = now_s() - tk;
    fprintf(stderr, "killed rank 1 (pid %ld): every rank gone after %.2f s\n", pid1, ended);
    assert_true(gone(pid0));
    assert_true(ended < 10.0);
    int st = sh_wait(sup);
    if (st != 0) print_tail(log);
    assert_int_equal(st, 0);
    assert_true(file_contains(log, "supervise: attempt 1 exited with status"));
    assert_true(file_contains(log, "restarting with --resume auto"));
    assert_true(file_contains(log, "supervise: attempt 2 succeeded"));
    assert_true(file_contains(log, "process rank 1")); /* mpirun names the rank that died */
    snprintf(a, sizeof a, "%s/kill/metrics.jsonl", tmp);
    snprintf(b, sizeof b, "%s/ref/metrics.jsonl", tmp);
    assert_true(files_equal(a, b));
    snprintf(a, sizeof a, "%s/kill/final_model/model.safetensors", tmp);
    snprintf(b, sizeof b, "%s/ref/final_model/model.safetensors", tmp);
    assert_true(files_equal(a, b));
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_hung_rank_trips_watchdog),
        cmocka_unit_test(test_killed_rank_ends_job_and_supervisor_resumes),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
