/* tests/kernels/test_fused.c: the CPU fused ops (kernels/cpu/fused.c) are bit-identical to the
 * unfused sequences they replace, the contract that keeps CPU runs unchanged.
 * labels: unit
 *
 * - add_rmsnorm_forward vs scale + axpby(.., 1) + rmsnorm_forward, also with xo aliasing x;
 * - add_rmsnorm_backward vs rmsnorm_backward into a copy of dxo then scale into dy (dw pre-filled);
 * - adamw_fused vs per-tensor sumsq / scale / adamw on a padded block (padding filled with NaN, so
 *   reading it would show), unclipped, clipped, and skipped on a NaN and an Inf gradient.
 * Every comparison is memcmp of the float bytes.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "core/rng.h"
#include "kernels/backend.h"

static KernelCtx g_ctx;
static const KernelOps *g_ops;

static float *rnd(size_t n, uint64_t stream, float lo, float hi) {
    float *x = malloc(n * sizeof(float));
    rng_fill_uniform(x, n, 77, stream, lo, hi);
    return x;
}

static float *dup(const float *x, size_t n) {
    float *y = malloc(n * sizeof(float));
    memcpy(y, x, n * sizeof(float));
    return y;
}

static void test_add_rmsnorm(void **state) {
    (void)state;
    const int N = 9, C = 37;
    const size_t n = (size_t)N * C;
    const float a = 0.81f, b = 1.7f, eps = 1e-6f;
    float *x = rnd(n, 1, -2, 2), *y = rnd(n, 2, -2, 2), *w = rnd(C, 3, 0.5f, 1.5f);
    float *xo1 = malloc(n * 4), *xo2 = malloc(n * 4), *o1 = malloc(n * 4), *o2 = malloc(n * 4);
    float r1[9], r2[9];
    g_ops->scale(&g_ctx, xo1, x, a, n);
    g_ops->axpby(&g_ctx, xo1, b, y, 1.0f, n);
    g_ops->rmsnorm_forward(&g_ctx, o1, r1, xo1, w, N, C, eps);
    g_ops->add_rmsnorm_forward(&g_ctx, xo2, o2, r2, x, a, y, b, w, N, C, eps);
    assert_memory_equal(xo1, xo2, n * 4);
    assert_memory_equal(o1, o2, n * 4);
    assert_memory_equal(r1, r2, sizeof r1);
    float *xa = dup(x, n); /* xo aliasing x */
    g_ops->add_rmsnorm_forward(&g_ctx, xa, o2, r2, xa, a, y, b, w, N, C, eps);
    assert_memory_equal(xo1, xa, n * 4);
    assert_memory_equal(o1, o2, n * 4);

    float *dout = rnd(n, 4, -1, 1), *d0 = rnd(n, 5, -1, 1), *dw0 = rnd(C, 6, -1, 1);
    float *dx1 = dup(d0, n), *dx2 = dup(d0, n), *dy1 = malloc(n * 4), *dy2 = malloc(n * 4);
    float *dw1 = dup(dw0, C), *dw2 = dup(dw0, C);
    g_ops->rmsnorm_backward(&g_ctx, dx1, dw1, dout, xo1, w, r1, N, C);
    g_ops->scale(&g_ctx, dy1, dx1, b, n);
    g_ops->add_rmsnorm_backward(&g_ctx, dx2, dy2, dw2, dout, xo1, w, r1, b, N, C);
    assert_memory_equal(dx1, dx2, n * 4);
    assert_memory_equal(dy1, dy2, n * 4);
    assert_memory_equal(dw1, dw2, C * 4);
    free(x), free(y), free(w), free(xo1), free(xo2), free(o1), free(o2), free(xa), free(dout), free(d0), free(dw0);
    free(dx1), free(dx2), free(dy1), free(dy2), free(dw1), free(dw2);
}

#define NT 5
static const size_t NUMEL[NT] = {1, 7, 300, 1000, 4099};

/* A padded block: tensor i at offset off[i] (multiple of 16 floats), NaN in the gaps. */
static size_t layout(size_t *off) {
    size_t o = 0;
    for (int i = 0; i < NT; i++) {
        off[i] = o;
        o = (o + NUMEL[i] + 15) & ~(size_t)15;
    }
    return o;
}

static void fill_block(float *x, size_t total, const size_t *off, uint64_t stream, float lo, float hi) {
    for (size_t i = 0; i < total; i++) x[i] = NAN;
    for (int i = 0; i < NT; i++) rng_fill_uniform(x + off[i], NUMEL[i], 91, stream * 16 + (uint64_t)i, lo, hi);
}

/* the former trainer/optimizer.c step; returns the norm */
static double unfused_step(float *p, float *g, float *m, float *v, const OptTensor *tab, double clip, float lr,
                           float wd, int t) {
    double s = 0.0;
    for (int i = 0; i < NT; i++) s += g_ops->sumsq(&g_ctx, g + tab[i].offset, tab[i].numel);
    double norm = sqrt(s);
    if (!isfinite(norm)) return norm;
    if (clip > 0.0 && norm > clip)
        for (int i = 0; i < NT; i++)
            g_ops->scale(&g_ctx, g + tab[i].offset, g + tab[i].offset, (float)(clip / norm), tab[i].numel);
    for (int i = 0; i < NT; i++) {
        size_t o = tab[i].offset;
        g_ops->adamw(&g_ctx, p + o, g + o, m + o, v + o, tab[i].numel, lr, 0.9f, 0.95f, 1e-15f,
                     tab[i].decay ? wd : 0.0f, t);
    }
    return norm;
}

static void check_step(double clip, int t, int poison) {
    size_t off[NT];
    const size_t total = layout(off);
    OptTensor tab[NT];
    for (int i = 0; i < NT; i++) tab[i] = (OptTensor){off[i], NUMEL[i], i % 2, 0};
    float *blk[2][4];
    for (int k = 0; k < 2; k++)
        for (int j = 0; j < 4; j++) {
            blk[k][j] = malloc(total * 4);
            fill_block(blk[k][j], total, off, (uint64_t)j + 1, j == 3 ? 0.0f : -1.0f, 1.0f);
        }
    if (poison) blk[0][1][off[3] + 17] = blk[1][1][off[3] + 17] = poison > 0 ? INFINITY : NAN;
    double n1 = unfused_step(blk[0][0], blk[0][1], blk[0][2], blk[0][3], tab, clip, 1e-3f, 0.1f, t);
    double n2 = -1.0;
    g_ops->adamw_fused(&g_ctx, blk[1][0], blk[1][1], blk[1][2], blk[1][3], tab, NT, &n2, clip, 1e-3f, 0.9f, 0.95f,
                       1e-15f, 0.1f, t);
    if (poison) {
        assert_false(isfinite(n2));
    } else {
        assert_memory_equal(&n1, &n2, sizeof n1);
    }
    for (int j = 0; j < 4; j++) assert_memory_equal(blk[0][j], blk[1][j], total * 4);
    for (int k = 0; k < 2; k++)
        for (int j = 0; j < 4; j++) free(blk[k][j]);
}

static void test_adamw_fused(void **state) {
    (void)state;
    check_step(1e9, 1, 0);  /* no clipping */
    check_step(0.5, 3, 0);  /* clipped (the norm is ~42) */
    check_step(0.0, 2, 0);  /* clipping disabled */
    check_step(1.0, 1, -1); /* NaN gradient: skipped */
    check_step(1.0, 1, 1);  /* Inf gradient: skipped */
}

int main(void) {
    g_ops = kernels_cpu();
    kernel_ctx_init(&g_ctx, g_ops, 0);
    const struct CMUnitTest tests[] = {cmocka_unit_test(test_add_rmsnorm), cmocka_unit_test(test_adamw_fused)};
    int rc = cmocka_run_group_tests(tests, NULL, NULL);
    kernel_ctx_free(&g_ctx);
    return rc;
}
