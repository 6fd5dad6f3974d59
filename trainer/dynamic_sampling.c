/* trainer/dynamic_sampling.c: see dynamic_sampling.h. */
#include "trainer/dynamic_sampling.h"

int dynamic_sampling_filter(const float *rewards, int n_groups, int G, int dynamic, int room, int *keep) {
    int kept = 0;
    for (int i = 0; i < n_groups; i++) {
        const float *r = rewards + (long)i * G;
        int informative = 0;
        for (int j = 1; j < G && !informative; j++) informative = r[j] != r[0];
        keep[i] = kept < room && (!dynamic || informative);
        kept += keep[i];
    }
    return kept;
}
