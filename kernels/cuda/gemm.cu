/* kernels/cuda/gemm.cu: dense matrix multiply through cuBLASLt, FP32 or BF16 tensor-core math.
 *
 * The API is row-major, cuBLAS is column-major. A row-major (r, c) matrix with row stride ld is,
 * read column-major, its (c, r) transpose with leading dimension ld, so
 *   C(M,N) = alpha op(A) op(B) + beta C   (row-major)
 * is computed as the column-major product
 *   C^T(N,M) = alpha op(B)^T op(A)^T + beta C^T,
 * i.e. matmul(opB, opA, N, M, K, B, ldb, A, lda, C, ldc) with each op the flag as given.
 * The stride requirements are the CPU backend's (and cuBLAS's): lda >= (transA ? M : K),
 * ldb >= (transB ? K : N), ldc >= N. With beta = 0, C is not read.
 *
 * Precision (kernels/backend.h): ctx->gemm_bf16 = 0 is CUBLAS_COMPUTE_32F (true FP32 on CUDA
 * cores, no TF32: the CPU reference's rounding up to summation order); 1 is
 * CUBLAS_COMPUTE_32F_FAST_16BF on the same FP32 matrices: cuBLAS rounds A and B to BF16 and
 * accumulates in FP32 on the tensor cores. gemm_cuda_prec lets an op pin the precision (the LM
 * head and the router always run in FP32).
 *
 * cuBLASLt needs a matmul descriptor, three layouts and an algorithm per shape; the heuristic query
 * costs tens of microseconds, so plans are cached in the handle by (shape, strides, transposes,
 * precision, pointer alignment), a small open-addressed table that is never evicted (a model has a
 * few dozen shapes). A shape the heuristic has no algorithm for falls back to cublasGemmEx with the
 * same compute type.
 */
#include "kernels/cuda/cuda_ops.h"

#include <string.h>

/* Largest power of two (<= 16) dividing the address: cuBLASLt's alignment preference. */
static int ptr_align(const void *p) {
    uintptr_t a = (uintptr_t)p;
    int al = 16;
    while (al > 4 && (a % (uintptr_t)al) != 0) al /= 2;
    return al;
}

static unsigned plan_hash(const GemmKey *k) {
    const unsigned char *b = (const unsigned char *)k;
    unsigned h = 2166136261u; /* FNV-1a over the key's bytes (the key has no padding) */
    for (size_t i = 0; i < sizeof(*k); i++) h = (h ^ b[i]) * 16777619u;
    return h;
}

static cublasComputeType_t compute_type(int bf16) {
    return bf16 ? CUBLAS_COMPUTE_32F_FAST_16BF : CUBLAS_COMPUTE_32F;
}

/* Build the descriptor, layouts and algorithm of one plan; valid = 0 when the heuristic has none. */
static void plan_build(CudaImpl *im, GemmPlan *p) {
    const GemmKey *k = &p->key;
    cublasOperation_t opA = k->ta ? CUBLAS_OP_T : CUBLAS_OP_N, opB = k->tb ? CUBLAS_OP_T : CUBLAS_OP_N;
    CUBLAS_CHECK(cublasLtMatmulDescCreate(&p->desc, compute_type(k->bf16), CUDA_R_32F));
    /* column-major product C^T(N,M) = op(B)^T(N,K) op(A)^T(K,M): "A" of cuBLAS is our B */
    CUBLAS_CHECK(cublasLtMatmulDescSetAttribute(p->desc, CUBLASLT_MATMUL_DESC_TRANSA, &opB, sizeof(opB)));
    CUBLAS_CHECK(cublasLtMatmulDescSetAttribute(p->desc, CUBLASLT_MATMUL_DESC_TRANSB, &opA, sizeof(opA)));
    CUBLAS_CHECK(cublasLtMatrixLayoutCreate(&p->lb, CUDA_R_32F, k->tb ? k->k : k->n, k->tb ? k->n : k->k, k->ldb));
    CUBLAS_CHECK(cublasLtMatrixLayoutCreate(&p->la, CUDA_R_32F, k->ta ? k->k : k->m, k->ta ? k->m : k->k, k->lda));
    CUBLAS_CHECK(cublasLtMatrixLayoutCreate(&p->lc, CUDA_R_32F, k->n, k->m, k->ldc));
    cublasLtMatmulPreference_t pref;
    CUBLAS_CHECK(cublasLtMatmulPreferenceCreate(&pref));
    size_t ws = CUDA_LT_WORKSPACE;
    uint32_t aa = (uint32_t)k->align_a, ab = (uint32_t)k->align_b, ac = (uint32_t)k->align_c;
    CUBLAS_CHECK(cublasLtMatmulPreferenceSetAttribute(pref, CUBLASLT_MATMUL_PREF_MAX_WORKSPACE_BYTES, &ws, sizeof(ws)));
    CUBLAS_CHECK(cublasLtMatmulPreferenceSetAttribute(pref, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_A_BYTES, &ab, sizeof(ab)));
    CUBLAS_CHECK(cublasLtMatmulPreferenceSetAttribute(pref, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_B_BYTES, &aa, sizeof(aa)));
    CUBLAS_CHECK(cublasLtMatmulPreferenceSetAttribute(pref, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_C_BYTES, &ac, sizeof(ac)));
    CUBLAS_CHECK(cublasLtMatmulPreferenceSetAttribute(pref, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_D_BYTES, &ac, sizeof(ac)));
    cublasLtMatmulHeuristicResult_t res;
    int found = 0;
    cublasStatus_t st = cublasLtMatmulAlgoGetHeuristic(im->lt, p->desc, p->lb, p->la, p->lc, p->lc, pref, 1, &res,
                                                       &found);
    CUBLAS_CHECK(cublasLtMatmulPreferenceDestroy(pref));
    p->valid = st == CUBLAS_STATUS_SUCCESS && found > 0;
    if (p->valid) p->algo = res.algo;
}

static GemmPlan *plan_get(CudaImpl *im, const GemmKey *key) {
    unsigned h = plan_hash(key) & (CUDA_GEMM_PLANS - 1);
    for (int probe = 0; probe < CUDA_GEMM_PLANS; probe++) {
        GemmPlan *p = &im->plans[(h + (unsigned)probe) & (CUDA_GEMM_PLANS - 1)];
        if (p->used && memcmp(&p->key, key, sizeof(*key)) == 0) return p;
        if (!p->used) {
            p->used = 1;
            p->key = *key;
            plan_build(im, p);
            return p;
        }
    }
    return NULL; /* table full: the caller uses cublasGemmEx */
}

void gemm_cuda_prec(KernelCtx *ctx, int bf16, int transA, int transB, int M, int N, int K, float alpha,
                    const float *A, int lda, const float *B, int ldb, float beta, float *C, int ldc) {
    CHECK(M > 0 && N > 0 && K > 0, "gemm sizes M=%d N=%d K=%d must be positive", M, N, K);
    CHECK(A != NULL && B != NULL && C != NULL, "gemm with a NULL matrix");
    CHECK(lda >= (transA ? M : K), "gemm lda=%d too small (transA=%d, M=%d, K=%d)", lda, transA, M, K);
    CHECK(ldb >= (transB ? K : N), "gemm ldb=%d too small (transB=%d, K=%d, N=%d)", ldb, transB, K, N);
    CHECK(ldc >= N, "gemm ldc=%d < N=%d", ldc, N);
    CudaImpl *im = cuda_impl(ctx);
    GemmKey key;
    memset(&key, 0, sizeof(key));
    key.ta = transA != 0;
    key.tb = transB != 0;
    key.m = M, key.n = N, key.k = K, key.lda = lda, key.ldb = ldb, key.ldc = ldc;
    key.bf16 = bf16 != 0;
    key.align_a = ptr_align(A), key.align_b = ptr_align(B), key.align_c = ptr_align(C);
    GemmPlan *p = plan_get(im, &key);
    if (p != NULL && p->valid) {
        CUBLAS_CHECK(cublasLtMatmul(im->lt, p->desc, &alpha, B, p->lb, A, p->la, &beta, C, p->lc, C, p->lc, &p->algo,
                                    im->lt_ws, CUDA_LT_WORKSPACE, im->stream));
        return;
    }
    cublasOperation_t opA = transA ? CUBLAS_OP_T : CUBLAS_OP_N;
    cublasOperation_t opB = transB ? CUBLAS_OP_T : CUBLAS_OP_N;
    CUBLAS_CHECK(cublasGemmEx(im->blas, opB, opA, N, M, K, &alpha, B, CUDA_R_32F, ldb, A, CUDA_R_32F, lda, &beta, C,
                              CUDA_R_32F, ldc, compute_type(bf16), CUBLAS_GEMM_DEFAULT));
}

void gemm_cuda(KernelCtx *ctx, int transA, int transB, int M, int N, int K, float alpha, const float *A, int lda,
               const float *B, int ldb, float beta, float *C, int ldc) {
    gemm_cuda_prec(ctx, ctx != NULL && ctx->gemm_bf16, transA, transB, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc);
}

/* Free every cached plan (impl_free). */
void gemm_cuda_plans_free(CudaImpl *im) {
    for (int i = 0; i < CUDA_GEMM_PLANS; i++) {
        GemmPlan *p = &im->plans[i];
        if (!p->used) continue;
        CUBLAS_CHECK(cublasLtMatrixLayoutDestroy(p->la));
        CUBLAS_CHECK(cublasLtMatrixLayoutDestroy(p->lb));
        CUBLAS_CHECK(cublasLtMatrixLayoutDestroy(p->lc));
        CUBLAS_CHECK(cublasLtMatmulDescDestroy(p->desc));
        p->used = 0;
    }
}
