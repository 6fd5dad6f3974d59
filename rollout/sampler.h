/* rollout/sampler.h: drawing the next token from logits with temperature and nucleus (top-p)
 * sampling, reproducibly: the uniform draw for (sequence, position) comes from the counter-based
 * generator keyed by (seed, stream, counter), so a sample never depends on the draws before it.
 */
#ifndef CISPO_ROLLOUT_SAMPLER_H
#define CISPO_ROLLOUT_SAMPLER_H

#include <stdint.h>

typedef struct {
    int V;
    float *prob; /* (V) scratch */
    int *order;  /* (V) scratch */
    float last_entropy; /* entropy (nats) of the distribution of the last draw (0 for greedy) */
} Sampler;

void sampler_init(Sampler *s, int V);
void sampler_free(Sampler *s); /* idempotent */

/* Sample from softmax(logits / temperature) restricted to the smallest set of most likely tokens
 * whose mass reaches top_p (top_p >= 1: no restriction). temperature == 0 is greedy (ties: lowest
 * id). Returns the token; *logprob (may be NULL) receives its log-probability under the
 * distribution it was sampled from (after temperature and top-p renormalisation; 0 for greedy),
 * *prob_raw (may be NULL) its probability under softmax(logits / temperature) before top-p. */
int sampler_draw(Sampler *s, const float *logits, float temperature, float top_p, uint64_t seed, uint64_t stream,
                 uint64_t counter, float *logprob, float *prob_raw);

#endif
