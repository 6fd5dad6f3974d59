/* curricula/task.h: a problem of a task family, and the registry of procedurally generated
 * families. Every problem is a pure function of (family, difficulty, seed, index), so the same
 * seed gives the same problem and held-out sets are seed ranges that training never draws.
 *
 * A problem carries the prompt text (a question that asks for reasoning inside <think></think>
 * and the final answer inside <answer></answer>), the canonical answer, and a worked solution in
 * that format (the SFT target). Verifiers (rewards/) decide correctness from the answer text.
 */
#ifndef CISPO_CURRICULA_TASK_H
#define CISPO_CURRICULA_TASK_H

#include <stdint.h>

#define TASK_PROMPT_MAX 512
#define TASK_ANSWER_MAX 128
#define TASK_SOLUTION_MAX 1024

typedef struct {
    char family[24];                  /* "add", "runsum", ... or "jsonl" */
    int difficulty;                   /* family-specific knob, >= 1 */
    uint64_t id;                      /* index within its source */
    char prompt[TASK_PROMPT_MAX];
    char answer[TASK_ANSWER_MAX];     /* canonical answer */
    char solution[TASK_SOLUTION_MAX]; /* "<think>steps</think><answer>answer</answer>" */
    char data[TASK_ANSWER_MAX];       /* family-private data the verifier needs (e.g. countdown numbers) */
    const char *code_spec;            /* family "code": the tests as JSON (rewards/code_verify.h), borrowed
                                       * from the source that made the problem; NULL otherwise */
} Problem;

typedef struct {
    const char *name;
    const char *description;
    int min_difficulty, max_difficulty;
    /* Fill p for (difficulty, seed, index). noise in [0,1]: probability that each reasoning step of
     * the worked solution contains one plausible mistake (noisy demonstrations for SFT; the answer
     * then follows the mistaken steps); 0 gives a correct solution. Returns 0 or ERR_RANGE. */
    int (*generate)(Problem *p, int difficulty, uint64_t seed, uint64_t index, double noise);
    /* 1 if `answer` (the text inside <answer></answer>, already trimmed) is correct for p, else 0.
     * Strict: no partial credit, no leniency beyond the family's stated normalisation. */
    int (*verify)(const Problem *p, const char *answer);
} TaskFamily;

/* The registry: NULL-terminated list, and lookup by name (NULL if unknown). */
const TaskFamily *const *task_families(void);
const TaskFamily *task_family_find(const char *name);

#endif
