/* model/model_config.h: the policy network's architecture, with the semantics of Hugging Face
 * `config.json` for MiniMaxForCausalLM (model_type "minimax") and Qwen2ForCausalLM /
 * LlamaForCausalLM (model_type "qwen2" / "llama"), as transformers 5.17 reads them, and of the
 * original MiniMax-Text-01 / MiniMax-M1 config.json (model_type "minimax_text_01" / "minimax_m1",
 * read by MiniMaxAI's own modeling code; model/model_config_minimax.c), mapped onto the same model.
 *
 * model_config_load_hf() parses config.json (jansson); model_config_save_hf() writes one that
 * transformers can load; model_config_validate() checks every field and names what is wrong.
 */
#ifndef CISPO_MODEL_CONFIG_H
#define CISPO_MODEL_CONFIG_H

#define MODEL_MAX_LAYERS 256

typedef enum { MODEL_MINIMAX = 0, MODEL_QWEN2 = 1, MODEL_LLAMA = 2 } ModelFamily;
typedef enum { LAYER_FULL_ATTENTION = 0, LAYER_LINEAR_ATTENTION = 1 } LayerType;
/* Which config.json dialect the config came from (and is saved in). The original MiniMax format
 * also changes two formulas: lightning slopes follow MiniMax's _build_slope_tensor (ALiBi with the
 * interleave rule for a head count that is not a power of two) times (1 - l/(L-1) + 1e-5). */
typedef enum { MODEL_FORMAT_HF = 0, MODEL_FORMAT_MINIMAX_ORIGINAL = 1 } ModelConfigFormat;

typedef struct {
    ModelFamily family;
    ModelConfigFormat format;
    int vocab_size;          /* V */
    int hidden_size;         /* C */
    int intermediate_size;   /* F: expert width (MiniMax) or MLP width (dense) */
    int num_hidden_layers;   /* L */
    int num_attention_heads; /* NH */
    int num_key_value_heads; /* KVH (full attention only) */
    int head_dim;            /* HS (config "head_dim", else C / NH) */
    int rotary_dim;          /* dims of each head that RoPE rotates (the first rotary_dim; even,
                                <= HS): HS in transformers' formats (they ignore partial rotary
                                keys); the original MiniMax format's "rotary_dim" (M1: 64 of 128) */
    float rms_norm_eps;
    float rope_theta;        /* rope_parameters.rope_theta, or top-level rope_theta */
    int tie_word_embeddings;
    int max_position_embeddings;
    int bos_token_id, eos_token_id, pad_token_id; /* -1 when absent */

    /* dense (qwen2 / llama) */
    int attention_bias; /* q/k/v projections have biases (qwen2: always; llama: attention_bias) */

    /* MiniMax */
    LayerType layer_types[MODEL_MAX_LAYERS]; /* "layer_types" or the older "attn_type_list" (1 = full) */
    int block_size;                           /* lightning block length (HF default 256) */
    int num_local_experts;                    /* E */
    int num_experts_per_tok;                  /* K */
    float router_aux_loss_coef;
    float router_jitter_noise; /* must be 0 (we do not implement jitter) */
    int output_router_logits;  /* HF adds coef * aux to the loss when true */
    float full_attn_alpha_factor, full_attn_beta_factor;
    float linear_attn_alpha_factor, linear_attn_beta_factor;
    float mlp_alpha_factor, mlp_beta_factor;
    float lightning_norm_eps; /* 1e-6: HF builds the lightning output norm with its default eps */
    int postnorm;             /* residuals carry the normed tensor (DeepNorm-style): 1 for MiniMax in
                                 transformers; the original format's "postnorm" (default false); 0 dense */
} ModelConfig;

/* Fill `cfg` with the defaults transformers uses for `family` (MiniMaxConfig() etc.). */
void model_config_defaults(ModelConfig *cfg, ModelFamily family);
/* Parse `path` (a config.json). Unknown keys are ignored (HF configs carry many); missing
 * required keys, wrong types, unsupported features (sliding windows, rope scaling other than
 * "default", jitter noise) are errors naming the file and key. Returns 0 or ERR_*. */
int model_config_load_hf(ModelConfig *cfg, const char *path);
/* Write a config.json that transformers 5.17 loads as the same model (or, for
 * MODEL_FORMAT_MINIMAX_ORIGINAL, one MiniMaxAI's modeling code loads). Returns 0 or ERR_*. */
int model_config_save_hf(const ModelConfig *cfg, const char *path);
/* Check ranges and consistency (heads divide, rotary_dim even, layer types valid...). */
int model_config_validate(const ModelConfig *cfg);
/* Number of parameters (all, counting each expert). */
long long model_config_num_params(const ModelConfig *cfg);
const char *model_family_name(ModelFamily f); /* "minimax", "qwen2", "llama" */

#endif
