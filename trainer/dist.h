/* trainer/dist.h: the roles of a multi-rank run and what moves between them (DESIGN.md §4).
 *
 * Layout from the config (dist.*), for a world of N ranks started by mpirun:
 *   colocated (default): every rank generates a slice of each round and learns (data-parallel);
 *   disaggregated: ranks [0, L) learn, ranks [L, L+R) generate; L + R must equal N.
 * World rank 0 is always a learner and the leader: it writes metrics, checkpoints' shared files,
 * evaluations and the final model.
 *
 * One step:
 *   1. rollout ranks hold weights of version need(step) = max(first, step - dist.max_staleness)
 *      (version v = the weights after v updates): they receive versions from rank 0 in order, each
 *      with its XXH3-64 hash; the version and the hash are checked on arrival;
 *   2. sequences of a generation round are split evenly over the rollout ranks in rank order and
 *      drawn with their global index (rollout_generate_at), so a rollout is a function of
 *      (seed, step, round, index) whatever the number of rollout ranks; the slices are all-gathered,
 *      and every rollout rank scores and filters the same batch;
 *   3. disaggregated: the first rollout rank sends the kept batch, tagged with (step, version), to
 *      every learner (point-to-point);
 *   4. each learner takes a contiguous share of every mini-batch; the loss is normalised by the
 *      mini-batch's global token and sequence counts (ALGORITHMS.md §1), gradients are summed in
 *      rank order (core/comm.h), and every learner applies the same AdamW step, so the learners
 *      stay bit-identical replicas (checked each step by comparing hashes);
 *   5. rank 0 sends the new weights (version step + 1) to every rollout rank.
 * On GPUs (run.backend cuda, disaggregated) the weights go as BF16 over NCCL instead (dist_wsync.c):
 * rank 0 and the rollout ranks form an NCCL group; after each update rank 0 rounds the parameters to
 * BF16 on the device (round to nearest even) into one of staleness + 1 snapshot slots and hashes
 * them; version and hash go over MPI as above, the BF16 block by ncclBroadcast, and a rollout rank
 * checks the hash of what arrived and widens it into its FP32 parameters (so rollout ranks generate
 * with BF16-rounded weights, an inference engine's view; they round their starting weights too).
 * A broadcast is a collective, so both sides place it at one point of the step: version
 * need(step + 1) moves right after the batch of `step` (dist_weights_after_batch), before any
 * checkpoint of that step: rank 0 broadcasts it after receiving the batch when dist.max_staleness
 * k >= 1 (it is an older snapshot, so generation of step + 1 overlaps the update of `step`), or after
 * the update when k = 0 (the new weights); the rollout ranks receive it after sending the batch.
 * Every rank records its weight hashes (and the bytes it has sent) in RUN_DIR/dist/rank_NNNN.jsonl
 * and its pid in RUN_DIR/dist/rank_NNNN.pid. A single process (no mpirun) has Run.dist == NULL and none of this runs.
 */
#ifndef CISPO_TRAINER_DIST_H
#define CISPO_TRAINER_DIST_H

#include <stdint.h>
#include <stdio.h>

#include "core/comm.h"
#include "trainer/run.h"

typedef struct Dist {
    int world, rank;
    int colocated, n_learn, n_roll;
    int is_learner, is_rollout;
    int roll_root;          /* world rank of the first rollout rank */
    Comm wc, learn, roll;   /* world, learners, rollout ranks (size 0 when not a member) */
    Comm grad;              /* learners' gradient group: NCCL on GPUs, else = learn */
    int own_grad;
    int staleness;
    long version, first_version;
    int n_wbuf;             /* weight buffers in flight: staleness + 1 */
    void **wbuf;            /* (n_wbuf) host copies of the parameters being sent */
    CommReq *wreq;          /* (n_wbuf * n_roll) */
    int64_t (*whdr)[2];     /* (n_wbuf) version, hash */
    float *stage;           /* host staging of parameters / gradients */
    size_t n_params;
    FILE *log;
    int hang_rank, hang_step; /* test hook CISPO_TEST_HANG=RANK:STEP */
    char dir[700];            /* RUN_DIR/dist */
    /* BF16 weight sync (dist_wsync.c); wsync_bf16 0: the FP32 MPI path above */
    int wsync_bf16, wsync_dev, wrounded; /* wsync_dev: device buffers and an NCCL group (else host + MPI) */
    Comm wsync_mpi, wsync;    /* {rank 0} + rollout ranks: MPI split, the NCCL group on it */
    void **wdev;              /* rank 0: (n_wbuf) device BF16 snapshots (n_params); rollout: wdev[0] */
    uint16_t *whost;          /* (n_params) pinned host copy of BF16 weights for the hash (GPU path) */
    double *wsnap_s;          /* rank 0: (n_wbuf) seconds spent taking each slot's snapshot */
    double sync_s;            /* weight-sync seconds since the last dist_sync_take */
    double sync_bytes;        /* weight bytes sent (rank 0) or received since then */
} Dist;

/* Bytes of one field of the batch that moves from rollout to learner ranks. */
typedef struct {
    void *p;
    size_t bytes;
} DistField;

/* Set up the roles for rc under the current launcher. *out is NULL for a single process (no mpirun,
 * or a world of one rank); else a Dist with MPI up. A layout that cannot work is ERR_CONFIG. */
int dist_init(Dist **out, const RunConfig *rc, int *argc, char ***argv);
/* Wait for pending sends, free the groups, finalise MPI. NULL is fine. */
void dist_free(Dist *d);

/* Queries that are true for a single process (d == NULL). */
int dist_is_leader(const Dist *d);
int dist_is_learner(const Dist *d);
int dist_is_rollout(const Dist *d);
int dist_n_learners(const Dist *d);
/* This learner's contiguous share [lo, hi) of n items. */
void dist_shard(const Dist *d, int n, int *lo, int *hi);

/* rollout_generate over the rollout ranks (see 2. above); all of them end with every sequence's
 * outputs in r->gen. Returns the tokens generated by all ranks. */
long dist_generate(Run *r, const int *prompts, const SeqPack *pack, const GenParams *gp, uint64_t stream_id);
/* RL start: the version every rank holds is `first` (the steps done). */
void dist_rl_begin(Dist *d, long first);
/* Rollout ranks: receive weights until holding version need(step). */
int dist_rollout_weights(Dist *d, Model *m, long step);
/* Batch hand-over (disaggregated; a no-op when colocated). part 0 carries (step, version) and the
 * fixed-size fields, part 1 the rest; the learner checks the step and the version bound. */
int dist_batch_xfer(Dist *d, long step, int part, const DistField *f, int nf);
/* Learners: sum the gradients over the learners in rank order; scale the MoE aux coefficient by
 * 1 / n_learners before the backward so the sum matches one learner's. */
int dist_allreduce_grads(Dist *d, Model *m);
/* Learners: rows [lo, hi) of dist_shard(n) are this learner's; afterwards every learner holds all n
 * rows of row_bytes each. */
int dist_share_rows(Dist *d, void *rows, int n, size_t row_bytes);
/* Learners: sums (rank order) of n_sum values and maxima of n_max values. */
int dist_reduce_stats(Dist *d, double *sum, int n_sum, double *mx, int n_max);
/* After the update of `step`: learners compare replica hashes; rank 0 sends version step + 1 to
 * the rollout ranks when a later step needs it. */
int dist_after_update(Dist *d, Model *m, long step, int rl_steps);
/* Test hook: hang here (no progress) when CISPO_TEST_HANG=RANK:STEP names this rank and step, once
 * per run directory (a marker file RUN_DIR/dist/test_hang_RANK_STEP), so a restarted job goes on. */
void dist_test_hooks(Dist *d, long step);

/* Checkpoints: agree on an error code (max over ranks, all ranks get it). */
int dist_agree(Dist *d, int err);
/* Share the leader's string (e.g. the temporary checkpoint directory). */
int dist_bcast_str(Dist *d, char *s, size_t cap);
/* Write this rank's state into dir/rank_NNNN.h5. */
int dist_ckpt_write_rank(Dist *d, Model *m, const char *dir, long step);
/* Check a checkpoint's per-rank files against this run's layout (a single process too: a
 * multi-rank checkpoint is refused). */
int dist_ckpt_check(Dist *d, const char *dir);

/* GPU weight sync (dist_wsync.c). dist_wsync_init: create the NCCL group {0} + rollout ranks when
 * run.backend is cuda and the layout is disaggregated (collective over the world; else a no-op).
 * Test hook: CISPO_TEST_WSYNC_BF16=1 on run.backend cpu runs the same BF16 sync on host buffers
 * over the MPI group, so the schedule is tested without GPUs.
 * dist_weights_after_batch: after the batch hand-over of `step`, move version need(step + 1) (see
 * above; a no-op on the MPI path). dist_wsync_publish: rank 0 after the update of `step` (snapshot,
 * and the broadcast when k = 0). dist_wsync_recv: rollout ranks, receive until holding need(step). */
int dist_wsync_init(Dist *d, const RunConfig *rc);
void dist_wsync_free(Dist *d);
int dist_weights_after_batch(Dist *d, Model *m, long step, int rl_steps);
int dist_wsync_publish(Dist *d, Model *m, long step, int rl_steps, uint64_t fp32_hash);
int dist_wsync_recv(Dist *d, Model *m, long step);
/* Weight-sync seconds and bytes since the last call (rank 0: for timing.jsonl); resets them. */
void dist_sync_take(Dist *d, double *seconds, double *bytes);
/* The weights version rollout ranks use for `step`: max(first, step - dist.max_staleness). */
long dist_need_version(const Dist *d, long step);
/* One row of RUN_DIR/dist/rank_NNNN.jsonl: event ("update", "wsend", "recv"), the step that needs the
 * version, the version, its hash, the seconds of the whole sync (conversion, hash, transfer) and of
 * the transfer alone, and the weight bytes moved. */
void dist_log_sync(Dist *d, const char *event, long step, long version, uint64_t hash, double sync_s, double xfer_s,
                   double bytes);

/* XXH3-64 of the model's parameters (staged through host memory). */
uint64_t dist_param_hash(const Model *m, float *stage);

#endif
