/* kernels/cuda/gemm.cu: dense matrix multiply through cublasSgemm (FP32, no TF32).
 *
 * The API is row-major, cuBLAS is column-major. A row-major (r, c) matrix with row stride ld is,
 * read column-major, its (c, r) transpose with leading dimension ld, so
 *   C(M,N) = alpha op(A) op(B) + beta C   (row-major)
 * is computed as the column-major product
 *   C^T(N,M) = alpha op(B)^T op(A)^T + beta C^T,
 * i.e. cublasSgemm(opB, opA, N, M, K, B, ldb, A, lda, C, ldc) with each op the flag as given.
 * The stride requirements are the CPU backend's (and cuBLAS's): lda >= (transA ? M : K),
 * ldb >= (transB ? K : N), ldc >= N. With beta = 0, C is not read.
 */
#include "kernels/cuda/cuda_ops.h"

void gemm_cuda(KernelCtx *ctx, int transA, int transB, int M, int N, int K, float alpha, const float *A, int lda,
               const float *B, int ldb, float beta, float *C, int ldc) {
    CHECK(M > 0 && N > 0 && K > 0, "gemm sizes M=%d N=%d K=%d must be positive", M, N, K);
    CHECK(A != NULL && B != NULL && C != NULL, "gemm with a NULL matrix");
    CHECK(lda >= (transA ? M : K), "gemm lda=%d too small (transA=%d, M=%d, K=%d)", lda, transA, M, K);
    CHECK(ldb >= (transB ? K : N), "gemm ldb=%d too small (transB=%d, K=%d, N=%d)", ldb, transB, K, N);
    CHECK(ldc >= N, "gemm ldc=%d < N=%d", ldc, N);
    CudaImpl *im = cuda_impl(ctx);
    cublasOperation_t opA = transA ? CUBLAS_OP_T : CUBLAS_OP_N;
    cublasOperation_t opB = transB ? CUBLAS_OP_T : CUBLAS_OP_N;
    CUBLAS_CHECK(cublasSgemm(im->blas, opB, opA, N, M, K, &alpha, B, ldb, A, lda, &beta, C, ldc));
}
