/* kernels/cpu/memory.c: the CPU backend's memory ops. "Device" memory is host memory: alloc
 * returns zero-filled blocks aligned to 64 bytes (one cache line, and enough for AVX-512 loads);
 * the copies are memcpy/memmove and sync has nothing to wait for.
 */
#include <stdlib.h>
#include <string.h>

#include "core/error.h"
#include "kernels/cpu/cpu_ops.h"

#define CPU_ALIGN_BYTES 64

void *alloc_cpu(KernelCtx *ctx, size_t bytes) {
    /* aligned_alloc wants a size that is a multiple of the alignment; 0 bytes still gets a block. */
    size_t rounded = (bytes + CPU_ALIGN_BYTES - 1) / CPU_ALIGN_BYTES * CPU_ALIGN_BYTES;
    if (rounded == 0) rounded = CPU_ALIGN_BYTES;
    CHECK(rounded >= bytes, "allocation size %zu overflows", bytes);
    void *p = aligned_alloc(CPU_ALIGN_BYTES, rounded);
    CHECK(p != NULL, "out of host memory allocating %zu bytes", bytes);
    memset(p, 0, rounded);
    return p;
}

void free_cpu(KernelCtx *ctx, void *p) { free(p); }

void copy_h2d_cpu(KernelCtx *ctx, void *dst, const void *src_host, size_t bytes) {
    if (bytes == 0) return;
    CHECK(dst != NULL && src_host != NULL, "copy of %zu bytes with a NULL pointer", bytes);
    memmove(dst, src_host, bytes);
}

void copy_d2h_cpu(KernelCtx *ctx, void *dst_host, const void *src, size_t bytes) {
    if (bytes == 0) return;
    CHECK(dst_host != NULL && src != NULL, "copy of %zu bytes with a NULL pointer", bytes);
    memmove(dst_host, src, bytes);
}

void copy_d2d_cpu(KernelCtx *ctx, void *dst, const void *src, size_t bytes) {
    if (bytes == 0) return;
    CHECK(dst != NULL && src != NULL, "copy of %zu bytes with a NULL pointer", bytes);
    memmove(dst, src, bytes);
}

void zero_cpu(KernelCtx *ctx, void *p, size_t bytes) {
    if (bytes == 0) return;
    CHECK(p != NULL, "zero of %zu bytes at NULL", bytes);
    memset(p, 0, bytes);
}

void sync_cpu(KernelCtx *ctx) {}

void kv_append_cpu(KernelCtx *ctx, float *kcache, float *vcache, const float *k, const float *v, const int *pos, int B,
                   int Tmax, int row) {
    (void)ctx;
    CHECK(kcache != NULL && vcache != NULL && k != NULL && v != NULL && pos != NULL && B > 0 && row > 0,
          "kv_append: B=%d row=%d with a NULL pointer", B, row);
    for (int b = 0; b < B; b++) {
        CHECK(pos[b] >= 0 && pos[b] < Tmax, "kv_append: sequence %d at position %d of %d", b, pos[b], Tmax);
        size_t dst = ((size_t)b * Tmax + pos[b]) * row;
        memcpy(kcache + dst, k + (size_t)b * row, (size_t)row * sizeof(float));
        memcpy(vcache + dst, v + (size_t)b * row, (size_t)row * sizeof(float));
    }
}
