/* kernels/cpu/lightning_attn.c: lightning attention on the CPU (MiniMax semantics, ALGORITHMS.md
 * §11.2-11.3), the reference for the CUDA kernels.
 *
 * Per sequence (T tokens from t0) and head h, with lambda = exp(-slopes[h]) and S0 = kv_in (or 0):
 *   o_t = sum_{u<=t} lambda^(t-u) (q_t . k_u) v_u + lambda^(t-t0+1) q_t S0
 *   S_final = lambda^T S0 + sum_u lambda^(T-1-u) k_u^T v_u
 *
 * Approach: the block-wise Lightning Attention-2 algorithm, one (sequence, head) at a time, with
 * blocks of blk = min(block, T) rows (the last one may be shorter, m rows). For each block, with
 * KV the state before it (KV = S0 before block 0):
 *   O     = ((Q K^T) ⊙ D) V + diag(lambda^(c+1)) Q KV      D[i][j] = lambda^(i-j) for i >= j, else 0
 *   KV   <- lambda^m KV + (diag(lambda^(m-1-c)) K)^T V
 * Backward (dO given, no gradient arrives on kv_out):
 *   intra:  P = (dO V^T) ⊙ D;  dQ += P K;  dK += P^T Q;   dV += ((Q K^T) ⊙ D)^T dO
 *   forward sweep, recomputing KV:   dQ += diag(lambda^(c+1)) dO KV^T
 *   backward sweep with G = dL/d(state after the block), G = 0 after the last block:
 *           dK += diag(lambda^(m-1-c)) V G^T;  dV += diag(lambda^(m-1-c)) K G;
 *           G <- lambda^m G + (diag(lambda^(c+1)) Q)^T dO;   finally dS0 += G.
 * The backward keeps no per-block states: the forward sweep recomputes KV as it goes, and the
 * backward sweep needs only Q and dO. All products are cblas_sgemm calls on strided views of the
 * packed tensors (FP32); decay powers lambda^k, k = 0..blk, are exp() in double rounded to float.
 * Workspace per (sequence, head), reused: powers (blk+1), a blk x blk score block, a blk x HS
 * scaled copy, and two HS x HS states: lightning_ws_bytes_cpu().
 */
#include <cblas.h>
#include <math.h>
#include <string.h>

#include "core/error.h"
#include "kernels/cpu/cpu_ops.h"

/* One (sequence, head) slice: strided row views into the packed tensors and its workspace. */
typedef struct {
    int T;        /* tokens in the sequence */
    int HS;       /* head dim */
    int blk;      /* block length, min(block, T) */
    int ld_qkv;   /* row stride of qkv and dqkv: NH*3*HS */
    int ld_o;     /* row stride of out and dout: NH*HS */
    const float *q, *k, *v; /* (T, HS) views with stride ld_qkv */
    float *pw;    /* (blk+1) pw[i] = lambda^i */
    float *P;     /* (blk, blk) score block */
    float *X;     /* (blk, HS) decay-scaled copy of some rows */
    float *KV;    /* (HS, HS) running state */
    float *G;     /* (HS, HS) running state gradient (backward) */
} LaSlice;

/* Workspace floats for one (sequence, head) slice of T tokens. */
static size_t la_ws_floats(int T, int HS, int block) {
    size_t blk = (size_t)(block < T ? block : T);
    return (blk + 1) + blk * blk + blk * (size_t)HS + 2 * (size_t)HS * (size_t)HS;
}

size_t lightning_ws_bytes_cpu(int max_seq_len, int NH, int HS, int block) {
    (void)NH; /* one (sequence, head) slice at a time */
    CHECK(HS > 0 && block > 0, "lightning_ws_bytes: HS=%d block=%d must be positive", HS, block);
    int T = max_seq_len > 1 ? max_seq_len : 1;
    return la_ws_floats(T, HS, block) * sizeof(float);
}

/* Carve the workspace for a slice of s->T tokens and fill the decay powers of `slope`. */
static void la_slice_setup(LaSlice *s, KernelCtx *ctx, int block, float slope) {
    size_t need = la_ws_floats(s->T, s->HS, block) * sizeof(float);
    CHECK(ctx->ws != NULL && ctx->ws_bytes >= need,
          "lightning: workspace %zu bytes < %zu needed for T=%d HS=%d block=%d (see lightning_ws_bytes)",
          ctx->ws_bytes, need, s->T, s->HS, block);
    s->blk = block < s->T ? block : s->T;
    float *w = (float *)ctx->ws;
    s->pw = w;
    s->P = s->pw + s->blk + 1;
    s->X = s->P + (size_t)s->blk * s->blk;
    s->KV = s->X + (size_t)s->blk * s->HS;
    s->G = s->KV + (size_t)s->HS * s->HS;
    for (int i = 0; i <= s->blk; i++) s->pw[i] = (float)exp(-(double)slope * (double)i);
}

/* X(m, HS) = diag(f) src, src rows with stride ld; f[c] = lambda^(c+1) (query decay) or, with
 * key != 0, lambda^(m-1-c) (key decay of a block of m rows). */
static void la_scale_rows(const LaSlice *s, const float *src, int ld, int m, int key) {
    for (int c = 0; c < m; c++) {
        float f = key ? s->pw[m - 1 - c] : s->pw[c + 1];
        const float *r = src + (size_t)c * ld;
        float *x = s->X + (size_t)c * s->HS;
        for (int d = 0; d < s->HS; d++) x[d] = f * r[d];
    }
}

/* P(m, m) = (A B^T) ⊙ D for row views A, B of m rows (strides lda, ldb). */
static void la_masked_scores(const LaSlice *s, const float *A, int lda, const float *B, int ldb, int m) {
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, m, m, s->HS, 1.0f, A, lda, B, ldb, 0.0f, s->P, m);
    for (int i = 0; i < m; i++) {
        float *p = s->P + (size_t)i * m;
        for (int j = 0; j <= i; j++) p[j] *= s->pw[i - j];
        for (int j = i + 1; j < m; j++) p[j] = 0.0f;
    }
}

/* KV <- lambda^m KV + (diag(lambda^(m-1-c)) K)^T V for the m rows starting at row t. */
static void la_state_update(const LaSlice *s, int t, int m) {
    size_t n = (size_t)s->HS * s->HS;
    for (size_t i = 0; i < n; i++) s->KV[i] *= s->pw[m];
    la_scale_rows(s, s->k + (size_t)t * s->ld_qkv, s->ld_qkv, m, 1);
    cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, s->HS, s->HS, m, 1.0f, s->X, s->HS,
                s->v + (size_t)t * s->ld_qkv, s->ld_qkv, 1.0f, s->KV, s->HS);
}

/* Forward over one slice: out (T, HS) with stride ld_o; S0 (HS, HS) or NULL; kv_out (HS, HS) or NULL. */
static void la_forward_slice(LaSlice *s, float *out, const float *S0, float *kv_out) {
    int HS = s->HS, ldq = s->ld_qkv;
    size_t n = (size_t)HS * HS;
    if (S0) memcpy(s->KV, S0, n * sizeof(float));
    else memset(s->KV, 0, n * sizeof(float));
    for (int t = 0; t < s->T; t += s->blk) {
        int m = s->T - t < s->blk ? s->T - t : s->blk;
        const float *q = s->q + (size_t)t * ldq;
        float *o = out + (size_t)t * s->ld_o;
        la_masked_scores(s, q, ldq, s->k + (size_t)t * ldq, ldq, m);
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, m, HS, m, 1.0f, s->P, m,
                    s->v + (size_t)t * ldq, ldq, 0.0f, o, s->ld_o);
        la_scale_rows(s, q, ldq, m, 0);
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, m, HS, HS, 1.0f, s->X, HS, s->KV, HS, 1.0f, o,
                    s->ld_o);
        la_state_update(s, t, m);
    }
    if (kv_out) memcpy(kv_out, s->KV, n * sizeof(float));
}

/* Slice geometry for sequence b, head h (workspace carved by la_slice_setup). */
static LaSlice la_slice(const float *qkv, const SeqPack *pack, int b, int h, int NH, int HS) {
    LaSlice s;
    memset(&s, 0, sizeof(s));
    s.T = pack->start[b + 1] - pack->start[b];
    s.HS = HS;
    s.ld_qkv = NH * 3 * HS;
    s.ld_o = NH * HS;
    s.q = qkv + ((size_t)pack->start[b] * NH + h) * 3 * HS;
    s.k = s.q + HS;
    s.v = s.q + 2 * HS;
    return s;
}

static void la_check_args(KernelCtx *ctx, const float *qkv, const float *slopes, const SeqPack *pack, int NH,
                          int HS, int block) {
    CHECK(ctx != NULL && qkv != NULL && slopes != NULL && pack != NULL, "lightning: NULL argument");
    CHECK(NH > 0 && HS > 0 && block > 0, "lightning: NH=%d HS=%d block=%d must be positive", NH, HS, block);
    CHECK(pack->n_seq > 0 && pack->start != NULL && pack->start[0] == 0, "lightning: bad SeqPack (n_seq=%d)",
          pack->n_seq);
    for (int b = 0; b < pack->n_seq; b++)
        CHECK(pack->start[b + 1] >= pack->start[b], "lightning: SeqPack start[%d]=%d > start[%d]=%d", b,
              pack->start[b], b + 1, pack->start[b + 1]);
}

void lightning_forward_cpu(KernelCtx *ctx, float *out, float *kv_out, const float *qkv, const float *kv_in,
                           const float *slopes, const SeqPack *pack, int NH, int HS, int block) {
    la_check_args(ctx, qkv, slopes, pack, NH, HS, block);
    CHECK(out != NULL, "lightning_forward: NULL out");
    size_t n = (size_t)HS * HS;
    for (int b = 0; b < pack->n_seq; b++) {
        for (int h = 0; h < NH; h++) {
            size_t sh = (size_t)b * NH + h; /* (b, h) index into (B, NH, HS, HS) states */
            const float *S0 = kv_in ? kv_in + sh * n : NULL;
            float *S1 = kv_out ? kv_out + sh * n : NULL;
            LaSlice s = la_slice(qkv, pack, b, h, NH, HS);
            if (s.T == 0) { /* empty sequence: the state passes through unchanged */
                if (S1 && S0) memcpy(S1, S0, n * sizeof(float));
                else if (S1) memset(S1, 0, n * sizeof(float));
                continue;
            }
            la_slice_setup(&s, ctx, block, slopes[h]);
            la_forward_slice(&s, out + ((size_t)pack->start[b] * NH + h) * HS, S0, S1);
        }
    }
}

/* Backward intra-block terms for the m rows starting at row t; dq, dk, dv are (T, HS) views with
 * stride ld_qkv, dO (T, HS) with stride ld_o. */
static void la_backward_intra(const LaSlice *s, float *dq, const float *dO, int t, int m) {
    int HS = s->HS, ldq = s->ld_qkv;
    size_t oq = (size_t)t * ldq;
    const float *dOt = dO + (size_t)t * s->ld_o;
    float *dk = dq + HS, *dv = dq + 2 * HS;
    la_masked_scores(s, dOt, s->ld_o, s->v + oq, ldq, m);
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, m, HS, m, 1.0f, s->P, m, s->k + oq, ldq, 1.0f,
                dq + oq, ldq);
    cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, m, HS, m, 1.0f, s->P, m, s->q + oq, ldq, 1.0f, dk + oq,
                ldq);
    la_masked_scores(s, s->q + oq, ldq, s->k + oq, ldq, m);
    cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, m, HS, m, 1.0f, s->P, m, dOt, s->ld_o, 1.0f, dv + oq,
                ldq);
}

/* Forward sweep: intra terms and dQ_inter = diag(lambda^(c+1)) dO KV^T with KV recomputed from S0. */
static void la_backward_forward_sweep(LaSlice *s, float *dq, const float *dO, const float *S0) {
    int HS = s->HS;
    size_t n = (size_t)HS * HS;
    if (S0) memcpy(s->KV, S0, n * sizeof(float));
    else memset(s->KV, 0, n * sizeof(float));
    for (int t = 0; t < s->T; t += s->blk) {
        int m = s->T - t < s->blk ? s->T - t : s->blk;
        la_backward_intra(s, dq, dO, t, m);
        la_scale_rows(s, dO + (size_t)t * s->ld_o, s->ld_o, m, 0);
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, m, HS, HS, 1.0f, s->X, HS, s->KV, HS, 1.0f,
                    dq + (size_t)t * s->ld_qkv, s->ld_qkv);
        if (t + m < s->T) la_state_update(s, t, m);
    }
}

/* Backward sweep over blocks from last to first: dK_inter, dV_inter from G, then G's update.
 * Adds the gradient of the initial state into dS0 when non-NULL. */
static void la_backward_reverse_sweep(LaSlice *s, float *dq, const float *dO, float *dS0) {
    int HS = s->HS, ldq = s->ld_qkv;
    size_t n = (size_t)HS * HS;
    float *dk = dq + HS, *dv = dq + 2 * HS;
    memset(s->G, 0, n * sizeof(float));
    for (int t = ((s->T - 1) / s->blk) * s->blk; t >= 0; t -= s->blk) {
        int m = s->T - t < s->blk ? s->T - t : s->blk;
        size_t oq = (size_t)t * ldq;
        const float *dOt = dO + (size_t)t * s->ld_o;
        la_scale_rows(s, s->v + oq, ldq, m, 1);
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, m, HS, HS, 1.0f, s->X, HS, s->G, HS, 1.0f, dk + oq,
                    ldq);
        la_scale_rows(s, s->k + oq, ldq, m, 1);
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, m, HS, HS, 1.0f, s->X, HS, s->G, HS, 1.0f,
                    dv + oq, ldq);
        for (size_t i = 0; i < n; i++) s->G[i] *= s->pw[m];
        la_scale_rows(s, s->q + oq, ldq, m, 0);
        cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, HS, HS, m, 1.0f, s->X, HS, dOt, s->ld_o, 1.0f, s->G,
                    HS);
    }
    if (dS0)
        for (size_t i = 0; i < n; i++) dS0[i] += s->G[i];
}

void lightning_backward_cpu(KernelCtx *ctx, float *dqkv, float *dkv_in, const float *dout, const float *qkv,
                            const float *kv_in, const float *slopes, const SeqPack *pack, int NH, int HS,
                            int block) {
    la_check_args(ctx, qkv, slopes, pack, NH, HS, block);
    CHECK(dqkv != NULL && dout != NULL, "lightning_backward: NULL dqkv or dout");
    size_t n = (size_t)HS * HS;
    for (int b = 0; b < pack->n_seq; b++) {
        for (int h = 0; h < NH; h++) {
            LaSlice s = la_slice(qkv, pack, b, h, NH, HS);
            size_t sh = (size_t)b * NH + h;
            if (s.T == 0) continue; /* dS0 receives nothing from an empty sequence */
            la_slice_setup(&s, ctx, block, slopes[h]);
            size_t row0 = (size_t)pack->start[b] * NH + h;
            float *dq = dqkv + row0 * 3 * HS;
            const float *dO = dout + row0 * HS;
            la_backward_forward_sweep(&s, dq, dO, kv_in ? kv_in + sh * n : NULL);
            la_backward_reverse_sweep(&s, dq, dO, dkv_in ? dkv_in + sh * n : NULL);
        }
    }
}

void lightning_decode_cpu(KernelCtx *ctx, float *out, float *state, const float *qkv, const float *slopes, int B,
                          int NH, int HS) {
    (void)ctx; /* no workspace */
    CHECK(out != NULL && state != NULL && qkv != NULL && slopes != NULL, "lightning_decode: NULL argument");
    CHECK(B > 0 && NH > 0 && HS > 0, "lightning_decode: B=%d NH=%d HS=%d must be positive", B, NH, HS);
    for (int b = 0; b < B; b++) {
        for (int h = 0; h < NH; h++) {
            size_t bh = (size_t)b * NH + h;
            const float *q = qkv + bh * 3 * HS, *k = q + HS, *v = q + 2 * HS;
            float *S = state + bh * HS * HS; /* (HS, HS) */
            float *o = out + bh * HS;        /* (HS) */
            float lam = (float)exp(-(double)slopes[h]);
            for (int e = 0; e < HS; e++) o[e] = 0.0f;
            for (int d = 0; d < HS; d++) {
                float *row = S + (size_t)d * HS;
                for (int e = 0; e < HS; e++) row[e] = lam * row[e] + k[d] * v[e];
                for (int e = 0; e < HS; e++) o[e] += q[d] * row[e];
            }
        }
    }
}
