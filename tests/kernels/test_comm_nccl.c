/* tests/kernels/test_comm_nccl.c: the NCCL group of core/comm.h on two GPUs (kernels/cuda/comm_nccl.c).
 * labels: gpu mpi
 * mpi_np: 2
 *
 * - the all-reduce of device buffers equals the rank-order sum computed on the host, bit for bit,
 *   over more than one 16M-float chunk (values whose sum depends on the order);
 * - broadcast from the last rank and a send/recv pair carry their bytes exactly;
 * - rank 0 prints the all-reduce and broadcast bandwidth on 256 MiB (algorithm bandwidth, bytes / s).
 * Without a CISPO_CUDA build or with fewer than two GPUs it prints "skipped" and passes, unless
 * CISPO_REQUIRE_GPU=1.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <cmocka.h>

#include "core/comm.h"

#ifdef CISPO_HAVE_CUDA
#include <cuda_runtime.h>

#include "kernels/cuda/comm_nccl.h"

static Comm g_world, g_nccl;

static float value(int rank, size_t i) {
    uint32_t h = (uint32_t)(i * 2654435761u) ^ (uint32_t)(rank * 40503u + 17u);
    h ^= h >> 13;
    h *= 0x5bd1e995u;
    h ^= h >> 15;
    float mag = (h & 1) ? 1e7f : 1e-3f;
    return ((h >> 1) & 1 ? -mag : mag) * (float)(1 + (h >> 8) % 97) / 97.0f;
}

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec * 1e-9;
}

static void test_allreduce_matches_rank_order(void **state) {
    const size_t n = ((size_t)16 << 20) + 12345;
    float *h = malloc(n * sizeof(float)), *d;
    for (size_t i = 0; i < n; i++) h[i] = value(g_nccl.rank, i);
    assert_int_equal(cudaMalloc((void **)&d, n * sizeof(float)), cudaSuccess);
    cudaMemcpy(d, h, n * sizeof(float), cudaMemcpyHostToDevice);
    assert_int_equal(comm_allreduce_sum_f32(&g_nccl, d, n), 0);
    cudaMemcpy(h, d, n * sizeof(float), cudaMemcpyDeviceToHost);
    for (size_t i = 0; i < n; i++) {
        float want = value(0, i);
        for (int r = 1; r < g_nccl.size; r++) want += value(r, i);
        if (memcmp(&h[i], &want, sizeof want) != 0) fail_msg("element %zu: %.9g, rank-order sum %.9g", i, h[i], want);
    }
    cudaFree(d);
    free(h);
}

static void test_bcast_and_send(void **state) {
    const size_t bytes = 1 << 20;
    unsigned char *h = malloc(bytes), *d;
    assert_int_equal(cudaMalloc((void **)&d, bytes), cudaSuccess);
    for (size_t i = 0; i < bytes; i++) h[i] = g_nccl.rank == g_nccl.size - 1 ? (unsigned char)(i * 7) : 0;
    cudaMemcpy(d, h, bytes, cudaMemcpyHostToDevice);
    assert_int_equal(comm_bcast(&g_nccl, d, bytes, g_nccl.size - 1), 0);
    cudaMemcpy(h, d, bytes, cudaMemcpyDeviceToHost);
    for (size_t i = 0; i < bytes; i++) assert_int_equal(h[i], (unsigned char)(i * 7));
    if (g_nccl.rank == 0) {
        for (size_t i = 0; i < bytes; i++) h[i] = (unsigned char)(i * 13 + 1);
        cudaMemcpy(d, h, bytes, cudaMemcpyHostToDevice);
        assert_int_equal(comm_send(&g_nccl, d, bytes, 1, 0), 0);
    } else if (g_nccl.rank == 1) {
        assert_int_equal(comm_recv(&g_nccl, d, bytes, 0, 0), 0);
        cudaMemcpy(h, d, bytes, cudaMemcpyDeviceToHost);
        for (size_t i = 0; i < bytes; i++) assert_int_equal(h[i], (unsigned char)(i * 13 + 1));
    }
    cudaFree(d);
    free(h);
}

static void test_bandwidth(void **state) {
    const size_t bytes = (size_t)256 << 20, n = bytes / 4;
    float *d;
    assert_int_equal(cudaMalloc((void **)&d, bytes), cudaSuccess);
    cudaMemset(d, 0, bytes);
    comm_allreduce_sum_f32(&g_nccl, d, n); /* warm-up */
    comm_barrier(&g_world);
    double t0 = now_s();
    for (int i = 0; i < 10; i++) assert_int_equal(comm_allreduce_sum_f32(&g_nccl, d, n), 0);
    double ar = (now_s() - t0) / 10;
    comm_barrier(&g_world);
    t0 = now_s();
    for (int i = 0; i < 10; i++) assert_int_equal(comm_bcast(&g_nccl, d, bytes, 0), 0);
    double bc = (now_s() - t0) / 10;
    if (g_nccl.rank == 0)
        printf("NCCL %d ranks, 256 MiB fp32: ordered all-reduce %.2f ms (%.1f GB/s algbw), broadcast %.2f ms (%.1f GB/s)\n",
               g_nccl.size, ar * 1e3, bytes / ar / 1e9, bc * 1e3, bytes / bc / 1e9);
    cudaFree(d);
}
#endif

int main(int argc, char **argv) {
    int size, rank;
    if (comm_init(&argc, &argv, &size, &rank) != 0) return 1;
    const char *req = getenv("CISPO_REQUIRE_GPU");
    int require = req && req[0] == '1';
#ifdef CISPO_HAVE_CUDA
    int ndev = 0;
    if (cudaGetDeviceCount(&ndev) != cudaSuccess) ndev = 0;
    if (ndev < 2 || size < 2) {
        if (rank == 0) printf("skipped: %d GPU(s), %d rank(s); needs 2 of each\n", ndev, size);
        comm_finalize();
        return require ? 1 : 0;
    }
    if (comm_nccl_select_device(rank) || comm_world(&g_world) || comm_nccl_create(&g_world, &g_nccl)) return 1;
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_allreduce_matches_rank_order),
        cmocka_unit_test(test_bcast_and_send),
        cmocka_unit_test(test_bandwidth),
    };
    int failed = cmocka_run_group_tests(tests, NULL, NULL);
    comm_free(&g_nccl);
    comm_free(&g_world);
    comm_finalize();
    return failed;
#else
    if (rank == 0) printf("skipped: built without -DCISPO_CUDA=ON\n");
    comm_finalize();
    return require ? 1 : 0;
#endif
}
