/* kernels/cuda/lm_head.cu: the FP32 LM head with a chunked, online log-sum-exp (never N x V),
 * the algorithm of kernels/cpu/lm_head.c on the GPU.
 *
 * Rows of h(N,C) are taken in blocks of up to LM_ROW_BLOCK; for each block the vocabulary W(V,C)
 * is walked in chunks of up to LM_VOCAB_CHUNK rows. A chunk's logits (rb, vc) = h_blk W_chunk^T
 * come from one FP32 GEMM (gemm_cuda_prec pinned to FP32 whatever ctx->gemm_bf16 says) into the
 * workspace (rounded to BF16 when ctx->head_bf16, backend.h); a fold kernel (one thread block per
 * row) updates the row's running max m and running sum s = sum exp(logit - m) (float64, rescaled
 * when m grows), picks up the target's logit when it falls in the chunk, and copies the chunk to
 * logits_out (device memory) when asked. A last kernel writes lse = m + log(s) and
 * logp = logit[target] - lse (0 where target < 0).
 *
 * The backward recomputes each chunk's logits and turns them, in place, into
 *   dlogits = (dlse - g) * softmax + g * onehot(target),  g = dlogp (0 where target < 0),
 * with the saved lse, then accumulates dh_blk += dlogits W_chunk and dW_chunk += dlogits^T h_blk
 * (two more SGEMMs with beta = 1). Unlike the CPU it does not skip row blocks without gradient
 * (that would need dlogp on the host); the result is the same.
 *
 * Workspace (lm_head_ws_bytes): double sum[rb] | float max[rb] | float tgt[rb] | float logits[rb*vc]
 * with rb = min(N, LM_ROW_BLOCK), vc = min(V, LM_VOCAB_CHUNK). targets are device memory and
 * checked on the device (< V).
 */
#include <math.h>

#include "kernels/cuda/cuda_ops.h"

#define LM_ROW_BLOCK 512
#define LM_VOCAB_CHUNK 4096

typedef struct {
    double *sum;   /* (rb) running sum of exp(logit - max) */
    float *max;    /* (rb) running max */
    float *tgt;    /* (rb) logit of the target */
    float *logits; /* (rb, vc) one chunk's logits */
} LmWs;

static int imin(int a, int b) { return a < b ? a : b; }

size_t lm_head_ws_bytes_cuda(int N, int C, int V) {
    size_t rb = (size_t)imin(N, LM_ROW_BLOCK), vc = (size_t)imin(V, LM_VOCAB_CHUNK);
    return rb * (sizeof(double) + 2 * sizeof(float)) + rb * vc * sizeof(float);
}

static LmWs lm_ws(KernelCtx *ctx, int N, int C, int V) {
    size_t need = lm_head_ws_bytes_cuda(N, C, V);
    CHECK(ctx != NULL && ctx->ws != NULL && ctx->ws_bytes >= need,
          "lm_head needs %zu workspace bytes (N=%d C=%d V=%d), context has %zu", need, N, C, V,
          ctx ? ctx->ws_bytes : 0);
    size_t rb = (size_t)imin(N, LM_ROW_BLOCK);
    LmWs w;
    w.sum = (double *)ctx->ws;
    w.max = (float *)(w.sum + rb);
    w.tgt = w.max + rb;
    w.logits = w.tgt + rb;
    return w;
}

/* ctx->head_bf16: round n logits to BF16 in place (nearest even; NaN/Inf kept), as the CPU does */
static __global__ void lm_round_bf16_kernel(float *l, size_t n) {
    GRID_STRIDE_LOOP(i, n) {
        unsigned u = __float_as_uint(l[i]);
        if ((u & 0x7f800000u) != 0x7f800000u) u = (u + 0x7fffu + ((u >> 16) & 1u)) & 0xffff0000u;
        l[i] = __uint_as_float(u);
    }
}

static __global__ void lm_init_kernel(LmWs w, int rb) {
    int r = blockIdx.x * blockDim.x + threadIdx.x;
    if (r >= rb) return;
    w.sum[r] = 0.0;
    w.max[r] = -INFINITY;
    w.tgt[r] = 0.0f;
}

/* grid (rb): fold chunk [v0, v0+vc) of row r0+r into the running state */
static __global__ void lm_fold_kernel(LmWs w, const int *targets, float *logits_out, int r0, int v0, int vc, int V) {
    __shared__ float shf[32];
    __shared__ double shd[32];
    const int r = blockIdx.x;
    const float *l = w.logits + (size_t)r * vc;
    const float m_old = w.max[r];
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
        double sum = w.sum[r];
        if (cm > m_old) sum *= exp((double)m_old - (double)cm);
        w.sum[r] = sum + s;
        w.max[r] = m_new;
        int t = targets[r0 + r];
        if (t >= v0 && t < v0 + vc) w.tgt[r] = l[t - v0];
    }
}

static __global__ void lm_finish_kernel(float *logp, float *lse, LmWs w, const int *targets, int r0, int rb, int V) {
    int r = blockIdx.x * blockDim.x + threadIdx.x;
    if (r >= rb) return;
    int t = targets[r0 + r];
    DEV_CHECK(t < V, "target %d at row %d >= V=%d", t, r0 + r, V);
    float l = w.max[r] + (float)log(w.sum[r]);
    lse[r0 + r] = l;
    logp[r0 + r] = t >= 0 ? w.tgt[r] - l : 0.0f;
}

/* grid (rb): logits chunk -> dlogits chunk in place */
static __global__ void lm_dlogits_kernel(float *logits, const float *dlogp, const float *dlse, const int *targets,
                                         const float *lse, int r0, int v0, int vc, int V) {
    const int r = blockIdx.x, n = r0 + r, t = targets[n];
    DEV_CHECK(t < V, "target %d at row %d >= V=%d", t, n, V);
    const float g = t >= 0 ? dlogp[n] : 0.0f;
    const float coef = (dlse ? dlse[n] : 0.0f) - g, l = lse[n];
    float *row = logits + (size_t)r * vc;
    for (int v = threadIdx.x; v < vc; v += blockDim.x) {
        float d = coef * expf(row[v] - l);
        if (v0 + v == t) d += g;
        row[v] = d;
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
    for (int r0 = 0; r0 < N; r0 += LM_ROW_BLOCK) {
        int rb = imin(LM_ROW_BLOCK, N - r0);
        unsigned rgrid = (unsigned)((rb + CUDA_THREADS - 1) / CUDA_THREADS);
        lm_init_kernel<<<rgrid, CUDA_THREADS, 0, st>>>(w, rb);
        CUDA_LAUNCH_CHECK();
        for (int v0 = 0; v0 < V; v0 += LM_VOCAB_CHUNK) {
            int vc = imin(LM_VOCAB_CHUNK, V - v0);
            gemm_cuda_prec(ctx, 0, 0, 1, rb, vc, C, 1.0f, h + (size_t)r0 * C, C, W + (size_t)v0 * C, C, 0.0f, w.logits, vc);
            if (ctx->head_bf16) LAUNCH_1D(ctx, lm_round_bf16_kernel, (size_t)rb * vc, w.logits, (size_t)rb * vc);
            lm_fold_kernel<<<rb, CUDA_THREADS, 0, st>>>(w, targets, logits_out, r0, v0, vc, V);
            CUDA_LAUNCH_CHECK();
        }
        lm_finish_kernel<<<rgrid, CUDA_THREADS, 0, st>>>(logp, lse, w, targets, r0, rb, V);
        CUDA_LAUNCH_CHECK();
    }
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
    for (int r0 = 0; r0 < N; r0 += LM_ROW_BLOCK) {
        int rb = imin(LM_ROW_BLOCK, N - r0);
        const float *hb = h + (size_t)r0 * C; /* (rb, C) */
        for (int v0 = 0; v0 < V; v0 += LM_VOCAB_CHUNK) {
            int vc = imin(LM_VOCAB_CHUNK, V - v0);
            const float *Wc = W + (size_t)v0 * C; /* (vc, C) */
            gemm_cuda_prec(ctx, 0, 0, 1, rb, vc, C, 1.0f, hb, C, Wc, C, 0.0f, w.logits, vc);
            if (ctx->head_bf16) LAUNCH_1D(ctx, lm_round_bf16_kernel, (size_t)rb * vc, w.logits, (size_t)rb * vc);
            lm_dlogits_kernel<<<rb, CUDA_THREADS, 0, st>>>(w.logits, dlogp, dlse, targets, lse, r0, v0, vc, V);
            CUDA_LAUNCH_CHECK();
            gemm_cuda_prec(ctx, 0, 0, 0, rb, C, vc, 1.0f, w.logits, vc, Wc, C, 1.0f, dh + (size_t)r0 * C, C);
            gemm_cuda_prec(ctx, 0, 1, 0, vc, C, rb, 1.0f, w.logits, vc, hb, C, 1.0f, dW + (size_t)v0 * C, C);
        }
    }
}
