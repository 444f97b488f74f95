#!/usr/bin/env bash
# Builds the libtorch shim into native/torchshim/build/libgntorch.so (ignored by git).
# Needs cmake, a C++17 compiler and libtorch (Debian: apt-get install libtorch-dev
# libopenblas0-pthread). For another libtorch (e.g. a CUDA build of 2.x) set
# Torch_DIR=<libtorch>/share/cmake/Torch or CMAKE_PREFIX_PATH=<libtorch>.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
build="$here/build"
mkdir -p "$build"
gen=()
command -v ninja >/dev/null 2>&1 && gen=(-G Ninja)
extra=()
[ -n "${Torch_DIR:-}" ] && extra+=(-DTorch_DIR="$Torch_DIR")
cmake -S "$here" -B "$build" "${gen[@]}" -DCMAKE_BUILD_TYPE=Release "${extra[@]}" >/dev/null
cmake --build "$build" --parallel "${GN_BUILD_JOBS:-2}"
echo "built $build/libgntorch.so"
