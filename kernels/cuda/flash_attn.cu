/* kernels/cuda/flash_attn.cu: FlashAttention-2-style causal softmax attention with grouped-query
 * heads on tensor cores (forward, backward), and flash-decoding against the KV cache. These are the
 * table's attention ops; they fall back to the exact naive kernels of softmax_attn.cu when
 * CISPO_CUDA_NAIVE_ATTN=1 (read at every call), for head sizes other than 32/64/128, for pointers
 * not 16-byte aligned, or when the workspace is too small.
 *
 * Semantics as kernels/cpu/softmax_attn.c (backend.h). Tiles: 64 query rows x 64 keys, 4 warps,
 * warp w owns rows 16w..16w+15 of every tile. FP32 inputs are rounded to BF16 as tiles are staged
 * in shared memory; Q K^T, P V, dS K, P^T dO and dS^T Q run on WMMA 16x16x16 BF16 with FP32
 * accumulators; softmax statistics stay in FP32 (base-2 exponentials, scores pre-multiplied by
 * scale*log2(e)). Expected error against the FP32 reference: 1e-3..1e-2 relative (BF16 has an
 * 8-bit mantissa; P and dS are rounded to BF16 before their products): ~2e-3 out, ~4e-3 gradients.
 * - Forward: one block per (query tile, head, sequence); loop over the key tiles up to the diagonal
 *   with the online softmax (running max m and sum l per row; O rescaled in shared memory by
 *   exp2(m_old - m_new), then O += P V through the accumulator fragments). Writes out = O / l and
 *   lse = (m + log2 l) ln 2. Tiles with the most keys are launched first (the grid is tile-major over
 *   all sequences, so a long sequence of a packed batch does not finish last).
 * - Backward (deterministic, no atomics): pass 1, one block per (query tile, head): D_i = dO_i . O_i
 *   in FP32 (kept in the workspace for pass 2), then for each key tile S = Q K^T, dP = dO V^T,
 *   P = exp2(S' - lse'), dS = P (dP - D), dQ += dS K in register fragments; dq += scale dQ.
 *   Pass 2, one block per (key tile, kv head): for every query head of the group and every query
 *   tile from the diagonal on, S^T = K Q^T, dP^T = V dO^T, then dV += P^T dO, dK += dS^T Q in
 *   register fragments; dk += scale dK, dv += dV.
 * - Decode: the context of each sequence is split into chunks (one block per (sequence, chunk,
 *   run of GH query heads of one kv group), so K/V are read once per group); inside a block each
 *   warp walks every 4th key with its own online softmax (FP32, one key per warp step, the head dim
 *   spread over the lanes), the 4 warps merge in shared memory and write a partial (o, m, l) to the
 *   workspace; a second kernel merges the chunks of each (sequence, head).
 * Shared memory: BF16 tiles with rows padded by 8 elements (16 bytes: conflict-free fragment loads,
 * 32-byte aligned fragment pointers); FP32 score tiles padded by 4; the BF16 P / dS tiles overlay
 * the FP32 score tiles row by row (each warp reads its rows into registers, __syncwarp, then writes).
 * Workspace (attention_ws_bytes, first argument = the largest packed token count): N*NH floats for
 * D, or FD_PART_ROWS*NH*(HS+2) floats of decode partials, whichever is larger.
 */
#include <cuda_bf16.h>
#include <mma.h>
#include <stdint.h>
#include <string.h>

#include "kernels/cuda/cuda_ops.h"

using namespace nvcuda;
typedef __nv_bfloat16 bf16;

#define FA_BM 64      /* query rows of a tile */
#define FA_BN 64      /* keys of a tile (== FA_BM: the backward's diagonal tile logic relies on it) */
#define FA_THREADS 128 /* 4 warps x 16 rows */
#define FA_LDS (FA_BN + 4) /* FP32 score row stride (floats) */
#define FA_LDP (2 * FA_LDS) /* BF16 view of the same rows (elements) */
#define FA_LOG2E 1.4426950408889634f
#define FA_LN2 0.6931471805599453f
#define FD_THREADS 128
#define FD_MIN_CHUNK 128   /* decode: keys per block at least */
#define FD_PART_ROWS 2048  /* decode: (sequence, chunk) partial rows the workspace holds per head */

typedef wmma::fragment<wmma::accumulator, 16, 16, 16, float> FragAcc;
typedef wmma::fragment<wmma::matrix_a, 16, 16, 16, bf16, wmma::row_major> FragA;
typedef wmma::fragment<wmma::matrix_b, 16, 16, 16, bf16, wmma::row_major> FragBr;
typedef wmma::fragment<wmma::matrix_b, 16, 16, 16, bf16, wmma::col_major> FragBc;

/* Shared-memory layout sizes (bytes) for head size D. */
template <int D>
struct FaLayout {
    static constexpr int LDH = D + 8; /* BF16 tile row stride (elements) */
    static constexpr size_t tile = (size_t)64 * LDH * sizeof(bf16);
    static constexpr size_t score = (size_t)64 * FA_LDS * sizeof(float);
    static constexpr size_t fwd = 3 * tile + score + (size_t)64 * (D + 4) * sizeof(float);
    static constexpr size_t bwd = 4 * tile + 2 * score + 2 * 64 * sizeof(float);
};

/* Stage 64 rows of D floats (row stride ld) as BF16 rows of stride D+8; rows >= valid are zeros. */
template <int D>
static __device__ __forceinline__ void fa_load_tile(bf16 *dst, const float *src, size_t ld, int valid) {
    constexpr int V4 = D / 4, LDH = D + 8;
    for (int x = threadIdx.x; x < 64 * V4; x += FA_THREADS) {
        int r = x / V4, c = (x % V4) * 4;
        float4 f = make_float4(0.0f, 0.0f, 0.0f, 0.0f);
        if (r < valid) f = __ldg(reinterpret_cast<const float4 *>(src + (size_t)r * ld + c));
        __nv_bfloat162 *d2 = reinterpret_cast<__nv_bfloat162 *>(dst + r * LDH + c);
        d2[0] = __floats2bfloat162_rn(f.x, f.y);
        d2[1] = __floats2bfloat162_rn(f.z, f.w);
    }
}

/* Warp: Sw(16 x 64, FP32, row stride FA_LDS) = Aw(16 x D) Bt^T, Bt (64 x D); both BF16, stride D+8. */
template <int D>
static __device__ __forceinline__ void fa_abt(float *Sw, const bf16 *Aw, const bf16 *Bt) {
    constexpr int LDH = D + 8;
    FragA a[D / 16];
#pragma unroll
    for (int kt = 0; kt < D / 16; kt++) wmma::load_matrix_sync(a[kt], Aw + kt * 16, LDH);
#pragma unroll
    for (int nt = 0; nt < 4; nt++) {
        FragAcc acc;
        wmma::fill_fragment(acc, 0.0f);
#pragma unroll
        for (int kt = 0; kt < D / 16; kt++) {
            FragBc b; /* Bt^T (D x 64) column-major = Bt row-major */
            wmma::load_matrix_sync(b, Bt + nt * 16 * LDH + kt * 16, LDH);
            wmma::mma_sync(acc, a[kt], b, acc);
        }
        wmma::store_matrix_sync(Sw + nt * 16, acc, FA_LDS, wmma::mem_row_major);
    }
}

/* Warp: acc[dt] (16 x 16 column block dt of a 16 x D result) += Pw(16 x 64, BF16, stride FA_LDP) B,
 * B (64 x D, BF16, stride D+8). */
template <int D>
static __device__ __forceinline__ void fa_pb(FragAcc *acc, const bf16 *Pw, const bf16 *B) {
    constexpr int LDH = D + 8;
    FragA a[4];
#pragma unroll
    for (int kt = 0; kt < 4; kt++) wmma::load_matrix_sync(a[kt], Pw + kt * 16, FA_LDP);
#pragma unroll
    for (int dt = 0; dt < D / 16; dt++)
#pragma unroll
        for (int kt = 0; kt < 4; kt++) {
            FragBr b;
            wmma::load_matrix_sync(b, B + kt * 16 * LDH + dt * 16, LDH);
            wmma::mma_sync(acc[dt], a[kt], b, acc[dt]);
        }
}

/* Warp: dst rows (16 x D, row stride ld, first `valid` rows) += mul * acc, through the warp's
 * 16 x 16 FP32 staging tile st (stride FA_LDS). */
template <int D>
static __device__ __forceinline__ void fa_add_out(float *dst, size_t ld, int valid, const FragAcc *acc, float mul,
                                                   float *st) {
    const int lane = threadIdx.x & 31;
#pragma unroll
    for (int dt = 0; dt < D / 16; dt++) {
        __syncwarp();
        wmma::store_matrix_sync(st, acc[dt], FA_LDS, wmma::mem_row_major);
        __syncwarp();
        for (int x = lane; x < 256; x += 32) {
            int r = x >> 4, c = x & 15;
            if (r < valid) dst[(size_t)r * ld + dt * 16 + c] += mul * st[r * FA_LDS + c];
        }
    }
    __syncwarp();
}

/* ---------------- forward ---------------- */

/* grid (tiles * B, NH), tile-major; smem FaLayout<D>::fwd: Qs | Ks | Vs (BF16) | S (FP32, P overlaid) | O (FP32) */
template <int D>
static __global__ void __launch_bounds__(FA_THREADS)
    fa_forward_kernel(float *__restrict__ out, float *__restrict__ lse, const float *__restrict__ q,
                      const float *__restrict__ k, const float *__restrict__ v, const int *__restrict__ start,
                      int B, int NH, int KVH, int tiles, float scale2) {
    extern __shared__ __align__(128) unsigned char fa_smem[];
    constexpr int LDH = D + 8, LDO = D + 4;
    bf16 *Qs = reinterpret_cast<bf16 *>(fa_smem), *Ks = Qs + 64 * LDH, *Vs = Ks + 64 * LDH;
    float *S = reinterpret_cast<float *>(Vs + 64 * LDH), *O = S + 64 * FA_LDS;
    const int b = (int)(blockIdx.x % B), tile = tiles - 1 - (int)(blockIdx.x / B); /* biggest tiles first */
    const int h = blockIdx.y, g = h / (NH / KVH);
    const int t0 = start[b], T = start[b + 1] - t0, i0 = tile * FA_BM;
    if (i0 >= T) return;
    const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31;
    const size_t ldq = (size_t)NH * D, ldk = (size_t)KVH * D;
    fa_load_tile<D>(Qs, q + ((size_t)(t0 + i0) * NH + h) * D, ldq, T - i0);
    for (int x = threadIdx.x; x < 64 * LDO; x += FA_THREADS) O[x] = 0.0f;
    /* this lane's row r (2 lanes per row, `half` picks 32 of the 64 key columns / D/2 of O) */
    const int r = warp * 16 + (lane >> 1), half = lane & 1, qi = i0 + r;
    float *Or = O + r * LDO + half * (D / 2);
    float m = -INFINITY, l = 0.0f;
    const int kend = min(i0 + FA_BM, T); /* keys [0, kend) */
    for (int j0 = 0; j0 < kend; j0 += FA_BN) {
        __syncthreads(); /* every warp is done with the previous K/V tile (first pass: Qs, O ready) */
        fa_load_tile<D>(Ks, k + ((size_t)(t0 + j0) * KVH + g) * D, ldk, kend - j0);
        fa_load_tile<D>(Vs, v + ((size_t)(t0 + j0) * KVH + g) * D, ldk, kend - j0);
        __syncthreads();
        fa_abt<D>(S + warp * 16 * FA_LDS, Qs + warp * 16 * LDH, Ks);
        __syncwarp();
        const float *Sr = S + r * FA_LDS + half * 32;
        float sv[32], mx = -INFINITY;
#pragma unroll
        for (int c = 0; c < 32; c++) {
            int kj = j0 + half * 32 + c;
            sv[c] = (kj <= qi && qi < T) ? Sr[c] * scale2 : -INFINITY;
            mx = fmaxf(mx, sv[c]);
        }
        mx = fmaxf(mx, __shfl_xor_sync(0xffffffffu, mx, 1));
        const float mnew = fmaxf(m, mx), base = mnew == -INFINITY ? 0.0f : mnew;
        const float alpha = exp2f(m - base); /* 0 while the row had nothing (O and l are 0 then) */
        float sum = 0.0f;
        __nv_bfloat162 pk[16];
#pragma unroll
        for (int c = 0; c < 32; c += 2) {
            float p0 = exp2f(sv[c] - base), p1 = exp2f(sv[c + 1] - base);
            sum += p0 + p1;
            pk[c / 2] = __floats2bfloat162_rn(p0, p1);
        }
        sum += __shfl_xor_sync(0xffffffffu, sum, 1);
        l = l * alpha + sum;
        m = mnew;
        __syncwarp(); /* all of the warp's score reads are done before P overwrites them */
        __nv_bfloat162 *Pr = reinterpret_cast<__nv_bfloat162 *>(reinterpret_cast<bf16 *>(S) + r * FA_LDP + half * 32);
#pragma unroll
        for (int c = 0; c < 16; c++) Pr[c] = pk[c];
        if (alpha != 1.0f) { /* the row maximum moved (always on the first tile: alpha = 0) */
#pragma unroll 8
            for (int e = 0; e < D / 2; e++) Or[e] *= alpha;
        }
        __syncwarp();
        FragAcc acc[D / 16];
        float *Ow = O + warp * 16 * LDO;
#pragma unroll
        for (int dt = 0; dt < D / 16; dt++) wmma::load_matrix_sync(acc[dt], Ow + dt * 16, LDO, wmma::mem_row_major);
        fa_pb<D>(acc, reinterpret_cast<bf16 *>(S) + warp * 16 * FA_LDP, Vs);
#pragma unroll
        for (int dt = 0; dt < D / 16; dt++) wmma::store_matrix_sync(Ow + dt * 16, acc[dt], LDO, wmma::mem_row_major);
    }
    __syncwarp();
    if (qi < T) {
        const float inv = 1.0f / l;
        float *dst = out + ((size_t)(t0 + qi) * NH + h) * D + half * (D / 2);
        for (int e = 0; e < D / 2; e++) dst[e] = Or[e] * inv;
        if (half == 0) lse[(size_t)(t0 + qi) * NH + h] = (m + log2f(l)) * FA_LN2;
    }
}

/* ---------------- backward ---------------- */

/* Pass 1. grid (tiles * B, NH), tile-major; smem FaLayout<D>::bwd: Qs | dOs | Ks | Vs (BF16) | S | dP (FP32, dS
 * overlaid on S) | Ls | Dv (64 floats each). Writes Dws(N, NH) = dO . O. */
template <int D>
static __global__ void __launch_bounds__(FA_THREADS)
    fa_bwd_dq_kernel(float *__restrict__ dq, float *__restrict__ Dws, const float *__restrict__ dout,
                     const float *__restrict__ q, const float *__restrict__ k, const float *__restrict__ v,
                     const float *__restrict__ out, const float *__restrict__ lse, const int *__restrict__ start,
                     int B, int NH, int KVH, int tiles, float scale2) {
    extern __shared__ __align__(128) unsigned char fa_smem[];
    constexpr int LDH = D + 8;
    bf16 *Qs = reinterpret_cast<bf16 *>(fa_smem), *dOs = Qs + 64 * LDH, *Ks = dOs + 64 * LDH, *Vs = Ks + 64 * LDH;
    float *S = reinterpret_cast<float *>(Vs + 64 * LDH), *dP = S + 64 * FA_LDS, *Ls = dP + 64 * FA_LDS, *Dv = Ls + 64;
    const int b = (int)(blockIdx.x % B), tile = tiles - 1 - (int)(blockIdx.x / B); /* biggest tiles first */
    const int h = blockIdx.y, g = h / (NH / KVH);
    const int t0 = start[b], T = start[b + 1] - t0, i0 = tile * FA_BM;
    if (i0 >= T) return;
    const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31;
    const size_t ldq = (size_t)NH * D, ldk = (size_t)KVH * D, row0 = (size_t)(t0 + i0) * NH + h;
    fa_load_tile<D>(Qs, q + row0 * D, ldq, T - i0);
    fa_load_tile<D>(dOs, dout + row0 * D, ldq, T - i0);
    { /* D_i and lse of row r, two threads per row (a lane pair) */
        const int r = threadIdx.x >> 1, half = threadIdx.x & 1;
        float dd = 0.0f;
        if (i0 + r < T) {
            const float *a = dout + (row0 + (size_t)r * NH) * D + half * (D / 2);
            const float *o = out + (row0 + (size_t)r * NH) * D + half * (D / 2);
            for (int e = 0; e < D / 2; e++) dd += a[e] * o[e];
        }
        dd += __shfl_xor_sync(0xffffffffu, dd, 1);
        if (half == 0) {
            Dv[r] = dd;
            Ls[r] = i0 + r < T ? lse[row0 + (size_t)r * NH] * FA_LOG2E : 0.0f;
            if (i0 + r < T) Dws[row0 + (size_t)r * NH] = dd;
        }
    }
    const int r = warp * 16 + (lane >> 1), half = lane & 1, qi = i0 + r;
    FragAcc acc[D / 16];
#pragma unroll
    for (int dt = 0; dt < D / 16; dt++) wmma::fill_fragment(acc[dt], 0.0f);
    const int kend = min(i0 + FA_BM, T);
    for (int j0 = 0; j0 < kend; j0 += FA_BN) {
        __syncthreads(); /* previous K/V tile consumed (first pass: Qs, dOs, Ls, Dv ready) */
        fa_load_tile<D>(Ks, k + ((size_t)(t0 + j0) * KVH + g) * D, ldk, kend - j0);
        fa_load_tile<D>(Vs, v + ((size_t)(t0 + j0) * KVH + g) * D, ldk, kend - j0);
        __syncthreads();
        fa_abt<D>(S + warp * 16 * FA_LDS, Qs + warp * 16 * LDH, Ks);
        fa_abt<D>(dP + warp * 16 * FA_LDS, dOs + warp * 16 * LDH, Vs);
        __syncwarp();
        const float *Sr = S + r * FA_LDS + half * 32, *dPr = dP + r * FA_LDS + half * 32;
        const float lr = Ls[r], dr = Dv[r];
        __nv_bfloat162 pk[16];
#pragma unroll
        for (int c = 0; c < 32; c += 2) {
            int kj = j0 + half * 32 + c;
            float p0 = (kj <= qi && qi < T) ? exp2f(Sr[c] * scale2 - lr) : 0.0f;
            float p1 = (kj + 1 <= qi && qi < T) ? exp2f(Sr[c + 1] * scale2 - lr) : 0.0f;
            pk[c / 2] = __floats2bfloat162_rn(p0 * (dPr[c] - dr), p1 * (dPr[c + 1] - dr));
        }
        __syncwarp();
        __nv_bfloat162 *dSr = reinterpret_cast<__nv_bfloat162 *>(reinterpret_cast<bf16 *>(S) + r * FA_LDP + half * 32);
#pragma unroll
        for (int c = 0; c < 16; c++) dSr[c] = pk[c];
        __syncwarp();
        fa_pb<D>(acc, reinterpret_cast<bf16 *>(S) + warp * 16 * FA_LDP, Ks);
    }
    /* dP's warp rows are free now: stage the result there */
    fa_add_out<D>(dq + (row0 + (size_t)warp * 16 * NH) * D, ldq, T - i0 - warp * 16, acc, scale2 * FA_LN2,
                  dP + warp * 16 * FA_LDS);
}

/* Pass 2. grid (tiles * B, KVH), tile-major; smem as pass 1: Ks | Vs | Qs | dOs | St | dPt | Ls | Dv. */
template <int D>
static __global__ void __launch_bounds__(FA_THREADS)
    fa_bwd_dkdv_kernel(float *__restrict__ dk, float *__restrict__ dv, const float *__restrict__ Dws,
                       const float *__restrict__ dout, const float *__restrict__ q, const float *__restrict__ k,
                       const float *__restrict__ v, const float *__restrict__ lse, const int *__restrict__ start,
                       int B, int NH, int KVH, int tiles, float scale2) {
    extern __shared__ __align__(128) unsigned char fa_smem[];
    constexpr int LDH = D + 8;
    bf16 *Ks = reinterpret_cast<bf16 *>(fa_smem), *Vs = Ks + 64 * LDH, *Qs = Vs + 64 * LDH, *dOs = Qs + 64 * LDH;
    float *St = reinterpret_cast<float *>(dOs + 64 * LDH), *dPt = St + 64 * FA_LDS, *Ls = dPt + 64 * FA_LDS;
    float *Dv = Ls + 64;
    const int b = (int)(blockIdx.x % B), tile = (int)(blockIdx.x / B); /* low tiles have the most work */
    const int g = blockIdx.y, grp = NH / KVH;
    const int t0 = start[b], T = start[b + 1] - t0, j0 = tile * FA_BN;
    if (j0 >= T) return;
    const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31;
    const size_t ldq = (size_t)NH * D, ldk = (size_t)KVH * D, krow0 = (size_t)(t0 + j0) * KVH + g;
    fa_load_tile<D>(Ks, k + krow0 * D, ldk, T - j0);
    fa_load_tile<D>(Vs, v + krow0 * D, ldk, T - j0);
    /* this lane: key row c of the tile, query columns half*32 .. +32 */
    const int c = warp * 16 + (lane >> 1), half = lane & 1, kj = j0 + c;
    FragAcc dK[D / 16], dV[D / 16];
#pragma unroll
    for (int dt = 0; dt < D / 16; dt++) {
        wmma::fill_fragment(dK[dt], 0.0f);
        wmma::fill_fragment(dV[dt], 0.0f);
    }
    for (int h = g * grp; h < (g + 1) * grp; h++)
        for (int i0 = j0; i0 < T; i0 += FA_BM) { /* FA_BM == FA_BN: tiles before j0 see no key here */
            const size_t row0 = (size_t)(t0 + i0) * NH + h;
            __syncthreads(); /* previous Q/dO tile consumed (first pass: Ks, Vs ready) */
            fa_load_tile<D>(Qs, q + row0 * D, ldq, T - i0);
            fa_load_tile<D>(dOs, dout + row0 * D, ldq, T - i0);
            if (threadIdx.x < 64) {
                const int rr = threadIdx.x;
                const bool ok = i0 + rr < T;
                Ls[rr] = ok ? lse[row0 + (size_t)rr * NH] * FA_LOG2E : 0.0f;
                Dv[rr] = ok ? Dws[row0 + (size_t)rr * NH] : 0.0f;
            }
            __syncthreads();
            fa_abt<D>(St + warp * 16 * FA_LDS, Ks + warp * 16 * LDH, Qs);
            fa_abt<D>(dPt + warp * 16 * FA_LDS, Vs + warp * 16 * LDH, dOs);
            __syncwarp();
            const float *Sr = St + c * FA_LDS + half * 32, *dPr = dPt + c * FA_LDS + half * 32;
            __nv_bfloat162 pk[16], dk2[16];
#pragma unroll
            for (int x = 0; x < 32; x += 2) {
                const int qa = half * 32 + x, qb = qa + 1; /* query columns of the tile */
                float p0 = (kj <= i0 + qa && i0 + qa < T) ? exp2f(Sr[x] * scale2 - Ls[qa]) : 0.0f;
                float p1 = (kj <= i0 + qb && i0 + qb < T) ? exp2f(Sr[x + 1] * scale2 - Ls[qb]) : 0.0f;
                pk[x / 2] = __floats2bfloat162_rn(p0, p1);
                dk2[x / 2] = __floats2bfloat162_rn(p0 * (dPr[x] - Dv[qa]), p1 * (dPr[x + 1] - Dv[qb]));
            }
            __syncwarp();
            __nv_bfloat162 *Pr = reinterpret_cast<__nv_bfloat162 *>(reinterpret_cast<bf16 *>(St) + c * FA_LDP + half * 32);
            __nv_bfloat162 *dSr = reinterpret_cast<__nv_bfloat162 *>(reinterpret_cast<bf16 *>(dPt) + c * FA_LDP + half * 32);
#pragma unroll
            for (int x = 0; x < 16; x++) {
                Pr[x] = pk[x];
                dSr[x] = dk2[x];
            }
            __syncwarp();
            fa_pb<D>(dV, reinterpret_cast<bf16 *>(St) + warp * 16 * FA_LDP, dOs);
            fa_pb<D>(dK, reinterpret_cast<bf16 *>(dPt) + warp * 16 * FA_LDP, Qs);
        }
    const size_t kw = krow0 + (size_t)warp * 16 * KVH;
    const int valid = T - j0 - warp * 16;
    fa_add_out<D>(dk + kw * D, ldk, valid, dK, scale2 * FA_LN2, St + warp * 16 * FA_LDS);
    fa_add_out<D>(dv + kw * D, ldk, valid, dV, 1.0f, St + warp * 16 * FA_LDS);
}

/* ---------------- decode ---------------- */

/* EPL consecutive floats (16-byte aligned for 4, 8-byte for 2) in one load. */
template <int EPL>
static __device__ __forceinline__ void fd_load(float *x, const float *p) {
    if (EPL == 4) {
        float4 f = __ldg(reinterpret_cast<const float4 *>(p));
        x[0] = f.x, x[1] = f.y, x[2] = f.z, x[3] = f.w;
    } else if (EPL == 2) {
        float2 f = __ldg(reinterpret_cast<const float2 *>(p));
        x[0] = f.x, x[1] = f.y;
    } else {
        x[0] = __ldg(p);
    }
}

/* Online-softmax step of one key for GH heads: the warp's lanes hold EPL dims each. */
template <int EPL, int GH>
static __device__ __forceinline__ void fd_update(const float (*qr)[EPL], float (*o)[EPL], float *m, float *l,
                                                 const float *kv, const float *vv) {
#pragma unroll
    for (int hh = 0; hh < GH; hh++) {
        float sc = 0.0f;
#pragma unroll
        for (int e = 0; e < EPL; e++) sc += qr[hh][e] * kv[e];
#pragma unroll
        for (int off = 16; off > 0; off >>= 1) sc += __shfl_xor_sync(0xffffffffu, sc, off);
        const float mn = fmaxf(m[hh], sc), a = exp2f(m[hh] - mn), p = exp2f(sc - mn);
        l[hh] = l[hh] * a + p;
        m[hh] = mn;
#pragma unroll
        for (int e = 0; e < EPL; e++) o[hh][e] = o[hh][e] * a + p * vv[e];
    }
}

/* grid (B * nsplit, NH / GH); block FD_THREADS. Partial (o[HS], m, l) of chunk s of sequence b for
 * the GH query heads h0.. of one kv group, base-2 statistics, o not normalised. */
template <int HS, int GH>
static __global__ void __launch_bounds__(FD_THREADS)
    fd_split_kernel(float *__restrict__ part, const float *__restrict__ q, const float *__restrict__ kc,
                    const float *__restrict__ vc, const int *__restrict__ len, int Tmax, int NH, int KVH,
                    int nsplit, int chunk, float scale2) {
    constexpr int EPL = HS / 32, NW = FD_THREADS / 32;
    __shared__ float wm[NW][GH], wl[NW][GH], wo[NW][GH][HS];
    const int b = blockIdx.x / nsplit, s = blockIdx.x % nsplit, h0 = blockIdx.y * GH;
    const int L = len[b], c0 = s * chunk, c1 = min(c0 + chunk, L);
    if (c0 >= L) return;
    const int g = h0 / (NH / KVH), warp = threadIdx.x >> 5, lane = threadIdx.x & 31;
    float qr[GH][EPL], o[GH][EPL], m[GH], l[GH];
#pragma unroll
    for (int hh = 0; hh < GH; hh++) {
        m[hh] = -INFINITY;
        l[hh] = 0.0f;
#pragma unroll
        for (int e = 0; e < EPL; e++) {
            qr[hh][e] = q[((size_t)b * NH + h0 + hh) * HS + lane * EPL + e] * scale2;
            o[hh][e] = 0.0f;
        }
    }
    const size_t ld = (size_t)KVH * HS;
    const float *kb = kc + ((size_t)b * Tmax * KVH + g) * HS + lane * EPL;
    const float *vb = vc + ((size_t)b * Tmax * KVH + g) * HS + lane * EPL;
    for (int j = c0 + warp; j < c1; j += 2 * NW) { /* two keys per step: both loads in flight */
        const bool two = j + NW < c1;
        float k0[EPL], v0[EPL], k1[EPL], v1[EPL];
        fd_load<EPL>(k0, kb + (size_t)j * ld);
        fd_load<EPL>(v0, vb + (size_t)j * ld);
        if (two) {
            fd_load<EPL>(k1, kb + (size_t)(j + NW) * ld);
            fd_load<EPL>(v1, vb + (size_t)(j + NW) * ld);
        }
        fd_update<EPL, GH>(qr, o, m, l, k0, v0);
        if (two) fd_update<EPL, GH>(qr, o, m, l, k1, v1);
    }
#pragma unroll
    for (int hh = 0; hh < GH; hh++) {
        if (lane == 0) {
            wm[warp][hh] = m[hh];
            wl[warp][hh] = l[hh];
        }
#pragma unroll
        for (int e = 0; e < EPL; e++) wo[warp][hh][lane * EPL + e] = o[hh][e];
    }
    __syncthreads();
    for (int x = threadIdx.x; x < GH * HS; x += FD_THREADS) {
        const int hh = x / HS, e = x % HS;
        float M = -INFINITY;
        for (int w = 0; w < NW; w++) M = fmaxf(M, wm[w][hh]); /* finite: warp 0 saw key c0 */
        float os = 0.0f, ls = 0.0f;
        for (int w = 0; w < NW; w++) {
            const float f = exp2f(wm[w][hh] - M); /* 0 for a warp without keys */
            os += f * wo[w][hh][e];
            ls += f * wl[w][hh];
        }
        float *pr = part + (((size_t)b * NH + h0 + hh) * nsplit + s) * (HS + 2);
        pr[e] = os;
        if (e == 0) {
            pr[HS] = M;
            pr[HS + 1] = ls;
        }
    }
}

/* grid (B, NH); block FD_THREADS: out = merged chunks of (b, h). */
static __global__ void __launch_bounds__(FD_THREADS)
    fd_merge_kernel(float *__restrict__ out, const float *__restrict__ part, const int *__restrict__ len, int NH,
                    int HS, int nsplit, int chunk) {
    const int b = blockIdx.x, h = blockIdx.y;
    const int ns = (len[b] + chunk - 1) / chunk; /* chunks that hold keys (>= 1) */
    const float *pr = part + ((size_t)b * NH + h) * nsplit * (HS + 2);
    float M = -INFINITY;
    for (int s = 0; s < ns; s++) M = fmaxf(M, pr[(size_t)s * (HS + 2) + HS]);
    float ls = 0.0f;
    for (int s = 0; s < ns; s++) ls += exp2f(pr[(size_t)s * (HS + 2) + HS] - M) * pr[(size_t)s * (HS + 2) + HS + 1];
    const float inv = 1.0f / ls;
    for (int e = threadIdx.x; e < HS; e += FD_THREADS) {
        float os = 0.0f;
        for (int s = 0; s < ns; s++) os += exp2f(pr[(size_t)s * (HS + 2) + HS] - M) * pr[(size_t)s * (HS + 2) + e];
        out[((size_t)b * NH + h) * HS + e] = os * inv;
    }
}

/* ---------------- host side ---------------- */

static int fa_naive_forced(void) {
    const char *e = getenv("CISPO_CUDA_NAIVE_ATTN");
    return e != NULL && e[0] != '\0' && strcmp(e, "0") != 0;
}

static int fa_aligned(const void *p) { return ((uintptr_t)p & 15u) == 0; }

/* Opt the kernel in to `bytes` of dynamic shared memory (once per kernel); 0 when the device
 * cannot give that much. */
template <typename K>
static int fa_smem_optin(KernelCtx *ctx, K kernel, size_t bytes, int *done) {
    if ((int)bytes > cuda_impl(ctx)->smem_optin) return 0;
    if (!*done) {
        CUDA_CHECK(cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, (int)bytes));
        *done = 1;
    }
    return 1;
}

size_t flash_attention_ws_bytes_cuda(int max_tokens, int NH, int HS) {
    size_t d = (size_t)(max_tokens > 1 ? max_tokens : 1) * (size_t)NH * sizeof(float);
    size_t part = (size_t)FD_PART_ROWS * (size_t)NH * (size_t)(HS + 2) * sizeof(float);
    return d > part ? d : part;
}

template <int D>
static int fa_forward_launch(KernelCtx *ctx, float *out, float *lse, const float *q, const float *k, const float *v,
                             const DevPack *d, int NH, int KVH, float scale) {
    static int done = 0;
    const size_t smem = FaLayout<D>::fwd;
    if (!fa_smem_optin(ctx, fa_forward_kernel<D>, smem, &done)) return 0;
    const int tiles = (d->max_len + FA_BM - 1) / FA_BM;
    dim3 grid((unsigned)(d->B * tiles), (unsigned)NH);
    fa_forward_kernel<D><<<grid, FA_THREADS, smem, cuda_impl(ctx)->stream>>>(out, lse, q, k, v, d->start, d->B, NH,
                                                                             KVH, tiles, scale * FA_LOG2E);
    CUDA_LAUNCH_CHECK();
    return 1;
}

template <int D>
static int fa_backward_launch(KernelCtx *ctx, float *dq, float *dk, float *dv, const float *dout, const float *q,
                              const float *k, const float *v, const float *out, const float *lse, const DevPack *d,
                              int NH, int KVH, float scale) {
    static int done1 = 0, done2 = 0;
    const size_t smem = FaLayout<D>::bwd;
    if (!fa_smem_optin(ctx, fa_bwd_dq_kernel<D>, smem, &done1)) return 0;
    if (!fa_smem_optin(ctx, fa_bwd_dkdv_kernel<D>, smem, &done2)) return 0;
    float *Dws = (float *)ctx->ws;
    const int tiles = (d->max_len + FA_BM - 1) / FA_BM;
    cudaStream_t st = cuda_impl(ctx)->stream;
    dim3 g1((unsigned)(d->B * tiles), (unsigned)NH), g2((unsigned)(d->B * tiles), (unsigned)KVH);
    fa_bwd_dq_kernel<D><<<g1, FA_THREADS, smem, st>>>(dq, Dws, dout, q, k, v, out, lse, d->start, d->B, NH, KVH, tiles,
                                                       scale * FA_LOG2E);
    CUDA_LAUNCH_CHECK();
    fa_bwd_dkdv_kernel<D><<<g2, FA_THREADS, smem, st>>>(dk, dv, Dws, dout, q, k, v, lse, d->start, d->B, NH, KVH, tiles,
                                                         scale * FA_LOG2E);
    CUDA_LAUNCH_CHECK();
    return 1;
}

/* Total packed tokens and the longest sequence of a host SeqPack (validated later by the upload). */
static void fa_pack_sizes(const SeqPack *pack, long long *N, int *max_len, long long *blocks) {
    *N = 0;
    *max_len = 0;
    *blocks = 0;
    if (pack == NULL || pack->start == NULL || pack->n_seq <= 0) return;
    *N = pack->start[pack->n_seq];
    for (int b = 0; b < pack->n_seq; b++) {
        int T = pack->start[b + 1] - pack->start[b];
        *max_len = T > *max_len ? T : *max_len;
    }
    *blocks = (long long)pack->n_seq * ((*max_len + FA_BM - 1) / FA_BM);
}

/* The flash kernels apply (else: the naive ones): head size 32/64/128, a grid that fits. */
static int fa_usable(int HS, int NH, int KVH, long long N, long long blocks) {
    return !fa_naive_forced() && (HS == 32 || HS == 64 || HS == 128) && NH > 0 && KVH > 0 && NH % KVH == 0 &&
           NH <= 65535 && N > 0 && blocks > 0 && blocks <= 2147483647LL;
}

void flash_attention_forward_cuda(KernelCtx *ctx, float *out, float *lse, const float *q, const float *k,
                                  const float *v, const SeqPack *pack, int NH, int KVH, int HS, float scale) {
    long long N, blocks;
    int max_len;
    fa_pack_sizes(pack, &N, &max_len, &blocks);
    int ok = fa_usable(HS, NH, KVH, N, blocks) && ctx != NULL && out != NULL && lse != NULL && q != NULL &&
             k != NULL && v != NULL && fa_aligned(q) && fa_aligned(k) && fa_aligned(v);
    if (ok) {
        DevPack d = cuda_pack_upload(ctx, pack, "attention_forward");
        if (HS == 32) ok = fa_forward_launch<32>(ctx, out, lse, q, k, v, &d, NH, KVH, scale);
        else if (HS == 64) ok = fa_forward_launch<64>(ctx, out, lse, q, k, v, &d, NH, KVH, scale);
        else ok = fa_forward_launch<128>(ctx, out, lse, q, k, v, &d, NH, KVH, scale);
    }
    if (!ok) attention_forward_cuda(ctx, out, lse, q, k, v, pack, NH, KVH, HS, scale);
}

void flash_attention_backward_cuda(KernelCtx *ctx, float *dq, float *dk, float *dv, const float *dout,
                                   const float *q, const float *k, const float *v, const float *out,
                                   const float *lse, const SeqPack *pack, int NH, int KVH, int HS, float scale) {
    long long N, blocks;
    int max_len;
    fa_pack_sizes(pack, &N, &max_len, &blocks);
    int ok = fa_usable(HS, NH, KVH, N, blocks) && ctx != NULL && dq != NULL && dk != NULL && dv != NULL &&
             dout != NULL && q != NULL && k != NULL && v != NULL && out != NULL && lse != NULL && fa_aligned(q) &&
             fa_aligned(k) && fa_aligned(v) && fa_aligned(dout) && ctx->ws != NULL &&
             ctx->ws_bytes >= (size_t)N * (size_t)NH * sizeof(float);
    if (ok) {
        DevPack d = cuda_pack_upload(ctx, pack, "attention_backward");
        if (HS == 32) ok = fa_backward_launch<32>(ctx, dq, dk, dv, dout, q, k, v, out, lse, &d, NH, KVH, scale);
        else if (HS == 64) ok = fa_backward_launch<64>(ctx, dq, dk, dv, dout, q, k, v, out, lse, &d, NH, KVH, scale);
        else ok = fa_backward_launch<128>(ctx, dq, dk, dv, dout, q, k, v, out, lse, &d, NH, KVH, scale);
    }
    if (!ok) attention_backward_cuda(ctx, dq, dk, dv, dout, q, k, v, out, lse, pack, NH, KVH, HS, scale);
}

/* Heads per decode block: the largest of 8, 4, 2, 1 dividing the group size. */
static int fd_heads_per_block(int grp) { return grp % 8 == 0 ? 8 : grp % 4 == 0 ? 4 : grp % 2 == 0 ? 2 : 1; }

template <int HS>
static void fd_launch_split(dim3 grid, cudaStream_t st, int GH, float *part, const float *q, const float *kc,
                            const float *vc, const int *len, int Tmax, int NH, int KVH, int nsplit, int chunk,
                            float scale2) {
    if (GH == 8)
        fd_split_kernel<HS, 8><<<grid, FD_THREADS, 0, st>>>(part, q, kc, vc, len, Tmax, NH, KVH, nsplit, chunk, scale2);
    else if (GH == 4)
        fd_split_kernel<HS, 4><<<grid, FD_THREADS, 0, st>>>(part, q, kc, vc, len, Tmax, NH, KVH, nsplit, chunk, scale2);
    else if (GH == 2)
        fd_split_kernel<HS, 2><<<grid, FD_THREADS, 0, st>>>(part, q, kc, vc, len, Tmax, NH, KVH, nsplit, chunk, scale2);
    else
        fd_split_kernel<HS, 1><<<grid, FD_THREADS, 0, st>>>(part, q, kc, vc, len, Tmax, NH, KVH, nsplit, chunk, scale2);
    CUDA_LAUNCH_CHECK();
}

/* Chunks per sequence: enough blocks for several waves (32 per SM; 4-warp blocks), chunks of FD_MIN_CHUNK keys or
 * more, and no more partials than the workspace holds (0: it cannot hold one per sequence). */
static int fd_nsplit(KernelCtx *ctx, int B, long long blocks_per_split, int max_len, int NH, int HS) {
    int dev = 0, sms = 0;
    CUDA_CHECK(cudaGetDevice(&dev));
    CUDA_CHECK(cudaDeviceGetAttribute(&sms, cudaDevAttrMultiProcessorCount, dev));
    long long want = (32LL * sms + blocks_per_split - 1) / blocks_per_split;
    long long by_len = (max_len + FD_MIN_CHUNK - 1) / FD_MIN_CHUNK;
    long long rows = ctx->ws != NULL ? (long long)(ctx->ws_bytes / ((size_t)NH * (HS + 2) * sizeof(float))) : 0;
    long long by_ws = rows / B;
    long long n = want < by_len ? want : by_len;
    n = n < by_ws ? n : by_ws;
    if (by_ws < 1) return 0;
    return (int)(n > 1 ? n : 1);
}

void flash_attention_decode_cuda(KernelCtx *ctx, float *out, const float *q, const float *kcache,
                                 const float *vcache, const int *len, int B, int Tmax, int NH, int KVH, int HS,
                                 float scale) {
    int ok = !fa_naive_forced() && (HS == 32 || HS == 64 || HS == 128) && ctx != NULL && out != NULL && q != NULL &&
             kcache != NULL && vcache != NULL && fa_aligned(kcache) && fa_aligned(vcache) && len != NULL && B > 0 && B <= CUDA_MAX_SEQS && Tmax > 0 && NH > 0 &&
             KVH > 0 && NH % KVH == 0 && NH <= 65535;
    int max_len = 0;
    for (int b = 0; ok && b < B; b++) {
        CHECK(len[b] >= 1 && len[b] <= Tmax, "attention_decode: len[%d]=%d outside [1, Tmax=%d]", b, len[b], Tmax);
        max_len = len[b] > max_len ? len[b] : max_len;
    }
    const int GH = ok ? fd_heads_per_block(NH / KVH) : 1;
    const int nsplit = ok ? fd_nsplit(ctx, B, (long long)B * (NH / GH), max_len, NH, HS) : 0;
    if (!ok || nsplit < 1 || (long long)B * nsplit > 2147483647LL) {
        attention_decode_cuda(ctx, out, q, kcache, vcache, len, B, Tmax, NH, KVH, HS, scale);
        return;
    }
    const int chunk = (max_len + nsplit - 1) / nsplit;
    CudaImpl *im = cuda_impl(ctx);
    CUDA_CHECK(cudaMemcpyAsync(im->d_pos0, len, (size_t)B * sizeof(int), cudaMemcpyHostToDevice, im->stream));
    float *part = (float *)ctx->ws;
    dim3 g1((unsigned)(B * nsplit), (unsigned)(NH / GH)), g2((unsigned)B, (unsigned)NH);
    const float s2 = scale * FA_LOG2E;
    if (HS == 32) fd_launch_split<32>(g1, im->stream, GH, part, q, kcache, vcache, im->d_pos0, Tmax, NH, KVH, nsplit, chunk, s2);
    else if (HS == 64) fd_launch_split<64>(g1, im->stream, GH, part, q, kcache, vcache, im->d_pos0, Tmax, NH, KVH, nsplit, chunk, s2);
    else fd_launch_split<128>(g1, im->stream, GH, part, q, kcache, vcache, im->d_pos0, Tmax, NH, KVH, nsplit, chunk, s2);
    fd_merge_kernel<<<g2, FD_THREADS, 0, im->stream>>>(out, part, im->d_pos0, NH, HS, nsplit, chunk);
    CUDA_LAUNCH_CHECK();
}
