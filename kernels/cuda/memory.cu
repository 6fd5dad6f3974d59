/* kernels/cuda/memory.cu: the CUDA backend handle (impl_init / impl_free), its per-call metadata
 * upload (SeqPack), and the memory ops.
 *
 * Everything runs on one stream, the legacy default stream: alloc is cudaMalloc + a zero fill,
 * copy_h2d / copy_d2h are synchronous cudaMemcpy (ordered after every queued kernel, and the host
 * buffer is free on return), copy_d2d and zero are queued on the stream, sync waits for it.
 * Metadata in host memory (SeqPack start/pos0 and the like) goes through cudaMemcpyAsync into
 * fixed-capacity device scratch in the handle: from pageable memory the call returns once the
 * source is staged, and the stream order keeps a later upload from overwriting what a queued kernel
 * still reads. copy_h2d, copy_d2d and zero into the registered parameter block mark its BF16 copy
 * stale (gemm.cu).
 */
#include "kernels/cuda/cuda_ops.h"

static cudaStream_t ctx_stream(KernelCtx *ctx) {
    return ctx != NULL && ctx->impl != NULL ? ((CudaImpl *)ctx->impl)->stream : (cudaStream_t)0;
}

void impl_init_cuda(KernelCtx *ctx) {
    CHECK(ctx != NULL && ctx->impl == NULL, "impl_init_cuda needs a context without a handle");
    CudaImpl *im = (CudaImpl *)xcalloc(1, sizeof(CudaImpl));
    im->stream = 0;
    CUBLAS_CHECK(cublasCreate(&im->blas));
    CUBLAS_CHECK(cublasSetStream(im->blas, im->stream));
    /* Plain FP32 SGEMM: no TF32 tensor-core path, so results match the CPU reference. */
    CUBLAS_CHECK(cublasSetMathMode(im->blas, CUBLAS_DEFAULT_MATH));
    CUBLAS_CHECK(cublasLtCreate(&im->lt));
    CUDA_CHECK(cudaMalloc(&im->lt_ws, CUDA_LT_WORKSPACE));
    im->plans = (GemmPlan *)xcalloc(CUDA_GEMM_PLANS, sizeof(GemmPlan));
    CUDA_CHECK(cudaMalloc((void **)&im->d_start, (CUDA_MAX_SEQS + 1) * sizeof(int)));
    CUDA_CHECK(cudaMalloc((void **)&im->d_pos0, CUDA_MAX_SEQS * sizeof(int)));
    CUDA_CHECK(cudaMalloc((void **)&im->d_slopes, CUDA_MAX_HEADS * sizeof(float)));
    CUDA_CHECK(cudaMalloc((void **)&im->d_inv_freq, CUDA_MAX_ROT_HALF * sizeof(float)));
    CUDA_CHECK(cudaMalloc((void **)&im->d_partial, CUDA_MAX_PARTIALS * sizeof(double)));
    CUDA_CHECK(cudaMallocHost((void **)&im->h_partial, CUDA_MAX_PARTIALS * sizeof(double)));
    CUDA_CHECK(cudaMalloc((void **)&im->d_rms_partial, CUDA_RMS_PARTIAL_FLOATS * sizeof(float)));
    moe_cuda_init(im);
    int dev = 0;
    CUDA_CHECK(cudaGetDevice(&dev));
    CUDA_CHECK(cudaDeviceGetAttribute(&im->smem_optin, cudaDevAttrMaxSharedMemoryPerBlockOptin, dev));
    ctx->impl = im;
}

void impl_free_cuda(KernelCtx *ctx) {
    if (ctx == NULL || ctx->impl == NULL) return;
    CudaImpl *im = (CudaImpl *)ctx->impl;
    CUDA_CHECK(cudaStreamSynchronize(im->stream));
    CUBLAS_CHECK(cublasDestroy(im->blas));
    gemm_cuda_plans_free(im);
    gemm_cuda_bf16_free(im);
    free(im->plans);
    CUBLAS_CHECK(cublasLtDestroy(im->lt));
    CUDA_CHECK(cudaFree(im->lt_ws));
    CUDA_CHECK(cudaFree(im->d_start));
    CUDA_CHECK(cudaFree(im->d_pos0));
    CUDA_CHECK(cudaFree(im->d_slopes));
    CUDA_CHECK(cudaFree(im->d_inv_freq));
    CUDA_CHECK(cudaFree(im->d_partial));
    CUDA_CHECK(cudaFreeHost(im->h_partial));
    CUDA_CHECK(cudaFree(im->d_rms_partial));
    moe_cuda_free(im);
    free(im);
    ctx->impl = NULL;
}

CudaImpl *cuda_impl(KernelCtx *ctx) {
    CHECK(ctx != NULL && ctx->impl != NULL,
          "CUDA op on a context without a backend handle (kernel_ctx_init must call ops->impl_init)");
    return (CudaImpl *)ctx->impl;
}

DevPack cuda_pack_upload(KernelCtx *ctx, const SeqPack *pack, const char *op) {
    CudaImpl *im = cuda_impl(ctx);
    CHECK(pack != NULL && pack->start != NULL, "%s: NULL SeqPack", op);
    const int B = pack->n_seq;
    CHECK(B > 0 && B <= CUDA_MAX_SEQS, "%s: SeqPack of %d sequences (CUDA scratch holds 1..%d)", op, B,
          CUDA_MAX_SEQS);
    CHECK(pack->start[0] == 0, "%s: SeqPack start[0]=%d must be 0", op, pack->start[0]);
    DevPack d;
    d.B = B;
    d.max_len = 0;
    for (int b = 0; b < B; b++) {
        int T = pack->start[b + 1] - pack->start[b];
        CHECK(T >= 0, "%s: SeqPack start[%d]=%d > start[%d]=%d", op, b, pack->start[b], b + 1, pack->start[b + 1]);
        d.max_len = T > d.max_len ? T : d.max_len;
    }
    d.N = pack->start[B];
    CUDA_CHECK(cudaMemcpyAsync(im->d_start, pack->start, (size_t)(B + 1) * sizeof(int), cudaMemcpyHostToDevice,
                               im->stream));
    if (pack->pos0)
        CUDA_CHECK(cudaMemcpyAsync(im->d_pos0, pack->pos0, (size_t)B * sizeof(int), cudaMemcpyHostToDevice,
                                   im->stream));
    else
        CUDA_CHECK(cudaMemsetAsync(im->d_pos0, 0, (size_t)B * sizeof(int), im->stream));
    d.start = im->d_start;
    d.pos0 = im->d_pos0;
    return d;
}

void *alloc_cuda(KernelCtx *ctx, size_t bytes) {
    size_t n = bytes > 0 ? bytes : 1;
    void *p = NULL;
    cudaError_t err = cudaMalloc(&p, n);
    CHECK(err == cudaSuccess && p != NULL, "cudaMalloc of %zu bytes failed: %s", bytes, cudaGetErrorString(err));
    CUDA_CHECK(cudaMemsetAsync(p, 0, n, ctx_stream(ctx)));
    return p;
}

void free_cuda(KernelCtx *ctx, void *p) {
    if (p != NULL) CUDA_CHECK(cudaFree(p));
}

void copy_h2d_cuda(KernelCtx *ctx, void *dst, const void *src_host, size_t bytes) {
    if (bytes == 0) return;
    CHECK(dst != NULL && src_host != NULL, "copy of %zu bytes with a NULL pointer", bytes);
    cuda_params_touched(ctx, dst, bytes);
    CUDA_CHECK(cudaMemcpy(dst, src_host, bytes, cudaMemcpyHostToDevice));
}

void copy_d2h_cuda(KernelCtx *ctx, void *dst_host, const void *src, size_t bytes) {
    if (bytes == 0) return;
    CHECK(dst_host != NULL && src != NULL, "copy of %zu bytes with a NULL pointer", bytes);
    CUDA_CHECK(cudaMemcpy(dst_host, src, bytes, cudaMemcpyDeviceToHost));
}

/* dst and src must not overlap (cudaMemcpy's rule; the CPU backend's memmove allows it). */
void copy_d2d_cuda(KernelCtx *ctx, void *dst, const void *src, size_t bytes) {
    if (bytes == 0) return;
    CHECK(dst != NULL && src != NULL, "copy of %zu bytes with a NULL pointer", bytes);
    const char *d = (const char *)dst, *s = (const char *)src;
    CHECK(d + bytes <= s || s + bytes <= d, "copy_d2d of %zu bytes between overlapping ranges", bytes);
    cuda_params_touched(ctx, dst, bytes);
    CUDA_CHECK(cudaMemcpyAsync(dst, src, bytes, cudaMemcpyDeviceToDevice, ctx_stream(ctx)));
}

void zero_cuda(KernelCtx *ctx, void *p, size_t bytes) {
    if (bytes == 0) return;
    CHECK(p != NULL, "zero of %zu bytes at NULL", bytes);
    cuda_params_touched(ctx, p, bytes);
    CUDA_CHECK(cudaMemsetAsync(p, 0, bytes, ctx_stream(ctx)));
}

void sync_cuda(KernelCtx *ctx) {
    CUDA_CHECK(cudaStreamSynchronize(ctx_stream(ctx)));
    CUDA_CHECK(cudaGetLastError());
}

/* grid (B), block 256: sequence b's k and v rows into position pos[b] of its caches */
static __global__ void kv_append_kernel(float *kc, float *vc, const float *k, const float *v, const int *pos, int Tmax,
                                        int row) {
    const int b = blockIdx.x, p = pos[b];
    DEV_CHECK(p >= 0 && p < Tmax, "kv_append: sequence %d at position %d of %d", b, p, Tmax);
    const size_t dst = ((size_t)b * Tmax + p) * row, src = (size_t)b * row;
    for (int i = threadIdx.x; i < row; i += blockDim.x) {
        kc[dst + i] = k[src + i];
        vc[dst + i] = v[src + i];
    }
}

void kv_append_cuda(KernelCtx *ctx, float *kcache, float *vcache, const float *k, const float *v, const int *pos, int B,
                    int Tmax, int row) {
    CHECK(kcache != NULL && vcache != NULL && k != NULL && v != NULL && pos != NULL && B > 0 && row > 0,
          "kv_append: B=%d row=%d with a NULL pointer", B, row);
    CHECK(B <= CUDA_MAX_SEQS, "kv_append: %d sequences (CUDA scratch holds %d)", B, CUDA_MAX_SEQS);
    CudaImpl *im = cuda_impl(ctx);
    CUDA_CHECK(cudaMemcpyAsync(im->d_pos0, pos, (size_t)B * sizeof(int), cudaMemcpyHostToDevice, im->stream));
    kv_append_kernel<<<B, 256, 0, im->stream>>>(kcache, vcache, k, v, im->d_pos0, Tmax, row);
    CUDA_LAUNCH_CHECK();
}
