/* kernels/cuda/moe_sort.cu: moe_sort on the device, a stable counting sort of the N*K slots by
 * expert (the result of kernels/cpu/moe.c's sort, bit for bit).
 *
 * The slots are cut into tiles of CUDA_MOE_TILE consecutive slot ids. Three launches:
 * 1. count: one block per tile counts its slots per expert (shared-memory integer atomics: the
 *    counts do not depend on their order) into counts(E, tiles), expert-major;
 * 2. scan: one block; a warp per expert turns its row of counts into each tile's start within the
 *    expert's run (exclusive warp scans over 32 tiles at a time, with a carry), then warp 0 scans
 *    the expert totals into offsets(E+1) (E <= CUDA_MAX_EXPERTS);
 * 3. scatter: one warp per tile, its cursors starting at offsets[e] + the tile's start, walks its
 *    slots in order, 32 at a time: lanes holding the same expert find each other with
 *    __match_any_sync, each takes cursor[e] + (its rank among them), and the lowest of them advances
 *    cursor[e] by their number; so within an expert the slots keep increasing slot order (stable),
 *    and sorted[j] = s, pos[s] = j.
 * Only offsets (E+1 ints) come to the host, which the caller needs for the expert GEMMs: that copy
 * synchronises the stream.
 */
#include "kernels/cuda/cuda_ops.h"

/* grid (tiles), block CUDA_THREADS, shared E ints: counts(E,tiles)[e][t] = #{s in tile t: topk_idx[s] = e} */
static __global__ void sort_count_kernel(int *counts, const int *topk_idx, int NK, int E, int tiles) {
    extern __shared__ int hist[]; /* (E) */
    for (int e = threadIdx.x; e < E; e += blockDim.x) hist[e] = 0;
    __syncthreads();
    const int s0 = blockIdx.x * CUDA_MOE_TILE, s1 = min(s0 + CUDA_MOE_TILE, NK);
    for (int s = s0 + threadIdx.x; s < s1; s += blockDim.x) {
        int e = topk_idx[s];
        DEV_CHECK(e >= 0 && e < E, "topk_idx[%d]=%d outside [0, %d)", s, e, E);
        atomicAdd(&hist[e], 1);
    }
    __syncthreads();
    for (int e = threadIdx.x; e < E; e += blockDim.x) counts[(size_t)e * tiles + blockIdx.x] = hist[e];
}

/* Inclusive warp scan of v; *total gets the warp's sum (every lane). */
static __device__ __forceinline__ int warp_scan_incl(int v, int *total) {
    const int lane = threadIdx.x & 31;
    for (int o = 1; o < 32; o <<= 1) {
        int u = __shfl_up_sync(0xffffffffu, v, o);
        if (lane >= o) v += u;
    }
    *total = __shfl_sync(0xffffffffu, v, 31);
    return v;
}

/* one block of SORT_SCAN_THREADS: counts(E,tiles) -> each tile's start within its expert's run
 * (exclusive scan over tiles, one warp per expert), offsets(E+1) = exclusive scan of the expert
 * totals (warp 0). */
#define SORT_SCAN_THREADS 1024
static __global__ void sort_scan_kernel(int *counts, int *offsets, int tiles, int E) {
    __shared__ int total[CUDA_MAX_EXPERTS];
    const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, nwarps = blockDim.x >> 5;
    for (int e = warp; e < E; e += nwarps) {
        int *row = counts + (size_t)e * tiles, carry = 0;
        for (int t0 = 0; t0 < tiles; t0 += 32) { /* uniform over the warp */
            const int t = t0 + lane;
            const int c = t < tiles ? row[t] : 0;
            int sum;
            const int incl = warp_scan_incl(c, &sum);
            if (t < tiles) row[t] = carry + incl - c;
            carry += sum;
        }
        if (lane == 0) total[e] = carry;
    }
    __syncthreads();
    if (warp == 0) {
        int carry = 0;
        for (int f0 = 0; f0 < E; f0 += 32) {
            const int f = f0 + lane;
            const int v = f < E ? total[f] : 0;
            int sum;
            const int incl = warp_scan_incl(v, &sum);
            if (f < E) offsets[f] = carry + incl - v;
            carry += sum;
        }
        if (lane == 0) offsets[E] = carry;
    }
}

/* grid (tiles), block 32, shared E ints: sorted[j] = s, pos[s] = j, stable within each expert;
 * tile t's slots of expert e start at offsets[e] + bases(E,tiles)[e][t] */
static __global__ void sort_scatter_kernel(int *sorted, int *pos, const int *bases, const int *offsets,
                                           const int *topk_idx, int NK, int E, int tiles) {
    extern __shared__ int cursor[]; /* (E) next free position of each expert for this tile */
    const int lane = threadIdx.x;
    for (int e = lane; e < E; e += 32) cursor[e] = offsets[e] + bases[(size_t)e * tiles + blockIdx.x];
    __syncwarp();
    const int s0 = blockIdx.x * CUDA_MOE_TILE, s1 = min(s0 + CUDA_MOE_TILE, NK);
    const unsigned below = (1u << lane) - 1u; /* lanes lower than this one */
    for (int b = s0; b < s1; b += 32) {        /* uniform over the warp */
        const int s = b + lane;
        const int e = s < s1 ? topk_idx[s] : -1; /* -1: no slot (never written) */
        const unsigned peers = __match_any_sync(0xffffffffu, e);
        const int rank = __popc(peers & below);
        if (e >= 0) {
            int j = cursor[e] + rank;
            sorted[j] = s;
            pos[s] = j;
        }
        __syncwarp(); /* every lane has read cursor[e] */
        if (e >= 0 && rank == 0) cursor[e] += __popc(peers);
        __syncwarp();
    }
}

/* sorted(N*K), pos(N*K) device; offsets(E+1) host; topk_idx(N,K) device */
void moe_sort_cuda(KernelCtx *ctx, int *sorted, int *pos, int *offsets, const int *topk_idx, int N, int K, int E) {
    CHECK(N > 0 && K > 0 && E > 0, "moe_sort sizes N=%d K=%d E=%d must be positive", N, K, E);
    CHECK(sorted != NULL && pos != NULL && offsets != NULL && topk_idx != NULL, "moe_sort with a NULL pointer");
    const size_t NK = (size_t)N * K;
    CHECK(NK <= CUDA_MAX_SORT_SLOTS, "moe_sort: %zu slots above the CUDA capacity %d", NK, CUDA_MAX_SORT_SLOTS);
    CHECK(E <= CUDA_MAX_EXPERTS, "moe_sort: E=%d experts above the CUDA capacity %d", E, CUDA_MAX_EXPERTS);
    CudaImpl *im = cuda_impl(ctx);
    const int tiles = (int)((NK + CUDA_MOE_TILE - 1) / CUDA_MOE_TILE);
    const size_t shared = (size_t)E * sizeof(int);
    sort_count_kernel<<<tiles, CUDA_THREADS, shared, im->stream>>>(im->d_moe_counts, topk_idx, (int)NK, E, tiles);
    CUDA_LAUNCH_CHECK();
    sort_scan_kernel<<<1, SORT_SCAN_THREADS, 0, im->stream>>>(im->d_moe_counts, im->d_moe_offsets, tiles, E);
    CUDA_LAUNCH_CHECK();
    sort_scatter_kernel<<<tiles, 32, shared, im->stream>>>(sorted, pos, im->d_moe_counts, im->d_moe_offsets, topk_idx,
                                                           (int)NK, E, tiles);
    CUDA_LAUNCH_CHECK();
    CUDA_CHECK(cudaMemcpyAsync(offsets, im->d_moe_offsets, (size_t)(E + 1) * sizeof(int), cudaMemcpyDeviceToHost,
                               im->stream));
    CUDA_CHECK(cudaStreamSynchronize(im->stream));
    CHECK(offsets[0] == 0 && (size_t)offsets[E] == NK, "moe_sort placed %d of %zu slots (offsets[0]=%d)", offsets[E],
          NK, offsets[0]);
}
