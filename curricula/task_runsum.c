/* curricula/task_runsum.c: "runsum", the sum of a list of digits by running totals
 * (difficulty d = number of terms, 2..30; terms 1-9), the task of ALGORITHMS.md §14.
 *
 *   prompt   "3+5+9+2="
 *   solution "<think>3,8,17,19</think><answer>19</answer>"
 *
 * The reasoning is the list of running totals, the first being the first term. It is kept this
 * compact on purpose: with 4 terms the prompt is 8 byte tokens and the solution 15.
 *
 * Noise: a running total (after the first) is off by one and later totals build on it. A slip
 * that would cancel the error made so far goes the other way, so a noisy solution is always
 * wrong.
 *
 * Verifier: the canonical decimal sum, exactly.
 */
#include <stdio.h>
#include <string.h>

#include "curricula/task_internal.h"

#define RUNSUM_MAX_TERMS 30

static int runsum_generate(Problem *p, int d, uint64_t seed, uint64_t index, double noise) {
    int rc = task_check_args(&task_family_runsum, d, noise);
    if (rc != 0) return rc;
    task_problem_init(p, "runsum", d, index);
    TaskRng r, nr;
    task_rng_init(&r, "runsum", d, seed, index, TASK_STREAM_PROBLEM);
    task_rng_init(&nr, "runsum", d, seed, index, TASK_STREAM_NOISE);

    TaskBuf pb, sb;
    char steps[TASK_SOLUTION_MAX], given[TASK_ANSWER_MAX];
    tbuf_init(&pb, p->prompt, sizeof(p->prompt));
    tbuf_init(&sb, steps, sizeof(steps));
    int total = 0, shown = 0; /* true and written running totals */
    for (int i = 0; i < d; i++) {
        int v = task_rng_int(&r, 1, 9);
        tbuf_printf(&pb, "%s%d", i > 0 ? "+" : "", v);
        total += v;
        shown += v;
        if (i > 0 && task_rng_chance(&nr, noise)) {
            int delta = task_rng_sign(&nr);
            if (shown + delta == total) delta = -delta;
            shown += delta;
        }
        tbuf_printf(&sb, "%s%d", i > 0 ? "," : "", shown);
    }
    tbuf_printf(&pb, "=");
    snprintf(p->answer, sizeof(p->answer), "%d", total);
    snprintf(given, sizeof(given), "%d", shown);
    return task_finish(p, steps, given, pb.overflow | sb.overflow);
}

static int runsum_verify(const Problem *p, const char *answer) { return strcmp(answer, p->answer) == 0; }

const TaskFamily task_family_runsum = {
    .name = "runsum",
    .description = "sum of d digits 1-9, written as running totals",
    .min_difficulty = 2,
    .max_difficulty = RUNSUM_MAX_TERMS,
    .generate = runsum_generate,
    .verify = runsum_verify,
};
