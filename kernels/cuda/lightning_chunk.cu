/* kernels/cuda/lightning_chunk.cu: lightning attention forward and backward, chunk-parallel on
 * tensor cores (TF32 WMMA m16n16k8, FP32 accumulation, decay arithmetic in FP32), ALGORITHMS.md
 * §11.3 and KERNELS.md. Same semantics as the CPU reference (kernels/cpu/lightning_attn.c) and the
 * naive recurrent kernels (lightning_attn.cu), which stay as the fallback.
 *
 * One primitive, a "run": decayed causal linear attention over a packed batch, in forward or in
 * reversed time, with roles q, k, v (row views into qkv or dout), an initial state (optionally
 * transposed) and an optional final state:
 *     o_r = sum_{u<=r} lambda^(r-u) (q_r . k_u) v_u + lambda^(r+1) q_r S0,
 *     S_fin = lambda^T S0 + sum_u lambda^(T-1-u) k_u^T v_u   (r, u: positions in the run's time).
 * The forward is one run (q, k, v; S0 = kv_in; S_fin = kv_out). The backward is three:
 *     dQ = run(q=dO, k=V, v=K; S0 = kv_in^T)                        forward time
 *     dV = run(q=K, k=Q, v=dO), dkv_in += lambda * S_fin             reversed time
 *     dK = run(q=V, k=dO, v=Q)                                       reversed time
 * (dV_u = sum_{t>=u} lambda^(t-u) (q_t.k_u) dO_t, dK_u = sum_{t>=u} lambda^(t-u) (v_u.dO_t) q_t,
 * dS0 = sum_t lambda^(t+1) q_t^T dO_t, dQ_t = sum_{u<=t} lambda^(t-u) (dO_t.v_u) k_u
 * + lambda^(t+1) dO_t S0^T), each accumulated into dqkv / dkv_in.
 *
 * A run is three kernels:
 *  1. lc_chunk_kernel<HS, true> (state only): each sequence is cut into segments of L tokens
 *     (L a multiple of the chunk C = 64, chosen per call so the states fit the workspace); for every
 *     segment but a sequence's last, its local state sum lambda^(L-1-u) k_u^T v_u goes to a
 *     workspace slot.
 *  2. lc_scan_kernel: per (sequence, head), turns those slots in place into the state at the start
 *     of the next segment (start(s+1) = lambda^L start(s) + local(s), start(0) = S0).
 *  3. lc_chunk_kernel<HS, false>: one block per (segment, head, slice of 32 value columns) walks its
 *     segment's chunks in order with its slice of the state in shared memory:
 *         P = (Q K^T) ⊙ D,  O = diag(lambda^(c+1)) Q KV + P V,  KV <- lambda^m KV + K^T diag(b) V,
 *     D[i][j] = lambda^(i-j) (i >= j), b[c] = lambda^(m-1-c), m the chunk's rows (< C only for a
 *     sequence's last chunk, rows past m zero-filled). The block of a sequence's last segment
 *     writes the final state.
 * All products are WMMA TF32 (10-bit mantissa, operands rounded to nearest from the FP32 values in
 * shared memory) with FP32 accumulators; the state stays FP32 between chunks. Expected error
 * against the FP32 reference: ~1e-3 of the output's scale. Decay powers lambda^i (i <= 64) are
 * exp() in double rounded to float, as on the CPU.
 * Shared memory per block (HS = 128): Q, K (64 x 132), V slice (64 x 36), P (64 x 68), state slice
 * (128 x 36), powers: 110 KiB, two blocks per SM. Blocks of 4 warps; warp w owns output row tile w.
 * Workspace: segment prefix offsets (CUDA_MAX_SEQS + 1 ints) then the state slots.
 * Falls back to the naive kernels when HS is not 32, 64 or 128, a pointer is not 16-byte aligned,
 * the workspace is missing, or CISPO_CUDA_NAIVE_LIGHTNING is set (and not "0").
 */
#include <math.h>
#include <mma.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "kernels/cuda/cuda_ops.h"

using namespace nvcuda;

#define LC_C 64          /* chunk rows */
#define LC_E 32          /* value (state) columns per block */
#define LC_WARPS 4       /* one per 16-row tile of the chunk */
#define LC_THREADS (32 * LC_WARPS)
#define LC_SEG 512       /* preferred segment length (multiple of LC_C) */
#define LC_LDE (LC_E + 4) /* padded row strides (floats, multiples of 4; 8-row offsets stay 32-byte aligned) */
#define LC_LDP (LC_C + 4)
#define LC_META_BYTES ((((size_t)CUDA_MAX_SEQS + 1) * sizeof(int) + 255) / 256 * 256)

typedef wmma::fragment<wmma::matrix_a, 16, 16, 8, wmma::precision::tf32, wmma::row_major> FragAr;
typedef wmma::fragment<wmma::matrix_a, 16, 16, 8, wmma::precision::tf32, wmma::col_major> FragAc;
typedef wmma::fragment<wmma::matrix_b, 16, 16, 8, wmma::precision::tf32, wmma::row_major> FragBr;
typedef wmma::fragment<wmma::matrix_b, 16, 16, 8, wmma::precision::tf32, wmma::col_major> FragBc;
typedef wmma::fragment<wmma::accumulator, 16, 16, 8, float> FragC;

/* One run (see the file comment). Role X of token p (packed row) and head h is X + p*ldX + h*hX. */
typedef struct {
    const float *q, *k, *v;
    int ldq, ldk, ldv, hq, hk, hv;
    float *out; /* (N, .) rows p*ldo + h*ho, HS columns */
    int ldo, ho, out_acc;  /* out_acc: += instead of = */
    const float *s0;       /* (B, NH, HS, HS) or NULL */
    int s0_trans;          /* the run's state is S0^T */
    float *sfin;           /* (B, NH, HS, HS) or NULL */
    int sfin_acc, sfin_lam; /* += instead of =; times lambda */
    int rev;               /* reversed time: run position r is token T-1-r */
} LcRun;

/* Segmentation of the packed batch, device pointers. Item i (a segment) belongs to the sequence b
 * with segpre[b] <= i < segpre[b+1]; sequence b's slots are segpre[b] - b + s, s < nseg_b - 1. */
typedef struct {
    const int *start;    /* (B+1) */
    const int *segpre;   /* (B+1) */
    const float *slopes; /* (NH) */
    float *slots;        /* (n_slots, NH, HS, HS) */
    int B, NH, L;
} LcGrid;

template <typename Frag> static __device__ __forceinline__ void lc_tf32(Frag &f) {
#pragma unroll
    for (int i = 0; i < f.num_elements; i++) f.x[i] = wmma::__float_to_tf32(f.x[i]);
}

/* Shared-memory layout of lc_chunk_kernel<HS, STATE_ONLY>, in floats. */
template <int HS, bool STATE_ONLY> struct LcSmem {
    static constexpr int LDQ = HS + 4;
    static constexpr int Q = 0;                                       /* (C, LDQ); output staging */
    static constexpr int K = STATE_ONLY ? 0 : Q + LC_C * LDQ;         /* (C, LDQ) */
    static constexpr int V = K + LC_C * LDQ;                          /* (C, LC_LDE) */
    static constexpr int P = V + LC_C * LC_LDE;                       /* (C, LC_LDP), full only */
    static constexpr int KV = STATE_ONLY ? P : P + LC_C * LC_LDP;     /* (HS, LC_LDE) */
    static constexpr int PW = KV + HS * LC_LDE;                       /* (C + 1) powers, padded */
    static constexpr int FLOATS = PW + LC_C + 4;
};

/* dst(C, ld) = W columns of C rows of a role (src at head and column offset, row stride lds); run
 * row c is position r0 + c, token t0 + (rev ? T-1-r : r); rows c >= m are zero. */
template <int W>
static __device__ __forceinline__ void lc_load_rows(float *dst, int ld, const float *src, int lds, int t0, int T,
                                                    int r0, int m, int rev) {
    constexpr int V4 = W / 4;
    for (int i = threadIdx.x; i < LC_C * V4; i += LC_THREADS) {
        const int c = i / V4, j = i % V4;
        float4 x = make_float4(0.0f, 0.0f, 0.0f, 0.0f);
        if (c < m) {
            const int r = r0 + c, t = rev ? T - 1 - r : r;
            x = __ldg(reinterpret_cast<const float4 *>(src + (size_t)(t0 + t) * lds) + j);
        }
        *reinterpret_cast<float4 *>(dst + c * ld + 4 * j) = x;
    }
}

/* Rows c < m of the staged output O(C, LC_LDE) to dst (head and column offset applied), = or +=. */
static __device__ __forceinline__ void lc_store_rows(float *dst, int ldd, const float *O, int t0, int T, int r0,
                                                     int m, int rev, int acc) {
    constexpr int V4 = LC_E / 4;
    for (int i = threadIdx.x; i < LC_C * V4; i += LC_THREADS) {
        const int c = i / V4, j = i % V4;
        if (c >= m) continue;
        const int r = r0 + c, t = rev ? T - 1 - r : r;
        float4 *p = reinterpret_cast<float4 *>(dst + (size_t)(t0 + t) * ldd) + j;
        float4 x = *reinterpret_cast<const float4 *>(O + c * LC_LDE + 4 * j);
        if (acc) {
            const float4 y = *p;
            x.x += y.x, x.y += y.y, x.z += y.z, x.w += y.w;
        }
        *p = x;
    }
}

/* P(C, C) lower 16x16 tiles = Q K^T; the 10 tiles (ti >= tj) are spread over the warps. */
template <int HS> static __device__ __forceinline__ void lc_scores(float *P, const float *Q, const float *K, int warp) {
    constexpr int LDQ = HS + 4;
    for (int idx = warp; idx < 10; idx += LC_WARPS) {
        const int ti = idx < 1 ? 0 : idx < 3 ? 1 : idx < 6 ? 2 : 3, tj = idx - ti * (ti + 1) / 2;
        FragC acc;
        wmma::fill_fragment(acc, 0.0f);
#pragma unroll 4
        for (int kk = 0; kk < HS / 8; kk++) {
            FragAr a;
            FragBc bk; /* K^T as a column-major (HS, C) view of K */
            wmma::load_matrix_sync(a, Q + ti * 16 * LDQ + kk * 8, LDQ);
            wmma::load_matrix_sync(bk, K + tj * 16 * LDQ + kk * 8, LDQ);
            lc_tf32(a);
            lc_tf32(bk);
            wmma::mma_sync(acc, a, bk, acc);
        }
        wmma::store_matrix_sync(P + ti * 16 * LC_LDP + tj * 16, acc, LC_LDP, wmma::mem_row_major);
    }
}

/* P <- P ⊙ D (zero above the diagonal, garbage in skipped tiles included); Q rows *= lambda^(c+1). */
template <int HS> static __device__ __forceinline__ void lc_decay(float *P, float *Q, const float *pw) {
    constexpr int LDQ = HS + 4;
    for (int i = threadIdx.x; i < LC_C * LC_C; i += LC_THREADS) {
        const int r = i / LC_C, c = i % LC_C;
        float *p = P + r * LC_LDP + c;
        *p = c <= r ? *p * pw[r - c] : 0.0f;
    }
    for (int i = threadIdx.x; i < LC_C * HS; i += LC_THREADS) {
        const int r = i / HS, d = i % HS;
        Q[r * LDQ + d] *= pw[r + 1];
    }
}

/* Warp w's output row tile: acc[n] (16 x 16, columns n*16..) = (aQ) KV + P V, P's zero tiles skipped. */
template <int HS>
static __device__ __forceinline__ void lc_output(FragC (&acc)[2], const float *Q, const float *P, const float *V,
                                                 const float *KV, int warp) {
    constexpr int LDQ = HS + 4;
    const int ti = warp;
    wmma::fill_fragment(acc[0], 0.0f);
    wmma::fill_fragment(acc[1], 0.0f);
#pragma unroll 4
    for (int kk = 0; kk < HS / 8; kk++) {
        FragAr a;
        wmma::load_matrix_sync(a, Q + ti * 16 * LDQ + kk * 8, LDQ);
        lc_tf32(a);
#pragma unroll
        for (int n = 0; n < 2; n++) {
            FragBr bs;
            wmma::load_matrix_sync(bs, KV + kk * 8 * LC_LDE + n * 16, LC_LDE);
            lc_tf32(bs);
            wmma::mma_sync(acc[n], a, bs, acc[n]);
        }
    }
    for (int kk = 0; kk < (ti + 1) * 2; kk++) {
        FragAr a;
        wmma::load_matrix_sync(a, P + ti * 16 * LC_LDP + kk * 8, LC_LDP);
        lc_tf32(a);
#pragma unroll
        for (int n = 0; n < 2; n++) {
            FragBr bv;
            wmma::load_matrix_sync(bv, V + kk * 8 * LC_LDE + n * 16, LC_LDE);
            lc_tf32(bv);
            wmma::mma_sync(acc[n], a, bv, acc[n]);
        }
    }
}

/* KV(HS, E) <- lambda^m KV + K^T V' (V' = V with rows already scaled by b); warp w owns tiles
 * j = w*HS/32 .. +HS/32 (row tile j/2, column tile j%2), read and written by it alone. */
template <int HS>
static __device__ __forceinline__ void lc_state_update(float *KV, const float *K, const float *V, float lam_m, int m,
                                                       int warp) {
    constexpr int LDQ = HS + 4, PER = HS / 32;
    FragC acc[PER];
#pragma unroll
    for (int i = 0; i < PER; i++) {
        const int j = warp * PER + i, td = j / 2, tn = j % 2;
        wmma::load_matrix_sync(acc[i], KV + td * 16 * LC_LDE + tn * 16, LC_LDE, wmma::mem_row_major);
#pragma unroll
        for (int x = 0; x < acc[i].num_elements; x++) acc[i].x[x] *= lam_m;
    }
    const int ksteps = (m + 7) / 8;
    for (int kk = 0; kk < ksteps; kk++) {
#pragma unroll
        for (int i = 0; i < PER; i++) {
            const int j = warp * PER + i, td = j / 2, tn = j % 2;
            FragAc a; /* K^T (HS, C) as a column-major view of K */
            FragBr bv;
            wmma::load_matrix_sync(a, K + kk * 8 * LDQ + td * 16, LDQ);
            wmma::load_matrix_sync(bv, V + kk * 8 * LC_LDE + tn * 16, LC_LDE);
            lc_tf32(a);
            lc_tf32(bv);
            wmma::mma_sync(acc[i], a, bv, acc[i]);
        }
    }
#pragma unroll
    for (int i = 0; i < PER; i++) {
        const int j = warp * PER + i, td = j / 2, tn = j % 2;
        wmma::store_matrix_sync(KV + td * 16 * LC_LDE + tn * 16, acc[i], LC_LDE, wmma::mem_row_major);
    }
}

/* KV slice (HS, E) from an (HS, HS) state at column e0 (trans: the state is src^T), or zeros. */
template <int HS>
static __device__ __forceinline__ void lc_state_in(float *KV, const float *src, int trans, int e0) {
    for (int i = threadIdx.x; i < HS * LC_E; i += LC_THREADS) {
        const int d = i / LC_E, e = i % LC_E;
        float x = 0.0f;
        if (src) x = trans ? src[(size_t)(e0 + e) * HS + d] : src[(size_t)d * HS + e0 + e];
        KV[d * LC_LDE + e] = x;
    }
}

/* (HS, HS) state dst at column e0 = (or +=) scale * KV slice. */
template <int HS>
static __device__ __forceinline__ void lc_state_out(float *dst, const float *KV, int e0, float scale, int acc) {
    for (int i = threadIdx.x; i < HS * LC_E; i += LC_THREADS) {
        const int d = i / LC_E, e = i % LC_E;
        float *p = dst + (size_t)d * HS + e0 + e;
        const float x = scale * KV[d * LC_LDE + e];
        *p = acc ? *p + x : x;
    }
}

/* grid (items * HS/LC_E, NH): block = (segment item, value slice, head); see the file comment. */
template <int HS, bool STATE_ONLY>
static __global__ void __launch_bounds__(LC_THREADS) lc_chunk_kernel(LcRun r, LcGrid g) {
    extern __shared__ __align__(128) float lc_smem[];
    typedef LcSmem<HS, STATE_ONLY> SM;
    constexpr int NSL = HS / LC_E;
    const int item = blockIdx.x / NSL, e0 = (blockIdx.x % NSL) * LC_E, h = blockIdx.y, warp = threadIdx.x / 32;
    const int b = dev_find_seq(g.segpre, g.B, item);
    const int s = item - g.segpre[b], nseg = g.segpre[b + 1] - g.segpre[b];
    if (STATE_ONLY && s == nseg - 1) return; /* the last segment's local state is never needed */
    const int t0 = g.start[b], T = g.start[b + 1] - t0;
    const int r_begin = s * g.L, r_end = min(T, r_begin + g.L);
    const size_t nS = (size_t)HS * HS, slot0 = (size_t)(g.segpre[b] - b);
    float *Q = lc_smem + SM::Q, *K = lc_smem + SM::K, *V = lc_smem + SM::V, *P = lc_smem + SM::P;
    float *KV = lc_smem + SM::KV, *pw = lc_smem + SM::PW;
    const float slope = g.slopes[h];
    for (int i = threadIdx.x; i <= LC_C; i += LC_THREADS) pw[i] = (float)exp(-(double)slope * (double)i);
    if constexpr (STATE_ONLY) lc_state_in<HS>(KV, NULL, 0, e0);
    else if (s == 0) lc_state_in<HS>(KV, r.s0 ? r.s0 + ((size_t)b * g.NH + h) * nS : NULL, r.s0_trans, e0);
    else lc_state_in<HS>(KV, g.slots + ((slot0 + s - 1) * g.NH + h) * nS, 0, e0);
    const float *qh = r.q + (size_t)h * r.hq, *kh = r.k + (size_t)h * r.hk, *vh = r.v + (size_t)h * r.hv + e0;
    for (int r0 = r_begin; r0 < r_end; r0 += LC_C) {
        const int m = min(LC_C, r_end - r0);
        __syncthreads(); /* the previous chunk is done with Q (staging), K, V; KV and pw are written */
        if constexpr (!STATE_ONLY) lc_load_rows<HS>(Q, SM::LDQ, qh, r.ldq, t0, T, r0, m, r.rev);
        lc_load_rows<HS>(K, SM::LDQ, kh, r.ldk, t0, T, r0, m, r.rev);
        lc_load_rows<LC_E>(V, LC_LDE, vh, r.ldv, t0, T, r0, m, r.rev);
        __syncthreads();
        if constexpr (!STATE_ONLY) {
            lc_scores<HS>(P, Q, K, warp);
            __syncthreads();
            lc_decay<HS>(P, Q, pw);
            __syncthreads();
            FragC acc[2];
            lc_output<HS>(acc, Q, P, V, KV, warp);
            __syncthreads(); /* everyone is done reading Q, P, V and KV */
            wmma::store_matrix_sync(Q + warp * 16 * LC_LDE, acc[0], LC_LDE, wmma::mem_row_major);
            wmma::store_matrix_sync(Q + warp * 16 * LC_LDE + 16, acc[1], LC_LDE, wmma::mem_row_major);
        }
        for (int i = threadIdx.x; i < LC_C * LC_E; i += LC_THREADS) { /* V rows *= lambda^(m-1-c) */
            const int c = i / LC_E, e = i % LC_E;
            V[c * LC_LDE + e] *= c < m ? pw[m - 1 - c] : 0.0f;
        }
        __syncthreads();
        if constexpr (!STATE_ONLY) lc_store_rows(r.out + (size_t)h * r.ho + e0, r.ldo, Q, t0, T, r0, m, r.rev, r.out_acc);
        lc_state_update<HS>(KV, K, V, pw[m], m, warp);
    }
    __syncthreads();
    if constexpr (STATE_ONLY) lc_state_out<HS>(g.slots + ((slot0 + s) * g.NH + h) * nS, KV, e0, 1.0f, 0);
    else if (s == nseg - 1 && r.sfin)
        lc_state_out<HS>(r.sfin + ((size_t)b * g.NH + h) * nS, KV, e0, r.sfin_lam ? pw[1] : 1.0f, r.sfin_acc);
}

/* grid (B, NH, z): the slots of sequence b (local states of its segments but the last) become the
 * states at the start of segments 1..nseg-1, in place. */
static __global__ void lc_scan_kernel(LcRun r, LcGrid g, int HS) {
    const int b = blockIdx.x, h = blockIdx.y;
    const int nseg = g.segpre[b + 1] - g.segpre[b];
    if (nseg < 2) return;
    const size_t nS = (size_t)HS * HS, slot0 = (size_t)(g.segpre[b] - b);
    const float lamL = (float)exp(-(double)g.slopes[h] * (double)g.L);
    const float *S0 = r.s0 ? r.s0 + ((size_t)b * g.NH + h) * nS : NULL;
    for (size_t i = (size_t)blockIdx.z * blockDim.x + threadIdx.x; i < nS; i += (size_t)gridDim.z * blockDim.x) {
        const size_t d = i / HS, e = i % HS;
        float cur = S0 ? (r.s0_trans ? S0[e * HS + d] : S0[i]) : 0.0f;
        for (int s = 0; s < nseg - 1; s++) {
            float *p = g.slots + ((slot0 + s) * g.NH + h) * nS + i;
            cur = lamL * cur + *p;
            *p = cur;
        }
    }
}

template <int HS, bool STATE_ONLY> static size_t lc_smem_bytes(void) {
    return (size_t)LcSmem<HS, STATE_ONLY>::FLOATS * sizeof(float);
}

/* The three kernels of one run. */
template <int HS> static void lc_run_hs(CudaImpl *im, const LcRun &r, const LcGrid &g, int items) {
    const size_t s_state = lc_smem_bytes<HS, true>(), s_full = lc_smem_bytes<HS, false>();
    CHECK(s_full <= (size_t)im->smem_optin, "lightning (chunked): HS=%d needs %zu bytes of shared memory, the "
          "device allows %d", HS, s_full, im->smem_optin);
    CHECK(items > 0 && (long long)items * (HS / LC_E) < (1LL << 31), "lightning (chunked): %d segments", items);
    const dim3 grid((unsigned)items * (HS / LC_E), (unsigned)g.NH);
    if (items > g.B) { /* some sequence has several segments */
        CUDA_CHECK(cudaFuncSetAttribute(lc_chunk_kernel<HS, true>, cudaFuncAttributeMaxDynamicSharedMemorySize,
                                        (int)s_state));
        lc_chunk_kernel<HS, true><<<grid, LC_THREADS, s_state, im->stream>>>(r, g);
        CUDA_LAUNCH_CHECK();
        const unsigned z = (unsigned)((HS * HS + CUDA_THREADS - 1) / CUDA_THREADS);
        lc_scan_kernel<<<dim3((unsigned)g.B, (unsigned)g.NH, z), CUDA_THREADS, 0, im->stream>>>(r, g, HS);
        CUDA_LAUNCH_CHECK();
    }
    CUDA_CHECK(cudaFuncSetAttribute(lc_chunk_kernel<HS, false>, cudaFuncAttributeMaxDynamicSharedMemorySize,
                                    (int)s_full));
    lc_chunk_kernel<HS, false><<<grid, LC_THREADS, s_full, im->stream>>>(r, g);
    CUDA_LAUNCH_CHECK();
}

static void lc_run(CudaImpl *im, int HS, const LcRun &r, const LcGrid &g, int items) {
    switch (HS) {
    case 32: lc_run_hs<32>(im, r, g, items); break;
    case 64: lc_run_hs<64>(im, r, g, items); break;
    case 128: lc_run_hs<128>(im, r, g, items); break;
    default: CHECK(0, "lightning (chunked): HS=%d has no kernel", HS);
    }
}

static int lc_aligned(const void *p) { return p == NULL || ((uintptr_t)p & 15u) == 0; }

/* Whether the chunked kernels take this call (else the naive ones do). */
static int lc_usable(const KernelCtx *ctx, int HS, const void *a, const void *b, const void *c) {
    const char *env = getenv("CISPO_CUDA_NAIVE_LIGHTNING");
    if (env != NULL && env[0] != '\0' && strcmp(env, "0") != 0) return 0;
    if (HS != 32 && HS != 64 && HS != 128) return 0;
    if (ctx == NULL || ctx->ws == NULL || ctx->ws_bytes < LC_META_BYTES || ((uintptr_t)ctx->ws & 255u) != 0) return 0;
    return lc_aligned(a) && lc_aligned(b) && lc_aligned(c);
}

/* Segment length and prefix offsets for the pack; uploads the offsets, the pack and the slopes.
 * Returns the number of items (segments). */
static int lc_plan(KernelCtx *ctx, LcGrid *g, const SeqPack *pack, const float *slopes, int NH, int HS,
                   const char *op) {
    CHECK(slopes != NULL && NH > 0 && NH <= CUDA_MAX_HEADS, "%s: NH=%d (1..%d) or NULL slopes", op, NH,
          CUDA_MAX_HEADS);
    CudaImpl *im = cuda_impl(ctx);
    DevPack d = cuda_pack_upload(ctx, pack, op); /* validates the pack */
    const size_t slot_bytes = (size_t)NH * HS * HS * sizeof(float);
    const size_t cap = (ctx->ws_bytes - LC_META_BYTES) / slot_bytes;
    int L = LC_SEG;
    for (;;) { /* slots needed: sum over sequences of (segments - 1) */
        size_t need = 0;
        for (int b = 0; b < d.B; b++) {
            int T = pack->start[b + 1] - pack->start[b];
            need += T > L ? (size_t)((T - 1) / L) : 0;
        }
        if (need <= cap || L >= d.max_len) break;
        L = L <= (1 << 29) ? 2 * L : d.max_len;
    }
    int *segpre = (int *)xmalloc((size_t)(d.B + 1) * sizeof(int));
    segpre[0] = 0;
    for (int b = 0; b < d.B; b++) {
        int T = pack->start[b + 1] - pack->start[b];
        int nseg = T > 0 ? (T + L - 1) / L : 1;
        CHECK((long long)segpre[b] + nseg <= (1 << 30), "%s: too many segments", op);
        segpre[b + 1] = segpre[b] + nseg;
    }
    int *d_segpre = (int *)ctx->ws;
    CUDA_CHECK(cudaMemcpyAsync(d_segpre, segpre, (size_t)(d.B + 1) * sizeof(int), cudaMemcpyHostToDevice,
                               im->stream));
    CUDA_CHECK(cudaMemcpyAsync(im->d_slopes, slopes, (size_t)NH * sizeof(float), cudaMemcpyHostToDevice,
                               im->stream));
    const int items = segpre[d.B];
    free(segpre); /* pageable source: staged before cudaMemcpyAsync returned */
    g->start = d.start;
    g->segpre = d_segpre;
    g->slopes = im->d_slopes;
    g->slots = (float *)((char *)ctx->ws + LC_META_BYTES);
    g->B = d.B;
    g->NH = NH;
    g->L = L;
    return items;
}

extern "C" {

size_t lightning_ws_bytes_chunk_cuda(int max_seq_len, int NH, int HS, int block) {
    CHECK(NH > 0 && HS > 0 && block > 0, "lightning_ws_bytes: NH=%d HS=%d block=%d must be positive", NH, HS, block);
    size_t slots = max_seq_len > 0 ? (size_t)max_seq_len / LC_SEG : 0;
    return LC_META_BYTES + slots * (size_t)NH * HS * HS * sizeof(float);
}

void lightning_forward_chunk_cuda(KernelCtx *ctx, float *out, float *kv_out, const float *qkv, const float *kv_in,
                                  const float *slopes, const SeqPack *pack, int NH, int HS, int block) {
    if (!lc_usable(ctx, HS, out, qkv, NULL)) {
        lightning_forward_cuda(ctx, out, kv_out, qkv, kv_in, slopes, pack, NH, HS, block);
        return;
    }
    CHECK(out != NULL && qkv != NULL && block > 0, "lightning_forward: NULL out/qkv or block=%d", block);
    LcGrid g;
    const int items = lc_plan(ctx, &g, pack, slopes, NH, HS, "lightning_forward");
    const int ld3 = NH * 3 * HS;
    LcRun r;
    memset(&r, 0, sizeof(r));
    r.q = qkv, r.k = qkv + HS, r.v = qkv + 2 * HS;
    r.ldq = r.ldk = r.ldv = ld3;
    r.hq = r.hk = r.hv = 3 * HS;
    r.out = out, r.ldo = NH * HS, r.ho = HS, r.out_acc = 0;
    r.s0 = kv_in, r.s0_trans = 0;
    r.sfin = kv_out, r.sfin_acc = 0, r.sfin_lam = 0;
    r.rev = 0;
    lc_run(cuda_impl(ctx), HS, r, g, items);
}

void lightning_backward_chunk_cuda(KernelCtx *ctx, float *dqkv, float *dkv_in, const float *dout, const float *qkv,
                                   const float *kv_in, const float *slopes, const SeqPack *pack, int NH, int HS,
                                   int block) {
    if (!lc_usable(ctx, HS, dqkv, qkv, dout)) {
        lightning_backward_cuda(ctx, dqkv, dkv_in, dout, qkv, kv_in, slopes, pack, NH, HS, block);
        return;
    }
    CHECK(dqkv != NULL && dout != NULL && qkv != NULL && block > 0,
          "lightning_backward: NULL dqkv/dout/qkv or block=%d", block);
    LcGrid g;
    const int items = lc_plan(ctx, &g, pack, slopes, NH, HS, "lightning_backward");
    CudaImpl *im = cuda_impl(ctx);
    const int ld3 = NH * 3 * HS, ldo = NH * HS;
    const float *Q = qkv, *K = qkv + HS, *V = qkv + 2 * HS;
    LcRun r;
    memset(&r, 0, sizeof(r));
    r.ldo = ld3, r.ho = 3 * HS, r.out_acc = 1;
    /* dQ = run(q=dO, k=V, v=K; S0^T), forward time */
    r.q = dout, r.ldq = ldo, r.hq = HS;
    r.k = V, r.ldk = ld3, r.hk = 3 * HS;
    r.v = K, r.ldv = ld3, r.hv = 3 * HS;
    r.out = dqkv, r.s0 = kv_in, r.s0_trans = 1, r.rev = 0;
    lc_run(im, HS, r, g, items);
    /* dV = run(q=K, k=Q, v=dO), reversed time; dS0 += lambda * its final state */
    r.q = K, r.ldq = ld3, r.hq = 3 * HS;
    r.k = Q, r.ldk = ld3, r.hk = 3 * HS;
    r.v = dout, r.ldv = ldo, r.hv = HS;
    r.out = dqkv + 2 * HS, r.s0 = NULL, r.s0_trans = 0, r.rev = 1;
    r.sfin = dkv_in, r.sfin_acc = 1, r.sfin_lam = 1;
    lc_run(im, HS, r, g, items);
    /* dK = run(q=V, k=dO, v=Q), reversed time */
    r.q = V, r.ldq = ld3, r.hq = 3 * HS;
    r.k = dout, r.ldk = ldo, r.hk = HS;
    r.v = Q, r.ldv = ld3, r.hv = 3 * HS;
    r.out = dqkv + HS, r.sfin = NULL;
    lc_run(im, HS, r, g, items);
}

} /* extern "C" */
