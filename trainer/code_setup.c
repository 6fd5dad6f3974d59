/* trainer/code_setup.c: see code_setup.h. The sandbox limits come from the reward.code_* keys on
 * top of sandbox_config_default (uid 65534, file and /tmp caps); code_verifier_init checks them
 * and runs the self-check once, at start-up. */
#include "trainer/code_setup.h"

#include <stdio.h>
#include <stdlib.h>

#include "core/error.h"
#include "core/log.h"
#include "rewards/code_verify.h"

unsigned run_code_test_weaken;

/* 1 if the dataset holds at least one code task. */
static int has_code_tasks(const ProblemSet *ps) {
    if (ps->jsonl == NULL) return 0;
    for (long i = 0; i < ps->jsonl->n; i++)
        if (ps->jsonl->entries[i].is_code) return 1;
    return 0;
}

int run_code_open(Run *r) {
    const RunConfig *c = &r->rc;
    r->code = NULL;
    if (!has_code_tasks(&r->ps)) return 0;
    SandboxConfig sc;
    sandbox_config_default(&sc);
    sc.wall_ms = c->code_wall_ms;
    sc.cpu_s = c->code_cpu_s;
    sc.mem_bytes = (long)c->code_mem_mib << 20;
    sc.pids_max = c->code_pids;
    sc.output_max_bytes = (long)c->code_output_kib << 10;
    sc.test_weaken = run_code_test_weaken;
    CodeVerifier *v = xcalloc(1, sizeof(CodeVerifier));
    int err = code_verifier_init(v, &sc, c->code_all_or_nothing, c->code_work_root);
    if (err) {
        char why[1024];
        snprintf(why, sizeof why, "%s", err_msg()); /* err_set overwrites the message it would read */
        free(v);
        return err_set(err, "data.jsonl %s has code tasks, but the code sandbox cannot be used:\n%s\n"
                            "HINT: code rewards need bubblewrap, libseccomp, cgroups and python3 "
                            "(docs/reliability.md, \"Code sandbox and fuzzing\"); the run refuses to start",
                       c->jsonl, why);
    }
    r->code = v;
    log_info("code tasks: sandbox self-check passed (wall %d ms, %d MiB, %d pids, %s reward)", sc.wall_ms,
             c->code_mem_mib, sc.pids_max, c->code_all_or_nothing ? "all-or-nothing" : "fraction-of-tests");
    return 0;
}

void run_code_close(Run *r) {
    if (r == NULL || r->code == NULL) return;
    log_info("code verifier: %ld programs, %ld sandbox runs, %ld infrastructure failures (masked)",
             atomic_load(&r->code->n_programs), atomic_load(&r->code->n_runs), atomic_load(&r->code->n_infra));
    free(r->code);
    r->code = NULL;
}
