/* tests/kernels/test_cuda_fused.c: the CUDA fused ops (kernels/cuda/fused.cu) and the float4 SwiGLU
 * against the CPU reference, on fresh random inputs.
 * labels: gpu
 *
 * - adamw_fused on a padded block of 8 tensors (sizes 1 .. 300007, some not multiples of 4, one at an
 *   offset that is not a multiple of 4 floats, so the scalar path runs too; padding NaN-filled, so a
 *   read of it would poison the norm), decay on every other tensor: unclipped (t=1), clipped (t=5),
 *   and skipped on a NaN and on an Inf gradient (nothing written: block bytes unchanged).
 *   Tolerances: norm 1e-12 relative (float64 sums in another order); p, g, m, v elementwise
 *   |x - ref| <= 1e-6 (|ref| + 1e-24) (float64 update rounded to FP32 on both sides; the clip factor
 *   may differ by one FP32 ulp). Two GPU runs of the same step: identical bytes (determinism).
 * - add_rmsnorm_forward (N,C) = (7,1024), (33,2048) float4 path, (5,37) scalar path, and xo aliasing
 *   x: xo bit-equal to the CPU (same FP32 operations, no FMA); out, rstd rel 1e-6.
 * - add_rmsnorm_backward with dxo and dw pre-filled, dy given and NULL: ||x - ref|| / ||ref|| <= 1e-6
 *   for dxo, dy; dw (another summation order over rows) <= 3e-5.
 * - rmsnorm_backward (5000, 256), (3, 4096), (300, 33): dw vs CPU <= 3e-5 (the CPU sums 5000 rows in
 *   FP32 one after another: ~2e-6 expected) and bitwise equal over two runs.
 * - swiglu_forward/backward, F = 512 (float4) and F = 37 (scalar): rel 1e-6 (expf of CUDA vs glibc).
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

static KernelCtx cpu, gpu;
static uint64_t g_stream = 1;

static float *h_rand(size_t n, float lo, float hi) {
    float *x = malloc((n ? n : 1) * sizeof(float));
    rng_fill_uniform(x, n, 2024, g_stream++, lo, hi);
    return x;
}

static void *d_up(const void *h, size_t bytes) {
    void *d = gpu.ops->alloc(&gpu, bytes ? bytes : 4);
    if (h) gpu.ops->copy_h2d(&gpu, d, h, bytes);
    return d;
}

static float *d_down(const float *d, size_t n) {
    float *h = malloc((n ? n : 1) * sizeof(float));
    gpu.ops->sync(&gpu);
    gpu.ops->copy_d2h(&gpu, h, d, n * sizeof(float));
    return h;
}

static double rel_err(const float *x, const float *ref, size_t n) {
    double e = 0, r = 0;
    for (size_t i = 0; i < n; i++) {
        double d = (double)x[i] - ref[i];
        e += d * d, r += (double)ref[i] * ref[i];
    }
    return r > 0 ? sqrt(e / r) : sqrt(e);
}

static int report(const char *what, double err, double tol) {
    int ok = err <= tol && !isnan(err);
    printf("  %-44s %10.3e  (tol %.0e)%s\n", what, err, tol, ok ? "" : "  FAIL");
    return ok;
}

/* ---- adamw_fused ---- */
#define NT 8
static const size_t NUMEL[NT] = {1, 7, 300, 1000, 4099, 65536, 300007, 12};

static size_t layout(size_t *off) {
    size_t o = 0;
    for (int i = 0; i < NT; i++) {
        off[i] = o + (i == 7 ? 2 : 0); /* the last tensor off float4 alignment */
        o = (off[i] + NUMEL[i] + 15) & ~(size_t)15;
    }
    return o;
}

/* worst |x - ref| / (|ref| + 1e-30 / 1e-6) over the block, NaN positions must match */
static double elem_err(const float *x, const float *ref, size_t n) {
    double worst = 0;
    for (size_t i = 0; i < n; i++) {
        if (isnan(ref[i]) || isnan(x[i])) {
            if (!(isnan(ref[i]) && isnan(x[i]))) return INFINITY;
            continue;
        }
        double e = fabs((double)x[i] - ref[i]) / (fabs((double)ref[i]) + 1e-24);
        if (e > worst) worst = e;
    }
    return worst;
}

static int adam_case(const char *name, double clip, int t, int poison) {
    size_t off[NT];
    const size_t total = layout(off);
    OptTensor tab[NT];
    for (int i = 0; i < NT; i++) tab[i] = (OptTensor){off[i], NUMEL[i], i % 2, 0};
    float *h[4];
    for (int j = 0; j < 4; j++) {
        h[j] = malloc(total * sizeof(float));
        for (size_t i = 0; i < total; i++) h[j][i] = NAN;
        for (int i = 0; i < NT; i++)
            rng_fill_uniform(h[j] + off[i], NUMEL[i], 99, g_stream++, j == 3 ? 0.0f : -1.0f, j == 3 ? 1e-3f : 1.0f);
    }
    if (poison) h[1][off[5] + 1234] = poison > 0 ? INFINITY : NAN;
    float *d[2][4];
    for (int r = 0; r < 2; r++)
        for (int j = 0; j < 4; j++) d[r][j] = d_up(h[j], total * sizeof(float));
    OptTensor *dtab = d_up(tab, sizeof tab);
    double *dnorm = d_up(NULL, 2 * sizeof(double));
    double ncpu = 0, ngpu[2] = {0, 0};
    const float lr = 1e-3f, wd = 0.1f;
    for (int r = 0; r < 2; r++)
        gpu.ops->adamw_fused(&gpu, d[r][0], d[r][1], d[r][2], d[r][3], dtab, NT, dnorm + r, clip, lr, 0.9f, 0.95f,
                             1e-15f, wd, t);
    gpu.ops->sync(&gpu);
    gpu.ops->copy_d2h(&gpu, ngpu, dnorm, sizeof ngpu);
    cpu.ops->adamw_fused(&cpu, h[0], h[1], h[2], h[3], tab, NT, &ncpu, clip, lr, 0.9f, 0.95f, 1e-15f, wd, t);
    int ok = 1;
    char what[96];
    if (poison) {
        snprintf(what, sizeof what, "adamw %s: norm non-finite", name);
        ok &= report(what, isfinite(ngpu[0]) ? 1.0 : 0.0, 0.0);
    } else {
        snprintf(what, sizeof what, "adamw %s: norm %.6g", name, ncpu);
        ok &= report(what, fabs(ngpu[0] - ncpu) / ncpu, 1e-12);
    }
    const char *names[4] = {"p", "g", "m", "v"};
    for (int j = 0; j < 4; j++) {
        float *x = d_down(d[0][j], total), *x2 = d_down(d[1][j], total);
        snprintf(what, sizeof what, "adamw %s: %s", name, names[j]);
        ok &= report(what, elem_err(x, h[j], total), 1e-6);
        snprintf(what, sizeof what, "adamw %s: %s run 2 bytes differ", name, names[j]);
        ok &= report(what, memcmp(x, x2, total * sizeof(float)) ? 1.0 : 0.0, 0.0);
        free(x), free(x2);
    }
    snprintf(what, sizeof what, "adamw %s: norm run 2 differs", name);
    ok &= report(what, memcmp(&ngpu[0], &ngpu[1], sizeof(double)) ? 1.0 : 0.0, 0.0);
    for (int r = 0; r < 2; r++)
        for (int j = 0; j < 4; j++) gpu.ops->free(&gpu, d[r][j]);
    gpu.ops->free(&gpu, dtab), gpu.ops->free(&gpu, dnorm);
    for (int j = 0; j < 4; j++) free(h[j]);
    return ok;
}

static void test_adamw_fused(void **state) {
    (void)state;
    int ok = adam_case("unclipped t=1", 1e9, 1, 0);
    ok &= adam_case("clipped t=5", 0.25, 5, 0);
    ok &= adam_case("NaN grad", 1.0, 2, -1);
    ok &= adam_case("Inf grad", 1.0, 2, 1);
    assert_true(ok);
}

/* ---- add_rmsnorm ---- */
static int norm_case(int N, int C, int alias) {
    const size_t n = (size_t)N * C;
    const float a = 0.83f, b = 1.21f, eps = 1e-5f;
    float *x = h_rand(n, -2, 2), *y = h_rand(n, -2, 2), *w = h_rand(C, 0.5f, 1.5f);
    float *dx = d_up(x, n * 4), *dy = d_up(y, n * 4), *dw = d_up(w, C * 4);
    float *dxo = alias ? dx : d_up(NULL, n * 4), *dout = d_up(NULL, n * 4), *drstd = d_up(NULL, N * 4);
    float *xo = malloc(n * 4), *out = malloc(n * 4), *rstd = malloc(N * 4);
    cpu.ops->add_rmsnorm_forward(&cpu, xo, out, rstd, x, a, y, b, w, N, C, eps);
    gpu.ops->add_rmsnorm_forward(&gpu, dxo, dout, drstd, dx, a, dy, b, dw, N, C, eps);
    float *gxo = d_down(dxo, n), *gout = d_down(dout, n), *grstd = d_down(drstd, N);
    char what[96];
    int ok = 1;
    snprintf(what, sizeof what, "add_rmsnorm fwd %dx%d%s: xo bytes differ", N, C, alias ? " alias" : "");
    ok &= report(what, memcmp(gxo, xo, n * 4) ? 1.0 : 0.0, 0.0);
    snprintf(what, sizeof what, "add_rmsnorm fwd %dx%d%s: out", N, C, alias ? " alias" : "");
    ok &= report(what, rel_err(gout, out, n), 1e-6);
    snprintf(what, sizeof what, "add_rmsnorm fwd %dx%d%s: rstd", N, C, alias ? " alias" : "");
    ok &= report(what, rel_err(grstd, rstd, N), 1e-6);
    /* backward, dxo and dw pre-filled; dy given (alias case: NULL) */
    float *g = h_rand(n, -1, 1), *d0 = h_rand(n, -1, 1), *dw0 = h_rand(C, -1, 1), *dyc = malloc(n * 4);
    float *ddxo = d_up(d0, n * 4), *ddw = d_up(dw0, C * 4), *dg = d_up(g, n * 4), *dxo2 = d_up(xo, n * 4);
    float *drs = d_up(rstd, N * 4), *ddy = alias ? NULL : d_up(NULL, n * 4);
    cpu.ops->add_rmsnorm_backward(&cpu, d0, dyc, dw0, g, xo, w, rstd, b, N, C);
    gpu.ops->add_rmsnorm_backward(&gpu, ddxo, ddy, ddw, dg, dxo2, dw, drs, b, N, C);
    float *gdx = d_down(ddxo, n), *gdw = d_down(ddw, C);
    snprintf(what, sizeof what, "add_rmsnorm bwd %dx%d: dxo", N, C);
    ok &= report(what, rel_err(gdx, d0, n), 1e-6);
    snprintf(what, sizeof what, "add_rmsnorm bwd %dx%d: dw", N, C);
    ok &= report(what, rel_err(gdw, dw0, C), 3e-5);
    if (ddy) {
        float *gdy = d_down(ddy, n);
        snprintf(what, sizeof what, "add_rmsnorm bwd %dx%d: dy", N, C);
        ok &= report(what, rel_err(gdy, dyc, n), 1e-6);
        free(gdy);
        gpu.ops->free(&gpu, ddy);
    }
    float *dev[] = {dx, dy, dw, alias ? NULL : dxo, dout, drstd, ddxo, ddw, dg, dxo2, drs};
    for (size_t i = 0; i < sizeof dev / sizeof dev[0]; i++) gpu.ops->free(&gpu, dev[i]);
    float *hst[] = {x, y, w, xo, out, rstd, gxo, gout, grstd, g, d0, dw0, dyc, gdx, gdw};
    for (size_t i = 0; i < sizeof hst / sizeof hst[0]; i++) free(hst[i]);
    return ok;
}

static void test_add_rmsnorm(void **state) {
    (void)state;
    int ok = norm_case(7, 1024, 0);
    ok &= norm_case(33, 2048, 0);
    ok &= norm_case(5, 37, 0);
    ok &= norm_case(9, 512, 1);
    assert_true(ok);
}

/* ---- rmsnorm_backward dw: CPU agreement and run-to-run bytes ---- */
static int dw_case(int N, int C) {
    const size_t n = (size_t)N * C;
    float *x = h_rand(n, -2, 2), *w = h_rand(C, 0.5f, 1.5f), *g = h_rand(n, -1, 1), *rstd = h_rand(N, 0.5f, 2);
    float *dw0 = h_rand(C, -1, 1), *dx0 = h_rand(n, -1, 1);
    float *dx = d_up(x, n * 4), *dwt = d_up(w, C * 4), *dg = d_up(g, n * 4), *drs = d_up(rstd, N * 4);
    float *gw[2], *gx[2];
    for (int r = 0; r < 2; r++) {
        float *ddw = d_up(dw0, C * 4), *ddx = d_up(dx0, n * 4);
        gpu.ops->rmsnorm_backward(&gpu, ddx, ddw, dg, dx, dwt, drs, N, C);
        gw[r] = d_down(ddw, C), gx[r] = d_down(ddx, n);
        gpu.ops->free(&gpu, ddw), gpu.ops->free(&gpu, ddx);
    }
    cpu.ops->rmsnorm_backward(&cpu, dx0, dw0, g, x, w, rstd, N, C);
    char what[96];
    int ok = 1;
    snprintf(what, sizeof what, "rmsnorm bwd %dx%d: dx", N, C);
    ok &= report(what, rel_err(gx[0], dx0, n), 1e-6);
    snprintf(what, sizeof what, "rmsnorm bwd %dx%d: dw", N, C);
    ok &= report(what, rel_err(gw[0], dw0, C), 3e-5);
    snprintf(what, sizeof what, "rmsnorm bwd %dx%d: dw run 2 bytes differ", N, C);
    ok &= report(what, memcmp(gw[0], gw[1], C * 4) ? 1.0 : 0.0, 0.0);
    gpu.ops->free(&gpu, dx), gpu.ops->free(&gpu, dwt), gpu.ops->free(&gpu, dg), gpu.ops->free(&gpu, drs);
    float *hst[] = {x, w, g, rstd, dw0, dx0, gw[0], gw[1], gx[0], gx[1]};
    for (size_t i = 0; i < sizeof hst / sizeof hst[0]; i++) free(hst[i]);
    return ok;
}

static void test_rmsnorm_dw(void **state) {
    (void)state;
    int ok = dw_case(5000, 256);
    ok &= dw_case(3, 4096);
    ok &= dw_case(300, 33);
    assert_true(ok);
}

/* ---- SwiGLU ---- */
static int swiglu_case(int R, int F) {
    const size_t n = (size_t)R * F;
    float *gu = h_rand(2 * n, -4, 4), *dout = h_rand(n, -1, 1), *dgu = h_rand(2 * n, -1, 1), *out = malloc(n * 4);
    float *dgu_d = d_up(gu, 2 * n * 4), *dout_d = d_up(dout, n * 4), *ddgu = d_up(dgu, 2 * n * 4);
    float *dout_o = d_up(NULL, n * 4);
    cpu.ops->swiglu_forward(&cpu, out, gu, R, F);
    cpu.ops->swiglu_backward(&cpu, dgu, dout, gu, R, F);
    gpu.ops->swiglu_forward(&gpu, dout_o, dgu_d, R, F);
    gpu.ops->swiglu_backward(&gpu, ddgu, dout_d, dgu_d, R, F);
    float *go = d_down(dout_o, n), *gd = d_down(ddgu, 2 * n);
    char what[96];
    int ok = 1;
    snprintf(what, sizeof what, "swiglu fwd R=%d F=%d", R, F);
    ok &= report(what, rel_err(go, out, n), 1e-6);
    snprintf(what, sizeof what, "swiglu bwd R=%d F=%d", R, F);
    ok &= report(what, rel_err(gd, dgu, 2 * n), 1e-6);
    gpu.ops->free(&gpu, dgu_d), gpu.ops->free(&gpu, dout_d), gpu.ops->free(&gpu, ddgu), gpu.ops->free(&gpu, dout_o);
    free(gu), free(dout), free(dgu), free(out), free(go), free(gd);
    return ok;
}

static void test_swiglu(void **state) {
    (void)state;
    int ok = swiglu_case(300, 512);
    ok &= swiglu_case(77, 37);
    ok &= swiglu_case(1, 4);
    assert_true(ok);
}

int main(void) {
    int skip = gpu_skip_status("test_cuda_fused");
    if (skip >= 0) return skip;
    kernel_ctx_init(&cpu, kernels_cpu(), 0);
    kernel_ctx_init(&gpu, kernels_cuda(), 0);
    const struct CMUnitTest tests[] = {cmocka_unit_test(test_adamw_fused), cmocka_unit_test(test_add_rmsnorm),
                                       cmocka_unit_test(test_rmsnorm_dw), cmocka_unit_test(test_swiglu)};
    int rc = cmocka_run_group_tests(tests, NULL, NULL);
    kernel_ctx_free(&gpu);
    kernel_ctx_free(&cpu);
    return rc;
}
