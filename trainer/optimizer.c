/* trainer/optimizer.c: AdamW over a Model's parameter table (ALGORITHMS.md §7).
 *
 * The moments live in one block from the model's backend (ctx->ops->alloc), twice the size of the
 * parameter block: mom1 is [0, total_bytes), mom2 [total_bytes, 2 total_bytes), each with the
 * parameter block's layout, so a tensor at offset o in m->param_mem has its moments at offset o of
 * mom1 and mom2 (checkpoints can reuse m->params as the moments' table). One step:
 *   1. norm = sqrt(sum over tensors of ops->sumsq(grad)) (float64, padding excluded);
 *   2. a non-finite norm skips the step: nothing is written, `skipped` is incremented, the norm is
 *      returned; the caller zeroes the gradients as usual;
 *   3. grad_clip > 0 and norm > grad_clip: every gradient is scaled in place by grad_clip / norm;
 *   4. ops->adamw per tensor at t = step + 1 with lr * min(1, (step + 1) / warmup_steps), weight
 *      decay on every tensor (or not on 1-D ones with skip_decay_1d).
 * Only applied updates advance `step` (and so the warm-up and the bias correction).
 */
#include "trainer/optimizer.h"

#include <math.h>
#include <string.h>

#include "core/error.h"

void optimizer_config_defaults(OptimConfig *cfg) {
    memset(cfg, 0, sizeof *cfg);
    cfg->lr = 1e-6;
    cfg->beta1 = 0.9;
    cfg->beta2 = 0.95;
    cfg->eps = 1e-15;
    cfg->weight_decay = 0.01;
    cfg->grad_clip = 1.0;
    cfg->warmup_steps = 0;
    cfg->skip_decay_1d = 0;
}

static int validate(const OptimConfig *c) {
    if (!(c->lr >= 0.0 && isfinite(c->lr)))
        return err_set(ERR_CONFIG, "optim.lr=%g: expected a finite value >= 0", c->lr);
    if (!(c->beta1 >= 0.0 && c->beta1 < 1.0))
        return err_set(ERR_CONFIG, "optim.beta1=%g: expected a value in [0, 1)", c->beta1);
    if (!(c->beta2 >= 0.0 && c->beta2 < 1.0))
        return err_set(ERR_CONFIG, "optim.beta2=%g: expected a value in [0, 1)", c->beta2);
    if (!(c->eps >= 0.0 && isfinite(c->eps)))
        return err_set(ERR_CONFIG, "optim.eps=%g: expected a finite value >= 0", c->eps);
    if (!(c->weight_decay >= 0.0 && isfinite(c->weight_decay)))
        return err_set(ERR_CONFIG, "optim.weight_decay=%g: expected a finite value >= 0", c->weight_decay);
    if (isnan(c->grad_clip)) return err_set(ERR_CONFIG, "optim.grad_clip is NaN: expected a number (<= 0 disables)");
    if (c->warmup_steps < 0)
        return err_set(ERR_CONFIG, "optim.warmup_steps=%d: expected a value >= 0", c->warmup_steps);
    return 0;
}

int optimizer_init(Optimizer *o, Model *m, const OptimConfig *cfg) {
    CHECK(o != NULL && m != NULL && cfg != NULL && m->ctx != NULL, "optimizer_init: NULL argument");
    memset(o, 0, sizeof *o);
    int rc = validate(cfg);
    if (rc) return rc;
    CHECK(m->params.n == m->grads.n && m->params.total_bytes == m->grads.total_bytes && m->param_mem != NULL,
          "optimizer_init: parameter and gradient tables differ (%d vs %d tensors)", m->params.n, m->grads.n);
    for (int i = 0; i < m->params.n; i++)
        CHECK(m->params.t[i].dtype == DT_F32 && m->grads.t[i].numel == m->params.t[i].numel,
              "optimizer_init: tensor %s must be FP32 with a gradient of the same size", m->params.t[i].name);
    o->cfg = *cfg;
    o->m = m;
    o->mem = m->ctx->ops->alloc(m->ctx, 2 * m->params.total_bytes);
    o->mom1 = o->mem;
    o->mom2 = (float *)((char *)o->mem + m->params.total_bytes);
    return 0;
}

void optimizer_free(Optimizer *o) {
    if (o == NULL) return;
    if (o->mem != NULL && o->m != NULL) o->m->ctx->ops->free(o->m->ctx, o->mem);
    o->mem = NULL;
    o->mom1 = o->mom2 = NULL;
}

double optimizer_lr(const Optimizer *o) {
    if (o->cfg.warmup_steps <= 0) return o->cfg.lr;
    double f = (double)(o->step + 1) / o->cfg.warmup_steps;
    return o->cfg.lr * (f < 1.0 ? f : 1.0);
}

/* sqrt(sum of squares of every gradient tensor), float64 */
static double grad_norm(const Model *m) {
    double s = 0.0;
    for (int i = 0; i < m->grads.n; i++)
        s += m->ctx->ops->sumsq(m->ctx, m->grads.t[i].data, (size_t)m->grads.t[i].numel);
    return sqrt(s);
}

double optimizer_step(Optimizer *o) {
    CHECK(o != NULL && o->mem != NULL, "optimizer_step on an optimizer that is not initialised");
    Model *m = o->m;
    KernelCtx *ctx = m->ctx;
    double norm = grad_norm(m);
    if (!isfinite(norm)) {
        o->skipped++;
        return norm;
    }
    if (o->cfg.grad_clip > 0.0 && norm > o->cfg.grad_clip) {
        float s = (float)(o->cfg.grad_clip / norm);
        for (int i = 0; i < m->grads.n; i++) {
            float *g = m->grads.t[i].data;
            ctx->ops->scale(ctx, g, g, s, (size_t)m->grads.t[i].numel);
        }
    }
    float lr = (float)optimizer_lr(o);
    int t = (int)(o->step + 1);
    for (int i = 0; i < m->params.n; i++) {
        const TensorSpec *p = &m->params.t[i];
        size_t off = (size_t)((char *)p->data - (char *)m->param_mem);
        float wd = (p->ndim == 1 && o->cfg.skip_decay_1d) ? 0.0f : (float)o->cfg.weight_decay;
        ctx->ops->adamw(ctx, p->data, m->grads.t[i].data, (float *)((char *)o->mom1 + off),
                        (float *)((char *)o->mom2 + off), (size_t)p->numel, lr, (float)o->cfg.beta1,
                        (float)o->cfg.beta2, (float)o->cfg.eps, wd, t);
    }
    o->step++;
    return norm;
}
