/* bench/bench_cuda_ops.c: BENCHMARKS.md B1 (our GEMM calls at the model's shapes), B3 (lightning
 * decode step) and B6 (the FP32 LM head) on the CUDA backend, through the KernelOps table exactly as
 * the model calls them. Built only with -DCISPO_CUDA=ON. The PyTorch anchors of the same shapes are
 * bench/gpu/ops_torch.py (run it in the same call).
 *
 * B1: the h1024_L16_E8 learner's GEMMs at N = 8192 tokens (bench_cuda_model's config): per
 *     projection the forward Y = X W^T, the input gradient dX = dY W and the weight gradient
 *     dW = dY^T X, in BF16 (weights read from the registered parameter block's BF16 copy, activations
 *     converted per call: what the model runs) and in FP32 (the reference precision); with
 *     CISPO_CUDA_FAST16BF=1 the previous FAST_16BF path is timed too. Bound: 2MNK / the BF16 GEMM
 *     ceiling (B0) measured here.
 * B3: lightning_decode for B sequences, 16 heads x 128, FP32 state: bound = state bytes read +
 *     written (+ q, k, v, out) / the copy bandwidth measured here.
 * B6: lm_head_forward and forward+backward at N = 8192, C = 1024, V = 32000 and 200064: 3xTF32
 *     (the default) and exact SGEMM (CISPO_CUDA_HEAD_SGEMM=1). Work: 2NCV forward, 8NCV forward +
 *     backward (the backward recomputes the logits, then dh and dW); bound: that / the FP32 SGEMM
 *     ceiling measured here (3xTF32 on tensor cores can beat it).
 * CUDA events around each op call, warm-up then median of 10; inputs uniform(-1, 1).
 *
 * Usage: bench_cuda_ops [--json PATH]
 */
#include <cublas_v2.h>
#include <cuda_runtime.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bench/bench_util.h"
#include "core/error.h"
#include "core/log.h"
#include "core/rng.h"
#include "core/version.h"
#include "kernels/backend.h"

#define CK(x) CHECK((x) == cudaSuccess, "%s failed", #x)
#define REPS 10

static cudaEvent_t e0, e1;
static FILE *js;
static int first_row = 1;

static float *dev_rand(KernelCtx *ctx, size_t n, uint64_t stream) {
    float *h = xmalloc(n * sizeof(float));
    for (size_t i = 0; i < n; i++) h[i] = 2.0f * rng_uniform(17, stream, i) - 1.0f;
    float *d = ctx->ops->alloc(ctx, n * sizeof(float));
    ctx->ops->copy_h2d(ctx, d, h, n * sizeof(float));
    free(h);
    return d;
}

static double ev_ms(void) {
    float ms;
    CK(cudaEventSynchronize(e1));
    CK(cudaEventElapsedTime(&ms, e0, e1));
    return ms;
}

static void row(const char *bench, const char *what, double ms, double work, double bound_ms, const char *unit) {
    printf("%-4s %-46s %9.3f ms %9.1f %-7s %6.1f%% of bound\n", bench, what, ms, work / (ms * 1e-3) / 1e12, unit,
           100.0 * bound_ms / ms);
    if (js)
        fprintf(js, "%s{\"bench\": \"%s\", \"what\": \"%s\", \"ms\": %.4f, \"rate\": %.2f, \"unit\": \"%s\", \"bound_frac\": %.4f}",
                first_row ? "" : ",\n", bench, what, ms, work / (ms * 1e-3) / 1e12, unit, bound_ms / ms);
    first_row = 0;
    fflush(stdout);
}

/* ms of one gemm call (median) */
static double time_gemm(KernelCtx *ctx, int ta, int tb, int M, int N, int K, const float *A, int lda, const float *B,
                        int ldb, float *C, int ldc) {
    double t[REPS];
    for (int r = -2; r < REPS; r++) {
        CK(cudaEventRecord(e0, 0));
        ctx->ops->gemm(ctx, ta, tb, M, N, K, 1.0f, A, lda, B, ldb, 0.0f, C, ldc);
        CK(cudaEventRecord(e1, 0));
        if (r >= 0) t[r] = ev_ms();
        else (void)ev_ms();
    }
    return bench_median(t, REPS);
}

typedef struct {
    const char *name;
    int out, in; /* W(out, in) */
} Proj;

static void bench_gemms(KernelCtx *ctx, double bf16_tflops, double fp32_tflops) {
    const int N = 8192;
    const Proj proj[] = {{"qkv 1024->3072", 3072, 1024}, {"o 1024->1024", 1024, 1024},
                         {"expert gate_up 1024->4096 (2048 rows)", 4096, 1024},
                         {"expert down 2048->1024 (2048 rows)", 1024, 2048}};
    size_t wmax = 0;
    for (int p = 0; p < 4; p++) wmax += (size_t)proj[p].out * proj[p].in;
    float *W = dev_rand(ctx, wmax, 1); /* the "parameter block" */
    ctx->ops->params_register(ctx, W, wmax);
    float *X = dev_rand(ctx, (size_t)N * 4096, 2), *Y = dev_rand(ctx, (size_t)N * 4096, 3);
    float *dW = dev_rand(ctx, wmax, 4);
    size_t off = 0;
    for (int p = 0; p < 4; p++) {
        const int O = proj[p].out, I = proj[p].in, M = p >= 2 ? 2048 : N; /* an expert sees N*K/E rows */
        const float *Wp = W + off;
        for (int prec = 1; prec >= 0; prec--) {
            ctx->gemm_bf16 = prec;
            const double ceil = prec ? bf16_tflops : fp32_tflops;
            char what[96];
            double fl = 2.0 * M * O * I;
            snprintf(what, sizeof what, "%s fwd %s", proj[p].name, prec ? "bf16" : "fp32");
            double ms = time_gemm(ctx, 0, 1, M, O, I, X, I, Wp, I, Y, O);
            row("B1", what, ms, fl, fl / (ceil * 1e9), "TFLOP/s");
            snprintf(what, sizeof what, "%s dX %s", proj[p].name, prec ? "bf16" : "fp32");
            ms = time_gemm(ctx, 0, 0, M, I, O, Y, O, Wp, I, X, I);
            row("B1", what, ms, fl, fl / (ceil * 1e9), "TFLOP/s");
            snprintf(what, sizeof what, "%s dW %s", proj[p].name, prec ? "bf16" : "fp32");
            ms = time_gemm(ctx, 1, 0, O, I, M, Y, O, X, I, dW + off, I);
            row("B1", what, ms, fl, fl / (ceil * 1e9), "TFLOP/s");
        }
        off += (size_t)O * I;
    }
    ctx->gemm_bf16 = 0;
    ctx->ops->free(ctx, W), ctx->ops->free(ctx, X), ctx->ops->free(ctx, Y), ctx->ops->free(ctx, dW);
}

static void bench_head(KernelCtx *ctx, double fp32_tflops) {
    const int N = 8192, C = 1024, Vs[2] = {32000, 200064};
    for (int vi = 0; vi < 2; vi++) {
        const int V = Vs[vi];
        float *h = dev_rand(ctx, (size_t)N * C, 5), *W = dev_rand(ctx, (size_t)V * C, 6);
        float *dh = dev_rand(ctx, (size_t)N * C, 7), *dW = dev_rand(ctx, (size_t)V * C, 8);
        float *dlogp = dev_rand(ctx, N, 9), *logp = dev_rand(ctx, N, 10), *lse = dev_rand(ctx, N, 11);
        int *tgt_h = xmalloc(N * sizeof(int)), *tgt = ctx->ops->alloc(ctx, N * sizeof(int));
        for (int i = 0; i < N; i++) tgt_h[i] = (int)(rng_uniform(17, 12, i) * V) % V;
        ctx->ops->copy_h2d(ctx, tgt, tgt_h, N * sizeof(int));
        for (int exact = 0; exact < 2; exact++) {
            if (exact) setenv("CISPO_CUDA_HEAD_SGEMM", "1", 1);
            else unsetenv("CISPO_CUDA_HEAD_SGEMM");
            double tf[REPS], tb[REPS];
            for (int r = -1; r < REPS; r++) {
                CK(cudaEventRecord(e0, 0));
                ctx->ops->lm_head_forward(ctx, logp, lse, NULL, h, W, tgt, N, C, V);
                CK(cudaEventRecord(e1, 0));
                double f = ev_ms();
                CK(cudaEventRecord(e0, 0));
                ctx->ops->lm_head_backward(ctx, dh, dW, dlogp, NULL, h, W, tgt, lse, N, C, V);
                CK(cudaEventRecord(e1, 0));
                double b = ev_ms();
                if (r >= 0) tf[r] = f, tb[r] = f + b;
            }
            double fl_f = 2.0 * N * C * V, fl_fb = 4.0 * fl_f; /* backward: recompute + dh + dW */
            char what[96];
            snprintf(what, sizeof what, "lm_head fwd N=%d C=%d V=%d %s", N, C, V, exact ? "sgemm" : "3xtf32");
            row("B6", what, bench_median(tf, REPS), fl_f, fl_f / (fp32_tflops * 1e9), "TFLOP/s");
            snprintf(what, sizeof what, "lm_head fwd+bwd N=%d C=%d V=%d %s", N, C, V, exact ? "sgemm" : "3xtf32");
            row("B6", what, bench_median(tb, REPS), fl_fb, fl_fb / (fp32_tflops * 1e9), "TFLOP/s");
        }
        unsetenv("CISPO_CUDA_HEAD_SGEMM");
        ctx->ops->free(ctx, h), ctx->ops->free(ctx, W), ctx->ops->free(ctx, dh), ctx->ops->free(ctx, dW);
        ctx->ops->free(ctx, dlogp), ctx->ops->free(ctx, logp), ctx->ops->free(ctx, lse), ctx->ops->free(ctx, tgt);
        free(tgt_h);
    }
}

static void bench_lightning_decode(KernelCtx *ctx, double copy_tbps) {
    const int NH = 16, HS = 128, Bs[4] = {1, 64, 256, 1024};
    float *slopes = xmalloc(NH * sizeof(float));
    for (int h = 0; h < NH; h++) slopes[h] = 0.01f * (h + 1);
    for (int bi = 0; bi < 4; bi++) {
        const int B = Bs[bi];
        float *state = dev_rand(ctx, (size_t)B * NH * HS * HS, 13), *qkv = dev_rand(ctx, (size_t)B * NH * 3 * HS, 14);
        float *out = dev_rand(ctx, (size_t)B * NH * HS, 15);
        double t[REPS];
        for (int r = -2; r < REPS; r++) {
            CK(cudaEventRecord(e0, 0));
            ctx->ops->lightning_decode(ctx, out, state, qkv, slopes, B, NH, HS);
            CK(cudaEventRecord(e1, 0));
            double ms = ev_ms();
            if (r >= 0) t[r] = ms;
        }
        double bytes = 2.0 * B * NH * HS * HS * 4 + (double)B * NH * 4 * HS * 4;
        char what[96];
        snprintf(what, sizeof what, "lightning_decode B=%d 16x128 fp32 state", B);
        row("B3", what, bench_median(t, REPS), bytes, bytes / (copy_tbps * 1e9), "TB/s");
        ctx->ops->free(ctx, state), ctx->ops->free(ctx, qkv), ctx->ops->free(ctx, out);
    }
    free(slopes);
}

/* the ceilings of this run: BF16 and FP32 GEMM 8192^3 through the backend, device copy */
static void ceilings(KernelCtx *ctx, double *bf16, double *fp32, double *copy) {
    const int n = 8192;
    float *A = dev_rand(ctx, (size_t)n * n, 20), *B = dev_rand(ctx, (size_t)n * n, 21);
    float *C = ctx->ops->alloc(ctx, (size_t)n * n * 4);
    ctx->ops->params_register(ctx, A, (size_t)n * n); /* both operands as weights: no per-call conversion */
    ctx->gemm_bf16 = 1;
    double fl = 2.0 * n * n * (double)n;
    *bf16 = fl / (time_gemm(ctx, 0, 1, n, n, n, A, n, A, n, C, n) * 1e9);
    ctx->gemm_bf16 = 0;
    *fp32 = fl / (time_gemm(ctx, 0, 1, n, n, n, A, n, B, n, C, n) * 1e9);
    double t[REPS];
    size_t bytes = (size_t)n * n * 4;
    for (int r = -2; r < REPS; r++) {
        CK(cudaEventRecord(e0, 0));
        ctx->ops->copy_d2d(ctx, C, B, bytes);
        CK(cudaEventRecord(e1, 0));
        double ms = ev_ms();
        if (r >= 0) t[r] = ms;
    }
    *copy = 2.0 * bytes / (bench_median(t, REPS) * 1e9); /* TB/s */
    ctx->ops->free(ctx, A), ctx->ops->free(ctx, B), ctx->ops->free(ctx, C);
}

int main(int argc, char **argv) {
    const char *json_path = NULL;
    for (int a = 1; a < argc; a++)
        if (!strcmp(argv[a], "--json") && a + 1 < argc) json_path = argv[++a];
    log_set_level(LOG_WARN);
    const KernelOps *ops = kernels_cuda();
    if (!ops) {
        fprintf(stderr, "bench_cuda_ops: no CUDA device\n");
        return 2;
    }
    KernelCtx ctx;
    kernel_ctx_init(&ctx, ops, ops->lm_head_ws_bytes(8192, 1024, 200064));
    CK(cudaEventCreate(&e0));
    CK(cudaEventCreate(&e1));
    struct cudaDeviceProp prop;
    CK(cudaGetDeviceProperties(&prop, 0));
    double bf16, fp32, copy;
    ceilings(&ctx, &bf16, &fp32, &copy);
    printf("B0 %s, cispo %s: BF16 GEMM (backend, param copy) %.0f TFLOP/s, FP32 %.1f TFLOP/s, copy %.2f TB/s\n",
           prop.name, cispo_version(), bf16, fp32, copy);
    js = json_path ? fopen(json_path, "w") : NULL;
    if (js)
        fprintf(js, "{\"device\": \"%s\", \"commit\": \"%s\", \"bf16_tflops\": %.1f, \"fp32_tflops\": %.2f, "
                    "\"copy_tbps\": %.3f, \"rows\": [\n",
                prop.name, cispo_version(), bf16, fp32, copy);
    bench_gemms(&ctx, bf16, fp32);
    bench_head(&ctx, fp32);
    bench_lightning_decode(&ctx, copy);
    if (js) {
        fprintf(js, "\n]}\n");
        fclose(js);
    }
    kernel_ctx_free(&ctx);
    return 0;
}
