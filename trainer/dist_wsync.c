/* trainer/dist_wsync.c: the GPU weight sync of disaggregated runs (trainer/dist.h, run.backend cuda):
 * BF16 weights from rank 0 to the rollout ranks by ncclBroadcast, version and hash over MPI.
 *
 * Approach:
 * - Group: an MPI split of {rank 0} + rollout ranks (rank 0 is its rank 0, the broadcast root) and
 *   an NCCL communicator on it (kernels/cuda/comm_nccl.h).
 * - Rank 0, after the update that makes version v (v <= rl_steps - 1 - k, k = dist.max_staleness):
 *   m->param_mem (one contiguous block of param_floats floats, padding included) -> BF16 into snapshot slot v % (k + 1)
 *   (kernels/cuda/convert_bf16.h), copied to the host and hashed (XXH3-64 of the BF16 bytes).
 * - Version v moves at one point of both sides' step (dist.h): after the batch of step v - 1 + k.
 *   With k >= 1 rank 0 sends it right after receiving that batch (the slot still holds v: the k - 1
 *   snapshots taken since went to other slots); with k = 0 right after the update of step v - 1.
 *   Sending is: the header {v, hash} to every rollout rank (MPI, tag 7202), then the broadcast.
 * - A rollout rank receives the header, checks the version is the next one, joins the broadcast into
 *   its BF16 buffer, hashes it (host copy), checks the hash, and widens it into m->param_mem. At its
 *   first call it rounds its own starting weights to BF16, so every generation sees BF16 weights.
 * - Ordering with the backend: the model's work is waited for (ops->sync) before the conversion
 *   reads the parameters; conversions run on the legacy default stream and are waited for before
 *   the broadcast and before the parameters are used again.
 * - Timing: each send/receive adds its seconds and bytes to Dist.sync_s / sync_bytes (timing.jsonl
 *   on rank 0) and logs a row "wsend" (rank 0) or "recv" (rollout ranks) with the BF16 hash, the
 *   seconds and the bytes.
 * - Test hook (dist.h): CISPO_TEST_WSYNC_BF16=1 with run.backend cpu runs this schedule on host
 *   buffers (st_f32_to_bf16, the CPU reference of the rounding) over the MPI group, so
 *   tests/cli/test_dist_wsync.c checks it under mpirun without GPUs. Without the hook (and on CPU)
 *   nothing here runs and the FP32 MPI path of dist.c is unchanged.
 */
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <xxhash.h>

#include "core/error.h"
#include "core/log.h"
#include "core/watchdog.h"
#include "model/safetensors_internal.h"
#include "trainer/dist.h"
#ifdef CISPO_HAVE_CUDA
#include "kernels/cuda/comm_nccl.h"
#include "kernels/cuda/convert_bf16.h"
#endif

enum { TAG_WHDR_BF16 = 7202 };

void dist_sync_take(Dist *d, double *seconds, double *bytes) {
    *seconds = d ? d->sync_s : 0;
    *bytes = d ? d->sync_bytes : 0;
    if (d) d->sync_s = d->sync_bytes = 0;
}

int dist_wsync_init(Dist *d, const RunConfig *rc) {
    const char *hook = getenv("CISPO_TEST_WSYNC_BF16");
    int gpu = !strcmp(rc->backend, "cuda"), host = hook && !strcmp(hook, "1") && !strcmp(rc->backend, "cpu");
    if (d->colocated || (!gpu && !host)) return 0;
    int member = d->rank == 0 || d->is_rollout;
    int err = comm_split(&d->wc, member ? 0 : -1, &d->wsync_mpi);
    if (err || !member) return err;
    if (host) {
        d->wsync = d->wsync_mpi; /* host buffers over MPI (the test hook) */
        d->wsync_bf16 = 1;
        return 0;
    }
#ifdef CISPO_HAVE_CUDA
    if ((err = comm_nccl_create(&d->wsync_mpi, &d->wsync))) return err_wrap(err, "rank %d: weight-sync NCCL group", d->rank);
    d->wsync_bf16 = d->wsync_dev = 1;
#endif
    return 0;
}

/* Buffers and conversions: device memory and the kernels of convert_bf16.cu, or host memory and
 * st_f32_to_bf16 (the CPU reference of the same rounding) for the test hook. */
static void *wmem_alloc(const Dist *d, size_t bytes) {
#ifdef CISPO_HAVE_CUDA
    if (d->wsync_dev) return cuda_dev_alloc(bytes);
#endif
    return xcalloc(1, bytes);
}

static void wmem_free(const Dist *d, void *p) {
#ifdef CISPO_HAVE_CUDA
    if (d->wsync_dev) {
        cuda_dev_free(p);
        return;
    }
#endif
    free(p);
}

/* dst (n) BF16 = round(src (n) FP32); widen: src (n) FP32 = dst (n) BF16. Complete on return. */
static void narrow(const Dist *d, uint16_t *dst, const float *src, size_t n) {
#ifdef CISPO_HAVE_CUDA
    if (d->wsync_dev) {
        cuda_f32_to_bf16(dst, src, n, NULL);
        cuda_stream_wait(NULL);
        return;
    }
#endif
    for (size_t i = 0; i < n; i++) dst[i] = st_f32_to_bf16(src[i]);
}

/* The parameters changed outside the backend's ops: registering the block again tells the backend
 * (the CUDA one refreshes the BF16 copy its GEMMs read, kernels/backend.h). */
static void params_written(Model *m) { m->ctx->ops->params_register(m->ctx, (const float *)m->param_mem, m->param_floats); }

static void widen(const Dist *d, float *dst, const uint16_t *src, size_t n) {
#ifdef CISPO_HAVE_CUDA
    if (d->wsync_dev) {
        cuda_bf16_to_f32(dst, src, n, NULL);
        cuda_stream_wait(NULL);
        return;
    }
#endif
    for (size_t i = 0; i < n; i++) {
        uint32_t u = (uint32_t)src[i] << 16;
        memcpy(&dst[i], &u, sizeof u);
    }
}

/* XXH3-64 of a BF16 block (device blocks through the pinned host copy d->whost). */
static uint64_t hash_bf16(Dist *d, const Model *m, const uint16_t *buf) {
    const size_t bytes = m->param_floats * sizeof(uint16_t);
#ifdef CISPO_HAVE_CUDA
    if (d->wsync_dev) {
        cuda_copy_d2h(d->whost, buf, bytes);
        buf = d->whost;
    }
#endif
    return XXH3_64bits(buf, bytes);
}

void dist_wsync_free(Dist *d) {
    if (d->wdev) {
        int n = d->rank == 0 ? d->n_wbuf : 1;
        for (int i = 0; i < n; i++) wmem_free(d, d->wdev[i]);
        free(d->wdev);
        d->wdev = NULL;
    }
#ifdef CISPO_HAVE_CUDA
    cuda_host_free(d->whost);
#endif
    free(d->wsnap_s);
    d->whost = NULL, d->wsnap_s = NULL;
    if (d->wsync_dev) comm_free(&d->wsync); /* the NCCL group; the host path shares wsync_mpi */
    memset(&d->wsync, 0, sizeof d->wsync);
    comm_free(&d->wsync_mpi);
    d->wsync_bf16 = d->wsync_dev = 0;
}

/* The BF16 buffer of slot `slot` (rank 0: 0..n_wbuf-1; rollout ranks: 0), allocated once. */
static uint16_t *wbuf_dev(Dist *d, const Model *m, int slot) {
    if (!d->wdev) {
        d->wdev = xcalloc((size_t)(d->rank == 0 ? d->n_wbuf : 1), sizeof(void *));
        d->wsnap_s = xcalloc((size_t)(d->rank == 0 ? d->n_wbuf : 1), sizeof(double));
#ifdef CISPO_HAVE_CUDA
        if (d->wsync_dev) d->whost = cuda_host_alloc(m->param_floats * sizeof(uint16_t)); /* pinned: fast copies */
#endif
    }
    if (!d->wdev[slot]) d->wdev[slot] = wmem_alloc(d, m->param_floats * sizeof(uint16_t));
    return d->wdev[slot];
}

/* Rank 0: header and broadcast of version v from its snapshot slot. */
static int send_version(Dist *d, const Model *m, long v, long step) {
    int slot = (int)(v % d->n_wbuf);
    CHECK(d->wdev && d->wdev[slot] && d->whdr[slot][0] == v, "weight snapshot of version %ld is not in slot %d", v,
          slot);
    double t0 = time_now_s();
    int err = 0;
    for (int k = 0; k < d->n_roll && !err; k++)
        err = comm_send(&d->wc, d->whdr[slot], sizeof d->whdr[slot], d->roll_root + k, TAG_WHDR_BF16);
    const size_t bytes = m->param_floats * sizeof(uint16_t);
    double t1 = time_now_s();
    if (!err) err = comm_bcast(&d->wsync, d->wdev[slot], bytes, 0);
    if (err) return err_wrap(err, "rank 0: sending BF16 weights version %ld", v);
    double t2 = time_now_s();
    d->sync_s += t2 - t0, d->sync_bytes += (double)bytes;
    /* whole: the snapshot's conversion and hash (taken after the update) + header + broadcast */
    dist_log_sync(d, "wsend", step, v, (uint64_t)d->whdr[slot][1], d->wsnap_s[slot] + t2 - t0, t2 - t1, (double)bytes);
    watchdog_beat();
    return 0;
}

int dist_wsync_publish(Dist *d, Model *m, long step, int rl_steps, uint64_t fp32_hash) {
    long v = step + 1;
    if (!d->wsync_bf16 || d->rank != 0 || v > rl_steps - 1 - d->staleness) return 0;
    (void)fp32_hash; /* logged by the "update" row; the wire carries the BF16 hash */
    double t0 = time_now_s();
    int slot = (int)(v % d->n_wbuf);
    uint16_t *dst = wbuf_dev(d, m, slot);
    m->ctx->ops->sync(m->ctx); /* the update's kernels have written the parameters */
    narrow(d, dst, (const float *)m->param_mem, m->param_floats);
    d->whdr[slot][0] = v;
    d->whdr[slot][1] = (int64_t)hash_bf16(d, m, dst);
    d->wsnap_s[slot] = time_now_s() - t0;
    d->sync_s += d->wsnap_s[slot];
    return d->staleness == 0 ? send_version(d, m, v, step + 1) : 0;
}

/* Rollout ranks: round the starting weights to BF16 once (the view every later version gives). */
static void round_own_weights(Dist *d, Model *m) {
    uint16_t *buf = wbuf_dev(d, m, 0);
    m->ctx->ops->sync(m->ctx);
    narrow(d, buf, (const float *)m->param_mem, m->param_floats);
    widen(d, (float *)m->param_mem, buf, m->param_floats);
    params_written(m);
    d->wrounded = 1;
}

static int recv_version(Dist *d, Model *m, long step) {
    int64_t hdr[2];
    int err = comm_recv(&d->wc, hdr, sizeof hdr, 0, TAG_WHDR_BF16);
    if (err) return err_wrap(err, "rank %d: receiving the weights header for step %ld", d->rank, step);
    if (hdr[0] != d->version + 1)
        return err_set(ERR_FORMAT, "rank %d: BF16 weight sync sent version %lld, expected %ld", d->rank,
                       (long long)hdr[0], d->version + 1);
    double t0 = time_now_s();
    uint16_t *buf = wbuf_dev(d, m, 0);
    const size_t bytes = m->param_floats * sizeof(uint16_t);
    if ((err = comm_bcast(&d->wsync, buf, bytes, 0)))
        return err_wrap(err, "rank %d: receiving BF16 weights version %lld", d->rank, (long long)hdr[0]);
    double t_xfer = time_now_s() - t0;
    uint64_t h = hash_bf16(d, m, buf);
    if (h != (uint64_t)hdr[1])
        return err_set(ERR_FORMAT, "rank %d: BF16 weights of version %lld arrived with hash %016" PRIx64 ", sent %016" PRIx64,
                       d->rank, (long long)hdr[0], h, (uint64_t)hdr[1]);
    m->ctx->ops->sync(m->ctx); /* nothing queued may still read the old parameters */
    widen(d, (float *)m->param_mem, buf, m->param_floats);
    params_written(m);
    d->version++;
    double dt = time_now_s() - t0;
    d->sync_s += dt, d->sync_bytes += (double)bytes;
    dist_log_sync(d, "recv", step, d->version, h, dt, t_xfer, (double)bytes);
    watchdog_beat();
    return 0;
}

int dist_wsync_recv(Dist *d, Model *m, long step) {
    if (!d->wsync_bf16 || !d->is_rollout) return 0;
    if (!d->wrounded) round_own_weights(d, m);
    while (d->version < dist_need_version(d, step)) {
        int err = recv_version(d, m, step);
        if (err) return err;
    }
    return 0;
}

int dist_weights_after_batch(Dist *d, Model *m, long step, int rl_steps) {
    if (!d || !d->wsync_bf16 || step + 1 >= rl_steps) return 0;
    if (d->is_rollout) return dist_wsync_recv(d, m, step + 1);
    long v = step + 1 - d->staleness; /* = need(step + 1) when it is a new version */
    if (d->rank != 0 || d->staleness == 0 || v <= d->first_version) return 0;
    return send_version(d, m, v, step + 1);
}
