/* bench/gpu/nccl_pair.c: the NCCL group of core/comm.h (kernels/cuda/comm_nccl.c) on P GPUs of one
 * host, without MPI: P processes (fork) exchange the ncclUniqueId through a file (a bootstrap Comm
 * whose only operation is bcast), so it builds on a machine that has CUDA and NCCL but no MPI
 * (bench/gpu/nccl_pair.sh). Checks, then figures:
 *   1. the ordered all-reduce equals the rank-order sum computed on the host, bit for bit (values whose
 *      sum depends on the order; more than one 16M-float chunk);
 *   2. broadcast from the last rank and a send/recv pair carry their bytes exactly;
 *   3. all-reduce and broadcast time and algorithm bandwidth (bytes / s) for 64 MiB - 1 GiB buffers;
 *   4. the watchdog: rank 1 skips an all-reduce (a hung peer); rank 0, stuck polling, must be ended by
 *      its watchdog (deadline 3 s) with ncclCommAbort and status 75.
 * usage: nccl_pair [P]   (P = 2 by default; GPU r for rank r)
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <cuda_runtime.h>

#include "core/comm.h"
#include "core/error.h"
#include "core/watchdog.h"
#include "kernels/cuda/comm_nccl.h"

static char g_boot[256];

/* core/comm.c's dispatchers (that file needs MPI; this program does not link it) */
int comm_allreduce_sum_f32(Comm *c, float *buf, size_t n) { return c->ops->allreduce_sum_f32(c, buf, n); }
int comm_bcast(Comm *c, void *buf, size_t bytes, int root) { return c->ops->bcast(c, buf, bytes, root); }
int comm_send(Comm *c, const void *buf, size_t bytes, int dst, int tag) { return c->ops->send(c, buf, bytes, dst, tag); }
int comm_recv(Comm *c, void *buf, size_t bytes, int src, int tag) { return c->ops->recv(c, buf, bytes, src, tag); }
void comm_free(Comm *c) {
    if (c->ops) c->ops->free(c);
    memset(c, 0, sizeof(*c));
}

/* The bootstrap group: bcast through a file (root writes and renames, the others poll). */
static int boot_bcast(Comm *c, void *buf, size_t bytes, int root) {
    if (c->rank == root) {
        char tmp[300];
        snprintf(tmp, sizeof tmp, "%s.tmp", g_boot);
        FILE *f = fopen(tmp, "wb");
        if (!f || fwrite(buf, 1, bytes, f) != bytes || fclose(f) != 0 || rename(tmp, g_boot) != 0)
            return err_set(ERR_IO, "bootstrap: cannot write %s", g_boot);
        return 0;
    }
    for (int i = 0; i < 60000; i++) {
        FILE *f = fopen(g_boot, "rb");
        if (f) {
            size_t got = fread(buf, 1, bytes, f);
            fclose(f);
            if (got == bytes) return 0;
        }
        usleep(1000);
    }
    return err_set(ERR_IO, "bootstrap: no %s after 60 s", g_boot);
}
static int boot_none(Comm *c, float *b, size_t n) { return err_set(ERR_UNSUPPORTED, "bootstrap: bcast only"); }
static int boot_p2p(Comm *c, const void *b, size_t n, int p, int t) { return err_set(ERR_UNSUPPORTED, "bootstrap"); }
static int boot_recv(Comm *c, void *b, size_t n, int p, int t) { return err_set(ERR_UNSUPPORTED, "bootstrap"); }
static void boot_free(Comm *c) {}
static const CommOps kBootOps = {"boot", boot_none, boot_bcast, boot_p2p, boot_recv, boot_free};

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

#define FAIL(...) do { fprintf(stderr, "rank %d: ", nc->rank); fprintf(stderr, __VA_ARGS__); fputc('\n', stderr); return 1; } while (0)

static int check_allreduce(Comm *nc) {
    const size_t n = ((size_t)16 << 20) + 12345;
    float *h = malloc(n * sizeof(float)), *d;
    for (size_t i = 0; i < n; i++) h[i] = value(nc->rank, i);
    if (cudaMalloc((void **)&d, n * sizeof(float)) != cudaSuccess) FAIL("cudaMalloc");
    cudaMemcpy(d, h, n * sizeof(float), cudaMemcpyHostToDevice);
    if (comm_allreduce_sum_f32(nc, d, n)) FAIL("all-reduce: %s", err_msg());
    cudaMemcpy(h, d, n * sizeof(float), cudaMemcpyDeviceToHost);
    size_t bad = 0;
    for (size_t i = 0; i < n; i++) {
        float want = value(0, i);
        for (int r = 1; r < nc->size; r++) want += value(r, i);
        bad += memcmp(&h[i], &want, sizeof want) != 0;
    }
    cudaFree(d);
    free(h);
    if (bad) FAIL("ordered all-reduce: %zu of %zu elements differ from the rank-order sum", bad, n);
    if (nc->rank == 0) printf("check 1: ordered all-reduce of %zu floats = host rank-order sum, bit for bit\n", n);
    return 0;
}

static int check_bcast_send(Comm *nc) {
    const size_t bytes = 1 << 20;
    unsigned char *h = malloc(bytes), *d;
    if (cudaMalloc((void **)&d, bytes) != cudaSuccess) FAIL("cudaMalloc");
    for (size_t i = 0; i < bytes; i++) h[i] = nc->rank == nc->size - 1 ? (unsigned char)(i * 7) : 0;
    cudaMemcpy(d, h, bytes, cudaMemcpyHostToDevice);
    if (comm_bcast(nc, d, bytes, nc->size - 1)) FAIL("bcast: %s", err_msg());
    cudaMemcpy(h, d, bytes, cudaMemcpyDeviceToHost);
    for (size_t i = 0; i < bytes; i++)
        if (h[i] != (unsigned char)(i * 7)) FAIL("bcast: byte %zu", i);
    if (nc->rank == 0) {
        for (size_t i = 0; i < bytes; i++) h[i] = (unsigned char)(i * 13 + 1);
        cudaMemcpy(d, h, bytes, cudaMemcpyHostToDevice);
        if (comm_send(nc, d, bytes, 1, 0)) FAIL("send: %s", err_msg());
    } else if (nc->rank == 1) {
        if (comm_recv(nc, d, bytes, 0, 0)) FAIL("recv: %s", err_msg());
        cudaMemcpy(h, d, bytes, cudaMemcpyDeviceToHost);
        for (size_t i = 0; i < bytes; i++)
            if (h[i] != (unsigned char)(i * 13 + 1)) FAIL("recv: byte %zu", i);
    }
    cudaFree(d);
    free(h);
    if (nc->rank == 0) printf("check 2: broadcast and send/recv of 1 MiB exact\n");
    return 0;
}

static int bandwidth(Comm *nc) {
    float *d, *one;
    const size_t max_bytes = (size_t)1 << 30;
    if (cudaMalloc((void **)&d, max_bytes) != cudaSuccess || cudaMalloc((void **)&one, 4) != cudaSuccess) FAIL("cudaMalloc");
    cudaMemset(d, 0, max_bytes);
    for (size_t bytes = (size_t)64 << 20; bytes <= max_bytes; bytes *= 4) {
        size_t n = bytes / 4;
        double t[2];
        for (int op = 0; op < 2; op++) {
            for (int w = 0; w < 2; w++) op ? comm_bcast(nc, d, bytes, 0) : comm_allreduce_sum_f32(nc, d, n);
            comm_allreduce_sum_f32(nc, one, 1); /* a barrier */
            double t0 = now_s();
            for (int i = 0; i < 10; i++)
                if (op ? comm_bcast(nc, d, bytes, 0) : comm_allreduce_sum_f32(nc, d, n)) FAIL("%s", err_msg());
            t[op] = (now_s() - t0) / 10;
        }
        if (nc->rank == 0)
            printf("cispo NCCL %d GPUs %5zu MiB fp32: ordered all-reduce %8.3f ms %7.1f GB/s | broadcast %8.3f ms %7.1f GB/s\n",
                   nc->size, bytes >> 20, t[0] * 1e3, bytes / t[0] / 1e9, t[1] * 1e3, bytes / t[1] / 1e9);
    }
    cudaFree(d);
    cudaFree(one);
    return 0;
}

static int rank_main(int rank, int P, int hang_test) {
    Comm boot = {&kBootOps, rank, P, NULL}, nccl;
    if (comm_nccl_select_device(rank) || comm_nccl_create(&boot, &nccl)) {
        fprintf(stderr, "rank %d: %s\n", rank, err_msg());
        return 1;
    }
    Comm *nc = &nccl;
    if (hang_test) { /* rank 1 never joins the all-reduce; rank 0's watchdog must end it */
        float *d;
        cudaMalloc((void **)&d, 1 << 20);
        if (rank == 1) {
            sleep(10);
            _exit(0);
        }
        watchdog_start(3.0, rank);
        comm_allreduce_sum_f32(nc, d, (1 << 20) / 4);
        FAIL("the all-reduce without its peer returned");
    }
    int bad = check_allreduce(nc) || check_bcast_send(nc) || bandwidth(nc);
    comm_free(nc);
    return bad;
}

static int run_ranks(int P, int hang_test, int *status, double *secs) {
    double t0 = now_s();
    snprintf(g_boot, sizeof g_boot, "/tmp/nccl_pair_id.%d.%d", (int)getpid(), hang_test);
    unlink(g_boot);
    pid_t pid[16];
    for (int r = 0; r < P; r++)
        if ((pid[r] = fork()) == 0) _exit(rank_main(r, P, hang_test));
    for (int r = 0; r < P; r++) {
        int st;
        waitpid(pid[r], &st, 0);
        status[r] = WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
        secs[r] = now_s() - t0;
    }
    unlink(g_boot);
    return 0;
}

int main(int argc, char **argv) {
    int P = argc > 1 ? atoi(argv[1]) : 2, st[16];
    double secs[16];
    if (P < 2 || P > 16) return 2;
    run_ranks(P, 0, st, secs);
    int bad = 0;
    for (int r = 0; r < P; r++) bad |= st[r] != 0;
    printf("checks 1-3: %s\n", bad ? "FAILED" : "passed");
    run_ranks(2, 1, st, secs);
    printf("check 4: hung peer: rank 0 exited with %d after %.1f s from start (want %d: deadline 3 s + start-up); %s\n",
           st[0], secs[0],
           CISPO_EXIT_WATCHDOG, st[0] == CISPO_EXIT_WATCHDOG ? "passed" : "FAILED");
    return bad || st[0] != CISPO_EXIT_WATCHDOG;
}
