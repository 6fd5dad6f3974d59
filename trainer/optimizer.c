/* trainer/optimizer.c: AdamW over a Model's parameter table (ALGORITHMS.md §7).
 *
 * The moments live in one block from the model's backend (ctx->ops->alloc), twice the size of the
 * parameter block: mom1 is [0, total_bytes), mom2 [total_bytes, 2 total_bytes), each with the
 * parameter block's layout, so a tensor at offset o in m->param_mem has its moments at offset o of
 * mom1 and mom2 (checkpoints can reuse m->params as the moments' table). One step is one call of
 * the backend's adamw_fused over a tensor table (offset, numel, decay flag) uploaded at init, then
 * one read-back of the norm (one host synchronisation per step on a GPU):
 *   1. norm = sqrt(sum over tensors of sum(grad^2)) (float64, padding excluded);
 *   2. a non-finite norm skips the step: nothing is written, `skipped` is incremented, the norm is
 *      returned; the caller zeroes the gradients as usual;
 *   3. grad_clip > 0 and norm > grad_clip: every gradient is scaled in place by grad_clip / norm;
 *   4. AdamW per tensor at t = step + 1 with lr * min(1, (step + 1) / warmup_steps), weight
 *      decay on every tensor (or not on 1-D ones with skip_decay_1d).
 * On the CPU, adamw_fused is exactly the former per-tensor sequence (sumsq, scale, adamw), so CPU
 * runs are bit-identical to those before the op existed.
 * Only applied updates advance `step` (and so the warm-up and the bias correction).
 */
#include "trainer/optimizer.h"

#include <math.h>
#include <stdlib.h>
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

/* The tensor table of adamw_fused and the norm slot, in one backend block: OptTensor[n] then a double. */
static void upload_table(Optimizer *o) {
    Model *m = o->m;
    const int n = m->params.n;
    size_t tab_bytes = ((size_t)n * sizeof(OptTensor) + 63) & ~(size_t)63;
    OptTensor *host = calloc((size_t)n, sizeof(OptTensor));
    CHECK(host != NULL, "optimizer_init: out of host memory for %d tensors", n);
    for (int i = 0; i < n; i++) {
        const TensorSpec *p = &m->params.t[i];
        size_t off = (size_t)((char *)p->data - (char *)m->param_mem);
        size_t goff = (size_t)((char *)m->grads.t[i].data - (char *)m->grad_mem);
        CHECK(off % sizeof(float) == 0 && off == goff && off + (size_t)p->numel * sizeof(float) <= m->params.total_bytes,
              "optimizer_init: tensor %s at byte %zu (gradient at %zu) is outside the block layout", p->name, off, goff);
        host[i].offset = off / sizeof(float);
        host[i].numel = (size_t)p->numel;
        host[i].decay = !(p->ndim == 1 && o->cfg.skip_decay_1d);
    }
    KernelCtx *ctx = m->ctx;
    o->table_mem = ctx->ops->alloc(ctx, tab_bytes + sizeof(double));
    ctx->ops->copy_h2d(ctx, o->table_mem, host, (size_t)n * sizeof(OptTensor));
    o->table = o->table_mem;
    o->norm_dev = (double *)((char *)o->table_mem + tab_bytes);
    free(host);
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
    upload_table(o);
    return 0;
}

void optimizer_free(Optimizer *o) {
    if (o == NULL) return;
    if (o->mem != NULL && o->m != NULL) o->m->ctx->ops->free(o->m->ctx, o->mem);
    if (o->table_mem != NULL && o->m != NULL) o->m->ctx->ops->free(o->m->ctx, o->table_mem);
    o->mem = o->table_mem = NULL;
    o->table = NULL;
    o->norm_dev = NULL;
    o->mom1 = o->mom2 = NULL;
}

double optimizer_lr(const Optimizer *o) {
    if (o->cfg.warmup_steps <= 0) return o->cfg.lr;
    double f = (double)(o->step + 1) / o->cfg.warmup_steps;
    return o->cfg.lr * (f < 1.0 ? f : 1.0);
}

double optimizer_step(Optimizer *o) {
    CHECK(o != NULL && o->mem != NULL, "optimizer_step on an optimizer that is not initialised");
    Model *m = o->m;
    KernelCtx *ctx = m->ctx;
    float lr = (float)optimizer_lr(o);
    int t = (int)(o->step + 1);
    ctx->ops->adamw_fused(ctx, (float *)m->param_mem, (float *)m->grad_mem, o->mom1, o->mom2, o->table, m->params.n,
                          o->norm_dev, o->cfg.grad_clip, lr, (float)o->cfg.beta1, (float)o->cfg.beta2,
                          (float)o->cfg.eps, (float)o->cfg.weight_decay, t);
    double norm = 0.0;
    ctx->ops->copy_d2h(ctx, &norm, o->norm_dev, sizeof norm);
    if (!isfinite(norm)) {
        o->skipped++;
        return norm;
    }
    o->step++;
    return norm;
}
