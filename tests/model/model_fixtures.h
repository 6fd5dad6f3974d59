/* tests/model/model_fixtures.h: tiny model configurations and helpers shared by the model tests
 * (static inline only). */
#ifndef CISPO_TESTS_MODEL_FIXTURES_H
#define CISPO_TESTS_MODEL_FIXTURES_H

#include <stdlib.h>
#include <string.h>

#include "core/rng.h"
#include "kernels/backend.h"
#include "model/model.h"

/* A MiniMax hybrid: linear, linear, full, linear layers, MoE, non-unit alpha/beta, untied. */
static inline ModelConfig fixture_minimax(void) {
    ModelConfig c;
    model_config_defaults(&c, MODEL_MINIMAX);
    c.vocab_size = 23;
    c.hidden_size = 16;
    c.intermediate_size = 12;
    c.num_hidden_layers = 4;
    c.num_attention_heads = 2;
    c.num_key_value_heads = 1;
    c.head_dim = 8;
    c.rotary_dim = 8;
    c.block_size = 4;
    c.num_local_experts = 3;
    c.num_experts_per_tok = 2;
    c.rope_theta = 10000.0f;
    c.tie_word_embeddings = 0;
    c.router_aux_loss_coef = 0.02f;
    for (int l = 0; l < 4; l++) c.layer_types[l] = l == 2 ? LAYER_FULL_ATTENTION : LAYER_LINEAR_ATTENTION;
    c.linear_attn_alpha_factor = 1.3f;
    c.linear_attn_beta_factor = 0.7f;
    c.full_attn_alpha_factor = 0.9f;
    c.full_attn_beta_factor = 1.2f;
    c.mlp_alpha_factor = 1.1f;
    c.mlp_beta_factor = 0.8f;
    return c;
}

/* A dense Qwen2 (q/k/v biases), tied embeddings. */
static inline ModelConfig fixture_qwen2(void) {
    ModelConfig c;
    model_config_defaults(&c, MODEL_QWEN2);
    c.vocab_size = 19;
    c.hidden_size = 16;
    c.intermediate_size = 20;
    c.num_hidden_layers = 2;
    c.num_attention_heads = 4;
    c.num_key_value_heads = 2;
    c.head_dim = 4;
    c.rotary_dim = 4;
    c.rope_theta = 10000.0f;
    c.tie_word_embeddings = 1;
    c.attention_bias = 1;
    return c;
}

/* Init a model on the CPU backend with N(0, std) weights and randomised norm weights/biases. */
static inline int fixture_model(Model *m, KernelCtx *ctx, const ModelConfig *c, int max_tokens, int max_seqs,
                                uint64_t seed, float std) {
    kernel_ctx_init(ctx, kernels_cpu(), model_ws_bytes(c, kernels_cpu(), max_tokens));
    int rc = model_init(m, c, ctx, max_tokens, max_seqs);
    if (rc) return rc;
    model_init_weights(m, seed, std);
    for (int i = 0; i < m->params.n; i++) {
        TensorSpec *t = &m->params.t[i];
        if (strstr(t->name, "norm") || strstr(t->name, ".bias")) {
            float *d = t->data;
            for (int64_t j = 0; j < t->numel; j++)
                d[j] += 0.2f * (float)rng_normal(seed + 7, (uint64_t)i, (uint64_t)j);
        }
    }
    return 0;
}

static inline void fixture_tokens(int *tok, int n, int V, uint64_t seed) {
    for (int i = 0; i < n; i++) tok[i] = (int)(rng_uniform(seed, 99, (uint64_t)i) * V) % V;
}

#endif
