/* kernels/cuda/moe.cu: mixture-of-experts routing and token shuffling, FP32, the semantics and
 * formulas of kernels/cpu/moe.c.
 *
 * Route: one thread per token (E and K small): softmax with the row maximum subtracted and the sum
 * in float64; top-k by K scans with a strict '>' (ties go to the lower expert index); weights = the
 * picked probs over their float64 sum. The backward chains the renormalisation and the softmax
 * Jacobian per token, as the CPU does, with no scratch.
 * Sort: topk_idx is copied to pinned host staging and counting-sorted there (stable, slot order);
 * the outputs are host memory by contract, so the call synchronises.
 * Permute / combine: one thread per (row, column) element; where several slots add into one token
 * row (permute backward, combine forward) the adds are atomicAdd. Combine backward: one block per
 * permuted row j, dyp[j] += w dy[token] and dtopk_w[s] += dot(yp[j], dy[token]) (float64 block sum).
 * Slot ids and expert ids from device memory are range-checked on the device (DEV_CHECK).
 */
#include <string.h>

#include "kernels/cuda/cuda_ops.h"

/* probs(N,E), topk_idx(N,K), topk_w(N,K) from logits(N,E); one thread per token */
static __global__ void route_forward_kernel(float *probs, int *topk_idx, float *topk_w, const float *logits, int N,
                                            int E, int K) {
    int n = blockIdx.x * blockDim.x + threadIdx.x;
    if (n >= N) return;
    const float *l = logits + (size_t)n * E;
    float *p = probs + (size_t)n * E;
    int *idx = topk_idx + (size_t)n * K;
    float *w = topk_w + (size_t)n * K;
    float mx = l[0];
    for (int e = 1; e < E; e++) mx = l[e] > mx ? l[e] : mx;
    double sum = 0.0;
    for (int e = 0; e < E; e++) {
        p[e] = expf(l[e] - mx);
        sum += p[e];
    }
    float inv = (float)(1.0 / sum);
    for (int e = 0; e < E; e++) p[e] *= inv;
    double sel = 0.0;
    for (int k = 0; k < K; k++) {
        int best = -1;
        for (int e = 0; e < E; e++) {
            bool chosen = false;
            for (int j = 0; j < k; j++) chosen = chosen || idx[j] == e;
            if (!chosen && (best < 0 || p[e] > p[best])) best = e;
        }
        idx[k] = best;
        sel += p[best];
    }
    for (int k = 0; k < K; k++) w[k] = (float)(p[idx[k]] / sel);
}

/* dlogits(N,E) += J^T (dprobs or 0 + d topk_w); one thread per token */
static __global__ void route_backward_kernel(float *dlogits, const float *dtopk_w, const float *dprobs,
                                             const float *probs, const int *topk_idx, const float *topk_w, int N,
                                             int E, int K) {
    int n = blockIdx.x * blockDim.x + threadIdx.x;
    if (n >= N) return;
    const float *p = probs + (size_t)n * E;
    const int *idx = topk_idx + (size_t)n * K;
    const float *w = topk_w + (size_t)n * K;
    const float *dw = dtopk_w + (size_t)n * K;
    const float *dp = dprobs ? dprobs + (size_t)n * E : NULL;
    double S = 0.0, wdw = 0.0;
    for (int k = 0; k < K; k++) {
        S += p[idx[k]];
        wdw += (double)w[k] * dw[k];
    }
    double pg = 0.0; /* sum_f p_f g_f */
    if (dp)
        for (int e = 0; e < E; e++) pg += (double)p[e] * dp[e];
    for (int k = 0; k < K; k++) pg += (double)p[idx[k]] * ((dw[k] - wdw) / S);
    float *dl = dlogits + (size_t)n * E;
    for (int e = 0; e < E; e++) {
        double g = dp ? dp[e] : 0.0;
        for (int k = 0; k < K; k++)
            if (idx[k] == e) g += (dw[k] - wdw) / S;
        dl[e] += (float)(p[e] * (g - pg));
    }
}

/* xp(NK,C)[j] = x(N,C)[sorted[j]/K] */
static __global__ void permute_forward_kernel(float *xp, const float *x, const int *sorted, int NK, int K, int C) {
    GRID_STRIDE_LOOP(i, (size_t)NK * C) {
        size_t j = i / C, c = i % C;
        int s = sorted[j];
        DEV_CHECK(s >= 0 && s < NK, "sorted[%d]=%d outside [0, %d)", (int)j, s, NK);
        xp[i] = x[(size_t)(s / K) * C + c];
    }
}

/* dx(N,C)[sorted[j]/K] += dxp(NK,C)[j] */
static __global__ void permute_backward_kernel(float *dx, const float *dxp, const int *sorted, int NK, int K, int C) {
    GRID_STRIDE_LOOP(i, (size_t)NK * C) {
        size_t j = i / C, c = i % C;
        int s = sorted[j];
        DEV_CHECK(s >= 0 && s < NK, "sorted[%d]=%d outside [0, %d)", (int)j, s, NK);
        atomicAdd(&dx[(size_t)(s / K) * C + c], dxp[i]);
    }
}

/* y(N,C)[s/K] += topk_w[s] * yp(NK,C)[j], s = sorted[j] */
static __global__ void combine_forward_kernel(float *y, const float *yp, const float *topk_w, const int *sorted,
                                              int NK, int K, int C) {
    GRID_STRIDE_LOOP(i, (size_t)NK * C) {
        size_t j = i / C, c = i % C;
        int s = sorted[j];
        DEV_CHECK(s >= 0 && s < NK, "sorted[%d]=%d outside [0, %d)", (int)j, s, NK);
        atomicAdd(&y[(size_t)(s / K) * C + c], topk_w[s] * yp[i]);
    }
}

/* grid (NK): dyp[j] += topk_w[s] dy[s/K]; dtopk_w[s] += dot(yp[j], dy[s/K]) */
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
    if (threadIdx.x == 0) atomicAdd(&dtopk_w[s], (float)dot);
}

static void route_check(int N, int E, int K) {
    CHECK(N > 0 && E > 0 && K > 0 && K <= E, "moe_route sizes N=%d E=%d K=%d (need 0 < K <= E)", N, E, K);
}

void moe_route_forward_cuda(KernelCtx *ctx, float *probs, int *topk_idx, float *topk_w, const float *logits, int N,
                            int E, int K) {
    route_check(N, E, K);
    CHECK(probs != NULL && topk_idx != NULL && topk_w != NULL && logits != NULL, "moe_route with a NULL pointer");
    unsigned blocks = (unsigned)((N + CUDA_THREADS - 1) / CUDA_THREADS);
    route_forward_kernel<<<blocks, CUDA_THREADS, 0, cuda_impl(ctx)->stream>>>(probs, topk_idx, topk_w, logits, N, E,
                                                                                K);
    CUDA_LAUNCH_CHECK();
}

void moe_route_backward_cuda(KernelCtx *ctx, float *dlogits, const float *dtopk_w, const float *dprobs,
                             const float *probs, const int *topk_idx, const float *topk_w, int N, int E, int K) {
    route_check(N, E, K);
    CHECK(dlogits != NULL && dtopk_w != NULL && probs != NULL && topk_idx != NULL && topk_w != NULL,
          "moe_route_backward with a NULL pointer");
    unsigned blocks = (unsigned)((N + CUDA_THREADS - 1) / CUDA_THREADS);
    route_backward_kernel<<<blocks, CUDA_THREADS, 0, cuda_impl(ctx)->stream>>>(dlogits, dtopk_w, dprobs, probs,
                                                                                 topk_idx, topk_w, N, E, K);
    CUDA_LAUNCH_CHECK();
}

/* sorted(N*K), offsets(E+1) in host memory from topk_idx(N,K) in device memory */
void moe_sort_cuda(KernelCtx *ctx, int *sorted, int *offsets, const int *topk_idx, int N, int K, int E) {
    CHECK(N > 0 && K > 0 && E > 0, "moe_sort sizes N=%d K=%d E=%d must be positive", N, K, E);
    CHECK(sorted != NULL && offsets != NULL && topk_idx != NULL, "moe_sort with a NULL pointer");
    const size_t NK = (size_t)N * K;
    CHECK(NK <= CUDA_MAX_SORT_SLOTS, "moe_sort: %zu slots above the CUDA staging capacity %d", NK,
          CUDA_MAX_SORT_SLOTS);
    CudaImpl *im = cuda_impl(ctx);
    int *idx = im->h_topk;
    CUDA_CHECK(cudaMemcpyAsync(idx, topk_idx, NK * sizeof(int), cudaMemcpyDeviceToHost, im->stream));
    CUDA_CHECK(cudaStreamSynchronize(im->stream));
    /* expert e's count at offsets[e+2]; after the prefix sum offsets[e+1] is e's write cursor */
    memset(offsets, 0, (size_t)(E + 1) * sizeof(int));
    for (size_t s = 0; s < NK; s++) {
        int e = idx[s];
        CHECK(e >= 0 && e < E, "topk_idx[%zu]=%d outside [0, %d)", s, e, E);
        if (e + 2 <= E) offsets[e + 2]++;
    }
    for (int e = 1; e <= E; e++) offsets[e] += offsets[e - 1];
    for (size_t s = 0; s < NK; s++) sorted[offsets[idx[s] + 1]++] = (int)s;
    CHECK((size_t)offsets[E] == NK, "moe_sort placed %d of %zu slots", offsets[E], NK);
}

static void shuffle_check(int NK, int K, int C, const char *op) {
    CHECK(NK > 0 && K > 0 && C > 0, "%s sizes NK=%d K=%d C=%d must be positive", op, NK, K, C);
}

void moe_permute_forward_cuda(KernelCtx *ctx, float *xp, const float *x, const int *sorted, int NK, int K, int C) {
    shuffle_check(NK, K, C, "moe_permute");
    CHECK(xp != NULL && x != NULL && sorted != NULL, "moe_permute_forward with a NULL pointer");
    LAUNCH_1D(ctx, permute_forward_kernel, (size_t)NK * C, xp, x, sorted, NK, K, C);
}

void moe_permute_backward_cuda(KernelCtx *ctx, float *dx, const float *dxp, const int *sorted, int NK, int K, int C) {
    shuffle_check(NK, K, C, "moe_permute");
    CHECK(dx != NULL && dxp != NULL && sorted != NULL, "moe_permute_backward with a NULL pointer");
    LAUNCH_1D(ctx, permute_backward_kernel, (size_t)NK * C, dx, dxp, sorted, NK, K, C);
}

void moe_combine_forward_cuda(KernelCtx *ctx, float *y, const float *yp, const float *topk_w, const int *sorted,
                              int NK, int K, int C) {
    shuffle_check(NK, K, C, "moe_combine");
    CHECK(y != NULL && yp != NULL && topk_w != NULL && sorted != NULL, "moe_combine_forward with a NULL pointer");
    LAUNCH_1D(ctx, combine_forward_kernel, (size_t)NK * C, y, yp, topk_w, sorted, NK, K, C);
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
