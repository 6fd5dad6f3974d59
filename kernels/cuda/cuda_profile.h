/* kernels/cuda/cuda_profile.h: per-op GPU time of the CUDA backend (kernels/cuda/profile.cu).
 * Set CISPO_CUDA_PROFILE=1 (report to stderr) or =PATH (appended to PATH) before the backend is
 * first requested; the report is written at exit, or now by kernels_cuda_profile_report (which
 * also clears the counters, so a benchmark can profile one phase). */
#ifndef CISPO_KERNELS_CUDA_PROFILE_H
#define CISPO_KERNELS_CUDA_PROFILE_H

#include "kernels/backend.h"

#ifdef __cplusplus
extern "C" {
#endif

/* The table `base` with every compute and copy op timed (one copy per process). */
const KernelOps *kernels_cuda_profiled(const KernelOps *base);
/* Print the rows gathered so far and reset them; a no-op when profiling is off. */
void kernels_cuda_profile_report(void);
/* gemm.cu's event counts since the last call (then reset): [0] BF16 copies of the parameter block
 * written, [1] operands converted to BF16, [2] cuBLASLt plans built, [3] plans cuBLASLt refused at a
 * call's size, [4] cublasGemmEx fallbacks (no plan, an invalid plan or a full cache). */
void gemm_cuda_counters(long out[5]);

#ifdef __cplusplus
}
#endif

#endif
