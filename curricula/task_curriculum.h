/* curricula/task_curriculum.h: the task curriculum (ALGORITHMS.md §8 "Task curriculum", §9):
 *   - mixture: a weight per task family that moves linearly from mix_start to mix_end over
 *     mix_steps RL steps (M1: rule-verified tasks first, others mixed in gradually);
 *   - pass-rate filter: per-problem statistics over the last TC_RECENT appearances (G responses
 *     each); once a problem has pass_min_samples recent responses, it is dropped when its recent
 *     pass rate is 0 or >= pass_upper (M1's (0, 0.9) window);
 *   - difficulty levels: each family draws difficulty from a window of `window` levels starting at
 *     its level lo (initially difficulty_min); when the family's pass rate at that level reaches
 *     master_rate over at least master_samples responses, lo rises by one, up to difficulty_max.
 * Problems are identified by a 64-bit key (a hash of the prompt). The statistics live in an
 * open-addressed table of fixed capacity; when it is full a new key replaces the entry at its home
 * slot (deterministic, so runs and resumes agree). Everything is a pure function of the observed
 * sequence: the whole state is TaskCurriculum's arrays, which checkpoints store.
 */
#ifndef CISPO_CURRICULA_TASK_CURRICULUM_H
#define CISPO_CURRICULA_TASK_CURRICULUM_H

#include <stdint.h>

#define TC_MAX_FAMILIES 16
#define TC_RECENT 4

typedef struct {
    int n_fam;
    double mix_start[TC_MAX_FAMILIES], mix_end[TC_MAX_FAMILIES]; /* weights (>= 0, some > 0) */
    int mix_steps;            /* steps of the linear ramp (0: mix_end from the start) */
    int difficulty_min, difficulty_max;
    int window;               /* difficulty levels drawn at once; 0: levels off, uniform over [min, max] */
    double master_rate;       /* a family is mastered at this pass rate ... */
    long master_samples;      /* ... over at least this many responses at its level */
    int filter;               /* pass-rate filter on */
    double pass_upper;        /* drop at recent pass rate >= this (M1: 0.9) */
    int pass_min_samples;     /* recent responses needed before the filter judges a problem */
    int capacity;             /* statistics table slots (a power of two) */
} TaskCurriculumConfig;

typedef struct {
    uint64_t key;             /* 0: empty */
    uint16_t correct[TC_RECENT], total[TC_RECENT]; /* ring of the last appearances */
    uint16_t head, n;         /* next ring slot, appearances held */
} PassEntry;

typedef struct {
    TaskCurriculumConfig cfg;
    int lo[TC_MAX_FAMILIES];             /* lowest difficulty drawn now, per family */
    long lvl_correct[TC_MAX_FAMILIES];   /* responses at the current level */
    long lvl_total[TC_MAX_FAMILIES];
    long filtered;                       /* problems dropped by the filter so far */
    long raises;                         /* difficulty raises so far */
    PassEntry *table;                    /* (capacity) */
} TaskCurriculum;

/* Parse "1, 0.5, 0" into n weights (n = the family count); "" gives all 1. 0 or ERR_CONFIG. */
int tc_parse_weights(const char *text, const char *key, int n, double *out);
/* Validate cfg, allocate the table. 0 or ERR_CONFIG. tc_free is idempotent. */
int tc_init(TaskCurriculum *tc, const TaskCurriculumConfig *cfg);
void tc_free(TaskCurriculum *tc);
/* Normalised mixture weights at RL step `step` into w (n_fam). */
void tc_weights(const TaskCurriculum *tc, long step, double *w);
/* Family for a uniform u in [0, 1) under the weights at `step`. */
int tc_pick_family(const TaskCurriculum *tc, long step, double u);
/* Difficulty range [*lo, *hi] that family f draws from now. */
void tc_difficulty_range(const TaskCurriculum *tc, int f, int *lo, int *hi);
/* 1 if problem `key` may be trained on (filter off, too few recent samples, or rate in (0, upper)). */
int tc_keep(const TaskCurriculum *tc, uint64_t key);
/* Recent pass rate of `key` and its recent response count (rate -1 when unseen). */
double tc_pass_rate(const TaskCurriculum *tc, uint64_t key, int *n);
/* One appearance of problem `key` of family f at difficulty d: `correct` of `total` responses. */
void tc_record(TaskCurriculum *tc, uint64_t key, int f, int d, int correct, int total);
/* End of an RL step: raise the level of mastered families. Returns how many rose; raised[f] = 1 for those. */
int tc_end_step(TaskCurriculum *tc, int *raised);

#endif
