/* curricula/task_internal.h: helpers shared by the task families (task_common.c), and the family
 * tables the registry lists. Private to curricula/: other modules use task.h.
 *
 * Randomness: a problem draws from TaskRng streams keyed by seed with stream
 * rng_stream(hash(family), difficulty, index, purpose); purpose TASK_STREAM_PROBLEM fixes the
 * problem itself and TASK_STREAM_NOISE the mistakes of a noisy solution, so the same
 * (difficulty, seed, index) gives the same problem whatever the noise level.
 */
#ifndef CISPO_CURRICULA_TASK_INTERNAL_H
#define CISPO_CURRICULA_TASK_INTERNAL_H

#include <stddef.h>
#include <stdint.h>

#include "curricula/task.h"

enum { TASK_STREAM_PROBLEM = 0, TASK_STREAM_NOISE = 1 };

typedef struct {
    uint64_t seed, stream, counter; /* the next draw is rng_uniform(seed, stream, counter++) */
} TaskRng;

void task_rng_init(TaskRng *r, const char *family, int difficulty, uint64_t seed, uint64_t index, uint64_t purpose);
/* Uniform integer in [lo, hi] (lo <= hi). */
int task_rng_int(TaskRng *r, int lo, int hi);
/* 1 with probability p (always draws, so the stream position does not depend on p). */
int task_rng_chance(TaskRng *r, double p);
/* +1 or -1 with equal probability. */
int task_rng_sign(TaskRng *r);
/* Fisher-Yates shuffle of v[0..n). */
void task_rng_shuffle(TaskRng *r, int *v, int n);

/* A bounded string builder: appends never write past cap; overflow is remembered. */
typedef struct {
    char *s;
    size_t cap, len;
    int overflow;
} TaskBuf;

void tbuf_init(TaskBuf *b, char *storage, size_t cap);
void tbuf_printf(TaskBuf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Zero p and set family, difficulty and id (= index). */
void task_problem_init(Problem *p, const char *family, int difficulty, uint64_t index);
/* ERR_RANGE with a message unless f->min_difficulty <= difficulty <= f->max_difficulty and
 * 0 <= noise <= 1. */
int task_check_args(const TaskFamily *f, int difficulty, double noise);
/* p->solution = "<think>steps</think><answer>answer</answer>"; ERR_RANGE if any buffer of p
 * overflowed (overflow flags from the builders that filled prompt/answer/steps). */
int task_finish(Problem *p, const char *steps, const char *answer, int overflow);

/* Parse a comma-separated list of non-negative decimal integers without signs, spaces or leading
 * zeros ("3,10,0"). Returns the count (<= cap) or -1 on any deviation. */
int task_parse_uint_list(const char *s, int *out, int cap);
/* Number of decimal digits of v (1 for 0). */
int task_num_digits(uint64_t v);

extern const TaskFamily task_family_add;
extern const TaskFamily task_family_mul;
extern const TaskFamily task_family_runsum;
extern const TaskFamily task_family_sort;
extern const TaskFamily task_family_caesar;
extern const TaskFamily task_family_countdown;
extern const TaskFamily task_family_sudoku4;
extern const TaskFamily task_family_judge;

#endif
