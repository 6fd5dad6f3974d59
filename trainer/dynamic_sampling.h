/* trainer/dynamic_sampling.h: DAPO's dynamic-sampling filter (ALGORITHMS.md §3.3): a group whose
 * G rewards are all equal carries no advantage signal (every advantage is 0) and is dropped;
 * the loop keeps generating until the batch holds enough informative groups. */
#ifndef CISPO_TRAINER_DYNAMIC_SAMPLING_H
#define CISPO_TRAINER_DYNAMIC_SAMPLING_H

/* keep[i] = 1 when group i (rewards[i*G .. i*G+G)) is kept: always when `dynamic` is 0, else when
 * its rewards are not all equal (exact comparison: rewards are computed, not measured). Groups
 * beyond `room` kept ones are dropped too (the batch is full). Returns the number kept. */
int dynamic_sampling_filter(const float *rewards, int n_groups, int G, int dynamic, int room, int *keep);

#endif
