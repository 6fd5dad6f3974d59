/* rollout/generate.c: the batched generation loop (prefill, then decode steps with sampling).
 * Every step, the backend's `sample` op draws one token per decode slot from the logits where the
 * LM head left them (kernels/backend.h; the CPU op is rollout/sampler.c's math bit for bit), and
 * only the tokens, log-probs, raw probabilities and entropies come back to the host. Sequence seq
 * always draws from stream rng_stream(stream_id, seq_base + seq, 0, 0) at counter = its output
 * position, whatever slot it sits in. A sequence that stops is retired from the decode state
 * (the last slot moves into its place, decode_state_retire), so later steps compute only live
 * sequences; outputs stay indexed by sequence. The loop ends when no live sequence is left.
 * With g->retire = 0 (the CPU default, generate.h says why) a stopped sequence keeps its slot and
 * is fed its last token, its draws ignored: the batch shape stays constant, as before retiring. */
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
    g->retire = strcmp(m->ctx->ops->name, "cpu") != 0; /* generate.h: CPU results stay bit for bit */
    g->slot_seq = xcalloc((size_t)max_batch, sizeof(int));
    g->next = xcalloc((size_t)max_batch, sizeof(int));
    g->rng_stream = xcalloc((size_t)max_batch, sizeof(uint64_t));
    g->rng_counter = xcalloc((size_t)max_batch, sizeof(uint64_t));
    g->samp_dev = m->ctx->ops->alloc(m->ctx, (size_t)max_batch * 4 * sizeof(float));
    g->samp_host = xcalloc((size_t)max_batch * 4, sizeof(float));
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
    g->m->ctx->ops->free(g->m->ctx, g->samp_dev);
    free(g->slot_seq);
    free(g->next);
    free(g->rng_stream);
    free(g->rng_counter);
    free(g->samp_host);
    free(g->tokens);
    free(g->logprobs);
    free(g->probs_raw);
    free(g->ent_sum);
    free(g->n_gen);
    free(g->stop);
    free(g->rep_run);
    memset(g, 0, sizeof(*g));
}

/* Sample one token for every active slot from the decode state's logits, record it for the slot's
 * sequence and apply the stop rules. */
static void sample_slots(Generator *g, const GenParams *p, uint64_t stream_id, int seq_base) {
    KernelCtx *ctx = g->m->ctx;
    const int n = g->ds.n_active, mb = g->max_batch;
    for (int i = 0; i < n; i++) {
        int seq = g->slot_seq[i];
        g->rng_stream[i] = rng_stream(stream_id, (uint64_t)(seq_base + seq), 0, 0);
        g->rng_counter[i] = (uint64_t)g->n_gen[seq];
    }
    float *dev = g->samp_dev;
    ctx->ops->sample(ctx, (int *)dev, dev + mb, dev + 2 * mb, dev + 3 * mb, g->ds.logits_dev, g->rng_stream,
                     g->rng_counter, n, g->m->cfg.vocab_size, p->temperature, p->top_p, p->seed);
    ctx->ops->copy_d2h(ctx, g->samp_host, g->samp_dev, (size_t)mb * 4 * sizeof(float));
    const int *tok_h = g->samp_host;
    const float *h = g->samp_host;
    for (int i = 0; i < n; i++) {
        const int b = g->slot_seq[i], pos = g->n_gen[b], tok = tok_h[i];
        if (g->stop[b] != STOP_NONE) { /* not retired: feed the last token again, ignore the draw */
            g->next[i] = g->tokens[(size_t)b * g->max_new + pos - 1];
            continue;
        }
        const float pr = h[2 * mb + i];
        g->tokens[(size_t)b * g->max_new + pos] = tok;
        g->logprobs[(size_t)b * g->max_new + pos] = h[mb + i];
        g->probs_raw[(size_t)b * g->max_new + pos] = pr;
        g->ent_sum[b] += h[3 * mb + i];
        g->n_gen[b] = pos + 1;
        g->next[i] = tok;
        g->rep_run[b] = pr > p->rep_prob ? g->rep_run[b] + 1 : 0;
        if (tok == p->eos_id)
            g->stop[b] = STOP_EOS;
        else if (p->rep_count > 0 && g->rep_run[b] >= p->rep_count)
            g->stop[b] = STOP_REPETITION;
        else if (g->n_gen[b] >= p->max_new_tokens)
            g->stop[b] = STOP_BUDGET;
    }
}

/* Retire the slots whose sequence stopped (the last slot moves into a freed one, with its sequence
 * and next token); returns how many live sequences remain. */
static int retire_stopped(Generator *g) {
    DecodeState *s = &g->ds;
    if (!g->retire) {
        int live = 0;
        for (int i = 0; i < s->n_active; i++) live += g->stop[g->slot_seq[i]] == STOP_NONE;
        return live;
    }
    for (int i = 0; i < s->n_active;) {
        if (g->stop[g->slot_seq[i]] == STOP_NONE) {
            i++;
            continue;
        }
        const int last = s->n_active - 1;
        decode_state_retire(g->m, s, i);
        g->slot_seq[i] = g->slot_seq[last];
        g->next[i] = g->next[last];
    }
    return s->n_active;
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
        g->slot_seq[b] = b;
    }
    const int head_bf16 = g->m->ctx->head_bf16;
    g->m->ctx->head_bf16 = p->head_bf16;
    model_prefill(g->m, &g->ds, prompts, pack, NULL);
    for (;;) {
        sample_slots(g, p, stream_id, seq_base);
        if (retire_stopped(g) == 0) break;
        model_decode_step(g->m, &g->ds, g->next, NULL);
    }
    g->m->ctx->head_bf16 = head_bf16;
    long total = 0;
    for (int b = 0; b < B; b++) total += g->n_gen[b];
    return total;
}
