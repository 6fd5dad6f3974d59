/* bench/bench_genrm.c: GenRM scoring throughput (judgements/s): a judge scores N (question,
 * reference, response) items of the judge task (curricula/task_judge.c, add with 1-3 digits) in
 * pairwise mode with the position swap (two judgements per item), greedy, through
 * rewards/genrm.h on cispo's own decode path, B judge prompts per generate call.
 *
 * Usage: bench_genrm [--path JUDGE_DIR] [--n N] [--batch B] [--threads T] [--max-new M]
 * Without --path the judge is the demo-sized model (configs/demo.yaml defaults) with random weights;
 * a random judge rarely stops early, so every judgement runs to the output budget (the worst case).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "core/error.h"
#include "core/version.h"
#include "curricula/task.h"
#include "trainer/genrm_setup.h"
#include "trainer/model_setup.h"

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec * 1e-9;
}

int main(int argc, char **argv) {
    const char *path = NULL;
    int n = 256, B = 32, threads = 1, max_new = 16;
    for (int i = 1; i + 1 < argc; i += 2) {
        if (!strcmp(argv[i], "--path")) path = argv[i + 1];
        else if (!strcmp(argv[i], "--n")) n = atoi(argv[i + 1]);
        else if (!strcmp(argv[i], "--batch")) B = atoi(argv[i + 1]);
        else if (!strcmp(argv[i], "--threads")) threads = atoi(argv[i + 1]);
        else if (!strcmp(argv[i], "--max-new")) max_new = atoi(argv[i + 1]);
    }
    kernels_cpu_set_threads(threads);
    Tokenizer tok;
    tokenizer_byte_init(&tok);
    const int P = 96;
    GenrmConfig gc = {GENRM_PAIRWISE, 1, max_new, 1.0f, 0.0f};
    GenrmJudge j;
    Genrm *g;
    KernelCtx ctx;
    Model m;
    if (path) {
        char pk[600], tk[32];
        snprintf(pk, sizeof pk, "reward.genrm_path=%s", path);
        snprintf(tk, sizeof tk, "reward.genrm_max_new=%d", max_new);
        char *ov[] = {pk, "reward.genrm_mode=pairwise", tk};
        RunConfig rc;
        if (run_config_load(&rc, NULL, 3, ov) || genrm_judge_open(&j, &rc, &tok, B, P)) {
            fprintf(stderr, "bench_genrm: %s\n", err_msg());
            return 1;
        }
        g = &j.g;
    } else {
        RunConfig rc;
        ModelConfig mc;
        CHECK(run_config_load(&rc, NULL, 0, NULL) == 0 && run_config_model_config(&rc, &mc) == 0, "%s", err_msg());
        kernel_ctx_init(&ctx, kernels_cpu(), model_ws_bytes(&mc, kernels_cpu(), genrm_model_tokens(B, P)));
        CHECK(model_init(&m, &mc, &ctx, genrm_model_tokens(B, P), B) == 0, "%s", err_msg());
        model_init_weights(&m, 1, 0.02f);
        g = xmalloc(sizeof *g);
        CHECK(genrm_init(g, &m, &tok, &gc, B, P) == 0, "%s", err_msg());
    }
    Problem *p = xmalloc((size_t)n * sizeof(Problem)), base;
    char (*q)[TASK_PROMPT_MAX] = xmalloc((size_t)n * TASK_PROMPT_MAX), (*ref)[TASK_ANSWER_MAX] = xmalloc((size_t)n * TASK_ANSWER_MAX);
    const char **qs = xmalloc((size_t)n * sizeof(char *)), **rs = xmalloc((size_t)n * sizeof(char *)),
               **ps = xmalloc((size_t)n * sizeof(char *));
    for (int i = 0; i < n; i++) {
        task_family_find("judge")->generate(&p[i], 1 + i % 3, 99, (uint64_t)i, 0.0);
        task_family_find("add")->generate(&base, 1 + i % 3, 99, (uint64_t)i, 0.0);
        snprintf(q[i], TASK_PROMPT_MAX, "%s", base.prompt);
        snprintf(ref[i], TASK_ANSWER_MAX, "%s", base.answer);
        qs[i] = q[i], rs[i] = ref[i], ps[i] = p[i].data;
    }
    GenrmVerdict *v = xmalloc((size_t)n * sizeof(GenrmVerdict));
    genrm_score(g, B / 2 < n ? B / 2 : n, qs, rs, ps, v); /* warm-up */
    long j0 = g->n_judgements;
    double t0 = now_s();
    CHECK(genrm_score(g, n, qs, rs, ps, v) == 0, "%s", err_msg());
    double dt = now_s() - t0;
    long nj = g->n_judgements - j0;
    printf("| judge | items | judgements | batch | threads | budget | seconds | judgements/s | items/s |\n");
    printf("|---|---|---|---|---|---|---|---|---|\n");
    printf("| %s (%zu params) | %d | %ld | %d | %d | %d | %.2f | %.1f | %.1f |\n", path ? path : "demo-size random",
           g->m->n_params, n, nj, B, threads, max_new, dt, nj / dt, n / dt);
    printf("commit %s\n", cispo_version());
    return 0;
}
