/* model/model_config_minimax.c: the original MiniMax-Text-01 / MiniMax-M1 config.json, the format
 * MiniMaxAI's own modeling code (modeling_minimax_text_01.py, MiniMaxText01Config) reads, mapped
 * onto the same ModelConfig as transformers' MiniMaxForCausalLM.
 *
 * Key mapping (original -> ModelConfig), with the original code's defaults (getattr(..., default)):
 *   attn_type_list[l] (required; 0 lightning, 1 softmax)      -> layer_types[l]
 *   rotary_dim (absent or null: head_dim)                      -> rotary_dim: RoPE on the first
 *       rotary_dim dims of each q/k head, NeoX rotate-half, inv_freq = theta^(-2i/rotary_dim)
 *   postnorm (default false)                                   -> postnorm (residual = normed input)
 *   layernorm_linear_attention_alpha/beta (default 1)          -> linear_attn_alpha/beta_factor
 *   layernorm_full_attention_alpha/beta (default 1)            -> full_attn_alpha/beta_factor
 *   layernorm_mlp_alpha/beta (default 1)                       -> mlp_alpha/beta_factor
 *   rope_theta, num_local_experts, num_experts_per_tok, ...    -> as in transformers' format
 *   shared_intermediate_size > 0 (a shared SwiGLU expert mixed in by a sigmoid coefficient)
 *                                                              -> ERR_UNSUPPORTED (M1 and Text-01 use 0)
 * Weight names are the per-expert layout model_load_hf already reads
 * (block_sparse_moe.experts.{j}.w1/w2/w3, block_sparse_moe.gate); attention names match.
 * Lightning slopes: set format = MODEL_FORMAT_MINIMAX_ORIGINAL (model_lightning_slope follows the
 * original _build_slope_tensor and per-layer factor), which needs num_hidden_layers >= 2 (the
 * original divides by L - 1).
 */
#include <string.h>

#include "core/error.h"
#include "model/model_config_internal.h"

int mc_is_minimax_original(const char *model_type) {
    return strcmp(model_type, "minimax_text_01") == 0 || strcmp(model_type, "minimax_m1") == 0;
}

static int parse_factors(const char *path, const json_t *root, ModelConfig *cfg) {
    int rc = 0;
    rc = rc ? rc : mc_get_float(path, root, "layernorm_linear_attention_alpha", &cfg->linear_attn_alpha_factor);
    rc = rc ? rc : mc_get_float(path, root, "layernorm_linear_attention_beta", &cfg->linear_attn_beta_factor);
    rc = rc ? rc : mc_get_float(path, root, "layernorm_full_attention_alpha", &cfg->full_attn_alpha_factor);
    rc = rc ? rc : mc_get_float(path, root, "layernorm_full_attention_beta", &cfg->full_attn_beta_factor);
    rc = rc ? rc : mc_get_float(path, root, "layernorm_mlp_alpha", &cfg->mlp_alpha_factor);
    rc = rc ? rc : mc_get_float(path, root, "layernorm_mlp_beta", &cfg->mlp_beta_factor);
    return rc;
}

int mc_parse_minimax_original(const char *path, const json_t *root, ModelConfig *cfg) {
    const json_t *atl = json_object_get(root, "attn_type_list");
    if (!atl || json_is_null(atl))
        return err_set(ERR_FORMAT, "%s: the original MiniMax format needs \"attn_type_list\" (0 = lightning, "
                       "1 = softmax attention per layer)", path);
    int rc = mc_parse_minimax_keys(path, root, cfg); /* experts, router, attn_type_list ... */
    if (rc == 0) rc = parse_factors(path, root, cfg);
    cfg->postnorm = 0; /* getattr(config, 'postnorm', False) */
    if (rc == 0) rc = mc_get_bool(path, root, "postnorm", &cfg->postnorm);
    int shared = 0, rdim = 0;
    if (rc == 0) rc = mc_get_int(path, root, "shared_intermediate_size", 0, &shared);
    if (rc == 0) rc = mc_get_int(path, root, "rotary_dim", 1, &rdim);
    if (rc != 0) return rc;
    if (shared > 0)
        return err_set(ERR_UNSUPPORTED,
                       "%s: \"shared_intermediate_size\" is %d; a shared expert is not supported (only 0, as in "
                       "MiniMax-Text-01 and MiniMax-M1)", path, shared);
    cfg->rotary_dim = rdim > 0 ? rdim : cfg->head_dim;
    if (cfg->rotary_dim % 2 != 0 || cfg->rotary_dim > cfg->head_dim)
        return err_set(ERR_FORMAT, "%s: \"rotary_dim\" is %d; expected even and at most head_dim = %d", path,
                       cfg->rotary_dim, cfg->head_dim);
    if (cfg->num_hidden_layers < 2)
        return err_set(ERR_UNSUPPORTED, "%s: \"num_hidden_layers\" is %d; the original MiniMax format needs >= 2 "
                       "(its lightning decay divides by num_hidden_layers - 1)", path, cfg->num_hidden_layers);
    return 0;
}

void mc_add_minimax_original(json_t *o, const ModelConfig *c) {
    json_t *arch = json_array(), *atl = json_array();
    json_array_append_new(arch, json_string("MiniMaxText01ForCausalLM"));
    json_object_set_new(o, "architectures", arch);
    json_object_set_new(o, "model_type", json_string("minimax_text_01"));
    for (int l = 0; l < c->num_hidden_layers; l++)
        json_array_append_new(atl, json_integer(c->layer_types[l] == LAYER_FULL_ATTENTION ? 1 : 0));
    json_object_set_new(o, "attn_type_list", atl);
    json_object_set_new(o, "rotary_dim", json_integer(c->rotary_dim));
    json_object_set_new(o, "rope_theta", mc_json_float(c->rope_theta));
    json_object_set_new(o, "postnorm", json_boolean(c->postnorm));
    json_object_set_new(o, "layernorm_linear_attention_alpha", mc_json_float(c->linear_attn_alpha_factor));
    json_object_set_new(o, "layernorm_linear_attention_beta", mc_json_float(c->linear_attn_beta_factor));
    json_object_set_new(o, "layernorm_full_attention_alpha", mc_json_float(c->full_attn_alpha_factor));
    json_object_set_new(o, "layernorm_full_attention_beta", mc_json_float(c->full_attn_beta_factor));
    json_object_set_new(o, "layernorm_mlp_alpha", mc_json_float(c->mlp_alpha_factor));
    json_object_set_new(o, "layernorm_mlp_beta", mc_json_float(c->mlp_beta_factor));
    json_object_set_new(o, "shared_intermediate_size", json_integer(0));
    json_object_set_new(o, "num_local_experts", json_integer(c->num_local_experts));
    json_object_set_new(o, "num_experts_per_tok", json_integer(c->num_experts_per_tok));
    json_object_set_new(o, "block_size", json_integer(c->block_size));
    json_object_set_new(o, "output_router_logits", json_boolean(c->output_router_logits));
    json_object_set_new(o, "router_aux_loss_coef", mc_json_float(c->router_aux_loss_coef));
    json_object_set_new(o, "router_jitter_noise", mc_json_float(c->router_jitter_noise));
    json_object_set_new(o, "sliding_window", json_null());
}
