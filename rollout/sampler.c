/* rollout/sampler.c: temperature + top-p sampling with a counter-based uniform draw.
 * Probabilities are computed in double-accumulated float; the nucleus is found by sorting token
 * ids by probability (descending, ties by id, so the result is deterministic). */
#include "rollout/sampler.h"

#include <math.h>
#include <stdlib.h>

#include "core/error.h"
#include "core/rng.h"

void sampler_init(Sampler *s, int V) {
    CHECK(V > 0, "vocabulary %d", V);
    s->V = V;
    s->prob = xcalloc((size_t)V, sizeof(float));
    s->order = xcalloc((size_t)V, sizeof(int));
}

void sampler_free(Sampler *s) {
    if (!s) return;
    free(s->prob);
    free(s->order);
    s->prob = NULL;
    s->order = NULL;
}

static int by_prob_desc(const void *a, const void *b, void *ctx) {
    const float *prob = ctx;
    int i = *(const int *)a, j = *(const int *)b;
    if (prob[i] != prob[j]) return prob[i] > prob[j] ? -1 : 1;
    return i - j;
}

int sampler_draw(Sampler *s, const float *logits, float temperature, float top_p, uint64_t seed, uint64_t stream,
                 uint64_t counter, float *logprob, float *prob_raw) {
    const int V = s->V;
    int best = 0;
    for (int v = 1; v < V; v++)
        if (logits[v] > logits[best]) best = v;
    s->last_entropy = 0.0f;
    if (temperature <= 0.0f) {
        if (logprob) *logprob = 0.0f;
        if (prob_raw) *prob_raw = 1.0f;
        return best;
    }
    double sum = 0;
    for (int v = 0; v < V; v++) {
        s->prob[v] = expf((logits[v] - logits[best]) / temperature);
        sum += s->prob[v];
    }
    for (int v = 0; v < V; v++) s->prob[v] = (float)(s->prob[v] / sum);
    int n_keep = V;
    for (int v = 0; v < V; v++) s->order[v] = v;
    if (top_p < 1.0f) {
        qsort_r(s->order, (size_t)V, sizeof(int), by_prob_desc, s->prob);
        double mass = 0;
        for (n_keep = 0; n_keep < V;) {
            mass += s->prob[s->order[n_keep++]];
            if (mass >= top_p) break;
        }
    }
    double kept = 0, ent = 0;
    for (int i = 0; i < n_keep; i++) kept += s->prob[s->order[i]];
    for (int i = 0; i < n_keep; i++) {
        double q = s->prob[s->order[i]] / kept;
        if (q > 0) ent -= q * log(q);
    }
    s->last_entropy = (float)ent;
    double u = rng_uniform(seed, stream, counter) * kept, acc = 0;
    int tok = s->order[n_keep - 1];
    for (int i = 0; i < n_keep; i++) {
        acc += s->prob[s->order[i]];
        if (u < acc) {
            tok = s->order[i];
            break;
        }
    }
    if (logprob) *logprob = (float)log(s->prob[tok] / kept);
    if (prob_raw) *prob_raw = s->prob[tok];
    return tok;
}
