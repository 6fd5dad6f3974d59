#!/usr/bin/env bash
# bench/gpu/nccl_pair.sh: build bench/gpu/nccl_pair.c on a machine with CUDA and NCCL (no MPI, no other
# cispo dependency needed: a stub mpi.h stands in for core/error.c's MPI_Abort path) and run it, then the
# torch.distributed comparison. NVLink multicast stays off (NCCL_NVLS_ENABLE=0).
# usage (repository root): bench/gpu/nccl_pair.sh [P]
set -euo pipefail
P=${1:-2}
export NCCL_NVLS_ENABLE=0
CUDA=${CUDA_HOME:-/usr/local/cuda}
W=${TMPDIR:-/tmp}/nccl_pair_build
mkdir -p "$W/stub"
inc=""; lib=""
for d in "$CUDA/include" /usr/include $(python3 -c 'import nvidia.nccl, os; print(os.path.dirname(nvidia.nccl.__file__) + "/include")' 2>/dev/null || true); do
  [ -f "$d/nccl.h" ] && { inc=$d; break; }
done
for d in "$CUDA/lib64" /usr/lib/x86_64-linux-gnu $(python3 -c 'import nvidia.nccl, os; print(os.path.dirname(nvidia.nccl.__file__) + "/lib")' 2>/dev/null || true); do
  ls "$d"/libnccl.so* >/dev/null 2>&1 && { lib=$d; break; }
done
[ -n "$inc" ] && [ -n "$lib" ] || { echo "nccl.h or libnccl not found" >&2; exit 1; }
[ -e "$lib/libnccl.so" ] || ln -sf "$(ls "$lib"/libnccl.so.* | head -1)" "$W/libnccl.so"
cat > "$W/stub/mpi.h" <<'H'
/* stand-in for <mpi.h>: MPI is never initialised in bench/gpu/nccl_pair */
#include <stdlib.h>
typedef int MPI_Comm;
#define MPI_COMM_WORLD 0
static inline int MPI_Initialized(int *f) { *f = 0; return 0; }
static inline int MPI_Finalized(int *f) { *f = 0; return 0; }
static inline int MPI_Abort(MPI_Comm c, int code) { (void)c; exit(code); }
H
nvcc -O2 -std=c++17 -arch=sm_90 -I. -I"$W/stub" -c kernels/cuda/comm_nccl_sum.cu -o "$W/sum.o"
for f in core/error.c core/log.c core/watchdog.c kernels/cuda/comm_nccl.c bench/gpu/nccl_pair.c; do
  gcc -O2 -std=c11 -D_GNU_SOURCE -Wall -I. -I"$W/stub" -I"$CUDA/include" -I"$inc" -c "$f" -o "$W/$(basename "$f" .c).o"
done
g++ -o "$W/nccl_pair" "$W"/*.o -L"$W" -L"$lib" -L"$CUDA/lib64" -lnccl -lcudart -lpthread -lm \
  -Wl,-rpath,"$lib" -Wl,-rpath,"$CUDA/lib64"
nvidia-smi --query-gpu=index,name,driver_version --format=csv,noheader || true
"$W/nccl_pair" "$P"
python3 bench/gpu/nccl_torch.py "$P" 2>&1 | grep -v Warning || true
