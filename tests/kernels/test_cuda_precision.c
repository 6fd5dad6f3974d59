/* tests/kernels/test_cuda_precision.c: the CUDA backend's fast precisions against the CPU reference.
 * labels: gpu
 *
 * - BF16 GEMMs (ctx->gemm_bf16 = 1, kernels/cuda/gemm.cu): for every transpose combination and
 *   strided operands, the result must equal an FP32 CPU GEMM of the operands rounded to BF16
 *   (nearest even, done here on the host) to 1e-5 relative: that pins the rounding rule and the FP32
 *   accumulation. Operands inside the registered parameter block (read from its BF16 copy) and
 *   outside it (converted per call) must give the same result.
 * - The BF16 copy follows the parameters: after adamw, copy_h2d, copy_d2d or zero write into the
 *   block, the next BF16 GEMM must see the new values (a stale copy would differ by far more than
 *   the tolerance).
 * - Aligned GEMMs run through cached cuBLASLt plans (no cublasGemmEx fallback), and token counts
 *   that share a bucket share one plan (gemm_cuda_counters).
 * - The LM head's 3xTF32 products (kernels/cuda/lm_head.cu) against the CPU's FP32 head: logp and
 *   lse within 2e-6, dh and dW within 2e-5 relative (float64 norms), at a vocabulary spanning
 *   several chunks and a row count spanning several blocks; and with head_bf16 within 50x that
 *   (a logit within 1e-7 of a BF16 rounding boundary may round the other way than on the CPU).
 * Without a CUDA device the test prints "skipped" and passes (CISPO_REQUIRE_GPU=1: fails).
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/rng.h"
#include "kernels/backend.h"
#include "tests/test_gpu_skip.h"

#ifdef CISPO_HAVE_CUDA
#include "kernels/cuda/cuda_profile.h"
#else
static void gemm_cuda_counters(long out[5]) { memset(out, 0, 5 * sizeof(long)); } /* never reached: skipped */
#endif

#define TOL_BF16_GEMM 1e-5
#define TOL_HEAD_FWD 2e-6
#define TOL_HEAD_BWD 2e-5

static uint64_t g_stream = 11;

static float *h_rand(size_t n, float lo, float hi) {
    float *x = malloc(n * sizeof(float));
    uint64_t s = g_stream++;
    for (size_t i = 0; i < n; i++) x[i] = lo + (hi - lo) * rng_uniform(99, s, i);
    return x;
}

static float bf16_round(float x) {
    uint32_t u;
    memcpy(&u, &x, 4);
    u = (u + 0x7fffu + ((u >> 16) & 1u)) & 0xffff0000u;
    memcpy(&x, &u, 4);
    return x;
}

static double rel_err(const float *a, const float *ref, size_t n) {
    double num = 0, den = 0;
    for (size_t i = 0; i < n; i++) {
        double d = (double)a[i] - ref[i];
        num += d * d;
        den += (double)ref[i] * ref[i];
    }
    return den > 0 ? sqrt(num / den) : sqrt(num);
}

static int report(const char *what, double err, double tol) {
    printf("  %-52s %11.3e  %8.1e %s\n", what, err, tol, err <= tol ? "ok" : "FAIL");
    return err <= tol;
}

typedef struct {
    KernelCtx c, g;
} Env;

static int setup(void **state) {
    Env *e = calloc(1, sizeof(Env));
    kernel_ctx_init(&e->c, kernels_cpu(), kernels_cpu()->lm_head_ws_bytes(3000, 96, 20000));
    kernel_ctx_init(&e->g, kernels_cuda(), kernels_cuda()->lm_head_ws_bytes(3000, 96, 20000));
    *state = e;
    return 0;
}

static int teardown(void **state) {
    Env *e = *state;
    kernel_ctx_free(&e->c);
    kernel_ctx_free(&e->g);
    free(e);
    return 0;
}

static float *to_dev(KernelCtx *g, const float *h, size_t n) {
    float *d = g->ops->alloc(g, n * sizeof(float));
    g->ops->copy_h2d(g, d, h, n * sizeof(float));
    return d;
}

/* One BF16 GEMM case; A and B live at offsets of the device block `blk` (registered or not). */
static int gemm_case(Env *e, int ta, int tb, int M, int N, int K, int pad, int in_params) {
    const int lda = (ta ? M : K) + pad, ldb = (tb ? K : N) + pad, ldc = N + pad;
    const size_t na = (size_t)(ta ? K : M) * lda, nb = (size_t)(tb ? N : K) * ldb, nc = (size_t)M * ldc;
    float *A = h_rand(na, -1, 1), *B = h_rand(nb, -1, 1), *C0 = h_rand(nc, -1, 1);
    float *Ar = malloc(na * 4), *Br = malloc(nb * 4), *Cref = malloc(nc * 4), *Cg = malloc(nc * 4);
    for (size_t i = 0; i < na; i++) Ar[i] = bf16_round(A[i]);
    for (size_t i = 0; i < nb; i++) Br[i] = bf16_round(B[i]);
    memcpy(Cref, C0, nc * 4);
    e->c.ops->gemm(&e->c, ta, tb, M, N, K, 0.5f, Ar, lda, Br, ldb, 0.25f, Cref, ldc);
    KernelCtx *g = &e->g;
    float *blk = g->ops->alloc(g, (na + nb + 64) * sizeof(float));
    float *dA = blk + 7, *dB = blk + 7 + na + 5; /* odd offsets: 4-byte alignment only */
    g->ops->copy_h2d(g, dA, A, na * 4);
    g->ops->copy_h2d(g, dB, B, nb * 4);
    if (in_params) g->ops->params_register(g, blk, na + nb + 64);
    float *dC = to_dev(g, C0, nc);
    g->gemm_bf16 = 1;
    g->ops->gemm(g, ta, tb, M, N, K, 0.5f, dA, lda, dB, ldb, 0.25f, dC, ldc);
    g->gemm_bf16 = 0;
    g->ops->copy_d2h(g, Cg, dC, nc * 4);
    char what[96];
    snprintf(what, sizeof what, "bf16 gemm ta=%d tb=%d %dx%dx%d pad %d %s", ta, tb, M, N, K, pad,
             in_params ? "(param copy)" : "(converted)");
    int ok = report(what, rel_err(Cg, Cref, nc), TOL_BF16_GEMM);
    if (in_params) g->ops->params_register(g, dC, nc); /* forget blk before it is freed */
    g->ops->free(g, blk);
    g->ops->free(g, dC);
    free(A), free(B), free(C0), free(Ar), free(Br), free(Cref), free(Cg);
    return ok;
}

static void test_bf16_gemm(void **state) {
    Env *e = *state;
    int ok = 1;
    long cnt[5];
    gemm_cuda_counters(cnt);
    for (int in_params = 0; in_params < 2; in_params++)
        for (int ta = 0; ta < 2; ta++)
            for (int tb = 0; tb < 2; tb++) {
                ok &= gemm_case(e, ta, tb, 67, 130, 99, 0, in_params);
                ok &= gemm_case(e, ta, tb, 256, 320, 512, 3, in_params);
            }
    gemm_cuda_counters(cnt);
    printf("  gemm events: %ld plans built, %ld refused, %ld cublasGemmEx fallbacks (odd offsets and strides)\n",
           cnt[2], cnt[3], cnt[4]);
    /* row counts 300, 290, 260 share the bucket 320 (M of the forward, K of the weight gradient);
     * aligned operands: every call through the two cached cuBLASLt plans */
    for (int r = 0; r < 3; r++) {
        ok &= gemm_case(e, 0, 1, 300 - 10 * r * r, 128, 64, 0, 0);
        ok &= gemm_case(e, 1, 0, 64, 128, 300 - 10 * r * r, 0, 0);
    }
    gemm_cuda_counters(cnt);
    printf("  bucketed row counts: %ld plans built (2 expected), %ld fallbacks\n", cnt[2], cnt[4]);
    ok &= cnt[2] == 2 && cnt[4] == 0;
    assert_true(ok);
}

/* C = W x for a registered W; returns C on the host (n x 1 column as a 1 x n row: C(1,R) = x W^T) */
static void wx(KernelCtx *g, const float *dW, const float *dx, float *dC, float *hC, int R, int K) {
    g->gemm_bf16 = 1;
    g->ops->gemm(g, 0, 1, 1, R, K, 1.0f, dx, K, dW, K, 0.0f, dC, R);
    g->gemm_bf16 = 0;
    g->ops->copy_d2h(g, hC, dC, (size_t)R * 4);
}

static void ref_wx(const float *W, const float *x, float *C, int R, int K) {
    for (int r = 0; r < R; r++) {
        double s = 0;
        for (int k = 0; k < K; k++) s += (double)bf16_round(W[(size_t)r * K + k]) * bf16_round(x[k]);
        C[r] = (float)s;
    }
}

static void test_param_copy_follows_writes(void **state) {
    Env *e = *state;
    KernelCtx *g = &e->g;
    const int R = 64, K = 128;
    const size_t n = (size_t)R * K;
    float *W = h_rand(n, -1, 1), *x = h_rand(K, -1, 1), *C = malloc(R * 4), *Cref = malloc(R * 4);
    float *dW = to_dev(g, W, n), *dx = to_dev(g, x, K), *dC = g->ops->alloc(g, R * 4);
    g->ops->params_register(g, dW, n);
    int ok = 1;
    wx(g, dW, dx, dC, C, R, K);
    ref_wx(W, x, Cref, R, K);
    ok &= report("param copy: first use", rel_err(C, Cref, R), TOL_BF16_GEMM);
    /* adamw: the parameters move by about lr */
    float *grad = h_rand(n, -1, 1), *dg = to_dev(g, grad, n);
    float *dm = g->ops->alloc(g, n * 4), *dv = g->ops->alloc(g, n * 4);
    g->ops->adamw(g, dW, dg, dm, dv, n, 0.05f, 0.9f, 0.95f, 1e-8f, 0.0f, 1);
    g->ops->copy_d2h(g, W, dW, n * 4);
    wx(g, dW, dx, dC, C, R, K);
    ref_wx(W, x, Cref, R, K);
    ok &= report("param copy: after adamw", rel_err(C, Cref, R), TOL_BF16_GEMM);
    /* copy_h2d of new values into one row */
    float *row = h_rand(K, 2, 3);
    g->ops->copy_h2d(g, dW + 5 * K, row, K * 4);
    memcpy(W + 5 * K, row, K * 4);
    wx(g, dW, dx, dC, C, R, K);
    ref_wx(W, x, Cref, R, K);
    ok &= report("param copy: after copy_h2d", rel_err(C, Cref, R), TOL_BF16_GEMM);
    /* copy_d2d from x into row 9, zero of row 11 */
    g->ops->copy_d2d(g, dW + 9 * K, dx, K * 4);
    memcpy(W + 9 * K, x, K * 4);
    g->ops->zero(g, dW + 11 * K, K * 4);
    memset(W + 11 * K, 0, K * 4);
    wx(g, dW, dx, dC, C, R, K);
    ref_wx(W, x, Cref, R, K);
    ok &= report("param copy: after copy_d2d and zero", rel_err(C, Cref, R), TOL_BF16_GEMM);
    g->ops->params_register(g, dC, R); /* forget dW */
    g->ops->free(g, dW), g->ops->free(g, dx), g->ops->free(g, dC), g->ops->free(g, dg);
    g->ops->free(g, dm), g->ops->free(g, dv);
    free(W), free(x), free(C), free(Cref), free(grad), free(row);
    assert_true(ok);
}

static int head_case(Env *e, int N, int C, int V, int head_bf16) {
    KernelCtx *c = &e->c, *g = &e->g;
    float *h = h_rand((size_t)N * C, -1, 1), *W = h_rand((size_t)V * C, -0.5f, 0.5f);
    float *dlogp = h_rand(N, -1, 1), *dlse = h_rand(N, -0.5f, 0.5f);
    int *tgt = malloc(N * sizeof(int));
    for (int i = 0; i < N; i++) tgt[i] = i % 13 == 5 ? -1 : (int)(rng_uniform(98, 1, i) * V) % V;
    float *logp = malloc(N * 4), *lse = malloc(N * 4), *glogp = malloc(N * 4), *glse = malloc(N * 4);
    float *dh = calloc((size_t)N * C, 4), *dW = calloc((size_t)V * C, 4);
    float *gdh = malloc((size_t)N * C * 4), *gdW = malloc((size_t)V * C * 4);
    c->head_bf16 = g->head_bf16 = head_bf16;
    c->ops->lm_head_forward(c, logp, lse, NULL, h, W, tgt, N, C, V);
    c->ops->lm_head_backward(c, dh, dW, dlogp, dlse, h, W, tgt, lse, N, C, V);
    float *d_h = to_dev(g, h, (size_t)N * C), *d_W = to_dev(g, W, (size_t)V * C);
    float *d_dlogp = to_dev(g, dlogp, N), *d_dlse = to_dev(g, dlse, N);
    float *d_logp = g->ops->alloc(g, N * 4), *d_lse = g->ops->alloc(g, N * 4);
    float *d_dh = g->ops->alloc(g, (size_t)N * C * 4), *d_dW = g->ops->alloc(g, (size_t)V * C * 4);
    int *d_tgt = g->ops->alloc(g, N * sizeof(int));
    g->ops->copy_h2d(g, d_tgt, tgt, N * sizeof(int));
    g->ops->lm_head_forward(g, d_logp, d_lse, NULL, d_h, d_W, d_tgt, N, C, V);
    g->ops->lm_head_backward(g, d_dh, d_dW, d_dlogp, d_dlse, d_h, d_W, d_tgt, d_lse, N, C, V);
    g->ops->copy_d2h(g, glogp, d_logp, N * 4);
    g->ops->copy_d2h(g, glse, d_lse, N * 4);
    g->ops->copy_d2h(g, gdh, d_dh, (size_t)N * C * 4);
    g->ops->copy_d2h(g, gdW, d_dW, (size_t)V * C * 4);
    c->head_bf16 = g->head_bf16 = 0;
    char what[96];
    int ok = 1;
    const char *tag = head_bf16 ? " bf16 logits" : "";
    const double f = head_bf16 ? 50.0 : 1.0;
    snprintf(what, sizeof what, "3xTF32 head N=%d C=%d V=%d%s logp", N, C, V, tag);
    ok &= report(what, rel_err(glogp, logp, N), f * TOL_HEAD_FWD);
    snprintf(what, sizeof what, "3xTF32 head N=%d C=%d V=%d%s lse", N, C, V, tag);
    ok &= report(what, rel_err(glse, lse, N), f * TOL_HEAD_FWD);
    snprintf(what, sizeof what, "3xTF32 head N=%d C=%d V=%d%s dh", N, C, V, tag);
    ok &= report(what, rel_err(gdh, dh, (size_t)N * C), f * TOL_HEAD_BWD);
    snprintf(what, sizeof what, "3xTF32 head N=%d C=%d V=%d%s dW", N, C, V, tag);
    ok &= report(what, rel_err(gdW, dW, (size_t)V * C), f * TOL_HEAD_BWD);
    g->ops->free(g, d_h), g->ops->free(g, d_W), g->ops->free(g, d_dlogp), g->ops->free(g, d_dlse);
    g->ops->free(g, d_logp), g->ops->free(g, d_lse), g->ops->free(g, d_dh), g->ops->free(g, d_dW);
    g->ops->free(g, d_tgt);
    free(h), free(W), free(dlogp), free(dlse), free(tgt), free(logp), free(lse), free(glogp), free(glse);
    free(dh), free(dW), free(gdh), free(gdW);
    return ok;
}

static void test_head_3xtf32(void **state) {
    Env *e = *state;
    unsetenv("CISPO_CUDA_HEAD_SGEMM");
    int ok = 1;
    ok &= head_case(e, 3000, 96, 20000, 0); /* 2 row blocks x 3 vocabulary chunks */
    ok &= head_case(e, 37, 64, 5000, 0); /* decode-sized: below 256 rows the head stays SGEMM */
    ok &= head_case(e, 300, 96, 9000, 1);
    assert_true(ok);
}

int main(void) {
    int skip = gpu_skip_status("test_cuda_precision");
    if (skip >= 0) return skip;
    unsetenv("CISPO_CUDA_FAST16BF");
    printf("  %-52s %11s  %8s\n", "case", "rel err", "tol");
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_bf16_gemm),
        cmocka_unit_test(test_param_copy_follows_writes),
        cmocka_unit_test(test_head_3xtf32),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
