/* model/forward.c: the training forward pass over a packed batch, written out as a sequence of
 * KernelOps calls (DESIGN.md §6), and HF's MoE load-balancing loss.
 *
 * Per decoder layer (R = the normalised input for MiniMax's DeepNorm-style residual (cfg.postnorm),
 * the raw input for pre-norm models; alpha = beta = 1 for dense):
 *   n1 = RMSNorm(x);  xm = alpha_a * R1 + beta_a * Attn(n1);  n2 = RMSNorm(xm);
 *   x' = alpha_m * R2 + beta_m * MLP(n2)
 * Lightning Attn(u) = out_proj(sigmoid(u Wg^T) * RMSNorm_1e-6(Lightning(SiLU(u Wqkv^T))));
 * full Attn(u) = o_proj(softmax-attention(RoPE(u Wq^T + bq), RoPE(u Wk^T + bk), u Wv^T + bv)).
 * MoE MLP(u) = sum_k w_k SwiGLU_e_k(u) with FP32 softmax routing, top-k, renormalised weights.
 * Each residual add and the RMSNorm that follows it are one add_rmsnorm_forward call: xm with n2
 * inside a layer, and a layer's output with the next layer's n1 (or the final norm), so a layer
 * starts with its n1 already computed (layer 0's by a plain rmsnorm of the embeddings). On the CPU
 * the fused op is the same float operations as scale + axpby + rmsnorm_forward (bit-identical).
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "core/error.h"
#include "model/decode.h"
#include "model/model_internal.h"

void model_layer_factors(const ModelConfig *c, int l, float *a_alpha, float *a_beta, float *m_alpha, float *m_beta) {
    if (c->family != MODEL_MINIMAX) {
        *a_alpha = *a_beta = *m_alpha = *m_beta = 1.0f;
        return;
    }
    if (c->layer_types[l] == LAYER_LINEAR_ATTENTION) {
        *a_alpha = c->linear_attn_alpha_factor;
        *a_beta = c->linear_attn_beta_factor;
    } else {
        *a_alpha = c->full_attn_alpha_factor;
        *a_beta = c->full_attn_beta_factor;
    }
    *m_alpha = c->mlp_alpha_factor;
    *m_beta = c->mlp_beta_factor;
}

void model_residual(Model *m, float *x_out, const float *r, float alpha, const float *branch, float beta, int N) {
    KernelCtx *ctx = m->ctx;
    size_t n = (size_t)N * m->cfg.hidden_size;
    ctx->ops->scale(ctx, x_out, r, alpha, n);
    ctx->ops->axpby(ctx, x_out, beta, branch, 1.0f, n);
}

void model_mlp_forward(Model *m, int l, LayerActs *la, const float *n2, int N, float *out) {
    KernelCtx *ctx = m->ctx;
    const KernelOps *ops = ctx->ops;
    const ModelConfig *c = &m->cfg;
    const int C = c->hidden_size, F = c->intermediate_size;
    const LayerParams *lp = &m->acts->pp.layer[l];
    if (!model_is_moe(c)) {
        /* h13 = [n2 Wg^T | n2 Wu^T] (N, 2F) */
        ops->gemm(ctx, 0, 1, N, F, C, 1.0f, n2, C, lp->mlp_gate, C, 0.0f, la->h13, 2 * F);
        ops->gemm(ctx, 0, 1, N, F, C, 1.0f, n2, C, lp->mlp_up, C, 0.0f, la->h13 + F, 2 * F);
        ops->swiglu_forward(ctx, la->hact, la->h13, N, F);
        model_linear(m, out, la->hact, lp->mlp_down, NULL, N, F, C, 0.0f);
        return;
    }
    const int E = c->num_local_experts, K = c->num_experts_per_tok, NK = N * K;
    int bf16 = m->ctx->gemm_bf16; /* the router runs in FP32 whatever the body's precision */
    m->ctx->gemm_bf16 = 0;
    model_linear(m, la->rl, n2, lp->router, NULL, N, C, E, 0.0f);
    m->ctx->gemm_bf16 = bf16;
    ops->moe_route_forward(ctx, la->probs, la->topk_idx, la->topk_w, la->rl, N, E, K);
    ops->moe_sort(ctx, la->sorted, la->pos, la->offsets, la->topk_idx, N, K, E);
    ops->moe_permute_forward(ctx, la->xp, n2, la->sorted, NK, K, C);
    /* per expert e: h13 = xp W_gu,e^T (rows, 2F); hact = SwiGLU(h13); yp = hact W_d,e^T (rows, C) */
    ops->moe_expert_gemm(ctx, la->h13, la->xp, lp->gate_up, la->offsets, E, 2 * F, C, 1, 0.0f);
    ops->swiglu_forward(ctx, la->hact, la->h13, NK, F);
    ops->moe_expert_gemm(ctx, la->yp, la->hact, lp->down, la->offsets, E, C, F, 1, 0.0f);
    ops->zero(ctx, out, (size_t)N * C * sizeof(float));
    ops->moe_combine_forward(ctx, out, la->yp, la->topk_w, la->sorted, la->pos, NK, K, C);
}

void model_lightning_proj_in(Model *m, int l, LayerActs *la, const float *n1, int N) {
    const ModelConfig *c = &m->cfg;
    const int C = c->hidden_size, A = model_A(c);
    model_linear(m, la->qkv_pre, n1, m->acts->pp.layer[l].qkv, NULL, N, C, 3 * A, 0.0f);
    m->ctx->ops->silu_forward(m->ctx, la->qkv, la->qkv_pre, (size_t)N * 3 * A);
}

/* From the raw lightning output la->lo (N,A): norm, gate, output projection into out (N,C). */
void model_lightning_proj_out(Model *m, int l, LayerActs *la, const float *n1, int N, float *out) {
    KernelCtx *ctx = m->ctx;
    const ModelConfig *c = &m->cfg;
    const int C = c->hidden_size, A = model_A(c);
    const LayerParams *lp = &m->acts->pp.layer[l];
    ctx->ops->rmsnorm_forward(ctx, la->on, la->rstd_o, la->lo, lp->onorm, N, A, c->lightning_norm_eps);
    model_linear(m, la->g, n1, lp->gate, NULL, N, C, A, 0.0f);
    ctx->ops->sigmoid_gate_forward(ctx, la->gated, la->g, la->on, (size_t)N * A);
    model_linear(m, out, la->gated, lp->out, NULL, N, A, C, 0.0f);
}

/* q, k, v projections (+ biases) of a softmax layer, before RoPE. */
void model_full_proj_in(Model *m, int l, LayerActs *la, const float *n1, int N) {
    const ModelConfig *c = &m->cfg;
    const int C = c->hidden_size, A = model_A(c), KA = model_KA(c);
    const LayerParams *lp = &m->acts->pp.layer[l];
    model_linear(m, la->q, n1, lp->wq, lp->bq, N, C, A, 0.0f);
    model_linear(m, la->k, n1, lp->wk, lp->bk, N, C, KA, 0.0f);
    model_linear(m, la->v, n1, lp->wv, lp->bv, N, C, KA, 0.0f);
}

/* One layer over N packed tokens, la->n1 and la->rstd1 already computed; `cap` (may be NULL) receives
 * lightning states and KV caches. Writes x_next (N,C) and its norm: the next layer's n1 or the final nf. */
static void layer_forward(Model *m, int l, int N, const SeqPack *pack, DecodeState *cap, float *x_next) {
    KernelCtx *ctx = m->ctx;
    const KernelOps *ops = ctx->ops;
    const ModelConfig *c = &m->cfg;
    const int C = c->hidden_size, A = model_A(c), NH = c->num_attention_heads, HS = c->head_dim;
    ModelActs *a = m->acts;
    LayerActs *la = &a->layer[l];
    const LayerParams *lp = &m->acts->pp.layer[l];
    float aa, ab, ma, mb;
    model_layer_factors(c, l, &aa, &ab, &ma, &mb);

    if (model_is_linear(c, l)) {
        model_lightning_proj_in(m, l, la, la->n1, N);
        float *kv_out = cap ? cap->lin_state[l] : NULL;
        ops->lightning_forward(ctx, la->lo, kv_out, la->qkv, NULL, m->slopes + (size_t)l * NH, pack, NH, HS,
                               c->block_size);
        model_lightning_proj_out(m, l, la, la->n1, N, a->tmp_c);
    } else {
        model_full_proj_in(m, l, la, la->n1, N);
        ops->rope_forward(ctx, la->q, pack, NH, HS, c->rotary_dim, c->rope_theta);
        ops->rope_forward(ctx, la->k, pack, c->num_key_value_heads, HS, c->rotary_dim, c->rope_theta);
        if (cap) decode_capture_kv(m, cap, l, la->k, la->v, pack);
        ops->attention_forward(ctx, la->att, la->lse, la->q, la->k, la->v, pack, NH, c->num_key_value_heads, HS,
                               1.0f / sqrtf((float)HS));
        model_linear(m, a->tmp_c, la->att, lp->wo, lp->bo, N, A, C, 0.0f);
    }
    const float *r1 = c->postnorm ? la->n1 : la->x;
    ops->add_rmsnorm_forward(ctx, la->xm, la->n2, la->rstd2, r1, aa, a->tmp_c, ab, lp->w_post, N, C,
                             c->rms_norm_eps);
    model_mlp_forward(m, l, la, la->n2, N, a->tmp_c);
    const float *r2 = c->postnorm ? la->n2 : la->xm;
    const int last = l + 1 == c->num_hidden_layers;
    float *n_next = last ? a->nf : a->layer[l + 1].n1, *rstd_next = last ? a->rstd_f : a->layer[l + 1].rstd1;
    const float *w_next = last ? m->acts->pp.w_final : m->acts->pp.layer[l + 1].w_in;
    ops->add_rmsnorm_forward(ctx, x_next, n_next, rstd_next, r2, ma, a->tmp_c, mb, w_next, N, C, c->rms_norm_eps);
}

void model_forward_impl(Model *m, const int *tokens, const int *targets, const SeqPack *pack, float *logp,
                        float *logits_out, DecodeState *cap) {
    KernelCtx *ctx = m->ctx;
    const KernelOps *ops = ctx->ops;
    const ModelConfig *c = &m->cfg;
    const int B = pack->n_seq, N = pack->start[B], C = c->hidden_size, V = c->vocab_size;
    CHECK(B >= 1 && B <= m->max_seqs, "batch of %d sequences, model sized for %d", B, m->max_seqs);
    CHECK(N >= 1 && N <= m->max_tokens, "batch of %d tokens, model sized for %d", N, m->max_tokens);
    for (int n = 0; n < N; n++)
        CHECK(tokens[n] >= 0 && tokens[n] < V && (!targets || targets[n] < V), "token %d at %d (vocab %d)",
              tokens[n], n, V);
    ModelActs *a = m->acts;
    const ParamPtrs *p = &a->pp;
    ops->copy_h2d(ctx, a->tokens, tokens, (size_t)N * sizeof(int));
    ops->copy_h2d(ctx, a->targets, targets ? targets : a->host_neg, (size_t)N * sizeof(int));
    ops->embedding_forward(ctx, a->layer[0].x, a->tokens, p->wte, N, C);
    ops->rmsnorm_forward(ctx, a->layer[0].n1, a->layer[0].rstd1, a->layer[0].x, p->layer[0].w_in, N, C,
                         c->rms_norm_eps);
    for (int l = 0; l < c->num_hidden_layers; l++) {
        float *x_next = l + 1 < c->num_hidden_layers ? a->layer[l + 1].x : a->x_final;
        layer_forward(m, l, N, pack, cap, x_next); /* also the next n1, or nf after the last layer */
    }
    if (!cap) {
        ops->lm_head_forward(ctx, a->logp, a->lse, logits_out, a->nf, p->lm_head, a->targets, N, C, V);
        if (logp) ops->copy_d2h(ctx, logp, a->logp, (size_t)N * sizeof(float));
    }
    m->last_N = N;
    memcpy(a->pack_start, pack->start, (size_t)(B + 1) * sizeof(int));
    for (int b = 0; b < B; b++) a->pack_pos0[b] = pack->pos0 ? pack->pos0[b] : 0;
    a->pack = (SeqPack){B, a->pack_start, a->pack_pos0};
    m->aux_loss = model_is_moe(c) && !cap ? model_aux_loss(m, N) : 0.0f; /* prefill needs no loss */
}

void model_forward(Model *m, const int *tokens, const int *targets, const SeqPack *pack, float *logp,
                   float *logits_out) {
    model_forward_impl(m, tokens, targets, pack, logp, logits_out, NULL);
}

/* HF's load_balancing_loss_func as MiniMaxForCausalLM calls it (transformers 5.17): over the
 * router probabilities p = softmax(logits) of every layer, pooled over layers and tokens
 * (R = L*N rows),
 *   aux = E * sum_e f_e * P_e,  f_e = (#(row, k) choosing e) / R,  P_e = (1/R) sum_rows p_{row,e}.
 * The top-k counts are constants, so d aux / d p_{row,e} = E * f_e / R, the same for every row and
 * layer: it goes to aux_grad (E) for model_backward. */
float model_aux_loss(Model *m, int N) {
    const ModelConfig *c = &m->cfg;
    const KernelOps *ops = m->ctx->ops;
    const int L = c->num_hidden_layers, E = c->num_local_experts, K = c->num_experts_per_tok;
    ModelActs *a = m->acts;
    const size_t R = (size_t)L * N;
    CHECK(E <= 256, "at most 256 experts (got %d)", E);
    for (int l = 0; l < L; l++) {
        ops->copy_d2h(m->ctx, a->host_probs + (size_t)l * N * E, a->layer[l].probs, (size_t)N * E * sizeof(float));
        ops->copy_d2h(m->ctx, a->host_topk + (size_t)l * N * K, a->layer[l].topk_idx, (size_t)N * K * sizeof(int));
    }
    double count[256] = {0}, psum[256] = {0};
    for (size_t r = 0; r < R; r++) {
        for (int e = 0; e < E; e++) psum[e] += a->host_probs[r * E + e];
        for (int k = 0; k < K; k++) count[a->host_topk[r * K + k]] += 1;
    }
    double aux = 0;
    for (int e = 0; e < E; e++) aux += (count[e] / R) * (psum[e] / R);
    aux *= E;
    for (int e = 0; e < E; e++) a->aux_grad[e] = (float)(E * (count[e] / R) / R);
    return (float)aux;
}
