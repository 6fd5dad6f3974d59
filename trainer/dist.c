/* trainer/dist.c: see dist.h. Message tags: 7100/7101 batch parts, 7102 batch header,
 * 7200/7201 weight header/parameters (7202: the header of the BF16 NCCL path, dist_wsync.c). */
#include "trainer/dist.h"

#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <xxhash.h>

#include "checkpoints/h5io.h"
#include "core/error.h"
#include "core/fs.h"
#include "core/log.h"
#include "core/watchdog.h"
#ifdef CISPO_HAVE_CUDA
#include "kernels/cuda/comm_nccl.h"
#endif

enum { TAG_BATCH = 7100, TAG_BATCH_HDR = 7102, TAG_WHDR = 7200, TAG_WPARAM = 7201 };

static int layout(Dist *d, const RunConfig *rc) {
    d->colocated = rc->dist_colocated;
    if (d->colocated) {
        d->n_learn = d->n_roll = d->world;
        d->is_learner = d->is_rollout = 1;
        d->roll_root = 0;
        return 0;
    }
    int L = rc->dist_learner_ranks, R = rc->dist_rollout_ranks;
    if (L < 1 || R < 1 || L + R != d->world)
        return err_set(ERR_CONFIG,
                       "dist.colocated is false, so dist.learner_ranks (%d) + dist.rollout_ranks (%d) must equal "
                       "the %d ranks of this job, each at least 1\nHINT: e.g. mpirun -np %d with "
                       "dist.learner_ranks=1 dist.rollout_ranks=%d, or dist.colocated=true",
                       L, R, d->world, d->world, d->world > 1 ? d->world - 1 : 1);
    d->n_learn = L, d->n_roll = R;
    d->is_learner = d->rank < L;
    d->is_rollout = !d->is_learner;
    d->roll_root = L;
    return 0;
}

static int open_files(Dist *d, const RunConfig *rc) {
    char dir[700], path[800];
    snprintf(dir, sizeof dir, "%s/dist", rc->dir);
    snprintf(d->dir, sizeof d->dir, "%s", dir);
    int err = fs_mkdir_p(dir);
    if (err) return err;
    snprintf(path, sizeof path, "%s/rank_%04d.pid", dir, d->rank);
    FILE *f = fopen(path, "w");
    if (!f) return err_set(ERR_IO, "cannot write %s", path);
    fprintf(f, "%ld\n", (long)getpid());
    fclose(f);
    snprintf(path, sizeof path, "%s/rank_%04d.jsonl", dir, d->rank);
    if (!(d->log = fopen(path, "a"))) return err_set(ERR_IO, "cannot write %s", path);
    return 0;
}

int dist_init(Dist **out, const RunConfig *rc, int *argc, char ***argv) {
    *out = NULL;
    int world = 1, rank = 0, err = comm_init(argc, argv, &world, &rank);
    if (err) return err;
    if (world == 1) { /* mpirun -np 1: a single process like any other */
        comm_finalize();
        if (!rc->dist_colocated && (rc->dist_learner_ranks > 0 || rc->dist_rollout_ranks > 0))
            log_warn("dist.colocated is false but this is a single process: it generates and learns");
        return 0;
    }
    error_set_rank(rank);
    Dist *d = xcalloc(1, sizeof(Dist));
    d->world = world, d->rank = rank;
#ifdef CISPO_HAVE_CUDA
    if (!strcmp(rc->backend, "cuda")) { /* one GPU per rank of a node, before the backend starts */
        const char *lr = getenv("OMPI_COMM_WORLD_LOCAL_RANK");
        if (!lr) lr = getenv("SLURM_LOCALID");
        if ((err = comm_nccl_select_device(lr ? atoi(lr) : rank))) {
            *out = d;
            return err;
        }
    }
#endif
    d->staleness = rc->dist_max_staleness;
    if ((err = layout(d, rc)) || (err = comm_world(&d->wc)) || (err = open_files(d, rc))) {
        *out = d;
        return err;
    }
    err = comm_split(&d->wc, d->is_learner ? 0 : -1, &d->learn);
    if (!err) err = comm_split(&d->wc, d->is_rollout ? 0 : -1, &d->roll);
    d->grad = d->learn;
    if (!err) err = dist_wsync_init(d, rc);
#ifdef CISPO_HAVE_CUDA
    if (!err && d->is_learner && !strcmp(rc->backend, "cuda") && d->n_learn > 1) {
        err = comm_nccl_create(&d->learn, &d->grad);
        d->own_grad = !err;
    }
#endif
    if (!err && strcmp(rc->backend, "cpu") != 0 && !d->own_grad && d->n_learn > 1)
        err = err_set(ERR_UNSUPPORTED, "run.backend %s with %d learners needs a CISPO_CUDA build (NCCL)", rc->backend,
                      d->n_learn);
    const char *hang = getenv("CISPO_TEST_HANG");
    d->hang_rank = d->hang_step = -1;
    if (hang && sscanf(hang, "%d:%d", &d->hang_rank, &d->hang_step) != 2) d->hang_rank = -1;
    if (!err) err = watchdog_start(rc->dist_timeout_s, rank);
    if (!err && rank == 0)
        log_info("dist: %d ranks, %s: %d learner%s, %d rollout rank%s, max_staleness %d, watchdog %g s", world,
                 d->colocated ? "colocated" : "disaggregated", d->n_learn, d->n_learn > 1 ? "s" : "", d->n_roll,
                 d->n_roll > 1 ? "s" : "", d->staleness, rc->dist_timeout_s);
    *out = d;
    return err;
}

void dist_free(Dist *d) {
    if (!d) return;
    for (int i = 0; d->wreq && i < d->n_wbuf * d->n_roll; i++) comm_wait(&d->wreq[i]);
    watchdog_stop();
    if (comm_mpi_up()) comm_barrier(&d->wc);
    for (int i = 0; d->wbuf && i < d->n_wbuf; i++) free(d->wbuf[i]);
    free(d->wbuf), free(d->wreq), free(d->whdr), free(d->stage);
    if (d->own_grad) comm_free(&d->grad);
    dist_wsync_free(d);
    comm_free(&d->learn), comm_free(&d->roll), comm_free(&d->wc);
    if (d->log) fclose(d->log);
    free(d);
    comm_finalize();
}

int dist_is_leader(const Dist *d) { return !d || d->rank == 0; }
int dist_is_learner(const Dist *d) { return !d || d->is_learner; }
int dist_is_rollout(const Dist *d) { return !d || d->is_rollout; }
int dist_n_learners(const Dist *d) { return d ? d->n_learn : 1; }

void dist_shard(const Dist *d, int n, int *lo, int *hi) {
    int L = dist_n_learners(d), i = d ? d->learn.rank : 0;
    *lo = (int)((long)n * i / L);
    *hi = (int)((long)n * (i + 1) / L);
}

static float *stage_buf(Dist *d, const Model *m) {
    if (!d->stage) {
        d->n_params = m->param_floats;
        d->stage = xmalloc(m->param_floats * sizeof(float));
    }
    return d->stage;
}

uint64_t dist_param_hash(const Model *m, float *stage) {
    m->ctx->ops->copy_d2h(m->ctx, stage, m->param_mem, m->param_floats * sizeof(float));
    return XXH3_64bits(stage, m->param_floats * sizeof(float));
}

void dist_log_sync(Dist *d, const char *event, long step, long version, uint64_t hash, double sync_s, double xfer_s,
                   double bytes) {
    fprintf(d->log,
            "{\"event\":\"%s\",\"rank\":%d,\"step\":%ld,\"version\":%ld,\"xxh3\":\"%016" PRIx64 "\",\"sent_bytes\":%llu,"
            "\"sync_s\":%.6f,\"xfer_s\":%.6f,\"sync_bytes\":%.0f}\n",
            event, d->rank, step, version, hash, comm_bytes_sent(), sync_s, xfer_s, bytes);
    fflush(d->log);
}

long dist_generate(Run *r, const int *prompts, const SeqPack *pack, const GenParams *gp, uint64_t stream_id) {
    Dist *d = r->dist;
    if (!d || d->n_roll == 1) return rollout_generate(&r->gen, prompts, pack, gp, stream_id);
    Generator *g = &r->gen;
    const int B = pack->n_seq, R = d->n_roll, me = d->roll.rank, M = g->max_new;
    const int q0 = (int)((long)B * me / R), q1 = (int)((long)B * (me + 1) / R), nb = q1 - q0;
    if (nb > 0) {
        int *start = xmalloc((size_t)(nb + 1) * sizeof(int));
        for (int q = 0; q <= nb; q++) start[q] = pack->start[q0 + q] - pack->start[q0];
        SeqPack sub = {nb, start, NULL};
        rollout_generate_at(g, prompts + pack->start[q0], &sub, gp, stream_id, q0);
        free(start);
        /* move the slice's rows to their global place (up: memmove, last row first is not needed) */
        memmove(g->tokens + (size_t)q0 * M, g->tokens, (size_t)nb * M * sizeof(int));
        memmove(g->logprobs + (size_t)q0 * M, g->logprobs, (size_t)nb * M * sizeof(float));
        memmove(g->probs_raw + (size_t)q0 * M, g->probs_raw, (size_t)nb * M * sizeof(float));
        memmove(g->ent_sum + q0, g->ent_sum, (size_t)nb * sizeof(double));
        memmove(g->n_gen + q0, g->n_gen, (size_t)nb * sizeof(int));
        memmove(g->stop + q0, g->stop, (size_t)nb * sizeof(StopReason));
    }
    size_t *cnt = xmalloc((size_t)R * sizeof(size_t)), *dsp = xmalloc((size_t)R * sizeof(size_t));
    struct { void *p; size_t row; } arr[] = {{g->tokens, M * sizeof(int)}, {g->logprobs, M * sizeof(float)},
                                             {g->probs_raw, M * sizeof(float)}, {g->ent_sum, sizeof(double)},
                                             {g->n_gen, sizeof(int)}, {g->stop, sizeof(StopReason)}};
    for (size_t a = 0; a < sizeof arr / sizeof arr[0]; a++) {
        for (int k = 0; k < R; k++) {
            long s0 = (long)B * k / R, s1 = (long)B * (k + 1) / R;
            dsp[k] = (size_t)s0 * arr[a].row, cnt[k] = (size_t)(s1 - s0) * arr[a].row;
        }
        int err = comm_allgatherv_inplace(&d->roll, arr[a].p, cnt, dsp);
        CHECK(err == 0, "rollout all-gather: %s", err_msg());
    }
    free(cnt), free(dsp);
    watchdog_beat();
    long tokens = 0;
    for (int q = 0; q < B; q++) tokens += g->n_gen[q];
    return tokens;
}

void dist_rl_begin(Dist *d, long first) {
    if (!d) return;
    d->version = d->first_version = first;
    d->n_wbuf = d->staleness + 1;
    if (!d->wbuf) {
        d->wbuf = xcalloc((size_t)d->n_wbuf, sizeof(void *));
        d->wreq = xcalloc((size_t)d->n_wbuf * d->n_roll, sizeof(CommReq));
        d->whdr = xcalloc((size_t)d->n_wbuf, sizeof(*d->whdr));
    }
    watchdog_beat();
}

long dist_need_version(const Dist *d, long step) {
    long v = step - d->staleness;
    return v > d->first_version ? v : d->first_version;
}

int dist_rollout_weights(Dist *d, Model *m, long step) {
    if (!d || d->colocated || !d->is_rollout) return 0;
    if (d->wsync_bf16) return dist_wsync_recv(d, m, step);
    float *host = stage_buf(d, m);
    while (d->version < dist_need_version(d, step)) {
        int64_t hdr[2];
        int err = comm_recv(&d->wc, hdr, sizeof hdr, 0, TAG_WHDR);
        double t0 = time_now_s();
        if (!err) err = comm_recv(&d->wc, host, m->param_floats * sizeof(float), 0, TAG_WPARAM);
        double t_xfer = time_now_s() - t0;
        if (err) return err_wrap(err, "rank %d: receiving weights for step %ld", d->rank, step);
        if (hdr[0] != d->version + 1)
            return err_set(ERR_FORMAT, "rank %d: weight sync sent version %lld, expected %ld", d->rank,
                           (long long)hdr[0], d->version + 1);
        uint64_t h = XXH3_64bits(host, m->param_floats * sizeof(float));
        if (h != (uint64_t)hdr[1])
            return err_set(ERR_FORMAT, "rank %d: weights of version %lld arrived with hash %016" PRIx64 ", sent %016" PRIx64,
                           d->rank, (long long)hdr[0], h, (uint64_t)hdr[1]);
        m->ctx->ops->copy_h2d(m->ctx, m->param_mem, host, m->param_floats * sizeof(float));
        d->version++;
        double dt = time_now_s() - t0, by = (double)m->param_floats * sizeof(float);
        d->sync_s += dt, d->sync_bytes += by;
        dist_log_sync(d, "recv", step, d->version, h, dt, t_xfer, by);
        watchdog_beat();
    }
    return 0;
}

int dist_batch_xfer(Dist *d, long step, int part, const DistField *f, int nf) {
    if (!d || d->colocated) return 0;
    int err = 0;
    if (d->rank == d->roll_root) {
        int64_t hdr[2] = {step, d->version};
        for (int l = 0; l < d->n_learn && !err; l++) {
            if (part == 0) err = comm_send(&d->wc, hdr, sizeof hdr, l, TAG_BATCH_HDR);
            for (int i = 0; i < nf && !err; i++) err = comm_send(&d->wc, f[i].p, f[i].bytes, l, TAG_BATCH + part);
        }
    } else if (d->is_learner) {
        if (part == 0) {
            int64_t hdr[2];
            err = comm_recv(&d->wc, hdr, sizeof hdr, d->roll_root, TAG_BATCH_HDR);
            if (!err && (hdr[0] != step || hdr[1] != dist_need_version(d, step)))
                return err_set(ERR_FORMAT,
                               "rank %d: batch for step %lld generated with weights version %lld; expected step %ld "
                               "with version %ld (dist.max_staleness %d)",
                               d->rank, (long long)hdr[0], (long long)hdr[1], step, dist_need_version(d, step), d->staleness);
        }
        for (int i = 0; i < nf && !err; i++) err = comm_recv(&d->wc, f[i].p, f[i].bytes, d->roll_root, TAG_BATCH + part);
    }
    if (!err) watchdog_beat();
    return err ? err_wrap(err, "rank %d: batch of step %ld", d->rank, step) : 0;
}

int dist_allreduce_grads(Dist *d, Model *m) {
    if (!d || d->n_learn == 1) return 0;
    int err;
    if (d->own_grad) {
        err = comm_allreduce_sum_f32(&d->grad, (float *)m->grad_mem, m->param_floats);
    } else {
        float *host = stage_buf(d, m);
        m->ctx->ops->copy_d2h(m->ctx, host, m->grad_mem, m->param_floats * sizeof(float));
        err = comm_allreduce_sum_f32(&d->grad, host, m->param_floats);
        if (!err) m->ctx->ops->copy_h2d(m->ctx, m->grad_mem, host, m->param_floats * sizeof(float));
    }
    watchdog_beat();
    return err;
}

int dist_share_rows(Dist *d, void *rows, int n, size_t row_bytes) {
    if (!d || d->n_learn == 1) return 0;
    size_t *cnt = xmalloc((size_t)d->n_learn * sizeof(size_t)), *dsp = xmalloc((size_t)d->n_learn * sizeof(size_t));
    for (int k = 0; k < d->n_learn; k++) {
        long lo = (long)n * k / d->n_learn, hi = (long)n * (k + 1) / d->n_learn;
        dsp[k] = (size_t)lo * row_bytes, cnt[k] = (size_t)(hi - lo) * row_bytes;
    }
    int err = comm_allgatherv_inplace(&d->learn, rows, cnt, dsp);
    free(cnt), free(dsp);
    watchdog_beat();
    return err;
}

int dist_reduce_stats(Dist *d, double *sum, int n_sum, double *mx, int n_max) {
    if (!d || d->n_learn == 1) return 0;
    /* sums in rank order: gather every learner's values at learner 0, add, broadcast */
    double *all = xcalloc((size_t)d->n_learn * n_sum, sizeof(double));
    memcpy(all + (size_t)d->learn.rank * n_sum, sum, (size_t)n_sum * sizeof(double));
    size_t *cnt = xmalloc((size_t)d->n_learn * sizeof(size_t)), *dsp = xmalloc((size_t)d->n_learn * sizeof(size_t));
    for (int k = 0; k < d->n_learn; k++) cnt[k] = (size_t)n_sum * sizeof(double), dsp[k] = (size_t)k * cnt[k];
    int err = comm_allgatherv_inplace(&d->learn, all, cnt, dsp);
    for (int i = 0; i < n_sum && !err; i++) {
        sum[i] = all[i];
        for (int k = 1; k < d->n_learn; k++) sum[i] += all[(size_t)k * n_sum + i];
    }
    if (!err && n_max > 0) err = comm_allreduce_max_f64(&d->learn, mx, n_max);
    free(all), free(cnt), free(dsp);
    return err;
}

/* Learners: every replica must hold the same weights after the same update. */
static int check_replicas(Dist *d, Model *m, long step, uint64_t *hash) {
    *hash = dist_param_hash(m, stage_buf(d, m));
    if (d->n_learn == 1) return 0;
    uint64_t *all = xcalloc((size_t)d->n_learn, sizeof(uint64_t));
    all[d->learn.rank] = *hash;
    size_t *cnt = xmalloc((size_t)d->n_learn * sizeof(size_t)), *dsp = xmalloc((size_t)d->n_learn * sizeof(size_t));
    for (int k = 0; k < d->n_learn; k++) cnt[k] = sizeof(uint64_t), dsp[k] = (size_t)k * sizeof(uint64_t);
    int err = comm_allgatherv_inplace(&d->learn, all, cnt, dsp);
    for (int k = 1; k < d->n_learn && !err; k++)
        if (all[k] != all[0])
            err = err_set(ERR_FORMAT, "after step %ld learner %d holds weights %016" PRIx64 ", learner 0 %016" PRIx64,
                          step + 1, k, all[k], all[0]);
    free(all), free(cnt), free(dsp);
    return err;
}

int dist_after_update(Dist *d, Model *m, long step, int rl_steps) {
    if (!d || !d->is_learner) return 0;
    uint64_t h;
    int err = check_replicas(d, m, step, &h);
    if (err) return err;
    d->version = step + 1;
    dist_log_sync(d, "update", step + 1, d->version, h, 0, 0, 0);
    watchdog_beat();
    if (d->wsync_bf16) return d->rank == 0 ? dist_wsync_publish(d, m, step, rl_steps, h) : 0;
    if (d->colocated || d->rank != 0 || d->version > rl_steps - 1 - d->staleness) return 0;
    double t0 = time_now_s();
    int slot = (int)(d->version % d->n_wbuf);
    for (int k = 0; k < d->n_roll; k++) comm_wait(&d->wreq[slot * d->n_roll + k]);
    if (!d->wbuf[slot]) d->wbuf[slot] = xmalloc(m->param_floats * sizeof(float));
    memcpy(d->wbuf[slot], d->stage, m->param_floats * sizeof(float)); /* check_replicas staged the weights */
    d->whdr[slot][0] = d->version;
    d->whdr[slot][1] = (int64_t)h;
    for (int k = 0; k < d->n_roll && !err; k++) {
        int dst = d->roll_root + k;
        err = comm_send(&d->wc, d->whdr[slot], sizeof d->whdr[slot], dst, TAG_WHDR);
        if (!err) err = comm_isend(&d->wc, d->wbuf[slot], m->param_floats * sizeof(float), dst, TAG_WPARAM,
                                   &d->wreq[slot * d->n_roll + k]);
    }
    d->sync_s += time_now_s() - t0, d->sync_bytes += (double)d->n_roll * m->param_floats * sizeof(float);
    return err ? err_wrap(err, "rank 0: sending weights version %ld", d->version) : 0;
}

void dist_test_hooks(Dist *d, long step) {
    if (!d || d->hang_rank != d->rank || d->hang_step != step) return;
    char marker[800];
    snprintf(marker, sizeof marker, "%s/test_hang_%d_%ld", d->dir, d->rank, step);
    if (fs_exists(marker)) return;
    FILE *f = fopen(marker, "w");
    if (f) fclose(f);
    fprintf(stderr, "[cispo rank %d] test hook CISPO_TEST_HANG: hanging at step %ld\n", d->rank, step);
    for (;;) pause();
}

int dist_agree(Dist *d, int err) {
    if (!d) return err;
    double v = err ? -(double)err : 0; /* ERR_* are negative: max of -err picks one */
    int e2 = comm_allreduce_max_f64(&d->wc, &v, 1);
    if (e2) return e2;
    watchdog_beat();
    if (v == 0) return 0;
    if (err) return err;
    return err_set((int)-v, "another rank failed (%s); see its message", err_name((int)-v));
}

int dist_bcast_str(Dist *d, char *s, size_t cap) {
    if (!d) return 0;
    return comm_bcast(&d->wc, s, cap, 0);
}

int dist_ckpt_write_rank(Dist *d, Model *m, const char *dir, long step) {
    if (!d) return 0;
    char path[1024];
    snprintf(path, sizeof path, "%s/rank_%04d.h5", dir, d->rank);
    H5File f;
    int err = h5_create(&f, path);
    if (err) return err;
    int64_t v[8] = {d->rank, d->world, d->is_learner, d->is_rollout, d->n_learn, d->n_roll, d->version,
                    (int64_t)dist_param_hash(m, stage_buf(d, m))}, n = 8;
    err = h5_write_i64(&f, "rank_state", v, 1, &n);
    int e2 = h5_close(&f);
    return err ? err : e2;
}

static int read_rank(const char *dir, int rank, int64_t v[8]) {
    char path[1024];
    snprintf(path, sizeof path, "%s/rank_%04d.h5", dir, rank);
    if (!fs_exists(path)) return ERR_NOTFOUND;
    H5File f;
    int err = h5_open(&f, path);
    if (err) return err;
    int64_t n = 8;
    err = h5_read_i64(&f, "rank_state", v, 1, &n);
    h5_close(&f);
    return err;
}

int dist_ckpt_check(Dist *d, const char *dir) {
    int rank = d ? d->rank : 0, world = d ? d->world : 1;
    int64_t v[8];
    int err = read_rank(dir, 0, v);
    if (err == ERR_NOTFOUND) {
        if (world == 1) return 0;
        return err_set(ERR_CONFIG, "cannot resume from %s with %d ranks: a single process wrote it\n"
                       "HINT: resume at the world size that wrote it (no mpirun)", dir, world);
    }
    if (err) return err;
    if (v[1] != world)
        return err_set(ERR_CONFIG, "cannot resume from %s with %d rank%s: %lld ranks wrote it\n"
                       "HINT: resume at the same world size (mpirun -np %lld)", dir, world, world > 1 ? "s" : "",
                       (long long)v[1], (long long)v[1]);
    if (d && (err = read_rank(dir, rank, v)) != 0)
        return err == ERR_NOTFOUND ? err_set(ERR_FORMAT, "%s: rank_%04d.h5 is missing", dir, rank) : err;
    if (d && (v[2] != d->is_learner || v[3] != d->is_rollout))
        return err_set(ERR_CONFIG, "cannot resume from %s: rank %d had another role", dir, rank);
    return 0;
}
