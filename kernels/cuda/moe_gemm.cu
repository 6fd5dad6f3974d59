/* kernels/cuda/moe_gemm.cu: the MoE expert GEMMs (moe_expert_gemm, moe_expert_gemm_dw) and the MoE
 * scratch of the handle.
 *
 * Each expert with rows is one problem of a cuBLAS grouped GEMM (cublasGemmGroupedBatchedEx, one
 * group of size 1 per expert: the row count differs per expert), compute type CUBLAS_COMPUTE_32F,
 * FP32 output. Operands: FP32, or with ctx->gemm_bf16 BF16 as gemm.cu makes them (the precision
 * rule: inputs rounded to BF16 nearest even, FP32 accumulation): the weights from the registered
 * parameter block's BF16 copy, the activations converted once per call for all experts
 * (cuda_bf16_operand); CISPO_CUDA_FAST16BF=1 keeps FP32 operands with
 * CUBLAS_COMPUTE_32F_FAST_16BF instead. cuBLAS 13 refuses grouped GEMMs of BF16 operands with an
 * FP32 output (NOT_SUPPORTED, H100): BF16 then runs one gemm_cuda_prec per expert, which reads the
 * same BF16 weights and uses gemm.cu's cached cuBLASLt plans for bucketed row counts (a
 * cublasGemmEx per expert chose its algorithm on every call: ~0.3 ms of host time each). The
 * per-group sizes are host
 * arrays; the A/B/C pointer arrays are built on the host from the host offsets and uploaded into the
 * handle's d_moe_ptrs through a ring of pinned staging slots (an event per slot says when the host
 * may reuse it), so the call does not synchronise (a pageable copy would); the stream orders the next
 * upload after this GEMM. The fallback is one cublasGemmEx per expert with the
 * same compute type: used for a precision whose first grouped call failed (any status; remembered
 * in the handle and logged), for a single call refused later (NOT_SUPPORTED / INVALID_VALUE; other
 * failures abort), and always with CISPO_CUDA_MOE_LOOP=1 (for comparisons). Expert GEMMs bypass
 * gemm.cu's plan cache: their row counts change every step and would fill it.
 *
 * Row-major to column-major as in gemm.cu (a row-major (r, c) matrix is its column-major transpose):
 *   forward / data gradient  Y_e(r,Nc) = X_e(r,Kc) op(W_e):  column-major Y_e^T(Nc,r) = op(W_e)^T X_e^T,
 *     i.e. A = W_e (op T with lda Kc when transW, else op N with lda Nc), B = X_e (op N, ldb Kc),
 *     m = Nc, n = r, k = Kc, C = Y_e (ldc Nc);
 *   weight gradient  dW_e(Nc,Kc) += G_e(r,Nc)^T X_e(r,Kc):  column-major dW_e^T(Kc,Nc) = X_e^T G_e,
 *     i.e. A = X_e (op N, lda Kc), B = G_e (op T, ldb Nc), m = Kc, n = Nc, k = r, C = dW_e (ldc Kc),
 *     beta = 1.
 */
#include <stdlib.h>
#include <string.h>

#include "kernels/cuda/cuda_ops.h"

extern "C" {
#include "core/log.h"
}

/* One expert problem in cuBLAS's column-major terms. */
typedef struct {
    cublasOperation_t ta, tb;
    int m, n, k, lda, ldb, ldc;
    const void *A, *B;
    void *C;
} MoeProblem;

/* The operand precision of a call: type of A and B, compute type, index into moe_grouped. */
typedef struct {
    cudaDataType_t ab;
    cublasComputeType_t ct;
    int idx;          /* 0 FP32, 1 BF16 operands, 2 FP32 operands with FAST_16BF */
    size_t elem;      /* bytes per operand element */
} MoePrec;

static MoePrec moe_prec(KernelCtx *ctx) {
    MoePrec p = {CUDA_R_32F, CUBLAS_COMPUTE_32F, 0, 4};
    if (!ctx->gemm_bf16) return p;
    const char *e = getenv("CISPO_CUDA_FAST16BF");
    if (e != NULL && e[0] == '1') {
        p.ct = CUBLAS_COMPUTE_32F_FAST_16BF, p.idx = 2;
        return p;
    }
    p.ab = CUDA_R_16BF, p.idx = 1, p.elem = 2;
    return p;
}

/* X + i elements of the operand's type */
static const void *elem_at(const void *X, size_t i, const MoePrec *pr) { return (const char *)X + i * pr->elem; }

void moe_cuda_init(CudaImpl *im) {
    const size_t tiles = CUDA_MAX_SORT_SLOTS / CUDA_MOE_TILE;
    CUDA_CHECK(cudaMalloc((void **)&im->d_moe_counts, tiles * CUDA_MAX_EXPERTS * sizeof(int)));
    CUDA_CHECK(cudaMalloc((void **)&im->d_moe_offsets, (CUDA_MAX_EXPERTS + 1) * sizeof(int)));
    CUDA_CHECK(cudaMalloc((void **)&im->d_moe_ptrs, 3 * CUDA_MAX_EXPERTS * sizeof(void *)));
    CUDA_CHECK(cudaMallocHost((void **)&im->h_moe_ptrs, (size_t)CUDA_MOE_RING * 3 * CUDA_MAX_EXPERTS * sizeof(void *)));
    for (int i = 0; i < CUDA_MOE_RING; i++)
        CUDA_CHECK(cudaEventCreateWithFlags(&im->moe_ev[i], cudaEventDisableTiming));
    im->moe_ring = 0;
    im->moe_grouped[0] = im->moe_grouped[1] = im->moe_grouped[2] = -1;
    const char *loop = getenv("CISPO_CUDA_MOE_LOOP");
    im->moe_force_loop = loop != NULL && strcmp(loop, "1") == 0;
}

void moe_cuda_free(CudaImpl *im) {
    CUDA_CHECK(cudaFree(im->d_moe_counts));
    CUDA_CHECK(cudaFree(im->d_moe_offsets));
    CUDA_CHECK(cudaFree(im->d_moe_ptrs));
    CUDA_CHECK(cudaFreeHost(im->h_moe_ptrs));
    for (int i = 0; i < CUDA_MOE_RING; i++) CUDA_CHECK(cudaEventDestroy(im->moe_ev[i]));
    im->d_moe_counts = im->d_moe_offsets = NULL;
    im->d_moe_ptrs = NULL;
    im->h_moe_ptrs = NULL;
}

/* Upload the pointer arrays ptrs(3G) to d_moe_ptrs without synchronising: through a pinned ring slot
 * whose previous upload is known done (its event), so the host may overwrite it. */
static void upload_ptrs(CudaImpl *im, const void *const *ptrs, int G) {
    const int slot = im->moe_ring;
    im->moe_ring = (slot + 1) % CUDA_MOE_RING;
    void **h = im->h_moe_ptrs + (size_t)slot * 3 * CUDA_MAX_EXPERTS;
    CUDA_CHECK(cudaEventSynchronize(im->moe_ev[slot])); /* never recorded: returns at once */
    memcpy(h, ptrs, (size_t)3 * G * sizeof(void *));
    CUDA_CHECK(cudaMemcpyAsync(im->d_moe_ptrs, h, (size_t)3 * G * sizeof(void *), cudaMemcpyHostToDevice, im->stream));
    CUDA_CHECK(cudaEventRecord(im->moe_ev[slot], im->stream));
}

/* The grouped call: cuBLAS's status (anything but SUCCESS: nothing ran). */
static cublasStatus_t run_grouped(CudaImpl *im, const MoeProblem *p, int G, float beta, const MoePrec *pr) {
    cublasOperation_t ta[CUDA_MAX_EXPERTS], tb[CUDA_MAX_EXPERTS];
    int m[CUDA_MAX_EXPERTS], n[CUDA_MAX_EXPERTS], k[CUDA_MAX_EXPERTS], gs[CUDA_MAX_EXPERTS];
    int lda[CUDA_MAX_EXPERTS], ldb[CUDA_MAX_EXPERTS], ldc[CUDA_MAX_EXPERTS];
    float alpha[CUDA_MAX_EXPERTS], betas[CUDA_MAX_EXPERTS];
    const void *ptrs[3 * CUDA_MAX_EXPERTS]; /* A[0..G) | B[0..G) | C[0..G) */
    for (int g = 0; g < G; g++) {
        ta[g] = p[g].ta, tb[g] = p[g].tb;
        m[g] = p[g].m, n[g] = p[g].n, k[g] = p[g].k;
        lda[g] = p[g].lda, ldb[g] = p[g].ldb, ldc[g] = p[g].ldc;
        alpha[g] = 1.0f, betas[g] = beta, gs[g] = 1;
        ptrs[g] = p[g].A, ptrs[G + g] = p[g].B, ptrs[2 * G + g] = p[g].C;
    }
    upload_ptrs(im, ptrs, G);
    void **d = im->d_moe_ptrs;
    cublasStatus_t st = cublasGemmGroupedBatchedEx(im->blas, ta, tb, m, n, k, alpha, (const void *const *)d, pr->ab,
                                                   lda, (const void *const *)(d + G), pr->ab, ldb, betas,
                                                   (void *const *)(d + 2 * G), CUDA_R_32F, ldc, G, gs, pr->ct);
    return st;
}

/* Run the G problems: grouped where cuBLAS takes it, else one cublasGemmEx each. */
static void run_problems(KernelCtx *ctx, const MoeProblem *p, int G, float beta, const MoePrec *pr) {
    if (G == 0) return;
    CudaImpl *im = cuda_impl(ctx);
    static const char *const names[3] = {"FP32 operands, FP32 math", "BF16 operands, FP32 accumulation",
                                         "FP32 operands, FAST_16BF math"};
    const int i = pr->idx;
    const cublasComputeType_t ct = pr->ct;
    if (!im->moe_force_loop && im->moe_grouped[i] != 0) {
        const int first = im->moe_grouped[i] == -1;
        cublasStatus_t st = run_grouped(im, p, G, beta, pr);
        if (st == CUBLAS_STATUS_SUCCESS) {
            im->moe_grouped[i] = 1;
            if (first) log_info("moe_expert_gemm: grouped GEMM (cublasGemmGroupedBatchedEx), %s", names[i]);
            return;
        }
        if (first) { /* refused at the first try: do not ask again */
            im->moe_grouped[i] = 0;
            log_info("moe_expert_gemm: cublasGemmGroupedBatchedEx says %s for %s; one GEMM per expert",
                     cublasGetStatusName(st), names[i]);
        } else if (st != CUBLAS_STATUS_NOT_SUPPORTED && st != CUBLAS_STATUS_INVALID_VALUE) {
            CUBLAS_CHECK(st); /* a failure after it worked: not a refusal */
        }
    }
    const float alpha = 1.0f;
    for (int g = 0; g < G; g++)
        CUBLAS_CHECK(cublasGemmEx(im->blas, p[g].ta, p[g].tb, p[g].m, p[g].n, p[g].k, &alpha, p[g].A, pr->ab,
                                  p[g].lda, p[g].B, pr->ab, p[g].ldb, &beta, p[g].C, CUDA_R_32F, p[g].ldc, ct,
                                  CUBLAS_GEMM_DEFAULT));
}

static void offsets_check(const int *offsets, int E, int Nc, int Kc, const char *op) {
    CHECK(offsets != NULL && E > 0 && Nc > 0 && Kc > 0, "%s sizes E=%d Nc=%d Kc=%d (offsets %p)", op, E, Nc, Kc,
          (const void *)offsets);
    CHECK(E <= CUDA_MAX_EXPERTS, "%s: E=%d experts above the CUDA capacity %d", op, E, CUDA_MAX_EXPERTS);
    CHECK(offsets[0] == 0, "%s: offsets[0]=%d must be 0", op, offsets[0]);
    for (int e = 0; e < E; e++)
        CHECK(offsets[e + 1] >= offsets[e], "%s: offsets[%d]=%d > offsets[%d]=%d", op, e, offsets[e], e + 1,
              offsets[e + 1]);
}

/* BF16 where the grouped call was refused: one row-major gemm_cuda_prec per expert with rows */
static int bf16_per_expert(KernelCtx *ctx, const MoePrec *pr) {
    CudaImpl *im = cuda_impl(ctx);
    return pr->ab == CUDA_R_16BF && (im->moe_grouped[1] == 0 || im->moe_force_loop);
}

/* Y(NK,Nc)[rows of e] = X(NK,Kc)[rows of e] op(W_e) + beta Y; W (E,Nc,Kc) if transW else (E,Kc,Nc) */
void moe_expert_gemm_cuda(KernelCtx *ctx, float *Y, const float *X, const float *W, const int *offsets, int E, int Nc,
                          int Kc, int transW, float beta) {
    offsets_check(offsets, E, Nc, Kc, "moe_expert_gemm");
    CHECK(Y != NULL && X != NULL && W != NULL, "moe_expert_gemm with a NULL matrix");
    const MoePrec pr = moe_prec(ctx);
    if (bf16_per_expert(ctx, &pr)) {
        for (int e = 0; e < E; e++) {
            const int r0 = offsets[e], rows = offsets[e + 1] - r0;
            if (rows == 0) continue;
            gemm_cuda_prec(ctx, GEMM_BF16, 0, transW, rows, Nc, Kc, 1.0f, X + (size_t)r0 * Kc, Kc,
                           W + (size_t)e * Nc * Kc, transW ? Kc : Nc, beta, Y + (size_t)r0 * Nc, Nc);
        }
        return;
    }
    const void *Xo = X, *Wo = W;
    if (pr.ab == CUDA_R_16BF && offsets[E] > 0) {
        Xo = cuda_bf16_operand(cuda_impl(ctx), X, (size_t)offsets[E] * Kc, 0);
        Wo = cuda_bf16_operand(cuda_impl(ctx), W, (size_t)E * Nc * Kc, 1);
    }
    MoeProblem p[CUDA_MAX_EXPERTS];
    int G = 0;
    for (int e = 0; e < E; e++) {
        int r0 = offsets[e], rows = offsets[e + 1] - r0;
        if (rows == 0) continue;
        MoeProblem *q = &p[G++];
        q->ta = transW ? CUBLAS_OP_T : CUBLAS_OP_N, q->tb = CUBLAS_OP_N;
        q->m = Nc, q->n = rows, q->k = Kc;
        q->lda = transW ? Kc : Nc, q->ldb = Kc, q->ldc = Nc;
        q->A = elem_at(Wo, (size_t)e * Nc * Kc, &pr), q->B = elem_at(Xo, (size_t)r0 * Kc, &pr);
        q->C = Y + (size_t)r0 * Nc;
    }
    run_problems(ctx, p, G, beta, &pr);
}

/* dW(E,Nc,Kc)_e += G(NK,Nc)[rows of e]^T X(NK,Kc)[rows of e] */
void moe_expert_gemm_dw_cuda(KernelCtx *ctx, float *dW, const float *G, const float *X, const int *offsets, int E,
                             int Nc, int Kc) {
    offsets_check(offsets, E, Nc, Kc, "moe_expert_gemm_dw");
    CHECK(dW != NULL && G != NULL && X != NULL, "moe_expert_gemm_dw with a NULL matrix");
    const MoePrec pr = moe_prec(ctx);
    if (bf16_per_expert(ctx, &pr)) {
        for (int e = 0; e < E; e++) {
            const int r0 = offsets[e], rows = offsets[e + 1] - r0;
            if (rows == 0) continue;
            gemm_cuda_prec(ctx, GEMM_BF16, 1, 0, Nc, Kc, rows, 1.0f, G + (size_t)r0 * Nc, Nc, X + (size_t)r0 * Kc, Kc,
                           1.0f, dW + (size_t)e * Nc * Kc, Kc);
        }
        return;
    }
    const void *Xo = X, *Go = G;
    if (pr.ab == CUDA_R_16BF && offsets[E] > 0) {
        Xo = cuda_bf16_operand(cuda_impl(ctx), X, (size_t)offsets[E] * Kc, 0);
        Go = cuda_bf16_operand(cuda_impl(ctx), G, (size_t)offsets[E] * Nc, 1);
    }
    MoeProblem p[CUDA_MAX_EXPERTS];
    int n = 0;
    for (int e = 0; e < E; e++) {
        int r0 = offsets[e], rows = offsets[e + 1] - r0;
        if (rows == 0) continue;
        MoeProblem *q = &p[n++];
        q->ta = CUBLAS_OP_N, q->tb = CUBLAS_OP_T;
        q->m = Kc, q->n = Nc, q->k = rows;
        q->lda = Kc, q->ldb = Nc, q->ldc = Kc;
        q->A = elem_at(Xo, (size_t)r0 * Kc, &pr), q->B = elem_at(Go, (size_t)r0 * Nc, &pr);
        q->C = dW + (size_t)e * Nc * Kc;
    }
    run_problems(ctx, p, n, 1.0f, &pr);
}
