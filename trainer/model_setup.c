/* trainer/model_setup.c: see model_setup.h. */
#include "trainer/model_setup.h"

#include <string.h>

#include "core/error.h"
#include "core/log.h"

int run_config_model_config(const RunConfig *rc, ModelConfig *cfg) {
    ModelFamily fam = strcmp(rc->family, "qwen2") == 0   ? MODEL_QWEN2
                      : strcmp(rc->family, "llama") == 0 ? MODEL_LLAMA
                                                         : MODEL_MINIMAX;
    model_config_defaults(cfg, fam);
    cfg->vocab_size = rc->vocab_size;
    cfg->hidden_size = rc->hidden_size;
    cfg->intermediate_size = rc->intermediate_size;
    cfg->num_hidden_layers = rc->num_layers;
    cfg->num_attention_heads = rc->num_heads;
    cfg->num_key_value_heads = rc->num_kv_heads;
    cfg->head_dim = rc->head_dim;
    cfg->rotary_dim = rc->head_dim;
    cfg->rope_theta = (float)rc->rope_theta;
    cfg->tie_word_embeddings = rc->tie_embeddings;
    cfg->max_position_embeddings = rc->max_seq_len;
    cfg->block_size = rc->block_size;
    cfg->num_local_experts = rc->num_experts;
    cfg->num_experts_per_tok = rc->experts_per_tok;
    if (fam == MODEL_QWEN2) cfg->attention_bias = 1;
    if (rc->num_layers > MODEL_MAX_LAYERS)
        return err_set(ERR_CONFIG, "model.num_layers %d exceeds %d", rc->num_layers, MODEL_MAX_LAYERS);
    for (int l = 0; l < rc->num_layers; l++)
        cfg->layer_types[l] = (l % rc->full_attn_every == rc->full_attn_every - 1) ? LAYER_FULL_ATTENTION
                                                                                  : LAYER_LINEAR_ATTENTION;
    return model_config_validate(cfg);
}

int model_setup(const RunConfig *rc, KernelCtx *ctx, Model *m, int max_tokens, int max_seqs) {
    const KernelOps *ops = strcmp(rc->backend, "cuda") == 0 ? kernels_cuda() : kernels_cpu();
    if (!ops)
        return err_set(ERR_UNSUPPORTED, "run.backend: cuda is not available in this build or on this machine\n"
                       "HINT: build with -DCISPO_CUDA=ON on a machine with a GPU, or set run.backend=cpu");
    kernels_cpu_set_threads(rc->threads);
    ModelConfig cfg;
    int rc_ = 0;
    if (rc->model_path[0]) {
        char path[1100];
        snprintf(path, sizeof path, "%s/config.json", rc->model_path);
        if ((rc_ = model_config_load_hf(&cfg, path))) return rc_;
    } else if ((rc_ = run_config_model_config(rc, &cfg))) {
        return rc_;
    }
    kernel_ctx_init(ctx, ops, model_ws_bytes(&cfg, ops, max_tokens));
    ctx->gemm_bf16 = strcmp(rc->precision, "bf16") == 0 || (strcmp(rc->precision, "auto") == 0 && ops != kernels_cpu());
    /* ctx->head_bf16 stays 0: model.lm_head_dtype bf16 applies to generation only (GenParams.head_bf16) */
    if (rc->model_path[0]) {
        rc_ = model_load_hf(m, rc->model_path, ctx, max_tokens, max_seqs);
    } else {
        rc_ = model_init(m, &cfg, ctx, max_tokens, max_seqs);
        if (rc_ == 0) model_init_weights(m, (uint64_t)rc->seed, (float)rc->init_std);
    }
    if (rc_) {
        kernel_ctx_free(ctx);
        return rc_;
    }
    log_info("model: %s, %d layers, hidden %d, %zu parameters (%.2f M), backend %s, body %s, LM head %s",
             model_family_name(cfg.family), cfg.num_hidden_layers, cfg.hidden_size, m->n_params, m->n_params / 1e6,
             ops->name, ctx->gemm_bf16 ? "bf16" : "fp32", strcmp(rc->lm_head_dtype, "bf16") == 0 ? "bf16 logits in generation" : "fp32");
    return 0;
}
