/* trainer/optimizer.h: AdamW over a model's parameter table with the M1 defaults (beta1 0.9,
 * beta2 0.95, eps 1e-15, moments in FP32), global-norm gradient clipping, linear learning-rate
 * warm-up, and the non-finite guard: a NaN/Inf gradient norm skips the step (parameters and moments
 * untouched) and is counted.
 * Weight decay is decoupled (AdamW) and applied to every tensor, unless skip_decay_1d exempts the
 * 1-D tensors (norm weights, biases) as GPT-style recipes do.
 */
#ifndef CISPO_TRAINER_OPTIMIZER_H
#define CISPO_TRAINER_OPTIMIZER_H

#include "model/model.h"

typedef struct {
    double lr;
    double beta1, beta2, eps;
    double weight_decay;
    double grad_clip;   /* max global L2 norm; <= 0 disables */
    int warmup_steps;   /* lr ramps linearly over the first warmup_steps updates */
    int skip_decay_1d;  /* 0: weight decay on every tensor (default); 1: not on 1-D tensors */
} OptimConfig;

/* The M1 defaults (ALGORITHMS.md §7): beta1 0.9, beta2 0.95, eps 1e-15; verl's weight_decay 0.01
 * and grad_clip 1.0; lr 1e-6 (DAPO); no warm-up; skip_decay_1d 0. */
void optimizer_config_defaults(OptimConfig *cfg);

typedef struct {
    OptimConfig cfg;
    Model *m;
    void *mem;          /* moments: m and v, same layout as the parameter block (backend memory) */
    float *mom1, *mom2;
    void *table_mem;    /* adamw_fused's tensor table and norm slot (backend memory) */
    const OptTensor *table; /* (params.n) in table_mem */
    double *norm_dev;   /* (1) the step's gradient norm, in table_mem */
    long step;          /* updates applied */
    long skipped;       /* non-finite steps skipped */
} Optimizer;

/* Validate cfg (ERR_CONFIG naming the field) and allocate the zeroed moments with m's backend. */
int optimizer_init(Optimizer *o, Model *m, const OptimConfig *cfg);
void optimizer_free(Optimizer *o); /* idempotent */
/* Learning rate for the next update (warm-up applied). */
double optimizer_lr(const Optimizer *o);
/* Clip and apply one update from m->grads. Returns the global gradient norm before clipping
 * (NaN/Inf when the step was skipped). */
double optimizer_step(Optimizer *o);

#endif
