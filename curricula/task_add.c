/* curricula/task_add.c: "add", addition of two d-digit numbers (difficulty d = 1..12).
 *
 *   prompt   "4821+5937="           (both operands have d digits; leading digit non-zero for d > 1)
 *   solution "<think>1+7=8 c0;2+3=5 c0;8+9=17 c1;4+5+1=10 c1</think><answer>10758</answer>"
 *
 * One step per column, least significant first: "a+b[+1]=s cK" with the carry
 * in written as "+1" when present, s the column sum and K the carry out; the answer's digits are
 * the last digits of the column sums, read from the last column back, after a final carry.
 *
 * Noise: a step's column sum is off by one (kept within 0..19); the mistaken digit and carry
 * propagate. The answer is then the true sum plus sum_i delta_i 10^i over the slipped columns,
 * which is never zero for distinct columns, so a noisy solution is always wrong.
 *
 * Verifier: the answer must equal the canonical decimal sum exactly (no sign, separators or
 * leading zeros).
 */
#include <inttypes.h>
#include <string.h>

#include "curricula/task_internal.h"

#define ADD_MAX_DIGITS 12

static int add_generate(Problem *p, int d, uint64_t seed, uint64_t index, double noise) {
    int rc = task_check_args(&task_family_add, d, noise);
    if (rc != 0) return rc;
    task_problem_init(p, "add", d, index);
    TaskRng r, nr;
    task_rng_init(&r, "add", d, seed, index, TASK_STREAM_PROBLEM);
    task_rng_init(&nr, "add", d, seed, index, TASK_STREAM_NOISE);

    int a[ADD_MAX_DIGITS], b[ADD_MAX_DIGITS]; /* digits, least significant first */
    uint64_t va = 0, vb = 0;
    for (int i = d - 1; i >= 0; i--) {
        int lo = (i == d - 1 && d > 1) ? 1 : 0;
        a[i] = task_rng_int(&r, lo, 9);
        b[i] = task_rng_int(&r, lo, 9);
        va = va * 10 + (uint64_t)a[i];
        vb = vb * 10 + (uint64_t)b[i];
    }
    TaskBuf pb, ab, sb;
    char steps[TASK_SOLUTION_MAX], given[TASK_ANSWER_MAX];
    tbuf_init(&pb, p->prompt, sizeof(p->prompt));
    tbuf_printf(&pb, "%" PRIu64 "+%" PRIu64 "=", va, vb);
    tbuf_init(&ab, p->answer, sizeof(p->answer));
    tbuf_printf(&ab, "%" PRIu64, va + vb);

    int digit[ADD_MAX_DIGITS + 1], carry = 0;
    tbuf_init(&sb, steps, sizeof(steps));
    for (int i = 0; i < d; i++) {
        int s = a[i] + b[i] + carry;
        if (task_rng_chance(&nr, noise)) {
            int delta = task_rng_sign(&nr);
            if (s + delta < 0 || s + delta > 19) delta = -delta;
            s += delta;
        }
        tbuf_printf(&sb, "%s%d+%d%s=%d c%d", i > 0 ? ";" : "", a[i], b[i], carry ? "+1" : "", s, s / 10);
        digit[i] = s % 10;
        carry = s / 10;
    }
    int nd = d;
    if (carry) digit[nd++] = carry;
    TaskBuf gb;
    tbuf_init(&gb, given, sizeof(given));
    int started = 0;
    for (int i = nd - 1; i >= 0; i--) {
        if (!started && digit[i] == 0 && i > 0) continue; /* a slip can zero the leading digit */
        started = 1;
        tbuf_printf(&gb, "%d", digit[i]);
    }
    return task_finish(p, steps, given, pb.overflow | ab.overflow | sb.overflow | gb.overflow);
}

static int add_verify(const Problem *p, const char *answer) { return strcmp(answer, p->answer) == 0; }

const TaskFamily task_family_add = {
    .name = "add",
    .description = "sum of two d-digit numbers, column by column with carries",
    .min_difficulty = 1,
    .max_difficulty = ADD_MAX_DIGITS,
    .generate = add_generate,
    .verify = add_verify,
};
