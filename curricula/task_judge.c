/* curricula/task_judge.c: "judge", SFT data for a generative reward model (rewards/genrm.h): is this
 * answer the reference's? Difficulty d = the digit count of an underlying "add" problem (1..6).
 *
 *   prompt   judge_prompt(pairwise, "4821+5937=", reference "10758", response R, swapped)
 *   answer   "same" when R is the reference answer, else "worse" (the reference is correct)
 *   solution "<think>11=00=75x55=88=</think><answer>worse</answer>"   (R = 10758 against REF = 10558)
 *
 * The worked reasoning aligns the two answers digit by digit: for each position a triple "rfm" of
 * the response's digit r, the reference's digit f and a mark m ('=' equal, 'x' different), and the
 * verdict is "same" exactly when no mark is 'x'. Each mark depends only on the two tokens before
 * it and the verdict only on whether an 'x' occurred, both local decisions a small byte-level
 * transformer learns; the earlier form "R vs REF" left the whole comparison to the single verdict
 * token and a tiny judge learned to copy the numbers but not to compare them (chance accuracy).
 *
 * R is the reference with probability 1/2, else the reference with one digit replaced by another;
 * the response line comes first with probability 1/2 (the GenRM position swap). Noise: the label is
 * flipped with probability `noise` (mislabelled demonstrations). Verifier: exact verdict word.
 */
#include <stdio.h>
#include <string.h>

#include "curricula/judge_prompt.h"
#include "curricula/task_internal.h"

#define JUDGE_MAX_DIGITS 6

static int judge_generate(Problem *p, int d, uint64_t seed, uint64_t index, double noise) {
    int rc = task_check_args(&task_family_judge, d, noise);
    if (rc != 0) return rc;
    Problem base;
    if ((rc = task_family_add.generate(&base, d, seed, index, 0.0)) != 0) return rc;
    task_problem_init(p, "judge", d, index);
    TaskRng r, nr;
    task_rng_init(&r, "judge", d, seed, index, TASK_STREAM_PROBLEM);
    task_rng_init(&nr, "judge", d, seed, index, TASK_STREAM_NOISE);
    char resp[TASK_ANSWER_MAX];
    snprintf(resp, sizeof resp, "%s", base.answer);
    const int same = task_rng_chance(&r, 0.5), swapped = task_rng_chance(&r, 0.5);
    const int pos = task_rng_int(&r, 0, (int)strlen(resp) - 1), delta = task_rng_int(&r, 1, 9);
    if (!same) resp[pos] = (char)('0' + (resp[pos] - '0' + delta) % 10);
    int label_same = task_rng_chance(&nr, noise) ? !same : same;
    if (judge_prompt(p->prompt, sizeof p->prompt, JUDGE_PAIRWISE, base.prompt, base.answer, resp, swapped) < 0)
        return task_finish(p, "", "", 1);
    snprintf(p->answer, sizeof p->answer, "%s", same ? "same" : "worse");
    snprintf(p->data, sizeof p->data, "%s", resp);
    char steps[3 * TASK_ANSWER_MAX];
    const size_t n = strlen(resp); /* == strlen(base.answer): a replaced digit keeps the length */
    for (size_t i = 0; i < n; i++) {
        steps[3 * i] = resp[i], steps[3 * i + 1] = base.answer[i];
        steps[3 * i + 2] = resp[i] == base.answer[i] ? '=' : 'x';
    }
    steps[3 * n] = '\0';
    return task_finish(p, steps, label_same ? "same" : "worse", 0);
}

static int judge_verify(const Problem *p, const char *answer) { return strcmp(answer, p->answer) == 0; }

const TaskFamily task_family_judge = {
    .name = "judge",
    .description = "GenRM training: is the response the reference answer? (pairwise verdict same / worse)",
    .min_difficulty = 1,
    .max_difficulty = JUDGE_MAX_DIGITS,
    .generate = judge_generate,
    .verify = judge_verify,
};
