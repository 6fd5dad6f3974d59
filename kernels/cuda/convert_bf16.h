/* kernels/cuda/convert_bf16.h: FP32 <-> BF16 conversion of device arrays for the BF16 weight
 * broadcast of distributed GPU runs (trainer/dist_wsync.c), plus the plain device allocation that
 * the broadcast's buffers use (they outlive the model's KernelCtx). Built only with -DCISPO_CUDA=ON.
 *
 * Rounding is round to nearest even on the FP32 bit pattern, as the CPU reference
 * (model/safetensors.c's st_f32_to_bf16, which tests/kernels/test_cuda_bf16.c restates): u += 0x7fff + ((u >> 16) & 1),
 * keep the high half; a NaN keeps its sign and high payload bits with the quiet bit forced (so it
 * cannot round to an infinity); infinities and zeros are exact; FP32 subnormals round like any
 * other value (BF16 has the same exponent range). Widening is exact (bits << 16). */
#ifndef CISPO_KERNELS_CUDA_CONVERT_BF16_H
#define CISPO_KERNELS_CUDA_CONVERT_BF16_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* dst[i] = bf16(src[i]) for i < n; src (n) FP32, dst (n) BF16 bits, both device memory, queued on
 * `stream` (a cudaStream_t; NULL is the legacy default stream). */
void cuda_f32_to_bf16(uint16_t *dst, const float *src, size_t n, void *stream);
/* dst[i] = float(src[i]) (exact); src (n) BF16 bits, dst (n) FP32, device memory, on `stream`. */
void cuda_bf16_to_f32(float *dst, const uint16_t *src, size_t n, void *stream);
/* Wait for `stream` (NULL: the legacy default stream); CHECKs the launch errors. */
void cuda_stream_wait(void *stream);
/* cudaMalloc of `bytes` (CHECKed) / cudaFree (NULL is a no-op). */
void *cuda_dev_alloc(size_t bytes);
void cuda_dev_free(void *p);
/* Page-locked host memory (cudaMallocHost, CHECKed; for fast device-to-host copies) / its release. */
void *cuda_host_alloc(size_t bytes);
void cuda_host_free(void *p);
/* Synchronous copy from the device to the host. */
void cuda_copy_d2h(void *dst_host, const void *src, size_t bytes);

#ifdef __cplusplus
}
#endif

#endif
