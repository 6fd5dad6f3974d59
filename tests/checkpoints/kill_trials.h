/* tests/checkpoints/kill_trials.h: kill -9 trials of the checkpoint protocol (RELIABILITY.md C1),
 * shared by test_ckpt_kill.c (20 trials, or CISPO_KILL_TRIALS) and test_ckpt_kill_slow.c (100).
 * Static inline functions only; include after cmocka.h.
 *
 * Each trial forks a child that saves checkpoints in a loop (steps k, k+1, ...; each with two files
 * of a few hundred KB of random bytes and an HDF5 file; keep_last 2) and reports through a pipe:
 * 'B' before ckpt_begin, 'W' once its files are written (just before ckpt_commit), 'C' after
 * ckpt_commit returned. The parent SIGKILLs it after a random delay (Philox, fixed seed; up to about
 * eight saves long, measured at start), then does what a resume does: ckpt_cleanup_stale, then
 * ckpt_find_latest. That must return the newest committed step (the last 'C', or the previous
 * trial's checkpoint when no 'C' came) or, when the kill landed inside a commit, the step being
 * committed; the checkpoint must verify; no .tmp, .old or latest.tmp may remain. Odd trials first
 * re-save the step they resume from (the step_N.old path). One run directory serves all trials, as
 * a run killed and resumed over and over would.
 */
#ifndef CISPO_TESTS_KILL_TRIALS_H
#define CISPO_TESTS_KILL_TRIALS_H

#include <signal.h>
#include <sys/wait.h>
#include <time.h>

#include "checkpoints/ckpt.h"
#include "checkpoints/h5io.h"
#include "core/error.h"
#include "core/log.h"
#include "core/rng.h"
#include "ckpt_test_util.h"

#define KT_A_BYTES (300 * 1024)
#define KT_B_BYTES (200 * 1024)
#define KT_H5_FLOATS 32768
#define KT_KEEP_LAST 2

typedef struct {
    int trials;
    int in_commit;        /* killed between 'W' and 'C' */
    int in_write;         /* killed between 'B' and 'W' */
    int between;          /* killed after 'C', before the next 'B' */
    int before_start;     /* killed before the child's first 'B' */
    int resumed_inflight; /* in_commit kills where the in-flight step was already `latest` */
    long commits;         /* 'C' markers over all trials */
    double save_ms;       /* measured time of one save (files + commit) */
    double max_delay_ms;
} KillStats;

typedef struct {
    char kind; /* 'B', 'W', 'C' */
    long step;
} KtMark;

/* The child's files for `step` (no cmocka asserts: the child reports failure by exit code). */
static inline int kt_stage(CkptWriter *w, const char *run, long step, unsigned char *buf, float *x) {
    char path[1024];
    if (ckpt_begin(w, run, step) != 0) return -1;
    const char *names[2] = {"a.bin", "b.bin"};
    const size_t sizes[2] = {KT_A_BYTES, KT_B_BYTES};
    for (int i = 0; i < 2; i++) {
        fill_bytes(buf, sizes[i], (uint64_t)step, (uint64_t)i);
        FILE *f = ckpt_path(w, names[i], path, sizeof path) == 0 ? fopen(path, "wb") : NULL;
        if (f == NULL || fwrite(buf, 1, sizes[i], f) != sizes[i] || fclose(f) != 0) return -1;
    }
    H5File h;
    int64_t dims[1] = {KT_H5_FLOATS};
    rng_fill_normal(x, KT_H5_FLOATS, (uint64_t)step, 2, 0.0f, 1.0f);
    if (ckpt_path(w, "model.h5", path, sizeof path) != 0 || h5_create(&h, path) != 0) return -1;
    int rc = h5_write_f32(&h, "model/w", x, 1, dims);
    if (h5_close(&h) != 0 || rc != 0) return -1;
    return 0;
}

static inline void kt_mark(int fd, char kind, long step) {
    KtMark m = {kind, step};
    if (write(fd, &m, sizeof m) != (ssize_t)sizeof m) _exit(5);
}

/* The child: save steps first, first+1, ... until killed. */
static inline void kt_child(const char *run, long first, int fd) {
    log_set_level(LOG_ERROR);
    unsigned char *buf = malloc(KT_A_BYTES);
    float *x = malloc(KT_H5_FLOATS * sizeof(float));
    if (buf == NULL || x == NULL) _exit(2);
    for (long s = first;; s++) {
        CkptWriter w;
        kt_mark(fd, 'B', s);
        if (kt_stage(&w, run, s, buf, x) != 0) _exit(3);
        kt_mark(fd, 'W', s);
        if (ckpt_commit(&w, KT_KEEP_LAST, 0) != 0) _exit(4);
        kt_mark(fd, 'C', s);
    }
}

/* Time of one save in this process (mean of four, in a scratch run directory), in ms. */
static inline double kt_measure_save_ms(void) {
    char run[512];
    make_tmp_dir(run, sizeof run);
    unsigned char *buf = malloc(KT_A_BYTES);
    float *x = malloc(KT_H5_FLOATS * sizeof(float));
    assert_true(buf != NULL && x != NULL);
    double t0 = time_now_s();
    for (long s = 1; s <= 4; s++) {
        CkptWriter w;
        assert_int_equal(kt_stage(&w, run, s, buf, x), 0);
        assert_int_equal(ckpt_commit(&w, KT_KEEP_LAST, 0), 0);
    }
    double ms = (time_now_s() - t0) * 1000.0 / 4;
    free(buf);
    free(x);
    rm_tree(run);
    return ms;
}

static inline void kt_sleep_ms(double ms) {
    struct timespec ts = {(time_t)(ms / 1000.0), (long)((ms - 1000.0 * (double)(time_t)(ms / 1000.0)) * 1e6)};
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR) {
    }
}

/* After the kill: what a resume does, and the C1 checks. *committed: newest committed step so far
 * (-1: none), updated. Returns the step found (-1: none). */
static inline long kt_check_resume(const char *run, long committed, char last_kind, long last_step,
                                   KillStats *st) {
    char root[1024], found[1024];
    fmt_path(root, sizeof root, "%s/checkpoints", run);
    assert_true(ckpt_cleanup_stale(run) >= 0);
    assert_int_equal(count_suffix(root, ".tmp"), 0);
    assert_int_equal(count_suffix(root, ".old"), 0);
    int rc = ckpt_find_latest(run, found, sizeof found);
    long inflight = last_kind == 'W' ? last_step : -1;
    if (committed < 0 && rc == ERR_NOTFOUND) return -1;
    if (rc != 0) fprintf(stderr, "resume failed: %s\n", err_msg());
    assert_int_equal(rc, 0);
    long step = ckpt_step_of(found);
    if (step != committed && step != inflight)
        fprintf(stderr, "resumed at step %ld; newest committed %ld, in flight %ld\n", step, committed, inflight);
    assert_true(step == committed || step == inflight);
    if (step == inflight && step != committed) st->resumed_inflight++;
    rc = ckpt_verify(found);
    if (rc != 0) fprintf(stderr, "accepted checkpoint does not verify: %s\n", err_msg());
    assert_int_equal(rc, 0);
    /* ... and holds that step's data. */
    char path[1100];
    size_t n;
    fmt_path(path, sizeof path, "%s/a.bin", found);
    unsigned char *got = read_file_bytes(path, &n), *want = malloc(KT_A_BYTES);
    assert_non_null(want);
    fill_bytes(want, KT_A_BYTES, (uint64_t)step, 0);
    assert_int_equal(n, KT_A_BYTES);
    assert_memory_equal(got, want, KT_A_BYTES);
    free(got);
    free(want);
    return step;
}

/* Read the child's markers (after its death) and classify where the kill landed. */
static inline void kt_read_marks(int fd, char *last_kind, long *last_step, long *last_commit, KillStats *st) {
    KtMark m;
    *last_kind = 0;
    *last_step = -1;
    ssize_t n;
    while ((n = read(fd, &m, sizeof m)) == (ssize_t)sizeof m) {
        *last_kind = m.kind;
        *last_step = m.step;
        if (m.kind == 'C') {
            *last_commit = m.step;
            st->commits++;
        }
    }
    assert_true(n == 0);
    if (*last_kind == 'W') st->in_commit++;
    else if (*last_kind == 'B') st->in_write++;
    else if (*last_kind == 'C') st->between++;
    else st->before_start++;
}

static inline void kt_trial(const char *run, int t, uint64_t seed, long *committed, KillStats *st) {
    long first = (*committed >= 0 && t % 2 == 1) ? *committed : *committed + 1;
    if (first < 1) first = 1;
    int p[2];
    assert_int_equal(pipe(p), 0);
    fflush(NULL);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        close(p[0]);
        kt_child(run, first, p[1]);
    }
    close(p[1]);
    kt_sleep_ms(rng_uniform(seed, 77, (uint64_t)t) * st->max_delay_ms);
    assert_int_equal(kill(pid, SIGKILL), 0);
    int status = 0;
    assert_int_equal(waitpid(pid, &status, 0), pid);
    if (!WIFSIGNALED(status)) fprintf(stderr, "trial %d: the child exited by itself, status %d\n", t, status);
    assert_true(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL);
    char last_kind;
    long last_step, last_commit = *committed;
    kt_read_marks(p[0], &last_kind, &last_step, &last_commit, st);
    close(p[0]);
    *committed = kt_check_resume(run, last_commit, last_kind, last_step, st);
    st->trials++;
}

/* Run `trials` kill -9 trials with delays drawn from `seed`; prints the statistics. */
static inline void kt_run(int trials, uint64_t seed, KillStats *st) {
    memset(st, 0, sizeof *st);
    st->save_ms = kt_measure_save_ms();
    st->max_delay_ms = 8.0 * st->save_ms + 2.0;
    char run[512];
    make_tmp_dir(run, sizeof run);
    long committed = -1;
    for (int t = 0; t < trials; t++) kt_trial(run, t, seed, &committed, st);
    rm_tree(run);
    printf("kill -9 trials: %d of %d passed (seed %llu; one save %.1f ms; delays 0..%.0f ms)\n", st->trials, trials,
           (unsigned long long)seed, st->save_ms, st->max_delay_ms);
    printf("  killed inside ckpt_commit %d (of which `latest` already named the new step %d), while writing files "
           "%d, between saves %d, before the first save %d; %ld commits completed\n",
           st->in_commit, st->resumed_inflight, st->in_write, st->between, st->before_start, st->commits);
    fflush(stdout);
}

#endif
