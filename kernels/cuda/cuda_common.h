/* kernels/cuda/cuda_common.h: what every file of the CUDA backend shares (CUDA C++ only).
 *
 * - Check macros (DESIGN.md §6): CUDA_CHECK and CUBLAS_CHECK wrap every library call and abort
 *   through core/error.h's check_fail (rank, function, file:line, the call and the library's error
 *   string; MPI_Abort when MPI is up); CUDA_LAUNCH_CHECK() follows every kernel launch;
 *   DEV_CHECK is the device-side CHECK (printf of file:line and the values, then __trap(), so the
 *   next CUDA_CHECK on the host aborts).
 * - CudaImpl, the backend handle behind ctx->impl: the cuBLAS and cuBLASLt handles (with gemm.cu's
 *   plan cache), the stream every op runs on
 *   (the legacy default stream, so the synchronous cudaMemcpy of copy_h2d/copy_d2h is ordered with
 *   the kernels), and fixed-capacity scratch for per-call metadata that arrives in host memory
 *   (SeqPack offsets and positions, decay slopes, RoPE frequencies, decode lengths), uploaded with
 *   cudaMemcpyAsync on that stream (a later upload is ordered after the kernels that read the last).
 * - Small device helpers every kernel file uses (block-wide sum/max, the sequence of a packed token):
 *   the only device code in a header.
 * - Launch helpers for grid-stride loops.
 */
#ifndef CISPO_KERNELS_CUDA_COMMON_H
#define CISPO_KERNELS_CUDA_COMMON_H

#include <cublasLt.h>
#include <cublas_v2.h>
#include <cuda_runtime.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>

extern "C" {
#include "core/error.h"
#include "kernels/backend.h"
}

#define CUDA_CHECK(call)                                                                                    \
    do {                                                                                                    \
        cudaError_t cuda_err_ = (call);                                                                     \
        if (cuda_err_ != cudaSuccess)                                                                       \
            check_fail(__func__, __FILE__, __LINE__, #call, "CUDA error %s: %s", cudaGetErrorName(cuda_err_), \
                       cudaGetErrorString(cuda_err_));                                                      \
    } while (0)

#define CUBLAS_CHECK(call)                                                                                  \
    do {                                                                                                    \
        cublasStatus_t blas_st_ = (call);                                                                   \
        if (blas_st_ != CUBLAS_STATUS_SUCCESS)                                                              \
            check_fail(__func__, __FILE__, __LINE__, #call, "cuBLAS error %s: %s", cublasGetStatusName(blas_st_), \
                       cublasGetStatusString(blas_st_));                                                    \
    } while (0)

/* After every kernel launch: a bad configuration is reported here, a fault in the kernel at the next
 * synchronising call. */
#define CUDA_LAUNCH_CHECK() CUDA_CHECK(cudaGetLastError())

/* Device-side invariant check: prints and traps (the context is then unusable; the host's next
 * CUDA_CHECK aborts). */
#define DEV_CHECK(cond, fmt, ...)                                                                  \
    do {                                                                                           \
        if (!(cond)) {                                                                             \
            printf("%s:%d: device CHECK failed: %s: " fmt "\n", __FILE__, __LINE__, #cond, __VA_ARGS__); \
            __trap();                                                                              \
        }                                                                                          \
    } while (0)

/* Scratch capacities (CHECKed at every use). */
#define CUDA_MAX_SEQS (1 << 16)     /* sequences in a SeqPack or decode batch */
#define CUDA_MAX_HEADS 4096         /* heads of one lightning call (slopes) */
#define CUDA_MAX_ROT_HALF 512       /* rot_dim / 2 */
#define CUDA_MAX_PARTIALS 1024      /* blocks of the sumsq reduction */
#define CUDA_MAX_SORT_SLOTS (1 << 22) /* N*K slots of moe_sort */
#define CUDA_MAX_EXPERTS 256          /* E of moe_sort / moe_expert_gemm (one scan thread per expert) */
#define CUDA_MOE_RING 8               /* pinned staging slots of the expert GEMMs' pointer arrays */
#define CUDA_MOE_TILE 256             /* slots per tile of moe_sort's counting sort (one warp scatters a tile) */
#define CUDA_RMS_PARTIAL_FLOATS (1 << 21) /* per-slab dw partial sums of the RMSNorm backward (8 MiB) */

#define CUDA_GEMM_PLANS 1024           /* cached cuBLASLt plans (power of two) */
#define CUDA_LT_WORKSPACE (32u << 20)  /* cuBLASLt workspace bytes */

/* One GEMM shape as gemm.cu caches it (ints only: hashed and compared as bytes). */
typedef struct {
    int ta, tb, m, n, k, lda, ldb, ldc, prec; /* prec: GEMM_FP32 | GEMM_BF16 | GEMM_TF32 (cuda_ops.h) */
    int align_a, align_b, align_c; /* byte alignment of the pointers (4, 8 or 16) */
} GemmKey;

typedef struct {
    int used, valid;               /* slot taken; the heuristic found an algorithm */
    GemmKey key;
    cublasLtMatmulDesc_t desc;
    cublasLtMatrixLayout_t la, lb, lc; /* layouts of our A, B, C (column-major views) */
    cublasLtMatmulAlgo_t algo;
} GemmPlan;

typedef struct {
    cublasHandle_t blas;
    cublasLtHandle_t lt;  /* cuBLASLt handle for gemm */
    void *lt_ws;          /* (CUDA_LT_WORKSPACE) its workspace, device */
    GemmPlan *plans;      /* (CUDA_GEMM_PLANS) plan cache, host */
    cudaStream_t stream; /* all ops run here (0: the legacy default stream) */
    int *d_start;        /* (CUDA_MAX_SEQS+1) SeqPack start, device */
    int *d_pos0;         /* (CUDA_MAX_SEQS) SeqPack pos0 (zeros when NULL), or decode len, device */
    float *d_slopes;     /* (CUDA_MAX_HEADS) lightning slopes, device */
    float *d_inv_freq;   /* (CUDA_MAX_ROT_HALF) RoPE inverse frequencies, device */
    double *d_partial;   /* (CUDA_MAX_PARTIALS) sumsq per-block sums, device */
    double *h_partial;   /* (CUDA_MAX_PARTIALS) pinned host copy */
    float *d_rms_partial; /* (CUDA_RMS_PARTIAL_FLOATS) RMSNorm dw slab sums (fused.cu), device */
    int *d_moe_counts;   /* (CUDA_MAX_EXPERTS, CUDA_MAX_SORT_SLOTS / CUDA_MOE_TILE) moe_sort tile counts, device */
    int *d_moe_offsets;  /* (CUDA_MAX_EXPERTS + 1) moe_sort offsets, device */
    void **d_moe_ptrs;   /* (3 * CUDA_MAX_EXPERTS) moe_expert_gemm pointer arrays, device */
    void **h_moe_ptrs;   /* (CUDA_MOE_RING, 3 * CUDA_MAX_EXPERTS) their pinned host staging, a ring */
    cudaEvent_t moe_ev[CUDA_MOE_RING]; /* recorded after each ring slot's upload */
    int moe_ring;        /* the ring slot the next upload uses */
    int moe_grouped[3];  /* grouped GEMM for FP32 [0] / BF16 [1] / FAST_16BF [2] (moe_gemm.cu): 1 used, 0 refused, -1 untried */
    int moe_force_loop;  /* CISPO_CUDA_MOE_LOOP=1: one cublasGemmEx per expert instead */
    int smem_optin;      /* largest dynamic shared memory a block may opt in to (bytes) */
    /* BF16 GEMM operands (gemm.cu): the registered parameter block (params_register) and its BF16
     * copy, refreshed before a BF16 GEMM reads it after any op wrote into the block; and two
     * growable scratch buffers for other operands converted per call. */
    const float *param_base;      /* (param_n) device, or NULL */
    size_t param_n;
    unsigned short *param_bf16;   /* (param_n) device */
    int param_dirty;              /* the block changed since param_bf16 was written */
    void *cvt[2];                 /* scratch for converted operands A, B */
    size_t cvt_bytes[2];
} CudaImpl;

/* A SeqPack uploaded to the impl's scratch. */
typedef struct {
    int B;            /* sequences */
    int N;            /* packed tokens = start[B] */
    int max_len;      /* longest sequence */
    const int *start; /* (B+1) device */
    const int *pos0;  /* (B) device, zeros where the host pack had none */
} DevPack;

/* The handle of a CUDA context (CHECKs that impl_init ran). */
CudaImpl *cuda_impl(KernelCtx *ctx);
/* Validate a host SeqPack (start[0] = 0, non-decreasing, B <= CUDA_MAX_SEQS) and upload it. */
DevPack cuda_pack_upload(KernelCtx *ctx, const SeqPack *pack, const char *op);

#define CUDA_THREADS 256

/* for (size_t i = ...) over [0, n) in a grid-stride loop */
#define GRID_STRIDE_LOOP(i, n) \
    for (size_t i = (size_t)blockIdx.x * blockDim.x + threadIdx.x; i < (size_t)(n); i += (size_t)gridDim.x * blockDim.x)

/* Launch a grid-stride kernel over n elements on ctx's stream (nothing when n == 0). */
#define LAUNCH_1D(ctx, kernel, n, ...)                                                               \
    do {                                                                                             \
        if ((n) > 0) {                                                                               \
            kernel<<<cuda_grid(n), CUDA_THREADS, 0, cuda_impl(ctx)->stream>>>(__VA_ARGS__);          \
            CUDA_LAUNCH_CHECK();                                                                     \
        }                                                                                            \
    } while (0)

/* Blocks for a grid-stride loop over n elements (n > 0). */
static inline unsigned cuda_grid(size_t n) {
    size_t b = (n + CUDA_THREADS - 1) / CUDA_THREADS;
    return (unsigned)(b < 65536 ? b : 65536);
}

/* Sequence holding packed token t: the last b with start[b] <= t (skips empty sequences). */
static __device__ __forceinline__ int dev_find_seq(const int *start, int B, int t) {
    int lo = 0, hi = B - 1;
    while (lo < hi) {
        int mid = (lo + hi + 1) / 2;
        if (start[mid] <= t) lo = mid;
        else hi = mid - 1;
    }
    return lo;
}

/* Block-wide sum / max; every thread gets the result. sh needs 32 slots of T. Call from all threads. */
template <typename T>
static __device__ __forceinline__ T block_sum(T v, T *sh) {
    for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
    int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, nw = (blockDim.x + 31) >> 5;
    __syncthreads(); /* sh may still be read by a previous reduction */
    if (lane == 0) sh[warp] = v;
    __syncthreads();
    T r = 0;
    for (int w = 0; w < nw; w++) r += sh[w];
    return r;
}

static __device__ __forceinline__ float block_max(float v, float *sh) {
    for (int o = 16; o > 0; o >>= 1) v = fmaxf(v, __shfl_xor_sync(0xffffffffu, v, o));
    int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, nw = (blockDim.x + 31) >> 5;
    __syncthreads();
    if (lane == 0) sh[warp] = v;
    __syncthreads();
    float r = sh[0];
    for (int w = 1; w < nw; w++) r = fmaxf(r, sh[w]);
    return r;
}

#endif
