/* kernels/cpu/sample.c: the sampling op (temperature, top-p, counter-based uniform) on the CPU.
 *
 * Row by row, the exact math of rollout/sampler.c's sampler_draw (the reference; a unit test checks
 * the two bit for bit): argmax (first maximum); prob[v] = expf((l[v] - max) / T) summed in float64
 * and divided in float64 before rounding to float; for top_p < 1 the ids sorted by probability
 * (descending, ties by id) and the shortest prefix whose float64 mass reaches top_p; the kept mass,
 * the entropy and the walk of the uniform over the kept ids in float64, in that order.
 *
 * Workspace (sample_ws_bytes): float prob[V] | int order[V], reused for every row.
 */
#include <math.h>
#include <stdlib.h>

#include "core/error.h"
#include "core/rng.h"
#include "kernels/cpu/cpu_ops.h"

size_t sample_ws_bytes_cpu(int B, int V) {
    (void)B;
    return (size_t)V * (sizeof(float) + sizeof(int));
}

static int by_prob_desc(const void *a, const void *b, void *ctx) {
    const float *prob = ctx;
    int i = *(const int *)a, j = *(const int *)b;
    if (prob[i] != prob[j]) return prob[i] > prob[j] ? -1 : 1;
    return i - j;
}

/* One row: logits(V) -> token; prob(V), order(V) scratch. */
static int sample_row(const float *logits, int V, float temperature, float top_p, uint64_t seed, uint64_t stream,
                      uint64_t counter, float *prob, int *order, float *logprob, float *prob_raw, float *entropy) {
    int best = 0;
    for (int v = 1; v < V; v++)
        if (logits[v] > logits[best]) best = v;
    *entropy = 0.0f;
    if (temperature <= 0.0f) {
        *logprob = 0.0f;
        *prob_raw = 1.0f;
        return best;
    }
    double sum = 0;
    for (int v = 0; v < V; v++) {
        prob[v] = expf((logits[v] - logits[best]) / temperature);
        sum += prob[v];
    }
    for (int v = 0; v < V; v++) prob[v] = (float)(prob[v] / sum);
    int n_keep = V;
    for (int v = 0; v < V; v++) order[v] = v;
    if (top_p < 1.0f) {
        qsort_r(order, (size_t)V, sizeof(int), by_prob_desc, prob);
        double mass = 0;
        for (n_keep = 0; n_keep < V;) {
            mass += prob[order[n_keep++]];
            if (mass >= top_p) break;
        }
    }
    double kept = 0, ent = 0;
    for (int i = 0; i < n_keep; i++) kept += prob[order[i]];
    for (int i = 0; i < n_keep; i++) {
        double q = prob[order[i]] / kept;
        if (q > 0) ent -= q * log(q);
    }
    *entropy = (float)ent;
    double u = rng_uniform(seed, stream, counter) * kept, acc = 0;
    int tok = order[n_keep - 1];
    for (int i = 0; i < n_keep; i++) {
        acc += prob[order[i]];
        if (u < acc) {
            tok = order[i];
            break;
        }
    }
    *logprob = (float)log(prob[tok] / kept);
    *prob_raw = prob[tok];
    return tok;
}

/* tokens(B), logprob(B), prob_raw(B), entropy(B) from logits(B,V) (left unchanged here). */
void sample_cpu(KernelCtx *ctx, int *tokens, float *logprob, float *prob_raw, float *entropy, float *logits,
                const uint64_t *stream, const uint64_t *counter, int B, int V, float temperature, float top_p,
                uint64_t seed) {
    CHECK(B >= 1 && V >= 1, "sample: B=%d V=%d", B, V);
    CHECK(tokens && logprob && prob_raw && entropy && logits && stream && counter, "sample with a NULL pointer");
    size_t need = sample_ws_bytes_cpu(B, V);
    CHECK(ctx != NULL && ctx->ws != NULL && ctx->ws_bytes >= need, "sample needs %zu workspace bytes (V=%d), has %zu",
          need, V, ctx ? ctx->ws_bytes : 0);
    float *prob = (float *)ctx->ws;
    int *order = (int *)(prob + V);
    for (int b = 0; b < B; b++)
        tokens[b] = sample_row(logits + (size_t)b * V, V, temperature, top_p, seed, stream[b], counter[b], prob, order,
                               &logprob[b], &prob_raw[b], &entropy[b]);
}
