/* model/model.c: model lifecycle — the parameter table (HF names and shapes), allocation of
 * parameters, gradients and saved activations (once, at init), deterministic random init, lookups,
 * and the linear-layer helpers shared by forward, backward and decode.
 *
 * Layout: params and grads are two TensorTables with identical names/shapes, each bound to one
 * contiguous backend block; activations are carved from one more block sized for max_tokens.
 */
#include "model/model.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/error.h"
#include "core/rng.h"
#include "model/model_internal.h"

static void add_param(TensorTable *tt, const char *name, int ndim, int64_t d0, int64_t d1, int64_t d2) {
    int64_t shape[3] = {d0, d1, d2};
    tensor_table_add(tt, name, DT_F32, ndim, shape);
}

/* The parameter list, in the order HF's named_parameters() gives it. */
static void build_param_table(const ModelConfig *c, TensorTable *tt) {
    char nm[TENSOR_NAME_MAX];
    const int C = c->hidden_size, A = model_A(c), KA = model_KA(c), F = c->intermediate_size;
    add_param(tt, "model.embed_tokens.weight", 2, c->vocab_size, C, 0);
    for (int l = 0; l < c->num_hidden_layers; l++) {
#define P(suffix, nd, a, b, d) (snprintf(nm, sizeof nm, "model.layers.%d.%s", l, suffix), add_param(tt, nm, nd, a, b, d))
        if (c->family == MODEL_MINIMAX && c->layer_types[l] == LAYER_LINEAR_ATTENTION) {
            P("self_attn.norm.weight", 1, A, 0, 0);
            P("self_attn.qkv_proj.weight", 2, 3 * A, C, 0);
            P("self_attn.out_proj.weight", 2, C, A, 0);
            P("self_attn.output_gate.weight", 2, A, C, 0);
        } else {
            P("self_attn.q_proj.weight", 2, A, C, 0);
            if (c->attention_bias) P("self_attn.q_proj.bias", 1, A, 0, 0);
            P("self_attn.k_proj.weight", 2, KA, C, 0);
            if (c->attention_bias) P("self_attn.k_proj.bias", 1, KA, 0, 0);
            P("self_attn.v_proj.weight", 2, KA, C, 0);
            if (c->attention_bias) P("self_attn.v_proj.bias", 1, KA, 0, 0);
            P("self_attn.o_proj.weight", 2, C, A, 0);
            if (c->attention_bias && c->family == MODEL_LLAMA) P("self_attn.o_proj.bias", 1, C, 0, 0);
        }
        if (model_is_moe(c)) {
            P("mlp.gate.weight", 2, c->num_local_experts, C, 0);
            P("mlp.experts.gate_up_proj", 3, c->num_local_experts, 2 * F, C);
            P("mlp.experts.down_proj", 3, c->num_local_experts, C, F);
        } else {
            P("mlp.gate_proj.weight", 2, F, C, 0);
            P("mlp.up_proj.weight", 2, F, C, 0);
            P("mlp.down_proj.weight", 2, C, F, 0);
        }
        P("input_layernorm.weight", 1, C, 0, 0);
        P("post_attention_layernorm.weight", 1, C, 0, 0);
#undef P
    }
    add_param(tt, "model.norm.weight", 1, C, 0, 0);
    if (!c->tie_word_embeddings) add_param(tt, "lm_head.weight", 2, c->vocab_size, C, 0);
}

static float *find_in(const TensorTable *tt, const char *name) {
    int i = tensor_table_find(tt, name);
    return i < 0 ? NULL : (float *)tt->t[i].data;
}

float *model_param(const Model *m, const char *name) { return find_in(&m->params, name); }
float *model_grad(const Model *m, const char *name) { return find_in(&m->grads, name); }

void model_param_ptrs(const Model *m, int use_grads, ParamPtrs *p) {
    const TensorTable *tt = use_grads ? &m->grads : &m->params;
    char nm[TENSOR_NAME_MAX];
    memset(p, 0, sizeof(*p));
    p->wte = find_in(tt, "model.embed_tokens.weight");
    p->w_final = find_in(tt, "model.norm.weight");
    p->lm_head = m->cfg.tie_word_embeddings ? p->wte : find_in(tt, "lm_head.weight");
    for (int l = 0; l < m->cfg.num_hidden_layers; l++) {
        LayerParams *lp = &p->layer[l];
#define G(field, suffix) (snprintf(nm, sizeof nm, "model.layers.%d.%s", l, suffix), lp->field = find_in(tt, nm))
        G(w_in, "input_layernorm.weight");
        G(w_post, "post_attention_layernorm.weight");
        G(qkv, "self_attn.qkv_proj.weight");
        G(gate, "self_attn.output_gate.weight");
        G(onorm, "self_attn.norm.weight");
        G(out, "self_attn.out_proj.weight");
        G(wq, "self_attn.q_proj.weight");
        G(wk, "self_attn.k_proj.weight");
        G(wv, "self_attn.v_proj.weight");
        G(wo, "self_attn.o_proj.weight");
        G(bq, "self_attn.q_proj.bias");
        G(bk, "self_attn.k_proj.bias");
        G(bv, "self_attn.v_proj.bias");
        G(bo, "self_attn.o_proj.bias");
        G(router, "mlp.gate.weight");
        G(gate_up, "mlp.experts.gate_up_proj");
        G(down, "mlp.experts.down_proj");
        G(mlp_gate, "mlp.gate_proj.weight");
        G(mlp_up, "mlp.up_proj.weight");
        G(mlp_down, "mlp.down_proj.weight");
#undef G
    }
}

/* ALiBi slope of head h of n, as MiniMax's _build_slope_tensor: for a power of two n,
 * start^(h+1) with start = 2^(-2^(-(log2 n - 3))); otherwise the slopes of the closest power of two
 * P below n, then every other slope of the 2P set. */
static double alibi_slope(int n, int h) {
    int P = 1;
    while (P * 2 <= n) P *= 2;
    if (P == n || h < P) return pow(pow(2.0, -pow(2.0, -(log2((double)P) - 3.0))), h + 1);
    return alibi_slope(2 * P, 2 * (h - P));
}

float model_lightning_slope(const ModelConfig *cfg, int layer, int head) {
    const int NH = cfg->num_attention_heads, L = cfg->num_hidden_layers;
    if (cfg->format == MODEL_FORMAT_MINIMAX_ORIGINAL) /* modeling_minimax_text_01.py (L >= 2, validated) */
        return (float)(alibi_slope(NH, head) * (1.0 - (double)layer / (L - 1) + 1e-5));
    double base = 1.0 / pow(2.0, 8.0 / NH);
    double rate = pow(base, head + 1);
    double factor = 1.0 - layer / (L - 1 + 1e-5) + 1e-5;
    return (float)(rate * factor);
}

/* ---- activation block: a two-pass carve (count, then assign) ---- */
typedef struct {
    char *base;
    size_t off;
} Carve;

static void *carve(Carve *cv, size_t bytes) {
    size_t o = (cv->off + 63) & ~(size_t)63;
    cv->off = o + bytes;
    return cv->base ? cv->base + o : NULL;
}
#define CF(cv, n) ((float *)carve(cv, (size_t)(n) * sizeof(float)))
#define CI(cv, n) ((int *)carve(cv, (size_t)(n) * sizeof(int)))

static void carve_acts(const Model *m, ModelActs *a, Carve *cv) {
    const ModelConfig *c = &m->cfg;
    const size_t N = (size_t)m->max_tokens, C = c->hidden_size, A = model_A(c), KA = model_KA(c);
    const size_t F = c->intermediate_size, E = c->num_local_experts, K = c->num_experts_per_tok;
    const size_t NK = model_is_moe(c) ? N * K : N, L = c->num_hidden_layers;
    const size_t wide = (3 * A > 2 * F ? 3 * A : 2 * F);
    for (int l = 0; l < c->num_hidden_layers; l++) {
        LayerActs *la = &a->layer[l];
        memset(la, 0, sizeof(*la));
        la->x = CF(cv, N * C);
        la->n1 = CF(cv, N * C);
        la->rstd1 = CF(cv, N);
        la->xm = CF(cv, N * C);
        la->n2 = CF(cv, N * C);
        la->rstd2 = CF(cv, N);
        if (c->family == MODEL_MINIMAX && c->layer_types[l] == LAYER_LINEAR_ATTENTION) {
            la->qkv_pre = CF(cv, N * 3 * A);
            la->qkv = CF(cv, N * 3 * A);
            la->lo = CF(cv, N * A);
            la->on = CF(cv, N * A);
            la->rstd_o = CF(cv, N);
            la->g = CF(cv, N * A);
            la->gated = CF(cv, N * A);
        } else {
            la->q = CF(cv, N * A);
            la->k = CF(cv, N * KA);
            la->v = CF(cv, N * KA);
            la->att = CF(cv, N * A);
            la->lse = CF(cv, N * c->num_attention_heads);
        }
        if (model_is_moe(c)) {
            la->rl = CF(cv, N * E);
            la->probs = CF(cv, N * E);
            la->topk_idx = CI(cv, N * K);
            la->topk_w = CF(cv, N * K);
            la->sorted = CI(cv, NK);
            la->pos = CI(cv, NK);
            la->xp = CF(cv, NK * C);
            la->yp = CF(cv, NK * C);
        }
        la->h13 = CF(cv, NK * 2 * F);
        la->hact = CF(cv, NK * F);
    }
    a->x_final = CF(cv, N * C);
    a->nf = CF(cv, N * C);
    a->rstd_f = CF(cv, N);
    a->lse = CF(cv, N);
    a->logp = CF(cv, N);
    a->tokens = CI(cv, N);
    a->targets = CI(cv, N);
    a->ones = CF(cv, NK > N ? NK : N);
    a->tmp_c = CF(cv, N * C);
    a->tmp_c2 = CF(cv, N * C);
    a->d_x = CF(cv, N * C);
    a->d_xm = CF(cv, N * C);
    a->d_n = CF(cv, N * C);
    a->d_br = CF(cv, N * C);
    a->d_a1 = CF(cv, N * wide);
    a->d_a2 = CF(cv, N * wide);
    a->d_a3 = CF(cv, N * wide);
    a->d_q = CF(cv, N * A);
    a->d_k = CF(cv, N * KA);
    a->d_v = CF(cv, N * KA);
    a->d_logp = CF(cv, N);
    if (model_is_moe(c)) {
        a->d_yp = CF(cv, NK * C);
        a->d_xp = CF(cv, NK * C);
        a->d_h13 = CF(cv, NK * 2 * F);
        a->d_hact = CF(cv, NK * F);
        a->d_topk_w = CF(cv, N * K);
        a->d_logits_e = CF(cv, N * E);
        a->d_probs = CF(cv, N * E);
    } else {
        a->d_h13 = CF(cv, N * 2 * F);
        a->d_hact = CF(cv, N * F);
    }
    (void)L;
}

static void alloc_host_acts(Model *m) {
    const ModelConfig *c = &m->cfg;
    m->acts->pack_start = xcalloc((size_t)m->max_seqs + 1, sizeof(int));
    m->acts->pack_pos0 = xcalloc((size_t)m->max_seqs, sizeof(int));
    m->acts->host_neg = xmalloc((size_t)m->max_tokens * sizeof(int));
    for (int i = 0; i < m->max_tokens; i++) m->acts->host_neg[i] = -1;
    if (!model_is_moe(c)) return;
    const size_t N = m->max_tokens, E = c->num_local_experts, K = c->num_experts_per_tok;
    const size_t L = c->num_hidden_layers;
    ModelActs *a = m->acts;
    for (int l = 0; l < c->num_hidden_layers; l++) {
        a->layer[l].offsets = xcalloc(E + 1, sizeof(int));
    }
    a->host_probs = xcalloc(L * N * E, sizeof(float));
    a->host_dprobs = xcalloc(N * E, sizeof(float));
    a->aux_grad = xcalloc(E, sizeof(float));
    a->host_topk = xcalloc(L * N * K, sizeof(int));
}

size_t model_ws_bytes(const ModelConfig *c, const KernelOps *ops, int max_tokens) {
    size_t w = 0, t;
    t = ops->lightning_ws_bytes(max_tokens, c->num_attention_heads, c->head_dim, c->block_size);
    if (t > w) w = t;
    t = ops->attention_ws_bytes(max_tokens, c->num_attention_heads, c->head_dim);
    if (t > w) w = t;
    t = ops->lm_head_ws_bytes(max_tokens, c->hidden_size, c->vocab_size);
    if (t > w) w = t;
    t = ops->sample_ws_bytes(max_tokens, c->vocab_size); /* rollout samples through the same context */
    if (t > w) w = t;
    return w;
}

int model_init(Model *m, const ModelConfig *cfg, KernelCtx *ctx, int max_tokens, int max_seqs) {
    memset(m, 0, sizeof(*m));
    int rc = model_config_validate(cfg);
    if (rc) return rc;
    if (max_tokens < 1 || max_seqs < 1)
        return err_set(ERR_RANGE, "model_init: max_tokens (%d) and max_seqs (%d) must be >= 1", max_tokens, max_seqs);
    size_t need = model_ws_bytes(cfg, ctx->ops, max_tokens);
    if (ctx->ws_bytes < need)
        return err_set(ERR_RANGE, "model_init: the kernel workspace has %zu bytes, the model needs %zu\n"
                       "HINT: size it with model_ws_bytes() before kernel_ctx_init()", ctx->ws_bytes, need);
    m->cfg = *cfg;
    m->ctx = ctx;
    m->max_tokens = max_tokens;
    m->max_seqs = max_seqs;
    const KernelOps *ops = ctx->ops;
    tensor_table_init(&m->params);
    tensor_table_init(&m->grads);
    build_param_table(cfg, &m->params);
    build_param_table(cfg, &m->grads);
    size_t bytes = tensor_table_layout(&m->params);
    tensor_table_layout(&m->grads);
    m->param_mem = ops->alloc(ctx, bytes);
    m->grad_mem = ops->alloc(ctx, bytes);
    tensor_table_bind(&m->params, m->param_mem, MEM_HOST);
    tensor_table_bind(&m->grads, m->grad_mem, MEM_HOST);
    for (int i = 0; i < m->params.n; i++) m->n_params += m->params.t[i].numel;
    m->param_floats = bytes / sizeof(float);
    ops->params_register(ctx, (const float *)m->param_mem, m->param_floats);

    const int L = cfg->num_hidden_layers, NH = cfg->num_attention_heads;
    m->slopes = xcalloc((size_t)L * NH, sizeof(float));
    for (int l = 0; l < L; l++)
        for (int h = 0; h < NH; h++) m->slopes[l * NH + h] = model_lightning_slope(cfg, l, h);

    m->acts = xcalloc(1, sizeof(ModelActs));
    Carve cv = {NULL, 0};
    carve_acts(m, m->acts, &cv);
    m->acts->block_bytes = cv.off;
    m->acts->block = ops->alloc(ctx, cv.off);
    cv = (Carve){m->acts->block, 0};
    void *blk = m->acts->block;
    size_t bb = m->acts->block_bytes;
    carve_acts(m, m->acts, &cv);
    m->acts->block = blk;
    m->acts->block_bytes = bb;
    alloc_host_acts(m);
    model_param_ptrs(m, 0, &m->acts->pp);
    model_param_ptrs(m, 1, &m->acts->gp);
    /* the ones vector */
    size_t n_ones = (size_t)max_tokens * (model_is_moe(cfg) ? cfg->num_experts_per_tok : 1);
    float *ones = xmalloc(n_ones * sizeof(float));
    for (size_t i = 0; i < n_ones; i++) ones[i] = 1.0f;
    ops->copy_h2d(ctx, m->acts->ones, ones, n_ones * sizeof(float));
    free(ones);
    return 0;
}

void model_free(Model *m) {
    if (!m || !m->ctx) return;
    const KernelOps *ops = m->ctx->ops;
    ops->free(m->ctx, m->param_mem);
    ops->free(m->ctx, m->grad_mem);
    if (m->acts) {
        ops->free(m->ctx, m->acts->block);
        for (int l = 0; l < m->cfg.num_hidden_layers; l++) {
            free(m->acts->layer[l].offsets);
        }
        free(m->acts->pack_start);
        free(m->acts->pack_pos0);
        free(m->acts->host_neg);
        free(m->acts->host_probs);
        free(m->acts->host_dprobs);
        free(m->acts->aux_grad);
        free(m->acts->host_topk);
        free(m->acts);
    }
    free(m->slopes);
    tensor_table_free(&m->params);
    tensor_table_free(&m->grads);
    memset(m, 0, sizeof(*m));
}

static int is_norm_or_bias(const char *name) {
    size_t n = strlen(name);
    return strstr(name, "layernorm") || strstr(name, ".norm.") || (n > 5 && strcmp(name + n - 5, ".bias") == 0);
}

void model_init_weights(Model *m, uint64_t seed, float std) {
    const KernelOps *ops = m->ctx->ops;
    size_t maxn = 0;
    for (int i = 0; i < m->params.n; i++)
        if ((size_t)m->params.t[i].numel > maxn) maxn = m->params.t[i].numel;
    float *buf = xmalloc(maxn * sizeof(float));
    for (int i = 0; i < m->params.n; i++) {
        TensorSpec *t = &m->params.t[i];
        const char *nm = t->name;
        size_t n = t->numel;
        if (is_norm_or_bias(nm)) {
            float v = strstr(nm, ".bias") ? 0.0f : 1.0f;
            for (size_t j = 0; j < n; j++) buf[j] = v;
        } else {
            rng_fill_normal(buf, n, seed, rng_stream(0x57a27, (uint64_t)i, 0, 0), 0.0f, std);
        }
        ops->copy_h2d(m->ctx, t->data, buf, n * sizeof(float));
    }
    free(buf);
}

void model_zero_grad(Model *m) { m->ctx->ops->zero(m->ctx, m->grad_mem, m->grads.total_bytes); }

void model_linear(const Model *m, float *y, const float *x, const float *W, const float *b, int N, int in, int out,
                  float beta) {
    KernelCtx *ctx = m->ctx;
    ctx->ops->gemm(ctx, 0, 1, N, out, in, 1.0f, x, in, W, in, beta, y, out);
    if (b) ctx->ops->gemm(ctx, 0, 0, N, out, 1, 1.0f, m->acts->ones, 1, b, out, 1.0f, y, out);
}

void model_linear_backward(const Model *m, float *dx, float *dW, float *db, const float *dy, const float *x,
                           const float *W, int N, int in, int out) {
    KernelCtx *ctx = m->ctx;
    if (dx) ctx->ops->gemm(ctx, 0, 0, N, in, out, 1.0f, dy, out, W, in, 1.0f, dx, in);
    ctx->ops->gemm(ctx, 1, 0, out, in, N, 1.0f, dy, out, x, in, 1.0f, dW, in);
    if (db) ctx->ops->gemm(ctx, 0, 0, 1, out, N, 1.0f, m->acts->ones, N, dy, out, 1.0f, db, out);
}
