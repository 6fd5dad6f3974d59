/* trainer/problems.h: the problems a run trains and evaluates on, and how they become tokens.
 *
 * A ProblemSet draws problems either from the procedurally generated task families named in
 * data.tasks (uniform over families, difficulty uniform in [difficulty_min, difficulty_max], all
 * from the counter-based generator: problem i of seed s is always the same) or from a JSONL
 * dataset. The held-out set uses data.eval_seed; training problems whose prompt also appears in
 * the held-out set are skipped, so evaluation never sees a trained prompt.
 *
 * Token layout: prompt = BOS (when the tokenizer has one) + prompt text + "\n", or, with a chat
 * template (data.chat_template), the template's system turn + user turn + generation prompt; the
 * model then writes "<think>...</think><answer>...</answer>" and EOS (the template's end of turn).
 */
#ifndef CISPO_TRAINER_PROBLEMS_H
#define CISPO_TRAINER_PROBLEMS_H

#include <stdint.h>

#include "curricula/jsonl_source.h"
#include "curricula/task.h"
#include "model/tokenizer.h"
#include "trainer/run_config.h"

#define PROBLEMS_MAX_FAMILIES 16

typedef struct {
    const TaskFamily *fam[PROBLEMS_MAX_FAMILIES];
    int n_fam;
    int dmin, dmax;
    double noise;           /* demonstration noise for SFT solutions */
    JsonlSource *jsonl;     /* non-NULL: dataset mode */
    long jsonl_eval_start;  /* dataset mode: lines [eval_start, n) are held out */
    uint64_t seed, eval_seed;
    int eval_size;
    uint64_t *eval_hash;    /* (eval_size) sorted hashes of held-out prompts */
} ProblemSet;

int problems_init(ProblemSet *ps, const RunConfig *rc);
void problems_free(ProblemSet *ps);
/* Training problem number i (skips held-out collisions deterministically). */
void problems_train(const ProblemSet *ps, uint64_t i, Problem *p);
/* Training problem number i of family fam (index into ps->fam) at `difficulty` (the task
 * curriculum's draw; dataset mode ignores both and returns line i). */
void problems_train_in(const ProblemSet *ps, int fam, int difficulty, uint64_t i, Problem *p);
/* A 64-bit identity of a problem (hash of its prompt), for per-problem statistics. */
uint64_t problems_key(const Problem *p);
/* Held-out problem number i in [0, eval_size). */
void problems_eval(const ProblemSet *ps, int i, Problem *p);

/* Prompt tokens into out (cap); returns the count or -1 if it does not fit. */
int problems_prompt_tokens(const Tokenizer *tok, const Problem *p, int *out, int cap);
/* Prompt + worked solution + EOS into out, with *n_prompt set to the prompt's length; -1 if too long. */
int problems_sft_tokens(const Tokenizer *tok, const Problem *p, int *out, int cap, int *n_prompt);

#endif
