/* kernels/cuda/moe.cu: mixture-of-experts routing and token shuffling, FP32, the semantics and
 * formulas of kernels/cpu/moe.c. The sort is in moe_sort.cu, the expert GEMMs in moe_gemm.cu.
 *
 * Route: one warp per token, lanes striding over the E experts. Softmax with the row maximum
 * subtracted and the sum in float64 (a warp reduction); top-k by K warp-wide arg-max rounds under
 * the CPU's order (larger prob first, ties to the lower expert index), so exact ties in the logits
 * pick the same experts as the CPU; weights = the picked probs over their float64 sum, summed in k
 * order as the CPU does. The backward chains the renormalisation and the softmax Jacobian per token
 * (float64 warp sum for sum_e p_e dprobs_e), no scratch.
 * Permute forward: one block per permuted row j, a row copy. Permute backward and combine forward
 * are gathers too, one block per token through pos (sort's inverse map; thread 0 orders the token's
 * K positions into shared memory): the token's K rows are added in increasing position j, the
 * order in which the CPU's scatter adds them, with the product w*yp rounded before the add
 * (__fmul_rn: no FMA contraction); so no float atomics, the same results run to run, and the CPU's
 * sums bit for bit where its compiler does not contract to FMA either (x86-64 without -mfma).
 * Combine backward: one block per permuted row j (each slot s has exactly one row, so dtopk_w[s] has
 * one writer): dyp[j] += w dy[token] and dtopk_w[s] += dot(yp[j], dy[token]) (float64 block sum).
 * Slot ids and positions from device memory are range-checked on the device (DEV_CHECK).
 */
#include <math.h>

#include "kernels/cuda/cuda_ops.h"

#define MOE_ROUTE_MAX_K 16 /* top-k of the router (choices in registers) and of the per-token gathers */
#define ROUTE_WARPS (CUDA_THREADS / 32)

static __device__ __forceinline__ double warp_sum_d(double v) {
    for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
    return v;
}

static __device__ __forceinline__ float warp_max_f(float v) {
    for (int o = 16; o > 0; o >>= 1) v = fmaxf(v, __shfl_xor_sync(0xffffffffu, v, o));
    return v;
}

/* (p, e) beats (bp, be): larger prob, or equal prob and lower index (the CPU's scan with '>') */
static __device__ __forceinline__ bool route_better(float p, int e, float bp, int be) {
    return p > bp || (p == bp && e < be);
}

/* probs(N,E), topk_idx(N,K), topk_w(N,K) from logits(N,E); one warp per token */
static __global__ void route_forward_kernel(float *probs, int *topk_idx, float *topk_w, const float *logits, int N,
                                            int E, int K) {
    const int n = blockIdx.x * ROUTE_WARPS + (threadIdx.x >> 5), lane = threadIdx.x & 31;
    if (n >= N) return; /* uniform per warp */
    const float *l = logits + (size_t)n * E;
    float *p = probs + (size_t)n * E;
    float mx = -INFINITY;
    for (int e = lane; e < E; e += 32) mx = fmaxf(mx, l[e]);
    mx = warp_max_f(mx);
    double sum = 0.0;
    for (int e = lane; e < E; e += 32) {
        float v = expf(l[e] - mx);
        p[e] = v; /* re-read below by this lane only */
        sum += v;
    }
    float inv = (float)(1.0 / warp_sum_d(sum));
    for (int e = lane; e < E; e += 32) p[e] *= inv;
    int chosen[MOE_ROUTE_MAX_K];
    float pk[MOE_ROUTE_MAX_K];
    double sel = 0.0;
    for (int k = 0; k < K; k++) {
        float bp = -INFINITY;
        int be = 0x7fffffff;
        for (int e = lane; e < E; e += 32) {
            bool taken = false;
            for (int j = 0; j < k; j++) taken = taken || chosen[j] == e;
            if (!taken && route_better(p[e], e, bp, be)) bp = p[e], be = e;
        }
        for (int o = 16; o > 0; o >>= 1) {
            float op = __shfl_xor_sync(0xffffffffu, bp, o);
            int oe = __shfl_xor_sync(0xffffffffu, be, o);
            if (route_better(op, oe, bp, be)) bp = op, be = oe;
        }
        chosen[k] = be; /* the same (bp, be) on every lane: a total order */
        pk[k] = bp;
        sel += bp;
    }
    if (lane < K) {
        int k = lane, e = 0;
        float v = 0.0f;
        for (int j = 0; j < K; j++) /* register arrays indexed by the loop counter */
            if (j == k) e = chosen[j], v = pk[j];
        topk_idx[(size_t)n * K + k] = e;
        topk_w[(size_t)n * K + k] = (float)(v / sel);
    }
}

/* dlogits(N,E) += J^T (dprobs or 0 + d topk_w); one warp per token */
static __global__ void route_backward_kernel(float *dlogits, const float *dtopk_w, const float *dprobs,
                                             const float *probs, const int *topk_idx, const float *topk_w, int N,
                                             int E, int K) {
    const int n = blockIdx.x * ROUTE_WARPS + (threadIdx.x >> 5), lane = threadIdx.x & 31;
    if (n >= N) return; /* uniform per warp */
    const float *p = probs + (size_t)n * E;
    const int *idx = topk_idx + (size_t)n * K;
    const float *w = topk_w + (size_t)n * K;
    const float *dw = dtopk_w + (size_t)n * K;
    const float *dp = dprobs ? dprobs + (size_t)n * E : NULL;
    double S = 0.0, wdw = 0.0;
    for (int k = 0; k < K; k++) {
        DEV_CHECK(idx[k] >= 0 && idx[k] < E, "topk_idx[%d]=%d outside [0, %d)", n * K + k, idx[k], E);
        S += p[idx[k]];
        wdw += (double)w[k] * dw[k];
    }
    double pg = 0.0; /* sum_f p_f g_f */
    if (dp) {
        for (int e = lane; e < E; e += 32) pg += (double)p[e] * dp[e];
        pg = warp_sum_d(pg);
    }
    for (int k = 0; k < K; k++) pg += (double)p[idx[k]] * ((dw[k] - wdw) / S);
    float *dl = dlogits + (size_t)n * E;
    for (int e = lane; e < E; e += 32) {
        double g = dp ? dp[e] : 0.0;
        for (int k = 0; k < K; k++)
            if (idx[k] == e) g += (dw[k] - wdw) / S;
        dl[e] += (float)(p[e] * (g - pg));
    }
}

/* grid (NK): xp(NK,C)[j] = x(N,C)[sorted[j]/K] */
static __global__ void permute_forward_kernel(float *xp, const float *x, const int *sorted, int NK, int K, int C) {
    const int j = blockIdx.x;
    const int s = sorted[j];
    DEV_CHECK(s >= 0 && s < NK, "sorted[%d]=%d outside [0, %d)", j, s, NK);
    const float *src = x + (size_t)(s / K) * C;
    float *dst = xp + (size_t)j * C;
    for (int c = threadIdx.x; c < C; c += blockDim.x) dst[c] = src[c];
}

/* Token n's K rows in increasing position: q[t] the t-th position, k[t] its slot. Thread 0 fills
 * the block's shared copy from pos(NK); positions are distinct (sort's inverse map). */
static __device__ void token_rows(int *q, int *k, const int *pos, int n, int K, int NK) {
    __syncthreads(); /* a previous use of q, k is over */
    if (threadIdx.x == 0) {
        const int *pn = pos + (size_t)n * K;
        int prev = -1;
        for (int t = 0; t < K; t++) {
            int best = 0x7fffffff, bk = 0;
            for (int i = 0; i < K; i++)
                if (pn[i] > prev && pn[i] < best) best = pn[i], bk = i;
            DEV_CHECK(best >= 0 && best < NK, "pos of token %d: %d outside [0, %d)", n, best, NK);
            q[t] = best, k[t] = bk, prev = best;
        }
    }
    __syncthreads();
}

/* grid (N): dx(N,C)[n] += dxp(NK,C)[pos[n*K + k]] over k, in increasing position */
static __global__ void permute_backward_kernel(float *dx, const float *dxp, const int *pos, int N, int K, int C) {
    __shared__ int q[MOE_ROUTE_MAX_K], ks[MOE_ROUTE_MAX_K];
    const int n = blockIdx.x;
    token_rows(q, ks, pos, n, K, N * K);
    float *d = dx + (size_t)n * C;
    for (int c = threadIdx.x; c < C; c += blockDim.x) {
        float acc = d[c];
        for (int t = 0; t < K; t++) acc += dxp[(size_t)q[t] * C + c];
        d[c] = acc;
    }
}

/* grid (N): y(N,C)[n] += topk_w[n*K + k] * yp(NK,C)[pos[n*K + k]] over k, in increasing position */
static __global__ void combine_forward_kernel(float *y, const float *yp, const float *topk_w, const int *pos, int N,
                                              int K, int C) {
    __shared__ int q[MOE_ROUTE_MAX_K], ks[MOE_ROUTE_MAX_K];
    const int n = blockIdx.x;
    token_rows(q, ks, pos, n, K, N * K);
    const float *w = topk_w + (size_t)n * K;
    float *out = y + (size_t)n * C;
    for (int c = threadIdx.x; c < C; c += blockDim.x) {
        float acc = out[c];
        for (int t = 0; t < K; t++) acc += __fmul_rn(w[ks[t]], yp[(size_t)q[t] * C + c]);
        out[c] = acc;
    }
}

/* grid (NK): dyp[j] += topk_w[s] dy[s/K]; dtopk_w[s] += dot(yp[j], dy[s/K]) (slot s has one row j) */
static __global__ void combine_backward_kernel(float *dyp, float *dtopk_w, const float *dy, const float *yp,
                                               const float *topk_w, const int *sorted, int NK, int K, int C) {
    __shared__ double sh[32];
    const int j = blockIdx.x;
    const int s = sorted[j];
    DEV_CHECK(s >= 0 && s < NK, "sorted[%d]=%d outside [0, %d)", j, s, NK);
    const float *g = dy + (size_t)(s / K) * C, *src = yp + (size_t)j * C;
    float *d = dyp + (size_t)j * C;
    const float w = topk_w[s];
    double dot = 0.0;
    for (int c = threadIdx.x; c < C; c += blockDim.x) {
        d[c] += w * g[c];
        dot += (double)src[c] * g[c];
    }
    dot = block_sum(dot, sh);
    if (threadIdx.x == 0) dtopk_w[s] += (float)dot;
}

static void route_check(int N, int E, int K) {
    CHECK(N > 0 && E > 0 && K > 0 && K <= E, "moe_route sizes N=%d E=%d K=%d (need 0 < K <= E)", N, E, K);
    CHECK(K <= MOE_ROUTE_MAX_K, "moe_route: K=%d above the CUDA router's %d", K, MOE_ROUTE_MAX_K);
}

static unsigned route_blocks(int N) { return (unsigned)((N + ROUTE_WARPS - 1) / ROUTE_WARPS); }

void moe_route_forward_cuda(KernelCtx *ctx, float *probs, int *topk_idx, float *topk_w, const float *logits, int N,
                            int E, int K) {
    route_check(N, E, K);
    CHECK(probs != NULL && topk_idx != NULL && topk_w != NULL && logits != NULL, "moe_route with a NULL pointer");
    route_forward_kernel<<<route_blocks(N), CUDA_THREADS, 0, cuda_impl(ctx)->stream>>>(probs, topk_idx, topk_w, logits,
                                                                                      N, E, K);
    CUDA_LAUNCH_CHECK();
}

void moe_route_backward_cuda(KernelCtx *ctx, float *dlogits, const float *dtopk_w, const float *dprobs,
                             const float *probs, const int *topk_idx, const float *topk_w, int N, int E, int K) {
    route_check(N, E, K);
    CHECK(dlogits != NULL && dtopk_w != NULL && probs != NULL && topk_idx != NULL && topk_w != NULL,
          "moe_route_backward with a NULL pointer");
    route_backward_kernel<<<route_blocks(N), CUDA_THREADS, 0, cuda_impl(ctx)->stream>>>(dlogits, dtopk_w, dprobs, probs,
                                                                                       topk_idx, topk_w, N, E, K);
    CUDA_LAUNCH_CHECK();
}

static void shuffle_check(int NK, int K, int C, const char *op) {
    CHECK(NK > 0 && K > 0 && C > 0 && NK % K == 0, "%s sizes NK=%d K=%d C=%d (need positive, K dividing NK)", op, NK,
          K, C);
    CHECK(K <= MOE_ROUTE_MAX_K, "%s: K=%d above the CUDA kernels' %d", op, K, MOE_ROUTE_MAX_K);
}

/* Threads of a one-row-per-block shuffle kernel: C rounded up to a warp, at most CUDA_THREADS. */
static unsigned shuffle_threads(int C) {
    int t = (C + 31) / 32 * 32;
    return (unsigned)(t < CUDA_THREADS ? t : CUDA_THREADS);
}

void moe_permute_forward_cuda(KernelCtx *ctx, float *xp, const float *x, const int *sorted, int NK, int K, int C) {
    shuffle_check(NK, K, C, "moe_permute");
    CHECK(xp != NULL && x != NULL && sorted != NULL, "moe_permute_forward with a NULL pointer");
    permute_forward_kernel<<<NK, shuffle_threads(C), 0, cuda_impl(ctx)->stream>>>(xp, x, sorted, NK, K, C);
    CUDA_LAUNCH_CHECK();
}

void moe_permute_backward_cuda(KernelCtx *ctx, float *dx, const float *dxp, const int *sorted, const int *pos, int NK,
                               int K, int C) {
    shuffle_check(NK, K, C, "moe_permute");
    CHECK(dx != NULL && dxp != NULL && pos != NULL, "moe_permute_backward with a NULL pointer");
    (void)sorted;
    const int N = NK / K;
    permute_backward_kernel<<<N, shuffle_threads(C), 0, cuda_impl(ctx)->stream>>>(dx, dxp, pos, N, K, C);
    CUDA_LAUNCH_CHECK();
}

void moe_combine_forward_cuda(KernelCtx *ctx, float *y, const float *yp, const float *topk_w, const int *sorted,
                              const int *pos, int NK, int K, int C) {
    shuffle_check(NK, K, C, "moe_combine");
    CHECK(y != NULL && yp != NULL && topk_w != NULL && pos != NULL, "moe_combine_forward with a NULL pointer");
    (void)sorted;
    const int N = NK / K;
    combine_forward_kernel<<<N, shuffle_threads(C), 0, cuda_impl(ctx)->stream>>>(y, yp, topk_w, pos, N, K, C);
    CUDA_LAUNCH_CHECK();
}

void moe_combine_backward_cuda(KernelCtx *ctx, float *dyp, float *dtopk_w, const float *dy, const float *yp,
                               const float *topk_w, const int *sorted, int NK, int K, int C) {
    shuffle_check(NK, K, C, "moe_combine");
    CHECK(dyp != NULL && dtopk_w != NULL && dy != NULL && yp != NULL && topk_w != NULL && sorted != NULL,
          "moe_combine_backward with a NULL pointer");
    combine_backward_kernel<<<NK, CUDA_THREADS, 0, cuda_impl(ctx)->stream>>>(dyp, dtopk_w, dy, yp, topk_w, sorted, NK,
                                                                              K, C);
    CUDA_LAUNCH_CHECK();
}
