/* kernels/cuda/comm_nccl_sum.cu: the rank-ordered sum behind the NCCL group's deterministic
 * all-reduce (comm_nccl.c): after an all-gather, element i is ((x0 + x1) + x2) + ... in a fixed
 * order on every rank, so replicas stay bit-identical (ncclAllReduce's order depends on the
 * algorithm and protocol NCCL picks). One thread per element, grid-stride. */
#include <cuda_runtime.h>
#include <stddef.h>

extern "C" {
#include "core/error.h"
#include "kernels/cuda/comm_nccl.h"
}

__global__ static void ordered_sum(float *dst, const float *src, int P, size_t n) {
    for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < n; i += (size_t)gridDim.x * blockDim.x) {
        float s = src[i];
        for (int r = 1; r < P; r++) s += src[(size_t)r * n + i];
        dst[i] = s;
    }
}

extern "C" void comm_nccl_ordered_sum(float *dst, const float *src, int P, size_t n, void *stream) {
    if (n == 0) return;
    size_t blocks = (n + 255) / 256;
    if (blocks > 65535) blocks = 65535;
    ordered_sum<<<(unsigned)blocks, 256, 0, (cudaStream_t)stream>>>(dst, src, P, n);
    cudaError_t e = cudaGetLastError();
    CHECK(e == cudaSuccess, "ordered_sum launch: %s", cudaGetErrorString(e));
}
