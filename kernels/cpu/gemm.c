/* kernels/cpu/gemm.c: dense matrix multiply through OpenBLAS's cblas_sgemm (row-major).
 * C(M,N) = alpha * op(A) op(B) + beta * C; the leading dimensions are row strides and must be at
 * least the stored row length (K or M for A, N or K for B, N for C).
 */
#include <cblas.h>

#include "core/error.h"
#include "kernels/cpu/cpu_ops.h"

void gemm_cpu(KernelCtx *ctx, int transA, int transB, int M, int N, int K, float alpha, const float *A, int lda,
              const float *B, int ldb, float beta, float *C, int ldc) {
    CHECK(M > 0 && N > 0 && K > 0, "gemm sizes M=%d N=%d K=%d must be positive", M, N, K);
    CHECK(A != NULL && B != NULL && C != NULL, "gemm with a NULL matrix");
    CHECK(lda >= (transA ? M : K), "gemm lda=%d too small (transA=%d, M=%d, K=%d)", lda, transA, M, K);
    CHECK(ldb >= (transB ? K : N), "gemm ldb=%d too small (transB=%d, K=%d, N=%d)", ldb, transB, K, N);
    CHECK(ldc >= N, "gemm ldc=%d < N=%d", ldc, N);
    cblas_sgemm(CblasRowMajor, transA ? CblasTrans : CblasNoTrans, transB ? CblasTrans : CblasNoTrans, M, N, K,
                alpha, A, lda, B, ldb, beta, C, ldc);
}
