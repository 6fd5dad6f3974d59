/* rewards/code_verify.h: the code verifier. A response's program (Python 3 or C) runs against a
 * code task's tests inside the sandbox (rewards/sandbox.h); the score is the fraction of tests
 * passed, or 0/1 when all_or_nothing.
 *
 * A task's tests come as a JSON object (a code task's JSONL line carries it, curricula/jsonl_source.h):
 *   {"language": "python" | "c",                         optional, default "python"
 *    "tests": [{"input": "1 2\n", "output": "3\n"}, ...],  stdin/stdout pairs, and/or
 *    "test_program": "import subprocess ..."}              a Python 3 checker: one test, passed when
 *                                                         it exits 0; it runs in the sandbox with the
 *                                                         candidate at /box/solution.py (Python) or
 *                                                         /box/solution (C, compiled)
 * Outputs are compared token by token (runs of whitespace are equal; leading/trailing whitespace
 * ignored). A test passes when the program exits 0 within the limits and its output matches.
 *
 * The program is the text inside <answer>...</answer> (the reward format), or the body of the first
 * ``` fence in it; a fence tag "python"/"py"/"python3" or "c" overrides the task's language.
 *
 * Infrastructure failures (the sandbox could not start a run, a temporary folder could not be made,
 * the machine too overloaded to start the program in time) make the verdict `infra`: the caller
 * masks the sample (no reward, no loss) and counts it; it is never scored as a wrong answer.
 */
#ifndef CISPO_REWARDS_CODE_VERIFY_H
#define CISPO_REWARDS_CODE_VERIFY_H

#include <stdatomic.h>
#include <stddef.h>

#include "rewards/sandbox.h"

#define CODE_MAX_TESTS 256

typedef struct CodeVerifier_ {
    SandboxConfig run;       /* limits of one test run */
    SandboxConfig compile;   /* limits of the C compile step (derived from run: 10x wall/CPU, >= 512 MiB) */
    int all_or_nothing;      /* 1: score 1 only when every test passes */
    char work_root[256];     /* parent of the per-response folders (default "/tmp") */
    int ready;               /* 1 once the self-check passed; code_verify refuses otherwise */
    atomic_long n_programs, n_runs, n_infra; /* counters: programs verified, sandbox runs, infra failures */
} CodeVerifier;

typedef struct {
    int n_tests, n_passed;
    int compiled;            /* 0: the C program did not compile (all tests failed) */
    int infra;               /* 1: infrastructure failure; score is meaningless, mask the sample */
    float score;             /* in [0, 1] */
    char why[256];           /* first failure, for logs ("test 3: wrong answer", "compile error: ...") */
} CodeVerdict;

/* Set v up with run limits `run` (NULL: sandbox defaults) and run the sandbox self-check.
 * Returns 0, ERR_CONFIG for bad limits, or ERR_UNSUPPORTED when the sandbox is weaker than
 * configured (v->ready stays 0 and code_verify refuses). */
int code_verifier_init(CodeVerifier *v, const SandboxConfig *run, int all_or_nothing, const char *work_root);

/* Verify `program` (source text; lang "python" or "c", NULL: the spec's language) against the
 * tests in spec_json. Returns 0 with *out filled (including infra verdicts), ERR_FORMAT for a bad
 * spec (message names what is wrong), ERR_UNSUPPORTED when v is not ready. */
int code_verify(CodeVerifier *v, const char *spec_json, const char *program, const char *lang, CodeVerdict *out);

/* Find the program in an answer text: [*begin, *begin + *len) and the fence's language into lang
 * ("" when there is no tag or no fence). */
void code_extract_program(const char *answer, const char **begin, size_t *len, char *lang, size_t lang_cap);

/* 1 if a and b hold the same whitespace-separated tokens. */
int code_output_equal(const char *a, size_t a_len, const char *b, size_t b_len);

#endif
