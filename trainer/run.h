/* trainer/run.h: everything one command works with — the config, the backend context, the
 * policy model, the tokenizer, the problems and a generator — set up once (all buffers sized
 * here) and torn down once. The run directory gets the effective config.yaml.
 */
#ifndef CISPO_TRAINER_RUN_H
#define CISPO_TRAINER_RUN_H

#include "model/tokenizer.h"
#include "rollout/generate.h"
#include "trainer/problems.h"
#include "trainer/run_config.h"
#include "trainer/run_curriculum.h"

typedef struct {
    RunConfig rc;
    KernelCtx ctx;
    Model m;
    Tokenizer tok;
    ProblemSet ps;
    RunCurriculum cur; /* output budget and task curriculum (off unless configured) */
    Generator gen;
    int max_prompt;   /* longest prompt (tokens) the buffers hold */
    int max_sft;      /* longest SFT sequence (prompt + solution + EOS) */
    int gen_batch;    /* sequences the generator decodes together */
    int mb_seqs;      /* responses per learner mini-batch */
    struct Dist *dist; /* the ranks of a multi-rank run (trainer/dist.h); NULL for a single process */
    struct CodeVerifier_ *code; /* code tasks: the sandboxed verifier (trainer/code_setup.h); NULL: none */
} Run;

/* `model_dir` (may be NULL) overrides model.path. Creates rc.dir and, when write_config (training
 * commands), writes the effective config.yaml there; evaluation leaves a run directory's files alone. */
int run_open(Run *r, const RunConfig *rc, const char *model_dir, int write_config);
void run_close(Run *r);
/* Write the effective config to RUN_DIR/config.yaml (temp file + rename). */
int run_save_config(const Run *r);

#endif
