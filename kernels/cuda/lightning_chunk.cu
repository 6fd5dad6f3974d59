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
 *  3. lc_chunk_kernel<HS, false>: one block per (segment, head) walks its segment's chunks in order
 *     with the whole HS x HS state in shared memory:
 *         P = (Q K^T) ⊙ D,  O = diag(lambda^(c+1)) Q KV + P V,  KV <- lambda^m KV + K^T diag(b) V,
 *     D[i][j] = lambda^(i-j) (i >= j), b[c] = lambda^(m-1-c), m the chunk's rows (< C only for a
 *     sequence's last chunk, rows past m zero-filled). The block of a sequence's last segment
 *     writes the final state.
 * All products are WMMA TF32 (10-bit mantissa) with FP32 accumulators; operands are rounded to
 * nearest once, in shared memory, when a chunk is loaded or scaled (the FP32 state is converted
 * fragment by fragment); the state stays FP32 between chunks. Measured error against the FP32
 * reference: 1e-4..4e-4 of each output's norm. Decay powers lambda^i (i <= 64) are exp() in double
 * rounded to float, as on the CPU.
 * Layout: 8 warps; chunk rows are loaded with cp.async (16 bytes, zero-fill past m); fragments are
 * loaded and stored with wmma.*.shared PTX (the C++ API's generic loads made the kernel
 * issue-bound). Shared memory (HS = 128): Q, K, V (64 x 132), P (64 x 68), state (128 x 132),
 * powers: 182 KiB, one block per SM; 85 KiB for HS = 64, 49 KiB for HS = 32.
 * Workspace: segment prefix offsets (CUDA_MAX_SEQS + 1 ints) then the state slots.
 * Falls back to the naive kernels when HS is not 32, 64 or 128, a pointer is not 16-byte aligned,
 * the workspace is missing, or CISPO_CUDA_NAIVE_LIGHTNING is set (and not "0").
 */
#include <cuda_pipeline.h>
#include <math.h>
#include <mma.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "kernels/cuda/cuda_ops.h"

using namespace nvcuda;

#define LC_C 64          /* chunk rows */
#define LC_WARPS 8       /* two per 16-row tile of the chunk */
#define LC_THREADS (32 * LC_WARPS)
#define LC_SEG 512       /* preferred segment length (multiple of LC_C) */
#define LC_LDP (LC_C + 4) /* padded row stride of the score block */
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

/* WMMA fragment loads and stores from/to shared memory with the .shared state space spelled out:
 * the C++ API emits generic wmma.load/store (64-bit addresses, generic LD), which made the first
 * version issue-bound. Same fragments and register order as the API (static_asserts below). */
#define LC_SHARED(p) __builtin_assume(__isShared(p))
#define LC_SADDR(p) ((unsigned)__cvta_generic_to_shared(p))
#define LC_U32(x) (*reinterpret_cast<unsigned *>(&(x))) /* tf32 operands are .b32 registers */
static_assert(sizeof(FragAr().x) == 16 && sizeof(FragBc().x) == 16 && sizeof(FragC().x) == 32, "fragment sizes");

static __device__ __forceinline__ void lc_ld(FragAr &f, const float *p, int ld) {
    asm volatile("wmma.load.a.sync.aligned.row.m16n16k8.shared.tf32 {%0, %1, %2, %3}, [%4], %5;"
                 : "=r"(LC_U32(f.x[0])), "=r"(LC_U32(f.x[1])), "=r"(LC_U32(f.x[2])), "=r"(LC_U32(f.x[3]))
                 : "r"(LC_SADDR(p)), "r"(ld));
}
static __device__ __forceinline__ void lc_ld(FragAc &f, const float *p, int ld) {
    asm volatile("wmma.load.a.sync.aligned.col.m16n16k8.shared.tf32 {%0, %1, %2, %3}, [%4], %5;"
                 : "=r"(LC_U32(f.x[0])), "=r"(LC_U32(f.x[1])), "=r"(LC_U32(f.x[2])), "=r"(LC_U32(f.x[3]))
                 : "r"(LC_SADDR(p)), "r"(ld));
}
static __device__ __forceinline__ void lc_ld(FragBr &f, const float *p, int ld) {
    asm volatile("wmma.load.b.sync.aligned.row.m16n16k8.shared.tf32 {%0, %1, %2, %3}, [%4], %5;"
                 : "=r"(LC_U32(f.x[0])), "=r"(LC_U32(f.x[1])), "=r"(LC_U32(f.x[2])), "=r"(LC_U32(f.x[3]))
                 : "r"(LC_SADDR(p)), "r"(ld));
}
static __device__ __forceinline__ void lc_ld(FragBc &f, const float *p, int ld) {
    asm volatile("wmma.load.b.sync.aligned.col.m16n16k8.shared.tf32 {%0, %1, %2, %3}, [%4], %5;"
                 : "=r"(LC_U32(f.x[0])), "=r"(LC_U32(f.x[1])), "=r"(LC_U32(f.x[2])), "=r"(LC_U32(f.x[3]))
                 : "r"(LC_SADDR(p)), "r"(ld));
}
static __device__ __forceinline__ void lc_ld(FragC &f, const float *p, int ld) {
    asm volatile("wmma.load.c.sync.aligned.row.m16n16k8.shared.f32 {%0, %1, %2, %3, %4, %5, %6, %7}, [%8], %9;"
                 : "=f"(f.x[0]), "=f"(f.x[1]), "=f"(f.x[2]), "=f"(f.x[3]), "=f"(f.x[4]), "=f"(f.x[5]), "=f"(f.x[6]),
                   "=f"(f.x[7])
                 : "r"(LC_SADDR(p)), "r"(ld));
}
static __device__ __forceinline__ void lc_st(float *p, const FragC &f, int ld) {
    asm volatile("wmma.store.d.sync.aligned.row.m16n16k8.shared.f32 [%0], {%1, %2, %3, %4, %5, %6, %7, %8}, %9;"
                 :
                 : "r"(LC_SADDR(p)), "f"(f.x[0]), "f"(f.x[1]), "f"(f.x[2]), "f"(f.x[3]), "f"(f.x[4]), "f"(f.x[5]),
                   "f"(f.x[6]), "f"(f.x[7]), "r"(ld)
                 : "memory");
}

template <typename Frag> static __device__ __forceinline__ void lc_tf32(Frag &f) {
#pragma unroll
    for (int i = 0; i < f.num_elements; i++) f.x[i] = wmma::__float_to_tf32(f.x[i]);
}

/* Shared-memory layout of lc_chunk_kernel<HS, STATE_ONLY>, in floats; rows padded to HS + 4 (a
 * multiple of 4 floats; 8-row offsets stay 32-byte aligned for WMMA). */
template <int HS, bool STATE_ONLY> struct LcSmem {
    static constexpr int LD = HS + 4;
    static constexpr int Q = 0;                                   /* (C, LD); output staging */
    static constexpr int K = STATE_ONLY ? 0 : Q + LC_C * LD;      /* (C, LD) */
    static constexpr int V = K + LC_C * LD;                       /* (C, LD) */
    static constexpr int P = V + LC_C * LD;                       /* (C, LC_LDP), full only */
    static constexpr int KV = STATE_ONLY ? P : P + LC_C * LC_LDP; /* (HS, LD) */
    static constexpr int PW = KV + HS * LD;                       /* (C + 1) powers, padded */
    static constexpr int FLOATS = PW + LC_C + 4;
};

/* dst(C, LD) = HS columns of C rows of a role (src at its head offset, row stride lds); run row c is
 * position r0 + c, token t0 + (rev ? T-1-r : r); rows c >= m are zero-filled. Asynchronous 16-byte
 * copies (cp.async), all in flight at once; the caller commits and waits. */
template <int HS>
static __device__ __forceinline__ void lc_load_rows(float *dst, const float *src, int lds, int t0, int T, int r0,
                                                    int m, int rev) {
    constexpr int V4 = HS / 4, ITER = LC_C * V4 / LC_THREADS, LD = HS + 4;
    static_assert(LC_C * V4 % LC_THREADS == 0, "whole iterations");
#pragma unroll
    for (int it = 0; it < ITER; it++) {
        const int i = threadIdx.x + it * LC_THREADS, c = i / V4, j = i % V4;
        const int r = r0 + (c < m ? c : 0), t = rev ? T - 1 - r : r; /* a valid address even when zero-filled */
        __pipeline_memcpy_async(dst + c * LD + 4 * j, src + (size_t)(t0 + t) * lds + 4 * j, 16, c < m ? 0 : 16);
    }
}

/* Rows c < m of the staged output O(C, LD) to dst (head offset applied), = or += (the old values
 * are all loaded before any store, so their latencies overlap). */
template <int HS>
static __device__ __forceinline__ void lc_store_rows(float *dst, int ldd, const float *O, int t0, int T, int r0,
                                                     int m, int rev, int acc) {
    constexpr int V4 = HS / 4, ITER = LC_C * V4 / LC_THREADS, LD = HS + 4;
    float4 *p[ITER];
    float4 y[ITER];
#pragma unroll
    for (int it = 0; it < ITER; it++) {
        const int i = threadIdx.x + it * LC_THREADS, c = i / V4, j = i % V4;
        const int r = r0 + c, t = rev ? T - 1 - r : r;
        p[it] = c < m ? reinterpret_cast<float4 *>(dst + (size_t)(t0 + t) * ldd) + j : NULL;
        y[it] = acc && p[it] ? *p[it] : make_float4(0.0f, 0.0f, 0.0f, 0.0f);
    }
#pragma unroll
    for (int it = 0; it < ITER; it++) {
        const int i = threadIdx.x + it * LC_THREADS, c = i / V4, j = i % V4;
        const float4 x = *reinterpret_cast<const float4 *>(O + c * LD + 4 * j);
        if (p[it]) *p[it] = make_float4(x.x + y[it].x, x.y + y[it].y, x.z + y[it].z, x.w + y[it].w);
    }
}

/* P(C, C) lower 16x16 tiles = Q K^T: the 10 tiles (ti >= tj) in list order (0,0),(1,0),(1,1),...;
 * warp w takes tile w and, for w < 2, tile w + 8, interleaved. */
template <int HS> static __device__ __forceinline__ void lc_scores(float *P, const float *Q, const float *K, int warp) {
    constexpr int LD = HS + 4;
    LC_SHARED(P), LC_SHARED(Q), LC_SHARED(K);
    const int nt = warp + LC_WARPS < 10 ? 2 : 1;
    int ti[2], tj[2];
    FragC acc[2];
#pragma unroll
    for (int x = 0; x < 2; x++) {
        const int idx = warp + LC_WARPS * x < 10 ? warp + LC_WARPS * x : warp;
        ti[x] = idx < 1 ? 0 : idx < 3 ? 1 : idx < 6 ? 2 : 3;
        tj[x] = idx - ti[x] * (ti[x] + 1) / 2;
        wmma::fill_fragment(acc[x], 0.0f);
    }
#pragma unroll 2
    for (int kk = 0; kk < HS / 8; kk++) {
#pragma unroll
        for (int x = 0; x < 2; x++) {
            if (x >= nt) break;
            FragAr a;
            FragBc bk; /* K^T as a column-major (HS, C) view of K */
            lc_ld(a, Q + ti[x] * 16 * LD + kk * 8, LD);
            lc_ld(bk, K + tj[x] * 16 * LD + kk * 8, LD);
            wmma::mma_sync(acc[x], a, bk, acc[x]);
        }
    }
#pragma unroll
    for (int x = 0; x < 2; x++)
        if (x < nt) lc_st(P + ti[x] * 16 * LC_LDP + tj[x] * 16, acc[x], LC_LDP);
}

/* Round the chunk's operands to TF32 (to nearest) in place, once, so fragments need no conversion:
 * K and V (and Q when with_q), rows of HS columns. */
template <int HS, bool WITH_Q> static __device__ __forceinline__ void lc_round_rows(float *Q, float *K, float *V) {
    constexpr int LD = HS + 4;
    for (int i = threadIdx.x; i < LC_C * HS; i += LC_THREADS) {
        const int o = (i / HS) * LD + i % HS;
        if (WITH_Q) Q[o] = wmma::__float_to_tf32(Q[o]);
        K[o] = wmma::__float_to_tf32(K[o]);
        V[o] = wmma::__float_to_tf32(V[o]);
    }
}

/* P <- P ⊙ D (zero above the diagonal, the skipped tiles' stale values included); Q rows *=
 * lambda^(c+1). */
template <int HS> static __device__ __forceinline__ void lc_decay(float *P, float *Q, const float *pw) {
    constexpr int LD = HS + 4;
    LC_SHARED(P), LC_SHARED(Q), LC_SHARED(pw);
    for (int i = threadIdx.x; i < LC_C * LC_C; i += LC_THREADS) {
        const int r = i / LC_C, c = i % LC_C;
        float *p = P + r * LC_LDP + c;
        *p = c <= r ? wmma::__float_to_tf32(*p * pw[r - c]) : 0.0f;
    }
    for (int i = threadIdx.x; i < LC_C * HS; i += LC_THREADS) {
        const int r = i / HS, d = i % HS;
        Q[r * LD + d] = wmma::__float_to_tf32(Q[r * LD + d] * pw[r + 1]);
    }
}

/* Output tiles per warp: row tile w % 4, column tiles (w / 4) * OUT + n, n < OUT = HS / 32. */
template <int HS> struct LcOut {
    static constexpr int N = HS / 32;
};

/* Warp w's output tiles: acc[n] = (aQ) KV + P V, P's all-zero tiles skipped; the (aQ) KV k-steps
 * alternate between two accumulator sets so the dependent chains are half as long. */
template <int HS>
static __device__ __forceinline__ void lc_output(FragC (&acc)[HS / 32], const float *Q, const float *P,
                                                 const float *V, const float *KV, int warp) {
    constexpr int LD = HS + 4, N = HS / 32;
    LC_SHARED(Q), LC_SHARED(P), LC_SHARED(V), LC_SHARED(KV);
    const int ti = warp & 3, tn0 = (warp >> 2) * N;
    FragC acc2[N];
#pragma unroll
    for (int n = 0; n < N; n++) wmma::fill_fragment(acc[n], 0.0f), wmma::fill_fragment(acc2[n], 0.0f);
#pragma unroll 2
    for (int kk = 0; kk < HS / 8; kk += 2) {
#pragma unroll
        for (int par = 0; par < 2; par++) {
            FragAr a;
            lc_ld(a, Q + ti * 16 * LD + (kk + par) * 8, LD);
#pragma unroll
            for (int n = 0; n < N; n++) {
                FragBr bs;
                lc_ld(bs, KV + (kk + par) * 8 * LD + (tn0 + n) * 16, LD);
                lc_tf32(bs);
                if (par) wmma::mma_sync(acc2[n], a, bs, acc2[n]);
                else wmma::mma_sync(acc[n], a, bs, acc[n]);
            }
        }
    }
    for (int kk = 0; kk < (ti + 1) * 2; kk++) {
        FragAr a;
        lc_ld(a, P + ti * 16 * LC_LDP + kk * 8, LC_LDP);
#pragma unroll
        for (int n = 0; n < N; n++) {
            FragBr bv;
            lc_ld(bv, V + kk * 8 * LD + (tn0 + n) * 16, LD);
            wmma::mma_sync(acc[n], a, bv, acc[n]);
        }
    }
#pragma unroll
    for (int n = 0; n < N; n++)
#pragma unroll
        for (int x = 0; x < acc[n].num_elements; x++) acc[n].x[x] += acc2[n].x[x];
}

/* KV(HS, HS) <- lambda^m KV + K^T V' (V' = V with rows already scaled by b). The (HS/16)^2 tiles
 * are split over the warps, PER consecutive tiles each (all in one row tile td, so the K^T fragment
 * is loaded once per k-step); each warp reads and writes only its own tiles. */
template <int HS>
static __device__ __forceinline__ void lc_state_update(float *KV, const float *K, const float *V, float lam_m, int m,
                                                       int warp) {
    constexpr int LD = HS + 4, NTC = HS / 16, NT = NTC * NTC;
    constexpr int PER = NT >= LC_WARPS ? NT / LC_WARPS : 1;
    static_assert(NT < LC_WARPS || (NT % LC_WARPS == 0 && NTC % PER == 0), "a warp's tiles share a row tile");
    LC_SHARED(KV), LC_SHARED(K), LC_SHARED(V);
    const int j0 = warp * PER;
    if (j0 >= NT) return; /* HS = 32: 4 tiles, warps 4..7 idle (warp-uniform; no barrier inside) */
    const int td = j0 / NTC, tn0 = j0 % NTC;
    FragC acc[PER];
#pragma unroll
    for (int i = 0; i < PER; i++) {
        lc_ld(acc[i], KV + td * 16 * LD + (tn0 + i) * 16, LD);
#pragma unroll
        for (int x = 0; x < acc[i].num_elements; x++) acc[i].x[x] *= lam_m;
    }
    const int ksteps = (m + 7) / 8;
    for (int kk = 0; kk < ksteps; kk++) {
        FragAc a; /* K^T (HS, C) as a column-major view of K */
        lc_ld(a, K + kk * 8 * LD + td * 16, LD);
#pragma unroll
        for (int i = 0; i < PER; i++) {
            FragBr bv;
            lc_ld(bv, V + kk * 8 * LD + (tn0 + i) * 16, LD);
            wmma::mma_sync(acc[i], a, bv, acc[i]);
        }
    }
#pragma unroll
    for (int i = 0; i < PER; i++)
        lc_st(KV + td * 16 * LD + (tn0 + i) * 16, acc[i], LD);
}

#define LC_BATCH 16 /* global loads issued together before their stores */

/* KV (HS, LD) from an (HS, HS) state (trans: the state is src^T), or zeros. */
template <int HS> static __device__ __forceinline__ void lc_state_in(float *KV, const float *src, int trans) {
    constexpr int ITER = HS * HS / LC_THREADS, LD = HS + 4;
    static_assert(ITER % LC_BATCH == 0 || ITER < LC_BATCH, "whole batches");
    constexpr int BATCH = ITER < LC_BATCH ? ITER : LC_BATCH;
#pragma unroll 1
    for (int b0 = 0; b0 < ITER; b0 += BATCH) {
        float x[BATCH];
#pragma unroll
        for (int it = 0; it < BATCH; it++) {
            const int i = threadIdx.x + (b0 + it) * LC_THREADS, d = i / HS, e = i % HS;
            x[it] = !src ? 0.0f : trans ? src[(size_t)e * HS + d] : src[i];
        }
#pragma unroll
        for (int it = 0; it < BATCH; it++) {
            const int i = threadIdx.x + (b0 + it) * LC_THREADS;
            KV[(i / HS) * LD + i % HS] = x[it];
        }
    }
}

/* (HS, HS) state dst = (or +=) scale * KV. */
template <int HS>
static __device__ __forceinline__ void lc_state_out(float *dst, const float *KV, float scale, int acc) {
    constexpr int ITER = HS * HS / LC_THREADS, LD = HS + 4;
    constexpr int BATCH = ITER < LC_BATCH ? ITER : LC_BATCH;
#pragma unroll 1
    for (int b0 = 0; b0 < ITER; b0 += BATCH) {
        float old[BATCH];
#pragma unroll
        for (int it = 0; it < BATCH; it++) old[it] = acc ? dst[threadIdx.x + (b0 + it) * LC_THREADS] : 0.0f;
#pragma unroll
        for (int it = 0; it < BATCH; it++) {
            const int i = threadIdx.x + (b0 + it) * LC_THREADS;
            dst[i] = old[it] + scale * KV[(i / HS) * LD + i % HS];
        }
    }
}

/* grid (items, NH): block = (segment item, head); see the file comment. */
template <int HS, bool STATE_ONLY>
static __global__ void __launch_bounds__(LC_THREADS) lc_chunk_kernel(LcRun r, LcGrid g) {
    extern __shared__ __align__(128) float lc_smem[];
    typedef LcSmem<HS, STATE_ONLY> SM;
    const int item = blockIdx.x, h = blockIdx.y, warp = threadIdx.x / 32;
    const int b = dev_find_seq(g.segpre, g.B, item);
    const int s = item - g.segpre[b], nseg = g.segpre[b + 1] - g.segpre[b];
    if (STATE_ONLY && s == nseg - 1) return; /* the last segment's local state is never needed */
    const int t0 = g.start[b], T = g.start[b + 1] - t0;
    const int r_begin = s * g.L, r_end = min(T, r_begin + g.L);
    const size_t nS = (size_t)HS * HS, slot0 = (size_t)(g.segpre[b] - b);
    float *Q = lc_smem + SM::Q, *K = lc_smem + SM::K, *V = lc_smem + SM::V, *P = lc_smem + SM::P;
    float *KV = lc_smem + SM::KV, *pw = lc_smem + SM::PW;
    LC_SHARED(Q), LC_SHARED(K), LC_SHARED(V), LC_SHARED(P), LC_SHARED(KV), LC_SHARED(pw);
    const float slope = g.slopes[h];
    for (int i = threadIdx.x; i <= LC_C; i += LC_THREADS) pw[i] = (float)exp(-(double)slope * (double)i);
    if constexpr (STATE_ONLY) lc_state_in<HS>(KV, NULL, 0);
    else if (s == 0) lc_state_in<HS>(KV, r.s0 ? r.s0 + ((size_t)b * g.NH + h) * nS : NULL, r.s0_trans);
    else lc_state_in<HS>(KV, g.slots + ((slot0 + s - 1) * g.NH + h) * nS, 0);
    const float *qh = r.q + (size_t)h * r.hq, *kh = r.k + (size_t)h * r.hk, *vh = r.v + (size_t)h * r.hv;
    for (int r0 = r_begin; r0 < r_end; r0 += LC_C) {
        const int m = min(LC_C, r_end - r0);
        __syncthreads(); /* the previous chunk is done with Q (staging), K, V; KV and pw are written */
        if constexpr (!STATE_ONLY) lc_load_rows<HS>(Q, qh, r.ldq, t0, T, r0, m, r.rev);
        lc_load_rows<HS>(K, kh, r.ldk, t0, T, r0, m, r.rev);
        lc_load_rows<HS>(V, vh, r.ldv, t0, T, r0, m, r.rev);
        __pipeline_commit();
        __pipeline_wait_prior(0);
        __syncthreads();
        lc_round_rows<HS, !STATE_ONLY>(Q, K, V);
        __syncthreads();
        if constexpr (!STATE_ONLY) {
            lc_scores<HS>(P, Q, K, warp);
            __syncthreads();
            lc_decay<HS>(P, Q, pw);
            __syncthreads();
            FragC acc[HS / 32];
            lc_output<HS>(acc, Q, P, V, KV, warp);
            __syncthreads(); /* everyone is done reading Q, P, V and KV */
#pragma unroll
            for (int n = 0; n < HS / 32; n++)
                lc_st(Q + (warp & 3) * 16 * SM::LD + ((warp >> 2) * (HS / 32) + n) * 16, acc[n], SM::LD);
        }
        for (int i = threadIdx.x; i < LC_C * HS; i += LC_THREADS) { /* V rows *= lambda^(m-1-c) */
            const int c = i / HS, e = i % HS;
            V[c * SM::LD + e] = c < m ? wmma::__float_to_tf32(V[c * SM::LD + e] * pw[m - 1 - c]) : 0.0f;
        }
        __syncthreads();
        if constexpr (!STATE_ONLY)
            lc_store_rows<HS>(r.out + (size_t)h * r.ho, r.ldo, Q, t0, T, r0, m, r.rev, r.out_acc);
        lc_state_update<HS>(KV, K, V, pw[m], m, warp);
    }
    __syncthreads();
    if constexpr (STATE_ONLY) lc_state_out<HS>(g.slots + ((slot0 + s) * g.NH + h) * nS, KV, 1.0f, 0);
    else if (s == nseg - 1 && r.sfin)
        lc_state_out<HS>(r.sfin + ((size_t)b * g.NH + h) * nS, KV, r.sfin_lam ? pw[1] : 1.0f, r.sfin_acc);
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
        for (int s0 = 0; s0 < nseg - 1; s0 += 8) { /* 8 slots' loads in flight at once */
            float loc[8];
#pragma unroll
            for (int j = 0; j < 8; j++)
                loc[j] = s0 + j < nseg - 1 ? g.slots[((slot0 + s0 + j) * g.NH + h) * nS + i] : 0.0f;
#pragma unroll
            for (int j = 0; j < 8; j++) {
                if (s0 + j >= nseg - 1) break;
                cur = lamL * cur + loc[j];
                g.slots[((slot0 + s0 + j) * g.NH + h) * nS + i] = cur;
            }
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
    CHECK(items > 0, "lightning (chunked): %d segments", items);
    const dim3 grid((unsigned)items, (unsigned)g.NH);
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
