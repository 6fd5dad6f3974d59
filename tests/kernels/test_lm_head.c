/* tests/kernels/test_lm_head.c: the chunked FP32 LM head (kernels/cpu/lm_head.c).
 * labels: unit grad
 *
 * - forward logp / lse / logits_out against a naive float64 full softmax, with V = 9000 (two full
 *   4096-row vocabulary chunks and a ragged third), N = 70 (two row blocks), some targets < 0 and
 *   one row with logits in the hundreds (the online log-sum-exp must not overflow); also V < chunk;
 * - the workspace does not grow with V beyond one chunk;
 * - backward dh, dW against float64 reference gradients at V = 9000 (with dlse and targets < 0);
 * - backward by finite differences at small V (dh and dW, with and without dlse) and at V = 9000
 *   (dh); rows with target < 0 and no dlse give no gradient; the backward accumulates;
 * - ctx.head_bf16: every logit is the BF16 rounding (nearest even) of the FP32 one, lse/logp follow
 *   the rounded logits, and the result differs from the FP32 head (so the flag is not a no-op).
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

static const uint64_t SEED = 31337;

static float *fbuf(size_t n) {
    float *p = calloc(n, sizeof(float));
    assert_non_null(p);
    return p;
}

/* Naive float64 reference: lse(N), logp(N), and optionally the softmax P(N,V). */
static void ref_forward(double *lse, double *logp, double *P, const float *h, const float *W, const int *targets,
                        int N, int C, int V) {
    double *l = calloc((size_t)V, sizeof(double));
    assert_non_null(l);
    for (int n = 0; n < N; n++) {
        double mx = -INFINITY;
        for (int v = 0; v < V; v++) {
            double s = 0.0;
            for (int c = 0; c < C; c++) s += (double)h[n * C + c] * W[(size_t)v * C + c];
            l[v] = s;
            mx = fmax(mx, s);
        }
        double sum = 0.0;
        for (int v = 0; v < V; v++) sum += exp(l[v] - mx);
        lse[n] = mx + log(sum);
        logp[n] = targets[n] >= 0 ? l[targets[n]] - lse[n] : 0.0;
        if (P)
            for (int v = 0; v < V; v++) P[(size_t)n * V + v] = exp(l[v] - lse[n]);
    }
    free(l);
}

typedef struct {
    int N, C, V;
    float *h, *W, *logp, *lse, *Rl, *Rs; /* Rs may be NULL */
    int *targets;
} Head;

static void head_alloc(Head *hd, int N, int C, int V, uint64_t stream) {
    hd->N = N, hd->C = C, hd->V = V;
    hd->h = fbuf((size_t)N * C);
    hd->W = fbuf((size_t)V * C);
    hd->logp = fbuf(N);
    hd->lse = fbuf(N);
    hd->Rl = fbuf(N);
    hd->Rs = fbuf(N);
    hd->targets = calloc((size_t)N, sizeof(int));
    gc_fill_normal(hd->h, (size_t)N * C, SEED, stream, 0.0f, 1.0f);
    gc_fill_normal(hd->W, (size_t)V * C, SEED, stream + 1, 0.0f, 0.7f);
    gc_fill_normal(hd->Rl, N, SEED, stream + 2, 0.0f, 1.0f);
    gc_fill_normal(hd->Rs, N, SEED, stream + 3, 0.0f, 1.0f);
    for (int n = 0; n < N; n++) hd->targets[n] = (n % 5 == 3) ? -1 : (int)((n * 7919L + 13) % V);
}

static void head_free(Head *hd) {
    free(hd->h), free(hd->W), free(hd->logp), free(hd->lse), free(hd->Rl), free(hd->Rs), free(hd->targets);
}

static void check_forward(int N, int C, int V, float big_row_scale) {
    KernelCtx ctx;
    kernel_ctx_init(&ctx, kernels_cpu(), kernels_cpu()->lm_head_ws_bytes(N, C, V));
    Head hd;
    head_alloc(&hd, N, C, V, 1);
    for (int c = 0; N > 1 && c < C; c++) hd.h[C + c] *= big_row_scale; /* row 1: logits in the hundreds */
    float *logits = fbuf((size_t)N * V);
    double *lse = calloc((size_t)N, sizeof(double)), *logp = calloc((size_t)N, sizeof(double));
    ctx.ops->lm_head_forward(&ctx, hd.logp, hd.lse, logits, hd.h, hd.W, hd.targets, N, C, V);
    ref_forward(lse, logp, NULL, hd.h, hd.W, hd.targets, N, C, V);
    for (int n = 0; n < N; n++) {
        assert_true(isfinite(hd.lse[n]));
        assert_true(fabs(hd.lse[n] - lse[n]) < 2e-6 * (1.0 + fabs(lse[n])));
        assert_true(fabs(hd.logp[n] - logp[n]) < 2e-6 * (1.0 + fabs(lse[n])));
        if (hd.targets[n] < 0) assert_true(hd.logp[n] == 0.0f);
        for (int v = 0; v < V; v += 97) { /* logits_out holds the full logits */
            double s = 0.0;
            for (int c = 0; c < C; c++) s += (double)hd.h[n * C + c] * hd.W[(size_t)v * C + c];
            assert_true(fabs(logits[(size_t)n * V + v] - s) < 1e-5 * (1.0 + fabs(s)));
        }
        assert_true(logits[(size_t)n * V + V - 1] != 0.0f); /* last (ragged-chunk) column written */
    }
    if (big_row_scale > 1.0f) assert_true(lse[1] > 100.0);
    /* Without logits_out: same results. */
    float *logp2 = fbuf(N), *lse2 = fbuf(N);
    ctx.ops->lm_head_forward(&ctx, logp2, lse2, NULL, hd.h, hd.W, hd.targets, N, C, V);
    assert_memory_equal(logp2, hd.logp, (size_t)N * sizeof(float));
    assert_memory_equal(lse2, hd.lse, (size_t)N * sizeof(float));
    free(logits), free(lse), free(logp), free(logp2), free(lse2);
    head_free(&hd);
    kernel_ctx_free(&ctx);
}

static void test_forward(void **state) {
    check_forward(70, 16, 9000, 40.0f); /* V = 2 * 4096 + 808 */
    check_forward(1, 8, 37, 1.0f);
    check_forward(3, 5, 4096, 1.0f); /* exactly one chunk */
    /* Workspace: one row block by one vocabulary chunk at most, far below N x V. */
    size_t ws = kernels_cpu()->lm_head_ws_bytes(1024, 64, 200064);
    assert_true(ws <= (size_t)64 * 4096 * sizeof(float) + 64 * 16);
    assert_true(ws < (size_t)1024 * 200064 * sizeof(float) / 100);
}

/* round to nearest even BF16, worked out on the bits independently of the kernel */
static double bf16_round(float x) {
    uint32_t u;
    memcpy(&u, &x, 4);
    uint32_t lo = u & 0xffffu, hi = u & 0xffff0000u;
    if (lo > 0x8000u || (lo == 0x8000u && (hi & 0x10000u))) hi += 0x10000u;
    float r;
    memcpy(&r, &hi, 4);
    return r;
}

static void test_bf16_head(void **state) {
    (void)state;
    const int N = 70, C = 16, V = 9000;
    KernelCtx ctx;
    kernel_ctx_init(&ctx, kernels_cpu(), kernels_cpu()->lm_head_ws_bytes(N, C, V));
    Head hd;
    head_alloc(&hd, N, C, V, 11);
    float *l32 = fbuf((size_t)N * V), *l16 = fbuf((size_t)N * V), *logp32 = fbuf(N), *lse32 = fbuf(N);
    ctx.ops->lm_head_forward(&ctx, logp32, lse32, l32, hd.h, hd.W, hd.targets, N, C, V);
    ctx.head_bf16 = 1;
    ctx.ops->lm_head_forward(&ctx, hd.logp, hd.lse, l16, hd.h, hd.W, hd.targets, N, C, V);
    double max_dlogp = 0.0;
    for (int n = 0; n < N; n++) {
        double mx = -INFINITY, sum = 0.0;
        for (int v = 0; v < V; v++) {
            assert_true((double)l16[(size_t)n * V + v] == bf16_round(l32[(size_t)n * V + v]));
            mx = fmax(mx, l16[(size_t)n * V + v]);
        }
        for (int v = 0; v < V; v++) sum += exp(l16[(size_t)n * V + v] - mx);
        double lse = mx + log(sum);
        assert_true(fabs(hd.lse[n] - lse) < 2e-6 * (1.0 + fabs(lse)));
        if (hd.targets[n] >= 0) {
            assert_true(fabs(hd.logp[n] - (l16[(size_t)n * V + hd.targets[n]] - lse)) < 2e-6 * (1.0 + fabs(lse)));
            max_dlogp = fmax(max_dlogp, fabs(hd.logp[n] - logp32[n]));
        }
    }
    assert_true(max_dlogp > 1e-4); /* BF16 logits (about 3 significant digits) move log-probs visibly */
    free(l32), free(l16), free(logp32), free(lse32);
    head_free(&hd);
    kernel_ctx_free(&ctx);
}

/* dh, dW against float64: dlogits = (dlse - g) P + g onehot, g = dlogp (0 where target < 0). */
static void test_backward_reference(void **state) {
    const int N = 70, C = 16, V = 9000;
    KernelCtx ctx;
    kernel_ctx_init(&ctx, kernels_cpu(), kernels_cpu()->lm_head_ws_bytes(N, C, V));
    Head hd;
    head_alloc(&hd, N, C, V, 10);
    double *lse = calloc((size_t)N, sizeof(double)), *logp = calloc((size_t)N, sizeof(double));
    double *P = calloc((size_t)N * V, sizeof(double));
    ref_forward(lse, logp, P, hd.h, hd.W, hd.targets, N, C, V);
    double *rdh = calloc((size_t)N * C, sizeof(double)), *rdW = calloc((size_t)V * C, sizeof(double));
    for (int n = 0; n < N; n++)
        for (int v = 0; v < V; v++) {
            double g = hd.targets[n] >= 0 ? hd.Rl[n] : 0.0;
            double d = (hd.Rs[n] - g) * P[(size_t)n * V + v] + (v == hd.targets[n] ? g : 0.0);
            for (int c = 0; c < C; c++) {
                rdh[n * C + c] += d * hd.W[(size_t)v * C + c];
                rdW[(size_t)v * C + c] += d * hd.h[n * C + c];
            }
        }
    float *dh = fbuf((size_t)N * C), *dW = fbuf((size_t)V * C);
    ctx.ops->lm_head_forward(&ctx, hd.logp, hd.lse, NULL, hd.h, hd.W, hd.targets, N, C, V);
    ctx.ops->lm_head_backward(&ctx, dh, dW, hd.Rl, hd.Rs, hd.h, hd.W, hd.targets, hd.lse, N, C, V);
    double mh = 0.0, eh = 0.0, mw = 0.0, ew = 0.0;
    for (int i = 0; i < N * C; i++) mh = fmax(mh, fabs(rdh[i])), eh = fmax(eh, fabs(dh[i] - rdh[i]));
    for (int i = 0; i < V * C; i++) mw = fmax(mw, fabs(rdW[i])), ew = fmax(ew, fabs(dW[i] - rdW[i]));
    printf("lm_head backward vs float64: dh %.2e (max %.2e), dW %.2e (max %.2e)\n", eh, mh, ew, mw);
    assert_true(mh > 0.1 && mw > 0.1);
    assert_true(eh < 1e-5 * mh && ew < 1e-5 * mw);
    /* Accumulation: a second call doubles. */
    float *dh2 = fbuf((size_t)N * C), *dW2 = fbuf((size_t)V * C);
    memcpy(dh2, dh, (size_t)N * C * sizeof(float));
    memcpy(dW2, dW, (size_t)V * C * sizeof(float));
    ctx.ops->lm_head_backward(&ctx, dh2, dW2, hd.Rl, hd.Rs, hd.h, hd.W, hd.targets, hd.lse, N, C, V);
    for (int i = 0; i < N * C; i++) assert_true(fabsf(dh2[i] - 2.0f * dh[i]) < 1e-5f * (1.0f + fabsf(dh2[i])));
    for (int i = 0; i < V * C; i++) assert_true(fabsf(dW2[i] - 2.0f * dW[i]) < 1e-5f * (1.0f + fabsf(dW2[i])));
    /* Without dlse, rows with target < 0 get no gradient. */
    memset(dh, 0, (size_t)N * C * sizeof(float));
    ctx.ops->lm_head_backward(&ctx, dh, dW, hd.Rl, NULL, hd.h, hd.W, hd.targets, hd.lse, N, C, V);
    for (int n = 0; n < N; n++)
        if (hd.targets[n] < 0)
            for (int c = 0; c < C; c++) assert_true(dh[n * C + c] == 0.0f);
    free(lse), free(logp), free(P), free(rdh), free(rdW), free(dh), free(dW), free(dh2), free(dW2);
    head_free(&hd);
    kernel_ctx_free(&ctx);
}

typedef struct {
    KernelCtx *ctx;
    Head *hd;
    int use_dlse;
} HeadLoss;

/* loss = sum Rl * logp (+ sum Rs * lse) */
static double loss_head(void *ud) {
    HeadLoss *o = ud;
    Head *hd = o->hd;
    o->ctx->ops->lm_head_forward(o->ctx, hd->logp, hd->lse, NULL, hd->h, hd->W, hd->targets, hd->N, hd->C, hd->V);
    double l = gc_dot(hd->Rl, hd->logp, (size_t)hd->N);
    if (o->use_dlse) l += gc_dot(hd->Rs, hd->lse, (size_t)hd->N);
    return l;
}

static void fd_case(int N, int C, int V, int use_dlse, int check_dW) {
    KernelCtx ctx;
    kernel_ctx_init(&ctx, kernels_cpu(), kernels_cpu()->lm_head_ws_bytes(N, C, V));
    Head hd;
    head_alloc(&hd, N, C, V, 20);
    HeadLoss o = {&ctx, &hd, use_dlse};
    float *dh = fbuf((size_t)N * C), *dW = fbuf((size_t)V * C);
    loss_head(&o);
    ctx.ops->lm_head_backward(&ctx, dh, dW, hd.Rl, use_dlse ? hd.Rs : NULL, hd.h, hd.W, hd.targets, hd.lse, N, C,
                              V);
    /* eps 1e-2: a perturbed W entry moves every row's lse, so float rounding noise is larger here. */
    GcResult r = gc_check(hd.h, (size_t)N * C, dh, loss_head, &o, 1e-2f, GC_FLOOR, 0);
    gc_report(use_dlse ? "lm_head dh (+dlse)" : "lm_head dh", r);
    assert_true(r.max_rel < GC_TOL);
    if (check_dW) {
        r = gc_check(hd.W, (size_t)V * C, dW, loss_head, &o, 1e-2f, GC_FLOOR, 0);
        gc_report(use_dlse ? "lm_head dW (+dlse)" : "lm_head dW", r);
        assert_true(r.max_rel < GC_TOL);
    }
    free(dh), free(dW);
    head_free(&hd);
    kernel_ctx_free(&ctx);
}

static void test_backward_fd(void **state) {
    fd_case(6, 5, 37, 0, 1);
    fd_case(6, 5, 37, 1, 1);
    fd_case(6, 8, 9000, 1, 0); /* several vocabulary chunks: dh (dW checked against float64 above) */
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_forward),
        cmocka_unit_test(test_backward_reference),
        cmocka_unit_test(test_backward_fd),
        cmocka_unit_test(test_bf16_head),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
