/* trainer/genrm_setup.h: the GenRM judge a run asks for (reward.genrm_*): its model loaded from
 * reward.genrm_path, on the CPU/CUDA backend of run.backend, with its own kernel context, and the
 * Genrm scorer (rewards/genrm.h) over it.
 *
 * reward.genrm_path may be a run directory (its newest valid checkpoint, e.g. of `cispo sft` with
 * data.tasks=judge, or its sft_model / final_model), a checkpoint directory (config.json + model.h5) or a Hugging Face model
 * directory (config.json + safetensors). The judge shares the policy's tokenizer.
 */
#ifndef CISPO_TRAINER_GENRM_SETUP_H
#define CISPO_TRAINER_GENRM_SETUP_H

#include "rewards/genrm.h"
#include "trainer/run_config.h"

typedef struct {
    KernelCtx ctx;
    Model m;
    Genrm g;
    int open;
} GenrmJudge;

/* Load the judge and set up scoring of up to max_batch judge prompts of max_prompt tokens per
 * generate call. Returns 0 or ERR_* (message names the path). */
int genrm_judge_open(GenrmJudge *j, const RunConfig *rc, const Tokenizer *tok, int max_batch, int max_prompt);
void genrm_judge_close(GenrmJudge *j); /* idempotent */

#endif
