/* bench/bench_util.h: what the benchmarks share: the median of repeated timings (sorts in place).
 * Wall-clock time comes from core/log.h's time_now_s(). Static functions only. */
#ifndef CISPO_BENCH_UTIL_H
#define CISPO_BENCH_UTIL_H

#include <stdlib.h>

static int bench_cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

/* The median of v[0..n) (n > 0); v is sorted on return. */
static inline double bench_median(double *v, int n) {
    qsort(v, (size_t)n, sizeof(double), bench_cmp_double);
    return v[n / 2];
}

#endif
