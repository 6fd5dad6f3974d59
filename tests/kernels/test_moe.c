/* tests/kernels/test_moe.c: MoE routing, sorting, permute and combine on the CPU backend.
 * labels: unit grad
 *
 * - route forward on a hand-made row (probs 1/8, 2/8, 3/8, 2/8: top-2 is expert 2 then the tie
 *   between 1 and 3 goes to 1; renormalised weights 0.6, 0.4) and against a float64 softmax;
 * - sort on a hand-made top-k table (stable order, an expert with no slots, offsets);
 * - permute / combine forward on the same example, values worked out by hand;
 * - route backward by finite differences through topk_w alone (dprobs NULL) and through both
 *   topk_w and dprobs, on logits whose top-k choice cannot change under the perturbation;
 * - permute backward (dx) and combine backward (dyp, dtopk_w) by finite differences;
 * - all backwards accumulate (called twice, they add twice);
 * - expert GEMMs (both layouts of W, beta 0 and 1, the weight gradient) against a float64 triple
 *   loop, with an expert that has no rows (its dW untouched).
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

static const uint64_t SEED = 4242;

static float *fbuf(size_t n) {
    float *p = calloc(n, sizeof(float));
    assert_non_null(p);
    return p;
}

static void expect_grad(const char *what, float *x, size_t n, const float *g, double (*loss)(void *), void *ud) {
    GcResult r = gc_check(x, n, g, loss, ud, GC_EPS, GC_FLOOR, 0);
    gc_report(what, r);
    assert_true(r.probed > 0);
    assert_true(r.max_rel < GC_TOL);
}

static void expect_doubled(const float *g0, const float *g_once, const float *g_twice, size_t n) {
    for (size_t i = 0; i < n; i++) {
        double once = (double)g_once[i] - g0[i], twice = (double)g_twice[i] - g0[i];
        assert_true(fabs(twice - 2.0 * once) < 1e-5 * (1.0 + fabs(twice)));
    }
}

static void test_route_forward(void **state) {
    KernelCtx ctx;
    kernel_ctx_init(&ctx, kernels_cpu(), 0);
    /* Row 0 by hand; rows 1..5 random. */
    enum { N = 6, E = 4, K = 2 };
    float logits[N * E], probs[N * E], w[N * K];
    int idx[N * K];
    logits[0] = 1.0f;
    logits[1] = 1.0f + logf(2.0f);
    logits[2] = 1.0f + logf(3.0f);
    logits[3] = logits[1];
    gc_fill_normal(logits + E, (N - 1) * E, SEED, 1, 0.0f, 2.0f);
    ctx.ops->moe_route_forward(&ctx, probs, idx, w, logits, N, E, K);
    assert_true(fabsf(probs[0] - 0.125f) < 1e-6f && fabsf(probs[1] - 0.25f) < 1e-6f);
    assert_true(fabsf(probs[2] - 0.375f) < 1e-6f && fabsf(probs[3] - 0.25f) < 1e-6f);
    assert_int_equal(idx[0], 2);
    assert_int_equal(idx[1], 1); /* tie between experts 1 and 3: lower index first */
    assert_true(fabsf(w[0] - 0.6f) < 1e-6f && fabsf(w[1] - 0.4f) < 1e-6f);
    for (int n = 1; n < N; n++) {
        double mx = -INFINITY, sum = 0.0, p[E];
        for (int e = 0; e < E; e++) mx = fmax(mx, logits[n * E + e]);
        for (int e = 0; e < E; e++) sum += p[e] = exp(logits[n * E + e] - mx);
        for (int e = 0; e < E; e++) assert_true(fabs(probs[n * E + e] - p[e] / sum) < 1e-6);
        int i0 = idx[n * K], i1 = idx[n * K + 1];
        assert_true(i0 != i1 && probs[n * E + i0] >= probs[n * E + i1]);
        for (int e = 0; e < E; e++)
            if (e != i0 && e != i1) assert_true(probs[n * E + e] <= probs[n * E + i1]);
        assert_true(fabsf(w[n * K] + w[n * K + 1] - 1.0f) < 1e-6f);
        assert_true(fabs(w[n * K] - probs[n * E + i0] / (probs[n * E + i0] + probs[n * E + i1])) < 1e-6);
    }
    kernel_ctx_free(&ctx);
}

/* N=3 tokens, K=2, E=4. Slots s = n*K + k go to experts {2,0 | 0,2 | 1,0}; expert 3 gets none.
 * Grouped, stable: e0: s1, s2, s5; e1: s4; e2: s0, s3; e3: -. */
static void test_sort_permute_combine(void **state) {
    KernelCtx ctx;
    kernel_ctx_init(&ctx, kernels_cpu(), 0);
    const KernelOps *ops = ctx.ops;
    enum { N = 3, K = 2, E = 4, NK = N * K, C = 2 };
    const int topk_idx[NK] = {2, 0, 0, 2, 1, 0};
    int sorted[NK], pos[NK], offsets[E + 1];
    memset(offsets, 0x7f, sizeof(offsets)); /* garbage in: the op must reset it */
    ops->moe_sort(&ctx, sorted, pos, offsets, topk_idx, N, K, E);
    const int want_sorted[NK] = {1, 2, 5, 4, 0, 3}, want_off[E + 1] = {0, 3, 4, 6, 6};
    const int want_pos[NK] = {4, 0, 1, 5, 3, 2};
    assert_memory_equal(sorted, want_sorted, sizeof(sorted));
    assert_memory_equal(pos, want_pos, sizeof(pos));
    assert_memory_equal(offsets, want_off, sizeof(offsets));

    /* Permute: xp row j = x row sorted[j]/K = tokens {0, 1, 2, 2, 0, 1}. */
    const float x[N * C] = {1, 2, 3, 4, 5, 6};
    float xp[NK * C];
    ops->moe_permute_forward(&ctx, xp, x, sorted, NK, K, C);
    const float want_xp[NK * C] = {1, 2, 3, 4, 5, 6, 5, 6, 1, 2, 3, 4};
    assert_memory_equal(xp, want_xp, sizeof(xp));
    float dx[N * C] = {0};
    const float dxp[NK * C] = {1, 0, 0, 1, 2, 0, 0, 2, 10, 0, 0, 10};
    ops->moe_permute_backward(&ctx, dx, dxp, sorted, pos, NK, K, C);
    const float want_dx[N * C] = {11, 0, 0, 11, 2, 2}; /* token 0 <- j 0, 4; token 1 <- j 1, 5; token 2 <- j 2, 3 */
    assert_memory_equal(dx, want_dx, sizeof(dx));

    /* Combine: y[s/K] += w[s] * yp[j]; expert outputs yp row j = (j, -j). */
    const float w[NK] = {0.5f, 0.25f, 0.75f, 0.125f, 1.0f, 2.0f};
    float yp[NK * C];
    for (int j = 0; j < NK; j++) yp[j * C] = (float)j, yp[j * C + 1] = (float)-j;
    float y[N * C] = {100, 100, 100, 100, 100, 100}; /* combine accumulates into y */
    ops->moe_combine_forward(&ctx, y, yp, w, sorted, pos, NK, K, C);
    /* token 0: s0 (j=4, w .5) + s1 (j=0, w .25) = 2; token 1: s2 (j=1, .75) + s3 (j=5, .125) = 1.375;
     * token 2: s4 (j=3, 1) + s5 (j=2, 2) = 7. */
    const float want_y[N * C] = {102, 98, 101.375f, 98.625f, 107, 93};
    for (int i = 0; i < N * C; i++) assert_true(fabsf(y[i] - want_y[i]) < 1e-5f);
    const float dy[N * C] = {1, 2, 3, 4, 5, 6};
    float dyp[NK * C] = {0}, dw[NK] = {0};
    ops->moe_combine_backward(&ctx, dyp, dw, dy, yp, w, sorted, NK, K, C);
    /* dyp[j] = w[s] dy[s/K]: j0=s1 (.25, tok0), j1=s2 (.75, tok1), j2=s5 (2, tok2), j3=s4 (1, tok2),
     * j4=s0 (.5, tok0), j5=s3 (.125, tok1). dw[s] = dot(yp[j], dy[s/K]) = j*(dy0 - dy1). */
    const float want_dyp[NK * C] = {0.25f, 0.5f, 2.25f, 3, 10, 12, 5, 6, 0.5f, 1, 0.375f, 0.5f};
    for (int i = 0; i < NK * C; i++) assert_true(fabsf(dyp[i] - want_dyp[i]) < 1e-6f);
    const float want_dw[NK] = {-4, 0, -1, -5, -3, -2};
    for (int s = 0; s < NK; s++) assert_true(fabsf(dw[s] - want_dw[s]) < 1e-6f);
    kernel_ctx_free(&ctx);
}

typedef struct {
    KernelCtx *ctx;
    const float *logits;
    float *probs, *w, *Rw, *Rp; /* Rp NULL: loss only through topk_w */
    int *idx;
    const int *idx0; /* the top-k choice at the unperturbed point */
    int N, E, K;
} RouteLoss;

static double loss_route(void *ud) {
    RouteLoss *o = ud;
    o->ctx->ops->moe_route_forward(o->ctx, o->probs, o->idx, o->w, o->logits, o->N, o->E, o->K);
    assert_memory_equal(o->idx, o->idx0, (size_t)o->N * o->K * sizeof(int)); /* choice is stable */
    double l = gc_dot(o->Rw, o->w, (size_t)o->N * o->K);
    if (o->Rp) l += gc_dot(o->Rp, o->probs, (size_t)o->N * o->E);
    return l;
}

static void test_route_backward(void **state) {
    KernelCtx ctx;
    kernel_ctx_init(&ctx, kernels_cpu(), 0);
    enum { N = 5, E = 6, K = 3 };
    /* Logits 0.6 apart (a shuffled ladder) plus noise < 0.1: the top-3 never changes under 1e-3 steps. */
    float logits[N * E], noise[N * E], probs[N * E], w[N * K], Rw[N * K], Rp[N * E];
    int idx[N * K], idx0[N * K];
    gc_fill_uniform(noise, N * E, SEED, 10, -0.1f, 0.1f);
    for (int n = 0; n < N; n++)
        for (int e = 0; e < E; e++) logits[n * E + e] = 0.6f * (float)((e * 5 + n * 2) % E) + noise[n * E + e];
    gc_fill_normal(Rw, N * K, SEED, 11, 0.0f, 1.0f);
    gc_fill_normal(Rp, N * E, SEED, 12, 0.0f, 1.0f);
    ctx.ops->moe_route_forward(&ctx, probs, idx0, w, logits, N, E, K);
    RouteLoss o = {&ctx, logits, probs, w, Rw, NULL, idx, idx0, N, E, K};

    float dl[N * E] = {0}, dl2[N * E], zero[N * E] = {0};
    ctx.ops->moe_route_backward(&ctx, dl, Rw, NULL, probs, idx0, w, N, E, K);
    expect_grad("moe_route via topk_w", logits, N * E, dl, loss_route, &o);
    double rowsum = 0.0; /* softmax gradients sum to zero per row */
    for (int e = 0; e < E; e++) rowsum += dl[e];
    assert_true(fabs(rowsum) < 1e-6);

    o.Rp = Rp;
    memset(dl, 0, sizeof(dl));
    ctx.ops->moe_route_forward(&ctx, probs, idx, w, logits, N, E, K);
    ctx.ops->moe_route_backward(&ctx, dl, Rw, Rp, probs, idx0, w, N, E, K);
    expect_grad("moe_route via topk_w+dprobs", logits, N * E, dl, loss_route, &o);
    ctx.ops->moe_route_forward(&ctx, probs, idx, w, logits, N, E, K); /* undo the probes' last state */
    memcpy(dl2, dl, sizeof(dl));
    ctx.ops->moe_route_backward(&ctx, dl2, Rw, Rp, probs, idx0, w, N, E, K);
    expect_doubled(zero, dl, dl2, N * E);
    kernel_ctx_free(&ctx);
}

typedef struct {
    KernelCtx *ctx;
    float *x, *xp, *yp, *w, *y, *Rxp, *Ry;
    const int *sorted, *pos;
    int N, NK, K, C;
} ShuffleLoss;

/* loss = sum(Rxp * permute(x)) + sum(Ry * combine(yp, w)) */
static double loss_shuffle(void *ud) {
    ShuffleLoss *o = ud;
    o->ctx->ops->moe_permute_forward(o->ctx, o->xp, o->x, o->sorted, o->NK, o->K, o->C);
    memset(o->y, 0, (size_t)o->N * o->C * sizeof(float));
    o->ctx->ops->moe_combine_forward(o->ctx, o->y, o->yp, o->w, o->sorted, o->pos, o->NK, o->K, o->C);
    return gc_dot(o->Rxp, o->xp, (size_t)o->NK * o->C) + gc_dot(o->Ry, o->y, (size_t)o->N * o->C);
}

static void test_permute_combine_backward(void **state) {
    KernelCtx ctx;
    kernel_ctx_init(&ctx, kernels_cpu(), 0);
    const KernelOps *ops = ctx.ops;
    enum { N = 7, K = 2, E = 5, NK = N * K, C = 6 };
    int topk_idx[NK], sorted[NK], pos[NK], offsets[E + 1];
    for (int s = 0; s < NK; s++) topk_idx[s] = (s * 3 + s / K) % E; /* distinct per token */
    for (int n = 0; n < N; n++) assert_true(topk_idx[n * K] != topk_idx[n * K + 1]);
    ops->moe_sort(&ctx, sorted, pos, offsets, topk_idx, N, K, E);
    for (int j = 0; j < NK; j++) assert_int_equal(pos[sorted[j]], j);
    for (int e = 0; e < E; e++)
        for (int j = offsets[e]; j < offsets[e + 1]; j++) {
            assert_int_equal(topk_idx[sorted[j]], e);
            if (j > offsets[e]) assert_true(sorted[j] > sorted[j - 1]); /* stable */
        }
    float *x = fbuf(N * C), *xp = fbuf(NK * C), *yp = fbuf(NK * C), *w = fbuf(NK), *y = fbuf(N * C);
    float *Rxp = fbuf(NK * C), *Ry = fbuf(N * C), *dx = fbuf(N * C), *dyp = fbuf(NK * C), *dw = fbuf(NK);
    gc_fill_normal(x, N * C, SEED, 20, 0.0f, 1.0f);
    gc_fill_normal(yp, NK * C, SEED, 21, 0.0f, 1.0f);
    gc_fill_uniform(w, NK, SEED, 22, 0.1f, 0.9f);
    gc_fill_normal(Rxp, NK * C, SEED, 23, 0.0f, 1.0f);
    gc_fill_normal(Ry, N * C, SEED, 24, 0.0f, 1.0f);
    ShuffleLoss o = {&ctx, x, xp, yp, w, y, Rxp, Ry, sorted, pos, N, NK, K, C};
    ops->moe_permute_backward(&ctx, dx, Rxp, sorted, pos, NK, K, C);
    ops->moe_combine_backward(&ctx, dyp, dw, Ry, yp, w, sorted, NK, K, C);
    expect_grad("moe_permute dx", x, N * C, dx, loss_shuffle, &o);
    expect_grad("moe_combine dyp", yp, NK * C, dyp, loss_shuffle, &o);
    expect_grad("moe_combine dtopk_w", w, NK, dw, loss_shuffle, &o);

    float *z = fbuf(NK * C), *dx2 = fbuf(N * C), *dyp2 = fbuf(NK * C), *dw2 = fbuf(NK);
    memcpy(dx2, dx, N * C * sizeof(float));
    memcpy(dyp2, dyp, NK * C * sizeof(float));
    memcpy(dw2, dw, NK * sizeof(float));
    ops->moe_permute_backward(&ctx, dx2, Rxp, sorted, pos, NK, K, C);
    ops->moe_combine_backward(&ctx, dyp2, dw2, Ry, yp, w, sorted, NK, K, C);
    expect_doubled(z, dx, dx2, N * C);
    expect_doubled(z, dyp, dyp2, NK * C);
    expect_doubled(z, dw, dw2, NK);
    free(x), free(xp), free(yp), free(w), free(y), free(Rxp), free(Ry), free(dx), free(dyp), free(dw);
    free(z), free(dx2), free(dyp2), free(dw2);
    kernel_ctx_free(&ctx);
}

/* Y[j] = X[j] op(W_e(j)) (+ beta Y) and dW_e += G_e^T X_e in float64, row by row */
static void expert_gemm_ref(double *Y, double *dW, const float *X, const float *W, const float *G, const int *off,
                            int E, int Nc, int Kc, int transW) {
    for (int e = 0; e < E; e++)
        for (int j = off[e]; j < off[e + 1]; j++)
            for (int a = 0; a < Nc; a++)
                for (int b = 0; b < Kc; b++) {
                    double w = transW ? W[((size_t)e * Nc + a) * Kc + b] : W[((size_t)e * Kc + b) * Nc + a];
                    Y[(size_t)j * Nc + a] += (double)X[(size_t)j * Kc + b] * w;
                    dW[((size_t)e * Nc + a) * Kc + b] += (double)G[(size_t)j * Nc + a] * X[(size_t)j * Kc + b];
                }
}

static void test_expert_gemm(void **state) {
    KernelCtx ctx;
    kernel_ctx_init(&ctx, kernels_cpu(), 0);
    enum { E = 4, NK = 11, Nc = 5, Kc = 7 };
    const int off[E + 1] = {0, 4, 4, 9, 11}; /* expert 1 has no rows */
    float *X = fbuf(NK * Kc), *W = fbuf(E * Nc * Kc), *G = fbuf(NK * Nc), *Y = fbuf(NK * Nc), *dW = fbuf(E * Nc * Kc);
    gc_fill_normal(X, NK * Kc, SEED, 30, 0.0f, 1.0f);
    gc_fill_normal(W, E * Nc * Kc, SEED, 31, 0.0f, 1.0f);
    gc_fill_normal(G, NK * Nc, SEED, 32, 0.0f, 1.0f);
    for (int transW = 0; transW < 2; transW++) {
        double *Yr = calloc(NK * Nc, sizeof(double)), *dWr = calloc(E * Nc * Kc, sizeof(double));
        gc_fill_normal(Y, NK * Nc, SEED, 33, 0.0f, 1.0f);
        gc_fill_normal(dW, E * Nc * Kc, SEED, 34, 0.0f, 1.0f);
        for (int i = 0; i < NK * Nc; i++) Yr[i] = transW ? 0.0 : Y[i]; /* beta 0, then 1 */
        for (int i = 0; i < E * Nc * Kc; i++) dWr[i] = dW[i];
        expert_gemm_ref(Yr, dWr, X, W, G, off, E, Nc, Kc, transW);
        ctx.ops->moe_expert_gemm(&ctx, Y, X, W, off, E, Nc, Kc, transW, transW ? 0.0f : 1.0f);
        ctx.ops->moe_expert_gemm_dw(&ctx, dW, G, X, off, E, Nc, Kc);
        for (int i = 0; i < NK * Nc; i++) assert_true(fabs(Y[i] - Yr[i]) < 1e-4);
        for (int i = 0; i < E * Nc * Kc; i++) assert_true(fabs(dW[i] - dWr[i]) < 1e-4);
        free(Yr), free(dWr);
    }
    free(X), free(W), free(G), free(Y), free(dW);
    kernel_ctx_free(&ctx);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_route_forward),
        cmocka_unit_test(test_sort_permute_combine),
        cmocka_unit_test(test_route_backward),
        cmocka_unit_test(test_permute_combine_backward),
        cmocka_unit_test(test_expert_gemm),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
