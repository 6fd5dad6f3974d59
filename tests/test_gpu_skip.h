/* tests/test_gpu_skip.h: what every `gpu`-labelled test does first. Without a CUDA backend (built
 * without -DCISPO_CUDA=ON, or no device) the test prints "skipped" and passes, unless
 * CISPO_REQUIRE_GPU=1 (the GPU machine's runs set it), which makes the missing GPU a failure. */
#ifndef CISPO_TESTS_GPU_SKIP_H
#define CISPO_TESTS_GPU_SKIP_H

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kernels/backend.h"

/* -1: a GPU is there, run the tests; otherwise the exit status main should return. */
static inline int gpu_skip_status(const char *test) {
    if (kernels_cuda() != NULL) return -1;
    const char *req = getenv("CISPO_REQUIRE_GPU");
    if (req && strcmp(req, "1") == 0) {
        fprintf(stderr, "%s: no GPU (kernels_cuda() is NULL) and CISPO_REQUIRE_GPU=1\n", test);
        return 1;
    }
    printf("%s: skipped: no GPU (built without -DCISPO_CUDA=ON or no CUDA device)\n", test);
    return 0;
}

#endif
