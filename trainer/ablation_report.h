/* trainer/ablation_report.h: the results of `cispo ablate` (trainer/cmd_ablate.c) as files:
 *   ablation.csv  one row per held-out evaluation: algo,seed,step,pass1,passk;
 *   ablation.md   per algorithm over seeds: steps to reach the target accuracy (mean, standard
 *                 deviation, range, and how many seeds reached it), final pass@1 (mean and
 *                 standard deviation), and the CISPO/DAPO ratio of mean steps to target.
 * The target is given, or by default DAPO's final pass@1 averaged over its seeds (the paper's
 * comparison: CISPO reaches DAPO's accuracy in 50% of the steps). Steps to target of one run is the
 * first evaluated step whose pass@1 >= target (step 0 is the shared SFT model); a run that never
 * gets there is counted as not reached and left out of the mean.
 */
#ifndef CISPO_TRAINER_ABLATION_REPORT_H
#define CISPO_TRAINER_ABLATION_REPORT_H

#include <stdio.h>

#define ABL_MAX_POINTS 4096

typedef struct {
    char algo[16];
    long long seed;
    int n;                        /* evaluations, in step order */
    int step[ABL_MAX_POINTS];     /* (n) RL steps done at each evaluation */
    double pass1[ABL_MAX_POINTS]; /* (n) */
    double passk[ABL_MAX_POINTS]; /* (n) */
} AblCurve;

typedef struct {
    char algo[16];
    int runs, reached;
    double steps_mean, steps_std, steps_min, steps_max; /* over the runs that reached the target */
    double final_mean, final_std;
} AblRow;

/* First evaluated step with pass1 >= target, or -1. */
int abl_steps_to_target(const AblCurve *c, double target);
/* Mean final pass@1 of the curves of `algo`; 0 and *found = 0 when it has none. */
double abl_mean_final(const AblCurve *c, int n, const char *algo, int *found);
/* One row per algorithm (algos[0..n_algos)) into rows. */
void abl_summarize(const AblCurve *c, int n, const char *const *algos, int n_algos, double target, AblRow *rows);
/* CISPO/DAPO ratio of mean steps to target; NAN when either is missing or reached by no seed. */
double abl_step_ratio(const AblRow *rows, int n_algos);
/* Write the CSV / the markdown table; 0 or ERR_IO. */
int abl_write_csv(const char *path, const AblCurve *c, int n);
int abl_write_table(const char *path, const AblRow *rows, int n_algos, double target, const char *target_from,
                    const char *setup_line);

#endif
