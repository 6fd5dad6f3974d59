#!/usr/bin/env bash
# tools/gpu_bundle.sh: build the CUDA configuration here and gather what the GPU machine needs to run
# it into one folder (default build-gpurun/): the cispo binary, the gpu-labelled tests, the CUDA
# benchmarks, the anchor scripts, and the shared libraries the GPU machine lacks (everything ldd
# names except glibc, the C++ runtime and the CUDA libraries the machine has), so that
#   cd build-gpurun && LD_LIBRARY_PATH=$PWD/lib:/usr/local/cuda/lib64 ./test_cuda_model
# works there (the machine has glibc, CUDA, HDF5 and its dependencies; the rest is copied). The
# folder is also packed into build-gpupack/bundle.tgz (about a third of its size): carry that with the
# device tool (`carry: ["build-gpupack"]`, the tree and carried paths must stay under 64 MiB) and run
# `tar -xzf build-gpupack/bundle.tgz` there first.
set -euo pipefail
cd "$(dirname "$0")/.."
OUT=${1:-build-gpurun}
BUILD=${CISPO_CUDA_BUILD:-build-cuda}
cmake -S . -B "$BUILD" -DCISPO_CUDA=ON -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
cmake --build "$BUILD" -j"$(nproc)" >/dev/null
rm -rf "$OUT"
mkdir -p "$OUT/lib" "$OUT/anchors"
bins=("$BUILD/cispo")
for t in "$BUILD"/tests/test_*; do
  [ -x "$t" ] && grep -qs "labels:.*gpu" "$(grep -l "" tests/*/"$(basename "$t")".c 2>/dev/null | head -1)" && bins+=("$t")
done
for b in "$BUILD"/bench/bench_cuda_*; do [ -x "$b" ] && [ -f "$b" ] && bins+=("$b"); done
for b in "${bins[@]}"; do strip -o "$OUT/$(basename "$b")" "$b"; done
# What the GPU machine lacks (it has glibc, CUDA, HDF5 and its dependencies): an allow-list keeps the
# folder small.
keep='^(libcmocka|libcudart|libevent_core|libevent_pthreads|libgfortran|libhwloc|libjansson|libmpi|libopen-pal|libopen-rte|libopenblas|libquadmath|libudev|libyaml-0|libz|libxxhash|libzstd|libutf8proc|libpcre2-8|libseccomp)[.-]'
for b in "${bins[@]}"; do ldd "$b"; done | awk '/=> \//{print $1, $3}' | sort -u | while read -r name path; do
  if [[ "$name" =~ $keep ]]; then cp -L "$path" "$OUT/lib/"; fi
done
cp ../shared/anchors/*.py bench/gpu/*.py "$OUT/anchors/" 2>/dev/null || true
cp -r configs "$OUT/configs"
du -sh "$OUT"
mkdir -p build-gpupack
tar -czf build-gpupack/bundle.tgz "$OUT"
du -sh build-gpupack/bundle.tgz
