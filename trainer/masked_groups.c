/* trainer/masked_groups.c: see masked_groups.h. Each unmasked group goes through the
 * dynamic-sampling filter on its own with the room left, so the kept set is the same as the
 * filter's over the unmasked groups in order. */
#include "trainer/masked_groups.h"

#include "trainer/dynamic_sampling.h"

int masked_count(const int *masked, int n) {
    int m = 0;
    for (int i = 0; i < n; i++) m += masked[i] != 0;
    return m;
}

int masked_groups_filter(const float *rewards, const int *masked, int n_groups, int G, int dynamic, int room,
                         int *keep) {
    int kept = 0;
    for (int i = 0; i < n_groups; i++) {
        keep[i] = 0;
        if (masked_count(masked + (long)i * G, G) > 0) continue;
        kept += dynamic_sampling_filter(rewards + (long)i * G, 1, G, dynamic, room - kept, &keep[i]);
    }
    return kept;
}
