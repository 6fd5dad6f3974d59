/* checkpoints/traj_dump.h: one RL step's trajectories to RUN_DIR/rollouts/step_NNNNNNN.h5
 * (rollout.dump_every), zstd-compressed through h5io, readable by h5py + hdf5plugin.
 *
 * Variable-length sequences are stored flat with offsets: response i's tokens are
 * resp_tokens[resp_offsets[i] : resp_offsets[i+1]], and likewise for prompts (one prompt per group,
 * response i belongs to group i / group_size). Datasets: prompt_tokens, prompt_offsets,
 * resp_tokens, resp_offsets, behaviour_logp and learner_logp (per response token), reward,
 * advantage, length, stop_reason (per response; 1 eos, 2 budget, 3 repetition), group_size, step.
 * The file is written under a temporary name and renamed, so a crash leaves no partial dump.
 */
#ifndef CISPO_CHECKPOINTS_TRAJ_DUMP_H
#define CISPO_CHECKPOINTS_TRAJ_DUMP_H

#include <stdint.h>

typedef struct {
    long step;
    int n_groups, group_size;   /* responses = n_groups * group_size */
    const int32_t *prompt_offsets; /* (n_groups + 1) */
    const int32_t *prompt_tokens;
    const int32_t *resp_offsets;   /* (R + 1) */
    const int32_t *resp_tokens;
    const float *behaviour_logp;   /* (resp_offsets[R]) */
    const float *learner_logp;     /* (resp_offsets[R]) */
    const float *reward, *advantage; /* (R) */
    const int32_t *stop_reason;    /* (R) */
} TrajDump;

/* Write run_dir/rollouts/step_NNNNNNN.h5. 0 or ERR_*. */
int traj_dump_write(const char *run_dir, const TrajDump *d);

#endif
