/* kernels/cuda/moe_sort.cu: moe_sort on the device, a stable counting sort of the N*K slots by
 * expert (the result of kernels/cpu/moe.c's sort, bit for bit).
 *
 * The slots are cut into tiles of CUDA_MOE_TILE consecutive slot ids. Three launches:
 * 1. count: one block per tile counts its slots per expert (shared-memory integer atomics: the
 *    counts do not depend on their order) into counts(tiles, E);
 * 2. scan: one block, thread e walks expert e's column in tile order, turning counts into each
 *    tile's running base within the expert, then adds the expert's start (an exclusive scan of the
 *    totals over experts, done by thread 0: E <= CUDA_MAX_EXPERTS); writes offsets(E+1);
 * 3. scatter: one warp per tile walks its slots in order, 32 at a time: lanes holding the same
 *    expert find each other with __match_any_sync, each takes cursor[e] + (its rank among them),
 *    and the lowest of them advances cursor[e] by their number; so within an expert the slots keep
 *    increasing slot order (stable), and sorted[j] = s, pos[s] = j.
 * Only offsets (E+1 ints) come to the host, which the caller needs for the expert GEMMs: that copy
 * synchronises the stream.
 */
#include "kernels/cuda/cuda_ops.h"

/* grid (tiles), block CUDA_THREADS, shared E ints: counts(tiles,E)[t][e] = #{s in tile t: topk_idx[s] = e} */
static __global__ void sort_count_kernel(int *counts, const int *topk_idx, int NK, int E) {
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
    for (int e = threadIdx.x; e < E; e += blockDim.x) counts[(size_t)blockIdx.x * E + e] = hist[e];
}

/* one block of CUDA_MAX_EXPERTS threads: counts -> bases (start of tile t's run of expert e), offsets(E+1) */
static __global__ void sort_scan_kernel(int *counts, int *offsets, int tiles, int E) {
    __shared__ int start[CUDA_MAX_EXPERTS + 1];
    const int e = threadIdx.x;
    if (e < E) {
        int run = 0;
        for (int t = 0; t < tiles; t++) {
            int c = counts[(size_t)t * E + e];
            counts[(size_t)t * E + e] = run;
            run += c;
        }
        start[e] = run; /* expert total, for now */
    }
    __syncthreads();
    if (e == 0) {
        int acc = 0;
        for (int f = 0; f < E; f++) {
            int c = start[f];
            start[f] = acc;
            acc += c;
        }
        start[E] = acc;
        offsets[E] = acc;
    }
    __syncthreads();
    if (e < E) {
        const int base = start[e];
        offsets[e] = base;
        for (int t = 0; t < tiles; t++) counts[(size_t)t * E + e] += base;
    }
}

/* grid (tiles), block 32, shared E ints: sorted[j] = s, pos[s] = j, stable within each expert */
static __global__ void sort_scatter_kernel(int *sorted, int *pos, const int *bases, const int *topk_idx, int NK,
                                           int E) {
    extern __shared__ int cursor[]; /* (E) next free position of each expert for this tile */
    const int lane = threadIdx.x;
    for (int e = lane; e < E; e += 32) cursor[e] = bases[(size_t)blockIdx.x * E + e];
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
    sort_count_kernel<<<tiles, CUDA_THREADS, shared, im->stream>>>(im->d_moe_counts, topk_idx, (int)NK, E);
    CUDA_LAUNCH_CHECK();
    sort_scan_kernel<<<1, CUDA_MAX_EXPERTS, 0, im->stream>>>(im->d_moe_counts, im->d_moe_offsets, tiles, E);
    CUDA_LAUNCH_CHECK();
    sort_scatter_kernel<<<tiles, 32, shared, im->stream>>>(sorted, pos, im->d_moe_counts, topk_idx, (int)NK, E);
    CUDA_LAUNCH_CHECK();
    CUDA_CHECK(cudaMemcpyAsync(offsets, im->d_moe_offsets, (size_t)(E + 1) * sizeof(int), cudaMemcpyDeviceToHost,
                               im->stream));
    CUDA_CHECK(cudaStreamSynchronize(im->stream));
    CHECK(offsets[0] == 0 && (size_t)offsets[E] == NK, "moe_sort placed %d of %zu slots (offsets[0]=%d)", offsets[E],
          NK, offsets[0]);
}
