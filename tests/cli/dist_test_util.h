/* tests/cli/dist_test_util.h: helpers of the multi-rank end-to-end tests: start `cispo` (under
 * mpirun or not) through /bin/sh with its output in a log file, compare files and safetensors
 * payloads, and check the weight-sync hash logs of RUN_DIR/dist. Static functions only. */
#ifndef CISPO_TESTS_DIST_TEST_UTIL_H
#define CISPO_TESTS_DIST_TEST_UTIL_H

#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static char g_bin[600], g_mpirun[600], g_src[600];

static inline void dist_paths(void) {
    const char *b = getenv("CISPO_BINARY_DIR"), *m = getenv("MPIEXEC"), *s = getenv("CISPO_SOURCE_DIR");
    snprintf(g_bin, sizeof g_bin, "%s/cispo", b ? b : "build");
    snprintf(g_mpirun, sizeof g_mpirun, "%s --oversubscribe --allow-run-as-root", m && m[0] ? m : "mpirun");
    snprintf(g_src, sizeof g_src, "%s", s ? s : ".");
}

static inline double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec * 1e-9;
}

/* sh -c "cmd > log 2>&1" in the background; returns the pid. */
static inline pid_t sh_start(const char *cmd, const char *log) {
    char *full = malloc(strlen(cmd) + strlen(log) + 32);
    sprintf(full, "%s > '%s' 2>&1", cmd, log);
    pid_t pid = fork();
    if (pid == 0) {
        execl("/bin/sh", "sh", "-c", full, (char *)NULL);
        _exit(127);
    }
    free(full);
    return pid;
}

static inline int sh_wait(pid_t pid) {
    int st;
    if (waitpid(pid, &st, 0) != pid) return -1;
    return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
}

static inline int sh_run(const char *cmd, const char *log) { return sh_wait(sh_start(cmd, log)); }

static inline char *slurp(const char *path, size_t *len) {
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *buf = malloc((size_t)n + 1);
    size_t got = fread(buf, 1, (size_t)n, f);
    fclose(f);
    buf[got] = '\0';
    if (len) *len = got;
    return buf;
}

static inline int file_contains(const char *path, const char *needle) {
    char *s = slurp(path, NULL);
    int yes = s && strstr(s, needle);
    free(s);
    return yes;
}

static inline int files_equal(const char *a, const char *b) {
    size_t na = 0, nb = 0;
    char *x = slurp(a, &na), *y = slurp(b, &nb);
    int eq = x && y && na == nb && memcmp(x, y, na) == 0;
    free(x), free(y);
    return eq;
}

/* Compare two safetensors files of the same layout: 0 when the headers match; *max_abs gets the
 * largest |a - b| over the float32 payloads, *n_diff how many elements differ by more than tol. */
static inline int safetensors_diff(const char *a, const char *b, double tol, double *max_abs, long *n_diff, long *n_all) {
    size_t na = 0, nb = 0;
    char *x = slurp(a, &na), *y = slurp(b, &nb);
    int rc = -1;
    if (x && y && na == nb && na > 8) {
        unsigned long long h;
        memcpy(&h, x, 8);
        if (8 + h <= na && memcmp(x, y, 8 + h) == 0) {
            const float *p = (const float *)(x + 8 + h), *q = (const float *)(y + 8 + h);
            long n = (long)((na - 8 - h) / 4);
            *max_abs = 0, *n_diff = 0, *n_all = n;
            for (long i = 0; i < n; i++) {
                double d = fabs((double)p[i] - q[i]);
                if (d > *max_abs) *max_abs = d;
                *n_diff += d > tol;
            }
            rc = 0;
        }
    }
    free(x), free(y);
    return rc;
}

/* Every weight version a rollout rank received (RUN_DIR/dist/rank_R.jsonl "recv") carries the hash
 * that rank 0 logged for that version after its update. Returns the number of versions checked,
 * or -1 on a mismatch or a missing version. */
static inline int sync_hashes_match(const char *run, int rank) {
    char p0[800], pr[800];
    snprintf(p0, sizeof p0, "%s/dist/rank_0000.jsonl", run);
    snprintf(pr, sizeof pr, "%s/dist/rank_%04d.jsonl", run, rank);
    char *lead = slurp(p0, NULL), *roll = slurp(pr, NULL);
    int checked = 0;
    for (char *line = roll ? strtok(roll, "\n") : NULL; line; line = strtok(NULL, "\n")) {
        long v;
        char hash[32], want[128];
        const char *pv = strstr(line, "\"version\":"), *ph = strstr(line, "\"xxh3\":\"");
        if (!strstr(line, "\"recv\"") || !pv || !ph || sscanf(pv, "\"version\":%ld", &v) != 1) continue;
        snprintf(hash, sizeof hash, "%.16s", ph + 8);
        snprintf(want, sizeof want, "\"event\":\"update\",\"rank\":0,\"step\":%ld,\"version\":%ld,\"xxh3\":\"%s\"", v, v,
                 hash);
        if (!lead || !strstr(lead, want)) {
            checked = -1;
            break;
        }
        checked++;
    }
    free(lead), free(roll);
    return checked;
}

static inline void print_tail(const char *log) {
    char *s = slurp(log, NULL);
    if (!s) return;
    size_t n = strlen(s);
    fprintf(stderr, "---- %s (last 3000 bytes) ----\n%s\n----\n", log, n > 3000 ? s + n - 3000 : s);
    free(s);
}

#endif
