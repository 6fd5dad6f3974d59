/* kernels/cuda/convert_bf16.cu: FP32 <-> BF16 conversion of device arrays (see convert_bf16.h for
 * the rounding rule, shared with the CPU reference in model/safetensors.c). One thread per element
 * in a grid-stride loop; the integer rounding is spelled out (not __float2bfloat16) so the bits are
 * those of the CPU reference by construction, NaN payloads included. */
#include <cuda_runtime.h>
#include <stdint.h>

#include "kernels/cuda/cuda_common.h"

extern "C" {
#include "kernels/cuda/convert_bf16.h"
}

__device__ static uint16_t bf16_round(float f) {
    uint32_t u = __float_as_uint(f);
    if ((u & 0x7fffffffu) > 0x7f800000u) return (uint16_t)((u >> 16) | 0x0040u); /* NaN: stays NaN */
    u += 0x7fffu + ((u >> 16) & 1u);
    return (uint16_t)(u >> 16);
}

__global__ static void f32_to_bf16_kernel(uint16_t *dst, const float *src, size_t n) {
    for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < n; i += (size_t)gridDim.x * blockDim.x)
        dst[i] = bf16_round(src[i]);
}

__global__ static void bf16_to_f32_kernel(float *dst, const uint16_t *src, size_t n) {
    for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < n; i += (size_t)gridDim.x * blockDim.x)
        dst[i] = __uint_as_float((uint32_t)src[i] << 16);
}

static unsigned grid_for(size_t n) {
    size_t blocks = (n + 255) / 256;
    return (unsigned)(blocks > 65535 ? 65535 : blocks);
}

extern "C" void cuda_f32_to_bf16(uint16_t *dst, const float *src, size_t n, void *stream) {
    if (n == 0) return;
    CHECK(dst != NULL && src != NULL, "cuda_f32_to_bf16 of %zu elements with a NULL pointer", n);
    f32_to_bf16_kernel<<<grid_for(n), 256, 0, (cudaStream_t)stream>>>(dst, src, n);
    CUDA_LAUNCH_CHECK();
}

extern "C" void cuda_bf16_to_f32(float *dst, const uint16_t *src, size_t n, void *stream) {
    if (n == 0) return;
    CHECK(dst != NULL && src != NULL, "cuda_bf16_to_f32 of %zu elements with a NULL pointer", n);
    bf16_to_f32_kernel<<<grid_for(n), 256, 0, (cudaStream_t)stream>>>(dst, src, n);
    CUDA_LAUNCH_CHECK();
}

extern "C" void cuda_stream_wait(void *stream) {
    CUDA_CHECK(cudaStreamSynchronize((cudaStream_t)stream));
    CUDA_CHECK(cudaGetLastError());
}

extern "C" void *cuda_dev_alloc(size_t bytes) {
    void *p = NULL;
    CUDA_CHECK(cudaMalloc(&p, bytes > 0 ? bytes : 1));
    return p;
}

extern "C" void cuda_dev_free(void *p) {
    if (p != NULL) CUDA_CHECK(cudaFree(p));
}

extern "C" void *cuda_host_alloc(size_t bytes) {
    void *p = NULL;
    CUDA_CHECK(cudaMallocHost(&p, bytes > 0 ? bytes : 1));
    return p;
}

extern "C" void cuda_host_free(void *p) {
    if (p != NULL) CUDA_CHECK(cudaFreeHost(p));
}

extern "C" void cuda_copy_d2h(void *dst_host, const void *src, size_t bytes) {
    if (bytes > 0) CUDA_CHECK(cudaMemcpy(dst_host, src, bytes, cudaMemcpyDeviceToHost));
}
