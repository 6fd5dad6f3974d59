/* tests/kernels/test_cuda_lightning.c: the chunk-parallel TF32 lightning attention kernels of the
 * CUDA backend (kernels/cuda/lightning_chunk.cu) against the CPU reference and the naive CUDA kernels.
 * labels: gpu
 *
 * Each case draws fresh random inputs (q, k, v through SiLU as in the model, decay slopes spread
 * from 1e-3 to 1, so lambda runs from 0.37 to 0.999), runs lightning_forward and lightning_backward
 * on the CPU table, on the CUDA table (the chunked kernels) and on the CUDA table with
 * CISPO_CUDA_NAIVE_LIGHTNING=1 (the naive FP32 recurrence), and compares out, kv_out, dqkv and
 * dkv_in by ||x - ref|| / ||ref|| (float64 norms). Outputs are NaN-poisoned on the device; dqkv and
 * dkv_in are pre-filled with the same random values everywhere (the ops accumulate). Shapes: packed
 * variable-length batches with lengths that are not multiples of the 64-row chunk (0, 1, 37, 129,
 * 513, 1100, 3000, ...), sequences of several 512-token segments, HS 32, 64 and 128, with and
 * without an initial state; one case with a workspace too small for any segment state (one segment
 * per sequence); one head size without a chunked kernel (HS = 16: the naive fallback).
 * Tolerances: TF32 operands (10-bit mantissa, FP32 accumulation) give about 1e-3; the test allows
 * TOL_TF32 = 4e-3. The naive kernels and the fallback are FP32: TOL_FP32 = 1e-5.
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

#define TOL_TF32 4e-3
#define TOL_FP32 1e-5
#define MAX_SEQ 8

typedef struct {
    const char *name;
    int NH, HS, with_state, small_ws;
    int B, lens[MAX_SEQ];
} Case;

typedef struct {
    int start[MAX_SEQ + 1];
    SeqPack pack;
    size_t nq, no, ns; /* floats in qkv, out, one set of states */
} Shape;

/* Host results of one backend: out, kv_out, dqkv, dkv_in. */
typedef struct {
    float *out, *kv_out, *dqkv, *dkv;
} Result;

typedef struct {
    float *qkv, *slopes, *kv_in, *dout, *dqkv0, *dkv0; /* host inputs */
} Inputs;

static uint64_t g_stream = 1;

static float *h_rand(size_t n, float lo, float hi) {
    float *x = malloc((n ? n : 1) * sizeof(float));
    rng_fill_uniform(x, n, 4321, g_stream++, lo, hi);
    return x;
}

static void make_shape(Shape *s, const Case *c) {
    s->start[0] = 0;
    for (int b = 0; b < c->B; b++) s->start[b + 1] = s->start[b] + c->lens[b];
    s->pack = (SeqPack){c->B, s->start, NULL};
    int N = s->start[c->B];
    s->nq = (size_t)N * c->NH * 3 * c->HS;
    s->no = (size_t)N * c->NH * c->HS;
    s->ns = (size_t)c->B * c->NH * c->HS * c->HS;
}

static Inputs make_inputs(const Case *c, const Shape *s) {
    Inputs in;
    in.qkv = h_rand(s->nq, -2, 2);
    for (size_t i = 0; i < s->nq; i++) in.qkv[i] = in.qkv[i] / (1.0f + expf(-in.qkv[i])); /* SiLU */
    in.slopes = malloc((size_t)c->NH * sizeof(float));
    for (int h = 0; h < c->NH; h++) /* log-spaced over [1e-3, 1] */
        in.slopes[h] = c->NH > 1 ? powf(10.0f, -3.0f + 3.0f * (float)h / (float)(c->NH - 1)) : 0.05f;
    in.kv_in = c->with_state ? h_rand(s->ns, -1, 1) : NULL;
    in.dout = h_rand(s->no, -1, 1);
    in.dqkv0 = h_rand(s->nq, -1, 1);
    in.dkv0 = h_rand(s->ns, -1, 1);
    return in;
}

static void free_inputs(Inputs *in) {
    free(in->qkv), free(in->slopes), free(in->kv_in), free(in->dout), free(in->dqkv0), free(in->dkv0);
}

static void free_result(Result *r) { free(r->out), free(r->kv_out), free(r->dqkv), free(r->dkv); }

/* The CPU reference. */
static Result run_cpu(const Case *c, const Shape *s, const Inputs *in) {
    int maxT = 1;
    for (int b = 0; b < c->B; b++) maxT = c->lens[b] > maxT ? c->lens[b] : maxT;
    KernelCtx ctx;
    const KernelOps *o = kernels_cpu();
    kernel_ctx_init(&ctx, o, o->lightning_ws_bytes(maxT, c->NH, c->HS, 64));
    Result r;
    r.out = malloc(s->no * sizeof(float));
    r.kv_out = malloc(s->ns * sizeof(float));
    r.dqkv = malloc(s->nq * sizeof(float));
    r.dkv = malloc(s->ns * sizeof(float));
    memcpy(r.dqkv, in->dqkv0, s->nq * sizeof(float));
    memcpy(r.dkv, in->dkv0, s->ns * sizeof(float));
    o->lightning_forward(&ctx, r.out, r.kv_out, in->qkv, in->kv_in, in->slopes, &s->pack, c->NH, c->HS, 64);
    o->lightning_backward(&ctx, r.dqkv, c->with_state ? r.dkv : NULL, in->dout, in->qkv, in->kv_in, in->slopes,
                          &s->pack, c->NH, c->HS, 64);
    kernel_ctx_free(&ctx);
    return r;
}

static float *d_up(KernelCtx *g, const float *h, size_t n) {
    float *d = g->ops->alloc(g, (n ? n : 1) * sizeof(float));
    if (h) g->ops->copy_h2d(g, d, h, n * sizeof(float));
    return d;
}

static float *d_nan(KernelCtx *g, size_t n) {
    float *h = malloc((n ? n : 1) * sizeof(float));
    for (size_t i = 0; i < n; i++) h[i] = NAN;
    float *d = d_up(g, h, n);
    free(h);
    return d;
}

static float *d_down(KernelCtx *g, const float *d, size_t n) {
    float *h = malloc((n ? n : 1) * sizeof(float));
    g->ops->sync(g);
    g->ops->copy_d2h(g, h, d, n * sizeof(float));
    return h;
}

/* The CUDA table (naive: with CISPO_CUDA_NAIVE_LIGHTNING=1). */
static Result run_cuda(const Case *c, const Shape *s, const Inputs *in, int naive) {
    const KernelOps *o = kernels_cuda();
    KernelCtx g;
    size_t ws = o->lightning_ws_bytes(c->small_ws ? 0 : s->start[c->B], c->NH, c->HS, 64);
    kernel_ctx_init(&g, o, ws);
    if (naive) setenv("CISPO_CUDA_NAIVE_LIGHTNING", "1", 1);
    float *qkv = d_up(&g, in->qkv, s->nq), *kv_in = c->with_state ? d_up(&g, in->kv_in, s->ns) : NULL;
    float *out = d_nan(&g, s->no), *kv_out = d_nan(&g, s->ns), *dout = d_up(&g, in->dout, s->no);
    float *dqkv = d_up(&g, in->dqkv0, s->nq), *dkv = d_up(&g, in->dkv0, s->ns);
    o->lightning_forward(&g, out, kv_out, qkv, kv_in, in->slopes, &s->pack, c->NH, c->HS, 64);
    o->lightning_backward(&g, dqkv, c->with_state ? dkv : NULL, dout, qkv, kv_in, in->slopes, &s->pack, c->NH,
                          c->HS, 64);
    Result r = {d_down(&g, out, s->no), d_down(&g, kv_out, s->ns), d_down(&g, dqkv, s->nq), d_down(&g, dkv, s->ns)};
    unsetenv("CISPO_CUDA_NAIVE_LIGHTNING");
    float *bufs[] = {qkv, kv_in, out, kv_out, dout, dqkv, dkv};
    for (size_t i = 0; i < sizeof(bufs) / sizeof(bufs[0]); i++) o->free(&g, bufs[i]);
    kernel_ctx_free(&g);
    return r;
}

/* ||a - ref|| / ||ref||; a non-finite element of a makes it infinite. */
static double rel_err(const float *a, const float *ref, size_t n) {
    double num = 0.0, den = 0.0;
    for (size_t i = 0; i < n; i++) {
        if (!isfinite(a[i])) return INFINITY;
        double d = (double)a[i] - ref[i];
        num += d * d;
        den += (double)ref[i] * ref[i];
    }
    return sqrt(num) / (den > 0.0 ? sqrt(den) : 1e-30);
}

static int report(const char *cs, const char *what, double err, double tol) {
    int ok = err < tol;
    printf("  %-34s %-22s %10.3e  %7.1e  %s\n", cs, what, err, tol, ok ? "ok" : "FAIL");
    fflush(stdout);
    return ok;
}

/* All four outputs of x against ref. */
static int compare(const Case *c, const Shape *s, const Result *x, const Result *ref, const char *vs, double tol) {
    char w[64];
    int ok = 1;
    snprintf(w, sizeof(w), "out %s", vs);
    ok &= report(c->name, w, rel_err(x->out, ref->out, s->no), tol);
    snprintf(w, sizeof(w), "kv_out %s", vs);
    ok &= report(c->name, w, rel_err(x->kv_out, ref->kv_out, s->ns), tol);
    snprintf(w, sizeof(w), "dqkv %s", vs);
    ok &= report(c->name, w, rel_err(x->dqkv, ref->dqkv, s->nq), tol);
    snprintf(w, sizeof(w), "dkv_in %s", vs);
    ok &= report(c->name, w, rel_err(x->dkv, ref->dkv, s->ns), tol);
    return ok;
}

static int run_case(const Case *c) {
    Shape s;
    make_shape(&s, c);
    Inputs in = make_inputs(c, &s);
    Result cpu = run_cpu(c, &s, &in), fast = run_cuda(c, &s, &in, 0), naive = run_cuda(c, &s, &in, 1);
    const int chunked = c->HS == 32 || c->HS == 64 || c->HS == 128;
    const double tol = chunked ? TOL_TF32 : TOL_FP32;
    int ok = compare(c, &s, &fast, &cpu, "cuda vs cpu", tol);
    ok &= compare(c, &s, &fast, &naive, "cuda vs naive", tol);
    ok &= compare(c, &s, &naive, &cpu, "naive vs cpu", TOL_FP32);
    free_result(&cpu), free_result(&fast), free_result(&naive);
    free_inputs(&in);
    return ok;
}

static const Case CASES[] = {
    {"HS=32 NH=3 ragged, kv_in", 3, 32, 1, 0, 6, {37, 0, 1, 200, 64, 129}},
    {"HS=64 NH=2 ragged", 2, 64, 0, 0, 4, {1000, 513, 64, 7}},
    {"HS=64 NH=4 T=4100, kv_in", 4, 64, 1, 0, 1, {4100}},
    {"HS=128 NH=2 ragged, kv_in", 2, 128, 1, 0, 4, {3000, 1, 0, 1100}},
    {"HS=128 NH=3 T=2048", 3, 128, 0, 0, 1, {2048}},
    {"HS=128 NH=2 small ws, kv_in", 2, 128, 1, 1, 3, {1500, 77, 600}},
    {"HS=16 NH=2 (naive fallback), kv_in", 2, 16, 1, 0, 3, {300, 0, 65}},
};

static void test_cases(void **state) {
    (void)state;
    printf("  %-34s %-22s %10s  %7s\n", "case", "output", "rel err", "tol");
    int ok = 1;
    for (size_t i = 0; i < sizeof(CASES) / sizeof(CASES[0]); i++) ok &= run_case(&CASES[i]);
    assert_true(ok);
}

int main(void) {
    int skip = gpu_skip_status("test_cuda_lightning");
    if (skip >= 0) return skip;
    unsetenv("CISPO_CUDA_NAIVE_LIGHTNING");
    const struct CMUnitTest tests[] = {cmocka_unit_test(test_cases)};
    return cmocka_run_group_tests(tests, NULL, NULL);
}
