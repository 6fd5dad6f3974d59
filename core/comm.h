/* core/comm.h: collective and point-to-point communication behind one interface (DESIGN.md §4).
 *
 * A Comm is a group of ranks with an implementation table: MPI (core/comm.c) moves host memory;
 * NCCL (kernels/cuda/comm_nccl.c, built with -DCISPO_CUDA=ON) moves device memory, one
 * communicator per group, created from a unique id broadcast over the group's MPI communicator.
 *
 * Determinism: comm_allreduce_sum_f32 adds the ranks' buffers in rank order, ((b0 + b1) + b2) + ...,
 * so the result is bit-identical on every rank and from run to run for one layout (MPI_Allreduce
 * leaves the order unspecified). The MPI version gathers chunks at the group's rank 0, adds them in
 * order and broadcasts the sum.
 *
 * A process started without mpirun (no OMPI_COMM_WORLD_SIZE / PMI_SIZE / PMIX_RANK in the
 * environment) never initialises MPI: comm_world gives a one-rank group whose operations are copies
 * or no-ops, so single-process runs behave exactly as before.
 */
#ifndef CISPO_CORE_COMM_H
#define CISPO_CORE_COMM_H

#include <stddef.h>

typedef struct Comm Comm;

/* A pending non-blocking send (comm_isend); complete it with comm_wait before reusing its buffer. */
typedef struct {
    void *impl;
} CommReq;

typedef struct {
    const char *name; /* "mpi" | "nccl" | "self" */
    int (*allreduce_sum_f32)(Comm *c, float *buf, size_t n);
    int (*bcast)(Comm *c, void *buf, size_t bytes, int root);
    int (*send)(Comm *c, const void *buf, size_t bytes, int dst, int tag);
    int (*recv)(Comm *c, void *buf, size_t bytes, int src, int tag);
    void (*free)(Comm *c);
} CommOps;

struct Comm {
    const CommOps *ops;
    int rank, size; /* size 0: this process is not a member */
    void *impl;     /* MPI: MPI_Comm *; NCCL: its state */
};

/* Initialise MPI when launched by mpirun/srun (MPI_THREAD_FUNNELED: only the main thread calls MPI).
 * Idempotent. *world_size and *world_rank get 1 and 0 without a launcher. */
int comm_init(int *argc, char ***argv, int *world_size, int *world_rank);
/* 1 when MPI was initialised by comm_init. */
int comm_mpi_up(void);
/* Finalise MPI if comm_init started it. */
void comm_finalize(void);
/* Abort every rank of the job with `code` (MPI_Abort), or exit(code) without MPI. Never returns. */
void comm_abort(int code) __attribute__((noreturn));

/* The whole job (MPI_COMM_WORLD), or a one-rank group without MPI. */
int comm_world(Comm *out);
/* Split `parent` (an MPI group): ranks with the same color >= 0 form a group, ordered by their
 * parent rank; color < 0 gives out->size == 0 (not a member). Collective over parent. */
int comm_split(const Comm *parent, int color, Comm *out);
void comm_free(Comm *c); /* idempotent */

int comm_allreduce_sum_f32(Comm *c, float *buf /* (n) */, size_t n);
int comm_bcast(Comm *c, void *buf, size_t bytes, int root);
int comm_send(Comm *c, const void *buf, size_t bytes, int dst, int tag);
int comm_recv(Comm *c, void *buf, size_t bytes, int src, int tag);

/* Host-memory helpers (MPI groups only; one-rank groups copy or return). */
int comm_barrier(Comm *c);
/* Every rank holds its slice [displ[r], displ[r] + count[r]) bytes of buf; afterwards all hold all. */
int comm_allgatherv_inplace(Comm *c, void *buf, const size_t *count, const size_t *displ);
/* Element-wise max of n doubles over the group (exact, order-free). */
int comm_allreduce_max_f64(Comm *c, double *buf, int n);
int comm_isend(Comm *c, const void *buf, size_t bytes, int dst, int tag, CommReq *req);
int comm_wait(CommReq *req); /* no-op on an empty request */
/* Bytes this process has handed to MPI to send so far (point-to-point, broadcast roots, its share of
 * all-gathers and all-reduces): for the bytes-per-step figures. */
unsigned long long comm_bytes_sent(void);

#endif
