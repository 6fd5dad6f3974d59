/* model/model_config.c: Hugging Face config.json <-> ModelConfig (see model_config.h).
 *
 * Defaults, key names and derived values follow transformers 5.17's MiniMaxConfig, Qwen2Config
 * and LlamaConfig:
 *  - head_dim absent or null -> hidden_size / num_attention_heads; num_key_value_heads null ->
 *    num_attention_heads.
 *  - RoPE: "rope_scaling" (legacy) takes precedence over "rope_parameters"; its "rope_type" (or
 *    legacy "type") must be "default"; theta comes from that dict's "rope_theta", else the
 *    top-level "rope_theta", else the class default (MiniMax 1e6, Qwen2 / Llama 1e4).
 *  - None of the three classes reads a partial rotary factor (their RoPE spans the whole head), so
 *    rotary_dim = head_dim; a "partial_rotary_factor" or "rotary_dim" key is ignored with a warning.
 *    (The original MiniMax format, model_type "minimax_text_01" / "minimax_m1", does read
 *    rotary_dim: model_config_minimax.c, dispatched from model_config_load_hf.)
 *  - MiniMax layer types: "layer_types" ("full_attention" | "linear_attention"), else the older
 *    "attn_type_list" (1 = full, 0 = linear), else MiniMaxConfig's default: even layers full, odd
 *    layers linear. "num_experts" is an alias of "num_local_experts" (attribute_map).
 * Every key we know is type-checked; unknown keys are ignored. Unsupported features (sliding
 * windows, RoPE scaling, jitter noise, activations other than SiLU) are ERR_UNSUPPORTED.
 */
#include "model/model_config.h"
#include "model/model_config_internal.h"

#include <errno.h>
#include <jansson.h>
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/error.h"
#include "core/json_util.h"
#include "core/log.h"

static const char *const k_family_names[] = {"minimax", "qwen2", "llama"};
static const char *const k_architectures[] = {"MiniMaxForCausalLM", "Qwen2ForCausalLM", "LlamaForCausalLM"};

const char *model_family_name(ModelFamily f) {
    CHECK(f >= MODEL_MINIMAX && f <= MODEL_LLAMA, "bad ModelFamily %d", (int)f);
    return k_family_names[f];
}

void model_config_defaults(ModelConfig *cfg, ModelFamily family) {
    CHECK(family >= MODEL_MINIMAX && family <= MODEL_LLAMA, "bad ModelFamily %d", (int)family);
    memset(cfg, 0, sizeof(*cfg));
    cfg->family = family;
    cfg->hidden_size = 4096;
    cfg->num_hidden_layers = 32;
    cfg->num_attention_heads = 32;
    cfg->tie_word_embeddings = 0;
    cfg->pad_token_id = -1;
    cfg->full_attn_alpha_factor = cfg->full_attn_beta_factor = 1.0f;
    cfg->linear_attn_alpha_factor = cfg->linear_attn_beta_factor = 1.0f;
    cfg->mlp_alpha_factor = cfg->mlp_beta_factor = 1.0f;
    cfg->lightning_norm_eps = 1e-6f;
    cfg->block_size = 256;
    cfg->postnorm = family == MODEL_MINIMAX;
    if (family == MODEL_MINIMAX) {
        cfg->vocab_size = 32000;
        cfg->intermediate_size = 14336;
        cfg->num_key_value_heads = 8;
        cfg->max_position_embeddings = 4096 * 32;
        cfg->rms_norm_eps = 1e-5f;
        cfg->rope_theta = 1e6f;
        cfg->bos_token_id = 1, cfg->eos_token_id = 2;
        cfg->num_experts_per_tok = 2;
        cfg->num_local_experts = 8;
        cfg->router_aux_loss_coef = 0.001f;
    } else if (family == MODEL_QWEN2) {
        cfg->vocab_size = 151936;
        cfg->intermediate_size = 22016;
        cfg->num_key_value_heads = 32;
        cfg->max_position_embeddings = 32768;
        cfg->rms_norm_eps = 1e-6f;
        cfg->rope_theta = 10000.0f;
        cfg->bos_token_id = -1, cfg->eos_token_id = -1;
        cfg->attention_bias = 1;
    } else {
        cfg->vocab_size = 32000;
        cfg->intermediate_size = 11008;
        cfg->num_key_value_heads = 32; /* None -> num_attention_heads */
        cfg->max_position_embeddings = 2048;
        cfg->rms_norm_eps = 1e-6f;
        cfg->rope_theta = 10000.0f;
        cfg->bos_token_id = 1, cfg->eos_token_id = 2;
    }
    cfg->head_dim = cfg->hidden_size / cfg->num_attention_heads;
    cfg->rotary_dim = cfg->head_dim;
    for (int i = 0; i < cfg->num_hidden_layers; i++)
        cfg->layer_types[i] = family == MODEL_MINIMAX && (i % 2) ? LAYER_LINEAR_ATTENTION : LAYER_FULL_ATTENTION;
}

/* ---------------------------------------------------------------------------------------------
 * Typed getters. Absent (and, where HF allows None, null) keys leave *out unchanged. */


int mc_type_error(const char *path, const char *key, const char *want, const json_t *v) {
    return err_set(ERR_FORMAT, "%s: \"%s\" must be %s, got %s", path, key, want, json_type_name(v));
}

/* Integer in [min, INT_MAX]; null leaves *out unchanged. */
int mc_get_int(const char *path, const json_t *o, const char *key, int min, int *out) {
    const json_t *v = json_object_get(o, key);
    if (!v || json_is_null(v)) return 0;
    if (!json_is_integer(v)) return mc_type_error(path, key, "an integer", v);
    json_int_t x = json_integer_value(v);
    if (x < min || x > INT_MAX)
        return err_set(ERR_FORMAT, "%s: \"%s\" is %lld; expected an integer in [%d, %d]", path, key, (long long)x, min,
                       INT_MAX);
    *out = (int)x;
    return 0;
}

/* Finite number (integer or real). */
int mc_get_float(const char *path, const json_t *o, const char *key, float *out) {
    const json_t *v = json_object_get(o, key);
    if (!v) return 0;
    if (!json_is_number(v)) return mc_type_error(path, key, "a number", v);
    double x = json_number_value(v);
    if (!isfinite(x) || !isfinite((float)x))
        return err_set(ERR_FORMAT, "%s: \"%s\" = %g is not a finite float32", path, key, x);
    *out = (float)x;
    return 0;
}

int mc_get_bool(const char *path, const json_t *o, const char *key, int *out) {
    const json_t *v = json_object_get(o, key);
    if (!v) return 0;
    if (!json_is_boolean(v)) return mc_type_error(path, key, "true or false", v);
    *out = json_is_true(v);
    return 0;
}

/* Token id: integer >= 0, null (-1), or a list of them (the first is kept; HF allows a list of
 * eos ids). */
static int get_token_id(const char *path, const json_t *o, const char *key, int *out) {
    const json_t *v = json_object_get(o, key);
    if (!v) return 0;
    if (json_is_null(v)) {
        *out = -1;
        return 0;
    }
    if (json_is_array(v)) {
        size_t i;
        const json_t *e;
        json_array_foreach(v, i, e) {
            if (!json_is_integer(e) || json_integer_value(e) < 0 || json_integer_value(e) > INT_MAX)
                return err_set(ERR_FORMAT, "%s: \"%s\"[%zu] must be a non-negative integer", path, key, i);
        }
        *out = json_array_size(v) ? (int)json_integer_value(json_array_get(v, 0)) : -1;
        return 0;
    }
    return mc_get_int(path, o, key, 0, out);
}

/* ---------------------------------------------------------------------------------------------
 * Feature checks */

static int check_rope_dict(const char *path, const char *key, const json_t *d, float *theta) {
    if (!json_is_object(d)) return mc_type_error(path, key, "an object or null", d);
    const json_t *t = json_object_get(d, "rope_type");
    if (!t) t = json_object_get(d, "type");
    if (t && !json_is_string(t)) return mc_type_error(path, key, "an object whose \"rope_type\" is a string", t);
    if (t && strcmp(json_string_value(t), "default") != 0)
        return err_set(ERR_UNSUPPORTED,
                       "%s: \"%s\" has rope_type \"%s\"; only \"default\" RoPE is supported (no RoPE scaling)", path,
                       key, json_string_value(t));
    char sub[64];
    snprintf(sub, sizeof(sub), "%s.rope_theta", key);
    const json_t *v = json_object_get(d, "rope_theta");
    if (v && !json_is_number(v)) return mc_type_error(path, sub, "a number", v);
    if (v) *theta = (float)json_number_value(v);
    return 0;
}

/* rope_scaling (legacy, wins when a non-empty dict) / rope_parameters / top-level rope_theta. */
static int parse_rope(const char *path, const json_t *root, ModelConfig *cfg) {
    const json_t *scaling = json_object_get(root, "rope_scaling");
    const json_t *params = json_object_get(root, "rope_parameters");
    const int use_scaling = json_is_object(scaling) && json_object_size(scaling) > 0; /* HF: scaling or params */
    float theta_params = NAN, theta_scaling = NAN; /* NAN: the dict has no rope_theta */
    int rc = mc_get_float(path, root, "rope_theta", &cfg->rope_theta);
    if (rc == 0 && params && !json_is_null(params))
        rc = check_rope_dict(path, "rope_parameters", params, &theta_params);
    if (rc == 0 && scaling && !json_is_null(scaling))
        rc = check_rope_dict(path, "rope_scaling", scaling, &theta_scaling);
    if (rc != 0) return rc;
    if (use_scaling && !isnan(theta_scaling)) cfg->rope_theta = theta_scaling;
    else if (!use_scaling && !isnan(theta_params)) cfg->rope_theta = theta_params;
    /* transformers' MiniMax / Qwen2 / Llama RoPE ignores a partial rotary factor: warn, keep full. */
    float prf = 1.0f;
    int rdim = 0;
    if ((rc = mc_get_float(path, root, "partial_rotary_factor", &prf)) != 0) return rc;
    if (json_is_object(params) && (rc = mc_get_float(path, params, "partial_rotary_factor", &prf)) != 0) return rc;
    if (cfg->format == MODEL_FORMAT_HF && (rc = mc_get_int(path, root, "rotary_dim", 0, &rdim)) != 0) return rc;
    if (cfg->format == MODEL_FORMAT_HF && (prf != 1.0f || rdim != 0))
        log_warn("%s: partial_rotary_factor / rotary_dim ignored: transformers' %s applies RoPE to the whole head",
                 path, k_architectures[cfg->family]);
    return 0;
}

static int parse_layer_types_strings(const char *path, const json_t *lt, ModelConfig *cfg) {
    size_t i;
    const json_t *e;
    json_array_foreach(lt, i, e) {
        if (!json_is_string(e)) return err_set(ERR_FORMAT, "%s: \"layer_types\"[%zu] must be a string", path, i);
        const char *s = json_string_value(e);
        if (strcmp(s, "full_attention") == 0) cfg->layer_types[i] = LAYER_FULL_ATTENTION;
        else if (cfg->family == MODEL_MINIMAX && strcmp(s, "linear_attention") == 0)
            cfg->layer_types[i] = LAYER_LINEAR_ATTENTION;
        else
            return err_set(ERR_UNSUPPORTED, "%s: \"layer_types\"[%zu] is \"%s\"; valid for %s: %s", path, i, s,
                           k_family_names[cfg->family],
                           cfg->family == MODEL_MINIMAX ? "\"full_attention\", \"linear_attention\""
                                                        : "\"full_attention\" (no sliding windows)");
    }
    return 0;
}

/* "layer_types", else (MiniMax) "attn_type_list", else the class default set by defaults(). */
static int parse_layer_types(const char *path, const json_t *root, ModelConfig *cfg) {
    const int L = cfg->num_hidden_layers;
    const json_t *lt = json_object_get(root, "layer_types");
    const json_t *atl = cfg->family == MODEL_MINIMAX ? json_object_get(root, "attn_type_list") : NULL;
    const char *key = lt && !json_is_null(lt) ? "layer_types" : "attn_type_list";
    const json_t *v = lt && !json_is_null(lt) ? lt : atl;
    for (int i = 0; i < L; i++) /* the class default, for the (possibly new) layer count */
        cfg->layer_types[i] = cfg->family == MODEL_MINIMAX && (i % 2) ? LAYER_LINEAR_ATTENTION : LAYER_FULL_ATTENTION;
    if (!v || json_is_null(v)) return 0;
    if (!json_is_array(v)) return mc_type_error(path, key, "an array", v);
    if (json_array_size(v) != (size_t)L)
        return err_set(ERR_UNSUPPORTED, "%s: \"%s\" has %zu entries but num_hidden_layers is %d", path, key,
                       json_array_size(v), L);
    if (v == lt) return parse_layer_types_strings(path, lt, cfg);
    size_t i;
    const json_t *e;
    json_array_foreach(atl, i, e) {
        json_int_t x = json_is_integer(e) ? json_integer_value(e) : -1;
        if (x != 0 && x != 1)
            return err_set(ERR_FORMAT, "%s: \"attn_type_list\"[%zu] must be 0 (linear) or 1 (full attention)", path,
                           i);
        cfg->layer_types[i] = x == 1 ? LAYER_FULL_ATTENTION : LAYER_LINEAR_ATTENTION;
    }
    return 0;
}

/* ---------------------------------------------------------------------------------------------
 * Loading */

int mc_parse_common(const char *path, const json_t *root, ModelConfig *cfg) {
    int rc = 0, head_dim = 0, kvh = -1;
    rc = rc ? rc : mc_get_int(path, root, "vocab_size", 0, &cfg->vocab_size);
    rc = rc ? rc : mc_get_int(path, root, "hidden_size", 0, &cfg->hidden_size);
    rc = rc ? rc : mc_get_int(path, root, "intermediate_size", 0, &cfg->intermediate_size);
    rc = rc ? rc : mc_get_int(path, root, "num_hidden_layers", 0, &cfg->num_hidden_layers);
    rc = rc ? rc : mc_get_int(path, root, "num_attention_heads", 0, &cfg->num_attention_heads);
    rc = rc ? rc : mc_get_int(path, root, "num_key_value_heads", 0, &kvh);
    rc = rc ? rc : mc_get_int(path, root, "head_dim", 0, &head_dim);
    rc = rc ? rc : mc_get_int(path, root, "max_position_embeddings", 0, &cfg->max_position_embeddings);
    rc = rc ? rc : mc_get_float(path, root, "rms_norm_eps", &cfg->rms_norm_eps);
    rc = rc ? rc : mc_get_bool(path, root, "tie_word_embeddings", &cfg->tie_word_embeddings);
    rc = rc ? rc : get_token_id(path, root, "bos_token_id", &cfg->bos_token_id);
    rc = rc ? rc : get_token_id(path, root, "eos_token_id", &cfg->eos_token_id);
    rc = rc ? rc : get_token_id(path, root, "pad_token_id", &cfg->pad_token_id);
    if (rc != 0) return rc;
    const json_t *act = json_object_get(root, "hidden_act");
    if (act && !json_is_string(act)) return mc_type_error(path, "hidden_act", "a string", act);
    if (act && strcmp(json_string_value(act), "silu") != 0)
        return err_set(ERR_UNSUPPORTED, "%s: \"hidden_act\" is \"%s\"; only \"silu\" is supported", path,
                       json_string_value(act));
    if (cfg->family == MODEL_LLAMA && kvh < 0) kvh = cfg->num_attention_heads; /* LlamaConfig: None */
    const json_t *kv = json_object_get(root, "num_key_value_heads");
    cfg->num_key_value_heads = kv && json_is_null(kv) ? cfg->num_attention_heads
                               : kvh >= 0             ? kvh
                                                      : cfg->num_key_value_heads;
    if (head_dim == 0 && json_object_get(root, "head_dim") && !json_is_null(json_object_get(root, "head_dim")))
        return err_set(ERR_FORMAT, "%s: \"head_dim\" must be positive", path);
    cfg->head_dim = head_dim ? head_dim : cfg->num_attention_heads ? cfg->hidden_size / cfg->num_attention_heads : 0;
    cfg->rotary_dim = cfg->head_dim;
    if (cfg->num_hidden_layers > MODEL_MAX_LAYERS)
        return err_set(ERR_UNSUPPORTED, "%s: \"num_hidden_layers\" is %d; at most MODEL_MAX_LAYERS = %d", path,
                       cfg->num_hidden_layers, MODEL_MAX_LAYERS);
    return parse_rope(path, root, cfg);
}

int mc_parse_minimax_keys(const char *path, const json_t *root, ModelConfig *cfg) {
    const json_t *sw = json_object_get(root, "sliding_window");
    if (sw && !json_is_null(sw))
        return err_set(ERR_UNSUPPORTED, "%s: \"sliding_window\" must be null for minimax (sliding windows are not "
                       "supported)", path);
    int alias = -1, rc = 0;
    rc = rc ? rc : mc_get_int(path, root, "num_local_experts", 0, &cfg->num_local_experts);
    rc = rc ? rc : mc_get_int(path, root, "num_experts", 0, &alias);
    rc = rc ? rc : mc_get_int(path, root, "num_experts_per_tok", 0, &cfg->num_experts_per_tok);
    rc = rc ? rc : mc_get_int(path, root, "block_size", 0, &cfg->block_size);
    rc = rc ? rc : mc_get_bool(path, root, "output_router_logits", &cfg->output_router_logits);
    rc = rc ? rc : mc_get_float(path, root, "router_aux_loss_coef", &cfg->router_aux_loss_coef);
    rc = rc ? rc : mc_get_float(path, root, "router_jitter_noise", &cfg->router_jitter_noise);
    rc = rc ? rc : mc_get_float(path, root, "full_attn_alpha_factor", &cfg->full_attn_alpha_factor);
    rc = rc ? rc : mc_get_float(path, root, "full_attn_beta_factor", &cfg->full_attn_beta_factor);
    rc = rc ? rc : mc_get_float(path, root, "linear_attn_alpha_factor", &cfg->linear_attn_alpha_factor);
    rc = rc ? rc : mc_get_float(path, root, "linear_attn_beta_factor", &cfg->linear_attn_beta_factor);
    rc = rc ? rc : mc_get_float(path, root, "mlp_alpha_factor", &cfg->mlp_alpha_factor);
    rc = rc ? rc : mc_get_float(path, root, "mlp_beta_factor", &cfg->mlp_beta_factor);
    if (rc != 0) return rc;
    if (alias >= 0) {
        if (json_object_get(root, "num_local_experts") && alias != cfg->num_local_experts)
            return err_set(ERR_FORMAT, "%s: \"num_experts\" (%d) and \"num_local_experts\" (%d) disagree", path,
                           alias, cfg->num_local_experts);
        cfg->num_local_experts = alias;
    }
    if (cfg->router_jitter_noise != 0.0f)
        return err_set(ERR_UNSUPPORTED, "%s: \"router_jitter_noise\" is %g; only 0 is supported", path,
                       (double)cfg->router_jitter_noise);
    return parse_layer_types(path, root, cfg);
}

static int parse_dense(const char *path, const json_t *root, ModelConfig *cfg) {
    int flag = 0, ignored = 0, rc = 0;
    if (cfg->family == MODEL_QWEN2) {
        rc = rc ? rc : mc_get_bool(path, root, "use_sliding_window", &flag);
        rc = rc ? rc : mc_get_int(path, root, "sliding_window", 0, &ignored);
        rc = rc ? rc : mc_get_int(path, root, "max_window_layers", 0, &ignored);
        if (rc != 0) return rc;
        if (flag)
            return err_set(ERR_UNSUPPORTED, "%s: \"use_sliding_window\" is true; sliding windows are not supported",
                           path);
        cfg->attention_bias = 1;
        return parse_layer_types(path, root, cfg);
    }
    rc = mc_get_bool(path, root, "attention_bias", &cfg->attention_bias);
    if (rc == 0) rc = mc_get_bool(path, root, "mlp_bias", &flag);
    if (rc == 0 && flag)
        rc = err_set(ERR_UNSUPPORTED, "%s: \"mlp_bias\" is true; MLP biases are not supported", path);
    for (int i = 0; i < cfg->num_hidden_layers; i++) cfg->layer_types[i] = LAYER_FULL_ATTENTION;
    return rc;
}

int model_config_load_hf(ModelConfig *cfg, const char *path) {
    json_error_t jerr;
    json_t *root = json_load_file(path, JSON_REJECT_DUPLICATES, &jerr);
    if (!root) {
        if (json_error_code(&jerr) == json_error_cannot_open_file)
            return err_set(access(path, F_OK) == 0 ? ERR_IO : ERR_NOTFOUND, "%s: %s", path, jerr.text);
        return err_set(ERR_FORMAT, "%s:%d:%d: invalid JSON: %s", path, jerr.line, jerr.column, jerr.text);
    }
    int rc = 0;
    const json_t *mt = json_object_get(root, "model_type");
    if (!json_is_object(root)) rc = err_set(ERR_FORMAT, "%s: expected a JSON object", path);
    else if (!mt) rc = err_set(ERR_FORMAT, "%s: missing \"model_type\"", path);
    else if (!json_is_string(mt)) rc = mc_type_error(path, "model_type", "a string", mt);
    if (rc != 0) goto done;
    int fam = -1;
    const int original = mc_is_minimax_original(json_string_value(mt));
    for (int f = 0; f <= MODEL_LLAMA; f++)
        if (strcmp(json_string_value(mt), k_family_names[f]) == 0) fam = f;
    if (original) fam = MODEL_MINIMAX;
    if (fam < 0) {
        rc = err_set(ERR_UNSUPPORTED,
                     "%s: \"model_type\" is \"%s\"; supported: \"minimax\", \"qwen2\", \"llama\", and the original "
                     "MiniMax \"minimax_text_01\" / \"minimax_m1\"", path, json_string_value(mt));
        goto done;
    }
    model_config_defaults(cfg, (ModelFamily)fam);
    if (original) cfg->format = MODEL_FORMAT_MINIMAX_ORIGINAL;
    rc = mc_parse_common(path, root, cfg);
    if (rc == 0 && original) rc = mc_parse_minimax_original(path, root, cfg);
    else if (rc == 0) rc = fam == MODEL_MINIMAX ? mc_parse_minimax_keys(path, root, cfg) : parse_dense(path, root, cfg);
    if (rc == 0 && (rc = model_config_validate(cfg)) != 0) err_wrap(rc, "%s", path);
done:
    json_decref(root);
    return rc;
}

/* ---------------------------------------------------------------------------------------------
 * Saving */

/* The shortest decimal that reads back as f, as a double (so "1e-05" rather than 9.99999975e-06). */
json_t *mc_json_float(float f) {
    char buf[32];
    for (int p = 1; p <= 9; p++) {
        snprintf(buf, sizeof(buf), "%.*g", p, (double)f);
        if (strtof(buf, NULL) == f) break;
    }
    return json_real(strtod(buf, NULL));
}

static json_t *json_token(int id) { return id < 0 ? json_null() : json_integer(id); }

void mc_add_common(json_t *o, const ModelConfig *c) {
    json_t *rope = json_object();
    json_object_set_new(o, "vocab_size", json_integer(c->vocab_size));
    json_object_set_new(o, "hidden_size", json_integer(c->hidden_size));
    json_object_set_new(o, "intermediate_size", json_integer(c->intermediate_size));
    json_object_set_new(o, "num_hidden_layers", json_integer(c->num_hidden_layers));
    json_object_set_new(o, "num_attention_heads", json_integer(c->num_attention_heads));
    json_object_set_new(o, "num_key_value_heads", json_integer(c->num_key_value_heads));
    json_object_set_new(o, "head_dim", json_integer(c->head_dim));
    json_object_set_new(o, "hidden_act", json_string("silu"));
    json_object_set_new(o, "max_position_embeddings", json_integer(c->max_position_embeddings));
    json_object_set_new(o, "rms_norm_eps", mc_json_float(c->rms_norm_eps));
    json_object_set_new(o, "tie_word_embeddings", json_boolean(c->tie_word_embeddings));
    json_object_set_new(o, "bos_token_id", json_token(c->bos_token_id));
    json_object_set_new(o, "eos_token_id", json_token(c->eos_token_id));
    json_object_set_new(o, "pad_token_id", json_token(c->pad_token_id));
    json_object_set_new(rope, "rope_type", json_string("default"));
    json_object_set_new(rope, "rope_theta", mc_json_float(c->rope_theta));
    json_object_set_new(o, "rope_parameters", rope);
    json_object_set_new(o, "torch_dtype", json_string("float32"));
}

static void add_family(json_t *o, const ModelConfig *c) {
    if (c->family == MODEL_LLAMA) {
        json_object_set_new(o, "attention_bias", json_boolean(c->attention_bias));
        json_object_set_new(o, "mlp_bias", json_false());
        return;
    }
    json_t *lt = json_array();
    for (int i = 0; i < c->num_hidden_layers; i++)
        json_array_append_new(lt, json_string(c->layer_types[i] == LAYER_LINEAR_ATTENTION ? "linear_attention"
                                                                                          : "full_attention"));
    json_object_set_new(o, "layer_types", lt);
    json_object_set_new(o, "sliding_window", json_null());
    if (c->family == MODEL_QWEN2) {
        json_object_set_new(o, "use_sliding_window", json_false());
        return;
    }
    json_object_set_new(o, "block_size", json_integer(c->block_size));
    json_object_set_new(o, "num_local_experts", json_integer(c->num_local_experts));
    json_object_set_new(o, "num_experts_per_tok", json_integer(c->num_experts_per_tok));
    json_object_set_new(o, "output_router_logits", json_boolean(c->output_router_logits));
    json_object_set_new(o, "router_aux_loss_coef", mc_json_float(c->router_aux_loss_coef));
    json_object_set_new(o, "router_jitter_noise", mc_json_float(c->router_jitter_noise));
    json_object_set_new(o, "full_attn_alpha_factor", mc_json_float(c->full_attn_alpha_factor));
    json_object_set_new(o, "full_attn_beta_factor", mc_json_float(c->full_attn_beta_factor));
    json_object_set_new(o, "linear_attn_alpha_factor", mc_json_float(c->linear_attn_alpha_factor));
    json_object_set_new(o, "linear_attn_beta_factor", mc_json_float(c->linear_attn_beta_factor));
    json_object_set_new(o, "mlp_alpha_factor", mc_json_float(c->mlp_alpha_factor));
    json_object_set_new(o, "mlp_beta_factor", mc_json_float(c->mlp_beta_factor));
}

int model_config_save_hf(const ModelConfig *cfg, const char *path) {
    int rc = model_config_validate(cfg);
    if (rc != 0) return err_wrap(rc, "not saving %s", path);
    if (cfg->format == MODEL_FORMAT_HF && cfg->rotary_dim != cfg->head_dim)
        return err_set(ERR_UNSUPPORTED,
                       "%s: rotary_dim %d != head_dim %d has no transformers equivalent (its %s RoPE spans the "
                       "whole head)",
                       path, cfg->rotary_dim, cfg->head_dim, k_architectures[cfg->family]);
    json_t *o = json_object();
    if (cfg->format == MODEL_FORMAT_MINIMAX_ORIGINAL) {
        mc_add_minimax_original(o, cfg);
        mc_add_common(o, cfg);
    } else {
        json_t *arch = json_array();
        json_array_append_new(arch, json_string(k_architectures[cfg->family]));
        json_object_set_new(o, "architectures", arch);
        json_object_set_new(o, "model_type", json_string(k_family_names[cfg->family]));
        mc_add_common(o, cfg);
        add_family(o, cfg);
    }
    char *text = json_dumps(o, JSON_INDENT(2) | JSON_REAL_PRECISION(9));
    json_decref(o);
    CHECK(text != NULL, "json_dumps failed");
    size_t n = strlen(path) + 32, len = strlen(text);
    char *tmp = malloc(n);
    CHECK(tmp != NULL, "out of memory");
    snprintf(tmp, n, "%s.tmp.%ld", path, (long)getpid());
    FILE *f = fopen(tmp, "wb");
    int ok = f && fwrite(text, 1, len, f) == len && fputc('\n', f) != EOF && fflush(f) == 0 && fsync(fileno(f)) == 0;
    int saved = errno;
    if (f && fclose(f) != 0) ok = 0;
    if (ok && rename(tmp, path) != 0) ok = 0, saved = errno;
    if (!ok) {
        unlink(tmp);
        rc = err_set(ERR_IO, "%s: cannot write: %s", path, strerror(saved));
    }
    free(tmp);
    free(text);
    return rc;
}

/* ---------------------------------------------------------------------------------------------
 * Validation and parameter count */

#define REQUIRE(cond, ...)                                                                                    \
    do {                                                                                                      \
        if (!(cond)) return err_set(ERR_CONFIG, __VA_ARGS__);                                                 \
    } while (0)

static int validate_minimax(const ModelConfig *c) {
    REQUIRE(c->num_local_experts >= 1, "model config: num_local_experts is %d; expected >= 1", c->num_local_experts);
    REQUIRE(c->num_experts_per_tok >= 1 && c->num_experts_per_tok <= c->num_local_experts,
            "model config: num_experts_per_tok is %d; expected 1..num_local_experts (%d)", c->num_experts_per_tok,
            c->num_local_experts);
    REQUIRE(c->block_size >= 1, "model config: block_size is %d; expected >= 1", c->block_size);
    REQUIRE(c->router_jitter_noise == 0.0f, "model config: router_jitter_noise must be 0");
    REQUIRE(isfinite(c->router_aux_loss_coef) && c->router_aux_loss_coef >= 0.0f,
            "model config: router_aux_loss_coef must be finite and >= 0");
    const float f[6] = {c->full_attn_alpha_factor,   c->full_attn_beta_factor, c->linear_attn_alpha_factor,
                        c->linear_attn_beta_factor, c->mlp_alpha_factor,      c->mlp_beta_factor};
    for (int i = 0; i < 6; i++) REQUIRE(isfinite(f[i]), "model config: alpha/beta residual factors must be finite");
    return 0;
}

int model_config_validate(const ModelConfig *c) {
    REQUIRE(c->family >= MODEL_MINIMAX && c->family <= MODEL_LLAMA, "model config: unknown family %d", (int)c->family);
    const struct { const char *name; int v; } pos[] = {
        {"vocab_size", c->vocab_size},
        {"hidden_size", c->hidden_size},
        {"intermediate_size", c->intermediate_size},
        {"num_hidden_layers", c->num_hidden_layers},
        {"num_attention_heads", c->num_attention_heads},
        {"num_key_value_heads", c->num_key_value_heads},
        {"head_dim", c->head_dim},
        {"max_position_embeddings", c->max_position_embeddings},
    };
    for (size_t i = 0; i < sizeof(pos) / sizeof(pos[0]); i++)
        REQUIRE(pos[i].v > 0, "model config: %s is %d; expected > 0", pos[i].name, pos[i].v);
    REQUIRE(c->num_hidden_layers <= MODEL_MAX_LAYERS, "model config: num_hidden_layers is %d; at most %d",
            c->num_hidden_layers, MODEL_MAX_LAYERS);
    REQUIRE(c->num_attention_heads % c->num_key_value_heads == 0,
            "model config: num_attention_heads (%d) must be divisible by num_key_value_heads (%d)",
            c->num_attention_heads, c->num_key_value_heads);
    REQUIRE(c->head_dim % 2 == 0, "model config: head_dim is %d; expected even (RoPE rotates pairs)", c->head_dim);
    REQUIRE(c->rotary_dim > 0 && c->rotary_dim % 2 == 0 && c->rotary_dim <= c->head_dim,
            "model config: rotary_dim is %d; expected even and in [2, head_dim = %d]", c->rotary_dim, c->head_dim);
    REQUIRE(c->rms_norm_eps > 0.0f && isfinite(c->rms_norm_eps), "model config: rms_norm_eps must be > 0");
    REQUIRE(c->lightning_norm_eps > 0.0f && isfinite(c->lightning_norm_eps),
            "model config: lightning_norm_eps must be > 0");
    REQUIRE(c->rope_theta > 0.0f && isfinite(c->rope_theta), "model config: rope_theta must be > 0");
    const struct { const char *name; int v; } tok[] = {
        {"bos_token_id", c->bos_token_id}, {"eos_token_id", c->eos_token_id}, {"pad_token_id", c->pad_token_id}};
    for (int i = 0; i < 3; i++)
        REQUIRE(tok[i].v >= -1 && tok[i].v < c->vocab_size, "model config: %s is %d; expected -1 or in [0, %d)",
                tok[i].name, tok[i].v, c->vocab_size);
    for (int i = 0; i < c->num_hidden_layers; i++) {
        LayerType t = c->layer_types[i];
        REQUIRE(t == LAYER_FULL_ATTENTION || (t == LAYER_LINEAR_ATTENTION && c->family == MODEL_MINIMAX),
                "model config: layer_types[%d] is %d; %s", i, (int)t,
                c->family == MODEL_MINIMAX ? "expected full (0) or linear (1) attention"
                                           : "dense models have full attention only");
    }
    REQUIRE(c->format == MODEL_FORMAT_HF || (c->format == MODEL_FORMAT_MINIMAX_ORIGINAL && c->family == MODEL_MINIMAX),
            "model config: format %d is not valid for family %s", (int)c->format, k_family_names[c->family]);
    REQUIRE(c->format != MODEL_FORMAT_HF || c->postnorm == (c->family == MODEL_MINIMAX),
            "model config: postnorm = %d has no transformers %s equivalent (%s)", c->postnorm,
            k_architectures[c->family], c->family == MODEL_MINIMAX ? "it always uses the post-norm residual"
                                                                   : "it is pre-norm");
    REQUIRE(c->format != MODEL_FORMAT_MINIMAX_ORIGINAL || c->num_hidden_layers >= 2,
            "model config: the original MiniMax format needs num_hidden_layers >= 2 (got %d)", c->num_hidden_layers);
    return c->family == MODEL_MINIMAX ? validate_minimax(c) : 0;
}

long long model_config_num_params(const ModelConfig *c) {
    const long long V = c->vocab_size, C = c->hidden_size, F = c->intermediate_size;
    const long long NH = c->num_attention_heads, HS = c->head_dim, KVH = c->num_key_value_heads;
    const long long E = c->num_local_experts, A = NH * HS;
    long long n = V * C + (c->tie_word_embeddings ? 0 : V * C) + C; /* embeddings, lm_head, final norm */
    for (int l = 0; l < c->num_hidden_layers; l++) {
        long long layer = 2 * C; /* input and post-attention norms */
        if (c->family == MODEL_MINIMAX && c->layer_types[l] == LAYER_LINEAR_ATTENTION)
            layer += 3 * A * C + C * A + A * C + A; /* qkv, out, gate, output norm */
        else
            layer += A * C + 2 * KVH * HS * C + C * A; /* q, k, v, o */
        if (c->attention_bias) layer += A + 2 * KVH * HS;             /* q/k/v biases */
        if (c->family == MODEL_LLAMA && c->attention_bias) layer += C; /* LlamaAttention's o_proj bias */
        layer += c->family == MODEL_MINIMAX ? E * C + E * 3 * F * C : 3 * F * C;
        n += layer;
    }
    return n;
}
