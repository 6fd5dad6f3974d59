/* trainer/ablation_report.c: see ablation_report.h. */
#include "trainer/ablation_report.h"

#include <math.h>
#include <string.h>

#include "core/error.h"

int abl_steps_to_target(const AblCurve *c, double target) {
    for (int i = 0; i < c->n; i++)
        if (c->pass1[i] >= target) return c->step[i];
    return -1;
}

double abl_mean_final(const AblCurve *c, int n, const char *algo, int *found) {
    double s = 0;
    int k = 0;
    for (int i = 0; i < n; i++)
        if (!strcmp(c[i].algo, algo) && c[i].n > 0) s += c[i].pass1[c[i].n - 1], k++;
    *found = k > 0;
    return k > 0 ? s / k : 0.0;
}

/* Mean and sample standard deviation (0 for one value) of v[0..n). */
static void mean_std(const double *v, int n, double *mean, double *sd) {
    double m = 0, q = 0;
    for (int i = 0; i < n; i++) m += v[i];
    m = n > 0 ? m / n : NAN;
    for (int i = 0; i < n; i++) q += (v[i] - m) * (v[i] - m);
    *mean = m;
    *sd = n > 1 ? sqrt(q / (n - 1)) : n == 1 ? 0.0 : NAN;
}

void abl_summarize(const AblCurve *c, int n, const char *const *algos, int n_algos, double target, AblRow *rows) {
    double steps[256], fin[256];
    for (int a = 0; a < n_algos; a++) {
        AblRow *r = &rows[a];
        memset(r, 0, sizeof(*r));
        snprintf(r->algo, sizeof r->algo, "%s", algos[a]);
        int ns = 0, nf = 0;
        r->steps_min = INFINITY, r->steps_max = -INFINITY;
        for (int i = 0; i < n && nf < 256; i++) {
            if (strcmp(c[i].algo, algos[a]) || c[i].n == 0) continue;
            r->runs++;
            fin[nf++] = c[i].pass1[c[i].n - 1];
            int s = abl_steps_to_target(&c[i], target);
            if (s < 0) continue;
            steps[ns++] = s;
            r->steps_min = fmin(r->steps_min, s);
            r->steps_max = fmax(r->steps_max, s);
        }
        r->reached = ns;
        mean_std(steps, ns, &r->steps_mean, &r->steps_std);
        mean_std(fin, nf, &r->final_mean, &r->final_std);
        if (ns == 0) r->steps_min = r->steps_max = NAN;
    }
}

double abl_step_ratio(const AblRow *rows, int n_algos) {
    const AblRow *ci = NULL, *da = NULL;
    for (int a = 0; a < n_algos; a++) {
        if (!strcmp(rows[a].algo, "cispo")) ci = &rows[a];
        if (!strcmp(rows[a].algo, "dapo")) da = &rows[a];
    }
    if (!ci || !da || ci->reached == 0 || da->reached == 0 || !(da->steps_mean > 0)) return NAN;
    return ci->steps_mean / da->steps_mean;
}

int abl_write_csv(const char *path, const AblCurve *c, int n) {
    FILE *f = fopen(path, "w");
    if (!f) return err_set(ERR_IO, "cannot write %s", path);
    fprintf(f, "algo,seed,step,pass1,passk\n");
    for (int i = 0; i < n; i++)
        for (int j = 0; j < c[i].n; j++)
            fprintf(f, "%s,%lld,%d,%.6f,%.6f\n", c[i].algo, c[i].seed, c[i].step[j], c[i].pass1[j], c[i].passk[j]);
    if (fclose(f) != 0) return err_set(ERR_IO, "cannot write %s", path);
    return 0;
}

static void fmt_num(char *buf, size_t cap, double v, int decimals) {
    if (isfinite(v)) snprintf(buf, cap, "%.*f", decimals, v);
    else snprintf(buf, cap, "n/a");
}

int abl_write_table(const char *path, const AblRow *rows, int n_algos, double target, const char *target_from,
                    const char *setup_line) {
    FILE *f = fopen(path, "w");
    if (!f) return err_set(ERR_IO, "cannot write %s", path);
    fprintf(f, "%s\n\nTarget held-out pass@1: %.4f (%s). Steps to target: first evaluated RL step with pass@1 >= "
               "target; mean and spread over the seeds that reached it.\n\n",
            setup_line, target, target_from);
    fprintf(f, "| algo | runs | reached target | steps to target: mean | std | min-max | final pass@1: mean | std |\n");
    fprintf(f, "| --- | --- | --- | --- | --- | --- | --- | --- |\n");
    for (int a = 0; a < n_algos; a++) {
        const AblRow *r = &rows[a];
        char m[32], s[32], lo[32], hi[32], fm[32], fs[32], range[80];
        fmt_num(m, sizeof m, r->steps_mean, 1);
        fmt_num(s, sizeof s, r->steps_std, 1);
        fmt_num(lo, sizeof lo, r->steps_min, 0);
        fmt_num(hi, sizeof hi, r->steps_max, 0);
        fmt_num(fm, sizeof fm, r->final_mean, 4);
        fmt_num(fs, sizeof fs, r->final_std, 4);
        if (r->reached > 0) snprintf(range, sizeof range, "%s-%s", lo, hi);
        else snprintf(range, sizeof range, "n/a");
        fprintf(f, "| %s | %d | %d/%d | %s | %s | %s | %s | %s |\n", r->algo, r->runs, r->reached, r->runs, m, s, range,
                fm, fs);
    }
    double ratio = abl_step_ratio(rows, n_algos);
    char rs[32];
    fmt_num(rs, sizeof rs, ratio, 3);
    fprintf(f, "\nCISPO/DAPO step ratio (mean steps to target): %s (the paper reports 0.5 on Qwen2.5-32B)\n", rs);
    if (fclose(f) != 0) return err_set(ERR_IO, "cannot write %s", path);
    return 0;
}
