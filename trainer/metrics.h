/* trainer/metrics.h: one JSON object per line (RUN_DIR/metrics.jsonl and friends), keys in the
 * order they are added, numbers printed by jansson with 17 significant digits so equal values give
 * equal bytes; and small statistics helpers (mean, percentiles) used by the loops.
 */
#ifndef CISPO_TRAINER_METRICS_H
#define CISPO_TRAINER_METRICS_H

#include <stdio.h>

typedef struct {
    FILE *f;
    void *cur; /* json_t object being filled */
    char path[512];
} MetricsWriter;

/* Create (truncate) path. 0 or ERR_IO. */
int metrics_open(MetricsWriter *w, const char *path);
/* Open path for appending (a resumed run, after train_ckpt_truncate_metrics). */
int metrics_open_append(MetricsWriter *w, const char *path);
void metrics_close(MetricsWriter *w); /* idempotent */
void metrics_begin(MetricsWriter *w);
void metrics_num(MetricsWriter *w, const char *key, double v); /* non-finite values are written as null */
void metrics_int(MetricsWriter *w, const char *key, long long v);
void metrics_str(MetricsWriter *w, const char *key, const char *v);
/* Write the line and flush. 0 or ERR_IO. */
int metrics_commit(MetricsWriter *w);

/* q-quantile (q in [0,1], nearest rank) of n ints (copied and sorted internally into scratch). */
double stats_percentile_int(const int *v, int n, double q, int *scratch);
double stats_mean_int(const int *v, int n);

#endif
