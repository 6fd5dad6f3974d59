/* curricula/judge_prompt.h: the prompt a generative reward model (GenRM, rewards/genrm.h) reads,
 * shared by the judge task family (task_judge.c, its SFT data) and the GenRM that scores responses,
 * so that the judge is trained on exactly the text it later sees.
 *
 * Two modes (M1 §4: pairwise comparison with a reference answer, and grading against ground truth):
 *   pairwise  "Compare.\nQ: QUESTION\nReference: REF\nResponse: RESP"  -> "better" | "same" | "worse"
 *   grade     "Grade 1-5.\nQ: QUESTION\nTruth: REF\nResponse: RESP"    -> "1" .. "5"
 * The verdict is always about the response relative to the reference; the position swap puts the
 * response line before the reference line (the labels move with the texts), so averaging the two
 * orders cancels a judge's preference for the first or the second position. The judge answers in
 * the project's format, "<answer>VERDICT</answer>".
 */
#ifndef CISPO_CURRICULA_JUDGE_PROMPT_H
#define CISPO_CURRICULA_JUDGE_PROMPT_H

#include <stddef.h>

typedef enum { JUDGE_PAIRWISE = 0, JUDGE_GRADE = 1 } JudgeMode;

/* Write the judge prompt into out (cap bytes, NUL-terminated). Returns its length, or -1 when it
 * does not fit (out then holds a truncated prefix). */
int judge_prompt(char *out, size_t cap, JudgeMode mode, const char *question, const char *reference,
                 const char *response, int swapped);

#endif
