/* trainer/sft.h: supervised warm start: cross-entropy on the worked solutions (and EOS) of
 * training problems, prompts masked out, AdamW (beta2 0.95, eps 1e-8), the MoE auxiliary loss
 * added with the model's coefficient. Per-step metrics go to RUN_DIR/sft_metrics.jsonl. */
#ifndef CISPO_TRAINER_SFT_H
#define CISPO_TRAINER_SFT_H

#include "trainer/run.h"

typedef struct {
    int steps;
    double loss_first, loss_last; /* mean CE of the first and last 10 steps */
    double tokens_per_s;
    double seconds;
} SftResult;

/* Run (or, with lc->resume_dir in the SFT phase, continue) SFT. lc may be NULL: no checkpoints.
 * With lc, checkpoints are written every ckpt.every steps and lc->ts->step tracks progress. */
typedef struct LoopCkpt LoopCkpt;
int sft_run(Run *r, SftResult *res, LoopCkpt *lc);

#endif
