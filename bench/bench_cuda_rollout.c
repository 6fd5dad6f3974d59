/* bench/bench_cuda_rollout.c: rollout_generate end to end on the GPU (BENCHMARKS.md B8's batched
 * decode, as the RL loop runs it): prefill, decode steps, sampling on the GPU (the backend's
 * `sample` op), stop rules, and finished sequences retired from the batch (g.retire = 1) or kept
 * in it (g.retire = 0, the behaviour before retiring), for batch 64 with mixed lengths.
 * Built only with -DCISPO_CUDA=ON.
 *
 * Model: the h768_L12_E8 hybrid of bench_cuda_model (~125M active, V = 32000, BF16 GEMMs, FP32 LM
 * head), random weights. Prompts of 16..128 tokens. Mixed output lengths: the LM-head row of the
 * EOS token is scaled by --eos-scale (default 8), so its logit varies a lot from position to
 * position and EOS is drawn at a few percent per step (lengths roughly geometric, capped by the
 * budget --budget, default 512); the length spread is printed. Temperature 1, top_p 1 (and one
 * run at top_p 0.95: the sort-free nucleus path). Wall clock after a device sync, median of 3.
 * Output: one line per setting (tokens generated, seconds, tokens/s, length min/mean/max) and, with
 * --json PATH, the same as JSON rows.
 *
 * Usage: bench_cuda_rollout [--json PATH] [--budget N] [--eos-scale S]
 */
#include <cuda_runtime.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bench/bench_util.h"
#include "core/error.h"
#include "core/log.h"
#include "core/version.h"
#include "model/model_internal.h"
#include "rollout/generate.h"

#define NB 64
#define MAX_PROMPT 128
#define EOS_ID 7

static void bench_config(ModelConfig *c) {
    memset(c, 0, sizeof *c);
    model_config_defaults(c, MODEL_MINIMAX);
    c->vocab_size = 32000, c->hidden_size = 768, c->intermediate_size = 1024, c->num_hidden_layers = 12;
    c->num_attention_heads = 12, c->num_key_value_heads = 4, c->head_dim = 64;
    c->num_local_experts = 8, c->num_experts_per_tok = 2, c->block_size = 256;
    c->rope_theta = 1e7;
    c->rotary_dim = 64;
    for (int l = 0; l < 12; l++) c->layer_types[l] = l % 8 == 7 ? LAYER_FULL_ATTENTION : LAYER_LINEAR_ATTENTION;
}

/* Scale the LM-head row of the EOS token (device memory) by s. */
static void boost_eos(Model *m, float s) {
    KernelCtx *ctx = m->ctx;
    const int C = m->cfg.hidden_size;
    float *row = m->acts->pp.lm_head + (size_t)EOS_ID * C, *h = xmalloc((size_t)C * sizeof(float));
    ctx->ops->copy_d2h(ctx, h, row, (size_t)C * sizeof(float));
    for (int i = 0; i < C; i++) h[i] *= s;
    ctx->ops->copy_h2d(ctx, row, h, (size_t)C * sizeof(float));
    free(h);
}

typedef struct {
    double s, tok_s, len_mean;
    long tokens;
    int len_min, len_max;
} Run;

static Run timed(Generator *g, const int *prompts, const SeqPack *pack, const GenParams *p) {
    double t[3];
    Run r = {0};
    for (int rep = -1; rep < 3; rep++) {
        g->m->ctx->ops->sync(g->m->ctx);
        double t0 = time_now_s();
        r.tokens = rollout_generate(g, prompts, pack, p, 17);
        g->m->ctx->ops->sync(g->m->ctx);
        if (rep >= 0) t[rep] = time_now_s() - t0;
    }
    r.s = bench_median(t, 3);
    r.tok_s = (double)r.tokens / r.s;
    r.len_min = g->n_gen[0], r.len_max = g->n_gen[0];
    for (int b = 0; b < pack->n_seq; b++) {
        r.len_min = g->n_gen[b] < r.len_min ? g->n_gen[b] : r.len_min;
        r.len_max = g->n_gen[b] > r.len_max ? g->n_gen[b] : r.len_max;
    }
    r.len_mean = (double)r.tokens / pack->n_seq;
    return r;
}

int main(int argc, char **argv) {
    const char *json_path = NULL;
    int budget = 512;
    float eos_scale = 8.0f;
    for (int a = 1; a < argc; a++) {
        if (!strcmp(argv[a], "--json") && a + 1 < argc) json_path = argv[++a];
        else if (!strcmp(argv[a], "--budget") && a + 1 < argc) budget = atoi(argv[++a]);
        else if (!strcmp(argv[a], "--eos-scale") && a + 1 < argc) eos_scale = (float)atof(argv[++a]);
    }
    log_set_level(LOG_WARN);
    const KernelOps *ops = kernels_cuda();
    if (!ops) {
        fprintf(stderr, "bench_cuda_rollout: no CUDA device\n");
        return 2;
    }
    struct cudaDeviceProp prop;
    CHECK(cudaGetDeviceProperties(&prop, 0) == cudaSuccess, "cudaGetDeviceProperties");
    ModelConfig cfg;
    bench_config(&cfg);
    KernelCtx ctx;
    Model m;
    Generator g;
    const int max_tokens = NB * MAX_PROMPT;
    kernel_ctx_init(&ctx, ops, model_ws_bytes(&cfg, ops, max_tokens));
    ctx.gemm_bf16 = 1;
    CHECK(model_init(&m, &cfg, &ctx, max_tokens, NB) == 0, "%s", err_msg());
    model_init_weights(&m, 1, 0.02f);
    boost_eos(&m, eos_scale);
    CHECK(generator_init(&g, &m, NB, MAX_PROMPT, budget) == 0, "%s", err_msg());
    int start[NB + 1] = {0};
    for (int b = 0; b < NB; b++) start[b + 1] = start[b] + 16 + (b * 37) % (MAX_PROMPT - 15);
    int *prompts = xmalloc((size_t)start[NB] * sizeof(int));
    for (int i = 0; i < start[NB]; i++) prompts[i] = 100 + (i * 7919) % 30000;
    SeqPack pack = {NB, start, NULL};
    printf("bench_cuda_rollout on %s, cispo %s: batch %d, prompts 16..%d tokens, budget %d, EOS row x%.1f\n",
           prop.name, cispo_version(), NB, MAX_PROMPT, budget, eos_scale);
    printf("%-8s %-6s %10s %8s %10s %18s\n", "retire", "top_p", "tokens", "s", "tok/s", "len min/mean/max");
    FILE *js = json_path ? fopen(json_path, "w") : NULL;
    if (js) fprintf(js, "{\"device\": \"%s\", \"commit\": \"%s\", \"rows\": [\n", prop.name, cispo_version());
    const int settings[][2] = {{1, 100}, {0, 100}, {1, 95}};
    for (int i = 0; i < 3; i++) {
        GenParams p = {1.0f, settings[i][1] / 100.0f, budget, EOS_ID, 5, 0, 0.99f, 0};
        g.retire = settings[i][0];
        Run r = timed(&g, prompts, &pack, &p);
        printf("%-8d %-6.2f %10ld %8.3f %10.0f %6d/%5.1f/%5d\n", g.retire, p.top_p, r.tokens, r.s, r.tok_s, r.len_min,
               r.len_mean, r.len_max);
        if (js)
            fprintf(js, "%s{\"what\": \"rollout\", \"B\": %d, \"retire\": %d, \"top_p\": %.2f, \"tokens\": %ld, "
                        "\"s\": %.4f, \"tok_s\": %.1f, \"len_min\": %d, \"len_mean\": %.1f, \"len_max\": %d}",
                    i ? ",\n" : "", NB, g.retire, p.top_p, r.tokens, r.s, r.tok_s, r.len_min, r.len_mean, r.len_max);
        fflush(stdout);
    }
    if (js) {
        fprintf(js, "\n]}\n");
        fclose(js);
    }
    free(prompts);
    generator_free(&g);
    model_free(&m);
    kernel_ctx_free(&ctx);
    return 0;
}
