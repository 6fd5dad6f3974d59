/* tests/kernels/test_cuda_moe.c: the CUDA MoE ops (kernels/cuda/moe.cu, moe_sort.cu, moe_gemm.cu)
 * against the CPU reference, op by op and as a whole MoE layer, and run-to-run determinism.
 * labels: gpu
 *
 * One routine runs a MoE layer forward and backward through any KernelOps table (inputs uploaded
 * with copy_h2d, outputs fetched with copy_d2h; on the CPU these are memcpy):
 *   route(logits) -> sort -> permute(x) -> expert GEMM (gate|up) -> SwiGLU -> expert GEMM (down)
 *   -> combine -> y; then combine, expert GEMM, SwiGLU, expert GEMM, permute and route backwards
 *   -> dx, dlogits, dW_gate_up, dW_down (and the intermediate tensors, compared one by one).
 * Router logits are inputs (not x W_r), drawn on a grid of 1/8 in [-2, 2], so many tokens have
 * exact ties among their experts and the two backends must pick the same experts (ties to the
 * lower index) and produce the same sort (sorted, pos, offsets compared exactly).
 * Cases: N = 5 (decode-sized: an expert without tokens), N = 1000 (E 8, odd widths C 67, F 45),
 * N = 8192 with E = 8 and E = 32, K = 2; one case with a skewed router (26 of 32 experts get no
 * token); one N = 8192 case in BF16 (ctx->gemm_bf16).
 * Tolerances (||gpu - cpu|| / ||cpu||, float64 norms): FP32 (CUDA cores, other summation order)
 * TOL_FP32 = 1e-5 for every tensor; BF16 expert GEMMs against the FP32 CPU TOL_BF16 = 3e-2 for
 * y, dx, the weight gradients and dlogits (inputs rounded to 8 mantissa bits). Routing tensors
 * (probs, topk_w) are compared at TOL_FP32 in both modes; topk_idx, sorted, pos, offsets exactly.
 * Determinism: the N = 8192, E = 32 layer runs twice on the GPU; every output must match bit for bit.
 * Output: one line per case ("K/K checks ok; worst rel err / tol ..."), a line per failed check
 * (every check with CISPO_TEST_VERBOSE=1).
 * The grouped/loop GEMM paths: CISPO_CUDA_MOE_LOOP=1 forces the per-expert loop (gpu_check runs both).
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

#define TOL_FP32 1e-5
#define TOL_BF16 3e-2

typedef struct {
    const char *name;
    int N, E, K, C, F;
    int skewed; /* router favours low experts; the last ones get nothing */
    int bf16;
} Case;

typedef struct {
    float *logits, *x, *wgu, *wd, *dy; /* (N,E) (N,C) (E,2F,C) (E,C,F) (N,C) */
} Inputs;

/* Every tensor the layer produces, in host memory. */
typedef struct {
    float *probs, *topk_w, *xp, *h13, *yp, *y;             /* forward */
    int *topk_idx, *sorted, *pos, *offsets;                /* routing */
    float *dyp, *dtopk_w, *dhact, *dxp, *dx, *dlogits;     /* backward */
    float *dwgu, *dwd;                                      /* weight gradients */
} Result;

static uint64_t g_stream = 1;

static float *h_rand(size_t n, float lo, float hi) {
    float *x = malloc(n * sizeof(float));
    rng_fill_uniform(x, n, 777, g_stream++, lo, hi);
    return x;
}

static Inputs make_inputs(const Case *c) {
    Inputs in;
    size_t ne = (size_t)c->N * c->E;
    in.logits = h_rand(ne, -2.0f, 2.0f);
    for (size_t i = 0; i < ne; i++) {
        float v = roundf(in.logits[i] * 8.0f) / 8.0f; /* grid of 1/8: exact ties */
        if (c->skewed) v -= 0.75f * (float)(i % c->E); /* later experts rarely or never chosen */
        in.logits[i] = v;
    }
    float sc = 1.0f / sqrtf((float)c->C), sf = 1.0f / sqrtf((float)c->F);
    in.x = h_rand((size_t)c->N * c->C, -1.0f, 1.0f);
    in.wgu = h_rand((size_t)c->E * 2 * c->F * c->C, -sc, sc);
    in.wd = h_rand((size_t)c->E * c->C * c->F, -sf, sf);
    in.dy = h_rand((size_t)c->N * c->C, -1.0f, 1.0f);
    return in;
}

static void *dev(KernelCtx *g, const void *h, size_t bytes) {
    void *d = g->ops->alloc(g, bytes);
    if (h) g->ops->copy_h2d(g, d, h, bytes);
    return d;
}

static void *fetch(KernelCtx *g, const void *d, size_t bytes) {
    void *h = malloc(bytes);
    g->ops->copy_d2h(g, h, d, bytes);
    return h;
}

#define NF(n) ((size_t)(n) * sizeof(float))
#define NI(n) ((size_t)(n) * sizeof(int))

/* The MoE layer forward + backward on ctx's backend; every tensor fetched into a Result. */
static Result run_layer(KernelCtx *g, const Case *c, const Inputs *in) {
    const KernelOps *o = g->ops;
    const int N = c->N, E = c->E, K = c->K, C = c->C, F = c->F, NK = N * K;
    g->gemm_bf16 = c->bf16 && strcmp(o->name, "cuda") == 0; /* the CPU stays the FP32 reference */
    float *logits = dev(g, in->logits, NF(N * E)), *x = dev(g, in->x, NF(N * C)), *dy = dev(g, in->dy, NF(N * C));
    float *wgu = dev(g, in->wgu, NF(E * 2 * F * C)), *wd = dev(g, in->wd, NF(E * C * F));
    float *probs = dev(g, NULL, NF(N * E)), *tw = dev(g, NULL, NF(NK)), *xp = dev(g, NULL, NF(NK * C));
    float *h13 = dev(g, NULL, NF(NK * 2 * F)), *hact = dev(g, NULL, NF(NK * F)), *yp = dev(g, NULL, NF(NK * C));
    float *y = dev(g, NULL, NF(N * C));
    int *idx = dev(g, NULL, NI(NK)), *sorted = dev(g, NULL, NI(NK)), *pos = dev(g, NULL, NI(NK));
    Result r;
    r.offsets = malloc(NI(E + 1));
    o->moe_route_forward(g, probs, idx, tw, logits, N, E, K);
    o->moe_sort(g, sorted, pos, r.offsets, idx, N, K, E);
    o->moe_permute_forward(g, xp, x, sorted, NK, K, C);
    o->moe_expert_gemm(g, h13, xp, wgu, r.offsets, E, 2 * F, C, 1, 0.0f);
    o->swiglu_forward(g, hact, h13, NK, F);
    o->moe_expert_gemm(g, yp, hact, wd, r.offsets, E, C, F, 1, 0.0f);
    o->moe_combine_forward(g, y, yp, tw, sorted, pos, NK, K, C);
    /* backward (buffers zero from alloc: the ops accumulate) */
    float *dyp = dev(g, NULL, NF(NK * C)), *dtw = dev(g, NULL, NF(NK)), *dhact = dev(g, NULL, NF(NK * F));
    float *dh13 = dev(g, NULL, NF(NK * 2 * F)), *dxp = dev(g, NULL, NF(NK * C)), *dx = dev(g, NULL, NF(N * C));
    float *dl = dev(g, NULL, NF(N * E)), *dwgu = dev(g, NULL, NF(E * 2 * F * C)), *dwd = dev(g, NULL, NF(E * C * F));
    o->moe_combine_backward(g, dyp, dtw, dy, yp, tw, sorted, NK, K, C);
    o->moe_expert_gemm(g, dhact, dyp, wd, r.offsets, E, F, C, 0, 1.0f);
    o->moe_expert_gemm_dw(g, dwd, dyp, hact, r.offsets, E, C, F);
    o->swiglu_backward(g, dh13, dhact, h13, NK, F);
    o->moe_expert_gemm(g, dxp, dh13, wgu, r.offsets, E, C, 2 * F, 0, 1.0f);
    o->moe_expert_gemm_dw(g, dwgu, dh13, xp, r.offsets, E, 2 * F, C);
    o->moe_permute_backward(g, dx, dxp, sorted, pos, NK, K, C);
    o->moe_route_backward(g, dl, dtw, NULL, probs, idx, tw, N, E, K);
    o->sync(g);
    r.probs = fetch(g, probs, NF(N * E)), r.topk_w = fetch(g, tw, NF(NK)), r.xp = fetch(g, xp, NF(NK * C));
    r.h13 = fetch(g, h13, NF(NK * 2 * F)), r.yp = fetch(g, yp, NF(NK * C)), r.y = fetch(g, y, NF(N * C));
    r.topk_idx = fetch(g, idx, NI(NK)), r.sorted = fetch(g, sorted, NI(NK)), r.pos = fetch(g, pos, NI(NK));
    r.dyp = fetch(g, dyp, NF(NK * C)), r.dtopk_w = fetch(g, dtw, NF(NK)), r.dhact = fetch(g, dhact, NF(NK * F));
    r.dxp = fetch(g, dxp, NF(NK * C)), r.dx = fetch(g, dx, NF(N * C)), r.dlogits = fetch(g, dl, NF(N * E));
    r.dwgu = fetch(g, dwgu, NF(E * 2 * F * C)), r.dwd = fetch(g, dwd, NF(E * C * F));
    void *bufs[] = {logits, x, dy, wgu, wd, probs, tw, xp, h13, hact, yp, y, idx, sorted, pos,
                    dyp, dtw, dhact, dh13, dxp, dx, dl, dwgu, dwd};
    for (size_t i = 0; i < sizeof(bufs) / sizeof(bufs[0]); i++) o->free(g, bufs[i]);
    g->gemm_bf16 = 0;
    return r;
}

static void free_result(Result *r) {
    void *p[] = {r->probs, r->topk_w, r->xp, r->h13, r->yp, r->y, r->topk_idx, r->sorted, r->pos, r->offsets,
                 r->dyp, r->dtopk_w, r->dhact, r->dxp, r->dx, r->dlogits, r->dwgu, r->dwd};
    for (size_t i = 0; i < sizeof(p) / sizeof(p[0]); i++) free(p[i]);
}

static double rel_err(const float *a, const float *ref, size_t n) {
    double num = 0.0, den = 0.0;
    for (size_t i = 0; i < n; i++) {
        double d = (double)a[i] - ref[i];
        if (!isfinite(a[i])) return INFINITY;
        num += d * d;
        den += (double)ref[i] * ref[i];
    }
    return den > 0.0 ? sqrt(num / den) : sqrt(num);
}

/* Per-case tally: every check prints only when it fails (or with CISPO_TEST_VERBOSE=1); each case
 * ends with one summary line (checks passed, the worst relative error against its tolerance). */
static struct {
    int n, bad;
    double worst; /* largest err / tol among the float checks */
    char worst_what[32];
} g_tally;

static int verbose(void) {
    const char *v = getenv("CISPO_TEST_VERBOSE");
    return v != NULL && strcmp(v, "1") == 0;
}

static void tally_start(void) { memset(&g_tally, 0, sizeof(g_tally)); }

static int tally_end(const Case *c) {
    printf("  %-40s %d/%d checks ok; worst rel err / tol %.2g (%s)\n", c->name, g_tally.n - g_tally.bad, g_tally.n,
           g_tally.worst, g_tally.worst_what[0] ? g_tally.worst_what : "-");
    return g_tally.bad == 0;
}

static int report(const Case *c, const char *what, double err, double tol) {
    int ok = err <= tol;
    g_tally.n++, g_tally.bad += !ok;
    double r = tol > 0 ? err / tol : (err > 0 ? INFINITY : 0.0);
    if (r > g_tally.worst || !g_tally.worst_what[0]) {
        g_tally.worst = r;
        snprintf(g_tally.worst_what, sizeof g_tally.worst_what, "%s", what);
    }
    if (!ok || verbose())
        printf("  %-40s %-22s rel err %.3e (tol %.0e) %s\n", c->name, what, err, tol, ok ? "ok" : "FAIL");
    return ok;
}

static int same_ints(const Case *c, const char *what, const int *a, const int *b, size_t n) {
    size_t bad = 0;
    for (size_t i = 0; i < n; i++) bad += a[i] != b[i];
    g_tally.n++, g_tally.bad += bad != 0;
    if (bad || verbose()) printf("  %-40s %-22s %zu mismatches %s\n", c->name, what, bad, bad ? "FAIL" : "ok");
    return bad == 0;
}

/* GPU result against the CPU's. */
static int compare(const Case *c, const Result *g, const Result *r) {
    const size_t N = c->N, E = c->E, NK = N * c->K, C = c->C, F = c->F;
    const double tb = c->bf16 ? TOL_BF16 : TOL_FP32;
    int ok = 1;
    ok &= report(c, "probs", rel_err(g->probs, r->probs, N * E), TOL_FP32);
    ok &= report(c, "topk_w", rel_err(g->topk_w, r->topk_w, NK), TOL_FP32);
    ok &= same_ints(c, "topk_idx", g->topk_idx, r->topk_idx, NK);
    ok &= same_ints(c, "offsets", g->offsets, r->offsets, E + 1);
    ok &= same_ints(c, "sorted", g->sorted, r->sorted, NK);
    ok &= same_ints(c, "pos", g->pos, r->pos, NK);
    if (!ok) return 0; /* later tensors are meaningless with another routing */
    ok &= report(c, "permute xp", rel_err(g->xp, r->xp, NK * C), 0.0);
    ok &= report(c, "expert gemm h13", rel_err(g->h13, r->h13, NK * 2 * F), tb);
    ok &= report(c, "expert gemm yp", rel_err(g->yp, r->yp, NK * C), tb);
    ok &= report(c, "combine y", rel_err(g->y, r->y, N * C), tb);
    ok &= report(c, "combine_bwd dyp", rel_err(g->dyp, r->dyp, NK * C), TOL_FP32);
    ok &= report(c, "combine_bwd dtopk_w", rel_err(g->dtopk_w, r->dtopk_w, NK), tb);
    ok &= report(c, "expert gemm dhact", rel_err(g->dhact, r->dhact, NK * F), tb);
    ok &= report(c, "expert gemm dxp", rel_err(g->dxp, r->dxp, NK * C), tb);
    ok &= report(c, "permute_bwd dx", rel_err(g->dx, r->dx, N * C), tb);
    ok &= report(c, "route_bwd dlogits", rel_err(g->dlogits, r->dlogits, N * E), tb);
    ok &= report(c, "expert gemm_dw dW_gu", rel_err(g->dwgu, r->dwgu, E * 2 * F * C), tb);
    ok &= report(c, "expert gemm_dw dW_down", rel_err(g->dwd, r->dwd, E * C * F), tb);
    return ok;
}

/* Bit-identical results of two GPU runs. */
static int identical(const Case *c, const Result *a, const Result *b) {
    const size_t N = c->N, E = c->E, NK = N * c->K, C = c->C, F = c->F;
    struct {
        const void *x, *y;
        size_t bytes;
    } t[] = {{a->probs, b->probs, NF(N * E)}, {a->topk_w, b->topk_w, NF(NK)}, {a->h13, b->h13, NF(NK * 2 * F)},
             {a->yp, b->yp, NF(NK * C)},       {a->y, b->y, NF(N * C)},         {a->sorted, b->sorted, NI(NK)},
             {a->pos, b->pos, NI(NK)},         {a->dyp, b->dyp, NF(NK * C)},   {a->dtopk_w, b->dtopk_w, NF(NK)},
             {a->dxp, b->dxp, NF(NK * C)},     {a->dx, b->dx, NF(N * C)},       {a->dlogits, b->dlogits, NF(N * E)},
             {a->dwgu, b->dwgu, NF(E * 2 * F * C)}, {a->dwd, b->dwd, NF(E * C * F)}};
    int bad = 0;
    for (size_t i = 0; i < sizeof(t) / sizeof(t[0]); i++) bad += memcmp(t[i].x, t[i].y, t[i].bytes) != 0;
    printf("  %-40s run-to-run: %d of %zu tensors differ %s\n", c->name, bad, sizeof(t) / sizeof(t[0]),
           bad ? "FAIL" : "(bit-identical) ok");
    return bad == 0;
}

static const Case CASES[] = {
    {"N=5 E=8 K=2 (decode-sized)", 5, 8, 2, 64, 32, 0, 0},
    {"N=1000 E=8 K=2 C=67 F=45", 1000, 8, 2, 67, 45, 0, 0},
    {"N=8192 E=8 K=2 C=256 F=192", 8192, 8, 2, 256, 192, 0, 0},
    {"N=8192 E=32 K=2 C=256 F=128", 8192, 32, 2, 256, 128, 0, 0},
    {"N=3000 E=32 K=2 skewed (empty experts)", 3000, 32, 2, 64, 96, 1, 0},
    {"N=8192 E=8 K=2 C=256 F=192 BF16", 8192, 8, 2, 256, 192, 0, 1},
};

static void test_layers(void **state) {
    KernelCtx cpu, gpu;
    kernel_ctx_init(&cpu, kernels_cpu(), 0);
    kernel_ctx_init(&gpu, kernels_cuda(), 0);
    int ok = 1;
    for (size_t i = 0; i < sizeof(CASES) / sizeof(CASES[0]); i++) {
        const Case *c = &CASES[i];
        Inputs in = make_inputs(c);
        Result r = run_layer(&cpu, c, &in), g = run_layer(&gpu, c, &in);
        int empty = 0;
        for (int e = 0; e < c->E; e++) empty += r.offsets[e + 1] == r.offsets[e];
        printf("  %-40s experts with no token: %d\n", c->name, empty);
        tally_start();
        compare(c, &g, &r);
        ok &= tally_end(c);
        if (c->E == 32 && !c->skewed) {
            Result g2 = run_layer(&gpu, c, &in);
            ok &= identical(c, &g, &g2);
            free_result(&g2);
        }
        free_result(&r), free_result(&g);
        free(in.logits), free(in.x), free(in.wgu), free(in.wd), free(in.dy);
    }
    kernel_ctx_free(&gpu);
    kernel_ctx_free(&cpu);
    assert_true(ok);
}

/* Route backward with a gradient on probs too (the aux loss path), and an E that is not a multiple of 32. */
static void test_route_dprobs(void **state) {
    KernelCtx cpu, gpu;
    kernel_ctx_init(&cpu, kernels_cpu(), 0);
    kernel_ctx_init(&gpu, kernels_cuda(), 0);
    const Case c = {"route E=40 K=4 with dprobs", 2048, 40, 4, 1, 1, 0, 0};
    const int N = c.N, E = c.E, K = c.K, NK = N * K;
    Inputs in = make_inputs(&c);
    float *dp = h_rand((size_t)N * E, -1, 1), *dw = h_rand((size_t)NK, -1, 1), *dl0 = h_rand((size_t)N * E, -1, 1);
    float *probs = malloc(NF(N * E)), *tw = malloc(NF(NK)), *dl = malloc(NF(N * E));
    int *idx = malloc(NI(NK));
    memcpy(dl, dl0, NF(N * E));
    cpu.ops->moe_route_forward(&cpu, probs, idx, tw, in.logits, N, E, K);
    cpu.ops->moe_route_backward(&cpu, dl, dw, dp, probs, idx, tw, N, E, K);
    float *g_logits = dev(&gpu, in.logits, NF(N * E)), *g_probs = dev(&gpu, NULL, NF(N * E));
    float *g_tw = dev(&gpu, NULL, NF(NK)), *g_dw = dev(&gpu, dw, NF(NK)), *g_dp = dev(&gpu, dp, NF(N * E));
    float *g_dl = dev(&gpu, dl0, NF(N * E));
    int *g_idx = dev(&gpu, NULL, NI(NK));
    gpu.ops->moe_route_forward(&gpu, g_probs, g_idx, g_tw, g_logits, N, E, K);
    gpu.ops->moe_route_backward(&gpu, g_dl, g_dw, g_dp, g_probs, g_idx, g_tw, N, E, K);
    float *h_probs = fetch(&gpu, g_probs, NF(N * E)), *h_tw = fetch(&gpu, g_tw, NF(NK));
    float *h_dl = fetch(&gpu, g_dl, NF(N * E));
    int *h_idx = fetch(&gpu, g_idx, NI(NK));
    tally_start();
    report(&c, "probs", rel_err(h_probs, probs, (size_t)N * E), TOL_FP32);
    same_ints(&c, "topk_idx", h_idx, idx, (size_t)NK);
    report(&c, "topk_w", rel_err(h_tw, tw, (size_t)NK), TOL_FP32);
    report(&c, "dlogits (accumulated)", rel_err(h_dl, dl, (size_t)N * E), TOL_FP32);
    int ok = tally_end(&c);
    void *gb[] = {g_logits, g_probs, g_tw, g_dw, g_dp, g_dl, g_idx};
    for (size_t i = 0; i < sizeof(gb) / sizeof(gb[0]); i++) gpu.ops->free(&gpu, gb[i]);
    void *hb[] = {dp, dw, dl0, probs, tw, dl, idx, h_probs, h_tw, h_dl, h_idx, in.logits, in.x, in.wgu, in.wd, in.dy};
    for (size_t i = 0; i < sizeof(hb) / sizeof(hb[0]); i++) free(hb[i]);
    kernel_ctx_free(&gpu);
    kernel_ctx_free(&cpu);
    assert_true(ok);
}

int main(void) {
    int skip = gpu_skip_status("test_cuda_moe");
    if (skip >= 0) return skip;
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_route_dprobs),
        cmocka_unit_test(test_layers),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
