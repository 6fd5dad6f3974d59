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
 * Precision (kernels/backend.h, cuda_ops.h): ctx->gemm_bf16 = 0 is GEMM_FP32, CUBLAS_COMPUTE_32F
 * (true FP32 on CUDA cores, no TF32: the CPU reference's rounding up to summation order); 1 is
 * GEMM_BF16: A and B rounded to BF16 (nearest even), FP32 accumulation and output on the tensor
 * cores (CUBLAS_COMPUTE_32F with BF16 A/B layouts). The BF16 operands come from
 *   - the BF16 copy of the registered parameter block (params_register) when the operand lies in
 *     it: written once after the block changes (cuda_params_touched marks it stale; the next BF16
 *     GEMM that reads a parameter converts the whole block), so weights are not converted per call;
 *   - otherwise a per-call conversion into a growable scratch buffer of the handle (the span the
 *     strided operand covers, same leading dimension).
 * Feeding cuBLASLt FP32 operands with CUBLAS_COMPUTE_32F_FAST_16BF instead ran at half the BF16
 * rate on an H100 (docs/perf-notes.md); CISPO_CUDA_FAST16BF=1 (read at every call) still selects it.
 * GEMM_TF32 (CUBLAS_COMPUTE_32F_FAST_TF32 on FP32 operands) is the building block of the LM head's
 * 3xTF32 products (lm_head.cu). gemm_cuda_prec lets an op pin the precision (the LM head and the
 * router never run in BF16).
 *
 * cuBLASLt needs a matmul descriptor, three layouts and an algorithm per shape; the heuristic query
 * costs milliseconds of host time, so plans are cached in the handle by (bucketed shape, strides,
 * transposes, precision, pointer alignment), an open-addressed table that is never evicted. MoE
 * expert GEMMs see a different token count at every call, so a token dimension (M, or K of a
 * weight gradient; never a matrix's contiguous dimension) above 64 is rounded up to a bucket (four
 * per octave: 80, 96, 112, 128, 160, ...): the plan's algorithm is chosen for the
 * bucket and the call's actual sizes are stamped into the plan's layouts before the matmul. Should
 * cuBLASLt refuse the bucket's algorithm at the actual size, the exact shape gets a plan of its own.
 * A shape the heuristic has no algorithm for (or a full table) falls back to cublasGemmEx with the
 * same compute type and operand types.
 *
 * Skinny FP32 products C(M,N) = A(M,K) B(N,K)^T with N <= SKINNY_MAX_N (the MoE router's logits,
 * E columns) skip cuBLAS, whose kernels for them took ~20 us per call on an H100 (a decode step calls
 * one per layer): one block per row of A, each thread keeping N partial dot products over its share
 * of K, then warp and cross-warp reductions. FP32 accumulation, like the SGEMM (another summation
 * order).
 */
#include "kernels/cuda/cuda_ops.h"
#include "kernels/cuda/cuda_profile.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

/* precision of the plan: GEMM_BF16 with CISPO_CUDA_FAST16BF=1 is FP32 operands + FAST_16BF */
enum { PREC_FAST16BF = 3 };

/* Event counts for the profiler (kernels/cuda/profile.cu): see gemm_cuda_counters. */
static long n_refresh, n_convert, n_plans, n_refused, n_gemmex;

void gemm_cuda_counters(long out[5]) {
    out[0] = n_refresh, out[1] = n_convert, out[2] = n_plans, out[3] = n_refused, out[4] = n_gemmex;
    n_refresh = n_convert = n_plans = n_refused = n_gemmex = 0;
}

/* Largest power of two (<= 16) dividing the address: cuBLASLt's alignment preference (2 for a BF16
 * operand at an odd element offset). */
static int ptr_align(const void *p) {
    uintptr_t a = (uintptr_t)p;
    int al = 16;
    while (al > 1 && (a % (uintptr_t)al) != 0) al /= 2;
    return al;
}

/* x itself up to 64; above, the next multiple of a quarter of x's power of two */
static int dim_bucket(int x) {
    if (x <= 64) return x;
    int p = 1;
    while (p <= x / 2) p *= 2; /* p = largest power of two <= x */
    int q = p / 4;
    return (x + q - 1) / q * q;
}

static unsigned plan_hash(const GemmKey *k) {
    const unsigned char *b = (const unsigned char *)k;
    unsigned h = 2166136261u; /* FNV-1a over the key's bytes (the key has no padding) */
    for (size_t i = 0; i < sizeof(*k); i++) h = (h ^ b[i]) * 16777619u;
    return h;
}

static cublasComputeType_t compute_type(int prec) {
    return prec == PREC_FAST16BF ? CUBLAS_COMPUTE_32F_FAST_16BF
           : prec == GEMM_TF32   ? CUBLAS_COMPUTE_32F_FAST_TF32
                                 : CUBLAS_COMPUTE_32F;
}

static cudaDataType_t operand_type(int prec) { return prec == GEMM_BF16 ? CUDA_R_16BF : CUDA_R_32F; }

/* Build the descriptor, layouts and algorithm of one plan; valid = 0 when the heuristic has none. */
static void plan_build(CudaImpl *im, GemmPlan *p) {
    const GemmKey *k = &p->key;
    cublasOperation_t opA = k->ta ? CUBLAS_OP_T : CUBLAS_OP_N, opB = k->tb ? CUBLAS_OP_T : CUBLAS_OP_N;
    const cudaDataType_t ot = operand_type(k->prec);
    CUBLAS_CHECK(cublasLtMatmulDescCreate(&p->desc, compute_type(k->prec), CUDA_R_32F));
    /* column-major product C^T(N,M) = op(B)^T(N,K) op(A)^T(K,M): "A" of cuBLAS is our B */
    CUBLAS_CHECK(cublasLtMatmulDescSetAttribute(p->desc, CUBLASLT_MATMUL_DESC_TRANSA, &opB, sizeof(opB)));
    CUBLAS_CHECK(cublasLtMatmulDescSetAttribute(p->desc, CUBLASLT_MATMUL_DESC_TRANSB, &opA, sizeof(opA)));
    CUBLAS_CHECK(cublasLtMatrixLayoutCreate(&p->lb, ot, k->tb ? k->k : k->n, k->tb ? k->n : k->k, k->ldb));
    /* our row-major A (M,K) is the column-major (K,M); transposed, (K,M) row-major is (M,K) */
    CUBLAS_CHECK(cublasLtMatrixLayoutCreate(&p->la, ot, k->ta ? k->m : k->k, k->ta ? k->k : k->m, k->lda));
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
            n_plans++;
            return p;
        }
    }
    return NULL; /* table full: the caller uses cublasGemmEx */
}

/* Stamp the actual sizes into a plan's layouts (they were built for the key's bucketed sizes). */
static void plan_stamp(GemmPlan *p, int ta, int tb, int M, int N, int K) {
    uint64_t v;
    CUBLAS_CHECK(cublasLtMatrixLayoutSetAttribute(p->lb, CUBLASLT_MATRIX_LAYOUT_ROWS, &(v = (uint64_t)(tb ? K : N)), 8));
    CUBLAS_CHECK(cublasLtMatrixLayoutSetAttribute(p->lb, CUBLASLT_MATRIX_LAYOUT_COLS, &(v = (uint64_t)(tb ? N : K)), 8));
    CUBLAS_CHECK(cublasLtMatrixLayoutSetAttribute(p->la, CUBLASLT_MATRIX_LAYOUT_ROWS, &(v = (uint64_t)(ta ? M : K)), 8));
    CUBLAS_CHECK(cublasLtMatrixLayoutSetAttribute(p->la, CUBLASLT_MATRIX_LAYOUT_COLS, &(v = (uint64_t)(ta ? K : M)), 8));
    CUBLAS_CHECK(cublasLtMatrixLayoutSetAttribute(p->lc, CUBLASLT_MATRIX_LAYOUT_ROWS, &(v = (uint64_t)N), 8));
    CUBLAS_CHECK(cublasLtMatrixLayoutSetAttribute(p->lc, CUBLASLT_MATRIX_LAYOUT_COLS, &(v = (uint64_t)M), 8));
}

/* Run the matmul with a cached plan for the key (whose m, n, k are buckets or exact); returns 0 when
 * there is no usable plan or cuBLASLt refused it. */
static int lt_run(CudaImpl *im, GemmKey *key, int M, int N, int K, float alpha, const void *a, const void *b,
                  float beta, float *C) {
    GemmPlan *p = plan_get(im, key);
    if (p == NULL || !p->valid) return 0;
    plan_stamp(p, key->ta, key->tb, M, N, K);
    cublasStatus_t st = cublasLtMatmul(im->lt, p->desc, &alpha, b, p->lb, a, p->la, &beta, C, p->lc, C, p->lc,
                                       &p->algo, im->lt_ws, CUDA_LT_WORKSPACE, im->stream);
    if (st == CUBLAS_STATUS_SUCCESS) return 1;
    CHECK(st == CUBLAS_STATUS_NOT_SUPPORTED || st == CUBLAS_STATUS_INVALID_VALUE, "cublasLtMatmul: %s",
          cublasGetStatusString(st));
    n_refused++;
    return 0;
}

/* FP32 -> BF16, nearest even (NaN stays NaN, Inf stays Inf) */
static __device__ __forceinline__ unsigned short f32_to_bf16(float x) {
    unsigned u = __float_as_uint(x);
    if ((u & 0x7fffffffu) > 0x7f800000u) return (unsigned short)((u >> 16) | 0x40u); /* quiet NaN */
    return (unsigned short)((u + 0x7fffu + ((u >> 16) & 1u)) >> 16);
}

static __global__ void to_bf16_kernel(unsigned short *dst, const float *src, size_t n) {
    GRID_STRIDE_LOOP(i, n) dst[i] = f32_to_bf16(src[i]);
}

void params_register_cuda(KernelCtx *ctx, const float *base, size_t n) {
    CudaImpl *im = cuda_impl(ctx);
    CHECK(base != NULL && n > 0, "params_register: empty block");
    if (base == im->param_base && n == im->param_n) { /* again: written outside the ops */
        im->param_dirty = 1;
        return;
    }
    if (im->param_bf16 != NULL && im->param_n != n) {
        CUDA_CHECK(cudaFree(im->param_bf16));
        im->param_bf16 = NULL;
    }
    im->param_base = base;
    im->param_n = n;
    im->param_dirty = 1;
    if (im->param_bf16 == NULL) { /* now, so that a model that does not fit fails at set-up */
        cudaError_t err = cudaMalloc((void **)&im->param_bf16, n * 2);
        CHECK(err == cudaSuccess, "params_register: no room for the BF16 copy of %zu parameters (%.2f GB): %s", n,
              n * 2e-9, cudaGetErrorString(err));
    }
}

void cuda_params_touched(KernelCtx *ctx, const void *dst, size_t bytes) {
    if (ctx == NULL || ctx->impl == NULL || dst == NULL) return;
    CudaImpl *im = (CudaImpl *)ctx->impl;
    if (im->param_base == NULL) return;
    const char *b = (const char *)im->param_base, *e = b + im->param_n * sizeof(float), *d = (const char *)dst;
    if (d < e && d + bytes > b) im->param_dirty = 1;
}

void gemm_cuda_bf16_free(CudaImpl *im) {
    if (im->param_bf16) CUDA_CHECK(cudaFree(im->param_bf16));
    for (int i = 0; i < 2; i++)
        if (im->cvt[i]) CUDA_CHECK(cudaFree(im->cvt[i]));
    im->param_bf16 = NULL;
    im->cvt[0] = im->cvt[1] = NULL;
    im->cvt_bytes[0] = im->cvt_bytes[1] = 0;
}

/* The BF16 operand for the FP32 matrix X covering `span` elements: its place in the parameter
 * block's BF16 copy (refreshed first when stale), or a conversion into scratch buffer `slot`. */
const void *cuda_bf16_operand(CudaImpl *im, const float *X, size_t span, int slot) {
    if (im->param_base != NULL && X >= im->param_base && X + span <= im->param_base + im->param_n) {
        if (im->param_dirty) {
            to_bf16_kernel<<<cuda_grid(im->param_n), CUDA_THREADS, 0, im->stream>>>(im->param_bf16, im->param_base,
                                                                                    im->param_n);
            CUDA_LAUNCH_CHECK();
            im->param_dirty = 0;
            n_refresh++;
        }
        return im->param_bf16 + (X - im->param_base);
    }
    size_t bytes = span * 2;
    if (im->cvt_bytes[slot] < bytes) { /* grows to the largest operand, then stays (cudaFree syncs) */
        if (im->cvt[slot]) CUDA_CHECK(cudaFree(im->cvt[slot]));
        size_t cap = bytes + bytes / 4;
        CUDA_CHECK(cudaMalloc(&im->cvt[slot], cap));
        im->cvt_bytes[slot] = cap;
    }
    n_convert++;
    to_bf16_kernel<<<cuda_grid(span), CUDA_THREADS, 0, im->stream>>>((unsigned short *)im->cvt[slot], X, span);
    CUDA_LAUNCH_CHECK();
    return im->cvt[slot];
}

#define SKINNY_MAX_N 16
#define SKINNY_THREADS 128

/* grid (M), block SKINNY_THREADS: block m computes row m of C; each thread keeps N partial dot
 * products over a strided share of K (loads of A coalesced, B's N rows from L2), then warp and
 * cross-warp reductions in a fixed order. */
static __global__ void skinny_nt_kernel(int M, int N, int K, float alpha, const float *A, int lda, const float *B,
                                        int ldb, float beta, float *C, int ldc) {
    __shared__ float part[SKINNY_THREADS / 32][SKINNY_MAX_N];
    const int m = blockIdx.x, lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
    float acc[SKINNY_MAX_N];
#pragma unroll
    for (int n = 0; n < SKINNY_MAX_N; n++) acc[n] = 0.0f;
    const float *a = A + (size_t)m * lda;
    for (int k = threadIdx.x; k < K; k += SKINNY_THREADS) {
        const float x = a[k];
#pragma unroll
        for (int n = 0; n < SKINNY_MAX_N; n++)
            if (n < N) acc[n] = fmaf(x, B[(size_t)n * ldb + k], acc[n]);
    }
#pragma unroll
    for (int n = 0; n < SKINNY_MAX_N; n++) {
        float v = acc[n];
        for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
        if (lane == 0) part[warp][n] = v;
    }
    __syncthreads();
    if (threadIdx.x < N) {
        float v = 0.0f;
        for (int w = 0; w < SKINNY_THREADS / 32; w++) v += part[w][threadIdx.x];
        float *c = C + (size_t)m * ldc + threadIdx.x;
        *c = beta == 0.0f ? alpha * v : alpha * v + beta * *c;
    }
}

void gemm_cuda_prec(KernelCtx *ctx, int prec, int transA, int transB, int M, int N, int K, float alpha,
                    const float *A, int lda, const float *B, int ldb, float beta, float *C, int ldc) {
    CHECK(M > 0 && N > 0 && K > 0, "gemm sizes M=%d N=%d K=%d must be positive", M, N, K);
    CHECK(A != NULL && B != NULL && C != NULL, "gemm with a NULL matrix");
    CHECK(lda >= (transA ? M : K), "gemm lda=%d too small (transA=%d, M=%d, K=%d)", lda, transA, M, K);
    CHECK(ldb >= (transB ? K : N), "gemm ldb=%d too small (transB=%d, K=%d, N=%d)", ldb, transB, K, N);
    CHECK(ldc >= N, "gemm ldc=%d < N=%d", ldc, N);
    CHECK(prec == GEMM_FP32 || prec == GEMM_BF16 || prec == GEMM_TF32, "gemm precision %d unknown", prec);
    CudaImpl *im = cuda_impl(ctx);
    if (prec == GEMM_FP32 && !transA && transB && N <= SKINNY_MAX_N) {
        skinny_nt_kernel<<<(unsigned)M, SKINNY_THREADS, 0, im->stream>>>(M, N, K, alpha, A, lda, B, ldb, beta, C, ldc);
        CUDA_LAUNCH_CHECK();
        return;
    }
    const void *a = A, *b = B;
    if (prec == GEMM_BF16) {
        const char *e = getenv("CISPO_CUDA_FAST16BF");
        if (e != NULL && e[0] == '1') {
            prec = PREC_FAST16BF;
        } else { /* rows x ld elements, the last row only up to its used columns */
            size_t ra = transA ? (size_t)K : (size_t)M, ca = transA ? (size_t)M : (size_t)K;
            size_t rb = transB ? (size_t)N : (size_t)K, cb = transB ? (size_t)K : (size_t)N;
            a = cuda_bf16_operand(im, A, (ra - 1) * (size_t)lda + ca, 0);
            b = cuda_bf16_operand(im, B, (rb - 1) * (size_t)ldb + cb, 1);
        }
    }
    GemmKey key;
    memset(&key, 0, sizeof(key));
    key.ta = transA != 0;
    key.tb = transB != 0;
    /* only a dimension that is no matrix's contiguous one may grow into a bucket (a layout's rows
     * must fit its leading dimension): M unless A is transposed, K when A is and B is not */
    key.m = transA ? M : dim_bucket(M), key.n = N, key.k = transA && !transB ? dim_bucket(K) : K;
    key.lda = lda, key.ldb = ldb, key.ldc = ldc;
    key.prec = prec;
    key.align_a = ptr_align(a), key.align_b = ptr_align(b), key.align_c = ptr_align(C);
    if (lt_run(im, &key, M, N, K, alpha, a, b, beta, C)) return;
    if (key.m != M || key.n != N || key.k != K) { /* the exact shape, planned on its own */
        key.m = M, key.n = N, key.k = K;
        if (lt_run(im, &key, M, N, K, alpha, a, b, beta, C)) return;
    }
    cublasOperation_t opA = transA ? CUBLAS_OP_T : CUBLAS_OP_N;
    cublasOperation_t opB = transB ? CUBLAS_OP_T : CUBLAS_OP_N;
    const cudaDataType_t ot = operand_type(prec);
    n_gemmex++;
    CUBLAS_CHECK(cublasGemmEx(im->blas, opB, opA, N, M, K, &alpha, b, ot, ldb, a, ot, lda, &beta, C, CUDA_R_32F, ldc,
                              compute_type(prec), CUBLAS_GEMM_DEFAULT));
}

void gemm_cuda(KernelCtx *ctx, int transA, int transB, int M, int N, int K, float alpha, const float *A, int lda,
               const float *B, int ldb, float beta, float *C, int ldc) {
    gemm_cuda_prec(ctx, ctx != NULL && ctx->gemm_bf16 ? GEMM_BF16 : GEMM_FP32, transA, transB, M, N, K, alpha, A, lda,
                   B, ldb, beta, C, ldc);
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
