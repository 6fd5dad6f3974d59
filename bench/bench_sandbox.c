/* bench/bench_sandbox.c: the sandbox's cost (RELIABILITY.md S1 figures in docs/reliability.md).
 *
 * 1. Launches per second: N sequential sandbox runs of /usr/bin/true (cgroups made and removed,
 *    seccomp filter built, bwrap started, everything killed and reaped), median and p90 per launch.
 * 2. Overhead per test case: one stdin/stdout test of a Python a+b program, run directly
 *    (fork + exec python3 with a pipe) and in the sandbox; the difference is the sandbox's share.
 * 3. A whole code task: code_verify of a Python program against 10 tests, and of a C program
 *    (compile + 10 tests), wall time per task.
 *
 * Usage: bench_sandbox [N]   (default 100; needs root, bubblewrap, python3, gcc, cgroup v1)
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "core/error.h"
#include "rewards/code_verify.h"
#include "rewards/sandbox.h"

static double now_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec / 1e6;
}

static int cmp_d(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

static double pct(double *v, int n, double q) {
    qsort(v, (size_t)n, sizeof(double), cmp_d);
    return v[(int)(q * (n - 1))];
}

/* Direct run of python3 -c prog with input on stdin, output discarded: ms. */
static double direct_ms(const char *prog, const char *input) {
    int in[2], out[2];
    double t0 = now_ms();
    if (pipe(in) || pipe(out)) return -1;
    pid_t p = fork();
    if (p == 0) {
        dup2(in[0], 0), dup2(out[1], 1);
        close(in[0]), close(in[1]), close(out[0]), close(out[1]);
        execl("/usr/bin/python3", "python3", "-c", prog, (char *)NULL);
        _exit(127);
    }
    close(in[0]), close(out[1]);
    if (write(in[1], input, strlen(input)) < 0) return -1;
    close(in[1]);
    char buf[256];
    while (read(out[0], buf, sizeof buf) > 0) {}
    close(out[0]);
    waitpid(p, NULL, 0);
    return now_ms() - t0;
}

int main(int argc, char **argv) {
    int n = argc > 1 ? atoi(argv[1]) : 100;
    if (n < 5) n = 5;
    SandboxConfig c;
    sandbox_config_default(&c);
    if (sandbox_self_check(&c) != 0) {
        fprintf(stderr, "bench_sandbox: %s\n", err_msg());
        return 1;
    }
    double *t = malloc(sizeof(double) * (size_t)n), *d = malloc(sizeof(double) * (size_t)n);
    const char *true_argv[] = {"/usr/bin/true", NULL};
    SandboxJob job = {.dir = "/usr/share", .argv = true_argv};
    double t0 = now_ms();
    for (int i = 0; i < n; i++) {
        SandboxResult r;
        double a = now_ms();
        if (sandbox_run(&c, &job, &r) != 0 || r.status != SBX_EXITED) {
            fprintf(stderr, "launch %d failed: %s %s\n", i, r.why, err_msg());
            return 1;
        }
        t[i] = now_ms() - a;
        sandbox_result_free(&r);
    }
    double total = now_ms() - t0;
    printf("| sandbox launches (/usr/bin/true), %d sequential | %.1f launches/s | median %.2f ms, p90 %.2f ms |\n", n,
           1e3 * n / total, pct(t, n, 0.5), pct(t, n, 0.9));
    static const char prog[] = "a, b = map(int, input().split())\nprint(a + b)\n";
    const char *py_argv[] = {"/usr/bin/python3", "-c", prog, NULL};
    job.argv = py_argv;
    job.stdin_data = "20 22\n";
    job.stdin_len = strlen(job.stdin_data);
    int m = n / 2;
    for (int i = 0; i < m; i++) {
        SandboxResult r;
        double a = now_ms();
        sandbox_run(&c, &job, &r);
        t[i] = now_ms() - a;
        if (r.status != SBX_EXITED || strcmp(r.out, "42\n") != 0) return fprintf(stderr, "bad run\n"), 1;
        sandbox_result_free(&r);
        d[i] = direct_ms(prog, "20 22\n");
    }
    double ts = pct(t, m, 0.5), td = pct(d, m, 0.5);
    printf("| one stdin/stdout test, Python a+b, %d runs | sandboxed %.2f ms vs direct %.2f ms | overhead %.2f ms per test case |\n",
           m, ts, td, ts - td);
    CodeVerifier v;
    if (code_verifier_init(&v, &c, 0, "/tmp") != 0) return fprintf(stderr, "%s\n", err_msg()), 1;
    char spec[4096];
    int k = snprintf(spec, sizeof spec, "{\"tests\": [");
    for (int i = 0; i < 10; i++) k += snprintf(spec + k, sizeof spec - (size_t)k, "%s{\"input\": \"%d %d\", \"output\": \"%d\"}", i ? ", " : "", i, 2 * i, 3 * i);
    snprintf(spec + k, sizeof spec - (size_t)k, "]}");
    static const char cprog[] = "#include <stdio.h>\nint main(void){long a,b;if(scanf(\"%ld %ld\",&a,&b)!=2)return 1;"
                                "printf(\"%ld\\n\",a+b);return 0;}\n";
    for (int lang = 0; lang < 2; lang++) {
        CodeVerdict cv;
        double a = now_ms();
        int reps = 3;
        for (int i = 0; i < reps; i++)
            if (code_verify(&v, spec, lang ? cprog : prog, lang ? "c" : "python", &cv) != 0 || cv.n_passed != 10)
                return fprintf(stderr, "verify failed: %s %s\n", err_msg(), cv.why), 1;
        printf("| code task, %s, 10 tests%s | %.0f ms per task | %.1f ms per test |\n", lang ? "C" : "Python",
               lang ? " + compile" : "", (now_ms() - a) / reps, (now_ms() - a) / reps / 10);
    }
    free(t), free(d);
    return 0;
}
