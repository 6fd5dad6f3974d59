/* trainer/run_curriculum.h: the curricula/ controllers as the RL loop uses them: which budget a
 * step generates under, which problem a draw returns (mixture, difficulty level, pass-rate filter),
 * what each step reports to them, the keys they add to metrics.jsonl, and their state in a
 * checkpoint's state.h5 (group "curriculum/").
 *
 * Both parts are off by default, and then nothing changes: draws are problems_train's, the budget
 * is rollout.max_new_tokens and metrics.jsonl has no curriculum keys. The budget controller is on
 * when curriculum.budget_stages is set; the task curriculum when any of curriculum.mix_start,
 * mix_end, difficulty_window or pass_filter is set.
 */
#ifndef CISPO_TRAINER_RUN_CURRICULUM_H
#define CISPO_TRAINER_RUN_CURRICULUM_H

#include "checkpoints/h5io.h"
#include "curricula/budget.h"
#include "curricula/task_curriculum.h"
#include "trainer/metrics.h"
#include "trainer/problems.h"

typedef struct {
    int budget_on, tasks_on;
    BudgetController budget;
    TaskCurriculum tc;
    uint64_t seed;
    /* what the last step did (for metrics and logs; not state) */
    BudgetEvent last;
    int last_raised[TC_MAX_FAMILIES], n_raised;
    long step_filtered;
} RunCurriculum;

/* Set up from the config; ps gives the families. 0 or ERR_CONFIG (a stage above
 * rollout.max_new_tokens, weights that do not match data.tasks, ...). run_curriculum_free is idempotent. */
int run_curriculum_init(RunCurriculum *cu, const RunConfig *rc, const ProblemSet *ps);
void run_curriculum_free(RunCurriculum *cu);
/* The output budget of the next step. */
int run_curriculum_budget(const RunCurriculum *cu, const RunConfig *rc);
/* Start of an RL step (per-step counters). */
void run_curriculum_begin_step(RunCurriculum *cu);
/* Training problem for draw index idx at RL step `step`; *fam gets its family index. */
void run_curriculum_draw(RunCurriculum *cu, const ProblemSet *ps, long step, uint64_t idx, Problem *p, int *fam);
/* One group's outcome: `correct` of `total` responses to p (family fam). */
void run_curriculum_record(RunCurriculum *cu, const Problem *p, int fam, int correct, int total);
/* End of RL step `step` (1-based): feed the controller, raise mastered families, log transitions. */
void run_curriculum_end_step(RunCurriculum *cu, const ProblemSet *ps, long step, double gen_ppl, double p99_len);
/* The curriculum's keys for this step's metrics line (none when both parts are off). */
void run_curriculum_metrics(const RunCurriculum *cu, const ProblemSet *ps, MetricsWriter *mw);
/* Checkpoint state into / out of an open state.h5. */
int run_curriculum_save(const RunCurriculum *cu, H5File *f);
int run_curriculum_load(RunCurriculum *cu, const char *ckpt_dir);

#endif
