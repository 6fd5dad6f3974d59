/* rewards/reward.h: scoring a response. The response text (decoded) must have the form
 *   [<think> reasoning </think>] <answer> final answer </answer>
 * Format and correctness are kept apart: `format_ok` says whether exactly one answer tag pair
 * closes the response (after </think> when a think block is present); `correct` is the family
 * verifier's verdict on the trimmed answer text (0 when the format is broken).
 */
#ifndef CISPO_REWARDS_REWARD_H
#define CISPO_REWARDS_REWARD_H

#include "curricula/task.h"

typedef struct {
    float correct_reward;  /* reward for a correct answer (default 1) */
    float wrong_reward;    /* reward for a wrong answer (default 0) */
    float format_penalty;  /* added when the format is broken (default -0.5... configurable) */
} RewardConfig;

typedef struct {
    int format_ok;
    int correct;
    float reward;          /* correct ? correct_reward : wrong_reward, + format_penalty if !format_ok */
    char answer[TASK_ANSWER_MAX]; /* the extracted answer text ("" if none) */
} RewardResult;

/* Extract the answer text from a response. Returns 1 when the format is ok (answer copied,
 * trimmed), 0 otherwise (answer gets whatever could be salvaged, possibly ""). */
int reward_extract_answer(const char *response, char *answer, int cap);
/* Score `response` for problem p with the verifier of p->family (or the math verifier for
 * "jsonl"). Returns 0, or ERR_NOTFOUND for an unknown family (message set). */
int reward_score(const RewardConfig *rc, const Problem *p, const char *response, RewardResult *out);

/* The math-answer verifier: 1 if `given` equals `expected` after normalisation (integers with
 * signs and thousands separators, decimals, fractions a/b, \boxed{...}, surrounding $ and spaces;
 * numbers compared exactly as rationals). Non-numeric answers compare as trimmed strings. */
int reward_math_equal(const char *given, const char *expected);

#endif
