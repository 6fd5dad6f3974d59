/* rewards/genrm.h: a generative reward model (GenRM): a policy-format model, served by cispo's own
 * inference path (model/ + rollout/generate, greedy), reads a judge prompt (curricula/judge_prompt.h)
 * and writes its verdict as "<answer>VERDICT</answer>".
 *
 * Modes (ALGORITHMS.md §9, M1 §4):
 *   pairwise  the response against a reference answer: "better" +1, "same" 0, "worse" -1 (M1's
 *             -1/0/+1 pairwise score); the score is the reward.
 *   grade     the response against the ground truth on five grades "1".."5": score (g - 3) / 2 in
 *             [-1, 1]; reward = wrong + (correct - wrong) * (score + 1) / 2.
 * Position swap (GenrmConfig.swap): every item is judged twice, with the response line after and
 * before the reference line; the item's score is the mean of the verdicts that parsed (0 when none
 * did), and `consistent` says both parsed and agreed. A verdict that does not parse counts as a
 * parse failure, never as a guess.
 *
 * Memory: genrm_init allocates everything for max_batch judge prompts of at most max_prompt tokens;
 * genrm_score does not allocate. The judge model belongs to the caller (sized by
 * genrm_model_tokens / max_batch sequences).
 */
#ifndef CISPO_REWARDS_GENRM_H
#define CISPO_REWARDS_GENRM_H

#include "curricula/judge_prompt.h"
#include "model/tokenizer.h"
#include "rollout/generate.h"

typedef enum { GENRM_OFF = 0, GENRM_PAIRWISE = 1, GENRM_GRADE = 2 } GenrmMode;

typedef struct {
    GenrmMode mode;
    int swap;                   /* judge in both orders and average */
    int max_new;                /* the judge's output budget (tokens) */
    float correct_reward;       /* grade mode: reward of grade 5 */
    float wrong_reward;         /* grade mode: reward of grade 1 */
} GenrmConfig;

typedef struct {
    float score;    /* in [-1, 1]: mean over the verdicts that parsed */
    float reward;   /* the score mapped to a reward (see above) */
    int n_parsed;   /* verdicts that parsed (0..2) */
    int consistent; /* swap on: both parsed and agreed */
} GenrmVerdict;

typedef struct {
    GenrmConfig cfg;
    Model *m;
    const Tokenizer *tok;
    Generator gen;
    int max_batch, max_prompt; /* judge prompts per generate call, tokens per prompt */
    int *ptok, *start;         /* (max_batch, max_prompt) (max_batch + 1) */
    float *scores;             /* (max_batch) */
    int *parsed;               /* (max_batch) */
    char *text;                /* (GENRM_TEXT_MAX) */
    long n_judgements, n_parse_fail; /* running counts (every generated verdict) */
} Genrm;

#define GENRM_TEXT_MAX 4096

/* "off" | "pairwise" | "grade" -> mode; -1 if unknown. */
int genrm_mode_parse(const char *s);
/* Tokens the judge model must hold per forward for max_batch prompts of max_prompt tokens. */
int genrm_model_tokens(int max_batch, int max_prompt);
int genrm_init(Genrm *g, Model *judge, const Tokenizer *tok, const GenrmConfig *cfg, int max_batch, int max_prompt);
void genrm_free(Genrm *g); /* idempotent */

/* The judge prompt for one item (swapped: response line first); -1 if it does not fit cap. */
int genrm_build_prompt(char *out, size_t cap, GenrmMode mode, const char *question, const char *reference,
                       const char *response, int swapped);
/* Parse the judge's decoded output: 1 and *score in [-1, 1] when the answer is a verdict of the
 * mode (case-insensitive, surrounding spaces ignored), else 0. */
int genrm_parse_verdict(GenrmMode mode, const char *judge_output, float *score);
/* Combine the verdicts of one item (s[i] valid when parsed[i]; n = 1 or 2) into v. */
void genrm_combine(const GenrmConfig *cfg, const float *s, const int *parsed, int n, GenrmVerdict *v);

/* Judge n items: question[i], reference[i], response[i] -> out[i]. Greedy decoding, so the result
 * is a function of the texts and the judge's weights. Returns 0, or ERR_RANGE when a prompt does not
 * fit max_prompt tokens (message names the item). */
int genrm_score(Genrm *g, int n, const char *const *question, const char *const *reference,
                const char *const *response, GenrmVerdict *out);

/* Length-bias monitoring over n responses: *corr = Pearson correlation of reward and length (0 when
 * either is constant); *gap = mean over correctness classes (correct[i] 0/1) of
 * mean(reward | length above the class median) - mean(reward | at or below it), weighted by class
 * size, over the classes where both halves are non-empty (0 when none is). */
void genrm_length_bias(const float *reward, const int *len, const int *correct, int n, double *corr, double *gap);

#endif
