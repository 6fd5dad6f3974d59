/* core/comm.c: the MPI and one-rank ("self") implementations of core/comm.h.
 *
 * Large buffers move in chunks of at most 1 GiB (MPI counts are int). The deterministic all-reduce
 * works on chunks of 1M floats: rank 0 receives each rank's chunk in rank order and adds it to its
 * own, then broadcasts the chunk; O(size) traffic at rank 0, which is fine for the group sizes a
 * host-memory (CPU) run uses. GPU groups use NCCL instead.
 */
#include "core/comm.h"

#include <mpi.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "core/error.h"

#define COMM_CHUNK_BYTES ((size_t)1 << 30)
#define REDUCE_CHUNK ((size_t)1 << 20)

static int g_started; /* comm_init called MPI_Init_thread */
static unsigned long long g_sent; /* comm_bytes_sent */

unsigned long long comm_bytes_sent(void) { return g_sent; }

static int mpi_fail(int rc, const char *what) {
    char msg[MPI_MAX_ERROR_STRING];
    int len = 0;
    MPI_Error_string(rc, msg, &len);
    return err_set(ERR_IO, "%s failed: %.*s", what, len, msg);
}

static MPI_Comm mcomm(const Comm *c) { return *(MPI_Comm *)c->impl; }

static int launched_by_mpirun(void) {
    return getenv("OMPI_COMM_WORLD_SIZE") || getenv("PMI_SIZE") || getenv("PMIX_RANK");
}

int comm_init(int *argc, char ***argv, int *world_size, int *world_rank) {
    *world_size = 1, *world_rank = 0;
    int init = 0;
    MPI_Initialized(&init);
    if (!init && !launched_by_mpirun()) return 0;
    if (!init) {
        int provided = 0, rc = MPI_Init_thread(argc, argv, MPI_THREAD_FUNNELED, &provided);
        if (rc != MPI_SUCCESS) return mpi_fail(rc, "MPI_Init_thread");
        g_started = 1;
        MPI_Comm_set_errhandler(MPI_COMM_WORLD, MPI_ERRORS_RETURN);
    }
    MPI_Comm_size(MPI_COMM_WORLD, world_size);
    MPI_Comm_rank(MPI_COMM_WORLD, world_rank);
    return 0;
}

int comm_mpi_up(void) {
    int init = 0, fin = 0;
    MPI_Initialized(&init);
    MPI_Finalized(&fin);
    return init && !fin;
}

void comm_finalize(void) {
    if (g_started && comm_mpi_up()) MPI_Finalize();
    g_started = 0;
}

void comm_abort(int code) {
    if (comm_mpi_up()) MPI_Abort(MPI_COMM_WORLD, code);
    exit(code);
}

/* ---- one-rank group ---- */

static int self_allreduce(Comm *c, float *buf, size_t n) { return 0; }
static int self_bcast(Comm *c, void *buf, size_t bytes, int root) { return 0; }
static int self_send(Comm *c, const void *buf, size_t bytes, int dst, int tag) {
    return err_set(ERR_UNSUPPORTED, "comm: send in a one-rank group");
}
static int self_recv(Comm *c, void *buf, size_t bytes, int src, int tag) {
    return err_set(ERR_UNSUPPORTED, "comm: recv in a one-rank group");
}
static void self_free(Comm *c) {}
static const CommOps kSelfOps = {"self", self_allreduce, self_bcast, self_send, self_recv, self_free};

/* ---- MPI ---- */

static int mpi_bcast(Comm *c, void *buf, size_t bytes, int root) {
    for (size_t o = 0; o < bytes; o += COMM_CHUNK_BYTES) {
        size_t n = bytes - o < COMM_CHUNK_BYTES ? bytes - o : COMM_CHUNK_BYTES;
        if (c->rank == root) g_sent += n * (size_t)(c->size - 1);
        int rc = MPI_Bcast((char *)buf + o, (int)n, MPI_BYTE, root, mcomm(c));
        if (rc != MPI_SUCCESS) return mpi_fail(rc, "MPI_Bcast");
    }
    return 0;
}

static int mpi_send(Comm *c, const void *buf, size_t bytes, int dst, int tag) {
    for (size_t o = 0; o < bytes; o += COMM_CHUNK_BYTES) {
        size_t n = bytes - o < COMM_CHUNK_BYTES ? bytes - o : COMM_CHUNK_BYTES;
        g_sent += n;
        int rc = MPI_Send((const char *)buf + o, (int)n, MPI_BYTE, dst, tag, mcomm(c));
        if (rc != MPI_SUCCESS) return mpi_fail(rc, "MPI_Send");
    }
    return 0;
}

static int mpi_recv(Comm *c, void *buf, size_t bytes, int src, int tag) {
    for (size_t o = 0; o < bytes; o += COMM_CHUNK_BYTES) {
        size_t n = bytes - o < COMM_CHUNK_BYTES ? bytes - o : COMM_CHUNK_BYTES;
        MPI_Status st;
        int rc = MPI_Recv((char *)buf + o, (int)n, MPI_BYTE, src, tag, mcomm(c), &st);
        if (rc != MPI_SUCCESS) return mpi_fail(rc, "MPI_Recv");
        int got = 0;
        MPI_Get_count(&st, MPI_BYTE, &got);
        if ((size_t)got != n)
            return err_set(ERR_FORMAT, "comm: message from rank %d (tag %d) has %d bytes, expected %zu", src, tag, got, n);
    }
    return 0;
}

/* Rank-order sum: rank 0 accumulates chunk by chunk, then broadcasts. */
static int mpi_allreduce(Comm *c, float *buf, size_t n) {
    if (c->size == 1) return 0;
    float *tmp = c->rank == 0 ? xmalloc(REDUCE_CHUNK * sizeof(float)) : NULL;
    int err = 0;
    for (size_t o = 0; o < n && !err; o += REDUCE_CHUNK) {
        size_t k = n - o < REDUCE_CHUNK ? n - o : REDUCE_CHUNK;
        if (c->rank == 0) {
            for (int r = 1; r < c->size && !err; r++) {
                err = mpi_recv(c, tmp, k * sizeof(float), r, 7001);
                for (size_t i = 0; i < k && !err; i++) buf[o + i] += tmp[i];
            }
        } else {
            err = mpi_send(c, buf + o, k * sizeof(float), 0, 7001);
        }
        if (!err) err = mpi_bcast(c, buf + o, k * sizeof(float), 0);
    }
    free(tmp);
    return err;
}

static void mpi_free(Comm *c) {
    MPI_Comm *mc = c->impl;
    if (mc && *mc != MPI_COMM_WORLD && *mc != MPI_COMM_NULL && comm_mpi_up()) MPI_Comm_free(mc);
    free(mc);
}

static const CommOps kMpiOps = {"mpi", mpi_allreduce, mpi_bcast, mpi_send, mpi_recv, mpi_free};

int comm_world(Comm *out) {
    memset(out, 0, sizeof(*out));
    if (!comm_mpi_up()) {
        out->ops = &kSelfOps;
        out->size = 1;
        return 0;
    }
    MPI_Comm *mc = xmalloc(sizeof(MPI_Comm));
    *mc = MPI_COMM_WORLD;
    out->ops = &kMpiOps;
    out->impl = mc;
    MPI_Comm_size(MPI_COMM_WORLD, &out->size);
    MPI_Comm_rank(MPI_COMM_WORLD, &out->rank);
    return 0;
}

int comm_split(const Comm *parent, int color, Comm *out) {
    memset(out, 0, sizeof(*out));
    if (parent->ops != &kMpiOps) {
        out->ops = &kSelfOps;
        out->size = color >= 0 ? 1 : 0;
        return 0;
    }
    MPI_Comm nc;
    int rc = MPI_Comm_split(mcomm(parent), color >= 0 ? color : MPI_UNDEFINED, parent->rank, &nc);
    if (rc != MPI_SUCCESS) return mpi_fail(rc, "MPI_Comm_split");
    out->ops = &kMpiOps;
    if (nc == MPI_COMM_NULL) return 0;
    MPI_Comm_set_errhandler(nc, MPI_ERRORS_RETURN);
    MPI_Comm *mc = xmalloc(sizeof(MPI_Comm));
    *mc = nc;
    out->impl = mc;
    MPI_Comm_size(nc, &out->size);
    MPI_Comm_rank(nc, &out->rank);
    return 0;
}

void comm_free(Comm *c) {
    if (c->ops) c->ops->free(c);
    memset(c, 0, sizeof(*c));
}

int comm_allreduce_sum_f32(Comm *c, float *buf, size_t n) { return c->ops->allreduce_sum_f32(c, buf, n); }
int comm_bcast(Comm *c, void *buf, size_t bytes, int root) { return c->ops->bcast(c, buf, bytes, root); }
int comm_send(Comm *c, const void *buf, size_t bytes, int dst, int tag) { return c->ops->send(c, buf, bytes, dst, tag); }
int comm_recv(Comm *c, void *buf, size_t bytes, int src, int tag) { return c->ops->recv(c, buf, bytes, src, tag); }

int comm_barrier(Comm *c) {
    if (c->ops != &kMpiOps || c->size <= 1) return 0;
    int rc = MPI_Barrier(mcomm(c));
    return rc == MPI_SUCCESS ? 0 : mpi_fail(rc, "MPI_Barrier");
}

int comm_allgatherv_inplace(Comm *c, void *buf, const size_t *count, const size_t *displ) {
    if (c->ops != &kMpiOps || c->size <= 1) return 0;
    int *cnt = xmalloc((size_t)c->size * sizeof(int)), *dsp = xmalloc((size_t)c->size * sizeof(int));
    int err = 0;
    for (int r = 0; r < c->size; r++) {
        if (count[r] > (size_t)INT32_MAX || displ[r] > (size_t)INT32_MAX) err = err_set(ERR_RANGE, "comm: allgatherv over 2 GiB");
        cnt[r] = (int)count[r], dsp[r] = (int)displ[r];
    }
    if (!err) {
        g_sent += count[c->rank] * (size_t)(c->size - 1);
        int rc = MPI_Allgatherv(MPI_IN_PLACE, 0, MPI_DATATYPE_NULL, buf, cnt, dsp, MPI_BYTE, mcomm(c));
        if (rc != MPI_SUCCESS) err = mpi_fail(rc, "MPI_Allgatherv");
    }
    free(cnt), free(dsp);
    return err;
}

int comm_allreduce_max_f64(Comm *c, double *buf, int n) {
    if (c->ops != &kMpiOps || c->size <= 1) return 0;
    int rc = MPI_Allreduce(MPI_IN_PLACE, buf, n, MPI_DOUBLE, MPI_MAX, mcomm(c));
    return rc == MPI_SUCCESS ? 0 : mpi_fail(rc, "MPI_Allreduce(max)");
}

int comm_isend(Comm *c, const void *buf, size_t bytes, int dst, int tag, CommReq *req) {
    req->impl = NULL;
    if (c->ops != &kMpiOps) return err_set(ERR_UNSUPPORTED, "comm: isend needs an MPI group");
    if (bytes > (size_t)INT32_MAX) return err_set(ERR_RANGE, "comm: isend of %zu bytes (over 2 GiB)", bytes);
    MPI_Request *rq = xmalloc(sizeof(MPI_Request));
    g_sent += bytes;
    int rc = MPI_Isend(buf, (int)bytes, MPI_BYTE, dst, tag, mcomm(c), rq);
    if (rc != MPI_SUCCESS) {
        free(rq);
        return mpi_fail(rc, "MPI_Isend");
    }
    req->impl = rq;
    return 0;
}

int comm_wait(CommReq *req) {
    if (!req->impl) return 0;
    int rc = MPI_Wait((MPI_Request *)req->impl, MPI_STATUS_IGNORE);
    free(req->impl);
    req->impl = NULL;
    return rc == MPI_SUCCESS ? 0 : mpi_fail(rc, "MPI_Wait");
}
