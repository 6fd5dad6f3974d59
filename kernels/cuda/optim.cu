/* kernels/cuda/optim.cu: AdamW and the float64 sum of squares.
 *
 * AdamW as kernels/cpu/optim.c: one thread per parameter, the update in float64 from the FP32
 * state (bias corrections computed on the host in float64), moments stored back in FP32:
 *   m = b1 m + (1-b1) g;  v = b2 v + (1-b2) g^2;
 *   p -= lr * ((m / (1-b1^t)) / (sqrt(v / (1-b2^t)) + eps) + wd * p).
 * sumsq: at most CUDA_MAX_PARTIALS blocks, each summing a grid-stride share in float64 and
 * reducing it in shared memory; the per-block sums are copied to the host and added there in
 * block order (deterministic). The call synchronises the stream (its result is a host value).
 */
#include <math.h>

#include "kernels/cuda/cuda_ops.h"

static __global__ void adamw_kernel(float *p, const float *g, float *m, float *v, size_t n, double lr, double b1,
                                    double b2, double eps, double wd, double bc1, double bc2) {
    GRID_STRIDE_LOOP(i, n) {
        double gi = g[i];
        double mi = b1 * m[i] + (1.0 - b1) * gi;
        double vi = b2 * v[i] + (1.0 - b2) * gi * gi;
        m[i] = (float)mi;
        v[i] = (float)vi;
        double upd = (mi / bc1) / (sqrt(vi / bc2) + eps) + wd * p[i];
        p[i] = (float)(p[i] - lr * upd);
    }
}

static __global__ void sumsq_kernel(double *partial, const float *x, size_t n) {
    __shared__ double sh[32];
    double s = 0.0;
    GRID_STRIDE_LOOP(i, n) s += (double)x[i] * x[i];
    s = block_sum(s, sh);
    if (threadIdx.x == 0) partial[blockIdx.x] = s;
}

void adamw_cuda(KernelCtx *ctx, float *p, const float *g, float *m, float *v, size_t n, float lr, float b1, float b2,
                float eps, float wd, int t) {
    CHECK(p != NULL && g != NULL && m != NULL && v != NULL, "adamw with a NULL pointer");
    CHECK(t >= 1, "adamw step t=%d must be >= 1", t);
    CHECK(b1 >= 0.0f && b1 < 1.0f && b2 >= 0.0f && b2 < 1.0f, "adamw betas (%g, %g) must lie in [0, 1)", (double)b1,
          (double)b2);
    double bc1 = 1.0 - pow((double)b1, t), bc2 = 1.0 - pow((double)b2, t);
    cuda_params_touched(ctx, p, n * sizeof(float)); /* the parameters' BF16 copy is stale (gemm.cu) */
    LAUNCH_1D(ctx, adamw_kernel, n, p, g, m, v, n, (double)lr, (double)b1, (double)b2, (double)eps, (double)wd, bc1,
              bc2);
}

double sumsq_cuda(KernelCtx *ctx, const float *x, size_t n) {
    CHECK(x != NULL || n == 0, "sumsq with a NULL pointer");
    if (n == 0) return 0.0;
    CudaImpl *im = cuda_impl(ctx);
    unsigned blocks = cuda_grid(n);
    if (blocks > CUDA_MAX_PARTIALS) blocks = CUDA_MAX_PARTIALS;
    sumsq_kernel<<<blocks, CUDA_THREADS, 0, im->stream>>>(im->d_partial, x, n);
    CUDA_LAUNCH_CHECK();
    CUDA_CHECK(cudaMemcpyAsync(im->h_partial, im->d_partial, blocks * sizeof(double), cudaMemcpyDeviceToHost,
                               im->stream));
    CUDA_CHECK(cudaStreamSynchronize(im->stream));
    double s = 0.0;
    for (unsigned b = 0; b < blocks; b++) s += im->h_partial[b];
    return s;
}
