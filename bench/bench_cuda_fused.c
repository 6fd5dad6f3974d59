/* bench/bench_cuda_fused.c: the fused ops of kernels/cuda/fused.cu (and SwiGLU) against the unfused
 * sequences they replace and against the device's copy bandwidth, on the CUDA backend. Built only
 * with -DCISPO_CUDA=ON.
 *
 * Usage: bench_cuda_fused [--json OUT.json] [--params N] [--reps R]
 *   --params: parameters of the AdamW step (default 1e9: 16 GB of p, g, m, v; use 3e8 where memory
 *   is tight), split into tensors of 4M floats plus a few small 1-D ones, as a model's table is.
 * Rows (one table on stdout, the same numbers in the JSON with device, driver and commit):
 *   copy          cudaMemcpy device to device of 2 GiB: read + write bytes / time, the ceiling;
 *   adamw_fused   one step (norm, clip test, update; no read-back), 32 B per parameter
 *                 (4 norm read + 16 read + 12 written); beside it the unfused step (per-tensor sumsq
 *                 with its host synchronisation, adamw per tensor), 36 B per parameter;
 *   add_rmsnorm   forward at N = 32768, C = 1024 and 2048: 16 B per element (x, y read; xo, out
 *                 written) vs scale + axpby + rmsnorm_forward (28 B); backward with dy: 28 B (dxo
 *                 r+w, dout, xo, dy; dw pass dout, xo) vs rmsnorm_backward + scale (36 B);
 *   swiglu        forward and backward at R = 32768, F = 4096: 12 B and 28 B per output element.
 * GB/s = the op's own bytes / median time (CUDA events, 3 warm-ups, median of R, default 10); the
 * unfused rows count their own bytes, and "x fused" compares times.
 */
#include <cuda_runtime.h>
#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/error.h"
#include "core/rng.h"
#include "core/version.h"
#include "kernels/backend.h"
#include "bench/bench_util.h"

#define ADAM_CHUNK (4u << 20) /* floats per big tensor of the AdamW table */

typedef void (*BenchFn)(KernelCtx *g, void *arg);

static int g_reps = 10;

/* median ms of fn over g_reps timed calls after 3 warm-ups */
static double time_ms(KernelCtx *g, BenchFn fn, void *arg) {
    cudaEvent_t e0, e1;
    cudaEventCreate(&e0);
    cudaEventCreate(&e1);
    double *ms = xmalloc((size_t)g_reps * sizeof(double));
    for (int r = -3; r < g_reps; r++) {
        cudaEventRecord(e0, 0);
        fn(g, arg);
        cudaEventRecord(e1, 0);
        CHECK(cudaEventSynchronize(e1) == cudaSuccess, "bench_cuda_fused: %s", cudaGetErrorString(cudaGetLastError()));
        float t = 0.0f;
        cudaEventElapsedTime(&t, e0, e1);
        if (r >= 0) ms[r] = t;
    }
    double med = bench_median(ms, g_reps);
    free(ms);
    cudaEventDestroy(e0);
    cudaEventDestroy(e1);
    return med;
}

static json_t *g_rows;
static double g_copy_gbs = 0.0;

static void row(const char *name, double bytes, double ms, double ref_ms) {
    double gbs = bytes / (ms * 1e-3) / 1e9;
    printf("%-34s %9.3f ms %9.1f GB/s %6.1f%% of copy", name, ms, gbs, g_copy_gbs > 0 ? 100.0 * gbs / g_copy_gbs : 0.0);
    if (ref_ms > 0) printf("   unfused/fused %.2fx", ref_ms / ms);
    printf("\n");
    json_array_append_new(g_rows, json_pack("{s:s, s:f, s:f, s:f, s:f}", "op", name, "ms", ms, "bytes", bytes, "gb_s",
                                            gbs, "pct_copy", g_copy_gbs > 0 ? 100.0 * gbs / g_copy_gbs : 0.0));
}

/* n random floats on the device: one host tile of at most 16M values, repeated */
static float *d_rand(KernelCtx *g, size_t n, uint64_t stream, float lo, float hi) {
    size_t tile = n < ((size_t)1 << 24) ? n : ((size_t)1 << 24);
    float *h = xmalloc(tile * sizeof(float)), *d = g->ops->alloc(g, n * sizeof(float));
    rng_fill_uniform(h, tile, 5, stream, lo, hi);
    for (size_t o = 0; o < n; o += tile) g->ops->copy_h2d(g, d + o, h, (n - o < tile ? n - o : tile) * sizeof(float));
    free(h);
    return d;
}

/* ---- copy ---- */
typedef struct {
    void *a, *b;
    size_t bytes;
} CopyArg;
static void run_copy(KernelCtx *g, void *arg) {
    CopyArg *c = arg;
    g->ops->copy_d2d(g, c->b, c->a, c->bytes);
}

/* ---- AdamW ---- */
typedef struct {
    float *p, *g, *m, *v;
    OptTensor *table_dev, *table_host;
    int nt;
    double *norm;
} AdamArg;
static void run_adam_fused(KernelCtx *g, void *arg) {
    AdamArg *a = arg;
    g->ops->adamw_fused(g, a->p, a->g, a->m, a->v, a->table_dev, a->nt, a->norm, 1e30, 1e-6f, 0.9f, 0.95f, 1e-15f,
                        0.01f, 3);
}
static void run_adam_unfused(KernelCtx *g, void *arg) {
    AdamArg *a = arg;
    double s = 0.0;
    for (int i = 0; i < a->nt; i++) s += g->ops->sumsq(g, a->g + a->table_host[i].offset, a->table_host[i].numel);
    (void)s;
    for (int i = 0; i < a->nt; i++) {
        size_t o = a->table_host[i].offset;
        g->ops->adamw(g, a->p + o, a->g + o, a->m + o, a->v + o, a->table_host[i].numel, 1e-6f, 0.9f, 0.95f, 1e-15f,
                      a->table_host[i].decay ? 0.01f : 0.0f, 3);
    }
}

static void bench_adam(KernelCtx *g, size_t n_params) {
    size_t n_big = n_params / ADAM_CHUNK, nt = n_big + 8;
    OptTensor *tab = xcalloc(nt, sizeof(OptTensor));
    size_t off = 0;
    for (size_t i = 0; i < nt; i++) {
        size_t n = i < n_big ? ADAM_CHUNK : (i == n_big ? n_params % ADAM_CHUNK + 1 : 1024 + 3 * i);
        tab[i] = (OptTensor){off, n, i < n_big, 0};
        off = (off + n + 15) & ~(size_t)15;
    }
    AdamArg a = {NULL, NULL, NULL, NULL, NULL, tab, (int)nt, NULL};
    a.p = d_rand(g, off, 1, -1, 1), a.g = d_rand(g, off, 2, -1e-3f, 1e-3f);
    a.m = d_rand(g, off, 3, -1e-3f, 1e-3f), a.v = d_rand(g, off, 4, 0, 1e-6f);
    a.table_dev = g->ops->alloc(g, nt * sizeof(OptTensor));
    g->ops->copy_h2d(g, a.table_dev, tab, nt * sizeof(OptTensor));
    a.norm = g->ops->alloc(g, sizeof(double));
    double total = 0;
    for (size_t i = 0; i < nt; i++) total += (double)tab[i].numel;
    double t_un = time_ms(g, run_adam_unfused, &a), t_f = time_ms(g, run_adam_fused, &a);
    char name[64];
    snprintf(name, sizeof name, "adamw unfused %.2g params %zu t", total, nt);
    row(name, 36.0 * total, t_un, 0);
    snprintf(name, sizeof name, "adamw_fused %.2g params", total);
    row(name, 32.0 * total, t_f, t_un);
    g->ops->free(g, a.p), g->ops->free(g, a.g), g->ops->free(g, a.m), g->ops->free(g, a.v);
    g->ops->free(g, a.table_dev), g->ops->free(g, a.norm);
    free(tab);
}

/* ---- add_rmsnorm and SwiGLU ---- */
typedef struct {
    float *x, *y, *xo, *out, *rstd, *w, *dout, *dxo, *dy, *dw;
    int N, C;
} NormArg;
static void run_norm_fused(KernelCtx *g, void *arg) {
    NormArg *a = arg;
    g->ops->add_rmsnorm_forward(g, a->xo, a->out, a->rstd, a->x, 0.9f, a->y, 1.1f, a->w, a->N, a->C, 1e-5f);
}
static void run_norm_unfused(KernelCtx *g, void *arg) {
    NormArg *a = arg;
    size_t n = (size_t)a->N * a->C;
    g->ops->scale(g, a->xo, a->x, 0.9f, n);
    g->ops->axpby(g, a->xo, 1.1f, a->y, 1.0f, n);
    g->ops->rmsnorm_forward(g, a->out, a->rstd, a->xo, a->w, a->N, a->C, 1e-5f);
}
static void run_normb_fused(KernelCtx *g, void *arg) {
    NormArg *a = arg;
    g->ops->add_rmsnorm_backward(g, a->dxo, a->dy, a->dw, a->dout, a->xo, a->w, a->rstd, 1.1f, a->N, a->C);
}
static void run_normb_unfused(KernelCtx *g, void *arg) {
    NormArg *a = arg;
    g->ops->rmsnorm_backward(g, a->dxo, a->dw, a->dout, a->xo, a->w, a->rstd, a->N, a->C);
    g->ops->scale(g, a->dy, a->dxo, 1.1f, (size_t)a->N * a->C);
}
static void run_swiglu_f(KernelCtx *g, void *arg) {
    NormArg *a = arg; /* x = gate_up (N, 2C), out (N, C) */
    g->ops->swiglu_forward(g, a->out, a->x, a->N, a->C);
}
static void run_swiglu_b(KernelCtx *g, void *arg) {
    NormArg *a = arg; /* dxo = dgate_up (N, 2C), dout (N, C) */
    g->ops->swiglu_backward(g, a->dxo, a->dout, a->x, a->N, a->C);
}

static void bench_norm(KernelCtx *g, int N, int C) {
    size_t n = (size_t)N * C;
    NormArg a = {d_rand(g, n, 11, -1, 1), d_rand(g, n, 12, -1, 1), g->ops->alloc(g, n * 4), g->ops->alloc(g, n * 4),
                 g->ops->alloc(g, (size_t)N * 4), d_rand(g, C, 13, 0.5f, 1.5f), d_rand(g, n, 14, -1, 1),
                 d_rand(g, n, 15, -1, 1), g->ops->alloc(g, n * 4), g->ops->alloc(g, (size_t)C * 4), N, C};
    run_norm_fused(g, &a);
    char name[64];
    double tu = time_ms(g, run_norm_unfused, &a), tf = time_ms(g, run_norm_fused, &a);
    snprintf(name, sizeof name, "add_rmsnorm fwd unfused %dx%d", N, C);
    row(name, 28.0 * n, tu, 0);
    snprintf(name, sizeof name, "add_rmsnorm fwd %dx%d", N, C);
    row(name, 16.0 * n, tf, tu);
    tu = time_ms(g, run_normb_unfused, &a), tf = time_ms(g, run_normb_fused, &a);
    snprintf(name, sizeof name, "add_rmsnorm bwd unfused %dx%d", N, C);
    row(name, 36.0 * n, tu, 0);
    snprintf(name, sizeof name, "add_rmsnorm bwd %dx%d", N, C);
    row(name, 28.0 * n, tf, tu);
    float *all[] = {a.x, a.y, a.xo, a.out, a.rstd, a.w, a.dout, a.dxo, a.dy, a.dw};
    for (size_t i = 0; i < sizeof all / sizeof all[0]; i++) g->ops->free(g, all[i]);
}

static void bench_swiglu(KernelCtx *g, int R, int F) {
    size_t n = (size_t)R * F;
    NormArg a = {0};
    a.N = R, a.C = F;
    a.x = d_rand(g, 2 * n, 21, -4, 4), a.out = g->ops->alloc(g, n * 4);
    a.dout = d_rand(g, n, 22, -1, 1), a.dxo = d_rand(g, 2 * n, 23, -1, 1);
    char name[64];
    snprintf(name, sizeof name, "swiglu fwd %dx%d", R, F);
    row(name, 12.0 * n, time_ms(g, run_swiglu_f, &a), 0);
    snprintf(name, sizeof name, "swiglu bwd %dx%d", R, F);
    row(name, 28.0 * n, time_ms(g, run_swiglu_b, &a), 0);
    g->ops->free(g, a.x), g->ops->free(g, a.out), g->ops->free(g, a.dout), g->ops->free(g, a.dxo);
}

int main(int argc, char **argv) {
    const char *json_path = NULL;
    double n_params = 1e9;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--json") && i + 1 < argc) json_path = argv[++i];
        else if (!strcmp(argv[i], "--params") && i + 1 < argc) n_params = atof(argv[++i]);
        else if (!strcmp(argv[i], "--reps") && i + 1 < argc) g_reps = atoi(argv[++i]);
        else {
            fprintf(stderr, "usage: bench_cuda_fused [--json OUT.json] [--params N] [--reps R]\n");
            return 2;
        }
    }
    CHECK(g_reps >= 1 && n_params >= 1e6, "bench_cuda_fused: --reps >= 1 and --params >= 1e6");
    const KernelOps *ops = kernels_cuda();
    if (!ops) {
        printf("bench_cuda_fused: no CUDA device\n");
        return 1;
    }
    KernelCtx g;
    kernel_ctx_init(&g, ops, 0);
    struct cudaDeviceProp prop;
    int drv = 0;
    cudaGetDeviceProperties(&prop, 0);
    cudaDriverGetVersion(&drv);
    printf("%s, driver %d, %s\n", prop.name, drv, cispo_version());
    g_rows = json_array();
    CopyArg c = {NULL, NULL, (size_t)2 << 30};
    c.a = ops->alloc(&g, c.bytes), c.b = ops->alloc(&g, c.bytes);
    double t = time_ms(&g, run_copy, &c);
    g_copy_gbs = 2.0 * c.bytes / (t * 1e-3) / 1e9;
    row("copy d2d 2 GiB", 2.0 * c.bytes, t, 0);
    ops->free(&g, c.a), ops->free(&g, c.b);
    bench_adam(&g, (size_t)n_params);
    bench_norm(&g, 32768, 1024);
    bench_norm(&g, 32768, 2048);
    bench_swiglu(&g, 32768, 4096);
    if (json_path) {
        json_t *doc = json_pack("{s:s, s:s, s:i, s:s, s:f, s:o}", "bench", "cuda_fused", "device", prop.name, "driver",
                                drv, "commit", cispo_version(), "copy_gb_s", g_copy_gbs, "rows", g_rows);
        CHECK(json_dump_file(doc, json_path, JSON_INDENT(2)) == 0, "bench_cuda_fused: cannot write %s", json_path);
        json_decref(doc);
    } else {
        json_decref(g_rows);
    }
    kernel_ctx_free(&g);
    return 0;
}
