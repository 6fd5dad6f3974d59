/* kernels/cpu/moe.c: mixture-of-experts routing and token shuffling.
 *
 * Route (per token): probs = softmax(logits) in FP32 (sum in float64); the K largest probs are
 * picked by K scans (strict '>' so ties go to the lower expert index; K is small); topk_w are
 * the picked probs divided by their sum. The backward chains the renormalisation
 *   dp_{i_k} = (dw_k - sum_j dw_j w_j) / S,   S = sum_j p_{i_j},
 * with the direct dprobs and the softmax Jacobian dlogits_e += p_e (g_e - sum_f p_f g_f), without
 * any scratch buffer (the top-k part of sum_f p_f g_f is sum_k p_{i_k} dp_{i_k}).
 *
 * Sort: a stable counting sort of slots s = n*K + k by expert, done in the offsets array itself:
 * expert e's count is kept at offsets[e+2], so after the prefix sum offsets[e+1] is e's start and
 * serves as its write cursor; after placement offsets[e+1] is e's end = start of e+1.
 *
 * pos, the inverse of sorted, is written alongside (the CUDA backend gathers through it).
 *
 * Permute gathers token rows into expert order; combine scatters expert outputs back, weighted,
 * walking j in increasing order (so each token's K terms are added in expert order; the CUDA
 * gathers reproduce that order). pos is not needed here.
 *
 * Expert GEMMs: one `gemm` per expert with rows, on the row block [offsets[e], offsets[e+1]).
 */
#include <math.h>
#include <string.h>

#include "core/error.h"
#include "kernels/cpu/cpu_ops.h"

/* probs(E) = softmax(logits(E)) */
static void softmax_row(float *probs, const float *logits, int E) {
    float mx = logits[0];
    for (int e = 1; e < E; e++) mx = logits[e] > mx ? logits[e] : mx;
    double sum = 0.0;
    for (int e = 0; e < E; e++) {
        probs[e] = expf(logits[e] - mx);
        sum += probs[e];
    }
    float inv = (float)(1.0 / sum);
    for (int e = 0; e < E; e++) probs[e] *= inv;
}

static int is_chosen(const int *idx, int k, int e) {
    for (int j = 0; j < k; j++)
        if (idx[j] == e) return 1;
    return 0;
}

/* probs(N,E), topk_idx(N,K), topk_w(N,K) from logits(N,E) */
void moe_route_forward_cpu(KernelCtx *ctx, float *probs, int *topk_idx, float *topk_w, const float *logits, int N,
                           int E, int K) {
    CHECK(N > 0 && E > 0 && K > 0 && K <= E, "moe_route sizes N=%d E=%d K=%d (need 0 < K <= E)", N, E, K);
    CHECK(probs != NULL && topk_idx != NULL && topk_w != NULL && logits != NULL, "moe_route with a NULL pointer");
    for (int n = 0; n < N; n++) {
        float *p = probs + (size_t)n * E;
        int *idx = topk_idx + (size_t)n * K;
        float *w = topk_w + (size_t)n * K;
        softmax_row(p, logits + (size_t)n * E, E);
        double sel = 0.0;
        for (int k = 0; k < K; k++) {
            int best = -1;
            for (int e = 0; e < E; e++)
                if (!is_chosen(idx, k, e) && (best < 0 || p[e] > p[best])) best = e;
            idx[k] = best;
            sel += p[best];
        }
        for (int k = 0; k < K; k++) w[k] = (float)(p[idx[k]] / sel);
    }
}

/* dlogits(N,E) += J^T (dprobs(N,E) or 0 + d topk_w(N,K)) */
void moe_route_backward_cpu(KernelCtx *ctx, float *dlogits, const float *dtopk_w, const float *dprobs,
                            const float *probs, const int *topk_idx, const float *topk_w, int N, int E, int K) {
    CHECK(N > 0 && E > 0 && K > 0 && K <= E, "moe_route sizes N=%d E=%d K=%d (need 0 < K <= E)", N, E, K);
    CHECK(dlogits != NULL && dtopk_w != NULL && probs != NULL && topk_idx != NULL && topk_w != NULL,
          "moe_route_backward with a NULL pointer");
    for (int n = 0; n < N; n++) {
        const float *p = probs + (size_t)n * E;
        const int *idx = topk_idx + (size_t)n * K;
        const float *w = topk_w + (size_t)n * K;
        const float *dw = dtopk_w + (size_t)n * K;
        const float *dp = dprobs ? dprobs + (size_t)n * E : NULL;
        double S = 0.0, wdw = 0.0;
        for (int k = 0; k < K; k++) {
            S += p[idx[k]];
            wdw += (double)w[k] * dw[k];
        }
        double pg = 0.0; /* sum_f p_f g_f */
        if (dp)
            for (int e = 0; e < E; e++) pg += (double)p[e] * dp[e];
        for (int k = 0; k < K; k++) pg += (double)p[idx[k]] * ((dw[k] - wdw) / S);
        float *dl = dlogits + (size_t)n * E;
        for (int e = 0; e < E; e++) {
            double g = dp ? dp[e] : 0.0;
            for (int k = 0; k < K; k++)
                if (idx[k] == e) g += (dw[k] - wdw) / S;
            dl[e] += (float)(p[e] * (g - pg));
        }
    }
}

/* sorted(N*K) slot ids grouped by expert, pos(N*K) its inverse, offsets(E+1) */
void moe_sort_cpu(KernelCtx *ctx, int *sorted, int *pos, int *offsets, const int *topk_idx, int N, int K, int E) {
    CHECK(N > 0 && K > 0 && E > 0, "moe_sort sizes N=%d K=%d E=%d must be positive", N, K, E);
    CHECK(sorted != NULL && pos != NULL && offsets != NULL && topk_idx != NULL, "moe_sort with a NULL pointer");
    int NK = N * K;
    memset(offsets, 0, (size_t)(E + 1) * sizeof(int));
    for (int s = 0; s < NK; s++) {
        int e = topk_idx[s];
        CHECK(e >= 0 && e < E, "topk_idx[%d]=%d outside [0, %d)", s, e, E);
        if (e + 2 <= E) offsets[e + 2]++;
    }
    for (int e = 1; e <= E; e++) offsets[e] += offsets[e - 1];
    for (int s = 0; s < NK; s++) {
        int j = offsets[topk_idx[s] + 1]++;
        sorted[j] = s;
        pos[s] = j;
    }
    CHECK(offsets[E] == NK, "moe_sort placed %d of %d slots", offsets[E], NK);
}

/* xp(NK,C)[j] = x(N,C)[sorted[j]/K] */
void moe_permute_forward_cpu(KernelCtx *ctx, float *xp, const float *x, const int *sorted, int NK, int K, int C) {
    CHECK(NK > 0 && K > 0 && C > 0, "moe_permute sizes NK=%d K=%d C=%d must be positive", NK, K, C);
    CHECK(xp != NULL && x != NULL && sorted != NULL, "moe_permute_forward with a NULL pointer");
    for (int j = 0; j < NK; j++) {
        CHECK(sorted[j] >= 0 && sorted[j] < NK, "sorted[%d]=%d outside [0, %d)", j, sorted[j], NK);
        memcpy(xp + (size_t)j * C, x + (size_t)(sorted[j] / K) * C, (size_t)C * sizeof(float));
    }
}

/* dx(N,C)[sorted[j]/K] += dxp(NK,C)[j] */
void moe_permute_backward_cpu(KernelCtx *ctx, float *dx, const float *dxp, const int *sorted, const int *pos,
                              int NK, int K, int C) {
    CHECK(NK > 0 && K > 0 && C > 0, "moe_permute sizes NK=%d K=%d C=%d must be positive", NK, K, C);
    CHECK(dx != NULL && dxp != NULL && sorted != NULL, "moe_permute_backward with a NULL pointer");
    for (int j = 0; j < NK; j++) {
        CHECK(sorted[j] >= 0 && sorted[j] < NK, "sorted[%d]=%d outside [0, %d)", j, sorted[j], NK);
        float *d = dx + (size_t)(sorted[j] / K) * C;
        const float *g = dxp + (size_t)j * C;
        for (int c = 0; c < C; c++) d[c] += g[c];
    }
}

/* y(N,C)[s/K] += topk_w(NK)[s] * yp(NK,C)[j], s = sorted[j] */
void moe_combine_forward_cpu(KernelCtx *ctx, float *y, const float *yp, const float *topk_w, const int *sorted,
                             const int *pos, int NK, int K, int C) {
    CHECK(NK > 0 && K > 0 && C > 0, "moe_combine sizes NK=%d K=%d C=%d must be positive", NK, K, C);
    CHECK(y != NULL && yp != NULL && topk_w != NULL && sorted != NULL, "moe_combine_forward with a NULL pointer");
    for (int j = 0; j < NK; j++) {
        int s = sorted[j];
        CHECK(s >= 0 && s < NK, "sorted[%d]=%d outside [0, %d)", j, s, NK);
        float *yr = y + (size_t)(s / K) * C;
        const float *src = yp + (size_t)j * C;
        float w = topk_w[s];
        for (int c = 0; c < C; c++) yr[c] += w * src[c];
    }
}

/* dyp(NK,C)[j] += topk_w[s] * dy(N,C)[s/K]; dtopk_w(NK)[s] += dot(yp[j], dy[s/K]) */
void moe_combine_backward_cpu(KernelCtx *ctx, float *dyp, float *dtopk_w, const float *dy, const float *yp,
                              const float *topk_w, const int *sorted, int NK, int K, int C) {
    CHECK(NK > 0 && K > 0 && C > 0, "moe_combine sizes NK=%d K=%d C=%d must be positive", NK, K, C);
    CHECK(dyp != NULL && dtopk_w != NULL && dy != NULL && yp != NULL && topk_w != NULL && sorted != NULL,
          "moe_combine_backward with a NULL pointer");
    for (int j = 0; j < NK; j++) {
        int s = sorted[j];
        CHECK(s >= 0 && s < NK, "sorted[%d]=%d outside [0, %d)", j, s, NK);
        const float *g = dy + (size_t)(s / K) * C;
        const float *src = yp + (size_t)j * C;
        float *d = dyp + (size_t)j * C;
        float w = topk_w[s];
        double dot = 0.0;
        for (int c = 0; c < C; c++) {
            d[c] += w * g[c];
            dot += (double)src[c] * g[c];
        }
        dtopk_w[s] += (float)dot;
    }
}

static void expert_gemm_check(const int *offsets, int E, int Nc, int Kc, const char *op) {
    CHECK(offsets != NULL && E > 0 && Nc > 0 && Kc > 0, "%s sizes E=%d Nc=%d Kc=%d (offsets %p)", op, E, Nc, Kc,
          (const void *)offsets);
    CHECK(offsets[0] == 0, "%s: offsets[0]=%d must be 0", op, offsets[0]);
    for (int e = 0; e < E; e++)
        CHECK(offsets[e + 1] >= offsets[e], "%s: offsets[%d]=%d > offsets[%d]=%d", op, e, offsets[e], e + 1,
              offsets[e + 1]);
}

/* Y(NK,Nc)[rows of e] = X(NK,Kc)[rows of e] op(W_e) + beta Y; W (E,Nc,Kc) if transW else (E,Kc,Nc) */
void moe_expert_gemm_cpu(KernelCtx *ctx, float *Y, const float *X, const float *W, const int *offsets, int E, int Nc,
                         int Kc, int transW, float beta) {
    expert_gemm_check(offsets, E, Nc, Kc, "moe_expert_gemm");
    CHECK(Y != NULL && X != NULL && W != NULL, "moe_expert_gemm with a NULL matrix");
    for (int e = 0; e < E; e++) {
        int r0 = offsets[e], rows = offsets[e + 1] - r0;
        if (rows == 0) continue;
        const float *We = W + (size_t)e * Nc * Kc;
        gemm_cpu(ctx, 0, transW != 0, rows, Nc, Kc, 1.0f, X + (size_t)r0 * Kc, Kc, We, transW ? Kc : Nc, beta,
                 Y + (size_t)r0 * Nc, Nc);
    }
}

/* dW(E,Nc,Kc)_e += G(NK,Nc)[rows of e]^T X(NK,Kc)[rows of e] */
void moe_expert_gemm_dw_cpu(KernelCtx *ctx, float *dW, const float *G, const float *X, const int *offsets, int E,
                            int Nc, int Kc) {
    expert_gemm_check(offsets, E, Nc, Kc, "moe_expert_gemm_dw");
    CHECK(dW != NULL && G != NULL && X != NULL, "moe_expert_gemm_dw with a NULL matrix");
    for (int e = 0; e < E; e++) {
        int r0 = offsets[e], rows = offsets[e + 1] - r0;
        if (rows == 0) continue;
        gemm_cpu(ctx, 1, 0, Nc, Kc, rows, 1.0f, G + (size_t)r0 * Nc, Nc, X + (size_t)r0 * Kc, Kc, 1.0f,
                 dW + (size_t)e * Nc * Kc, Kc);
    }
}
