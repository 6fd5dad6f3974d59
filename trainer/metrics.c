/* trainer/metrics.c: see metrics.h. */
#include "trainer/metrics.h"

#include <jansson.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "core/error.h"

static int open_mode(MetricsWriter *w, const char *path, const char *mode) {
    memset(w, 0, sizeof(*w));
    snprintf(w->path, sizeof w->path, "%s", path);
    w->f = fopen(path, mode);
    if (!w->f) return err_set(ERR_IO, "cannot open %s", path);
    return 0;
}

int metrics_open(MetricsWriter *w, const char *path) { return open_mode(w, path, "w"); }
int metrics_open_append(MetricsWriter *w, const char *path) { return open_mode(w, path, "a"); }

void metrics_close(MetricsWriter *w) {
    if (!w) return;
    if (w->cur) json_decref(w->cur);
    if (w->f) fclose(w->f);
    w->cur = NULL;
    w->f = NULL;
}

void metrics_begin(MetricsWriter *w) {
    if (w->cur) json_decref(w->cur);
    w->cur = json_object();
}

void metrics_num(MetricsWriter *w, const char *key, double v) {
    CHECK(w->cur, "metrics_num before metrics_begin");
    json_object_set_new(w->cur, key, isfinite(v) ? json_real(v) : json_null());
}

void metrics_int(MetricsWriter *w, const char *key, long long v) {
    CHECK(w->cur, "metrics_int before metrics_begin");
    json_object_set_new(w->cur, key, json_integer(v));
}

void metrics_str(MetricsWriter *w, const char *key, const char *v) {
    CHECK(w->cur, "metrics_str before metrics_begin");
    json_object_set_new(w->cur, key, json_string(v));
}

int metrics_commit(MetricsWriter *w) {
    CHECK(w->cur, "metrics_commit before metrics_begin");
    int rc = 0;
    if (w->f) {
        char *s = json_dumps(w->cur, JSON_PRESERVE_ORDER | JSON_COMPACT | JSON_REAL_PRECISION(17));
        if (!s || fprintf(w->f, "%s\n", s) < 0 || fflush(w->f) != 0) rc = err_set(ERR_IO, "cannot write %s", w->path);
        free(s);
    }
    json_decref(w->cur);
    w->cur = NULL;
    return rc;
}

static int cmp_int(const void *a, const void *b) { return *(const int *)a - *(const int *)b; }

double stats_percentile_int(const int *v, int n, double q, int *scratch) {
    if (n <= 0) return 0;
    memcpy(scratch, v, (size_t)n * sizeof(int));
    qsort(scratch, (size_t)n, sizeof(int), cmp_int);
    int k = (int)ceil(q * n) - 1;
    if (k < 0) k = 0;
    if (k >= n) k = n - 1;
    return scratch[k];
}

double stats_mean_int(const int *v, int n) {
    double s = 0;
    for (int i = 0; i < n; i++) s += v[i];
    return n ? s / n : 0;
}
