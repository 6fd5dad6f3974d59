#!/usr/bin/env bash
# scripts/setup.sh: install cispo's Debian packages (only those missing; idempotent) and build
# into ./build (or $CISPO_BUILD_DIR). Extra CMake options come from $CISPO_CMAKE_ARGS, e.g.
#   CISPO_CMAKE_ARGS="-DCISPO_CUDA=ON" scripts/setup.sh
set -euo pipefail
cd "$(dirname "$0")/.."

PKGS=(build-essential cmake pkg-config git libopenblas-dev libyaml-dev libjansson-dev libhdf5-dev
      libzstd-dev libxxhash-dev libopenmpi-dev openmpi-bin libcmocka-dev libpcre2-dev libutf8proc-dev
      python3-matplotlib bubblewrap libseccomp-dev python3 clang libclang-rt-dev)

missing=()
for p in "${PKGS[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  SUDO=""
  if [ "$(id -u)" -ne 0 ]; then
    command -v sudo >/dev/null || { echo "setup: need root (or sudo) to install: ${missing[*]}" >&2; exit 1; }
    SUDO=sudo
  fi
  echo "setup: installing ${missing[*]}"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

BUILD=${CISPO_BUILD_DIR:-build}
# shellcheck disable=SC2086
cmake -S . -B "$BUILD" -DCMAKE_BUILD_TYPE=${CISPO_BUILD_TYPE:-RelWithDebInfo} ${CISPO_CMAKE_ARGS:-} >/dev/null
cmake --build "$BUILD" -j"$(nproc)"
echo "setup: built $BUILD/cispo"
