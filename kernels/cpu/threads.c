/* kernels/cpu/threads.c: the CPU backend's thread count (OpenBLAS's own setting). */
#include <cblas.h>

#include "kernels/backend.h"

void kernels_cpu_set_threads(int n) {
    if (n <= 0) n = openblas_get_num_procs();
    openblas_set_num_threads(n);
}

int kernels_cpu_get_threads(void) { return openblas_get_num_threads(); }
