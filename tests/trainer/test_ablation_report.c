/* tests/trainer/test_ablation_report.c: the ablation's numbers on hand-made curves worked out by
 * hand: steps to target (first evaluation at or above it, -1 when never), the default target (DAPO's
 * mean final pass@1), mean / sample standard deviation / range over the seeds that reached it,
 * final-accuracy statistics, the CISPO/DAPO ratio, and the CSV and markdown files' contents.
 * labels: unit
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../test_tmpdir.h"
#include "trainer/ablation_report.h"

static void curve(AblCurve *c, const char *algo, long long seed, int n, const int *step, const double *p1) {
    memset(c, 0, sizeof(*c));
    snprintf(c->algo, sizeof c->algo, "%s", algo);
    c->seed = seed;
    c->n = n;
    for (int i = 0; i < n; i++) c->step[i] = step[i], c->pass1[i] = p1[i], c->passk[i] = p1[i] + 0.1;
}

/* cispo: reaches 0.40 at 10 and 20; dapo: at 20, 30 (finals 0.40, 0.40 -> target 0.40); ppo never. */
static AblCurve *fixture(int *n) {
    static const int st[4] = {0, 10, 20, 30};
    static const double c1[4] = {0.20, 0.45, 0.50, 0.55}, c2[4] = {0.20, 0.30, 0.41, 0.47};
    static const double d1[4] = {0.20, 0.30, 0.40, 0.40}, d2[4] = {0.20, 0.25, 0.35, 0.40};
    static const double p1[4] = {0.20, 0.22, 0.21, 0.30};
    AblCurve *c = calloc(5, sizeof(AblCurve));
    curve(&c[0], "cispo", 1, 4, st, c1);
    curve(&c[1], "cispo", 2, 4, st, c2);
    curve(&c[2], "dapo", 1, 4, st, d1);
    curve(&c[3], "dapo", 2, 4, st, d2);
    curve(&c[4], "ppo", 1, 4, st, p1);
    *n = 5;
    return c;
}

static void test_statistics(void **state) {
    (void)state;
    int n, found;
    AblCurve *c = fixture(&n);
    double target = abl_mean_final(c, n, "dapo", &found);
    assert_true(found);
    assert_true(fabs(target - 0.40) < 1e-12);
    assert_int_equal(abl_steps_to_target(&c[0], target), 10);
    assert_int_equal(abl_steps_to_target(&c[1], target), 20);
    assert_int_equal(abl_steps_to_target(&c[3], target), 30);
    assert_int_equal(abl_steps_to_target(&c[4], target), -1);
    abl_mean_final(c, n, "grpo", &found);
    assert_false(found);
    const char *algos[3] = {"cispo", "dapo", "ppo"};
    AblRow r[3];
    abl_summarize(c, n, algos, 3, target, r);
    assert_int_equal(r[0].runs, 2);
    assert_int_equal(r[0].reached, 2);
    assert_true(fabs(r[0].steps_mean - 15) < 1e-12);
    assert_true(fabs(r[0].steps_std - sqrt(50.0)) < 1e-12); /* (10, 20): sample std 7.07 */
    assert_true(r[0].steps_min == 10 && r[0].steps_max == 20);
    assert_true(fabs(r[0].final_mean - 0.51) < 1e-12);
    assert_true(fabs(r[1].steps_mean - 25) < 1e-12);
    assert_true(fabs(r[1].final_std) < 1e-12);
    assert_int_equal(r[2].reached, 0);
    assert_true(isnan(r[2].steps_mean));
    assert_true(fabs(abl_step_ratio(r, 3) - 0.6) < 1e-12);
    assert_true(isnan(abl_step_ratio(r + 1, 2))); /* no cispo row */
    free(c);
}

static char *slurp(const char *path) {
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    char *b = calloc(1 << 16, 1);
    size_t n = fread(b, 1, (1 << 16) - 1, f);
    b[n] = '\0';
    fclose(f);
    return b;
}

static void test_files(void **state) {
    (void)state;
    char dir[128], p[256];
    assert_int_equal(tmpdir_make(dir, sizeof dir, "cispo_ablrep"), 0);
    int n, found;
    AblCurve *c = fixture(&n);
    snprintf(p, sizeof p, "%s/a.csv", dir);
    assert_int_equal(abl_write_csv(p, c, n), 0);
    char *csv = slurp(p);
    assert_non_null(csv);
    assert_true(!strncmp(csv, "algo,seed,step,pass1,passk\ncispo,1,0,0.200000,0.300000\n", 55));
    int lines = 0;
    for (char *s = csv; *s; s++) lines += *s == '\n';
    assert_int_equal(lines, 1 + 5 * 4);
    const char *algos[3] = {"cispo", "dapo", "ppo"};
    AblRow r[3];
    double target = abl_mean_final(c, n, "dapo", &found);
    abl_summarize(c, n, algos, 3, target, r);
    snprintf(p, sizeof p, "%s/a.md", dir);
    assert_int_equal(abl_write_table(p, r, 3, target, "mean final pass@1 of DAPO", "Setup line."), 0);
    char *md = slurp(p);
    assert_non_null(md);
    assert_non_null(strstr(md, "Setup line."));
    assert_non_null(strstr(md, "Target held-out pass@1: 0.4000 (mean final pass@1 of DAPO)"));
    assert_non_null(strstr(md, "| cispo | 2 | 2/2 | 15.0 | 7.1 | 10-20 | 0.5100 | 0.0566 |"));
    assert_non_null(strstr(md, "| dapo | 2 | 2/2 | 25.0 | 7.1 | 20-30 | 0.4000 | 0.0000 |"));
    assert_non_null(strstr(md, "| ppo | 1 | 0/1 | n/a | n/a | n/a | 0.3000 | 0.0000 |"));
    assert_non_null(strstr(md, "CISPO/DAPO step ratio (mean steps to target): 0.600"));
    snprintf(p, sizeof p, "%s/missing/a.csv", dir);
    assert_int_equal(abl_write_csv(p, c, n) != 0, 1);
    free(csv);
    free(md);
    free(c);
    tmpdir_remove(dir);
}

int main(void) {
    const struct CMUnitTest tests[] = {cmocka_unit_test(test_statistics), cmocka_unit_test(test_files)};
    return cmocka_run_group_tests(tests, NULL, NULL);
}
