/* trainer/run_config.h: the validated run configuration (DESIGN.md §1: one config, printed at
 * start, saved in every checkpoint). Fields are filled from a YAML file plus `section.key=value`
 * overrides through the schema in run_config.c (core/config engine). Later issues add sections.
 */
#ifndef CISPO_TRAINER_RUN_CONFIG_H
#define CISPO_TRAINER_RUN_CONFIG_H

#include <stdio.h>

#include "core/config.h"

typedef struct {
    /* run: */
    long long seed;     /* run.seed: master seed of every random stream */
    char dir[512];      /* run.dir: run directory (created) */
    int threads;        /* run.threads: OpenBLAS threads (0 = all cores) */
    char backend[16];   /* run.backend: cpu | cuda */
    char log_level[16]; /* run.log_level: debug | info | warn | error */

    /* model: either an HF directory (model.path) or a built-in architecture */
    char model_path[512];    /* model.path: HF model dir; empty = build from the fields below */
    char family[16];         /* model.family: minimax | qwen2 | llama */
    int vocab_size;          /* model.vocab_size */
    int hidden_size;         /* model.hidden_size */
    int intermediate_size;   /* model.intermediate_size */
    int num_layers;          /* model.num_layers */
    int num_heads;           /* model.num_heads */
    int num_kv_heads;        /* model.num_kv_heads */
    int head_dim;            /* model.head_dim */
    int full_attn_every;     /* model.full_attn_every: MiniMax layer i is softmax when i % n == n-1 */
    int block_size;          /* model.block_size */
    int num_experts;         /* model.num_experts */
    int experts_per_tok;     /* model.experts_per_tok */
    double rope_theta;       /* model.rope_theta */
    double init_std;         /* model.init_std */
    int tie_embeddings;      /* model.tie_embeddings */
    int max_seq_len;         /* model.max_seq_len: longest prompt + response the buffers hold */

    /* generate: */
    char prompt[1024];       /* generate.prompt */
    int max_new_tokens;      /* generate.max_new_tokens */
    double temperature;      /* generate.temperature (0 = greedy) */
    double top_p;            /* generate.top_p */
    int num_samples;         /* generate.num_samples: sequences decoded together */
} RunConfig;

/* Defaults, then `path` (may be NULL), then each override "section.key=value" in order, then
 * validation. Errors name the file, line and key (or "command line" for overrides). */
int run_config_load(RunConfig *rc, const char *path, int n_overrides, char *const *overrides);
/* Print the effective config as YAML that run_config_load reads back to the same values. */
void run_config_print(FILE *f, const RunConfig *rc);
/* The schema (for docs and tests). */
const ConfigSchema *run_config_schema(void);

#endif
