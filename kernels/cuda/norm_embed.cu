/* kernels/cuda/norm_embed.cu: token embedding lookup and RMSNorm, forward and backward, FP32 with
 * the same formulas as kernels/cpu/norm_embed.c.
 *
 * Embedding: one thread per output element; the backward adds rows with atomicAdd (a token may
 * occur many times). Token ids are checked for sign on the device (the vocabulary size is not
 * passed), as the CPU checks them.
 * RMSNorm: one thread block per row, sum of squares in float64 with a block reduction,
 *   rstd = 1/sqrt((float)(ss/C) + eps),  out = w * (x * rstd).
 * Backward: dx by one block per row, dx += rstd (w dout) - x rstd^3 mean(x w dout) (the mean in
 * float64); dw by fused.cu's rmsnorm_dw_cuda: per-slab partial sums, then a fixed-order sum over
 * the slabs added into dw (deterministic, no atomics; dw accumulates).
 */
#include "kernels/cuda/cuda_ops.h"

#define RMS_THREADS 256

static __global__ void embedding_forward_kernel(float *out, const int *tokens, const float *wte, int N, int C) {
    GRID_STRIDE_LOOP(i, (size_t)N * C) {
        size_t n = i / C, c = i % C;
        int tok = tokens[n];
        DEV_CHECK(tok >= 0, "token %d at position %d is negative", tok, (int)n);
        out[i] = wte[(size_t)tok * C + c];
    }
}

static __global__ void embedding_backward_kernel(float *dwte, const float *dout, const int *tokens, int N, int C) {
    GRID_STRIDE_LOOP(i, (size_t)N * C) {
        size_t n = i / C, c = i % C;
        int tok = tokens[n];
        DEV_CHECK(tok >= 0, "token %d at position %d is negative", tok, (int)n);
        atomicAdd(&dwte[(size_t)tok * C + c], dout[i]);
    }
}

/* grid (N): one block per row */
static __global__ void rmsnorm_forward_kernel(float *out, float *rstd, const float *x, const float *w, int C,
                                              float eps) {
    __shared__ double sh[32];
    const size_t n = blockIdx.x;
    const float *xr = x + n * C;
    float *o = out + n * C;
    double ss = 0.0;
    for (int c = threadIdx.x; c < C; c += blockDim.x) ss += (double)xr[c] * xr[c];
    ss = block_sum(ss, sh);
    float var = (float)(ss / C);
    float r = 1.0f / sqrtf(var + eps);
    if (threadIdx.x == 0) rstd[n] = r;
    for (int c = threadIdx.x; c < C; c += blockDim.x) o[c] = w[c] * (xr[c] * r);
}

/* grid (N): dx of one row */
static __global__ void rmsnorm_backward_dx_kernel(float *dx, const float *dout, const float *x, const float *w,
                                                  const float *rstd, int C) {
    __shared__ double sh[32];
    const size_t n = blockIdx.x;
    const float *xr = x + n * C, *d = dout + n * C;
    float *dxr = dx + n * C;
    const float r = rstd[n];
    double dot = 0.0; /* sum_c x * w * dout */
    for (int c = threadIdx.x; c < C; c += blockDim.x) dot += (double)xr[c] * w[c] * d[c];
    dot = block_sum(dot, sh);
    float coef = (float)(dot / C) * r * r * r;
    for (int c = threadIdx.x; c < C; c += blockDim.x) dxr[c] += r * (w[c] * d[c]) - xr[c] * coef;
}

void embedding_forward_cuda(KernelCtx *ctx, float *out, const int *tokens, const float *wte, int N, int C) {
    CHECK(N > 0 && C > 0, "embedding sizes N=%d C=%d must be positive", N, C);
    CHECK(out != NULL && tokens != NULL && wte != NULL, "embedding_forward with a NULL pointer");
    LAUNCH_1D(ctx, embedding_forward_kernel, (size_t)N * C, out, tokens, wte, N, C);
}

void embedding_backward_cuda(KernelCtx *ctx, float *dwte, const float *dout, const int *tokens, int N, int C) {
    CHECK(N > 0 && C > 0, "embedding sizes N=%d C=%d must be positive", N, C);
    CHECK(dwte != NULL && dout != NULL && tokens != NULL, "embedding_backward with a NULL pointer");
    LAUNCH_1D(ctx, embedding_backward_kernel, (size_t)N * C, dwte, dout, tokens, N, C);
}

void rmsnorm_forward_cuda(KernelCtx *ctx, float *out, float *rstd, const float *x, const float *w, int N, int C,
                          float eps) {
    CHECK(N > 0 && C > 0, "rmsnorm sizes N=%d C=%d must be positive", N, C);
    CHECK(out != NULL && rstd != NULL && x != NULL && w != NULL, "rmsnorm_forward with a NULL pointer");
    rmsnorm_forward_kernel<<<N, RMS_THREADS, 0, cuda_impl(ctx)->stream>>>(out, rstd, x, w, C, eps);
    CUDA_LAUNCH_CHECK();
}

void rmsnorm_backward_cuda(KernelCtx *ctx, float *dx, float *dw, const float *dout, const float *x, const float *w,
                           const float *rstd, int N, int C) {
    CHECK(N > 0 && C > 0, "rmsnorm sizes N=%d C=%d must be positive", N, C);
    CHECK(dx != NULL && dw != NULL && dout != NULL && x != NULL && w != NULL && rstd != NULL,
          "rmsnorm_backward with a NULL pointer");
    cudaStream_t st = cuda_impl(ctx)->stream;
    rmsnorm_backward_dx_kernel<<<N, RMS_THREADS, 0, st>>>(dx, dout, x, w, rstd, C);
    CUDA_LAUNCH_CHECK();
    rmsnorm_dw_cuda(ctx, dw, dout, x, rstd, N, C);
}
