/* trainer/eval.h: held-out evaluation: eval.samples responses per held-out problem at
 * eval.temperature / eval.top_p; pass@1 is the mean correctness over all samples (avg@k, M1's
 * metric), pass@k the fraction of problems with at least one correct sample. The random draws are
 * the same at every evaluation of a run (common random numbers), so before/after comparisons are
 * not blurred by sampling noise. */
#ifndef CISPO_TRAINER_EVAL_H
#define CISPO_TRAINER_EVAL_H

#include "rewards/reward.h"
#include "trainer/run.h"

typedef struct {
    int n_problems, k;
    double pass1, passk, format_rate;
    double len_mean, len_p50, len_p99;
    int stops[4]; /* by StopReason */
    long n_masked; /* samples whose reward was masked (code sandbox infrastructure failure): left out of the rates */
    double seconds, tokens_per_s;
} EvalResult;

int eval_run(Run *r, EvalResult *res);
/* Decode a response (tokens up to, not including, EOS) and score it for p. */
void score_response(const Run *r, const Problem *p, const int *tok, int n, RewardResult *out);
/* One line: "pass@1 0.412  pass@4 0.750  format 0.98  len p50 31 p99 48  (128 problems x 4)". */
void eval_format(const EvalResult *e, char *buf, size_t cap);

#endif
