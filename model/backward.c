/* model/backward.c: the backward pass of model_forward, layer by layer in reverse, as KernelOps
 * calls. Every gradient buffer is zeroed before an op accumulates into it (backend.h convention).
 * d_x carries dL/dx between layers; d_n collects the gradient of a normalised tensor from both
 * of its uses (the branch, and for MiniMax the alpha-scaled residual). Each RMSNorm that follows a
 * residual add is undone by add_rmsnorm_backward, which also writes the branch gradient d_br of that
 * add: for a layer's input norm (and the final norm) that is the previous layer's MLP branch, so a
 * layer starts with d_br = m_beta * d_x already formed. Pre-norm models keep dL/dxm in d_x itself.
 * On the CPU these are the same float operations as rmsnorm_backward + scale (bit-identical).
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "core/error.h"
#include "model/model_internal.h"

#define ZERO(ptr, count) ctx->ops->zero(ctx, (ptr), (size_t)(count) * sizeof(float))

static void mlp_dense_backward(Model *m, LayerActs *la, const LayerParams *lp, const LayerParams *lg, int N) {
    KernelCtx *ctx = m->ctx;
    const KernelOps *ops = ctx->ops;
    const int C = m->cfg.hidden_size, F = m->cfg.intermediate_size;
    ModelActs *a = m->acts;
    ZERO(a->d_hact, (size_t)N * F);
    model_linear_backward(m, a->d_hact, lg->mlp_down, NULL, a->d_br, la->hact, lp->mlp_down, N, F, C);
    ZERO(a->d_h13, (size_t)N * 2 * F);
    ops->swiglu_backward(ctx, a->d_h13, a->d_hact, la->h13, N, F);
    for (int half = 0; half < 2; half++) {
        const float *W = half ? lp->mlp_up : lp->mlp_gate;
        float *dW = half ? lg->mlp_up : lg->mlp_gate;
        ops->gemm(ctx, 0, 0, N, C, F, 1.0f, a->d_h13 + half * F, 2 * F, W, C, 1.0f, a->d_n, C);
        ops->gemm(ctx, 1, 0, F, C, N, 1.0f, a->d_h13 + half * F, 2 * F, la->n2, C, 1.0f, dW, C);
    }
}

static void mlp_moe_backward(Model *m, LayerActs *la, const LayerParams *lp, const LayerParams *lg, int N,
                             float daux) {
    KernelCtx *ctx = m->ctx;
    const KernelOps *ops = ctx->ops;
    const ModelConfig *c = &m->cfg;
    const int C = c->hidden_size, F = c->intermediate_size, E = c->num_local_experts, K = c->num_experts_per_tok;
    const int NK = N * K;
    ModelActs *a = m->acts;
    ZERO(a->d_yp, (size_t)NK * C);
    ZERO(a->d_topk_w, (size_t)N * K);
    ops->moe_combine_backward(ctx, a->d_yp, a->d_topk_w, a->d_br, la->yp, la->topk_w, la->sorted, NK, K, C);
    ZERO(a->d_hact, (size_t)NK * F);
    ops->moe_expert_gemm(ctx, a->d_hact, a->d_yp, lp->down, la->offsets, E, F, C, 0, 1.0f);
    ops->moe_expert_gemm_dw(ctx, lg->down, a->d_yp, la->hact, la->offsets, E, C, F);
    ZERO(a->d_h13, (size_t)NK * 2 * F);
    ops->swiglu_backward(ctx, a->d_h13, a->d_hact, la->h13, NK, F);
    ZERO(a->d_xp, (size_t)NK * C);
    ops->moe_expert_gemm(ctx, a->d_xp, a->d_h13, lp->gate_up, la->offsets, E, C, 2 * F, 0, 1.0f);
    ops->moe_expert_gemm_dw(ctx, lg->gate_up, a->d_h13, la->xp, la->offsets, E, 2 * F, C);
    ops->moe_permute_backward(ctx, a->d_n, a->d_xp, la->sorted, la->pos, NK, K, C);
    const float *dprobs = daux != 0.0f ? a->d_probs : NULL; /* filled once by model_backward */
    ZERO(a->d_logits_e, (size_t)N * E);
    ops->moe_route_backward(ctx, a->d_logits_e, a->d_topk_w, dprobs, la->probs, la->topk_idx, la->topk_w, N, E, K);
    int bf16 = m->ctx->gemm_bf16; /* the router runs in FP32 whatever the body's precision */
    m->ctx->gemm_bf16 = 0;
    model_linear_backward(m, a->d_n, lg->router, NULL, a->d_logits_e, la->n2, lp->router, N, C, E);
    m->ctx->gemm_bf16 = bf16;
}

static void attn_linear_backward(Model *m, int l, LayerActs *la, const LayerParams *lp, const LayerParams *lg,
                                 int N) {
    KernelCtx *ctx = m->ctx;
    const KernelOps *ops = ctx->ops;
    const ModelConfig *c = &m->cfg;
    const int C = c->hidden_size, A = model_A(c), NH = c->num_attention_heads;
    ModelActs *a = m->acts;
    ZERO(a->d_a1, (size_t)N * A); /* d gated */
    model_linear_backward(m, a->d_a1, lg->out, NULL, a->d_br, la->gated, lp->out, N, A, C);
    ZERO(a->d_a2, (size_t)N * A); /* d g */
    ZERO(a->d_a3, (size_t)N * A); /* d on */
    ops->sigmoid_gate_backward(ctx, a->d_a2, a->d_a3, a->d_a1, la->g, la->on, (size_t)N * A);
    model_linear_backward(m, a->d_n, lg->gate, NULL, a->d_a2, la->n1, lp->gate, N, C, A);
    ZERO(a->d_a1, (size_t)N * A); /* d lo */
    ops->rmsnorm_backward(ctx, a->d_a1, lg->onorm, a->d_a3, la->lo, lp->onorm, la->rstd_o, N, A);
    ZERO(a->d_a2, (size_t)N * 3 * A); /* d qkv */
    ops->lightning_backward(ctx, a->d_a2, NULL, a->d_a1, la->qkv, NULL, m->slopes + (size_t)l * NH, &a->pack, NH,
                            c->head_dim, c->block_size);
    ZERO(a->d_a3, (size_t)N * 3 * A); /* d qkv_pre */
    ops->silu_backward(ctx, a->d_a3, a->d_a2, la->qkv_pre, (size_t)N * 3 * A);
    model_linear_backward(m, a->d_n, lg->qkv, NULL, a->d_a3, la->n1, lp->qkv, N, C, 3 * A);
}

static void attn_full_backward(Model *m, LayerActs *la, const LayerParams *lp, const LayerParams *lg, int N) {
    KernelCtx *ctx = m->ctx;
    const KernelOps *ops = ctx->ops;
    const ModelConfig *c = &m->cfg;
    const int C = c->hidden_size, A = model_A(c), KA = model_KA(c), HS = c->head_dim;
    const int NH = c->num_attention_heads, KVH = c->num_key_value_heads;
    ModelActs *a = m->acts;
    ZERO(a->d_a1, (size_t)N * A); /* d att */
    model_linear_backward(m, a->d_a1, lg->wo, lg->bo, a->d_br, la->att, lp->wo, N, A, C);
    ZERO(a->d_q, (size_t)N * A);
    ZERO(a->d_k, (size_t)N * KA);
    ZERO(a->d_v, (size_t)N * KA);
    ops->attention_backward(ctx, a->d_q, a->d_k, a->d_v, a->d_a1, la->q, la->k, la->v, la->att, la->lse, &a->pack,
                            NH, KVH, HS, 1.0f / sqrtf((float)HS));
    ops->rope_backward(ctx, a->d_q, &a->pack, NH, HS, c->rotary_dim, c->rope_theta);
    ops->rope_backward(ctx, a->d_k, &a->pack, KVH, HS, c->rotary_dim, c->rope_theta);
    model_linear_backward(m, a->d_n, lg->wq, lg->bq, a->d_q, la->n1, lp->wq, N, C, A);
    model_linear_backward(m, a->d_n, lg->wk, lg->bk, a->d_k, la->n1, lp->wk, N, C, KA);
    model_linear_backward(m, a->d_n, lg->wv, lg->bv, a->d_v, la->n1, lp->wv, N, C, KA);
}

/* On entry d_x = dL/d(layer output) and d_br = m_beta * d_x; on exit d_x = dL/d(layer input) and
 * d_br = the previous layer's m_beta * d_x (layer 0: d_br unspecified). */
static void layer_backward(Model *m, int l, int N, const ParamPtrs *p, const ParamPtrs *g, float daux) {
    KernelCtx *ctx = m->ctx;
    const KernelOps *ops = ctx->ops;
    const ModelConfig *c = &m->cfg;
    const int C = c->hidden_size;
    const size_t NC = (size_t)N * C;
    const int mm = c->postnorm; /* residuals carry the normed tensors */
    ModelActs *a = m->acts;
    LayerActs *la = &a->layer[l];
    const LayerParams *lp = &p->layer[l], *lg = &g->layer[l];
    float aa, ab, ma, mb;
    model_layer_factors(c, l, &aa, &ab, &ma, &mb);

    /* x_out = ma * R2 + mb * MLP(n2); d_br = mb * d_x on entry */
    ZERO(a->d_n, NC);
    if (model_is_moe(c))
        mlp_moe_backward(m, la, lp, lg, N, daux);
    else
        mlp_dense_backward(m, la, lp, lg, N);
    float *d_xm = mm ? a->d_xm : a->d_x; /* dL/dxm; pre-norm: the residual passes d_x through (ma = 1) */
    if (mm) {
        ops->axpby(ctx, a->d_n, ma, a->d_x, 1.0f, NC);
        ZERO(a->d_xm, NC);
    }
    /* xm = aa * R1 + ab * Attn(n1): dL/dxm and d_br = ab * dL/dxm */
    ops->add_rmsnorm_backward(ctx, d_xm, a->d_br, lg->w_post, a->d_n, la->xm, lp->w_post, la->rstd2, ab, N, C);
    ZERO(a->d_n, NC);
    if (model_is_linear(c, l))
        attn_linear_backward(m, l, la, lp, lg, N);
    else
        attn_full_backward(m, la, lp, lg, N);
    if (mm) {
        ops->axpby(ctx, a->d_n, aa, a->d_xm, 1.0f, NC);
        ZERO(a->d_x, NC);
    }
    /* the layer input x = the previous layer's ma * R2 + mb * MLP: its d_br = mb' * dL/dx */
    if (l > 0) {
        float pa, pb, pma, pmb;
        model_layer_factors(c, l - 1, &pa, &pb, &pma, &pmb);
        ops->add_rmsnorm_backward(ctx, a->d_x, a->d_br, lg->w_in, a->d_n, la->x, lp->w_in, la->rstd1, pmb, N, C);
    } else {
        ops->rmsnorm_backward(ctx, a->d_x, lg->w_in, a->d_n, la->x, lp->w_in, la->rstd1, N, C);
    }
}

void model_backward(Model *m, const float *dlogp, float daux) {
    KernelCtx *ctx = m->ctx;
    const KernelOps *ops = ctx->ops;
    const ModelConfig *c = &m->cfg;
    const int N = m->last_N, C = c->hidden_size, V = c->vocab_size;
    CHECK(N > 0, "model_backward without a forward");
    ModelActs *a = m->acts;
    const ParamPtrs *p = &a->pp, *g = &a->gp;
    ops->copy_h2d(ctx, a->d_logp, dlogp, (size_t)N * sizeof(float));
    ZERO(a->d_n, (size_t)N * C);
    ops->lm_head_backward(ctx, a->d_n, g->lm_head, a->d_logp, NULL, a->nf, p->lm_head, a->targets, a->lse, N, C, V);
    ZERO(a->d_x, (size_t)N * C);
    float la_, lb_, lma, lmb; /* the last layer's factors: its MLP branch gradient is mb * d_x */
    model_layer_factors(c, c->num_hidden_layers - 1, &la_, &lb_, &lma, &lmb);
    ops->add_rmsnorm_backward(ctx, a->d_x, a->d_br, g->w_final, a->d_n, a->x_final, p->w_final, a->rstd_f, lmb, N,
                              C);
    if (model_is_moe(c) && daux != 0.0f) { /* the aux gradient on probs: one row, repeated for every token */
        const int E = c->num_local_experts;
        for (int n = 0; n < N; n++)
            for (int e = 0; e < E; e++) a->host_dprobs[(size_t)n * E + e] = daux * a->aux_grad[e];
        ops->copy_h2d(ctx, a->d_probs, a->host_dprobs, (size_t)N * E * sizeof(float));
    }
    for (int l = c->num_hidden_layers - 1; l >= 0; l--) layer_backward(m, l, N, p, g, daux);
    ops->embedding_backward(ctx, g->wte, a->d_x, a->tokens, N, C);
}
