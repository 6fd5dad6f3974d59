/* trainer/code_setup.h: the sandboxed code verifier of a run. When the dataset (data.jsonl) holds
 * code tasks, run_open sets up rewards/code_verify.h with the reward.code_* limits and runs the
 * sandbox self-check (RELIABILITY.md S2): a sandbox weaker than configured stops the run before
 * any step. Runs without code tasks start no sandbox.
 */
#ifndef CISPO_TRAINER_CODE_SETUP_H
#define CISPO_TRAINER_CODE_SETUP_H

#include "trainer/run.h"

/* Test hook: SBX_WEAKEN_* flags passed to the sandbox (so tests can show the refusal). Never set
 * outside tests. */
extern unsigned run_code_test_weaken;

/* Set r->code up when r->ps holds code tasks (else leave it NULL). Returns 0; ERR_CONFIG for bad
 * limits; ERR_UNSUPPORTED (message names the failed checks) when the self-check fails. */
int run_code_open(Run *r);
/* Free r->code (NULL afterwards); idempotent. */
void run_code_close(Run *r);

#endif
