/* bench/bench_cuda_attn.c: the CUDA backend's softmax attention (kernels/cuda/flash_attn.cu):
 * forward and forward+backward at 16 query heads x 128 (MHA, and GQA 16q/4kv) on 32K packed tokens
 * with T in {2K, 8K, 32K}, and decode at batch 1/64/256 against contexts 1K..32K (16q/4kv x 128).
 * Built only with -DCISPO_CUDA=ON.
 *
 * Timing: CUDA events around each call on the backend's stream, warm-up calls first, the median of
 * --iters calls, inputs rotated over up to 3 buffer sets (L2 holds none of them between calls).
 * Each row gives the bound max(bytes / bandwidth, flops / peak) with the ceilings passed in
 * (defaults 4.3e12 B/s and 790e12 FLOP/s, the H200's measured copy rate and BF16 dense peak).
 * Causal FLOPs count the useful work: forward 4 * pairs * HS * NH (pairs = sum T(T+1)/2), forward +
 * backward 3.5x that (FlashAttention's convention; the kernels recompute S in both backward passes,
 * so they execute about 4.5x). Bytes: FP32 tensors read and written once (gradients read and written).
 * Correctness in the same run, on a subset (the CPU is slow): one 2K sequence forward+backward
 * (MHA and GQA) and a decode batch of 4 at 4K against the CPU backend, relative L2 errors.
 *
 * Usage: bench_cuda_attn [--json PATH] [--bw B/s] [--peak FLOP/s] [--iters N] [--warmup N]
 *                        [--no-check] [--quick]
 * The table goes to stdout, the JSON (device, driver, commit, rows) to PATH.
 * CISPO_CUDA_NAIVE_ATTN=1 times the naive kernels instead (slow at 32K: use --quick).
 */
#include <cuda_runtime_api.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/error.h"
#include "core/rng.h"
#include "core/version.h"
#include "kernels/backend.h"
#include "bench/bench_util.h"

#define MAX_ROWS 64
#define MAX_SETS 3
#define NTOK 32768

typedef struct {
    char name[32], shape[96];
    double ms, bound_ms, rate; /* rate: TFLOP/s (training) or TB/s (decode) */
    double err;                /* relative error against the CPU, or -1 when not checked */
} Row;

typedef struct {
    double bw, peak;
    int iters, warmup, check, quick;
    const char *json;
    Row rows[MAX_ROWS];
    int n;
    KernelCtx g;
} Bench;

#define CU(call)                                                                               \
    do {                                                                                       \
        cudaError_t e_ = (call);                                                               \
        CHECK(e_ == cudaSuccess, "%s: %s", #call, cudaGetErrorString(e_));                     \
    } while (0)

/* n uniform(-1, 1) floats on the device: a random block of up to 16M floats, repeated (the large
 * KV caches would take minutes to fill on the host). */
static float *dev_rand(KernelCtx *g, size_t n, uint64_t stream) {
    const size_t blk = n < ((size_t)1 << 24) ? n : ((size_t)1 << 24);
    float *h = xmalloc((blk ? blk : 1) * sizeof(float));
    rng_fill_uniform(h, blk, 99, stream, -1.0f, 1.0f);
    float *d = g->ops->alloc(g, n * sizeof(float));
    for (size_t o = 0; o < n; o += blk) g->ops->copy_h2d(g, d + o, h, (n - o < blk ? n - o : blk) * sizeof(float));
    free(h);
    return d;
}

/* Buffer sets that fit in 60% of free device memory (1..MAX_SETS). */
static int n_sets(size_t set_bytes) {
    size_t fr = 0, tot = 0;
    CU(cudaMemGetInfo(&fr, &tot));
    size_t n = set_bytes > 0 ? (size_t)(0.6 * (double)fr) / set_bytes : MAX_SETS;
    return n < 1 ? 0 : n > MAX_SETS ? MAX_SETS : (int)n;
}

static double rel_err(const float *a, const float *ref, size_t n) {
    double num = 0, den = 0;
    for (size_t i = 0; i < n; i++) {
        if (!isfinite(a[i])) return INFINITY;
        num += ((double)a[i] - ref[i]) * ((double)a[i] - ref[i]);
        den += (double)ref[i] * ref[i];
    }
    return sqrt(num) / (den > 0 ? sqrt(den) : 1e-30);
}

static void add_row(Bench *b, const char *name, const char *shape, double ms, double bytes, double flops, int decode) {
    CHECK(b->n < MAX_ROWS, "bench: too many rows");
    Row *r = &b->rows[b->n++];
    snprintf(r->name, sizeof r->name, "%s", name);
    snprintf(r->shape, sizeof r->shape, "%s", shape);
    r->ms = ms;
    double tb = bytes / b->bw, tf = flops / b->peak;
    r->bound_ms = 1e3 * (tb > tf ? tb : tf);
    r->rate = decode ? bytes / (ms * 1e-3) / 1e12 : flops / (ms * 1e-3) / 1e12;
    r->err = -1;
    printf("%-10s %-44s %10.3f %10.3f %6.1f%% %9.2f %s\n", name, shape, ms, r->bound_ms, 100.0 * r->bound_ms / ms,
           r->rate, decode ? "TB/s" : "TFLOP/s");
    fflush(stdout);
}

/* One training shape: B sequences of T tokens, NH/KVH heads of 128. */
typedef struct {
    float *q, *k, *v, *out, *lse, *dout, *dq, *dk, *dv;
} TrainSet;

static void train_set_alloc(KernelCtx *g, TrainSet *s, size_t N, int NH, int KVH, int HS, uint64_t st) {
    size_t nq = N * NH * HS, nk = N * KVH * HS;
    s->q = dev_rand(g, nq, st), s->k = dev_rand(g, nk, st + 1), s->v = dev_rand(g, nk, st + 2);
    s->dout = dev_rand(g, nq, st + 3);
    s->out = g->ops->alloc(g, nq * 4), s->lse = g->ops->alloc(g, N * NH * 4);
    s->dq = g->ops->alloc(g, nq * 4), s->dk = g->ops->alloc(g, nk * 4), s->dv = g->ops->alloc(g, nk * 4);
}

static void train_set_free(KernelCtx *g, TrainSet *s) {
    float *p[9] = {s->q, s->k, s->v, s->out, s->lse, s->dout, s->dq, s->dk, s->dv};
    for (int i = 0; i < 9; i++) g->ops->free(g, p[i]);
}

/* Median ms of `iters` calls (after `warmup`) of forward (with_bwd = 0) or forward + backward. */
static double time_train(Bench *b, TrainSet *sets, int R, const SeqPack *pk, int NH, int KVH, int HS, int with_bwd) {
    KernelCtx *g = &b->g;
    const float scale = 1.0f / sqrtf((float)HS);
    cudaEvent_t e0, e1;
    CU(cudaEventCreate(&e0));
    CU(cudaEventCreate(&e1));
    double t[256];
    int n = 0;
    for (int it = -b->warmup; it < b->iters && n < 256; it++) {
        TrainSet *s = &sets[(it + b->warmup) % R];
        CU(cudaEventRecord(e0, 0));
        g->ops->attention_forward(g, s->out, s->lse, s->q, s->k, s->v, pk, NH, KVH, HS, scale);
        if (with_bwd)
            g->ops->attention_backward(g, s->dq, s->dk, s->dv, s->dout, s->q, s->k, s->v, s->out, s->lse, pk, NH, KVH,
                                       HS, scale);
        CU(cudaEventRecord(e1, 0));
        CU(cudaEventSynchronize(e1));
        float ms = 0;
        CU(cudaEventElapsedTime(&ms, e0, e1));
        if (it >= 0) t[n++] = ms;
    }
    CU(cudaEventDestroy(e0));
    CU(cudaEventDestroy(e1));
    return bench_median(t, n);
}

static void bench_train(Bench *b, int T, int NH, int KVH) {
    const int HS = 128, B = NTOK / T;
    int *start = xmalloc((size_t)(B + 1) * sizeof(int));
    for (int i = 0; i <= B; i++) start[i] = i * T;
    SeqPack pk = {B, start, NULL};
    const size_t N = NTOK, nq = N * NH * HS, nk = N * KVH * HS;
    const size_t set_bytes = 4 * (4 * nq + 4 * nk + N * NH);
    int R = n_sets(set_bytes);
    CHECK(R >= 1, "bench: a buffer set of %zu bytes does not fit", set_bytes);
    TrainSet sets[MAX_SETS];
    for (int r = 0; r < R; r++) train_set_alloc(&b->g, &sets[r], N, NH, KVH, HS, 10 + 10 * (uint64_t)r);
    const double pairs = (double)B * T * (T + 1) / 2.0, fl = 4.0 * pairs * HS * NH;
    const double by_f = 4.0 * (2.0 * nq + 2.0 * nk + (double)N * NH);
    const double by_b = 4.0 * (2.0 * nq /* q, dout */ + 2.0 * nk /* k, v */ + nq /* out */ + (double)N * NH +
                               2.0 * nq + 4.0 * nk /* dq, dk, dv read + written */);
    char shape[96];
    snprintf(shape, sizeof shape, "B=%d T=%d NH=%d KVH=%d HS=%d", B, T, NH, KVH, HS);
    add_row(b, "fwd", shape, time_train(b, sets, R, &pk, NH, KVH, HS, 0), by_f, fl, 0);
    add_row(b, "fwd+bwd", shape, time_train(b, sets, R, &pk, NH, KVH, HS, 1), by_f + by_b, 3.5 * fl, 0);
    for (int r = 0; r < R; r++) train_set_free(&b->g, &sets[r]);
    free(start);
}

/* Correctness on one sequence of T tokens against the CPU backend: worst relative error of out,
 * lse, dq, dk, dv; attached to the last row. */
static void check_train(Bench *b, int T, int NH, int KVH) {
    const int HS = 128;
    const float scale = 1.0f / sqrtf((float)HS);
    const KernelOps *c = kernels_cpu();
    KernelCtx cc;
    kernel_ctx_init(&cc, c, c->attention_ws_bytes(T, NH, HS));
    int start[2] = {0, T};
    SeqPack pk = {1, start, NULL};
    size_t nq = (size_t)T * NH * HS, nk = (size_t)T * KVH * HS, nl = (size_t)T * NH;
    size_t n[9] = {nq, nk, nk, nq, nl, nq, nq, nk, nk};
    float *h[9], *d[9]; /* q k v out lse dout dq dk dv */
    for (int i = 0; i < 9; i++) {
        h[i] = xcalloc(n[i], sizeof(float));
        if (i < 3 || i == 5) rng_fill_uniform(h[i], n[i], 5, (uint64_t)i, -1, 1);
        d[i] = b->g.ops->alloc(&b->g, n[i] * 4);
        b->g.ops->copy_h2d(&b->g, d[i], h[i], n[i] * 4);
    }
    c->attention_forward(&cc, h[3], h[4], h[0], h[1], h[2], &pk, NH, KVH, HS, scale);
    c->attention_backward(&cc, h[6], h[7], h[8], h[5], h[0], h[1], h[2], h[3], h[4], &pk, NH, KVH, HS, scale);
    b->g.ops->attention_forward(&b->g, d[3], d[4], d[0], d[1], d[2], &pk, NH, KVH, HS, scale);
    b->g.ops->attention_backward(&b->g, d[6], d[7], d[8], d[5], d[0], d[1], d[2], d[3], d[4], &pk, NH, KVH, HS,
                                 scale);
    b->g.ops->sync(&b->g);
    double worst = 0;
    for (int i = 3; i < 9; i++) {
        if (i == 5) continue;
        float *x = xmalloc(n[i] * 4);
        b->g.ops->copy_d2h(&b->g, x, d[i], n[i] * 4);
        double e = rel_err(x, h[i], n[i]);
        worst = e > worst ? e : worst;
        free(x);
    }
    for (int i = 0; i < 9; i++) free(h[i]), b->g.ops->free(&b->g, d[i]);
    kernel_ctx_free(&cc);
    printf("  check vs CPU (T=%d NH=%d KVH=%d, one sequence): worst rel err of out/lse/dq/dk/dv %.3e\n", T, NH,
           KVH, worst);
    b->rows[b->n - 1].err = worst;
}

static double time_decode(Bench *b, float **q, float **kc, float **vc, float **out, int R, const int *len, int B,
                          int Tmax, int NH, int KVH, int HS) {
    KernelCtx *g = &b->g;
    cudaEvent_t e0, e1;
    CU(cudaEventCreate(&e0));
    CU(cudaEventCreate(&e1));
    double t[256];
    int n = 0;
    for (int it = -b->warmup; it < b->iters && n < 256; it++) {
        int s = (it + b->warmup) % R;
        CU(cudaEventRecord(e0, 0));
        g->ops->attention_decode(g, out[s], q[s], kc[s], vc[s], len, B, Tmax, NH, KVH, HS, 1.0f / sqrtf((float)HS));
        CU(cudaEventRecord(e1, 0));
        CU(cudaEventSynchronize(e1));
        float ms = 0;
        CU(cudaEventElapsedTime(&ms, e0, e1));
        if (it >= 0) t[n++] = ms;
    }
    CU(cudaEventDestroy(e0));
    CU(cudaEventDestroy(e1));
    return bench_median(t, n);
}

/* Decode of B sequences with `ctx` cached tokens each; with check, also against the CPU. */
static void bench_decode(Bench *b, int B, int ctx, int check) {
    const int NH = 16, KVH = 4, HS = 128;
    const size_t nq = (size_t)B * NH * HS, nc = (size_t)B * ctx * KVH * HS;
    int R = n_sets(4 * (2 * nq + 2 * nc));
    if (R < 1) {
        printf("decode B=%d ctx=%d: skipped (%.1f GB of cache does not fit)\n", B, ctx, 8e-9 * (double)nc);
        return;
    }
    int *len = xmalloc((size_t)B * sizeof(int));
    for (int i = 0; i < B; i++) len[i] = ctx;
    float *q[MAX_SETS], *kc[MAX_SETS], *vc[MAX_SETS], *out[MAX_SETS];
    for (int r = 0; r < R; r++) {
        q[r] = dev_rand(&b->g, nq, 40 + 4 * (uint64_t)r), out[r] = b->g.ops->alloc(&b->g, nq * 4);
        kc[r] = dev_rand(&b->g, nc, 41 + 4 * (uint64_t)r), vc[r] = dev_rand(&b->g, nc, 42 + 4 * (uint64_t)r);
    }
    char shape[96];
    snprintf(shape, sizeof shape, "B=%d ctx=%d NH=%d KVH=%d HS=%d", B, ctx, NH, KVH, HS);
    double ms = time_decode(b, q, kc, vc, out, R, len, B, ctx, NH, KVH, HS);
    add_row(b, "decode", shape, ms, 4.0 * (2.0 * nq + 2.0 * nc), 4.0 * (double)nc * NH / KVH, 1);
    if (check) {
        KernelCtx cc;
        kernel_ctx_init(&cc, kernels_cpu(), 0);
        float *hq = xmalloc(nq * 4), *hk = xmalloc(nc * 4), *hv = xmalloc(nc * 4), *ho = xmalloc(nq * 4);
        float *hg = xmalloc(nq * 4);
        b->g.ops->copy_d2h(&b->g, hq, q[0], nq * 4), b->g.ops->copy_d2h(&b->g, hk, kc[0], nc * 4);
        b->g.ops->copy_d2h(&b->g, hv, vc[0], nc * 4);
        b->g.ops->attention_decode(&b->g, out[0], q[0], kc[0], vc[0], len, B, ctx, NH, KVH, HS, 1.0f / sqrtf(128.0f));
        b->g.ops->copy_d2h(&b->g, hg, out[0], nq * 4);
        kernels_cpu()->attention_decode(&cc, ho, hq, hk, hv, len, B, ctx, NH, KVH, HS, 1.0f / sqrtf(128.0f));
        b->rows[b->n - 1].err = rel_err(hg, ho, nq);
        printf("  check vs CPU: rel err %.3e\n", b->rows[b->n - 1].err);
        free(hq), free(hk), free(hv), free(ho), free(hg);
        kernel_ctx_free(&cc);
    }
    for (int r = 0; r < R; r++)
        b->g.ops->free(&b->g, q[r]), b->g.ops->free(&b->g, kc[r]), b->g.ops->free(&b->g, vc[r]),
            b->g.ops->free(&b->g, out[r]);
    free(len);
}

static void write_json(const Bench *b, const char *dev, int driver) {
    FILE *f = fopen(b->json, "w");
    CHECK(f != NULL, "bench: cannot write %s", b->json);
    const char *naive = getenv("CISPO_CUDA_NAIVE_ATTN");
    fprintf(f, "{\n  \"bench\": \"bench_cuda_attn\",\n  \"device\": \"%s\",\n  \"driver\": %d,\n", dev, driver);
    fprintf(f, "  \"commit\": \"%s\",\n  \"kernels\": \"%s\",\n", cispo_version(),
            naive && strcmp(naive, "0") ? "naive" : "flash");
    fprintf(f, "  \"bandwidth_Bps\": %.4g,\n  \"peak_flops\": %.4g,\n  \"iters\": %d,\n  \"rows\": [\n", b->bw,
            b->peak, b->iters);
    for (int i = 0; i < b->n; i++) {
        const Row *r = &b->rows[i];
        fprintf(f, "    {\"op\": \"%s\", \"shape\": \"%s\", \"median_ms\": %.5f, \"bound_ms\": %.5f, ", r->name, r->shape,
                r->ms, r->bound_ms);
        fprintf(f, "\"pct_of_bound\": %.2f, \"rate\": %.4f, \"rate_unit\": \"%s\", \"err_vs_cpu\": %.4g}%s\n",
                100.0 * r->bound_ms / r->ms, r->rate, strcmp(r->name, "decode") ? "TFLOP/s" : "TB/s", r->err,
                i + 1 < b->n ? "," : "");
    }
    fprintf(f, "  ]\n}\n");
    fclose(f);
    printf("wrote %s\n", b->json);
}

static void parse_args(Bench *b, int argc, char **argv) {
    b->bw = 4.3e12, b->peak = 790e12, b->iters = 20, b->warmup = 3, b->check = 1, b->quick = 0, b->json = NULL;
    for (int a = 1; a < argc; a++) {
        if (!strcmp(argv[a], "--json") && a + 1 < argc) b->json = argv[++a];
        else if (!strcmp(argv[a], "--bw") && a + 1 < argc) b->bw = atof(argv[++a]);
        else if (!strcmp(argv[a], "--peak") && a + 1 < argc) b->peak = atof(argv[++a]);
        else if (!strcmp(argv[a], "--iters") && a + 1 < argc) b->iters = atoi(argv[++a]);
        else if (!strcmp(argv[a], "--warmup") && a + 1 < argc) b->warmup = atoi(argv[++a]);
        else if (!strcmp(argv[a], "--no-check")) b->check = 0;
        else if (!strcmp(argv[a], "--quick")) b->quick = 1;
        else {
            fprintf(stderr, "usage: %s [--json PATH] [--bw B/s] [--peak FLOP/s] [--iters N] [--warmup N] "
                            "[--no-check] [--quick]\n", argv[0]);
            exit(2);
        }
    }
    CHECK(b->iters >= 1 && b->iters <= 200 && b->warmup >= 0 && b->bw > 0 && b->peak > 0, "bench: bad options");
}

int main(int argc, char **argv) {
    static Bench b;
    parse_args(&b, argc, argv);
    const KernelOps *g = kernels_cuda();
    if (g == NULL) {
        fprintf(stderr, "bench_cuda_attn: no CUDA device\n");
        return 1;
    }
    struct cudaDeviceProp prop;
    int driver = 0;
    CU(cudaGetDeviceProperties(&prop, 0));
    CU(cudaDriverGetVersion(&driver));
    size_t ws = g->attention_ws_bytes(NTOK, 16, 128);
    kernel_ctx_init(&b.g, g, ws);
    printf("bench_cuda_attn on %s (driver %d), commit %s; bound = max(bytes/%.3g B/s, flops/%.3g FLOP/s)\n",
           prop.name, driver, cispo_version(), b.bw, b.peak);
    printf("%-10s %-44s %10s %10s %7s %9s\n", "op", "shape", "median ms", "bound ms", "bound%", "rate");
    const int Ts[3] = {2048, 8192, 32768}, kvs[2] = {16, 4};
    for (int kv = 0; kv < 2; kv++)
        for (int t = 0; t < (b.quick ? 1 : 3); t++) {
            bench_train(&b, Ts[t], 16, kvs[kv]);
            if (b.check && t == 0) check_train(&b, 2048, 16, kvs[kv]);
        }
    const int Bs[3] = {1, 64, 256}, ctxs[4] = {1024, 4096, 16384, 32768};
    for (int i = 0; i < 3; i++)
        for (int j = 0; j < (b.quick ? 2 : 4); j++) bench_decode(&b, Bs[i], ctxs[j], b.check && i == 0 && j == 1);
    if (b.check) bench_decode(&b, 4, 4096, 1);
    if (b.json) write_json(&b, prop.name, driver);
    kernel_ctx_free(&b.g);
    return 0;
}
