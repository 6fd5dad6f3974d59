/* trainer/advantage.h: group-relative advantages (ALGORITHMS.md §1, §3.4).
 * For each group of G responses to one prompt: A_i = (R_i - mean(R)) / (std(R) + eps), with the
 * std estimator configurable (Bessel N-1 as verl/TRL, or population N), or, Dr. GRPO's option,
 * no division (A_i = R_i - mean(R)). Edge cases (as verl): a group of one has mean 0 and std 1,
 * so A = R / (1 + eps) (A = R without the std division); a group whose rewards are all equal has
 * std 0 and gets A = 0 for every member. Mean and std are computed in double.
 */
#ifndef CISPO_TRAINER_ADVANTAGE_H
#define CISPO_TRAINER_ADVANTAGE_H

typedef enum { ADV_STD_SAMPLE = 0 /* N-1 */, ADV_STD_POPULATION = 1 /* N */, ADV_STD_NONE = 2 /* Dr. GRPO */ } AdvStdMode;

typedef struct {
    AdvStdMode std_mode;
    double eps; /* added to the std (default 1e-6, verl) */
} AdvConfig;

/* rewards(n_groups*G) grouped contiguously -> adv(n_groups*G). */
void advantages_compute(const AdvConfig *cfg, const float *rewards, int n_groups, int G, float *adv);

#endif
