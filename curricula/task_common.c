/* curricula/task_common.c: the helpers every task family uses (see task_internal.h): seeded
 * integer draws on the counter-based generator, a bounded string builder, argument checks and the
 * final "<think>...</think><answer>...</answer>" assembly.
 */
#include "curricula/task_internal.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "core/error.h"
#include "core/rng.h"

/* FNV-1a, 64-bit: a fixed hash of the family name so streams differ per family. */
static uint64_t name_hash(const char *s) {
    uint64_t h = 0xcbf29ce484222325ull;
    for (; *s != '\0'; s++) {
        h ^= (unsigned char)*s;
        h *= 0x100000001b3ull;
    }
    return h;
}

void task_rng_init(TaskRng *r, const char *family, int difficulty, uint64_t seed, uint64_t index, uint64_t purpose) {
    r->seed = seed;
    r->stream = rng_stream(name_hash(family), (uint64_t)difficulty, index, purpose);
    r->counter = 0;
}

int task_rng_int(TaskRng *r, int lo, int hi) {
    CHECK(lo <= hi, "empty range [%d, %d]", lo, hi);
    double u = rng_uniform(r->seed, r->stream, r->counter++);
    int v = lo + (int)(u * (double)(hi - lo + 1));
    return v > hi ? hi : v;
}

int task_rng_chance(TaskRng *r, double p) {
    double u = rng_uniform(r->seed, r->stream, r->counter++);
    return u < p;
}

int task_rng_sign(TaskRng *r) { return task_rng_chance(r, 0.5) ? 1 : -1; }

void task_rng_shuffle(TaskRng *r, int *v, int n) {
    for (int i = n - 1; i > 0; i--) {
        int j = task_rng_int(r, 0, i);
        int t = v[i];
        v[i] = v[j];
        v[j] = t;
    }
}

void tbuf_init(TaskBuf *b, char *storage, size_t cap) {
    CHECK(cap > 0, "empty buffer");
    b->s = storage;
    b->cap = cap;
    b->len = 0;
    b->overflow = 0;
    b->s[0] = '\0';
}

void tbuf_printf(TaskBuf *b, const char *fmt, ...) {
    if (b->overflow) return;
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(b->s + b->len, b->cap - b->len, fmt, ap);
    va_end(ap);
    if (n < 0 || (size_t)n >= b->cap - b->len) {
        b->overflow = 1;
        b->s[b->len] = '\0'; /* keep the text that did fit, without a partial piece */
        return;
    }
    b->len += (size_t)n;
}

void task_problem_init(Problem *p, const char *family, int difficulty, uint64_t index) {
    memset(p, 0, sizeof(*p));
    snprintf(p->family, sizeof(p->family), "%s", family);
    p->difficulty = difficulty;
    p->id = index;
}

int task_check_args(const TaskFamily *f, int difficulty, double noise) {
    if (difficulty < f->min_difficulty || difficulty > f->max_difficulty)
        return err_set(ERR_RANGE, "task '%s': difficulty %d is outside [%d, %d]", f->name, difficulty,
                       f->min_difficulty, f->max_difficulty);
    if (!(noise >= 0.0 && noise <= 1.0))
        return err_set(ERR_RANGE, "task '%s': noise %g is outside [0, 1]", f->name, noise);
    return 0;
}

int task_finish(Problem *p, const char *steps, const char *answer, int overflow) {
    int n = snprintf(p->solution, sizeof(p->solution), "<think>%s</think><answer>%s</answer>", steps, answer);
    if (overflow || n < 0 || (size_t)n >= sizeof(p->solution))
        return err_set(ERR_RANGE, "task '%s' difficulty %d: the problem does not fit the Problem buffers", p->family,
                       p->difficulty);
    return 0;
}

int task_parse_uint_list(const char *s, int *out, int cap) {
    int n = 0;
    const char *c = s;
    for (;;) {
        if (*c < '0' || *c > '9') return -1;
        if (*c == '0' && c[1] >= '0' && c[1] <= '9') return -1; /* leading zero */
        long v = 0;
        while (*c >= '0' && *c <= '9') {
            v = v * 10 + (*c - '0');
            if (v > 1000000000L) return -1;
            c++;
        }
        if (n >= cap) return -1;
        out[n++] = (int)v;
        if (*c == '\0') return n;
        if (*c != ',') return -1;
        c++;
    }
}

int task_num_digits(uint64_t v) {
    int d = 1;
    while (v >= 10) {
        v /= 10;
        d++;
    }
    return d;
}
