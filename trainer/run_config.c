/* trainer/run_config.c: the RunConfig schema and its loader (see run_config.h).
 *
 * One ConfigField table (offsetof into RunConfig) is the single source of every key, default,
 * range and help line; core/config does the parsing and the per-value checks. Loading is
 * defaults -> YAML file -> overrides in order -> cross-field validation, so a later source wins.
 *
 * The defaults describe the demo-sized MiniMax hybrid of ALGORITHMS.md §11.5: byte vocabulary
 * (256 bytes + 16 specials), hidden 128, 4 layers with softmax attention every 4th (layers 0-2
 * lightning, layer 3 softmax), 4 query heads over 2 KV heads of size 32, 4 experts with top-2
 * routing, rope_theta 1e7 as in M1. configs/demo.yaml spells out the same values.
 */
#include "trainer/run_config.h"

#include <stddef.h>
#include <string.h>

#include "core/error.h"

#define F(key, type, field, def, lo, hi, choices, help) \
    {key, type, offsetof(RunConfig, field), sizeof(((RunConfig *)0)->field), def, lo, hi, choices, help}

/* Ranges "1, 0" (min > max) mean unbounded: strings, enums, bools and the seed. */
static const ConfigField kRunSchema[] = {
    F("run.seed", CFG_INT64, seed, "1", 1, 0, NULL, "master seed of every random stream"),
    F("run.dir", CFG_STRING, dir, "runs/demo", 1, 0, NULL, "run directory (created)"),
    F("run.threads", CFG_INT, threads, "0", 0, 4096, NULL, "OpenBLAS threads (0 = all cores)"),
    F("run.backend", CFG_ENUM, backend, "cpu", 1, 0, "cpu|cuda", "compute backend"),
    F("run.log_level", CFG_ENUM, log_level, "info", 1, 0, "debug|info|warn|error", "log verbosity"),

    F("model.path", CFG_STRING, model_path, "", 1, 0, NULL,
      "Hugging Face model dir; empty = build from the fields below"),
    F("model.family", CFG_ENUM, family, "minimax", 1, 0, "minimax|qwen2|llama", "architecture"),
    F("model.vocab_size", CFG_INT, vocab_size, "272", 2, 1 << 24, NULL, "256 bytes + 16 specials"),
    F("model.hidden_size", CFG_INT, hidden_size, "128", 8, 65536, NULL, "model width C"),
    F("model.intermediate_size", CFG_INT, intermediate_size, "192", 1, 1 << 20, NULL, "expert MLP width"),
    F("model.num_layers", CFG_INT, num_layers, "4", 1, 1024, NULL, "decoder layers L"),
    F("model.num_heads", CFG_INT, num_heads, "4", 1, 1024, NULL, "query heads NH"),
    F("model.num_kv_heads", CFG_INT, num_kv_heads, "2", 1, 1024, NULL, "key/value heads (GQA)"),
    F("model.head_dim", CFG_INT, head_dim, "32", 2, 1024, NULL, "head size HS (even, for RoPE)"),
    F("model.full_attn_every", CFG_INT, full_attn_every, "4", 1, 1024, NULL,
      "layer i uses softmax attention when i % n == n-1, else lightning"),
    F("model.block_size", CFG_INT, block_size, "64", 1, 65536, NULL, "lightning attention block size"),
    F("model.num_experts", CFG_INT, num_experts, "4", 1, 1024, NULL, "MoE experts E"),
    F("model.experts_per_tok", CFG_INT, experts_per_tok, "2", 1, 1024, NULL, "experts per token K (top-k)"),
    F("model.rope_theta", CFG_FLOAT, rope_theta, "1e7", 1, 1e12, NULL, "RoPE base (M1: 1e7)"),
    F("model.init_std", CFG_FLOAT, init_std, "0.02", 0, 10, NULL, "std of the random init"),
    F("model.tie_embeddings", CFG_BOOL, tie_embeddings, "false", 1, 0, NULL, "share embedding and LM head"),
    F("model.max_seq_len", CFG_INT, max_seq_len, "512", 1, 1 << 24, NULL,
      "longest prompt + response the buffers hold"),

    F("generate.prompt", CFG_STRING, prompt, "The quick brown fox", 1, 0, NULL, "prompt text"),
    F("generate.max_new_tokens", CFG_INT, max_new_tokens, "64", 1, 1 << 24, NULL, "tokens to generate"),
    F("generate.temperature", CFG_FLOAT, temperature, "1.0", 0, 10, NULL, "sampling temperature (0 = greedy)"),
    F("generate.top_p", CFG_FLOAT, top_p, "0.95", 1e-6, 1, NULL, "nucleus sampling mass"),
    F("generate.num_samples", CFG_INT, num_samples, "4", 1, 65536, NULL, "sequences decoded together"),

    {NULL, CFG_INT, 0, 0, NULL, 0, 0, NULL, NULL},
};

#undef F

const ConfigSchema *run_config_schema(void) { return kRunSchema; }

/* Relations between fields that single-field ranges cannot express. `src` names what was
 * loaded (the file, or "defaults"), for the message. */
static int run_config_validate(const RunConfig *rc, const char *src) {
    if (rc->num_heads % rc->num_kv_heads != 0)
        return err_set(ERR_CONFIG,
                       "%s: model.num_heads (%d) must be divisible by model.num_kv_heads (%d)\n"
                       "HINT: each KV head serves num_heads / num_kv_heads query heads",
                       src, rc->num_heads, rc->num_kv_heads);
    if (rc->experts_per_tok > rc->num_experts)
        return err_set(ERR_CONFIG, "%s: model.experts_per_tok (%d) must be at most model.num_experts (%d)", src,
                       rc->experts_per_tok, rc->num_experts);
    if (rc->full_attn_every < 1)
        return err_set(ERR_CONFIG, "%s: model.full_attn_every (%d) must be at least 1", src, rc->full_attn_every);
    if (rc->head_dim % 2 != 0)
        return err_set(ERR_CONFIG, "%s: model.head_dim (%d) must be even (RoPE rotates pairs of dimensions)", src,
                       rc->head_dim);
    if (rc->max_new_tokens >= rc->max_seq_len)
        return err_set(ERR_CONFIG,
                       "%s: generate.max_new_tokens (%d) must be less than model.max_seq_len (%d), "
                       "which also holds the prompt",
                       src, rc->max_new_tokens, rc->max_seq_len);
    return 0;
}

int run_config_load(RunConfig *rc, const char *path, int n_overrides, char *const *overrides) {
    memset(rc, 0, sizeof(*rc));
    int err = config_set_defaults(kRunSchema, rc);
    CHECK(err == 0, "run config defaults are invalid: %s", err_msg());
    if (path != NULL && (err = config_load_yaml(kRunSchema, rc, path)) != 0) return err;
    for (int i = 0; i < n_overrides; i++)
        if ((err = config_apply_override(kRunSchema, rc, overrides[i])) != 0) return err;
    char src[600];
    if (path != NULL)
        snprintf(src, sizeof(src), "%s%s", path, n_overrides > 0 ? " + command line" : "");
    else
        snprintf(src, sizeof(src), "%s", n_overrides > 0 ? "defaults + command line" : "defaults");
    return run_config_validate(rc, src);
}

void run_config_print(FILE *f, const RunConfig *rc) { config_print_yaml(kRunSchema, rc, f); }
