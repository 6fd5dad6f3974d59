/* kernels/cuda/comm_nccl.c: NCCL groups for core/comm.h (DESIGN.md §4), one communicator per group.
 *
 * - Creation: rank 0 of the MPI group calls ncclGetUniqueId, the id is broadcast over MPI, every
 *   member calls ncclCommInitRank on its current device.
 * - Deterministic all-reduce: ncclAllGather of a chunk (P x 16M floats of scratch at most) into
 *   device scratch, then comm_nccl_ordered_sum adds the P slices in rank order; for P = 2 this moves
 *   as many bytes as a ring all-reduce, for larger P up to P/2 times more.
 * - Broadcast: ncclBroadcast; point-to-point: ncclSend / ncclRecv.
 * - No call waits blindly: after enqueueing, the host polls cudaStreamQuery and
 *   ncclCommGetAsyncError (NCCL has no timeout of its own); an asynchronous error is returned as
 *   ERR_IO, and the watchdog (core/watchdog.h) polls the same error and calls ncclCommAbort on
 *   every communicator before it ends the process, so a hung peer cannot hold a GPU forever.
 */
#include "kernels/cuda/comm_nccl.h"

#include <cuda_runtime.h>
#include <nccl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "core/error.h"
#include "core/watchdog.h"

#define SUM_CHUNK ((size_t)16 << 20)

typedef struct {
    ncclComm_t nc;
    cudaStream_t stream;
    float *scratch; /* (P * SUM_CHUNK) */
    int aborted;
} NcclImpl;

int comm_nccl_select_device(int local_rank) {
    int n = 0;
    cudaError_t e = cudaGetDeviceCount(&n);
    if (e != cudaSuccess || n == 0) return err_set(ERR_UNSUPPORTED, "no CUDA device (%s)", cudaGetErrorString(e));
    if ((e = cudaSetDevice(local_rank % n)) != cudaSuccess)
        return err_set(ERR_IO, "cudaSetDevice(%d): %s", local_rank % n, cudaGetErrorString(e));
    return 0;
}

static int nccl_fail(ncclResult_t r, const char *what) {
    watchdog_wait_exit(); /* failed because the watchdog aborted the communicator: its exit status wins */
    return err_set(ERR_IO, "%s failed: %s", what, ncclGetErrorString(r));
}

/* Wait for the group's stream while watching for NCCL's asynchronous errors. */
static int nccl_wait(NcclImpl *im, const char *what) {
    for (;;) {
        cudaError_t q = cudaStreamQuery(im->stream);
        if (q != cudaErrorNotReady) watchdog_wait_exit(); /* an aborted collective may end "successfully" */
        if (q == cudaSuccess) return 0;
        if (q != cudaErrorNotReady) return err_set(ERR_IO, "%s: %s", what, cudaGetErrorString(q));
        ncclResult_t ae = ncclSuccess;
        ncclCommGetAsyncError(im->nc, &ae);
        if (ae != ncclSuccess && ae != ncclInProgress) return nccl_fail(ae, what);
        struct timespec ts = {0, 20000};
        nanosleep(&ts, NULL);
    }
}

static int nccl_allreduce(Comm *c, float *buf, size_t n) {
    NcclImpl *im = c->impl;
    if (c->size == 1) return 0;
    for (size_t o = 0; o < n; o += SUM_CHUNK) {
        size_t k = n - o < SUM_CHUNK ? n - o : SUM_CHUNK;
        ncclResult_t r = ncclAllGather(buf + o, im->scratch, k, ncclFloat, im->nc, im->stream);
        if (r != ncclSuccess) return nccl_fail(r, "ncclAllGather");
        comm_nccl_ordered_sum(buf + o, im->scratch, c->size, k, im->stream);
        int err = nccl_wait(im, "all-reduce");
        if (err) return err;
        watchdog_beat();
    }
    return 0;
}

static int nccl_bcast(Comm *c, void *buf, size_t bytes, int root) {
    NcclImpl *im = c->impl;
    ncclResult_t r = ncclBroadcast(buf, buf, bytes, ncclUint8, root, im->nc, im->stream);
    if (r != ncclSuccess) return nccl_fail(r, "ncclBroadcast");
    return nccl_wait(im, "broadcast");
}

static int nccl_send(Comm *c, const void *buf, size_t bytes, int dst, int tag) {
    NcclImpl *im = c->impl;
    ncclResult_t r = ncclSend(buf, bytes, ncclUint8, dst, im->nc, im->stream);
    if (r != ncclSuccess) return nccl_fail(r, "ncclSend");
    return nccl_wait(im, "send");
}

static int nccl_recv(Comm *c, void *buf, size_t bytes, int src, int tag) {
    NcclImpl *im = c->impl;
    ncclResult_t r = ncclRecv(buf, bytes, ncclUint8, src, im->nc, im->stream);
    if (r != ncclSuccess) return nccl_fail(r, "ncclRecv");
    return nccl_wait(im, "recv");
}

static void nccl_free(Comm *c) {
    NcclImpl *im = c->impl;
    if (!im) return;
    if (!im->aborted) ncclCommDestroy(im->nc);
    cudaFree(im->scratch);
    cudaStreamDestroy(im->stream);
    free(im);
}

static const CommOps kNcclOps = {"nccl", nccl_allreduce, nccl_bcast, nccl_send, nccl_recv, nccl_free};

static int watchdog_poll(void *arg, char *why, int cap) {
    NcclImpl *im = arg;
    ncclResult_t ae = ncclSuccess;
    if (ncclCommGetAsyncError(im->nc, &ae) != ncclSuccess || ae == ncclSuccess || ae == ncclInProgress) return 0;
    snprintf(why, (size_t)cap, "NCCL asynchronous error: %s", ncclGetErrorString(ae));
    return 1;
}

static void watchdog_abort(void *arg) {
    NcclImpl *im = arg;
    im->aborted = 1;
    ncclCommAbort(im->nc);
}

int comm_nccl_create(Comm *mpi_group, Comm *out) {
    memset(out, 0, sizeof(*out));
    ncclUniqueId id;
    memset(&id, 0, sizeof id);
    ncclResult_t r;
    if (mpi_group->rank == 0 && (r = ncclGetUniqueId(&id)) != ncclSuccess) return nccl_fail(r, "ncclGetUniqueId");
    int err = comm_bcast(mpi_group, &id, sizeof id, 0);
    if (err) return err;
    NcclImpl *im = xcalloc(1, sizeof(NcclImpl));
    cudaError_t e = cudaStreamCreate(&im->stream); /* blocking: ordered with the backend's legacy default stream */
    if (e == cudaSuccess) e = cudaMalloc((void **)&im->scratch, (size_t)mpi_group->size * SUM_CHUNK * sizeof(float));
    if (e != cudaSuccess) {
        free(im);
        return err_set(ERR_NOMEM, "NCCL group: %s", cudaGetErrorString(e));
    }
    if ((r = ncclCommInitRank(&im->nc, mpi_group->size, id, mpi_group->rank)) != ncclSuccess) {
        cudaFree(im->scratch);
        cudaStreamDestroy(im->stream);
        free(im);
        return nccl_fail(r, "ncclCommInitRank");
    }
    out->ops = &kNcclOps;
    out->impl = im;
    out->rank = mpi_group->rank;
    out->size = mpi_group->size;
    watchdog_add(watchdog_poll, watchdog_abort, im);
    return 0;
}
