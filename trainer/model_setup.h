/* trainer/model_setup.h: building the policy model a run asks for: a Hugging Face directory
 * (model.path) or the built-in architecture of the model.* keys with seeded random weights, on the
 * backend of run.backend. */
#ifndef CISPO_TRAINER_MODEL_SETUP_H
#define CISPO_TRAINER_MODEL_SETUP_H

#include "model/model.h"
#include "trainer/run_config.h"

/* The ModelConfig the model.* keys describe (MiniMax hybrid or dense); validated. */
int run_config_model_config(const RunConfig *rc, ModelConfig *cfg);
/* Create the backend context and the model, sized for max_tokens packed tokens and max_seqs
 * sequences per call. Returns 0 or ERR_* (message set). */
int model_setup(const RunConfig *rc, KernelCtx *ctx, Model *m, int max_tokens, int max_seqs);

#endif
