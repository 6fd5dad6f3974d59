/* trainer/advantage.c: group-relative advantages (ALGORITHMS.md §1, §3.4), verl's conventions.
 *
 * Each group of G contiguous rewards is normalised on its own, in double precision:
 *   A_i = (R_i - mean) / (std + eps)   (std with N-1 or N in the denominator), or
 *   A_i =  R_i - mean                   (ADV_STD_NONE, Dr. GRPO).
 * Edge cases, as verl's compute_grpo_outcome_advantage: a group of one uses mean 0 and std 1
 * (A = R / (1 + eps), or A = R without the division); a group of two or more whose rewards are all
 * equal gets exactly A = 0 (tested directly rather than trusting R - mean to round to zero).
 */
#include "trainer/advantage.h"

#include <math.h>

#include "core/error.h"

/* mean and std of R(G), G >= 2, under `mode` (std is 1 for ADV_STD_NONE: unused) */
static void group_moments(const float *R, int G, AdvStdMode mode, double *mean, double *std) {
    double s = 0.0;
    for (int i = 0; i < G; i++) s += (double)R[i];
    double mu = s / G, ss = 0.0;
    for (int i = 0; i < G; i++) ss += ((double)R[i] - mu) * ((double)R[i] - mu);
    *mean = mu;
    if (mode == ADV_STD_SAMPLE)
        *std = sqrt(ss / (G - 1));
    else if (mode == ADV_STD_POPULATION)
        *std = sqrt(ss / G);
    else
        *std = 1.0;
}

static int all_equal(const float *R, int G) {
    for (int i = 1; i < G; i++)
        if (R[i] != R[0]) return 0;
    return 1;
}

/* rewards(n_groups*G) -> adv(n_groups*G) */
void advantages_compute(const AdvConfig *cfg, const float *rewards, int n_groups, int G, float *adv) {
    CHECK(cfg != NULL && (n_groups == 0 || (rewards != NULL && adv != NULL)), "advantages_compute: NULL argument");
    CHECK(n_groups >= 0 && G >= 1, "advantages_compute: n_groups=%d G=%d (need n_groups >= 0, G >= 1)", n_groups,
          G);
    CHECK(cfg->std_mode == ADV_STD_SAMPLE || cfg->std_mode == ADV_STD_POPULATION || cfg->std_mode == ADV_STD_NONE,
          "advantages_compute: unknown std_mode %d", (int)cfg->std_mode);
    CHECK(cfg->eps >= 0.0 && isfinite(cfg->eps), "advantages_compute: eps=%g must be finite and >= 0", cfg->eps);
    int divide = cfg->std_mode != ADV_STD_NONE;
    for (int g = 0; g < n_groups; g++) {
        const float *R = rewards + (size_t)g * G;
        float *A = adv + (size_t)g * G;
        for (int i = 0; i < G; i++)
            CHECK(isfinite(R[i]), "advantages_compute: reward %d of group %d is %g (must be finite)", i, g,
                  (double)R[i]);
        if (G == 1) { /* verl: mean 0, std 1 */
            A[0] = divide ? (float)((double)R[0] / (1.0 + cfg->eps)) : R[0];
            continue;
        }
        if (all_equal(R, G)) {
            for (int i = 0; i < G; i++) A[i] = 0.0f;
            continue;
        }
        double mean, std;
        group_moments(R, G, cfg->std_mode, &mean, &std);
        double denom = divide ? std + cfg->eps : 1.0;
        for (int i = 0; i < G; i++) A[i] = (float)(((double)R[i] - mean) / denom);
    }
}
