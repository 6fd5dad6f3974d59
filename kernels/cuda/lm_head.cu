/* kernels/cuda/lm_head.cu: the FP32 LM head with a chunked, online log-sum-exp (never N x V),
 * the algorithm of kernels/cpu/lm_head.c on the GPU.
 *
 * The vocabulary W(V,C) is walked in chunks of up to LM_VOCAB_CHUNK rows (outer loop) and the rows
 * of h(N,C) in blocks of up to LM_ROW_BLOCK (inner loop). A block's chunk of logits (rb, vc) =
 * h_blk W_chunk^T goes into the workspace (rounded to BF16 when ctx->head_bf16, backend.h); a fold
 * kernel (one thread block per row) updates the row's running max m and running sum
 * s = sum exp(logit - m) (float64, rescaled when m grows), picks up the target's logit when it falls
 * in the chunk, and copies the chunk to logits_out (device memory) when asked. A last kernel writes
 * lse = m + log(s) and logp = logit[target] - lse (0 where target < 0).
 *
 * The backward recomputes each chunk's logits and turns them, in place, into
 *   dlogits = (dlse - g) * softmax + g * onehot(target),  g = dlogp (0 where target < 0),
 * with the saved lse, then accumulates dh_blk += dlogits W_chunk and dW_chunk += dlogits^T h_blk
 * (beta = 1). Unlike the CPU it does not skip row blocks without gradient (that would need dlogp on
 * the host); the result is the same.
 *
 * Precision: FP32 products, by default as 3xTF32 on the tensor cores: every operand x is split into
 * hi = x rounded to TF32 (10 mantissa bits, exact in TF32) and lo = x - hi (exact in FP32), and
 * A B = A_lo B_hi + A_hi B_lo + A_hi B_hi in three TF32 GEMMs with FP32 accumulation, small terms
 * first; the dropped A_lo B_lo and lo's own rounding to TF32 are ~2^-22 relative, the order of
 * FP32's rounding (2^-24) summed over C. That is 3 tensor-core GEMMs instead of one SGEMM on the
 * CUDA cores (51 TFLOP/s on an H100). Below LM_TF32_MIN_ROWS rows (decode steps) the products are
 * bound by reading W, which the splits would triple, so they stay one SGEMM each; so do all of them
 * with CISPO_CUDA_HEAD_SGEMM=1 (read at every call: the reference the tests pin).
 *
 * Workspace (lm_head_ws_bytes), with rb = min(N, LM_ROW_BLOCK), vc = min(V, LM_VOCAB_CHUNK):
 *   double sum[N] | float max[N] | float tgt[N] | float logits[rb*vc] | float lo[rb*vc]
 *   | float w_hi[vc*C] | float w_lo[vc*C] | float h_hi[rb*C] | float h_lo[rb*C]
 * targets are device memory and checked on the device (< V).
 */
#include <math.h>
#include <stdlib.h>

#include "kernels/cuda/cuda_ops.h"

#define LM_ROW_BLOCK 2048
#define LM_VOCAB_CHUNK 8192
#define LM_TF32_MIN_ROWS 256

typedef struct {
    double *sum;   /* (N) running sum of exp(logit - max) */
    float *max;    /* (N) running max */
    float *tgt;    /* (N) logit of the target */
    float *logits; /* (rb, vc) one chunk's logits, then dlogits (hi part in 3xTF32) */
    float *lo;     /* (rb, vc) lo part of dlogits */
    float *w_hi, *w_lo; /* (vc, C) split W chunk */
    float *h_hi, *h_lo; /* (rb, C) split h block */
    int exact;     /* CISPO_CUDA_HEAD_SGEMM=1: one FP32 SGEMM per product, no splits */
} LmWs;

static int imin(int a, int b) { return a < b ? a : b; }

static size_t align_up(size_t b) { return (b + 255) & ~(size_t)255; }

size_t lm_head_ws_bytes_cuda(int N, int C, int V) {
    size_t rb = (size_t)imin(N, LM_ROW_BLOCK), vc = (size_t)imin(V, LM_VOCAB_CHUNK);
    return align_up((size_t)N * sizeof(double)) + 2 * align_up((size_t)N * sizeof(float)) +
           2 * align_up(rb * vc * sizeof(float)) + 2 * align_up(vc * (size_t)C * sizeof(float)) +
           2 * align_up(rb * (size_t)C * sizeof(float));
}

static LmWs lm_ws(KernelCtx *ctx, int N, int C, int V) {
    size_t need = lm_head_ws_bytes_cuda(N, C, V);
    CHECK(ctx != NULL && ctx->ws != NULL && ctx->ws_bytes >= need,
          "lm_head needs %zu workspace bytes (N=%d C=%d V=%d), context has %zu", need, N, C, V,
          ctx ? ctx->ws_bytes : 0);
    size_t rb = (size_t)imin(N, LM_ROW_BLOCK), vc = (size_t)imin(V, LM_VOCAB_CHUNK);
    char *p = (char *)ctx->ws;
    LmWs w;
    w.sum = (double *)p, p += align_up((size_t)N * sizeof(double));
    w.max = (float *)p, p += align_up((size_t)N * sizeof(float));
    w.tgt = (float *)p, p += align_up((size_t)N * sizeof(float));
    w.logits = (float *)p, p += align_up(rb * vc * sizeof(float));
    w.lo = (float *)p, p += align_up(rb * vc * sizeof(float));
    w.w_hi = (float *)p, p += align_up(vc * (size_t)C * sizeof(float));
    w.w_lo = (float *)p, p += align_up(vc * (size_t)C * sizeof(float));
    w.h_hi = (float *)p, p += align_up(rb * (size_t)C * sizeof(float));
    w.h_lo = (float *)p;
    const char *e = getenv("CISPO_CUDA_HEAD_SGEMM");
    w.exact = (e != NULL && e[0] == '1') || N < LM_TF32_MIN_ROWS;
    return w;
}

/* hi = x rounded to TF32 (nearest, ties away; the low 13 bits cleared), lo = x - hi (exact) */
static __device__ __forceinline__ float tf32_hi(float x) {
    unsigned u = __float_as_uint(x);
    if ((u & 0x7f800000u) == 0x7f800000u) return x; /* Inf / NaN: lo becomes NaN or 0, as x */
    return __uint_as_float((u + 0x1000u) & 0xffffe000u);
}

static __global__ void tf32_split_kernel(float *hi, float *lo, const float *x, size_t n) {
    GRID_STRIDE_LOOP(i, n) {
        float v = x[i], h = tf32_hi(v);
        hi[i] = h;
        lo[i] = v - h;
    }
}

/* Split n contiguous floats of x into hi/lo (nothing in exact mode) */
static void lm_split(KernelCtx *ctx, const LmWs *w, float *hi, float *lo, const float *x, size_t n) {
    if (!w->exact) LAUNCH_1D(ctx, tf32_split_kernel, n, hi, lo, x, n);
}

/* C(M,N) = op(A) op(B) + beta C in FP32 precision: one SGEMM (exact) or 3xTF32 from the split parts.
 * In exact mode A_hi/B_hi are the unsplit operands and A_lo/B_lo are ignored. */
static void lm_gemm(KernelCtx *ctx, const LmWs *w, int ta, int tb, int M, int N, int K, const float *A_hi,
                    const float *A_lo, int lda, const float *B_hi, const float *B_lo, int ldb, float beta, float *C,
                    int ldc) {
    if (w->exact) {
        gemm_cuda_prec(ctx, GEMM_FP32, ta, tb, M, N, K, 1.0f, A_hi, lda, B_hi, ldb, beta, C, ldc);
        return;
    }
    gemm_cuda_prec(ctx, GEMM_TF32, ta, tb, M, N, K, 1.0f, A_lo, lda, B_hi, ldb, beta, C, ldc);
    gemm_cuda_prec(ctx, GEMM_TF32, ta, tb, M, N, K, 1.0f, A_hi, lda, B_lo, ldb, 1.0f, C, ldc);
    gemm_cuda_prec(ctx, GEMM_TF32, ta, tb, M, N, K, 1.0f, A_hi, lda, B_hi, ldb, 1.0f, C, ldc);
}

/* ctx->head_bf16: round n logits to BF16 in place (nearest even; NaN/Inf kept), as the CPU does */
static __global__ void lm_round_bf16_kernel(float *l, size_t n) {
    GRID_STRIDE_LOOP(i, n) {
        unsigned u = __float_as_uint(l[i]);
        if ((u & 0x7f800000u) != 0x7f800000u) u = (u + 0x7fffu + ((u >> 16) & 1u)) & 0xffff0000u;
        l[i] = __uint_as_float(u);
    }
}

static __global__ void lm_init_kernel(LmWs w, int N) {
    int r = blockIdx.x * blockDim.x + threadIdx.x;
    if (r >= N) return;
    w.sum[r] = 0.0;
    w.max[r] = -INFINITY;
    w.tgt[r] = 0.0f;
}

/* grid (rb): fold chunk [v0, v0+vc) of row r0+r into the running state */
static __global__ void lm_fold_kernel(LmWs w, const int *targets, float *logits_out, int r0, int v0, int vc, int V) {
    __shared__ float shf[32];
    __shared__ double shd[32];
    const int r = blockIdx.x, n = r0 + r;
    const float *l = w.logits + (size_t)r * vc;
    const float m_old = w.max[n];
    float cm = -INFINITY;
    for (int v = threadIdx.x; v < vc; v += blockDim.x) cm = fmaxf(cm, l[v]);
    cm = block_max(cm, shf);
    const float m_new = cm > m_old ? cm : m_old;
    double s = 0.0;
    for (int v = threadIdx.x; v < vc; v += blockDim.x) s += expf(l[v] - m_new);
    s = block_sum(s, shd);
    if (logits_out)
        for (int v = threadIdx.x; v < vc; v += blockDim.x) logits_out[(size_t)(r0 + r) * V + v0 + v] = l[v];
    if (threadIdx.x == 0) {
        double sum = w.sum[n];
        if (cm > m_old) sum *= exp((double)m_old - (double)cm);
        w.sum[n] = sum + s;
        w.max[n] = m_new;
        int t = targets[n];
        if (t >= v0 && t < v0 + vc) w.tgt[n] = l[t - v0];
    }
}

static __global__ void lm_finish_kernel(float *logp, float *lse, LmWs w, const int *targets, int N, int V) {
    int n = blockIdx.x * blockDim.x + threadIdx.x;
    if (n >= N) return;
    int t = targets[n];
    DEV_CHECK(t < V, "target %d at row %d >= V=%d", t, n, V);
    float l = w.max[n] + (float)log(w.sum[n]);
    lse[n] = l;
    logp[n] = t >= 0 ? w.tgt[n] - l : 0.0f;
}

/* grid (rb): logits chunk -> dlogits chunk in place; with lo != NULL split into hi (in place) + lo */
static __global__ void lm_dlogits_kernel(float *logits, float *lo, const float *dlogp, const float *dlse,
                                         const int *targets, const float *lse, int r0, int v0, int vc, int V) {
    const int r = blockIdx.x, n = r0 + r, t = targets[n];
    DEV_CHECK(t < V, "target %d at row %d >= V=%d", t, n, V);
    const float g = t >= 0 ? dlogp[n] : 0.0f;
    const float coef = (dlse ? dlse[n] : 0.0f) - g, l = lse[n];
    float *row = logits + (size_t)r * vc;
    for (int v = threadIdx.x; v < vc; v += blockDim.x) {
        float d = coef * expf(row[v] - l);
        if (v0 + v == t) d += g;
        if (lo) {
            float h = tf32_hi(d);
            row[v] = h;
            lo[(size_t)r * vc + v] = d - h;
        } else {
            row[v] = d;
        }
    }
}

static void lm_check_device_ptr(const void *p, const char *what) {
    cudaPointerAttributes attr;
    CUDA_CHECK(cudaPointerGetAttributes(&attr, p));
    CHECK(attr.type == cudaMemoryTypeDevice || attr.type == cudaMemoryTypeManaged,
          "lm_head: %s must be device memory on the CUDA backend (got memory type %d)", what, (int)attr.type);
}

/* logp(N), lse(N), optional logits_out(N,V) from h(N,C), W(V,C), targets(N); all device memory */
void lm_head_forward_cuda(KernelCtx *ctx, float *logp, float *lse, float *logits_out, const float *h, const float *W,
                          const int *targets, int N, int C, int V) {
    CHECK(N > 0 && C > 0 && V > 0, "lm_head sizes N=%d C=%d V=%d must be positive", N, C, V);
    CHECK(logp != NULL && lse != NULL && h != NULL && W != NULL && targets != NULL,
          "lm_head_forward with a NULL pointer");
    if (logits_out) lm_check_device_ptr(logits_out, "logits_out");
    LmWs w = lm_ws(ctx, N, C, V);
    cudaStream_t st = cuda_impl(ctx)->stream;
    const unsigned ngrid = (unsigned)((N + CUDA_THREADS - 1) / CUDA_THREADS);
    lm_init_kernel<<<ngrid, CUDA_THREADS, 0, st>>>(w, N);
    CUDA_LAUNCH_CHECK();
    for (int v0 = 0; v0 < V; v0 += LM_VOCAB_CHUNK) {
        const int vc = imin(LM_VOCAB_CHUNK, V - v0);
        const float *Wc = W + (size_t)v0 * C; /* (vc, C) */
        lm_split(ctx, &w, w.w_hi, w.w_lo, Wc, (size_t)vc * C);
        for (int r0 = 0; r0 < N; r0 += LM_ROW_BLOCK) {
            const int rb = imin(LM_ROW_BLOCK, N - r0);
            const float *hb = h + (size_t)r0 * C; /* (rb, C) */
            lm_split(ctx, &w, w.h_hi, w.h_lo, hb, (size_t)rb * C);
            lm_gemm(ctx, &w, 0, 1, rb, vc, C, w.exact ? hb : w.h_hi, w.h_lo, C, w.exact ? Wc : w.w_hi, w.w_lo, C,
                    0.0f, w.logits, vc);
            if (ctx->head_bf16) LAUNCH_1D(ctx, lm_round_bf16_kernel, (size_t)rb * vc, w.logits, (size_t)rb * vc);
            lm_fold_kernel<<<rb, CUDA_THREADS, 0, st>>>(w, targets, logits_out, r0, v0, vc, V);
            CUDA_LAUNCH_CHECK();
        }
    }
    lm_finish_kernel<<<ngrid, CUDA_THREADS, 0, st>>>(logp, lse, w, targets, N, V);
    CUDA_LAUNCH_CHECK();
}

/* dh(N,C) += dlogits W; dW(V,C) += dlogits^T h, dlogits from dlogp(N), dlse(N) or NULL, saved lse(N) */
void lm_head_backward_cuda(KernelCtx *ctx, float *dh, float *dW, const float *dlogp, const float *dlse,
                           const float *h, const float *W, const int *targets, const float *lse, int N, int C,
                           int V) {
    CHECK(N > 0 && C > 0 && V > 0, "lm_head sizes N=%d C=%d V=%d must be positive", N, C, V);
    CHECK(dh != NULL && dW != NULL && dlogp != NULL && h != NULL && W != NULL && targets != NULL && lse != NULL,
          "lm_head_backward with a NULL pointer");
    LmWs w = lm_ws(ctx, N, C, V);
    cudaStream_t st = cuda_impl(ctx)->stream;
    for (int v0 = 0; v0 < V; v0 += LM_VOCAB_CHUNK) {
        const int vc = imin(LM_VOCAB_CHUNK, V - v0);
        const float *Wc = W + (size_t)v0 * C; /* (vc, C) */
        const float *whi = w.exact ? Wc : w.w_hi;
        lm_split(ctx, &w, w.w_hi, w.w_lo, Wc, (size_t)vc * C);
        for (int r0 = 0; r0 < N; r0 += LM_ROW_BLOCK) {
            const int rb = imin(LM_ROW_BLOCK, N - r0);
            const float *hb = h + (size_t)r0 * C; /* (rb, C) */
            const float *hhi = w.exact ? hb : w.h_hi;
            lm_split(ctx, &w, w.h_hi, w.h_lo, hb, (size_t)rb * C);
            lm_gemm(ctx, &w, 0, 1, rb, vc, C, hhi, w.h_lo, C, whi, w.w_lo, C, 0.0f, w.logits, vc);
            if (ctx->head_bf16) LAUNCH_1D(ctx, lm_round_bf16_kernel, (size_t)rb * vc, w.logits, (size_t)rb * vc);
            lm_dlogits_kernel<<<rb, CUDA_THREADS, 0, st>>>(w.logits, w.exact ? NULL : w.lo, dlogp, dlse, targets, lse,
                                                           r0, v0, vc, V);
            CUDA_LAUNCH_CHECK();
            lm_gemm(ctx, &w, 0, 0, rb, C, vc, w.logits, w.lo, vc, whi, w.w_lo, C, 1.0f, dh + (size_t)r0 * C, C);
            lm_gemm(ctx, &w, 1, 0, vc, C, rb, w.logits, w.lo, vc, hhi, w.h_lo, C, 1.0f, dW + (size_t)v0 * C, C);
        }
    }
}
