/* tests/kernels/test_ops_dense.c: forward values of the CPU backend's dense ops.
 * labels: unit
 *
 * Each op is compared with a naive float64 reference written here on random inputs (gemm in all
 * four transpose combinations with padded strides and beta != 0; axpby, scale, SiLU, sigmoid gate,
 * SwiGLU; RMSNorm; embedding), or with values worked out by hand (RoPE at angle 1 rad, AdamW steps
 * including the MiniMax-M1 setting eps = 1e-15 with gradients ~1e-14, and pure weight decay).
 * Also: the ops table is complete, alloc is zero-filled and 64-byte aligned, the context
 * lifecycle is idempotent, RoPE's inverse undoes it and leaves dims >= rot_dim alone.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "kernels/backend.h"
#include "tests/kernels/gradcheck.h"

static const uint64_t SEED = 20240611;

static float *fbuf(size_t n) {
    float *p = calloc(n, sizeof(float));
    assert_non_null(p);
    return p;
}

/* max |a - b| / max(|b|, floor) */
static double max_rel_f64(const float *a, const double *b, size_t n, double floor) {
    double worst = 0.0;
    for (size_t i = 0; i < n; i++) {
        double e = fabs((double)a[i] - b[i]) / fmax(fabs(b[i]), floor);
        if (e > worst || isnan(e)) worst = isnan(e) ? INFINITY : e;
    }
    return worst;
}

static void test_table_and_memory(void **state) {
    const KernelOps *ops = kernels_cpu();
    assert_non_null(ops);
    assert_string_equal(ops->name, "cpu");
#define HAS(f) assert_true(ops->f != NULL)
    HAS(alloc); HAS(free); HAS(copy_h2d); HAS(copy_d2h); HAS(copy_d2d); HAS(zero); HAS(sync); HAS(gemm);
    HAS(axpby); HAS(scale); HAS(silu_forward); HAS(silu_backward); HAS(sigmoid_gate_forward);
    HAS(sigmoid_gate_backward); HAS(swiglu_forward); HAS(swiglu_backward); HAS(embedding_forward);
    HAS(embedding_backward); HAS(rmsnorm_forward); HAS(rmsnorm_backward); HAS(rope_forward); HAS(rope_backward);
    HAS(lightning_forward); HAS(lightning_backward); HAS(lightning_decode); HAS(lightning_ws_bytes);
    HAS(attention_forward); HAS(attention_backward); HAS(attention_decode); HAS(attention_ws_bytes);
    HAS(moe_route_forward); HAS(moe_route_backward); HAS(moe_sort); HAS(moe_permute_forward);
    HAS(moe_permute_backward); HAS(moe_combine_forward); HAS(moe_combine_backward); HAS(lm_head_forward);
    HAS(lm_head_backward); HAS(lm_head_ws_bytes); HAS(adamw); HAS(sumsq); HAS(params_register);
    HAS(sample); HAS(sample_ws_bytes);
    HAS(moe_expert_gemm); HAS(moe_expert_gemm_dw); HAS(kv_append);
#undef HAS
#ifndef CISPO_HAVE_CUDA
    assert_null(kernels_cuda());
#endif
    KernelCtx ctx;
    kernel_ctx_init(&ctx, ops, 1000);
    assert_ptr_equal(ctx.ops, ops);
    assert_int_equal(ctx.ws_bytes, 1000);
    assert_int_equal((uintptr_t)ctx.ws % 64, 0);
    const unsigned char *ws = ctx.ws;
    for (size_t i = 0; i < 1000; i++) assert_int_equal(ws[i], 0);
    float *a = ops->alloc(&ctx, 13 * sizeof(float));
    assert_int_equal((uintptr_t)a % 64, 0);
    float src[13], back[13];
    for (int i = 0; i < 13; i++) src[i] = (float)i - 6.5f;
    ops->copy_h2d(&ctx, a, src, sizeof(src));
    float *b = ops->alloc(&ctx, sizeof(src));
    ops->copy_d2d(&ctx, b, a, sizeof(src));
    ops->copy_d2h(&ctx, back, b, sizeof(src));
    assert_memory_equal(back, src, sizeof(src));
    ops->zero(&ctx, b, 5 * sizeof(float));
    ops->copy_d2h(&ctx, back, b, sizeof(src));
    for (int i = 0; i < 13; i++) assert_true(back[i] == (i < 5 ? 0.0f : src[i]));
    ops->sync(&ctx);
    ops->free(&ctx, a);
    ops->free(&ctx, b);
    ops->free(&ctx, NULL);
    kernel_ctx_free(&ctx);
    assert_null(ctx.ws);
    assert_int_equal(ctx.ws_bytes, 0);
    kernel_ctx_free(&ctx); /* idempotent */
}

/* One gemm case: op(A)(M,K), op(B)(K,N), C(M,N) with padded strides, against float64. */
static void gemm_case(int ta, int tb) {
    const KernelOps *ops = kernels_cpu();
    KernelCtx ctx;
    kernel_ctx_init(&ctx, ops, 0);
    const int M = 7, N = 5, K = 9;
    int arows = ta ? K : M, acols = ta ? M : K, brows = tb ? N : K, bcols = tb ? K : N;
    int lda = acols + 3, ldb = bcols + 2, ldc = N + 4;
    float *A = fbuf((size_t)arows * lda), *B = fbuf((size_t)brows * ldb), *C = fbuf((size_t)M * ldc);
    gc_fill_normal(A, (size_t)arows * lda, SEED, 1, 0.0f, 1.0f);
    gc_fill_normal(B, (size_t)brows * ldb, SEED, 2, 0.0f, 1.0f);
    gc_fill_normal(C, (size_t)M * ldc, SEED, 3, 0.0f, 1.0f);
    float *C0 = fbuf((size_t)M * ldc);
    memcpy(C0, C, (size_t)M * ldc * sizeof(float));
    const float alpha = 1.25f, beta = -0.5f;
    ops->gemm(&ctx, ta, tb, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc);
    for (int i = 0; i < M; i++) {
        for (int j = 0; j < ldc; j++) {
            if (j >= N) { /* padding columns untouched */
                assert_true(C[i * ldc + j] == C0[i * ldc + j]);
                continue;
            }
            double s = 0.0;
            for (int k = 0; k < K; k++) {
                double a = ta ? A[k * lda + i] : A[i * lda + k];
                double b = tb ? B[j * ldb + k] : B[k * ldb + j];
                s += a * b;
            }
            double ref = alpha * s + beta * C0[i * ldc + j];
            assert_true(fabs(C[i * ldc + j] - ref) < 1e-5 * (1.0 + fabs(ref)));
        }
    }
    free(A);
    free(B);
    free(C);
    free(C0);
    kernel_ctx_free(&ctx);
}

static void test_gemm(void **state) {
    gemm_case(0, 0);
    gemm_case(0, 1);
    gemm_case(1, 0);
    gemm_case(1, 1);
}

static void test_elementwise(void **state) {
    const KernelOps *ops = kernels_cpu();
    KernelCtx ctx;
    kernel_ctx_init(&ctx, ops, 0);
    enum { n = 257 };
    float *x = fbuf(n), *y = fbuf(n), *out = fbuf(n), *g = fbuf(n);
    double ref[n];
    gc_fill_normal(x, n, SEED, 10, 0.0f, 3.0f);
    gc_fill_normal(y, n, SEED, 11, 0.0f, 1.0f);
    gc_fill_normal(g, n, SEED, 12, 0.0f, 2.0f);
    x[0] = -100.0f; /* saturating sigmoid must give 0, not NaN */
    x[1] = 100.0f;
    memcpy(out, y, n * sizeof(float));
    ops->axpby(&ctx, out, 2.0f, x, -0.5f, n);
    for (int i = 0; i < n; i++) ref[i] = 2.0 * x[i] - 0.5 * y[i];
    assert_true(max_rel_f64(out, ref, n, 1.0) < 1e-6);
    ops->scale(&ctx, out, x, 0.25f, n);
    for (int i = 0; i < n; i++) assert_true(out[i] == x[i] * 0.25f);
    ops->silu_forward(&ctx, out, x, n);
    for (int i = 0; i < n; i++) ref[i] = x[i] / (1.0 + exp(-(double)x[i]));
    assert_true(max_rel_f64(out, ref, n, 1e-3) < 1e-5);
    assert_true(out[0] == 0.0f || fabsf(out[0]) < 1e-30f);
    assert_true(fabsf(out[1] - 100.0f) < 1e-4f);
    ops->sigmoid_gate_forward(&ctx, out, g, y, n);
    for (int i = 0; i < n; i++) ref[i] = y[i] / (1.0 + exp(-(double)g[i]));
    assert_true(max_rel_f64(out, ref, n, 1e-3) < 1e-5);
    free(x);
    free(y);
    free(out);
    free(g);
    kernel_ctx_free(&ctx);
}

static void test_swiglu(void **state) {
    const KernelOps *ops = kernels_cpu();
    KernelCtx ctx;
    kernel_ctx_init(&ctx, ops, 0);
    const int R = 6, F = 11;
    float *gu = fbuf((size_t)R * 2 * F), *out = fbuf((size_t)R * F);
    double *ref = calloc((size_t)R * F, sizeof(double));
    gc_fill_normal(gu, (size_t)R * 2 * F, SEED, 20, 0.0f, 2.0f);
    ops->swiglu_forward(&ctx, out, gu, R, F);
    for (int r = 0; r < R; r++)
        for (int f = 0; f < F; f++) {
            double a = gu[r * 2 * F + f], u = gu[r * 2 * F + F + f];
            ref[r * F + f] = a / (1.0 + exp(-a)) * u;
        }
    assert_true(max_rel_f64(out, ref, (size_t)R * F, 1e-3) < 1e-5);
    free(gu);
    free(out);
    free(ref);
    kernel_ctx_free(&ctx);
}

static void test_rmsnorm_embedding(void **state) {
    const KernelOps *ops = kernels_cpu();
    KernelCtx ctx;
    kernel_ctx_init(&ctx, ops, 0);
    const int N = 5, C = 48, V = 9;
    const float eps = 1e-5f;
    float *x = fbuf((size_t)N * C), *w = fbuf(C), *out = fbuf((size_t)N * C), *rstd = fbuf(N);
    gc_fill_normal(x, (size_t)N * C, SEED, 30, 0.5f, 2.0f);
    gc_fill_uniform(w, C, SEED, 31, 0.5f, 1.5f);
    for (int c = 0; c < C; c++) x[4 * C + c] = 0.0f; /* all-zero row: rstd = 1/sqrt(eps), out = 0 */
    ops->rmsnorm_forward(&ctx, out, rstd, x, w, N, C, eps);
    for (int n = 0; n < N; n++) {
        double ss = 0.0;
        for (int c = 0; c < C; c++) ss += (double)x[n * C + c] * x[n * C + c];
        double r = 1.0 / sqrt(ss / C + eps);
        assert_true(fabs(rstd[n] - r) < 1e-6 * r);
        for (int c = 0; c < C; c++) {
            double ref = w[c] * x[n * C + c] * r;
            assert_true(fabs(out[n * C + c] - ref) < 1e-5 * (1.0 + fabs(ref)));
        }
    }
    assert_true(fabsf(rstd[4] - 1.0f / sqrtf(eps)) < 1e-2f);

    float *wte = fbuf((size_t)V * C), *emb = fbuf((size_t)N * C);
    gc_fill_normal(wte, (size_t)V * C, SEED, 32, 0.0f, 1.0f);
    int tokens[5] = {3, 0, 8, 3, 5};
    ops->embedding_forward(&ctx, emb, tokens, wte, N, C);
    for (int n = 0; n < N; n++) assert_memory_equal(emb + n * C, wte + tokens[n] * C, C * sizeof(float));
    free(x);
    free(w);
    free(out);
    free(rstd);
    free(wte);
    free(emb);
    kernel_ctx_free(&ctx);
}

/* RoPE on two packed sequences (lengths 3 and 2, pos0 = {0, 1000}), nh=2, HS=6, rot_dim=4. */
static void test_rope(void **state) {
    const KernelOps *ops = kernels_cpu();
    KernelCtx ctx;
    kernel_ctx_init(&ctx, ops, 0);
    const int nh = 2, HS = 6, rot = 4, N = 5;
    const float theta = 10000.0f;
    int start[3] = {0, 3, 5}, pos0[2] = {0, 1000};
    SeqPack pack = {2, start, pos0};
    size_t n = (size_t)N * nh * HS;
    float *x = fbuf(n), *x0 = fbuf(n);
    gc_fill_normal(x0, n, SEED, 40, 0.0f, 1.0f);
    memcpy(x, x0, n * sizeof(float));
    ops->rope_forward(&ctx, x, &pack, nh, HS, rot, theta);
    for (int t = 0; t < N; t++) {
        int pos = t < 3 ? t : 1000 + (t - 3);
        for (int h = 0; h < nh; h++) {
            const float *a = x0 + (t * nh + h) * HS;
            const float *b = x + (t * nh + h) * HS;
            for (int i = 0; i < rot / 2; i++) {
                float inv = (float)(1.0 / pow(theta, 2.0 * i / rot)); /* 1, then 0.01 */
                double ang = (double)((float)pos * inv);
                double r1 = a[i] * cos(ang) - a[i + 2] * sin(ang);
                double r2 = a[i + 2] * cos(ang) + a[i] * sin(ang);
                assert_true(fabs(b[i] - r1) < 1e-5 && fabs(b[i + 2] - r2) < 1e-5);
            }
            for (int d = rot; d < HS; d++) assert_true(b[d] == a[d]); /* pass-through dims */
        }
    }
    /* Token 1 (pos 1), head 0, pair 0: angle exactly 1 rad. */
    {
        const float *a = x0 + 1 * nh * HS, *b = x + 1 * nh * HS;
        const double c1 = 0.54030230586813977, s1 = 0.84147098480789651;
        assert_true(fabs(b[0] - (a[0] * c1 - a[2] * s1)) < 1e-6);
        assert_true(fabs(b[2] - (a[2] * c1 + a[0] * s1)) < 1e-6);
    }
    /* Token 0 (pos 0) is unchanged. */
    for (int d = 0; d < nh * HS; d++) assert_true(fabsf(x[d] - x0[d]) < 1e-7f);
    /* The backward (inverse rotation) undoes the forward. */
    ops->rope_backward(&ctx, x, &pack, nh, HS, rot, theta);
    for (size_t i = 0; i < n; i++) assert_true(fabsf(x[i] - x0[i]) < 1e-6f);
    /* pos0 = NULL means positions 0.. in every sequence: sequence 1's first token is unchanged. */
    SeqPack pack0 = {2, start, NULL};
    memcpy(x, x0, n * sizeof(float));
    ops->rope_forward(&ctx, x, &pack0, nh, HS, rot, theta);
    for (int d = 0; d < nh * HS; d++) assert_true(x[3 * nh * HS + d] == x0[3 * nh * HS + d]);
    free(x);
    free(x0);
    kernel_ctx_free(&ctx);
}

/* One AdamW parameter through two steps, against the formula in float64. */
static double adam_ref(double p, const double *g, int steps, double lr, double b1, double b2, double eps,
                       double wd) {
    double m = 0.0, v = 0.0;
    for (int t = 1; t <= steps; t++) {
        m = b1 * m + (1 - b1) * g[t - 1];
        v = b2 * v + (1 - b2) * g[t - 1] * g[t - 1];
        double mh = m / (1 - pow(b1, t)), vh = v / (1 - pow(b2, t));
        p -= lr * (mh / (sqrt(vh) + eps) + wd * p);
    }
    return p;
}

static void test_adamw(void **state) {
    const KernelOps *ops = kernels_cpu();
    KernelCtx ctx;
    kernel_ctx_init(&ctx, ops, 0);
    /* Case 1 by hand: p=1, g=0.5 then -0.25, lr 0.1, b=(0.9, 0.95), eps 1e-8, wd 0.
     * step 1: m=0.05, v=0.0125, mhat=0.5, vhat=0.25 -> p = 1 - 0.1*0.5/0.5 = 0.9
     * step 2: m=0.02, v=0.015, mhat=0.02/0.19, vhat=0.015/0.0975 -> p = 0.9 - 0.0268369... */
    float p = 1.0f, m = 0.0f, v = 0.0f, g = 0.5f;
    ops->adamw(&ctx, &p, &g, &m, &v, 1, 0.1f, 0.9f, 0.95f, 1e-8f, 0.0f, 1);
    assert_true(fabsf(m - 0.05f) < 1e-7f && fabsf(v - 0.0125f) < 1e-8f);
    assert_true(fabsf(p - 0.9f) < 1e-6f);
    g = -0.25f;
    ops->adamw(&ctx, &p, &g, &m, &v, 1, 0.1f, 0.9f, 0.95f, 1e-8f, 0.0f, 2);
    assert_true(fabsf(m - 0.02f) < 1e-7f && fabsf(v - 0.015f) < 1e-8f);
    double upd2 = (0.02 / 0.19) / sqrt(0.015 / 0.0975);
    assert_true(fabs(p - (0.9 - 0.1 * upd2)) < 1e-6);
    assert_true(fabs(p - 0.8731631) < 2e-6);

    /* Case 2, the M1 setting: eps = 1e-15, |g| ~ 1e-14 (g^2 ~ 1e-28 must not flush to zero).
     * step 1: mhat = g, vhat = g^2 -> update = g / (|g| + eps) = 1e-14 / 1.1e-14 = 0.909090... */
    float p2[2] = {0.5f, -0.25f}, m2[2] = {0}, v2[2] = {0};
    float g1[2] = {1e-14f, -3e-14f}, g2[2] = {-2e-14f, 5e-15f};
    const float lr = 1e-3f, eps = 1e-15f;
    ops->adamw(&ctx, p2, g1, m2, v2, 2, lr, 0.9f, 0.95f, eps, 0.0f, 1);
    assert_true(v2[0] > 0.0f && fabs(v2[0] - 0.05 * 1e-28) < 1e-3 * 5e-30);
    assert_true(fabs(p2[0] - (0.5 - 1e-3 * (1e-14 / 1.1e-14))) < 1e-7);
    assert_true(fabs(p2[1] - (-0.25 + 1e-3 * (3e-14 / 3.1e-14))) < 1e-7);
    ops->adamw(&ctx, p2, g2, m2, v2, 2, lr, 0.9f, 0.95f, eps, 0.0f, 2);
    double ga[2] = {g1[0], g2[0]}, gb[2] = {g1[1], g2[1]};
    assert_true(fabs(p2[0] - adam_ref(0.5, ga, 2, lr, 0.9, 0.95, eps, 0.0)) < 1e-7);
    assert_true(fabs(p2[1] - adam_ref(-0.25, gb, 2, lr, 0.9, 0.95, eps, 0.0)) < 1e-7);
    /* step 2 of element 0 by hand: m = 0.09e-14 - 0.2e-14 = -1.1e-15, v = 0.0475e-28 + 0.2e-28. */
    assert_true(fabs(m2[0] - (-1.1e-15)) < 1e-3 * 1.1e-15);
    assert_true(fabs(v2[0] - 0.2475e-28) < 1e-3 * 0.2475e-28);

    /* Case 3, decoupled weight decay alone (g = 0): p <- p (1 - lr wd) each step. */
    float p3 = 2.0f, m3 = 0.0f, v3 = 0.0f, g3 = 0.0f;
    ops->adamw(&ctx, &p3, &g3, &m3, &v3, 1, 0.1f, 0.9f, 0.95f, 1e-8f, 0.5f, 1);
    assert_true(fabsf(p3 - 1.9f) < 1e-6f);
    ops->adamw(&ctx, &p3, &g3, &m3, &v3, 1, 0.1f, 0.9f, 0.95f, 1e-8f, 0.5f, 2);
    assert_true(fabsf(p3 - 1.805f) < 1e-6f);
    /* Decay and gradient together. */
    float p4 = 3.0f, m4 = 0.0f, v4 = 0.0f, g4 = 2.0f;
    ops->adamw(&ctx, &p4, &g4, &m4, &v4, 1, 0.01f, 0.9f, 0.999f, 1e-8f, 0.1f, 1);
    assert_true(fabs(p4 - (3.0 - 0.01 * (1.0 + 0.1 * 3.0))) < 1e-6); /* = 2.987 */
    kernel_ctx_free(&ctx);
}

static void test_sumsq(void **state) {
    const KernelOps *ops = kernels_cpu();
    KernelCtx ctx;
    kernel_ctx_init(&ctx, ops, 0);
    enum { n = 10007 };
    float *x = fbuf(n);
    gc_fill_normal(x, n, SEED, 50, 0.0f, 1.0f);
    double ref = 0.0;
    for (int i = 0; i < n; i++) ref += (double)x[i] * x[i];
    assert_true(fabs(ops->sumsq(&ctx, x, n) - ref) < 1e-12 * ref);
    float tiny[3] = {1e-20f, 3e-20f, -2e-20f}; /* squares underflow in float, not in double */
    assert_true(fabs(ops->sumsq(&ctx, tiny, 3) - 14e-40) < 1e-3 * 14e-40);
    assert_true(ops->sumsq(&ctx, x, 0) == 0.0);
    free(x);
    kernel_ctx_free(&ctx);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_table_and_memory), cmocka_unit_test(test_gemm),
        cmocka_unit_test(test_elementwise),      cmocka_unit_test(test_swiglu),
        cmocka_unit_test(test_rmsnorm_embedding), cmocka_unit_test(test_rope),
        cmocka_unit_test(test_adamw),            cmocka_unit_test(test_sumsq),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
