/* curricula/task_mul.c: "mul", a multi-digit number times a one- or two-digit number.
 *
 * Difficulty d = 1..16: the first factor has ceil(d/2) digits, the second has 1 digit (2-9) when d
 * is odd and 2 digits (both non-zero) when d is even; so d=1 is 1x1, d=2 is 1x2, d=3 is 2x1, ...
 *
 *   prompt   "4821*37="
 *   solution "<think>1*7=7;2*7=14;8*7+1=57;4*7+5=33;=33747|1*3=3;2*3=6;8*3=24;4*3+2=14;=144630|
 *             33747+144630=178377</think><answer>178377</answer>"   (one line in the data)
 *
 * One row per digit of the second factor (units first): one step per digit of the first factor
 * (units first), "x*y[+c]=v" with the carry in c, then "=P", the partial product shifted into
 * place. Two rows end with their sum. The answer is the last partial product or the sum.
 *
 * Noise: a digit step's value v is off by one (kept within 0..90), or the final sum is off by one
 * in one digit; the mistake propagates through the carries. Each slip moves the result by
 * +-10^k; a slip that would cancel the mistakes made so far is turned the other way, so a noisy
 * solution is always wrong.
 *
 * Verifier: the canonical decimal product, exactly.
 */
#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "curricula/task_internal.h"

#define MUL_MAX_DIFFICULTY 16
#define MUL_MAX_DIGITS 8

static const int64_t k_pow10[] = {1, 10, 100, 1000, 10000, 100000, 1000000, 10000000, 100000000, 1000000000,
                                  10000000000LL, 100000000000LL, 1000000000000LL};

/* One row: a (na digits, least significant first) times the digit y, shifted by `shift` digits.
 * Appends the steps to sb; *err accumulates the signed error of the result. Returns the row value. */
static int64_t mul_row(TaskBuf *sb, const int *a, int na, int y, int shift, TaskRng *nr, double noise, int64_t *err) {
    int64_t row = 0;
    int carry = 0;
    for (int i = 0; i < na; i++) {
        int v = a[i] * y + carry;
        if (task_rng_chance(nr, noise)) {
            int delta = task_rng_sign(nr);
            if (*err + delta * k_pow10[i + shift] == 0) delta = -delta;
            if (v + delta >= 0 && v + delta <= 90) {
                v += delta;
                *err += delta * k_pow10[i + shift];
            }
        }
        tbuf_printf(sb, "%s%d*%d", i > 0 ? ";" : "", a[i], y);
        if (carry) tbuf_printf(sb, "+%d", carry);
        tbuf_printf(sb, "=%d", v);
        row += (int64_t)(v % 10) * k_pow10[i];
        carry = v / 10;
    }
    row += (int64_t)carry * k_pow10[na];
    row *= k_pow10[shift];
    tbuf_printf(sb, ";=%" PRId64, row);
    return row;
}

static int mul_generate(Problem *p, int d, uint64_t seed, uint64_t index, double noise) {
    int rc = task_check_args(&task_family_mul, d, noise);
    if (rc != 0) return rc;
    task_problem_init(p, "mul", d, index);
    TaskRng r, nr;
    task_rng_init(&r, "mul", d, seed, index, TASK_STREAM_PROBLEM);
    task_rng_init(&nr, "mul", d, seed, index, TASK_STREAM_NOISE);

    int na = (d + 1) / 2, nb = (d % 2 == 1) ? 1 : 2;
    int a[MUL_MAX_DIGITS], b[2];
    int64_t va = 0, vb = 0;
    for (int i = na - 1; i >= 0; i--) {
        a[i] = (na == 1) ? task_rng_int(&r, 2, 9) : task_rng_int(&r, i == na - 1 ? 1 : 0, 9);
        va = va * 10 + a[i];
    }
    for (int j = nb - 1; j >= 0; j--) {
        b[j] = task_rng_int(&r, nb == 1 ? 2 : 1, 9);
        vb = vb * 10 + b[j];
    }
    TaskBuf pb, ab, sb;
    char steps[TASK_SOLUTION_MAX], given[TASK_ANSWER_MAX];
    tbuf_init(&pb, p->prompt, sizeof(p->prompt));
    tbuf_printf(&pb, "%" PRId64 "*%" PRId64 "=", va, vb);
    tbuf_init(&ab, p->answer, sizeof(p->answer));
    tbuf_printf(&ab, "%" PRId64, va * vb);

    tbuf_init(&sb, steps, sizeof(steps));
    int64_t err = 0;
    int64_t row0 = mul_row(&sb, a, na, b[0], 0, &nr, noise, &err), result = row0;
    if (nb == 2) {
        tbuf_printf(&sb, "|");
        int64_t row1 = mul_row(&sb, a, na, b[1], 1, &nr, noise, &err);
        result = row0 + row1;
        if (task_rng_chance(&nr, noise)) {
            int k = task_rng_int(&nr, 0, task_num_digits((uint64_t)result) - 1);
            int delta = task_rng_sign(&nr);
            if (err + delta * k_pow10[k] == 0 || result + delta * k_pow10[k] < 0) delta = -delta;
            if (err + delta * k_pow10[k] != 0 && result + delta * k_pow10[k] >= 0) {
                result += delta * k_pow10[k];
                err += delta * k_pow10[k];
            }
        }
        tbuf_printf(&sb, "|%" PRId64 "+%" PRId64 "=%" PRId64, row0, row1, result);
    }
    snprintf(given, sizeof(given), "%" PRId64, result);
    return task_finish(p, steps, given, pb.overflow | ab.overflow | sb.overflow);
}

static int mul_verify(const Problem *p, const char *answer) { return strcmp(answer, p->answer) == 0; }

const TaskFamily task_family_mul = {
    .name = "mul",
    .description = "a ceil(d/2)-digit number times a 1-digit (d odd) or 2-digit (d even) number, with partial products",
    .min_difficulty = 1,
    .max_difficulty = MUL_MAX_DIFFICULTY,
    .generate = mul_generate,
    .verify = mul_verify,
};
