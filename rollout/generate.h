/* rollout/generate.h: batched generation on the model's decode path. Prompts are prefilled
 * together, then every active sequence gets one token per step until EOS, the output budget, or
 * M1's repetition stop (K consecutive sampled tokens each with probability above tau).
 * Every sampled token comes with its behaviour log-probability (the distribution it was drawn
 * from). Sizes are fixed at generator_init; rollout_generate does not allocate.
 */
#ifndef CISPO_ROLLOUT_GENERATE_H
#define CISPO_ROLLOUT_GENERATE_H

#include <stdint.h>

#include "model/decode.h"
#include "rollout/sampler.h"

typedef enum { STOP_NONE = 0, STOP_EOS = 1, STOP_BUDGET = 2, STOP_REPETITION = 3 } StopReason;

typedef struct {
    float temperature;  /* 0 = greedy */
    float top_p;        /* 1 = off */
    int max_new_tokens; /* output budget per sequence */
    int eos_id;         /* < 0: none */
    uint64_t seed;      /* run seed */
    int rep_count;      /* repetition stop: consecutive tokens (M1: 3000); <= 0 disables */
    float rep_prob;     /* ... each with probability above this (M1: 0.99) */
    int head_bf16;      /* LM head logits rounded to BF16 while generating (model.lm_head_dtype: bf16, as a
                           BF16 inference engine; the learner stays FP32: M1's mismatch finding) */
} GenParams;

typedef struct {
    Model *m;
    DecodeState ds;
    Sampler smp;
    int max_batch, max_prompt, max_new;
    float *logits;     /* (max_batch, V) */
    /* outputs of the last rollout_generate */
    int *tokens;       /* (max_batch, max_new) */
    float *logprobs;   /* (max_batch, max_new) behaviour log-probs */
    float *probs_raw;  /* (max_batch, max_new) probability under softmax(logits / T), before top-p */
    double *ent_sum;   /* (max_batch) sum of the sampling distribution's entropy over the response */
    int *n_gen;        /* (max_batch) */
    StopReason *stop;  /* (max_batch) */
    int *rep_run;      /* (max_batch) current run of high-probability tokens */
} Generator;

int generator_init(Generator *g, Model *m, int max_batch, int max_prompt, int max_new);
void generator_free(Generator *g); /* idempotent */
/* Generate for B = pack->n_seq prompts (packed host tokens). Sequence b draws from the random
 * stream rng_stream(stream_id, b, 0, 0) at counter = its output position. Returns the number of
 * tokens generated in total. */
long rollout_generate(Generator *g, const int *prompts, const SeqPack *pack, const GenParams *p, uint64_t stream_id);
/* The same for a slice of a larger batch: sequence b draws as sequence seq_base + b (a rank's share
 * of a generation round, trainer/dist.h). */
long rollout_generate_at(Generator *g, const int *prompts, const SeqPack *pack, const GenParams *p, uint64_t stream_id,
                         int seq_base);
const char *stop_reason_name(StopReason r); /* "none", "eos", "budget", "repetition" */

#endif
