/* tests/kernels/test_ops_grad.c: backward ops of the CPU backend's dense ops by finite differences.
 * labels: unit grad
 *
 * For each op, loss = sum(R * out) in float64 for a fixed random R; the analytic gradient is the
 * op's backward called with dout = R, and gc_check (tests/kernels/gradcheck.h) compares it with
 * central differences of the loss (float32 perturbations, relative error < 1e-2; typically ~1e-4).
 * Covered: SiLU, sigmoid gate (dg, da), SwiGLU, RMSNorm (dx, dw), RoPE, embedding (repeated ids),
 * and a linear layer y = x W^T built from gemm (dx = dy W, dW = dy^T x).
 * Accumulation: every backward called twice on a non-zero gradient buffer adds twice.
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

static const uint64_t SEED = 777;

static float *fbuf(size_t n) {
    float *p = calloc(n, sizeof(float));
    assert_non_null(p);
    return p;
}

static void expect_grad_eps(const char *what, float *x, size_t n, const float *g, double (*loss)(void *), void *ud,
                            float eps) {
    GcResult r = gc_check(x, n, g, loss, ud, eps, GC_FLOOR, 0);
    gc_report(what, r);
    assert_true(r.probed > 0);
    assert_true(r.max_rel < GC_TOL);
}

static void expect_grad(const char *what, float *x, size_t n, const float *g, double (*loss)(void *), void *ud) {
    expect_grad_eps(what, x, n, g, loss, ud, GC_EPS);
}

/* g1 - g0 == 2 (g_once - g0): a backward that accumulates, called twice. */
static void expect_doubled(const float *g0, const float *g_once, const float *g_twice, size_t n) {
    for (size_t i = 0; i < n; i++) {
        double once = (double)g_once[i] - g0[i], twice = (double)g_twice[i] - g0[i];
        assert_true(fabs(twice - 2.0 * once) < 1e-5 * (1.0 + fabs(twice)));
    }
}

/* State shared by the closures below: inputs a, b, c (whatever the op takes), output, R. */
typedef struct {
    KernelCtx *ctx;
    float *a, *b, *c; /* op inputs */
    float *out, *R;   /* output buffer and loss weights */
    float *tmp;       /* scratch (rstd, in-place copies) */
    const int *tokens;
    const SeqPack *pack;
    size_t nout;
    int d0, d1, d2, d3; /* op sizes */
} Op;

static double loss_silu(void *ud) {
    Op *o = ud;
    o->ctx->ops->silu_forward(o->ctx, o->out, o->a, o->nout);
    return gc_dot(o->R, o->out, o->nout);
}

static double loss_gate(void *ud) {
    Op *o = ud;
    o->ctx->ops->sigmoid_gate_forward(o->ctx, o->out, o->a, o->b, o->nout);
    return gc_dot(o->R, o->out, o->nout);
}

static double loss_swiglu(void *ud) {
    Op *o = ud;
    o->ctx->ops->swiglu_forward(o->ctx, o->out, o->a, o->d0, o->d1);
    return gc_dot(o->R, o->out, o->nout);
}

static void test_silu_gate_swiglu(void **state) {
    KernelCtx ctx;
    kernel_ctx_init(&ctx, kernels_cpu(), 0);
    const KernelOps *ops = ctx.ops;
    enum { n = 96 };
    float *x = fbuf(n), *a = fbuf(n), *out = fbuf(n), *R = fbuf(n), *dx = fbuf(n), *da = fbuf(n);
    gc_fill_normal(x, n, SEED, 1, 0.0f, 2.0f);
    gc_fill_normal(a, n, SEED, 2, 0.0f, 1.0f);
    gc_fill_normal(R, n, SEED, 3, 0.0f, 1.0f);
    Op o = {.ctx = &ctx, .a = x, .b = a, .out = out, .R = R, .nout = n};
    ops->silu_backward(&ctx, dx, R, x, n);
    expect_grad("silu dx", x, n, dx, loss_silu, &o);

    memset(dx, 0, n * sizeof(float));
    ops->sigmoid_gate_backward(&ctx, dx, da, R, x, a, n);
    expect_grad("sigmoid_gate dg", x, n, dx, loss_gate, &o);
    expect_grad("sigmoid_gate da", a, n, da, loss_gate, &o);

    const int Rr = 4, F = 12; /* gate_up (4, 24), out (4, 12) */
    float *gu = fbuf((size_t)Rr * 2 * F), *dgu = fbuf((size_t)Rr * 2 * F);
    gc_fill_normal(gu, (size_t)Rr * 2 * F, SEED, 4, 0.0f, 1.5f);
    Op s = {.ctx = &ctx, .a = gu, .out = out, .R = R, .nout = (size_t)Rr * F, .d0 = Rr, .d1 = F};
    ops->swiglu_backward(&ctx, dgu, R, gu, Rr, F);
    expect_grad("swiglu dgate_up", gu, (size_t)Rr * 2 * F, dgu, loss_swiglu, &s);

    /* Accumulation: start from a random gradient, call twice. */
    float *g0 = fbuf(n), *g1 = fbuf(n), *g2 = fbuf(n), *h0 = fbuf(n), *h1 = fbuf(n), *h2 = fbuf(n);
    gc_fill_normal(g0, n, SEED, 5, 0.0f, 1.0f);
    gc_fill_normal(h0, n, SEED, 6, 0.0f, 1.0f);
    memcpy(g1, g0, n * sizeof(float));
    ops->silu_backward(&ctx, g1, R, x, n);
    memcpy(g2, g1, n * sizeof(float));
    ops->silu_backward(&ctx, g2, R, x, n);
    expect_doubled(g0, g1, g2, n);
    memcpy(g1, g0, n * sizeof(float));
    memcpy(h1, h0, n * sizeof(float));
    ops->sigmoid_gate_backward(&ctx, g1, h1, R, x, a, n);
    memcpy(g2, g1, n * sizeof(float));
    memcpy(h2, h1, n * sizeof(float));
    ops->sigmoid_gate_backward(&ctx, g2, h2, R, x, a, n);
    expect_doubled(g0, g1, g2, n);
    expect_doubled(h0, h1, h2, n);
    memcpy(g1, g0, n * sizeof(float)); /* swiglu: 4*24 = 96 = n */
    ops->swiglu_backward(&ctx, g1, R, gu, Rr, F);
    memcpy(g2, g1, n * sizeof(float));
    ops->swiglu_backward(&ctx, g2, R, gu, Rr, F);
    expect_doubled(g0, g1, g2, n);

    free(x), free(a), free(out), free(R), free(dx), free(da), free(gu), free(dgu);
    free(g0), free(g1), free(g2), free(h0), free(h1), free(h2);
    kernel_ctx_free(&ctx);
}

static double loss_rmsnorm(void *ud) {
    Op *o = ud;
    o->ctx->ops->rmsnorm_forward(o->ctx, o->out, o->tmp, o->a, o->b, o->d0, o->d1, 1e-5f);
    return gc_dot(o->R, o->out, o->nout);
}

static void test_rmsnorm(void **state) {
    KernelCtx ctx;
    kernel_ctx_init(&ctx, kernels_cpu(), 0);
    const KernelOps *ops = ctx.ops;
    const int N = 4, C = 32;
    size_t n = (size_t)N * C;
    float *x = fbuf(n), *w = fbuf(C), *out = fbuf(n), *R = fbuf(n), *rstd = fbuf(N);
    float *dx = fbuf(n), *dw = fbuf(C);
    gc_fill_normal(x, n, SEED, 10, 0.3f, 1.0f);
    gc_fill_uniform(w, C, SEED, 11, 0.5f, 1.5f);
    gc_fill_normal(R, n, SEED, 12, 0.0f, 1.0f);
    Op o = {.ctx = &ctx, .a = x, .b = w, .out = out, .R = R, .tmp = rstd, .nout = n, .d0 = N, .d1 = C};
    loss_rmsnorm(&o); /* fills rstd */
    ops->rmsnorm_backward(&ctx, dx, dw, R, x, w, rstd, N, C);
    expect_grad_eps("rmsnorm dx", x, n, dx, loss_rmsnorm, &o, 1e-2f); /* a probe moves a whole row */
    expect_grad_eps("rmsnorm dw", w, C, dw, loss_rmsnorm, &o, 1e-2f);
    loss_rmsnorm(&o); /* rstd back at the unperturbed point */

    float *dx0 = fbuf(n), *dx2 = fbuf(n), *dw0 = fbuf(C), *dw2 = fbuf(C);
    gc_fill_normal(dx0, n, SEED, 13, 0.0f, 1.0f);
    gc_fill_normal(dw0, C, SEED, 14, 0.0f, 1.0f);
    memcpy(dx, dx0, n * sizeof(float));
    memcpy(dw, dw0, C * sizeof(float));
    ops->rmsnorm_backward(&ctx, dx, dw, R, x, w, rstd, N, C);
    memcpy(dx2, dx, n * sizeof(float));
    memcpy(dw2, dw, C * sizeof(float));
    ops->rmsnorm_backward(&ctx, dx2, dw2, R, x, w, rstd, N, C);
    expect_doubled(dx0, dx, dx2, n);
    expect_doubled(dw0, dw, dw2, C);
    free(x), free(w), free(out), free(R), free(rstd), free(dx), free(dw), free(dx0), free(dx2), free(dw0),
        free(dw2);
    kernel_ctx_free(&ctx);
}

static double loss_rope(void *ud) {
    Op *o = ud;
    memcpy(o->tmp, o->a, o->nout * sizeof(float));
    o->ctx->ops->rope_forward(o->ctx, o->tmp, o->pack, o->d0, o->d1, o->d2, 1e6f);
    return gc_dot(o->R, o->tmp, o->nout);
}

static void test_rope_grad(void **state) {
    KernelCtx ctx;
    kernel_ctx_init(&ctx, kernels_cpu(), 0);
    const int nh = 3, HS = 8, rot = 6, N = 7;
    int start[3] = {0, 4, 7}, pos0[2] = {5, 123};
    SeqPack pack = {2, start, pos0};
    size_t n = (size_t)N * nh * HS;
    float *x = fbuf(n), *tmp = fbuf(n), *R = fbuf(n), *dx = fbuf(n);
    gc_fill_normal(x, n, SEED, 20, 0.0f, 1.0f);
    gc_fill_normal(R, n, SEED, 21, 0.0f, 1.0f);
    Op o = {.ctx = &ctx, .a = x, .R = R, .tmp = tmp, .pack = &pack, .nout = n, .d0 = nh, .d1 = HS, .d2 = rot};
    memcpy(dx, R, n * sizeof(float));
    ctx.ops->rope_backward(&ctx, dx, &pack, nh, HS, rot, 1e6f); /* in place: dx = R^T R */
    expect_grad("rope dx", x, n, dx, loss_rope, &o);
    free(x), free(tmp), free(R), free(dx);
    kernel_ctx_free(&ctx);
}

static double loss_embedding(void *ud) {
    Op *o = ud;
    o->ctx->ops->embedding_forward(o->ctx, o->out, o->tokens, o->a, o->d0, o->d1);
    return gc_dot(o->R, o->out, o->nout);
}

static void test_embedding_grad(void **state) {
    KernelCtx ctx;
    kernel_ctx_init(&ctx, kernels_cpu(), 0);
    const int V = 6, C = 5, N = 7;
    int tokens[7] = {2, 0, 2, 5, 2, 1, 0}; /* repeats accumulate; ids 3, 4 get no gradient */
    float *wte = fbuf((size_t)V * C), *out = fbuf((size_t)N * C), *R = fbuf((size_t)N * C);
    float *dwte = fbuf((size_t)V * C);
    gc_fill_normal(wte, (size_t)V * C, SEED, 30, 0.0f, 1.0f);
    gc_fill_normal(R, (size_t)N * C, SEED, 31, 0.0f, 1.0f);
    Op o = {.ctx = &ctx, .a = wte, .out = out, .R = R, .tokens = tokens, .nout = (size_t)N * C, .d0 = N, .d1 = C};
    ctx.ops->embedding_backward(&ctx, dwte, R, tokens, N, C);
    expect_grad("embedding dwte", wte, (size_t)V * C, dwte, loss_embedding, &o);
    for (int c = 0; c < C; c++) assert_true(dwte[3 * C + c] == 0.0f && dwte[4 * C + c] == 0.0f);
    for (int c = 0; c < C; c++) /* token 2 appears at rows 0, 2, 4 */
        assert_true(fabsf(dwte[2 * C + c] - (R[0 * C + c] + R[2 * C + c] + R[4 * C + c])) < 1e-6f);
    float *g2 = fbuf((size_t)V * C), *g0 = fbuf((size_t)V * C);
    memcpy(g2, dwte, (size_t)V * C * sizeof(float));
    ctx.ops->embedding_backward(&ctx, g2, R, tokens, N, C);
    expect_doubled(g0, dwte, g2, (size_t)V * C);
    free(wte), free(out), free(R), free(dwte), free(g2), free(g0);
    kernel_ctx_free(&ctx);
}

/* Linear layer: y(N, Cout) = x(N, Cin) W(Cout, Cin)^T. */
static double loss_linear(void *ud) {
    Op *o = ud;
    o->ctx->ops->gemm(o->ctx, 0, 1, o->d0, o->d2, o->d1, 1.0f, o->a, o->d1, o->b, o->d1, 0.0f, o->out, o->d2);
    return gc_dot(o->R, o->out, o->nout);
}

static void test_linear_grad(void **state) {
    KernelCtx ctx;
    kernel_ctx_init(&ctx, kernels_cpu(), 0);
    const KernelOps *ops = ctx.ops;
    const int N = 5, Cin = 7, Cout = 6;
    float *x = fbuf((size_t)N * Cin), *W = fbuf((size_t)Cout * Cin), *y = fbuf((size_t)N * Cout);
    float *R = fbuf((size_t)N * Cout), *dx = fbuf((size_t)N * Cin), *dW = fbuf((size_t)Cout * Cin);
    gc_fill_normal(x, (size_t)N * Cin, SEED, 40, 0.0f, 1.0f);
    gc_fill_normal(W, (size_t)Cout * Cin, SEED, 41, 0.0f, 1.0f);
    gc_fill_normal(R, (size_t)N * Cout, SEED, 42, 0.0f, 1.0f);
    Op o = {.ctx = &ctx, .a = x, .b = W, .out = y, .R = R, .nout = (size_t)N * Cout, .d0 = N, .d1 = Cin, .d2 = Cout};
    ops->gemm(&ctx, 0, 0, N, Cin, Cout, 1.0f, R, Cout, W, Cin, 1.0f, dx, Cin);  /* dx += dy W */
    ops->gemm(&ctx, 1, 0, Cout, Cin, N, 1.0f, R, Cout, x, Cin, 1.0f, dW, Cin); /* dW += dy^T x */
    expect_grad("linear dx", x, (size_t)N * Cin, dx, loss_linear, &o);
    expect_grad("linear dW", W, (size_t)Cout * Cin, dW, loss_linear, &o);
    free(x), free(W), free(y), free(R), free(dx), free(dW);
    kernel_ctx_free(&ctx);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_silu_gate_swiglu), cmocka_unit_test(test_rmsnorm),
        cmocka_unit_test(test_rope_grad),        cmocka_unit_test(test_embedding_grad),
        cmocka_unit_test(test_linear_grad),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
