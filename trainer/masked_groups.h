/* trainer/masked_groups.h: keeping the groups of a generation round when some responses could not
 * be scored (reward masked: a code sandbox infrastructure failure, rewards/reward.h). A masked
 * response is never scored as wrong; and a group missing one of its G rewards would bias the
 * group's advantage baseline, so the whole group is dropped. The rest go through DAPO's
 * dynamic-sampling filter (trainer/dynamic_sampling.h) as before.
 */
#ifndef CISPO_TRAINER_MASKED_GROUPS_H
#define CISPO_TRAINER_MASKED_GROUPS_H

/* keep[i] = 1 when group i (rewards[i*G .. i*G+G), masked[...] the same) has no masked response
 * and passes dynamic_sampling_filter (dynamic, at most `room` groups kept in all). With no masked
 * response this is exactly dynamic_sampling_filter. Returns the number kept. */
int masked_groups_filter(const float *rewards, const int *masked, int n_groups, int G, int dynamic, int room,
                         int *keep);

/* Number of masked responses among n. */
int masked_count(const int *masked, int n);

#endif
