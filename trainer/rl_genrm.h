/* trainer/rl_genrm.h: the GenRM reward step of the RL loop (rl.c) and its length-bias metrics.
 * Each response's answer (the text inside <answer></answer>, salvaged when the format is broken) is
 * judged against the problem's reference answer with the problem prompt as the question. */
#ifndef CISPO_TRAINER_RL_GENRM_H
#define CISPO_TRAINER_RL_GENRM_H

#include "trainer/genrm_setup.h"
#include "trainer/metrics.h"
#include "trainer/run.h"

typedef struct {
    long judged, consistent, parsed_both; /* items of the step, and swap agreement */
} GenrmStepStats;

/* jrew[q] = the GenRM reward of response q (problem probs[q / G], tokens of the generator's slot q)
 * for q < nq. Returns 0 or ERR_*. */
int rl_genrm_rewards(const Run *r, GenrmJudge *jd, const Problem *probs, int G, int nq, float *jrew,
                     GenrmStepStats *st);
/* Add genrm_len_corr, genrm_len_gap (long minus short at equal correctness), genrm_consistency and
 * genrm_parse_fail to the step's metrics line. reward/len/correct: the step's n responses. */
void rl_genrm_metrics(MetricsWriter *mw, const GenrmJudge *jd, const GenrmStepStats *st, const float *reward,
                      const int *len, const int *correct, int n);

#endif
