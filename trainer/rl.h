/* trainer/rl.h: the RL loop (ALGORITHMS.md §2.5): sample prompts, generate G responses each,
 * score them, keep informative groups (dynamic sampling), compute group advantages, recompute
 * old log-probs with the learner (or take the rollout's), then update the policy over
 * rl.minibatches mini-batches with the configured loss (CISPO | PPO | GRPO | DAPO) and AdamW.
 *
 * Outputs: RUN_DIR/metrics.jsonl (one object per step; a pure function of config and seed, so the
 * same seed gives byte-identical files), RUN_DIR/timing.jsonl (speeds and durations, which vary
 * run to run), and a progress line.
 */
#ifndef CISPO_TRAINER_RL_H
#define CISPO_TRAINER_RL_H

#include "trainer/run.h"

typedef struct {
    int steps;              /* steps run by this call (fewer than rl.steps after a resume) */
    double seconds;
    double rollout_tokens_per_s, learner_tokens_per_s;
    long skipped_updates;
    double last_reward, last_accuracy;
} RlResult;

/* Run (or, with lc->resume_dir in the RL phase, continue) RL; lc may be NULL (no checkpoints). */
typedef struct LoopCkpt LoopCkpt;
int rl_run(Run *r, RlResult *res, LoopCkpt *lc);

#endif
