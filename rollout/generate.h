/* rollout/generate.h: batched generation on the model's decode path. Prompts are prefilled
 * together, then every active sequence gets one token per step until EOS, the output budget, or
 * M1's repetition stop (K consecutive sampled tokens each with probability above tau); a stopped
 * sequence leaves the decode batch. Tokens are sampled by the backend's `sample` op next to the
 * logits (only B tokens and 3B floats come back to the host per step).
 * Every sampled token comes with its behaviour log-probability (the distribution it was drawn
 * from). Sizes are fixed at generator_init; rollout_generate does not allocate.
 */
#ifndef CISPO_ROLLOUT_GENERATE_H
#define CISPO_ROLLOUT_GENERATE_H

#include <stdint.h>

#include "model/decode.h"

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
    int max_batch, max_prompt, max_new;
    /* decode batch: slot i of ds holds sequence slot_seq[i]; finished sequences are retired */
    int *slot_seq;          /* (max_batch) host */
    int *next;              /* (max_batch) host: the token each slot feeds to the next step */
    uint64_t *rng_stream;   /* (max_batch) host: per slot, the sampling stream and counter */
    uint64_t *rng_counter;  /* (max_batch) host */
    void *samp_dev;         /* backend: tokens (max_batch) int | logprob | prob_raw | entropy (max_batch) float */
    void *samp_host;        /* host copy of samp_dev */
    /* 1: a stopped sequence leaves the decode batch; 0: it stays in its slot, fed its last token, its
     * draws ignored. generator_init sets 1 except on the CPU backend: there OpenBLAS's blocking makes
     * the rounding of each row of a GEMM depend on the batch's row count and the row's place, so
     * retiring would change the last bits of every later logit, and CPU runs must reproduce bit for
     * bit what they gave before (the README demo). Callers may override it between calls. */
    int retire;
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
