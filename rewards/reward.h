/* rewards/reward.h: scoring a response. The response text (decoded) must have the form
 *   [<think> reasoning </think>] <answer> final answer </answer>
 * Format and correctness are kept apart: `format_ok` says whether exactly one answer tag pair
 * closes the response (after </think> when a think block is present); `correct` is the family
 * verifier's verdict on the trimmed answer text (0 when the format is broken).
 */
#ifndef CISPO_REWARDS_REWARD_H
#define CISPO_REWARDS_REWARD_H

#include "curricula/task.h"

struct CodeVerifier_;

typedef struct {
    float correct_reward;  /* reward for a correct answer (default 1) */
    float wrong_reward;    /* reward for a wrong answer (default 0) */
    float format_penalty;  /* added when the format is broken (default -0.5... configurable) */
    struct CodeVerifier_ *code; /* family "code": the sandboxed verifier (rewards/code_verify.h); NULL: none */
} RewardConfig;

typedef struct {
    int format_ok;
    int correct;
    float reward;          /* correct ? correct_reward : wrong_reward, + format_penalty if !format_ok;
                            * code tasks: wrong + score * (correct - wrong), score = tests passed (fraction or 0/1) */
    int masked;            /* 1: the verifier could not score (code sandbox infrastructure failure):
                            * the caller must drop the sample from the loss and count it; reward is 0 */
    char answer[TASK_ANSWER_MAX]; /* the extracted answer text ("" if none) */
} RewardResult;

/* Extract the answer text from a response. Returns 1 when the format is ok (answer copied,
 * trimmed), 0 otherwise (answer gets whatever could be salvaged, possibly ""). */
int reward_extract_answer(const char *response, char *answer, int cap);
/* Score `response` for problem p with the verifier of p->family (or the math verifier for
 * "jsonl", the sandboxed code verifier rc->code for "code"). Returns 0, ERR_NOTFOUND for an unknown
 * family, ERR_UNSUPPORTED for a code task without a ready verifier, ERR_FORMAT for a code task
 * with bad tests (message set). */
int reward_score(const RewardConfig *rc, const Problem *p, const char *response, RewardResult *out);

/* The math-answer verifier: 1 if `given` equals `expected` after normalisation (integers with
 * signs and thousands separators, decimals, fractions a/b, \boxed{...}, surrounding $ and spaces;
 * numbers compared exactly as rationals). Non-numeric answers compare as trimmed strings. */
int reward_math_equal(const char *given, const char *expected);

#endif
