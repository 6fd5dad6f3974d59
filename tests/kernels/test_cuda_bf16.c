/* tests/kernels/test_cuda_bf16.c: the FP32 <-> BF16 conversion kernels of the GPU weight sync
 * (kernels/cuda/convert_bf16.cu) against the CPU reference, bit for bit.
 * labels: gpu
 *
 * - FP32 -> BF16: hand-picked patterns (ties to even both ways, carry into the exponent, the largest
 *   float rounding to infinity, infinities, signed zeros, subnormals and their ties, quiet and
 *   signalling NaNs of both signs) and 20M pseudo-random bit patterns (more than one grid of
 *   65535 x 256 threads, so the grid-stride loop runs twice; an odd length for the tail), equal to
 *   the reference rounding (model/safetensors.c's st_f32_to_bf16, restated here);
 * - BF16 -> FP32: all 65536 patterns widen exactly (bits << 16);
 * - a round trip of BF16-representable floats is the identity.
 * Without a CUDA device it prints "skipped" and passes (CISPO_REQUIRE_GPU=1: fails).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "tests/test_gpu_skip.h"

#ifdef CISPO_HAVE_CUDA
#include <cuda_runtime.h>

#include "kernels/cuda/convert_bf16.h"

/* The CPU reference: round to nearest even on the bits; NaN keeps sign and payload, quiet bit set. */
static uint16_t ref_bf16(uint32_t u) {
    if ((u & 0x7fffffffu) > 0x7f800000u) return (uint16_t)((u >> 16) | 0x0040u);
    u += 0x7fffu + ((u >> 16) & 1u);
    return (uint16_t)(u >> 16);
}

static uint32_t mix(uint64_t i) {
    uint64_t x = i * 0x9E3779B97F4A7C15ull + 0x632BE59BD9B4E019ull;
    x ^= x >> 31;
    x *= 0xBF58476D1CE4E5B9ull;
    x ^= x >> 29;
    return (uint32_t)x;
}

/* Convert n FP32 bit patterns on the device and compare with the reference. */
static void check_narrow(const uint32_t *bits, size_t n) {
    float *d_src;
    uint16_t *d_dst, *got = malloc(n * sizeof(uint16_t));
    assert_int_equal(cudaMalloc((void **)&d_src, n * sizeof(float)), cudaSuccess);
    assert_int_equal(cudaMalloc((void **)&d_dst, n * sizeof(uint16_t)), cudaSuccess);
    assert_int_equal(cudaMemcpy(d_src, bits, n * sizeof(float), cudaMemcpyHostToDevice), cudaSuccess);
    cuda_f32_to_bf16(d_dst, d_src, n, NULL);
    cuda_stream_wait(NULL);
    cuda_copy_d2h(got, d_dst, n * sizeof(uint16_t));
    size_t bad = 0;
    for (size_t i = 0; i < n; i++) {
        uint16_t want = ref_bf16(bits[i]);
        if (got[i] != want && bad++ < 5) fprintf(stderr, "element %zu: %08x -> %04x, reference %04x\n", i, bits[i], got[i], want);
    }
    assert_int_equal(bad, 0);
    cudaFree(d_src), cudaFree(d_dst);
    free(got);
}

static void test_narrow_special_values(void **state) {
    const uint32_t bits[] = {
        0x3f800000u, 0x3f808000u /* tie, even: down */, 0x3f818000u /* tie, odd: up */, 0x3f808001u, 0x3f807fffu,
        0x3fffffffu /* carry into the exponent */, 0x7f7fffffu /* largest float: to inf */, 0x7f7f7fffu,
        0x7f800000u, 0xff800000u, 0x00000000u, 0x80000000u, 0x00000001u, 0x00008000u /* subnormal tie: 0 */,
        0x00018000u /* subnormal tie, odd: up */, 0x807fffffu, 0x00800000u, 0x7fc00000u, 0xffc00001u,
        0x7f800001u /* signalling NaN, tiny payload: stays NaN */, 0xff80ffffu, 0x7fffffffu, 0xbf7fffffu,
    };
    const size_t n = sizeof bits / sizeof bits[0];
    check_narrow(bits, n);
    for (size_t i = 0; i < n; i++) /* the reference keeps every NaN a NaN */
        if ((bits[i] & 0x7fffffffu) > 0x7f800000u) assert_true((ref_bf16(bits[i]) & 0x7fffu) > 0x7f80u);
    assert_int_equal(ref_bf16(0x3f808000u), 0x3f80);
    assert_int_equal(ref_bf16(0x3f818000u), 0x3f82);
    assert_int_equal(ref_bf16(0x7f7fffffu), 0x7f80);
}

static void test_narrow_random_patterns(void **state) {
    const size_t n = ((size_t)20 << 20) + 7;
    uint32_t *bits = malloc(n * sizeof(uint32_t));
    for (size_t i = 0; i < n; i++) bits[i] = mix(i);
    check_narrow(bits, n);
    free(bits);
}

static void test_widen_all_patterns_and_round_trip(void **state) {
    const size_t n = 65536;
    uint16_t *h = malloc(n * sizeof(uint16_t)), *d_b, *back = malloc(n * sizeof(uint16_t));
    uint32_t *got = malloc(n * sizeof(uint32_t));
    float *d_f;
    for (size_t i = 0; i < n; i++) h[i] = (uint16_t)i;
    assert_int_equal(cudaMalloc((void **)&d_b, n * sizeof(uint16_t)), cudaSuccess);
    assert_int_equal(cudaMalloc((void **)&d_f, n * sizeof(float)), cudaSuccess);
    assert_int_equal(cudaMemcpy(d_b, h, n * sizeof(uint16_t), cudaMemcpyHostToDevice), cudaSuccess);
    cuda_bf16_to_f32(d_f, d_b, n, NULL);
    cuda_stream_wait(NULL);
    cuda_copy_d2h(got, d_f, n * sizeof(float));
    for (size_t i = 0; i < n; i++) assert_int_equal(got[i], (uint32_t)i << 16);
    cuda_f32_to_bf16(d_b, d_f, n, NULL); /* narrowing a widened value gives it back (NaNs: quiet bit set) */
    cuda_stream_wait(NULL);
    cuda_copy_d2h(back, d_b, n * sizeof(uint16_t));
    for (size_t i = 0; i < n; i++) {
        int nan = (i & 0x7fffu) > 0x7f80u;
        assert_int_equal(back[i], nan ? (uint16_t)(i | 0x0040u) : (uint16_t)i);
    }
    cudaFree(d_b), cudaFree(d_f);
    free(h), free(back), free(got);
}

int main(void) {
    int st = gpu_skip_status("test_cuda_bf16");
    if (st >= 0) return st;
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_narrow_special_values),
        cmocka_unit_test(test_narrow_random_patterns),
        cmocka_unit_test(test_widen_all_patterns_and_round_trip),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

#else

int main(void) {
    int st = gpu_skip_status("test_cuda_bf16"); /* never -1 here: kernels_cuda() is NULL without CUDA */
    return st < 0 ? 1 : st;
}

#endif
