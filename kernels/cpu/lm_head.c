/* kernels/cpu/lm_head.c: the FP32 LM head with a chunked, online log-sum-exp (never N x V).
 *
 * Rows of h(N,C) are taken in blocks of up to LM_ROW_BLOCK; for each block the vocabulary W(V,C)
 * is walked in chunks of up to LM_VOCAB_CHUNK rows. A chunk's logits (rb, vc) = h_blk W_chunk^T
 * come from one sgemm into the workspace; each row keeps a running max m and a running sum
 * s = sum exp(logit - m) (float64), rescaled when m grows, plus its target's logit when the
 * target falls in the chunk. Finally lse = m + log(s), logp = logit[target] - lse.
 *
 * The backward recomputes each chunk's logits and turns them, in place, into
 *   dlogits = (dlse - g) * softmax + g * onehot(target),  g = dlogp (0 where target < 0),
 * using the saved lse, then accumulates dh += dlogits W_chunk and dW_chunk += dlogits^T h_blk.
 * Row blocks whose g and dlse are all zero are skipped.
 *
 * ctx->head_bf16 rounds each chunk's logits to BF16 right after the sgemm (backend.h).
 *
 * Workspace (lm_head_ws_bytes): double sum[rb] | float max[rb] | float tgt[rb] | float logits[rb*vc]
 * with rb = min(N, LM_ROW_BLOCK), vc = min(V, LM_VOCAB_CHUNK).
 */
#include <math.h>
#include <stdint.h>
#include <string.h>

#include "core/error.h"
#include "kernels/cpu/cpu_ops.h"

#define LM_ROW_BLOCK 64
#define LM_VOCAB_CHUNK 4096

typedef struct {
    double *sum;   /* (rb) running sum of exp(logit - max) */
    float *max;    /* (rb) running max */
    float *tgt;    /* (rb) logit of the target */
    float *logits; /* (rb, vc) one chunk's logits */
} LmWs;

static int imin(int a, int b) { return a < b ? a : b; }

/* ctx->head_bf16: round every logit of a chunk to BF16 (nearest even; NaN/Inf kept). */
static void lm_round_bf16(float *l, size_t n) {
    for (size_t i = 0; i < n; i++) {
        uint32_t u;
        memcpy(&u, &l[i], 4);
        if ((u & 0x7f800000u) != 0x7f800000u) u = (u + 0x7fffu + ((u >> 16) & 1u)) & 0xffff0000u;
        memcpy(&l[i], &u, 4);
    }
}

size_t lm_head_ws_bytes_cpu(int N, int C, int V) {
    size_t rb = (size_t)imin(N, LM_ROW_BLOCK), vc = (size_t)imin(V, LM_VOCAB_CHUNK);
    return rb * (sizeof(double) + 2 * sizeof(float)) + rb * vc * sizeof(float);
}

static LmWs lm_ws(KernelCtx *ctx, int N, int C, int V) {
    size_t need = lm_head_ws_bytes_cpu(N, C, V);
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

/* Fold one chunk of logits (rb, vc), vocabulary ids [v0, v0+vc), into the running row state. */
static void lm_fold_chunk(LmWs *w, const int *targets, float *logits_out, int r0, int rb, int v0, int vc, int V) {
    for (int r = 0; r < rb; r++) {
        const float *l = w->logits + (size_t)r * vc;
        float cm = l[0];
        for (int v = 1; v < vc; v++) cm = l[v] > cm ? l[v] : cm;
        if (cm > w->max[r]) {
            w->sum[r] *= exp((double)w->max[r] - (double)cm);
            w->max[r] = cm;
        }
        double s = 0.0;
        for (int v = 0; v < vc; v++) s += expf(l[v] - w->max[r]);
        w->sum[r] += s;
        int t = targets[r0 + r];
        if (t >= v0 && t < v0 + vc) w->tgt[r] = l[t - v0];
        if (logits_out) memcpy(logits_out + (size_t)(r0 + r) * V + v0, l, (size_t)vc * sizeof(float));
    }
}

/* logp(N), lse(N), optional logits_out(N,V) from h(N,C), W(V,C), targets(N) */
void lm_head_forward_cpu(KernelCtx *ctx, float *logp, float *lse, float *logits_out, const float *h, const float *W,
                         const int *targets, int N, int C, int V) {
    CHECK(N > 0 && C > 0 && V > 0, "lm_head sizes N=%d C=%d V=%d must be positive", N, C, V);
    CHECK(logp != NULL && lse != NULL && h != NULL && W != NULL && targets != NULL,
          "lm_head_forward with a NULL pointer");
    LmWs w = lm_ws(ctx, N, C, V);
    for (int n = 0; n < N; n++) CHECK(targets[n] < V, "target %d at row %d >= V=%d", targets[n], n, V);
    for (int r0 = 0; r0 < N; r0 += LM_ROW_BLOCK) {
        int rb = imin(LM_ROW_BLOCK, N - r0);
        for (int r = 0; r < rb; r++) {
            w.sum[r] = 0.0;
            w.max[r] = -INFINITY;
            w.tgt[r] = 0.0f;
        }
        for (int v0 = 0; v0 < V; v0 += LM_VOCAB_CHUNK) {
            int vc = imin(LM_VOCAB_CHUNK, V - v0);
            gemm_cpu(ctx, 0, 1, rb, vc, C, 1.0f, h + (size_t)r0 * C, C, W + (size_t)v0 * C, C, 0.0f, w.logits, vc);
            if (ctx->head_bf16) lm_round_bf16(w.logits, (size_t)rb * vc);
            lm_fold_chunk(&w, targets, logits_out, r0, rb, v0, vc, V);
        }
        for (int r = 0; r < rb; r++) {
            float l = w.max[r] + (float)log(w.sum[r]);
            lse[r0 + r] = l;
            logp[r0 + r] = targets[r0 + r] >= 0 ? w.tgt[r] - l : 0.0f;
        }
    }
}

/* In place: logits chunk (rb, vc) -> dlogits chunk; returns nothing. */
static void lm_dlogits_chunk(float *l, const float *dlogp, const float *dlse, const int *targets, const float *lse,
                             int r0, int rb, int v0, int vc) {
    for (int r = 0; r < rb; r++) {
        int n = r0 + r, t = targets[n];
        float g = t >= 0 ? dlogp[n] : 0.0f;
        float coef = (dlse ? dlse[n] : 0.0f) - g;
        float *row = l + (size_t)r * vc;
        for (int v = 0; v < vc; v++) row[v] = coef * expf(row[v] - lse[n]);
        if (t >= v0 && t < v0 + vc) row[t - v0] += g;
    }
}

static int lm_block_has_grad(const float *dlogp, const float *dlse, const int *targets, int r0, int rb) {
    for (int n = r0; n < r0 + rb; n++)
        if ((targets[n] >= 0 && dlogp[n] != 0.0f) || (dlse && dlse[n] != 0.0f)) return 1;
    return 0;
}

/* dh(N,C) += dlogits W; dW(V,C) += dlogits^T h, dlogits from dlogp(N), dlse(N) or NULL, saved lse(N) */
void lm_head_backward_cpu(KernelCtx *ctx, float *dh, float *dW, const float *dlogp, const float *dlse, const float *h,
                          const float *W, const int *targets, const float *lse, int N, int C, int V) {
    CHECK(N > 0 && C > 0 && V > 0, "lm_head sizes N=%d C=%d V=%d must be positive", N, C, V);
    CHECK(dh != NULL && dW != NULL && dlogp != NULL && h != NULL && W != NULL && targets != NULL && lse != NULL,
          "lm_head_backward with a NULL pointer");
    LmWs w = lm_ws(ctx, N, C, V);
    for (int n = 0; n < N; n++) CHECK(targets[n] < V, "target %d at row %d >= V=%d", targets[n], n, V);
    for (int r0 = 0; r0 < N; r0 += LM_ROW_BLOCK) {
        int rb = imin(LM_ROW_BLOCK, N - r0);
        if (!lm_block_has_grad(dlogp, dlse, targets, r0, rb)) continue;
        const float *hb = h + (size_t)r0 * C; /* (rb, C) */
        for (int v0 = 0; v0 < V; v0 += LM_VOCAB_CHUNK) {
            int vc = imin(LM_VOCAB_CHUNK, V - v0);
            const float *Wc = W + (size_t)v0 * C; /* (vc, C) */
            gemm_cpu(ctx, 0, 1, rb, vc, C, 1.0f, hb, C, Wc, C, 0.0f, w.logits, vc);
            if (ctx->head_bf16) lm_round_bf16(w.logits, (size_t)rb * vc);
            lm_dlogits_chunk(w.logits, dlogp, dlse, targets, lse, r0, rb, v0, vc);
            gemm_cpu(ctx, 0, 0, rb, C, vc, 1.0f, w.logits, vc, Wc, C, 1.0f, dh + (size_t)r0 * C, C);
            gemm_cpu(ctx, 1, 0, vc, C, rb, 1.0f, w.logits, vc, hb, C, 1.0f, dW + (size_t)v0 * C, C);
        }
    }
}
