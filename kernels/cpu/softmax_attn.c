/* kernels/cpu/softmax_attn.c: causal softmax attention with grouped-query heads on the CPU, the
 * reference for the CUDA kernels (backend.h: attention_forward / attention_backward / decode).
 *
 * Per packed sequence (T tokens) and query head h (kv head g = h / (NH/KVH)):
 *   S = scale Q K^T (T x T, causal: key j <= query i), P = softmax(S) by rows, O = P V,
 *   lse_i = log sum_j exp(S_ij) (natural log, saved for the backward).
 * Backward: P recomputed from lse; dP = dO V^T; dS = P ⊙ (dP - rowsum(dO ⊙ O));
 *   dq += scale dS K, dk += scale dS^T Q, dv += P^T dO (query heads sharing a kv head add up).
 * Approach: the query rows of a sequence are walked in tiles of up to ATTN_ROW_TILE rows; a tile
 * of r rows starting at row i0 sees keys [0, i0 + r) and its score block is one cblas_sgemm. The
 * softmax subtracts the row maximum before exp (no overflow) and sums in double. Workspace: two
 * score blocks of ATTN_ROW_TILE x T floats (attention_ws_bytes_cpu). Decode needs no workspace:
 * one pass for the maximum, one accumulating exp-weighted values into out.
 */
#include <cblas.h>
#include <math.h>
#include <string.h>

#include "core/error.h"
#include "kernels/cpu/cpu_ops.h"

#define ATTN_ROW_TILE 64

/* One (sequence, query head) slice: strided row views into the packed tensors. */
typedef struct {
    int T, HS;
    int ldq;            /* row stride of q, out, dq, dout: NH*HS */
    int ldk;            /* row stride of k, v, dk, dv: KVH*HS */
    const float *q;     /* (T, HS) views */
    const float *k, *v; /* (T, HS) views of kv head g */
    float *S;           /* (tile, T) workspace: scores / probabilities */
    float *dP;          /* (tile, T) workspace: dP, then dS (backward) */
    float scale;
} SaSlice;

static size_t sa_ws_floats(int T) {
    size_t tile = (size_t)(T < ATTN_ROW_TILE ? T : ATTN_ROW_TILE);
    return 2 * tile * (size_t)T;
}

size_t attention_ws_bytes_cpu(int max_seq_len, int NH, int HS) {
    (void)NH, (void)HS; /* one (sequence, head) slice at a time; scores only */
    int T = max_seq_len > 1 ? max_seq_len : 1;
    return sa_ws_floats(T) * sizeof(float);
}

static void sa_check_args(KernelCtx *ctx, const float *q, const float *k, const float *v, const SeqPack *pack,
                          int NH, int KVH, int HS) {
    CHECK(ctx != NULL && q != NULL && k != NULL && v != NULL && pack != NULL, "attention: NULL argument");
    CHECK(NH > 0 && KVH > 0 && HS > 0 && NH % KVH == 0, "attention: NH=%d KVH=%d HS=%d (NH must be a multiple of KVH)",
          NH, KVH, HS);
    CHECK(pack->n_seq > 0 && pack->start != NULL && pack->start[0] == 0, "attention: bad SeqPack (n_seq=%d)",
          pack->n_seq);
    for (int b = 0; b < pack->n_seq; b++)
        CHECK(pack->start[b + 1] >= pack->start[b], "attention: SeqPack start[%d]=%d > start[%d]=%d", b,
              pack->start[b], b + 1, pack->start[b + 1]);
}

/* Slice for sequence b, query head h; carves the workspace (CHECKs its size). */
static SaSlice sa_slice(KernelCtx *ctx, const float *q, const float *k, const float *v, const SeqPack *pack, int b,
                        int h, int NH, int KVH, int HS, float scale) {
    SaSlice s;
    size_t t0 = (size_t)pack->start[b];
    int g = h / (NH / KVH);
    s.T = pack->start[b + 1] - pack->start[b];
    s.HS = HS;
    s.ldq = NH * HS;
    s.ldk = KVH * HS;
    s.q = q + (t0 * NH + h) * HS;
    s.k = k + (t0 * KVH + g) * HS;
    s.v = v + (t0 * KVH + g) * HS;
    s.scale = scale;
    size_t need = sa_ws_floats(s.T) * sizeof(float);
    CHECK(ctx->ws != NULL && ctx->ws_bytes >= need,
          "attention: workspace %zu bytes < %zu needed for T=%d (see attention_ws_bytes)", ctx->ws_bytes, need,
          s.T);
    s.S = (float *)ctx->ws;
    s.dP = s.S + (size_t)(s.T < ATTN_ROW_TILE ? s.T : ATTN_ROW_TILE) * s.T;
    return s;
}

/* S(r, kend) = scale Q[i0 : i0+r) K[0 : kend)^T with kend = i0 + r (row stride kend). */
static void sa_scores(const SaSlice *s, int i0, int r) {
    int kend = i0 + r;
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, r, kend, s->HS, s->scale, s->q + (size_t)i0 * s->ldq,
                s->ldq, s->k, s->ldk, 0.0f, s->S, kend);
}

/* Causal softmax of the tile's rows in place; writes lse (stride lse_ld) for rows i0.. */
static void sa_softmax_rows(const SaSlice *s, int i0, int r, float *lse, int lse_ld) {
    int kend = i0 + r;
    for (int ii = 0; ii < r; ii++) {
        float *p = s->S + (size_t)ii * kend;
        int nvalid = i0 + ii + 1; /* keys 0 .. i0+ii */
        float mx = p[0];
        for (int j = 1; j < nvalid; j++) mx = p[j] > mx ? p[j] : mx;
        double sum = 0.0;
        for (int j = 0; j < nvalid; j++) {
            p[j] = expf(p[j] - mx);
            sum += p[j];
        }
        float inv = (float)(1.0 / sum);
        for (int j = 0; j < nvalid; j++) p[j] *= inv;
        for (int j = nvalid; j < kend; j++) p[j] = 0.0f;
        lse[(size_t)(i0 + ii) * lse_ld] = (float)((double)mx + log(sum));
    }
}

void attention_forward_cpu(KernelCtx *ctx, float *out, float *lse, const float *q, const float *k, const float *v,
                           const SeqPack *pack, int NH, int KVH, int HS, float scale) {
    sa_check_args(ctx, q, k, v, pack, NH, KVH, HS);
    CHECK(out != NULL && lse != NULL, "attention_forward: NULL out or lse");
    for (int b = 0; b < pack->n_seq; b++) {
        for (int h = 0; h < NH; h++) {
            SaSlice s = sa_slice(ctx, q, k, v, pack, b, h, NH, KVH, HS, scale);
            size_t row0 = (size_t)pack->start[b] * NH + h;
            float *o = out + row0 * HS;
            for (int i0 = 0; i0 < s.T; i0 += ATTN_ROW_TILE) {
                int r = s.T - i0 < ATTN_ROW_TILE ? s.T - i0 : ATTN_ROW_TILE;
                sa_scores(&s, i0, r);
                sa_softmax_rows(&s, i0, r, lse + row0, NH);
                cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, r, HS, i0 + r, 1.0f, s.S, i0 + r, s.v,
                            s.ldk, 0.0f, o + (size_t)i0 * s.ldq, s.ldq);
            }
        }
    }
}

/* Backward for one tile of r query rows from i0: O, dO (T, HS) views with stride ldq; lse with
 * stride lse_ld; dq (T, HS) with stride ldq and dk, dv (T, HS) with stride ldk accumulate. */
static void sa_backward_tile(const SaSlice *s, int i0, int r, const float *O, const float *dO, const float *lse,
                             int lse_ld, float *dq, float *dk, float *dv) {
    int kend = i0 + r, HS = s->HS;
    const float *dOt = dO + (size_t)i0 * s->ldq;
    sa_scores(s, i0, r);
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, r, kend, HS, 1.0f, dOt, s->ldq, s->v, s->ldk, 0.0f, s->dP,
                kend);
    for (int ii = 0; ii < r; ii++) {
        int i = i0 + ii;
        float *p = s->S + (size_t)ii * kend, *ds = s->dP + (size_t)ii * kend;
        const float *o = O + (size_t)i * s->ldq, *go = dO + (size_t)i * s->ldq;
        double dsum = 0.0;
        for (int e = 0; e < HS; e++) dsum += (double)go[e] * (double)o[e];
        float D = (float)dsum, l = lse[(size_t)i * lse_ld];
        for (int j = 0; j <= i; j++) {
            p[j] = expf(p[j] - l);
            ds[j] = p[j] * (ds[j] - D);
        }
        for (int j = i + 1; j < kend; j++) p[j] = ds[j] = 0.0f;
    }
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, r, HS, kend, s->scale, s->dP, kend, s->k, s->ldk, 1.0f,
                dq + (size_t)i0 * s->ldq, s->ldq);
    cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, kend, HS, r, s->scale, s->dP, kend,
                s->q + (size_t)i0 * s->ldq, s->ldq, 1.0f, dk, s->ldk);
    cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, kend, HS, r, 1.0f, s->S, kend, dOt, s->ldq, 1.0f, dv,
                s->ldk);
}

void attention_backward_cpu(KernelCtx *ctx, float *dq, float *dk, float *dv, const float *dout, const float *q,
                            const float *k, const float *v, const float *out, const float *lse, const SeqPack *pack,
                            int NH, int KVH, int HS, float scale) {
    sa_check_args(ctx, q, k, v, pack, NH, KVH, HS);
    CHECK(dq != NULL && dk != NULL && dv != NULL && dout != NULL && out != NULL && lse != NULL,
          "attention_backward: NULL argument");
    for (int b = 0; b < pack->n_seq; b++) {
        for (int h = 0; h < NH; h++) {
            SaSlice s = sa_slice(ctx, q, k, v, pack, b, h, NH, KVH, HS, scale);
            size_t t0 = (size_t)pack->start[b];
            size_t row0 = t0 * NH + h, krow0 = t0 * KVH + (size_t)(h / (NH / KVH));
            for (int i0 = 0; i0 < s.T; i0 += ATTN_ROW_TILE) {
                int r = s.T - i0 < ATTN_ROW_TILE ? s.T - i0 : ATTN_ROW_TILE;
                sa_backward_tile(&s, i0, r, out + row0 * HS, dout + row0 * HS, lse + row0, NH, dq + row0 * HS,
                                 dk + krow0 * HS, dv + krow0 * HS);
            }
        }
    }
}

/* out(HS) = softmax(scale q K^T) V over the first L rows of K, V (stride ld). */
static void sa_decode_one(float *out, const float *q, const float *K, const float *V, int L, int ld, int HS,
                          float scale) {
    float mx = -INFINITY;
    for (int j = 0; j < L; j++) {
        const float *kj = K + (size_t)j * ld;
        float sc = 0.0f;
        for (int d = 0; d < HS; d++) sc += q[d] * kj[d];
        sc *= scale;
        mx = sc > mx ? sc : mx;
    }
    double sum = 0.0;
    memset(out, 0, (size_t)HS * sizeof(float));
    for (int j = 0; j < L; j++) {
        const float *kj = K + (size_t)j * ld, *vj = V + (size_t)j * ld;
        float sc = 0.0f;
        for (int d = 0; d < HS; d++) sc += q[d] * kj[d];
        float p = expf(sc * scale - mx);
        sum += p;
        for (int e = 0; e < HS; e++) out[e] += p * vj[e];
    }
    float inv = (float)(1.0 / sum);
    for (int e = 0; e < HS; e++) out[e] *= inv;
}

void attention_decode_cpu(KernelCtx *ctx, float *out, const float *q, const float *kcache, const float *vcache,
                          const int *len, int B, int Tmax, int NH, int KVH, int HS, float scale) {
    (void)ctx; /* no workspace */
    CHECK(out != NULL && q != NULL && kcache != NULL && vcache != NULL && len != NULL,
          "attention_decode: NULL argument");
    CHECK(B > 0 && Tmax > 0 && NH > 0 && KVH > 0 && HS > 0 && NH % KVH == 0,
          "attention_decode: B=%d Tmax=%d NH=%d KVH=%d HS=%d", B, Tmax, NH, KVH, HS);
    for (int b = 0; b < B; b++) {
        CHECK(len[b] >= 1 && len[b] <= Tmax, "attention_decode: len[%d]=%d outside [1, Tmax=%d]", b, len[b], Tmax);
        for (int h = 0; h < NH; h++) {
            size_t kv0 = ((size_t)b * Tmax * KVH + (size_t)(h / (NH / KVH))) * HS;
            size_t bh = ((size_t)b * NH + h) * HS;
            sa_decode_one(out + bh, q + bh, kcache + kv0, vcache + kv0, len[b], KVH * HS, HS, scale);
        }
    }
}
