/* kernels/cuda/softmax_attn.cu: causal softmax attention with grouped-query heads, the naive
 * form: a first, exact CUDA version, to be replaced by FlashAttention-style tiled kernels
 * (KERNELS.md).
 *
 * Semantics as kernels/cpu/softmax_attn.c: per packed sequence and query head h (kv head
 * g = h / (NH/KVH)), s_ij = scale (q_i . k_j) for keys j <= i of the same sequence,
 * P = softmax(s) by rows, o_i = sum_j P_ij v_j, lse_i = log sum_j exp(s_ij).
 * Forward: one thread block per (query token, head) and two passes over its keys: the row maximum,
 * then, in tiles of ATT_TILE keys, p_j = exp(s_j - max) (one key per thread, into shared memory)
 * and acc[e] += sum_j p_j v_j[e] (one value column per thread); the sum of p in float64.
 * Backward: one block per (query, head); D_i = dO_i . O_i (float64), then per tile
 *   p_j = exp(s_j - lse_i), ds_j = p_j (dO_i . v_j - D_i);
 *   dq_i += scale sum_j ds_j k_j (in shared memory, added once at the end),
 *   dk_j += scale ds_j q_i and dv_j += p_j dO_i with atomicAdd (other queries and the query heads
 *   of a group add into the same rows).
 * Decode: one block per (sequence, head) over its len[b] cached positions, the forward's row code.
 * No workspace.
 */
#include <math.h>

#include "kernels/cuda/cuda_ops.h"

#define ATT_THREADS 128
#define ATT_TILE 128

static __device__ __forceinline__ float sa_dot(const float *a, const float *b, int HS) {
    float s = 0.0f;
    for (int d = 0; d < HS; d++) s += a[d] * b[d];
    return s;
}

/* One softmax row: q (HS, global), nk keys/values at kb/vb with row stride ldk; writes out (HS) and,
 * when lse is non-NULL, *lse. smem: qs (HS) | acc (HS) | p (ATT_TILE). */
static __device__ void sa_row(float *out, float *lse, const float *q, const float *kb, const float *vb, size_t ldk,
                              int nk, int HS, float scale, float *smem) {
    __shared__ float shf[32];
    __shared__ double shd[32];
    float *qs = smem, *acc = qs + HS, *p = acc + HS;
    for (int e = threadIdx.x; e < HS; e += blockDim.x) {
        qs[e] = q[e];
        acc[e] = 0.0f;
    }
    __syncthreads();
    float mx = -INFINITY;
    for (int j = threadIdx.x; j < nk; j += blockDim.x) mx = fmaxf(mx, scale * sa_dot(qs, kb + j * ldk, HS));
    mx = block_max(mx, shf);
    double sum = 0.0;
    for (int j0 = 0; j0 < nk; j0 += ATT_TILE) {
        int m = min(ATT_TILE, nk - j0);
        for (int jj = threadIdx.x; jj < m; jj += blockDim.x) {
            float pj = expf(scale * sa_dot(qs, kb + (j0 + jj) * ldk, HS) - mx);
            p[jj] = pj;
            sum += pj;
        }
        __syncthreads();
        for (int e = threadIdx.x; e < HS; e += blockDim.x) {
            float a = acc[e];
            for (int jj = 0; jj < m; jj++) a += p[jj] * vb[(j0 + jj) * ldk + e];
            acc[e] = a;
        }
        __syncthreads();
    }
    sum = block_sum(sum, shd);
    float inv = (float)(1.0 / sum);
    for (int e = threadIdx.x; e < HS; e += blockDim.x) out[e] = acc[e] * inv;
    if (lse != NULL && threadIdx.x == 0) *lse = (float)((double)mx + log(sum));
}

/* grid (N, NH) */
static __global__ void sa_forward_kernel(float *out, float *lse, const float *q, const float *k, const float *v,
                                         const int *start, int B, int NH, int KVH, int HS, float scale) {
    extern __shared__ float sa_smem[];
    const int i = blockIdx.x, h = blockIdx.y, g = h / (NH / KVH);
    const int t0 = start[dev_find_seq(start, B, i)];
    const size_t ldk = (size_t)KVH * HS, qi = (size_t)i * NH + h;
    const size_t kv0 = ((size_t)t0 * KVH + g) * HS;
    sa_row(out + qi * HS, lse + qi, q + qi * HS, k + kv0, v + kv0, ldk, i - t0 + 1, HS, scale, sa_smem);
}

/* grid (B, NH) */
static __global__ void sa_decode_kernel(float *out, const float *q, const float *kcache, const float *vcache,
                                        const int *len, int Tmax, int NH, int KVH, int HS, float scale) {
    extern __shared__ float sa_smem[];
    const int b = blockIdx.x, h = blockIdx.y, g = h / (NH / KVH);
    const size_t ldk = (size_t)KVH * HS, bh = (size_t)b * NH + h;
    const size_t kv0 = ((size_t)b * Tmax * KVH + g) * HS;
    sa_row(out + bh * HS, NULL, q + bh * HS, kcache + kv0, vcache + kv0, ldk, len[b], HS, scale, sa_smem);
}

/* grid (N, NH); smem: qs | dos | dqa (HS each) | p | ds (ATT_TILE each) */
static __global__ void sa_backward_kernel(float *dq, float *dk, float *dv, const float *dout, const float *q,
                                          const float *k, const float *v, const float *out, const float *lse,
                                          const int *start, int B, int NH, int KVH, int HS, float scale) {
    extern __shared__ float sa_smem[];
    __shared__ double shd[32];
    const int i = blockIdx.x, h = blockIdx.y, g = h / (NH / KVH);
    const int t0 = start[dev_find_seq(start, B, i)], nk = i - t0 + 1;
    const size_t ldk = (size_t)KVH * HS, qi = (size_t)i * NH + h, kv0 = ((size_t)t0 * KVH + g) * HS;
    float *qs = sa_smem, *dos = qs + HS, *dqa = dos + HS, *p = dqa + HS, *ds = p + ATT_TILE;
    double dd = 0.0;
    for (int e = threadIdx.x; e < HS; e += blockDim.x) {
        qs[e] = q[qi * HS + e];
        dos[e] = dout[qi * HS + e];
        dqa[e] = 0.0f;
        dd += (double)dos[e] * (double)out[qi * HS + e];
    }
    const float D = (float)block_sum(dd, shd); /* also the barrier after the staging above */
    const float l = lse[qi];
    for (int j0 = 0; j0 < nk; j0 += ATT_TILE) {
        int m = min(ATT_TILE, nk - j0);
        for (int jj = threadIdx.x; jj < m; jj += blockDim.x) {
            size_t r = kv0 + (j0 + jj) * ldk;
            float pj = expf(scale * sa_dot(qs, k + r, HS) - l);
            p[jj] = pj;
            ds[jj] = pj * (sa_dot(dos, v + r, HS) - D);
        }
        __syncthreads();
        for (int e = threadIdx.x; e < HS; e += blockDim.x) {
            float a = dqa[e];
            for (int jj = 0; jj < m; jj++) a += ds[jj] * k[kv0 + (j0 + jj) * ldk + e];
            dqa[e] = a;
        }
        for (int x = threadIdx.x; x < m * HS; x += blockDim.x) {
            int jj = x / HS, e = x % HS;
            size_t r = kv0 + (j0 + jj) * ldk + e;
            atomicAdd(&dk[r], scale * ds[jj] * qs[e]);
            atomicAdd(&dv[r], p[jj] * dos[e]);
        }
        __syncthreads();
    }
    for (int e = threadIdx.x; e < HS; e += blockDim.x) dq[qi * HS + e] += scale * dqa[e];
}

size_t attention_ws_bytes_cuda(int max_seq_len, int NH, int HS) { return 0; }

static void sa_check_args(KernelCtx *ctx, const float *q, const float *k, const float *v, const SeqPack *pack,
                          int NH, int KVH, int HS) {
    CHECK(ctx != NULL && q != NULL && k != NULL && v != NULL && pack != NULL, "attention: NULL argument");
    CHECK(NH > 0 && KVH > 0 && HS > 0 && NH % KVH == 0,
          "attention: NH=%d KVH=%d HS=%d (NH must be a multiple of KVH)", NH, KVH, HS);
    CHECK(NH <= 65535, "attention: NH=%d above the grid limit 65535", NH);
}

void attention_forward_cuda(KernelCtx *ctx, float *out, float *lse, const float *q, const float *k, const float *v,
                            const SeqPack *pack, int NH, int KVH, int HS, float scale) {
    sa_check_args(ctx, q, k, v, pack, NH, KVH, HS);
    CHECK(out != NULL && lse != NULL, "attention_forward: NULL out or lse");
    DevPack d = cuda_pack_upload(ctx, pack, "attention_forward");
    if (d.N == 0) return;
    size_t smem = (2 * (size_t)HS + ATT_TILE) * sizeof(float);
    dim3 grid((unsigned)d.N, (unsigned)NH);
    sa_forward_kernel<<<grid, ATT_THREADS, smem, cuda_impl(ctx)->stream>>>(out, lse, q, k, v, d.start, d.B, NH, KVH,
                                                                            HS, scale);
    CUDA_LAUNCH_CHECK();
}

void attention_backward_cuda(KernelCtx *ctx, float *dq, float *dk, float *dv, const float *dout, const float *q,
                             const float *k, const float *v, const float *out, const float *lse, const SeqPack *pack,
                             int NH, int KVH, int HS, float scale) {
    sa_check_args(ctx, q, k, v, pack, NH, KVH, HS);
    CHECK(dq != NULL && dk != NULL && dv != NULL && dout != NULL && out != NULL && lse != NULL,
          "attention_backward: NULL argument");
    DevPack d = cuda_pack_upload(ctx, pack, "attention_backward");
    if (d.N == 0) return;
    size_t smem = (3 * (size_t)HS + 2 * ATT_TILE) * sizeof(float);
    dim3 grid((unsigned)d.N, (unsigned)NH);
    sa_backward_kernel<<<grid, ATT_THREADS, smem, cuda_impl(ctx)->stream>>>(dq, dk, dv, dout, q, k, v, out, lse,
                                                                             d.start, d.B, NH, KVH, HS, scale);
    CUDA_LAUNCH_CHECK();
}

void attention_decode_cuda(KernelCtx *ctx, float *out, const float *q, const float *kcache, const float *vcache,
                           const int *len, int B, int Tmax, int NH, int KVH, int HS, float scale) {
    CHECK(out != NULL && q != NULL && kcache != NULL && vcache != NULL && len != NULL,
          "attention_decode: NULL argument");
    CHECK(B > 0 && Tmax > 0 && NH > 0 && KVH > 0 && HS > 0 && NH % KVH == 0,
          "attention_decode: B=%d Tmax=%d NH=%d KVH=%d HS=%d", B, Tmax, NH, KVH, HS);
    CHECK(B <= CUDA_MAX_SEQS && NH <= 65535, "attention_decode: B=%d (max %d), NH=%d (max 65535)", B, CUDA_MAX_SEQS,
          NH);
    for (int b = 0; b < B; b++)
        CHECK(len[b] >= 1 && len[b] <= Tmax, "attention_decode: len[%d]=%d outside [1, Tmax=%d]", b, len[b], Tmax);
    CudaImpl *im = cuda_impl(ctx);
    CUDA_CHECK(cudaMemcpyAsync(im->d_pos0, len, (size_t)B * sizeof(int), cudaMemcpyHostToDevice, im->stream));
    size_t smem = (2 * (size_t)HS + ATT_TILE) * sizeof(float);
    dim3 grid((unsigned)B, (unsigned)NH);
    sa_decode_kernel<<<grid, ATT_THREADS, smem, im->stream>>>(out, q, kcache, vcache, im->d_pos0, Tmax, NH, KVH, HS,
                                                               scale);
    CUDA_LAUNCH_CHECK();
}
