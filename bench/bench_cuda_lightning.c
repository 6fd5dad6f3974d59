/* bench/bench_cuda_lightning.c: lightning attention forward and forward+backward on the CUDA
 * backend (the chunked TF32 kernels of kernels/cuda/lightning_chunk.cu; --naive adds the naive
 * recurrent kernels), beside the physical bound from the bandwidth and peak given on the command
 * line. Built only with -DCISPO_CUDA=ON.
 *
 * Usage: bench_cuda_lightning OUT.json [--bw B/s] [--peak FLOP/s] [--reps N] [--naive]
 *   defaults: --bw 4.3e12 (H200 HBM3e), --peak 790e12 (dense BF16/TF32-class tensor peak used by
 *   BENCHMARKS.md), --reps 20.
 * Shapes: 16 heads x 128 and 8 heads x 64, 32K packed tokens as 16 x 2K, 4 x 8K or 1 x 32K, a
 * random initial state per sequence. Timing: CUDA events around each call on the backend's stream,
 * 3 warm-up calls, the median of N, rotating over 3 input sets (each larger than L2). Correctness,
 * same run: the first min(T, 4096) tokens of the first sequence against the CPU reference
 * (forward out and kv_out, backward dqkv and dkv_in; ||x - ref|| / ||ref||).
 * Bound = max(bytes / bw, flops / peak), with bytes the FP32 I/O the op contract implies (forward:
 * read qkv, write out; backward: read qkv and dout, read+write dqkv; states counted) and flops those
 * of the chunk algorithm at C = 64 (forward 4 C^2 HS + 4 C HS^2 per chunk and head; backward 2x
 * forward). The JSON also carries the same bound for BF16 I/O (half the bytes), the anchor's setting.
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

#define N_TOK 32768
#define N_SETS 3
#define CHECK_T 4096

typedef struct {
    int NH, HS, T, B;
} Shape;

typedef struct {
    double bw, peak;
    int reps, naive;
} Opts;

typedef struct {
    float *qkv[N_SETS], *dout[N_SETS], *out, *kv_in, *kv_out, *dqkv, *dkv;
    float *slopes; /* host */
    int start[N_TOK / 2048 + 1];
    SeqPack pack;
} Bufs;

static float *d_rand(KernelCtx *g, size_t n, uint64_t stream, float lo, float hi, int silu) {
    float *h = xmalloc(n * sizeof(float));
    rng_fill_uniform(h, n, 99, stream, lo, hi);
    if (silu)
        for (size_t i = 0; i < n; i++) h[i] = h[i] / (1.0f + expf(-h[i]));
    float *d = g->ops->alloc(g, n * sizeof(float));
    g->ops->copy_h2d(g, d, h, n * sizeof(float));
    free(h);
    return d;
}

static void bufs_init(Bufs *x, KernelCtx *g, const Shape *s) {
    size_t nq = (size_t)N_TOK * s->NH * 3 * s->HS, no = (size_t)N_TOK * s->NH * s->HS;
    size_t ns = (size_t)s->B * s->NH * s->HS * s->HS;
    for (int i = 0; i < N_SETS; i++) {
        x->qkv[i] = d_rand(g, nq, 10 + i, -2, 2, 1);
        x->dout[i] = d_rand(g, no, 20 + i, -1, 1, 0);
    }
    x->out = g->ops->alloc(g, no * sizeof(float));
    x->dqkv = g->ops->alloc(g, nq * sizeof(float));
    x->kv_in = d_rand(g, ns, 30, -1, 1, 0);
    x->kv_out = g->ops->alloc(g, ns * sizeof(float));
    x->dkv = g->ops->alloc(g, ns * sizeof(float));
    x->slopes = xmalloc((size_t)s->NH * sizeof(float));
    for (int h = 0; h < s->NH; h++) x->slopes[h] = powf(2.0f, -8.0f * (float)(h + 1) / (float)s->NH); /* HF rule */
    for (int b = 0; b <= s->B; b++) x->start[b] = b * s->T;
    x->pack = (SeqPack){s->B, x->start, NULL};
}

static void bufs_free(Bufs *x, KernelCtx *g) {
    for (int i = 0; i < N_SETS; i++) g->ops->free(g, x->qkv[i]), g->ops->free(g, x->dout[i]);
    float *p[] = {x->out, x->dqkv, x->kv_in, x->kv_out, x->dkv};
    for (size_t i = 0; i < sizeof(p) / sizeof(p[0]); i++) g->ops->free(g, p[i]);
    free(x->slopes);
}

/* Median milliseconds of forward (bwd = 0) or forward+backward (bwd = 1). */
static double time_op(KernelCtx *g, Bufs *x, const Shape *s, int bwd, int reps) {
    cudaEvent_t e0, e1;
    CHECK(cudaEventCreate(&e0) == cudaSuccess && cudaEventCreate(&e1) == cudaSuccess, "cudaEventCreate");
    double *ms = xmalloc((size_t)reps * sizeof(double));
    for (int r = -3; r < reps; r++) {
        int i = (r + 3) % N_SETS;
        cudaEventRecord(e0, 0);
        g->ops->lightning_forward(g, x->out, x->kv_out, x->qkv[i], x->kv_in, x->slopes, &x->pack, s->NH, s->HS, 256);
        if (bwd)
            g->ops->lightning_backward(g, x->dqkv, x->dkv, x->dout[i], x->qkv[i], x->kv_in, x->slopes, &x->pack,
                                       s->NH, s->HS, 256);
        cudaEventRecord(e1, 0);
        CHECK(cudaEventSynchronize(e1) == cudaSuccess, "lightning %s failed: %s", bwd ? "fwd+bwd" : "fwd",
              cudaGetErrorString(cudaGetLastError()));
        float t = 0.0f;
        cudaEventElapsedTime(&t, e0, e1);
        if (r >= 0) ms[r] = t;
    }
    double med = bench_median(ms, reps);
    free(ms);
    cudaEventDestroy(e0);
    cudaEventDestroy(e1);
    return med;
}

static double rel_err(const float *a, const float *ref, size_t n) {
    double num = 0.0, den = 0.0;
    for (size_t i = 0; i < n; i++) {
        double d = (double)a[i] - ref[i];
        num += isfinite(a[i]) ? d * d : INFINITY;
        den += (double)ref[i] * ref[i];
    }
    return sqrt(num) / (den > 0.0 ? sqrt(den) : 1e-30);
}

static float *down(KernelCtx *g, const float *d, size_t n) {
    float *h = xmalloc(n * sizeof(float));
    g->ops->sync(g);
    g->ops->copy_d2h(g, h, d, n * sizeof(float));
    return h;
}

/* Worst relative error of the 4 outputs on the first min(T, CHECK_T) tokens of sequence 0 (set 0). */
static double check_cpu(KernelCtx *g, Bufs *x, const Shape *s) {
    const int n = s->T < CHECK_T ? s->T : CHECK_T, NH = s->NH, HS = s->HS;
    int st[2] = {0, n};
    SeqPack p = {1, st, NULL};
    size_t nq = (size_t)n * NH * 3 * HS, no = (size_t)n * NH * HS, ns = (size_t)NH * HS * HS;
    float *qkv = down(g, x->qkv[0], nq), *dout = down(g, x->dout[0], no), *kv_in = down(g, x->kv_in, ns);
    float *out = xmalloc(no * 4), *kv_out = xmalloc(ns * 4), *dqkv = xcalloc(nq, 4), *dkv = xcalloc(ns, 4);
    KernelCtx c;
    kernel_ctx_init(&c, kernels_cpu(), kernels_cpu()->lightning_ws_bytes(n, NH, HS, 256));
    c.ops->lightning_forward(&c, out, kv_out, qkv, kv_in, x->slopes, &p, NH, HS, 256);
    c.ops->lightning_backward(&c, dqkv, dkv, dout, qkv, kv_in, x->slopes, &p, NH, HS, 256);
    kernel_ctx_free(&c);
    g->ops->zero(g, x->dqkv, nq * 4);
    g->ops->zero(g, x->dkv, ns * 4);
    g->ops->lightning_forward(g, x->out, x->kv_out, x->qkv[0], x->kv_in, x->slopes, &p, NH, HS, 256);
    g->ops->lightning_backward(g, x->dqkv, x->dkv, x->dout[0], x->qkv[0], x->kv_in, x->slopes, &p, NH, HS, 256);
    float *o[4] = {down(g, x->out, no), down(g, x->kv_out, ns), down(g, x->dqkv, nq), down(g, x->dkv, ns)};
    double e[4] = {rel_err(o[0], out, no), rel_err(o[1], kv_out, ns), rel_err(o[2], dqkv, nq), rel_err(o[3], dkv, ns)};
    double worst = 0.0;
    for (int i = 0; i < 4; i++) {
        if (!(e[i] <= worst)) worst = e[i]; /* NaN sticks */
        free(o[i]);
    }
    free(qkv), free(dout), free(kv_in), free(out), free(kv_out), free(dqkv), free(dkv);
    return worst;
}

/* Bytes and flops of forward (bwd = 0) or forward+backward (bwd = 1), FP32 I/O. */
static void cost(const Shape *s, int bwd, double *bytes, double *flops) {
    double row = (double)N_TOK * s->NH * s->HS * 4.0, st = (double)s->B * s->NH * s->HS * s->HS * 4.0;
    double chunks = (double)N_TOK / 64.0 * s->NH;
    double f = chunks * (4.0 * 64 * 64 * s->HS + 4.0 * 64 * s->HS * s->HS);
    *bytes = 4.0 * row + 2.0 * st;                 /* qkv in, out; kv_in, kv_out */
    *flops = f;
    if (bwd) *bytes += 10.0 * row + 3.0 * st, *flops += 2.0 * f; /* qkv, dout, dqkv r+w; kv_in, dkv r+w */
}

static json_t *bench_shape(KernelCtx *g, const Shape *s, const Opts *o) {
    Bufs x;
    bufs_init(&x, g, s);
    double err = check_cpu(g, &x, s);
    if (!isfinite(err)) err = 1e30; /* JSON has no NaN/inf; any failure shows as 1e30 */
    json_t *row = json_pack("{s:i, s:i, s:i, s:i, s:f}", "heads", s->NH, "head_dim", s->HS, "T", s->T, "B", s->B,
                            "check_rel_err", err);
    for (int bwd = 0; bwd < 2; bwd++) {
        double bytes, flops;
        cost(s, bwd, &bytes, &flops);
        double bound = fmax(bytes / o->bw, flops / o->peak) * 1e3;
        double bound16 = fmax(0.5 * bytes / o->bw, flops / o->peak) * 1e3;
        double ms = time_op(g, &x, s, bwd, o->reps), naive = NAN;
        if (o->naive) {
            setenv("CISPO_CUDA_NAIVE_LIGHTNING", "1", 1);
            naive = time_op(g, &x, s, bwd, 3);
            unsetenv("CISPO_CUDA_NAIVE_LIGHTNING");
        }
        printf("%-8s %3d x %-3d T=%-6d B=%-3d %10.3f ms %10.3f ms (%5.1f%%) %10.3f ms %10.2e\n",
               bwd ? "fwd+bwd" : "fwd", s->NH, s->HS, s->T, s->B, ms, bound, 100.0 * bound / ms, naive, err);
        fflush(stdout);
        json_object_set_new(row, bwd ? "fwd_bwd" : "fwd",
                            json_pack("{s:f, s:f, s:f, s:f, s:f, s:f}", "ms", ms, "bound_ms", bound, "bound_ms_bf16_io",
                                      bound16, "bytes", bytes, "flops", flops, "naive_ms", o->naive ? naive : -1.0));
    }
    bufs_free(&x, g);
    return row;
}

static Opts parse(int argc, char **argv) {
    Opts o = {4.3e12, 790e12, 20, 0};
    for (int i = 2; i < argc; i++) {
        if (!strcmp(argv[i], "--bw") && i + 1 < argc) o.bw = atof(argv[++i]);
        else if (!strcmp(argv[i], "--peak") && i + 1 < argc) o.peak = atof(argv[++i]);
        else if (!strcmp(argv[i], "--reps") && i + 1 < argc) o.reps = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--naive")) o.naive = 1;
        else CHECK(0, "bench_cuda_lightning: unknown argument '%s'", argv[i]);
    }
    CHECK(o.bw > 0 && o.peak > 0 && o.reps > 0, "bench_cuda_lightning: --bw, --peak, --reps must be positive");
    return o;
}

int main(int argc, char **argv) {
    if (argc < 2 || argv[1][0] == '-') {
        fprintf(stderr, "usage: %s OUT.json [--bw B/s] [--peak FLOP/s] [--reps N] [--naive]\n", argv[0]);
        return 2;
    }
    Opts o = parse(argc, argv);
    const KernelOps *ops = kernels_cuda();
    if (ops == NULL) {
        fprintf(stderr, "bench_cuda_lightning: no CUDA device\n");
        return 1;
    }
    const Shape shapes[] = {{16, 128, 2048, 16}, {16, 128, 8192, 4}, {16, 128, 32768, 1},
                            {8, 64, 2048, 16},   {8, 64, 8192, 4},   {8, 64, 32768, 1}};
    KernelCtx g;
    kernel_ctx_init(&g, ops, ops->lightning_ws_bytes(N_TOK, 16, 128, 256));
    struct cudaDeviceProp prop;
    int drv = 0;
    cudaGetDeviceProperties(&prop, 0);
    cudaDriverGetVersion(&drv);
    printf("%s, driver %d, %s; bound: bw %.3g B/s, peak %.3g FLOP/s, FP32 I/O\n", prop.name, drv, cispo_version(),
           o.bw, o.peak);
    printf("%-8s %-26s %13s %13s %8s %13s %10s\n", "op", "shape", "median", "bound", "of it", "naive", "rel err");
    json_t *rows = json_array();
    for (size_t i = 0; i < sizeof(shapes) / sizeof(shapes[0]); i++)
        json_array_append_new(rows, bench_shape(&g, &shapes[i], &o));
    json_t *doc = json_pack("{s:s, s:s, s:i, s:f, s:f, s:i, s:o}", "bench", "cuda_lightning", "device", prop.name,
                            "driver", drv, "bw", o.bw, "peak", o.peak, "reps", o.reps, "rows", rows);
    json_object_set_new(doc, "commit", json_string(cispo_version()));
    CHECK(json_dump_file(doc, argv[1], JSON_INDENT(2)) == 0, "bench_cuda_lightning: cannot write %s", argv[1]);
    json_decref(doc);
    kernel_ctx_free(&g);
    return 0;
}
