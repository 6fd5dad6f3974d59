/* bench/bench_cuda_moe.c: the CUDA backend's MoE layer (kernels/cuda/moe*.cu) forward and backward
 * at N = 8192 tokens, C = 1024, F = 1024, K = 2 with E = 8 and E = 32 experts, FP32 and BF16 math
 * (ctx->gemm_bf16). Built only with -DCISPO_CUDA=ON.
 *
 * Rows per (E, precision):
 *   layer fwd     route + sort (with its E+1-int copy to the host) + permute + expert GEMMs (gate|up,
 *                 down) + SwiGLU + combine, as model/forward.c calls them (router logits are an
 *                 input: the router GEMM is not part of the MoE ops);
 *   layer bwd     combine, expert GEMMs (data and weight), SwiGLU, permute and route backwards, with
 *                 the gradient zeroing model/backward.c does;
 *   gemm fwd/bwd  the expert GEMMs alone (fwd 6*NK*C*F FLOPs, bwd 12*NK*C*F), TFLOP/s;
 *   dense fwd     the same FLOPs as two dense GEMMs over all NK rows (`gemm`, one expert's weights):
 *                 the anchor that grouping should approach;
 *   sort          moe_sort alone (three kernels and the offsets copy).
 * Timing: CUDA events on the legacy stream, warm-up calls first, the median of --iters calls.
 * Which GEMM path ran (grouped or per-expert loop) is logged by the backend on its first call;
 * CISPO_CUDA_MOE_LOOP=1 forces the loop, for comparison.
 *
 * Usage: bench_cuda_moe [--json PATH] [--iters N] [--warmup N] [--tokens N]
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

#define MAX_ROWS 32
#define MAX_E 32

#define CU(call)                                                                  \
    do {                                                                          \
        cudaError_t e_ = (call);                                                  \
        CHECK(e_ == cudaSuccess, "%s: %s", #call, cudaGetErrorString(e_));        \
    } while (0)

typedef struct {
    char name[24], shape[64];
    double ms, tflops; /* tflops < 0: not a GEMM row */
} Row;

typedef struct {
    int iters, warmup, tokens;
    const char *json;
    Row rows[MAX_ROWS];
    int n;
    KernelCtx g;
} Bench;

typedef struct {
    int N, E, K, C, F;
    float *logits, *x, *wgu, *wd, *dy;                     /* inputs */
    float *probs, *tw, *xp, *h13, *hact, *yp, *y;          /* forward */
    float *dyp, *dtw, *dhact, *dh13, *dxp, *dx, *dl, *dwgu, *dwd;
    int *idx, *sorted, *pos;
    int offsets[MAX_E + 1]; /* host */
} Layer;

typedef enum { RUN_FWD, RUN_BWD, RUN_GEMM_FWD, RUN_GEMM_BWD, RUN_DENSE_FWD, RUN_SORT } RunKind;

static float *dev_rand(KernelCtx *g, size_t n, uint64_t stream, float scale) {
    float *h = xmalloc(n * sizeof(float));
    rng_fill_uniform(h, n, 99, stream, -scale, scale);
    float *d = g->ops->alloc(g, n * sizeof(float));
    g->ops->copy_h2d(g, d, h, n * sizeof(float));
    free(h);
    return d;
}

static void layer_init(KernelCtx *g, Layer *L, int N, int E, int K, int C, int F) {
    const size_t NK = (size_t)N * K;
    memset(L, 0, sizeof(*L));
    L->N = N, L->E = E, L->K = K, L->C = C, L->F = F;
    L->logits = dev_rand(g, (size_t)N * E, 1, 2.0f), L->x = dev_rand(g, (size_t)N * C, 2, 1.0f);
    L->wgu = dev_rand(g, (size_t)E * 2 * F * C, 3, 1.0f / sqrtf((float)C));
    L->wd = dev_rand(g, (size_t)E * C * F, 4, 1.0f / sqrtf((float)F)), L->dy = dev_rand(g, (size_t)N * C, 5, 1.0f);
    float **f[] = {&L->probs, &L->tw, &L->xp, &L->h13, &L->hact, &L->yp, &L->y, &L->dyp, &L->dtw,
                   &L->dhact, &L->dh13, &L->dxp, &L->dx, &L->dl, &L->dwgu, &L->dwd};
    const size_t n[] = {(size_t)N * E, NK, NK * C, NK * 2 * F, NK * F, NK * C, (size_t)N * C, NK * C, NK,
                        NK * F, NK * 2 * F, NK * C, (size_t)N * C, (size_t)N * E, (size_t)E * 2 * F * C,
                        (size_t)E * C * F};
    for (size_t i = 0; i < sizeof(n) / sizeof(n[0]); i++) *f[i] = g->ops->alloc(g, n[i] * sizeof(float));
    L->idx = g->ops->alloc(g, NK * sizeof(int)), L->sorted = g->ops->alloc(g, NK * sizeof(int));
    L->pos = g->ops->alloc(g, NK * sizeof(int));
}

static void layer_free(KernelCtx *g, Layer *L) {
    void *p[] = {L->logits, L->x, L->wgu, L->wd, L->dy, L->probs, L->tw, L->xp, L->h13, L->hact, L->yp, L->y,
                 L->dyp, L->dtw, L->dhact, L->dh13, L->dxp, L->dx, L->dl, L->dwgu, L->dwd, L->idx, L->sorted, L->pos};
    for (size_t i = 0; i < sizeof(p) / sizeof(p[0]); i++) g->ops->free(g, p[i]);
}

static void gemm_fwd(KernelCtx *g, Layer *L) {
    const int NK = L->N * L->K;
    g->ops->moe_expert_gemm(g, L->h13, L->xp, L->wgu, L->offsets, L->E, 2 * L->F, L->C, 1, 0.0f);
    g->ops->swiglu_forward(g, L->hact, L->h13, NK, L->F);
    g->ops->moe_expert_gemm(g, L->yp, L->hact, L->wd, L->offsets, L->E, L->C, L->F, 1, 0.0f);
}

static void gemm_bwd(KernelCtx *g, Layer *L) {
    const int E = L->E, C = L->C, F = L->F;
    g->ops->moe_expert_gemm(g, L->dhact, L->dyp, L->wd, L->offsets, E, F, C, 0, 1.0f);
    g->ops->moe_expert_gemm_dw(g, L->dwd, L->dyp, L->hact, L->offsets, E, C, F);
    g->ops->moe_expert_gemm(g, L->dxp, L->dh13, L->wgu, L->offsets, E, C, 2 * F, 0, 1.0f);
    g->ops->moe_expert_gemm_dw(g, L->dwgu, L->dh13, L->xp, L->offsets, E, 2 * F, C);
}

static void run(KernelCtx *g, Layer *L, RunKind kind) {
    const KernelOps *o = g->ops;
    const int N = L->N, E = L->E, K = L->K, C = L->C, F = L->F, NK = N * K;
    switch (kind) {
    case RUN_FWD:
        o->moe_route_forward(g, L->probs, L->idx, L->tw, L->logits, N, E, K);
        o->moe_sort(g, L->sorted, L->pos, L->offsets, L->idx, N, K, E);
        o->moe_permute_forward(g, L->xp, L->x, L->sorted, NK, K, C);
        gemm_fwd(g, L);
        o->zero(g, L->y, (size_t)N * C * sizeof(float));
        o->moe_combine_forward(g, L->y, L->yp, L->tw, L->sorted, L->pos, NK, K, C);
        break;
    case RUN_BWD:
        o->zero(g, L->dyp, (size_t)NK * C * sizeof(float));
        o->zero(g, L->dtw, (size_t)NK * sizeof(float));
        o->moe_combine_backward(g, L->dyp, L->dtw, L->dy, L->yp, L->tw, L->sorted, NK, K, C);
        o->zero(g, L->dhact, (size_t)NK * F * sizeof(float));
        o->moe_expert_gemm(g, L->dhact, L->dyp, L->wd, L->offsets, E, F, C, 0, 1.0f);
        o->moe_expert_gemm_dw(g, L->dwd, L->dyp, L->hact, L->offsets, E, C, F);
        o->zero(g, L->dh13, (size_t)NK * 2 * F * sizeof(float));
        o->swiglu_backward(g, L->dh13, L->dhact, L->h13, NK, F);
        o->zero(g, L->dxp, (size_t)NK * C * sizeof(float));
        o->moe_expert_gemm(g, L->dxp, L->dh13, L->wgu, L->offsets, E, C, 2 * F, 0, 1.0f);
        o->moe_expert_gemm_dw(g, L->dwgu, L->dh13, L->xp, L->offsets, E, 2 * F, C);
        o->zero(g, L->dx, (size_t)N * C * sizeof(float));
        o->moe_permute_backward(g, L->dx, L->dxp, L->sorted, L->pos, NK, K, C);
        o->zero(g, L->dl, (size_t)N * E * sizeof(float));
        o->moe_route_backward(g, L->dl, L->dtw, NULL, L->probs, L->idx, L->tw, N, E, K);
        break;
    case RUN_GEMM_FWD: gemm_fwd(g, L); break;
    case RUN_GEMM_BWD: gemm_bwd(g, L); break;
    case RUN_DENSE_FWD: /* expert 0's weights for every row: the same FLOPs, one GEMM per projection */
        o->gemm(g, 0, 1, NK, 2 * F, C, 1.0f, L->xp, C, L->wgu, C, 0.0f, L->h13, 2 * F);
        o->swiglu_forward(g, L->hact, L->h13, NK, F);
        o->gemm(g, 0, 1, NK, C, F, 1.0f, L->hact, F, L->wd, F, 0.0f, L->yp, C);
        break;
    case RUN_SORT: o->moe_sort(g, L->sorted, L->pos, L->offsets, L->idx, N, K, E); break;
    }
}

/* Median ms of `iters` runs after `warmup`. */
static double time_ms(Bench *b, Layer *L, RunKind kind) {
    cudaEvent_t e0, e1;
    CU(cudaEventCreate(&e0));
    CU(cudaEventCreate(&e1));
    double t[256];
    int n = 0;
    for (int it = -b->warmup; it < b->iters && n < 256; it++) {
        CU(cudaEventRecord(e0, 0));
        run(&b->g, L, kind);
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

static void add_row(Bench *b, const char *name, const char *shape, double ms, double flops) {
    CHECK(b->n < MAX_ROWS, "bench: too many rows");
    Row *r = &b->rows[b->n++];
    snprintf(r->name, sizeof r->name, "%s", name);
    snprintf(r->shape, sizeof r->shape, "%s", shape);
    r->ms = ms;
    r->tflops = flops > 0 ? flops / (ms * 1e-3) / 1e12 : -1.0;
    if (flops > 0) printf("%-10s %-40s %10.3f ms %9.2f TFLOP/s\n", name, shape, ms, r->tflops);
    else printf("%-10s %-40s %10.3f ms\n", name, shape, ms);
    fflush(stdout);
}

/* The rows of one layer shape at one precision (the layer's buffers are shared by both). */
static void bench_prec(Bench *b, Layer *L, int bf16) {
    b->g.gemm_bf16 = bf16;
    char shape[64];
    snprintf(shape, sizeof shape, "N=%d E=%d K=%d C=%d F=%d %s", L->N, L->E, L->K, L->C, L->F, bf16 ? "bf16" : "fp32");
    const double fl = 6.0 * L->N * L->K * (double)L->C * L->F;
    add_row(b, "layer fwd", shape, time_ms(b, L, RUN_FWD), -1);
    add_row(b, "layer bwd", shape, time_ms(b, L, RUN_BWD), -1);
    add_row(b, "gemm fwd", shape, time_ms(b, L, RUN_GEMM_FWD), fl);
    add_row(b, "gemm bwd", shape, time_ms(b, L, RUN_GEMM_BWD), 2.0 * fl);
    add_row(b, "dense fwd", shape, time_ms(b, L, RUN_DENSE_FWD), fl);
    add_row(b, "sort", shape, time_ms(b, L, RUN_SORT), -1);
    b->g.gemm_bf16 = 0;
}

static void bench_shape(Bench *b, int E) {
    Layer L;
    layer_init(&b->g, &L, b->tokens, E, 2, 1024, 1024);
    for (int bf16 = 0; bf16 < 2; bf16++) bench_prec(b, &L, bf16);
    int mn = L.offsets[1] - L.offsets[0], mx = mn;
    for (int e = 1; e < E; e++) {
        int r = L.offsets[e + 1] - L.offsets[e];
        mn = r < mn ? r : mn, mx = r > mx ? r : mx;
    }
    printf("           rows per expert: min %d max %d\n", mn, mx);
    layer_free(&b->g, &L);
}

static void write_json(const Bench *b, const char *dev, int driver) {
    FILE *f = fopen(b->json, "w");
    CHECK(f != NULL, "bench: cannot write %s", b->json);
    const char *loop = getenv("CISPO_CUDA_MOE_LOOP");
    fprintf(f, "{\n  \"bench\": \"bench_cuda_moe\",\n  \"device\": \"%s\",\n  \"driver\": %d,\n", dev, driver);
    fprintf(f, "  \"commit\": \"%s\",\n  \"gemm_path\": \"%s\",\n  \"rows\": [\n", cispo_version(),
            loop && !strcmp(loop, "1") ? "loop (forced)" : "grouped unless refused (see log)");
    for (int i = 0; i < b->n; i++) {
        const Row *r = &b->rows[i];
        fprintf(f, "    {\"name\": \"%s\", \"shape\": \"%s\", \"ms\": %.4f, \"tflops\": %.3f}%s\n", r->name, r->shape,
                r->ms, r->tflops, i + 1 < b->n ? "," : "");
    }
    fprintf(f, "  ]\n}\n");
    fclose(f);
    printf("wrote %s\n", b->json);
}

int main(int argc, char **argv) {
    static Bench b;
    b.iters = 20, b.warmup = 3, b.tokens = 8192, b.json = NULL;
    for (int a = 1; a < argc; a++) {
        if (!strcmp(argv[a], "--json") && a + 1 < argc) b.json = argv[++a];
        else if (!strcmp(argv[a], "--iters") && a + 1 < argc) b.iters = atoi(argv[++a]);
        else if (!strcmp(argv[a], "--warmup") && a + 1 < argc) b.warmup = atoi(argv[++a]);
        else if (!strcmp(argv[a], "--tokens") && a + 1 < argc) b.tokens = atoi(argv[++a]);
        else {
            fprintf(stderr, "usage: %s [--json PATH] [--iters N] [--warmup N] [--tokens N]\n", argv[0]);
            return 2;
        }
    }
    CHECK(b.iters > 0 && b.iters <= 256 && b.warmup >= 0 && b.tokens > 0, "bench: bad --iters/--warmup/--tokens");
    const KernelOps *ops = kernels_cuda();
    if (ops == NULL) {
        printf("bench_cuda_moe: no CUDA device\n");
        return 0;
    }
    kernel_ctx_init(&b.g, ops, 0);
    struct cudaDeviceProp prop;
    int driver = 0;
    CU(cudaGetDeviceProperties(&prop, 0));
    CU(cudaDriverGetVersion(&driver));
    printf("bench_cuda_moe on %s (driver %d), commit %s\n", prop.name, driver, cispo_version());
    for (int E = 8; E <= 32; E *= 4) bench_shape(&b, E);
    if (b.json) write_json(&b, prop.name, driver);
    kernel_ctx_free(&b.g);
    return 0;
}
