/* trainer/train_ckpt.h: what a training checkpoint holds and how a run resumes from one.
 *
 * A checkpoint (checkpoints/ckpt.h protocol) of a `cispo sft` / `cispo train` run holds:
 *   model.h5  the FP32 parameters by Hugging Face name ("params/<name>");
 *   optim.h5  the active optimizer's moments ("m/<name>", "v/<name>") and its step/skip counters;
 *   ref.h5    the frozen GRPO reference policy, when there is one;
 *   config.json  the model's Hugging Face config (so `cispo export-hf` needs nothing else);
 *   state.h5  the phase (SFT or RL), completed steps, results carried across phases (SFT figures,
 *             the held-out evaluation before RL), the effective config as YAML and the cispo version.
 * Every random draw of a run is keyed by (seed, phase step, round, index) (core/rng.h), so the step
 * counters are the whole RNG state, and the data cursor is the step too: a resumed run continues bit
 * for bit. Checkpoint directories are numbered by a global step (SFT steps, then sft.steps + RL steps).
 */
#ifndef CISPO_TRAINER_TRAIN_CKPT_H
#define CISPO_TRAINER_TRAIN_CKPT_H

#include "trainer/eval.h"
#include "trainer/optimizer.h"
#include "trainer/run.h"
#include "trainer/sft.h"

typedef enum { PHASE_SFT = 0, PHASE_RL = 1, PHASE_DONE = 2 } TrainPhase;

typedef struct {
    TrainPhase phase;
    long step;              /* completed steps of this phase */
    int have_sft;           /* sft holds a finished SFT phase's figures */
    SftResult sft;
    int have_eval_before;   /* eval_before holds the held-out evaluation before RL */
    EvalResult eval_before;
} TrainState;

/* What a loop needs to continue: the checkpoint to load its optimizer (and reference) from. */
struct LoopCkpt {
    TrainState *ts;         /* updated by the loops, saved in every checkpoint */
    const char *resume_dir; /* NULL: start the phase fresh */
};

/* Global checkpoint number of (phase, step). */
long train_ckpt_global_step(const RunConfig *rc, TrainPhase phase, long step);
/* Save a checkpoint of the run now (model, optimizer (may be NULL), reference (may be NULL), state)
 * and commit it with the retention of ckpt.keep_last / ckpt.keep_every. */
int train_ckpt_save(Run *r, const TrainState *ts, const Optimizer *opt, const Model *ref);
/* Read state.h5 of `dir` into ts and the saved config text into *config_yaml (malloc'd). */
int train_ckpt_read_state(const char *dir, TrainState *ts, char **config_yaml);
/* Load the model parameters (and, when non-NULL, the optimizer and the reference) from `dir`. */
int train_ckpt_load_model(Run *r, const char *dir);
/* The same for any model whose config matches the checkpoint's (e.g. a GenRM judge). */
int train_ckpt_load_params(const char *dir, KernelCtx *ctx, Model *m);
int train_ckpt_load_optimizer(const char *dir, Optimizer *opt);
int train_ckpt_load_ref(const char *dir, Model *ref);
/* Compare the run's config with a checkpoint's: 0 when it can continue; else ERR_CONFIG listing
 * every differing key (keys a resumed run may change: run.log_level, run.threads is NOT one of
 * them (it changes rounding), rl.steps, rl.eval_every, ckpt.*). */
int train_ckpt_check_config(const RunConfig *rc, const char *ckpt_yaml, const char *ckpt_dir);
/* Keep the first `steps` lines of a metrics file (a resumed run appends after them). */
int train_ckpt_truncate_metrics(const char *path, long steps);

#endif
