/* curricula/task_sort.c: "sort", sort a list of integers 0-99 ascending by selection
 * (difficulty d = list length, 2..12).
 *
 *   prompt   "sort 41,7,93,12"
 *   solution "<think>7|41,93,12;12|41,93;41|93</think><answer>7,12,41,93</answer>"
 *
 * One selection step per position: "m|rest", the smallest remaining value m and the values still
 * left in their original order; the last value is taken without a step.
 *
 * Noise: a step picks a remaining value that is larger than the minimum (when one exists); the
 * smaller value stays in the rest and is picked later, so the answer is out of order and wrong.
 *
 * Verifier: the comma-separated list must equal the sorted list exactly (no spaces, no leading
 * zeros, duplicates kept).
 */
#include <stdio.h>
#include <string.h>

#include "curricula/task_internal.h"

#define SORT_MAX_LEN 12

/* Index in rest[0..n) of the value to pick: the first minimum, or under a slip a random index
 * holding a larger value (unchanged when all values are equal). */
static int sort_pick(const int *rest, int n, int slip, TaskRng *nr) {
    int m = 0;
    for (int i = 1; i < n; i++)
        if (rest[i] < rest[m]) m = i;
    if (!slip) return m;
    int bigger[SORT_MAX_LEN], nb = 0;
    for (int i = 0; i < n; i++)
        if (rest[i] > rest[m]) bigger[nb++] = i;
    return nb > 0 ? bigger[task_rng_int(nr, 0, nb - 1)] : m;
}

static void sort_ints(int *v, int n) {
    for (int i = 1; i < n; i++)
        for (int j = i; j > 0 && v[j - 1] > v[j]; j--) {
            int t = v[j];
            v[j] = v[j - 1];
            v[j - 1] = t;
        }
}

static void print_list(TaskBuf *b, const int *v, int n) {
    for (int i = 0; i < n; i++) tbuf_printf(b, "%s%d", i > 0 ? "," : "", v[i]);
}

static int sort_generate(Problem *p, int d, uint64_t seed, uint64_t index, double noise) {
    int rc = task_check_args(&task_family_sort, d, noise);
    if (rc != 0) return rc;
    task_problem_init(p, "sort", d, index);
    TaskRng r, nr;
    task_rng_init(&r, "sort", d, seed, index, TASK_STREAM_PROBLEM);
    task_rng_init(&nr, "sort", d, seed, index, TASK_STREAM_NOISE);

    int v[SORT_MAX_LEN], rest[SORT_MAX_LEN], picked[SORT_MAX_LEN];
    for (int i = 0; i < d; i++) v[i] = task_rng_int(&r, 0, 99);
    TaskBuf pb, ab, sb, gb;
    char steps[TASK_SOLUTION_MAX], given[TASK_ANSWER_MAX];
    tbuf_init(&pb, p->prompt, sizeof(p->prompt));
    tbuf_printf(&pb, "sort ");
    print_list(&pb, v, d);

    memcpy(rest, v, sizeof(int) * (size_t)d);
    int n = d;
    tbuf_init(&sb, steps, sizeof(steps));
    for (int k = 0; k < d - 1; k++) {
        int slip = task_rng_chance(&nr, noise);
        int m = sort_pick(rest, n, slip, &nr);
        picked[k] = rest[m];
        memmove(rest + m, rest + m + 1, sizeof(int) * (size_t)(n - m - 1));
        n--;
        tbuf_printf(&sb, "%s%d|", k > 0 ? ";" : "", picked[k]);
        print_list(&sb, rest, n);
    }
    picked[d - 1] = rest[0];
    tbuf_init(&gb, given, sizeof(given));
    print_list(&gb, picked, d);
    sort_ints(v, d);
    tbuf_init(&ab, p->answer, sizeof(p->answer));
    print_list(&ab, v, d);
    return task_finish(p, steps, given, pb.overflow | ab.overflow | sb.overflow | gb.overflow);
}

static int sort_verify(const Problem *p, const char *answer) { return strcmp(answer, p->answer) == 0; }

const TaskFamily task_family_sort = {
    .name = "sort",
    .description = "sort d integers 0-99 ascending by selection",
    .min_difficulty = 2,
    .max_difficulty = SORT_MAX_LEN,
    .generate = sort_generate,
    .verify = sort_verify,
};
