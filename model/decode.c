/* model/decode.c: incremental decoding with constant-size lightning states and KV caches for the
 * softmax layers. A step runs every layer on the B current tokens (one per active slot): lightning
 * layers update S = lambda S + k^T v and read o = q S; softmax layers append the token's k, v (after
 * RoPE at position len[b]) to the cache and attend over it. Norms, projections and the MoE are the
 * same code as the training forward (forward.c).
 */
#include "model/decode.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "core/error.h"
#include "model/model_internal.h"

int decode_state_init(DecodeState *s, const Model *m, int max_batch, int max_len) {
    memset(s, 0, sizeof(*s));
    const ModelConfig *c = &m->cfg;
    if (max_batch < 1 || max_batch > m->max_tokens || max_batch > m->max_seqs)
        return err_set(ERR_RANGE, "decode batch %d must be in [1, %d] (the model's max_tokens/max_seqs)", max_batch,
                       m->max_tokens < m->max_seqs ? m->max_tokens : m->max_seqs);
    if (max_len < 1) return err_set(ERR_RANGE, "decode max_len %d must be >= 1", max_len);
    KernelCtx *ctx = m->ctx;
    const int L = c->num_hidden_layers, NH = c->num_attention_heads, HS = c->head_dim;
    const int KVH = c->num_key_value_heads;
    s->max_batch = max_batch;
    s->max_len = max_len;
    s->len = xcalloc((size_t)max_batch, sizeof(int));
    s->start = xcalloc((size_t)max_batch + 1, sizeof(int));
    s->len_next = xcalloc((size_t)max_batch, sizeof(int));
    s->lin_state = xcalloc((size_t)L, sizeof(float *));
    s->kcache = xcalloc((size_t)L, sizeof(float *));
    s->vcache = xcalloc((size_t)L, sizeof(float *));
    for (int l = 0; l < L; l++) {
        if (model_is_linear(c, l)) {
            s->lin_state[l] = ctx->ops->alloc(ctx, (size_t)max_batch * NH * HS * HS * sizeof(float));
        } else {
            size_t n = (size_t)max_batch * max_len * KVH * HS * sizeof(float);
            s->kcache[l] = ctx->ops->alloc(ctx, n);
            s->vcache[l] = ctx->ops->alloc(ctx, n);
        }
    }
    for (int b = 0; b <= max_batch; b++) s->start[b] = b;
    s->logits_dev = ctx->ops->alloc(ctx, (size_t)max_batch * c->vocab_size * sizeof(float));
    return 0;
}

void decode_state_free(DecodeState *s, const Model *m) {
    if (!s || !s->len) return;
    KernelCtx *ctx = m->ctx;
    for (int l = 0; l < m->cfg.num_hidden_layers; l++) {
        ctx->ops->free(ctx, s->lin_state[l]);
        ctx->ops->free(ctx, s->kcache[l]);
        ctx->ops->free(ctx, s->vcache[l]);
    }
    ctx->ops->free(ctx, s->logits_dev);
    free(s->lin_state);
    free(s->kcache);
    free(s->vcache);
    free(s->len);
    free(s->start);
    free(s->len_next);
    memset(s, 0, sizeof(*s));
}

void decode_capture_kv(Model *m, DecodeState *s, int l, const float *k, const float *v, const SeqPack *pack) {
    KernelCtx *ctx = m->ctx;
    const size_t row = (size_t)m->cfg.num_key_value_heads * m->cfg.head_dim;
    for (int b = 0; b < pack->n_seq; b++) {
        int t0 = pack->start[b], T = pack->start[b + 1] - t0;
        CHECK(T <= s->max_len, "prompt of %d tokens, decode state holds %d", T, s->max_len);
        size_t dst = ((size_t)b * s->max_len) * row;
        ctx->ops->copy_d2d(ctx, s->kcache[l] + dst, k + (size_t)t0 * row, (size_t)T * row * sizeof(float));
        ctx->ops->copy_d2d(ctx, s->vcache[l] + dst, v + (size_t)t0 * row, (size_t)T * row * sizeof(float));
    }
}

/* LM head on rows h(B,C) into the state's backend buffer logits_dev (B,V), then into host logits
 * (B,V) unless logits is NULL (the caller samples on the backend). */
static void head_logits(Model *m, DecodeState *s, const float *h, int B, float *logits) {
    KernelCtx *ctx = m->ctx;
    ModelActs *a = m->acts;
    const int V = m->cfg.vocab_size;
    ctx->ops->copy_h2d(ctx, a->targets, a->host_neg, (size_t)B * sizeof(int));
    ctx->ops->lm_head_forward(ctx, a->logp, a->lse, s->logits_dev, h, a->pp.lm_head, a->targets, B,
                              m->cfg.hidden_size, V);
    if (logits) ctx->ops->copy_d2h(ctx, logits, s->logits_dev, (size_t)B * V * sizeof(float));
}

void model_prefill(Model *m, DecodeState *s, const int *tokens, const SeqPack *pack, float *logits_last) {
    const int B = pack->n_seq, C = m->cfg.hidden_size;
    CHECK(B <= s->max_batch, "prefill of %d sequences, decode state holds %d", B, s->max_batch);
    CHECK(pack->pos0 == NULL, "prefill starts every sequence at position 0");
    model_forward_impl(m, tokens, NULL, pack, NULL, NULL, s);
    KernelCtx *ctx = m->ctx;
    ModelActs *a = m->acts;
    for (int b = 0; b < B; b++) {
        s->len[b] = pack->start[b + 1] - pack->start[b];
        ctx->ops->copy_d2d(ctx, a->tmp_c + (size_t)b * C, a->nf + (size_t)(pack->start[b + 1] - 1) * C,
                           (size_t)C * sizeof(float));
    }
    s->n_active = B;
    head_logits(m, s, a->tmp_c, B, logits_last);
}

static void decode_layer(Model *m, DecodeState *s, int l, int B, const SeqPack *one, float *x, float *x_next) {
    KernelCtx *ctx = m->ctx;
    const KernelOps *ops = ctx->ops;
    const ModelConfig *c = &m->cfg;
    const int C = c->hidden_size, A = model_A(c), NH = c->num_attention_heads, HS = c->head_dim;
    const int KVH = c->num_key_value_heads;
    ModelActs *a = m->acts;
    LayerActs *la = &a->layer[l];
    const LayerParams *lp = &a->pp.layer[l];
    float aa, ab, ma, mb;
    model_layer_factors(c, l, &aa, &ab, &ma, &mb);
    ops->rmsnorm_forward(ctx, la->n1, la->rstd1, x, lp->w_in, B, C, c->rms_norm_eps);
    if (model_is_linear(c, l)) {
        model_lightning_proj_in(m, l, la, la->n1, B);
        ops->lightning_decode(ctx, la->lo, s->lin_state[l], la->qkv, m->slopes + (size_t)l * NH, B, NH, HS);
        model_lightning_proj_out(m, l, la, la->n1, B, a->tmp_c);
    } else {
        model_full_proj_in(m, l, la, la->n1, B);
        ops->rope_forward(ctx, la->q, one, NH, HS, c->rotary_dim, c->rope_theta);
        ops->rope_forward(ctx, la->k, one, KVH, HS, c->rotary_dim, c->rope_theta);
        ops->kv_append(ctx, s->kcache[l], s->vcache[l], la->k, la->v, s->len, B, s->max_len, KVH * HS);
        const int *len1 = s->len_next;
        ops->attention_decode(ctx, la->att, la->q, s->kcache[l], s->vcache[l], len1, B, s->max_len, NH, KVH, HS,
                              1.0f / sqrtf((float)HS));
        model_linear(m, a->tmp_c, la->att, lp->wo, lp->bo, B, A, C, 0.0f);
    }
    model_residual(m, la->xm, c->postnorm ? la->n1 : x, aa, a->tmp_c, ab, B);
    ops->rmsnorm_forward(ctx, la->n2, la->rstd2, la->xm, lp->w_post, B, C, c->rms_norm_eps);
    model_mlp_forward(m, l, la, la->n2, B, a->tmp_c);
    model_residual(m, x_next, c->postnorm ? la->n2 : la->xm, ma, a->tmp_c, mb, B);
}

void model_decode_step(Model *m, DecodeState *s, const int *tokens, float *logits) {
    KernelCtx *ctx = m->ctx;
    const KernelOps *ops = ctx->ops;
    const ModelConfig *c = &m->cfg;
    const int B = s->n_active, C = c->hidden_size;
    CHECK(B >= 1, "decode step with no active sequence");
    for (int b = 0; b < B; b++) {
        CHECK(s->len[b] < s->max_len, "slot %d is full (%d tokens)", b, s->max_len);
        CHECK(tokens[b] >= 0 && tokens[b] < c->vocab_size, "token %d in slot %d", tokens[b], b);
    }
    ModelActs *a = m->acts;
    /* a one-token-per-slot pack at positions len[b] */
    for (int b = 0; b < B; b++) s->len_next[b] = s->len[b] + 1;
    SeqPack one = {B, s->start, s->len};
    ops->copy_h2d(ctx, a->tokens, tokens, (size_t)B * sizeof(int));
    ops->embedding_forward(ctx, a->tmp_c2, a->tokens, a->pp.wte, B, C);
    float *x = a->tmp_c2, *y = a->x_final;
    for (int l = 0; l < c->num_hidden_layers; l++) {
        decode_layer(m, s, l, B, &one, x, y);
        float *t = x;
        x = y;
        y = t;
    }
    ops->rmsnorm_forward(ctx, a->nf, a->rstd_f, x, a->pp.w_final, B, C, c->rms_norm_eps);
    head_logits(m, s, a->nf, B, logits);
    for (int b = 0; b < B; b++) s->len[b]++;
    m->last_N = 0; /* the saved activations no longer describe a training forward */
}

/* Slot dst takes slot src's sequence: its lightning states, the filled part of its KV caches, its
 * length. The two slots' rows are disjoint, so the copies never overlap. */
static void decode_state_move(Model *m, DecodeState *s, int dst, int src) {
    KernelCtx *ctx = m->ctx;
    const ModelConfig *c = &m->cfg;
    const size_t lin = (size_t)c->num_attention_heads * c->head_dim * c->head_dim;
    const size_t row = (size_t)c->num_key_value_heads * c->head_dim;
    const size_t kv = (size_t)s->len[src] * row;
    for (int l = 0; l < c->num_hidden_layers; l++) {
        if (s->lin_state[l]) {
            ctx->ops->copy_d2d(ctx, s->lin_state[l] + dst * lin, s->lin_state[l] + src * lin, lin * sizeof(float));
        } else if (kv > 0) {
            const size_t d0 = (size_t)dst * s->max_len * row, s0 = (size_t)src * s->max_len * row;
            ctx->ops->copy_d2d(ctx, s->kcache[l] + d0, s->kcache[l] + s0, kv * sizeof(float));
            ctx->ops->copy_d2d(ctx, s->vcache[l] + d0, s->vcache[l] + s0, kv * sizeof(float));
        }
    }
    s->len[dst] = s->len[src];
}

void decode_state_retire(Model *m, DecodeState *s, int slot) {
    CHECK(slot >= 0 && slot < s->n_active, "retire slot %d of %d active", slot, s->n_active);
    const int last = s->n_active - 1;
    if (slot != last) decode_state_move(m, s, slot, last);
    s->len[last] = 0;
    s->n_active = last;
}
