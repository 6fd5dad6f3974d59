/* trainer/optimizer.h: AdamW over a model's parameter table with the M1 defaults (beta1 0.9,
 * beta2 0.95, eps 1e-15, moments in FP32), global-norm gradient clipping, linear learning-rate
 * warm-up, and the non-finite guard: a NaN/Inf gradient norm skips the step (parameters and moments
 * untouched) and is counted.
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
} OptimConfig;

typedef struct {
    OptimConfig cfg;
    Model *m;
    void *mem;          /* moments: m and v, same layout as the parameter block (backend memory) */
    float *mom1, *mom2;
    long step;          /* updates applied */
    long skipped;       /* non-finite steps skipped */
} Optimizer;

int optimizer_init(Optimizer *o, Model *m, const OptimConfig *cfg);
void optimizer_free(Optimizer *o); /* idempotent */
/* Learning rate for the next update (warm-up applied). */
double optimizer_lr(const Optimizer *o);
/* Clip and apply one update from m->grads. Returns the global gradient norm before clipping
 * (NaN/Inf when the step was skipped). */
double optimizer_step(Optimizer *o);

#endif
