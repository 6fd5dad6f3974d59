/* kernels/cuda/comm_nccl.h: the NCCL implementation of core/comm.h for device tensors (built only
 * with -DCISPO_CUDA=ON; see comm_nccl.c). */
#ifndef CISPO_KERNELS_CUDA_COMM_NCCL_H
#define CISPO_KERNELS_CUDA_COMM_NCCL_H

#include <stddef.h>

#include "core/comm.h"

/* Use GPU (local_rank % device count) for this process; call before the backend is created. */
int comm_nccl_select_device(int local_rank);
/* An NCCL group with the members of `mpi_group` (collective over it): rank 0's ncclUniqueId is
 * broadcast over MPI, every member joins with ncclCommInitRank on its current device, and the
 * watchdog (core/watchdog.h) gets a poll of ncclCommGetAsyncError and ncclCommAbort as its hook.
 * Buffers passed to the group's operations are device pointers. */
int comm_nccl_create(Comm *mpi_group, Comm *out);
/* dst[i] = sum over r in order 0..P-1 of src[r * n + i] (device memory, stream `stream`). */
void comm_nccl_ordered_sum(float *dst, const float *src, int P, size_t n, void *stream);

#endif
