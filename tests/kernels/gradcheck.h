/* tests/kernels/gradcheck.h: shared helpers for the kernel tests (header-only, static inline).
 *
 * - gc_fill_uniform / gc_fill_normal: deterministic random fills through core/rng.h (keyed by a
 *   seed and a stream id, so every test input is reproducible).
 * - gc_dot: a float64 dot product, used to build scalar losses sum(R * out) for a fixed random R.
 * - gc_check: a central-difference gradient checker for a scalar loss of a float array. The
 *   array is perturbed in place in float32 (x_i +- h with h = eps * max(|x_i|, 1)); the step
 *   actually taken is recomputed from the rounded float values; the loss is evaluated in float64
 *   by a caller-supplied closure that reads the perturbed array. The result is the largest
 *   relative error |a - n| / max(|a|, |n|, floor) over the probed entries.
 *
 * Usage:
 *   double loss(void *ud) { ... run the forward on the current inputs, return sum(R*out) ... }
 *   GcResult r = gc_check(x, n, dx_analytic, loss, &state, GC_EPS, GC_FLOOR, 0);
 *   assert_true(r.max_rel < 1e-2);
 */
#ifndef CISPO_TESTS_KERNELS_GRADCHECK_H
#define CISPO_TESTS_KERNELS_GRADCHECK_H

#include <math.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "core/rng.h"

#define GC_EPS 1e-3f   /* default relative perturbation */
#define GC_FLOOR 1e-2  /* default floor on the relative-error denominator */
#define GC_TOL 1e-2    /* default pass threshold on max relative error */

typedef struct {
    double max_rel;  /* largest relative error over the probed entries */
    size_t worst;    /* index where it occurred */
    double analytic; /* analytic gradient at `worst` */
    double numeric;  /* central difference at `worst` */
    size_t probed;   /* number of entries checked */
} GcResult;

/* x[i] uniform in [lo, hi), reproducible from (seed, stream). */
static inline void gc_fill_uniform(float *x, size_t n, uint64_t seed, uint64_t stream, float lo, float hi) {
    rng_fill_uniform(x, n, seed, stream, lo, hi);
}

/* x[i] ~ N(mean, std^2), reproducible from (seed, stream). */
static inline void gc_fill_normal(float *x, size_t n, uint64_t seed, uint64_t stream, float mean, float std) {
    rng_fill_normal(x, n, seed, stream, mean, std);
}

/* sum_i a[i] * b[i] in float64. */
static inline double gc_dot(const float *a, const float *b, size_t n) {
    double s = 0.0;
    for (size_t i = 0; i < n; i++) s += (double)a[i] * (double)b[i];
    return s;
}

/* Central-difference check of grad(n) against loss(ud), which must read x(n) (perturbed in place
 * and restored). eps: relative step (e.g. GC_EPS); floor: denominator floor (e.g. GC_FLOOR);
 * max_probes: 0 = every entry, otherwise about that many entries spread evenly. */
static inline GcResult gc_check(float *x, size_t n, const float *grad, double (*loss)(void *ud), void *ud,
                                float eps, double floor, size_t max_probes) {
    GcResult r = {0.0, 0, 0.0, 0.0, 0};
    size_t stride = (max_probes == 0 || n <= max_probes) ? 1 : (n + max_probes - 1) / max_probes;
    for (size_t i = 0; i < n; i += stride) {
        float x0 = x[i];
        float h = eps * (fabsf(x0) > 1.0f ? fabsf(x0) : 1.0f);
        float xp = x0 + h, xm = x0 - h;
        x[i] = xp;
        double lp = loss(ud);
        x[i] = xm;
        double lm = loss(ud);
        x[i] = x0;
        double num = (lp - lm) / ((double)xp - (double)xm);
        double a = (double)grad[i];
        double den = fmax(fmax(fabs(a), fabs(num)), floor);
        double rel = fabs(a - num) / den;
        if (rel > r.max_rel || r.probed == 0) {
            r.max_rel = rel;
            r.worst = i;
            r.analytic = a;
            r.numeric = num;
        }
        r.probed++;
    }
    return r;
}

/* Print a one-line summary (useful when a check fails). */
static inline void gc_report(const char *what, GcResult r) {
    printf("gradcheck %-24s max_rel %.3e at %zu (analytic %.6e numeric %.6e, %zu probed)\n", what, r.max_rel,
           r.worst, r.analytic, r.numeric, r.probed);
}

#endif
