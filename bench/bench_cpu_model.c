/* bench/bench_cpu_model.c: B11 of BENCHMARKS.md — CPU forward+backward and decode tokens/s of the
 * demo-sized model (configs/demo.yaml defaults), beside OpenBLAS sgemm GFLOP/s at the model's own
 * GEMM shapes measured in the same run, and the bound they imply (threads x sgemm rate).
 *
 * Usage: bench_cpu_model [--write docs/benchmarks.md] [--threads N] [CONFIG] [overrides]
 * OPENBLAS_CORETYPE (set on some machines here) halves sgemm; the benchmark re-executes itself
 * without it so OpenBLAS picks its native kernel (never done in tests).
 */
#include <cblas.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "core/error.h"
#include "core/log.h"
#include "core/rng.h"
#include "core/version.h"
#include "model/model_internal.h"
#include "rollout/generate.h"
#include "trainer/model_setup.h"
#include "bench/bench_util.h"

/* GFLOP/s of C(M,N) = A(M,K) B(N,K)^T, median of reps. */
static double sgemm_gflops(int M, int N, int K, int reps) {
    float *A = xmalloc((size_t)M * K * 4), *B = xmalloc((size_t)N * K * 4), *C = xmalloc((size_t)M * N * 4);
    rng_fill_uniform(A, (size_t)M * K, 1, 1, -1, 1);
    rng_fill_uniform(B, (size_t)N * K, 1, 2, -1, 1);
    double t[64];
    for (int r = -1; r < reps; r++) {
        double t0 = time_now_s();
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, M, N, K, 1.0f, A, K, B, K, 0.0f, C, N);
        if (r >= 0) t[r] = time_now_s() - t0;
    }
    free(A);
    free(B);
    free(C);
    return 2.0 * M * N * K / bench_median(t, reps) / 1e9;
}

static double load_average(void) {
    double l = -1;
    FILE *f = fopen("/proc/loadavg", "r");
    if (f) {
        if (fscanf(f, "%lf", &l) != 1) l = -1;
        fclose(f);
    }
    return l;
}

static void cpu_name(char *buf, size_t cap) {
    snprintf(buf, cap, "unknown CPU");
    FILE *f = fopen("/proc/cpuinfo", "r");
    if (!f) return;
    char line[512];
    while (fgets(line, sizeof line, f)) {
        char *c = strchr(line, ':');
        if (strncmp(line, "model name", 10) == 0 && c) {
            snprintf(buf, cap, "%s", c + 2);
            buf[strcspn(buf, "\n")] = 0;
            break;
        }
    }
    fclose(f);
}

int main(int argc, char **argv) {
    if (getenv("OPENBLAS_CORETYPE")) { /* must be gone before OpenBLAS initialises: re-exec */
        unsetenv("OPENBLAS_CORETYPE");
        unsetenv("OPENBLAS_L2_SIZE");
        execv("/proc/self/exe", argv);
    }
    const char *write_path = NULL;
    int threads = 0, a = 1;
    for (; a < argc && argv[a][0] == '-'; a++) {
        if (strcmp(argv[a], "--write") == 0 && a + 1 < argc) write_path = argv[++a];
        else if (strcmp(argv[a], "--threads") == 0 && a + 1 < argc) threads = atoi(argv[++a]);
    }
    RunConfig rc;
    const char *cfg_path = a < argc && !strchr(argv[a], '=') ? argv[a++] : NULL;
    if (run_config_load(&rc, cfg_path, argc - a, argv + a)) {
        fprintf(stderr, "bench: %s\n", err_msg());
        return 2;
    }
    rc.threads = threads;
    kernels_cpu_set_threads(threads);
    threads = kernels_cpu_get_threads();
    enum { Bseq = 8, T = 256, N = Bseq * T };
    KernelCtx ctx;
    Model m;
    if (model_setup(&rc, &ctx, &m, N, Bseq)) {
        fprintf(stderr, "bench: %s\n", err_msg());
        return 2;
    }
    const ModelConfig *c = &m.cfg;
    const int C = c->hidden_size, A = model_A(c), F = c->intermediate_size, V = c->vocab_size;
    const double load = load_average(); /* before we load the machine ourselves */
    /* sgemm at the model's shapes (forward GEMMs of N tokens) */
    struct { const char *what; int M, Nn, K; } shapes[] = {
        {"qkv_proj", N, 3 * A, C}, {"out_proj", N, C, A}, {"expert gate_up", N / 2, 2 * F, C},
        {"lm_head", N, V, C}, {"square 512", 512, 512, 512},
    };
    enum { NS = sizeof(shapes) / sizeof(shapes[0]) };
    double gf[NS], best = 0;
    for (int i = 0; i < NS; i++) {
        gf[i] = sgemm_gflops(shapes[i].M, shapes[i].Nn, shapes[i].K, 9);
        if (gf[i] > best) best = gf[i];
    }
    /* forward + backward */
    int *tok = xmalloc((size_t)N * sizeof(int)), *tgt = xmalloc((size_t)N * sizeof(int)), start[9];
    float *logp = xmalloc((size_t)N * 4), *dlogp = xmalloc((size_t)N * 4);
    for (int i = 0; i < N; i++) {
        tok[i] = (int)(rng_uniform(5, 0, (uint64_t)i) * V) % V;
        tgt[i] = (int)(rng_uniform(5, 1, (uint64_t)i) * V) % V;
        dlogp[i] = -1.0f / N;
    }
    for (int b = 0; b <= Bseq; b++) start[b] = b * T;
    SeqPack pack = {Bseq, start, NULL};
    double tf[16], tfb[16];
    for (int r = -1; r < 7; r++) {
        double t0 = time_now_s();
        model_forward(&m, tok, tgt, &pack, logp, NULL);
        double t1 = time_now_s();
        model_zero_grad(&m);
        model_backward(&m, dlogp, c->router_aux_loss_coef);
        double t2 = time_now_s();
        if (r >= 0) tf[r] = t1 - t0, tfb[r] = t2 - t0;
    }
    double fwd_s = bench_median(tf, 7), fb_s = bench_median(tfb, 7);
    /* decode: batch 8, 16-token prompts, 128 new tokens, temperature 1 */
    enum { DB = 8, DP = 16, DN = 128 };
    Generator g;
    CHECK(generator_init(&g, &m, DB, DP, DN) == 0, "%s", err_msg());
    int dstart[9];
    for (int b = 0; b <= DB; b++) dstart[b] = b * DP;
    SeqPack dpack = {DB, dstart, NULL};
    GenParams gp = {1.0f, 1.0f, DN, -1, 7, 0, 1.0f, 0};
    double td[5];
    long ntok = 0;
    for (int r = -1; r < 5; r++) {
        double t0 = time_now_s();
        ntok = rollout_generate(&g, tok, &dpack, &gp, (uint64_t)(r + 1));
        if (r >= 0) td[r] = time_now_s() - t0;
    }
    double dec_s = bench_median(td, 5);
    /* model FLOPs per token, forward: 2 x active matmul params + attention */
    double act = 0;
    for (int l = 0; l < c->num_hidden_layers; l++) {
        act += model_is_linear(c, l) ? (double)C * (3 * A + A) + (double)A * C
                                     : (double)C * (A + 2 * model_KA(c)) + (double)A * C;
        act += model_is_moe(c) ? (double)C * c->num_local_experts + (double)c->num_experts_per_tok * 3 * F * C
                               : 3.0 * F * C;
    }
    act += (double)C * V;
    double f_tok = 2 * act, fwd_tps = N / fwd_s, fb_tps = N / fb_s, dec_tps = ntok / dec_s;
    double bound_gf = best * 1.0; /* sgemm already runs on `threads` threads */
    char cpu[256], date[32];
    cpu_name(cpu, sizeof cpu);
    time_t now = time(NULL);
    strftime(date, sizeof date, "%Y-%m-%d", gmtime(&now));
    printf("B11 CPU model benchmark: %s, %d threads, load average %.2f at start, cispo %s\n", cpu, threads, load,
           cispo_version());
    printf("model: %s, %zu params, %d layers, hidden %d, vocab %d\n", model_family_name(c->family), m.n_params,
           c->num_hidden_layers, C, V);
    printf("%-16s %10s\n", "sgemm shape", "GFLOP/s");
    for (int i = 0; i < NS; i++) printf("%-16s %10.1f   (%d x %d x %d)\n", shapes[i].what, gf[i], shapes[i].M, shapes[i].Nn, shapes[i].K);
    printf("forward          %10.0f tokens/s  (%.1f ms for %d x %d; %.1f GFLOP/s, %.0f%% of best sgemm)\n", fwd_tps,
           fwd_s * 1e3, Bseq, T, f_tok * fwd_tps / 1e9, 100 * f_tok * fwd_tps / 1e9 / bound_gf);
    printf("forward+backward %10.0f tokens/s  (%.1f ms; %.1f GFLOP/s, %.0f%% of best sgemm)\n", fb_tps, fb_s * 1e3,
           3 * f_tok * fb_tps / 1e9, 100 * 3 * f_tok * fb_tps / 1e9 / bound_gf);
    printf("decode           %10.0f tokens/s  (batch %d, prompt %d, %d new tokens; %.1f GFLOP/s)\n", dec_tps, DB, DP, DN,
           f_tok * dec_tps / 1e9);
    if (write_path) {
        FILE *f = fopen(write_path, "a");
        CHECK(f != NULL, "cannot append to %s", write_path);
        fprintf(f, "| %s | %s, %d threads, load %.2f | %s | %.0f | %.0f | %.0f (%.0f%%) | %.0f | "
                   "`build/bench/bench_cpu_model --threads %d --write docs/benchmarks.md` |\n",
                date, cpu, threads, load, cispo_version(), best, fwd_tps, fb_tps,
                100 * 3 * f_tok * fb_tps / 1e9 / bound_gf, dec_tps, threads);
        fclose(f);
        printf("appended a row to %s\n", write_path);
    }
    generator_free(&g);
    free(tok);
    free(tgt);
    free(logp);
    free(dlogp);
    model_free(&m);
    kernel_ctx_free(&ctx);
    return 0;
}
