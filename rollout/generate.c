/* rollout/generate.c: the batched generation loop (prefill, then decode steps with sampling).
 * Finished sequences stay in their slots and keep being fed their last token so the batch shape
 * is constant; their outputs are ignored and the loop ends when every sequence has stopped. */
#include "rollout/generate.h"

#include <stdlib.h>
#include <string.h>

#include "core/error.h"
#include "core/rng.h"

const char *stop_reason_name(StopReason r) {
    static const char *names[] = {"none", "eos", "budget", "repetition"};
    return (r >= STOP_NONE && r <= STOP_REPETITION) ? names[r] : "?";
}

int generator_init(Generator *g, Model *m, int max_batch, int max_prompt, int max_new) {
    memset(g, 0, sizeof(*g));
    if (max_new < 1 || max_prompt < 1)
        return err_set(ERR_RANGE, "generator: max_prompt %d and max_new %d must be >= 1", max_prompt, max_new);
    int rc = decode_state_init(&g->ds, m, max_batch, max_prompt + max_new);
    if (rc) return rc;
    g->m = m;
    g->max_batch = max_batch;
    g->max_prompt = max_prompt;
    g->max_new = max_new;
    const int V = m->cfg.vocab_size;
    sampler_init(&g->smp, V);
    g->logits = xcalloc((size_t)max_batch * V, sizeof(float));
    g->tokens = xcalloc((size_t)max_batch * max_new, sizeof(int));
    g->logprobs = xcalloc((size_t)max_batch * max_new, sizeof(float));
    g->probs_raw = xcalloc((size_t)max_batch * max_new, sizeof(float));
    g->ent_sum = xcalloc((size_t)max_batch, sizeof(double));
    g->n_gen = xcalloc((size_t)max_batch, sizeof(int));
    g->stop = xcalloc((size_t)max_batch, sizeof(StopReason));
    g->rep_run = xcalloc((size_t)max_batch, sizeof(int));
    return 0;
}

void generator_free(Generator *g) {
    if (!g || !g->m) return;
    decode_state_free(&g->ds, g->m);
    sampler_free(&g->smp);
    free(g->logits);
    free(g->tokens);
    free(g->logprobs);
    free(g->probs_raw);
    free(g->ent_sum);
    free(g->n_gen);
    free(g->stop);
    free(g->rep_run);
    memset(g, 0, sizeof(*g));
}

/* Sample one token for every unfinished sequence from g->logits; returns how many are still active. */
static int sample_step(Generator *g, int B, const GenParams *p, uint64_t stream_id, int seq_base, int *next) {
    const int V = g->m->cfg.vocab_size;
    int active = 0;
    for (int b = 0; b < B; b++) {
        if (g->stop[b] != STOP_NONE) continue;
        int pos = g->n_gen[b];
        float lp, pr;
        int tok = sampler_draw(&g->smp, g->logits + (size_t)b * V, p->temperature, p->top_p, p->seed,
                               rng_stream(stream_id, (uint64_t)(seq_base + b), 0, 0), (uint64_t)pos, &lp, &pr);
        g->tokens[(size_t)b * g->max_new + pos] = tok;
        g->logprobs[(size_t)b * g->max_new + pos] = lp;
        g->probs_raw[(size_t)b * g->max_new + pos] = pr;
        g->ent_sum[b] += g->smp.last_entropy;
        g->n_gen[b] = pos + 1;
        next[b] = tok;
        g->rep_run[b] = pr > p->rep_prob ? g->rep_run[b] + 1 : 0;
        if (tok == p->eos_id)
            g->stop[b] = STOP_EOS;
        else if (p->rep_count > 0 && g->rep_run[b] >= p->rep_count)
            g->stop[b] = STOP_REPETITION;
        else if (g->n_gen[b] >= p->max_new_tokens)
            g->stop[b] = STOP_BUDGET;
        else
            active++;
    }
    return active;
}

long rollout_generate(Generator *g, const int *prompts, const SeqPack *pack, const GenParams *p, uint64_t stream_id) {
    return rollout_generate_at(g, prompts, pack, p, stream_id, 0);
}

long rollout_generate_at(Generator *g, const int *prompts, const SeqPack *pack, const GenParams *p, uint64_t stream_id,
                         int seq_base) {
    const int B = pack->n_seq;
    CHECK(B >= 1 && B <= g->max_batch, "generate: %d prompts, generator holds %d", B, g->max_batch);
    CHECK(p->max_new_tokens >= 1 && p->max_new_tokens <= g->max_new, "generate: budget %d, generator holds %d",
          p->max_new_tokens, g->max_new);
    for (int b = 0; b < B; b++) {
        int T = pack->start[b + 1] - pack->start[b];
        CHECK(T >= 1 && T <= g->max_prompt, "prompt %d has %d tokens (max %d)", b, T, g->max_prompt);
        g->n_gen[b] = 0;
        g->stop[b] = STOP_NONE;
        g->rep_run[b] = 0;
        g->ent_sum[b] = 0;
    }
    int next[1024];
    CHECK(B <= 1024, "generate: at most 1024 sequences per call");
    const int head_bf16 = g->m->ctx->head_bf16;
    g->m->ctx->head_bf16 = p->head_bf16;
    model_prefill(g->m, &g->ds, prompts, pack, g->logits);
    long total = 0;
    for (;;) {
        int active = sample_step(g, B, p, stream_id, seq_base, next);
        if (active == 0) break;
        for (int b = 0; b < B; b++)
            if (g->stop[b] != STOP_NONE) next[b] = g->tokens[(size_t)b * g->max_new + g->n_gen[b] - 1];
        model_decode_step(g->m, &g->ds, next, g->logits);
    }
    g->m->ctx->head_bf16 = head_bf16;
    for (int b = 0; b < B; b++) total += g->n_gen[b];
    return total;
}
