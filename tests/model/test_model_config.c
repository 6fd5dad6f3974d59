/* tests/model/test_model_config.c: config.json parsing, defaults, save/load round trip, validation
 * and parameter counts.
 * labels: unit
 *
 * Configs are written as JSON text to a mkdtemp directory under /tmp (removed at the end): one
 * shaped like transformers 5.17 writes for MiniMax (layer_types mixing both kinds,
 * rope_parameters), a legacy MiniMax-Text-01 style one (attn_type_list, top-level rope_theta), a
 * Qwen2.5-0.5B and a Llama-2 style one, then each unsupported or malformed input, checking the
 * ERR_* code and the message. Parameter counts are checked against published totals (Qwen2.5-0.5B:
 * 494,032,768; MiniMax-M1: 456B).
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include "../test_tmpdir.h"

#include <ftw.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/error.h"
#include "model/model_config.h"

static char g_root[64];
static int g_seq;

static char *write_json(const char *text) {
    char *p = malloc(256);
    assert_non_null(p);
    snprintf(p, 256, "%s/%02d_config.json", g_root, g_seq++);
    FILE *f = fopen(p, "wb");
    assert_non_null(f);
    fputs(text, f);
    fclose(f);
    return p;
}

static void load_ok(ModelConfig *cfg, const char *text) {
    char *p = write_json(text);
    int rc = model_config_load_hf(cfg, p);
    if (rc != 0) fail_msg("load failed (%d): %s", rc, err_msg());
    free(p);
}

/* Loading `text` must fail with `code` and a message containing sub1 and (if non-NULL) sub2. */
static void load_fail(const char *text, int code, const char *sub1, const char *sub2) {
    char *p = write_json(text);
    ModelConfig cfg;
    err_clear();
    int rc = model_config_load_hf(&cfg, p);
    if (rc != code) fail_msg("load returned %d, expected %d; message: %s\nconfig: %s", rc, code, err_msg(), text);
    const char *base = strrchr(p, '/') + 1;
    if (!strstr(err_msg(), base)) fail_msg("message \"%s\" does not name the file %s", err_msg(), base);
    if (!strstr(err_msg(), sub1)) fail_msg("message \"%s\" lacks \"%s\"", err_msg(), sub1);
    if (sub2 && !strstr(err_msg(), sub2)) fail_msg("message \"%s\" lacks \"%s\"", err_msg(), sub2);
    free(p);
}

/* ---------------------------------------------------------------------------------------------
 * Loading real-shaped configs */

static const char k_minimax_json[] =
    "{\n"
    "  \"architectures\": [\"MiniMaxForCausalLM\"],\n"
    "  \"attention_dropout\": 0.0,\n"
    "  \"block_size\": 64,\n"
    "  \"bos_token_id\": 1,\n"
    "  \"dtype\": \"bfloat16\",\n"
    "  \"eos_token_id\": [2, 5],\n"
    "  \"full_attn_alpha_factor\": 1.6817928305074292,\n"
    "  \"full_attn_beta_factor\": 1.0,\n"
    "  \"head_dim\": 16,\n"
    "  \"hidden_act\": \"silu\",\n"
    "  \"hidden_size\": 64,\n"
    "  \"initializer_range\": 0.02,\n"
    "  \"intermediate_size\": 96,\n"
    "  \"layer_types\": [\"linear_attention\", \"linear_attention\", \"linear_attention\", \"full_attention\"],\n"
    "  \"linear_attn_alpha_factor\": 1.6817928305074292,\n"
    "  \"linear_attn_beta_factor\": 1,\n"
    "  \"max_position_embeddings\": 4096,\n"
    "  \"mlp_alpha_factor\": 1.6817928305074292,\n"
    "  \"mlp_beta_factor\": 1.0,\n"
    "  \"model_type\": \"minimax\",\n"
    "  \"num_attention_heads\": 4,\n"
    "  \"num_experts_per_tok\": 2,\n"
    "  \"num_hidden_layers\": 4,\n"
    "  \"num_key_value_heads\": 2,\n"
    "  \"num_local_experts\": 4,\n"
    "  \"output_router_logits\": true,\n"
    "  \"pad_token_id\": null,\n"
    "  \"rms_norm_eps\": 1e-05,\n"
    "  \"rope_parameters\": {\"rope_theta\": 10000000.0, \"rope_type\": \"default\"},\n"
    "  \"router_aux_loss_coef\": 0.001,\n"
    "  \"router_jitter_noise\": 0.0,\n"
    "  \"sliding_window\": null,\n"
    "  \"tie_word_embeddings\": false,\n"
    "  \"transformers_version\": \"5.17.0\",\n"
    "  \"use_cache\": true,\n"
    "  \"vocab_size\": 128\n"
    "}\n";

static void test_minimax_transformers_style(void **state) {
    (void)state;
    ModelConfig c;
    load_ok(&c, k_minimax_json);
    assert_int_equal(c.family, MODEL_MINIMAX);
    assert_int_equal(c.vocab_size, 128);
    assert_int_equal(c.hidden_size, 64);
    assert_int_equal(c.intermediate_size, 96);
    assert_int_equal(c.num_hidden_layers, 4);
    assert_int_equal(c.num_attention_heads, 4);
    assert_int_equal(c.num_key_value_heads, 2);
    assert_int_equal(c.head_dim, 16);
    assert_int_equal(c.rotary_dim, 16);
    assert_int_equal(c.layer_types[0], LAYER_LINEAR_ATTENTION);
    assert_int_equal(c.layer_types[2], LAYER_LINEAR_ATTENTION);
    assert_int_equal(c.layer_types[3], LAYER_FULL_ATTENTION);
    assert_float_equal(c.rope_theta, 1e7f, 0.0f);
    assert_float_equal(c.rms_norm_eps, 1e-5f, 0.0f);
    assert_float_equal(c.full_attn_alpha_factor, (float)1.6817928305074292, 0.0f);
    assert_float_equal(c.linear_attn_beta_factor, 1.0f, 0.0f);
    assert_float_equal(c.router_aux_loss_coef, 0.001f, 0.0f);
    assert_float_equal(c.lightning_norm_eps, 1e-6f, 0.0f);
    assert_int_equal(c.block_size, 64);
    assert_int_equal(c.num_local_experts, 4);
    assert_int_equal(c.num_experts_per_tok, 2);
    assert_int_equal(c.output_router_logits, 1);
    assert_int_equal(c.tie_word_embeddings, 0);
    assert_int_equal(c.max_position_embeddings, 4096);
    assert_int_equal(c.bos_token_id, 1);
    assert_int_equal(c.eos_token_id, 2); /* the first of the list */
    assert_int_equal(c.pad_token_id, -1);
    assert_int_equal(c.attention_bias, 0);
}

/* MiniMaxConfig() defaults, and its layer_types default: even layers full, odd linear. */
static void test_defaults(void **state) {
    (void)state;
    ModelConfig c;
    load_ok(&c, "{\"model_type\": \"minimax\"}");
    assert_int_equal(c.vocab_size, 32000);
    assert_int_equal(c.hidden_size, 4096);
    assert_int_equal(c.intermediate_size, 14336);
    assert_int_equal(c.num_hidden_layers, 32);
    assert_int_equal(c.num_key_value_heads, 8);
    assert_int_equal(c.head_dim, 128);
    assert_int_equal(c.max_position_embeddings, 131072);
    assert_float_equal(c.rope_theta, 1e6f, 0.0f);
    assert_float_equal(c.rms_norm_eps, 1e-5f, 0.0f);
    assert_int_equal(c.block_size, 256);
    assert_int_equal(c.num_local_experts, 8);
    assert_int_equal(c.num_experts_per_tok, 2);
    assert_int_equal(c.bos_token_id, 1);
    assert_int_equal(c.eos_token_id, 2);
    for (int i = 0; i < 32; i++)
        assert_int_equal(c.layer_types[i], i % 2 ? LAYER_LINEAR_ATTENTION : LAYER_FULL_ATTENTION);
    load_ok(&c, "{\"model_type\": \"minimax\", \"num_hidden_layers\": 3, \"head_dim\": null}");
    assert_int_equal(c.layer_types[0], LAYER_FULL_ATTENTION);
    assert_int_equal(c.layer_types[1], LAYER_LINEAR_ATTENTION);
    assert_int_equal(c.layer_types[2], LAYER_FULL_ATTENTION);

    load_ok(&c, "{\"model_type\": \"qwen2\"}");
    assert_int_equal(c.vocab_size, 151936);
    assert_int_equal(c.intermediate_size, 22016);
    assert_int_equal(c.num_key_value_heads, 32);
    assert_int_equal(c.max_position_embeddings, 32768);
    assert_float_equal(c.rms_norm_eps, 1e-6f, 0.0f);
    assert_float_equal(c.rope_theta, 1e4f, 0.0f);
    assert_int_equal(c.attention_bias, 1);
    assert_int_equal(c.bos_token_id, -1);

    load_ok(&c, "{\"model_type\": \"llama\", \"num_attention_heads\": 16}");
    assert_int_equal(c.num_key_value_heads, 16); /* LlamaConfig: None -> num_attention_heads */
    assert_int_equal(c.head_dim, 256);
    assert_int_equal(c.intermediate_size, 11008);
    assert_int_equal(c.max_position_embeddings, 2048);
    assert_int_equal(c.attention_bias, 0);
    assert_float_equal(c.rope_theta, 1e4f, 0.0f);
}

/* MiniMax-Text-01's original layout: attn_type_list, top-level rope_theta, extra keys. */
static void test_minimax_legacy(void **state) {
    (void)state;
    ModelConfig c;
    load_ok(&c, "{\"model_type\": \"minimax\", \"num_hidden_layers\": 8, \"hidden_size\": 96,"
                " \"num_attention_heads\": 8, \"head_dim\": 12, \"num_key_value_heads\": 1,"
                " \"attn_type_list\": [0, 0, 0, 0, 0, 0, 0, 1], \"rope_theta\": 10000000,"
                " \"rotary_dim\": 64, \"postnorm\": true, \"shared_intermediate_size\": 0,"
                " \"num_experts\": 16, \"layernorm_full_attention_alpha\": 3.5}");
    for (int i = 0; i < 8; i++)
        assert_int_equal(c.layer_types[i], i == 7 ? LAYER_FULL_ATTENTION : LAYER_LINEAR_ATTENTION);
    assert_float_equal(c.rope_theta, 1e7f, 0.0f);
    assert_int_equal(c.head_dim, 12);
    assert_int_equal(c.rotary_dim, 12); /* transformers' MiniMax ignores rotary_dim */
    assert_int_equal(c.num_local_experts, 16);
    /* layer_types wins over attn_type_list (transformers reads only layer_types) */
    load_ok(&c, "{\"model_type\": \"minimax\", \"num_hidden_layers\": 2, \"attn_type_list\": [0, 0],"
                " \"layer_types\": [\"full_attention\", \"full_attention\"]}");
    assert_int_equal(c.layer_types[0], LAYER_FULL_ATTENTION);
    /* a legacy rope_scaling dict (non-empty) wins over rope_parameters */
    load_ok(&c, "{\"model_type\": \"minimax\", \"rope_scaling\": {\"type\": \"default\", \"rope_theta\": 500.0},"
                " \"rope_parameters\": {\"rope_type\": \"default\", \"rope_theta\": 7.0}}");
    assert_float_equal(c.rope_theta, 500.0f, 0.0f);
}

static void test_qwen2(void **state) {
    (void)state;
    ModelConfig c;
    load_ok(&c, "{\"architectures\": [\"Qwen2ForCausalLM\"], \"attention_dropout\": 0.0,"
                " \"bos_token_id\": 151643, \"eos_token_id\": 151643, \"hidden_act\": \"silu\","
                " \"hidden_size\": 896, \"initializer_range\": 0.02, \"intermediate_size\": 4864,"
                " \"max_position_embeddings\": 32768, \"max_window_layers\": 24, \"model_type\": \"qwen2\","
                " \"num_attention_heads\": 14, \"num_hidden_layers\": 24, \"num_key_value_heads\": 2,"
                " \"rms_norm_eps\": 1e-06, \"rope_theta\": 1000000.0, \"sliding_window\": 32768,"
                " \"tie_word_embeddings\": true, \"torch_dtype\": \"bfloat16\", \"use_cache\": true,"
                " \"use_sliding_window\": false, \"vocab_size\": 151936, \"rope_scaling\": null}");
    assert_int_equal(c.family, MODEL_QWEN2);
    assert_int_equal(c.head_dim, 64);
    assert_int_equal(c.rotary_dim, 64);
    assert_int_equal(c.num_key_value_heads, 2);
    assert_int_equal(c.attention_bias, 1);
    assert_int_equal(c.tie_word_embeddings, 1);
    assert_int_equal(c.eos_token_id, 151643);
    assert_float_equal(c.rope_theta, 1e6f, 0.0f);
    for (int i = 0; i < 24; i++) assert_int_equal(c.layer_types[i], LAYER_FULL_ATTENTION);
    /* Qwen2.5-0.5B's published parameter count */
    assert_int_equal(model_config_num_params(&c), 494032768LL);
}

static void test_llama(void **state) {
    (void)state;
    ModelConfig c;
    load_ok(&c, "{\"architectures\": [\"LlamaForCausalLM\"], \"bos_token_id\": 1, \"eos_token_id\": 2,"
                " \"hidden_act\": \"silu\", \"hidden_size\": 2048, \"intermediate_size\": 5632,"
                " \"max_position_embeddings\": 2048, \"model_type\": \"llama\", \"num_attention_heads\": 32,"
                " \"num_hidden_layers\": 22, \"num_key_value_heads\": 4, \"pretraining_tp\": 1,"
                " \"rms_norm_eps\": 1e-05, \"rope_scaling\": null, \"rope_theta\": 10000.0,"
                " \"tie_word_embeddings\": false, \"torch_dtype\": \"bfloat16\", \"vocab_size\": 32000,"
                " \"attention_bias\": false, \"mlp_bias\": false, \"head_dim\": 64}");
    assert_int_equal(c.family, MODEL_LLAMA);
    assert_int_equal(c.head_dim, 64);
    assert_int_equal(c.num_key_value_heads, 4);
    assert_int_equal(c.attention_bias, 0);
    assert_float_equal(c.rms_norm_eps, 1e-5f, 0.0f);
    /* TinyLlama-1.1B's count: 1,100,048,384 */
    assert_int_equal(model_config_num_params(&c), 1100048384LL);
}

/* ---------------------------------------------------------------------------------------------
 * Errors */

static void test_errors(void **state) {
    (void)state;
    load_fail("{\"model_type\": \"minimax\", \"num_hidden_layers\": 2,"
              " \"layer_types\": [\"full_attention\", \"sliding_attention\"]}",
              ERR_UNSUPPORTED, "layer_types\"[1] is \"sliding_attention\"", "\"linear_attention\"");
    load_fail("{\"model_type\": \"mixtral\"}", ERR_UNSUPPORTED, "\"mixtral\"", "\"minimax\", \"qwen2\", \"llama\"");
    load_fail("{\"model_type\": \"minimax\", \"hidden_size\": \"big\"}", ERR_FORMAT,
              "\"hidden_size\" must be an integer", "a string");
    load_fail("{\"model_type\": \"minimax\", \"rms_norm_eps\": \"tiny\"}", ERR_FORMAT, "rms_norm_eps", "a number");
    load_fail("{\"model_type\": \"minimax\", \"tie_word_embeddings\": 1}", ERR_FORMAT, "tie_word_embeddings",
              "true or false");
    load_fail("{\"model_type\": \"minimax\", \"sliding_window\": 4096}", ERR_UNSUPPORTED, "sliding_window", NULL);
    load_fail("{\"model_type\": \"llama\", \"rope_scaling\": {\"type\": \"linear\", \"factor\": 2.0}}",
              ERR_UNSUPPORTED, "rope_scaling", "\"linear\"");
    load_fail("{\"model_type\": \"llama\", \"rope_scaling\": {\"rope_type\": \"llama3\", \"factor\": 8.0}}",
              ERR_UNSUPPORTED, "rope_scaling", "llama3");
    load_fail("{\"model_type\": \"minimax\", \"rope_parameters\": {\"rope_type\": \"yarn\", \"rope_theta\": 1e6}}",
              ERR_UNSUPPORTED, "rope_parameters", "yarn");
    load_fail("{\"model_type\": \"minimax\", \"rope_parameters\": {\"rope_theta\": \"x\"}}", ERR_FORMAT,
              "rope_parameters.rope_theta", NULL);
    load_fail("{\"model_type\": \"minimax\", \"router_jitter_noise\": 0.01}", ERR_UNSUPPORTED, "router_jitter_noise",
              NULL);
    load_fail("{\"model_type\": \"qwen2\", \"hidden_act\": \"gelu\"}", ERR_UNSUPPORTED, "hidden_act", "gelu");
    load_fail("{\"model_type\": \"minimax\", \"num_hidden_layers\": 3, \"layer_types\": [\"full_attention\"]}",
              ERR_UNSUPPORTED, "layer_types", "num_hidden_layers is 3");
    load_fail("{\"model_type\": \"minimax\", \"num_hidden_layers\": 2, \"attn_type_list\": [1, 2]}", ERR_FORMAT,
              "attn_type_list\"[1]", NULL);
    load_fail("{\"model_type\": \"qwen2\", \"use_sliding_window\": true}", ERR_UNSUPPORTED, "use_sliding_window", NULL);
    load_fail("{\"model_type\": \"qwen2\", \"num_hidden_layers\": 2,"
              " \"layer_types\": [\"full_attention\", \"sliding_attention\"]}",
              ERR_UNSUPPORTED, "sliding_attention", NULL);
    load_fail("{\"model_type\": \"llama\", \"mlp_bias\": true}", ERR_UNSUPPORTED, "mlp_bias", NULL);
    load_fail("{\"model_type\": \"minimax\",\n \"hidden_size\": 64,,}", ERR_FORMAT, ":2:", "invalid JSON");
    load_fail("{\"model_type\": \"minimax\", \"num_attention_heads\": -4}", ERR_FORMAT, "num_attention_heads", "-4");
    load_fail("{\"model_type\": \"minimax\", \"num_hidden_layers\": 300}", ERR_UNSUPPORTED, "num_hidden_layers",
              "MODEL_MAX_LAYERS");
    load_fail("{\"hidden_size\": 64}", ERR_FORMAT, "model_type", NULL);
    load_fail("{\"model_type\": \"minimax\", \"num_experts\": 4, \"num_local_experts\": 8}", ERR_FORMAT,
              "num_experts", NULL);
    load_fail("{\"model_type\": \"minimax\", \"model_type\": \"qwen2\"}", ERR_FORMAT, "duplicate", NULL);
    /* semantic errors come from validate, prefixed with the file */
    load_fail("{\"model_type\": \"minimax\", \"num_attention_heads\": 6, \"num_key_value_heads\": 4,"
              " \"hidden_size\": 96}",
              ERR_CONFIG, "num_key_value_heads", NULL);
    load_fail("{\"model_type\": \"minimax\", \"num_experts_per_tok\": 9}", ERR_CONFIG, "num_experts_per_tok", NULL);
    ModelConfig c;
    assert_int_equal(model_config_load_hf(&c, "/nonexistent/cispo/config.json"), ERR_NOTFOUND);
}

static void test_validate(void **state) {
    (void)state;
    ModelConfig c;
    model_config_defaults(&c, MODEL_MINIMAX);
    assert_int_equal(model_config_validate(&c), 0);
    c.head_dim = 63, c.rotary_dim = 62;
    assert_int_equal(model_config_validate(&c), ERR_CONFIG);
    assert_non_null(strstr(err_msg(), "head_dim"));
    model_config_defaults(&c, MODEL_MINIMAX);
    c.rotary_dim = 130;
    assert_int_equal(model_config_validate(&c), ERR_CONFIG);
    assert_non_null(strstr(err_msg(), "rotary_dim"));
    model_config_defaults(&c, MODEL_MINIMAX);
    c.num_hidden_layers = MODEL_MAX_LAYERS + 1;
    assert_int_equal(model_config_validate(&c), ERR_CONFIG);
    assert_non_null(strstr(err_msg(), "num_hidden_layers"));
    model_config_defaults(&c, MODEL_MINIMAX);
    c.block_size = 0;
    assert_int_equal(model_config_validate(&c), ERR_CONFIG);
    assert_non_null(strstr(err_msg(), "block_size"));
    model_config_defaults(&c, MODEL_MINIMAX);
    c.num_experts_per_tok = 0;
    assert_int_equal(model_config_validate(&c), ERR_CONFIG);
    assert_non_null(strstr(err_msg(), "num_experts_per_tok"));
    model_config_defaults(&c, MODEL_QWEN2);
    c.layer_types[3] = LAYER_LINEAR_ATTENTION;
    assert_int_equal(model_config_validate(&c), ERR_CONFIG);
    assert_non_null(strstr(err_msg(), "layer_types[3]"));
    model_config_defaults(&c, MODEL_LLAMA);
    c.intermediate_size = 0;
    assert_int_equal(model_config_validate(&c), ERR_CONFIG);
    assert_non_null(strstr(err_msg(), "intermediate_size"));
    assert_string_equal(model_family_name(MODEL_QWEN2), "qwen2");
}

/* ---------------------------------------------------------------------------------------------
 * Round trip and parameter counts */

static uint32_t fbits(float f) {
    uint32_t u;
    memcpy(&u, &f, 4);
    return u;
}

static void assert_same(const ModelConfig *a, const ModelConfig *b) {
#define SAME_I(f) assert_int_equal(a->f, b->f)
#define SAME_F(f) assert_int_equal(fbits(a->f), fbits(b->f))
    SAME_I(family), SAME_I(vocab_size), SAME_I(hidden_size), SAME_I(intermediate_size);
    SAME_I(num_hidden_layers), SAME_I(num_attention_heads), SAME_I(num_key_value_heads), SAME_I(head_dim);
    SAME_I(rotary_dim), SAME_F(rms_norm_eps), SAME_F(rope_theta), SAME_I(tie_word_embeddings);
    SAME_I(max_position_embeddings), SAME_I(bos_token_id), SAME_I(eos_token_id), SAME_I(pad_token_id);
    SAME_I(attention_bias), SAME_I(block_size), SAME_I(num_local_experts), SAME_I(num_experts_per_tok);
    SAME_F(router_aux_loss_coef), SAME_F(router_jitter_noise), SAME_I(output_router_logits);
    SAME_F(full_attn_alpha_factor), SAME_F(full_attn_beta_factor), SAME_F(linear_attn_alpha_factor);
    SAME_F(linear_attn_beta_factor), SAME_F(mlp_alpha_factor), SAME_F(mlp_beta_factor), SAME_F(lightning_norm_eps);
    for (int i = 0; i < a->num_hidden_layers; i++) SAME_I(layer_types[i]);
#undef SAME_I
#undef SAME_F
}

static void roundtrip(const ModelConfig *c, const char *must_contain) {
    char path[128];
    snprintf(path, sizeof(path), "%s/%02d_saved.json", g_root, g_seq++);
    int rc = model_config_save_hf(c, path);
    if (rc != 0) fail_msg("save: %s", err_msg());
    ModelConfig back;
    rc = model_config_load_hf(&back, path);
    if (rc != 0) fail_msg("load of saved config: %s", err_msg());
    assert_same(c, &back);
    FILE *f = fopen(path, "rb");
    char text[8192] = {0};
    assert_non_null(f);
    assert_true(fread(text, 1, sizeof(text) - 1, f) > 0);
    fclose(f);
    assert_non_null(strstr(text, must_contain));
    assert_non_null(strstr(text, "\"torch_dtype\": \"float32\""));
    assert_non_null(strstr(text, "\"rope_type\": \"default\""));
}

static void test_roundtrip(void **state) {
    (void)state;
    ModelConfig c;
    model_config_defaults(&c, MODEL_MINIMAX);
    c.vocab_size = 200064, c.hidden_size = 512, c.intermediate_size = 768, c.num_hidden_layers = 8;
    c.num_attention_heads = 8, c.num_key_value_heads = 1, c.head_dim = c.rotary_dim = 64;
    c.rope_theta = 1e7f, c.rms_norm_eps = 1e-5f, c.max_position_embeddings = 10240000;
    c.pad_token_id = 0, c.eos_token_id = 200020, c.tie_word_embeddings = 0, c.output_router_logits = 1;
    c.router_aux_loss_coef = 0.001f, c.block_size = 256;
    c.full_attn_alpha_factor = c.linear_attn_alpha_factor = c.mlp_alpha_factor = 3.5565588200778455f;
    for (int i = 0; i < 8; i++) c.layer_types[i] = i % 8 == 7 ? LAYER_FULL_ATTENTION : LAYER_LINEAR_ATTENTION;
    roundtrip(&c, "\"architectures\": [\n    \"MiniMaxForCausalLM\"\n  ]");

    model_config_defaults(&c, MODEL_QWEN2);
    c.num_hidden_layers = 3, c.hidden_size = 96, c.num_attention_heads = 6, c.num_key_value_heads = 2;
    c.head_dim = c.rotary_dim = 16, c.tie_word_embeddings = 1, c.rope_theta = 1e6f, c.vocab_size = 1000;
    roundtrip(&c, "Qwen2ForCausalLM");

    model_config_defaults(&c, MODEL_LLAMA);
    c.attention_bias = 1, c.rms_norm_eps = 1e-5f, c.head_dim = c.rotary_dim = 128, c.rope_theta = 5e5f;
    roundtrip(&c, "LlamaForCausalLM");

    c.rotary_dim = 64; /* partial RoPE has no transformers spelling for these classes */
    char path[128];
    snprintf(path, sizeof(path), "%s/unsaved.json", g_root);
    assert_int_equal(model_config_save_hf(&c, path), ERR_UNSUPPORTED);
    assert_non_null(strstr(err_msg(), "rotary_dim"));
}

static void test_num_params(void **state) {
    (void)state;
    ModelConfig c;
    /* MiniMax-M1 (ALGORITHMS §11.1): 80 layers, softmax every 8th, reported as 456B in total */
    model_config_defaults(&c, MODEL_MINIMAX);
    c.vocab_size = 200064, c.hidden_size = 6144, c.intermediate_size = 9216, c.num_hidden_layers = 80;
    c.num_attention_heads = 64, c.num_key_value_heads = 8, c.head_dim = c.rotary_dim = 128;
    c.num_local_experts = 32, c.num_experts_per_tok = 2;
    for (int i = 0; i < 80; i++) c.layer_types[i] = i % 8 == 7 ? LAYER_FULL_ATTENTION : LAYER_LINEAR_ATTENTION;
    long long n = model_config_num_params(&c);
    assert_true(n > 455.5e9 && n < 456.5e9);
    assert_int_equal(n, 456089655296LL);
    /* a toy worked by hand: V=10 C=4 F=6 L=2 (linear, full) NH=2 HS=2 KVH=1 E=3, untied:
     * embed 40 + head 40 + final norm 4 = 84;
     * linear: qkv 3*4*4=48, out 16, gate 16, norm 4 = 84; full: q 16 + k 8 + v 8 + o 16 = 48;
     * per layer MoE 3*4 + 3*3*6*4 = 228 and norms 8: total 84 + (84+236) + (48+236) = 688 */
    memset(&c, 0, sizeof(c));
    model_config_defaults(&c, MODEL_MINIMAX);
    c.vocab_size = 10, c.hidden_size = 4, c.intermediate_size = 6, c.num_hidden_layers = 2;
    c.num_attention_heads = 2, c.head_dim = 2, c.num_key_value_heads = 1, c.num_local_experts = 3;
    c.layer_types[0] = LAYER_LINEAR_ATTENTION, c.layer_types[1] = LAYER_FULL_ATTENTION;
    assert_int_equal(model_config_num_params(&c), 688);
    c.tie_word_embeddings = 1;
    assert_int_equal(model_config_num_params(&c), 648);
}

static int setup(void **state) {
    (void)state;
    return tmpdir_make(g_root, sizeof(g_root), "cispo_test_cfg");
}

static int teardown(void **state) {
    (void)state;
    return tmpdir_remove(g_root);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_minimax_transformers_style), cmocka_unit_test(test_defaults),
        cmocka_unit_test(test_minimax_legacy),             cmocka_unit_test(test_qwen2),
        cmocka_unit_test(test_llama),                      cmocka_unit_test(test_errors),
        cmocka_unit_test(test_validate),                   cmocka_unit_test(test_roundtrip),
        cmocka_unit_test(test_num_params),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
