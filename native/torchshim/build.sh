#!/usr/bin/env bash
# Builds the libtorch shim into native/torchshim/build/libgntorch.so (ignored by git).
#
#   build.sh                      CMake against libtorch: Debian's (apt-get install libtorch-dev
#                                 libopenblas0-pthread), or the one Torch_DIR=<...>/share/cmake/Torch
#                                 or CMAKE_PREFIX_PATH=<libtorch> names (e.g. a CUDA build of 2.x)
#   build.sh --from-python [PY]   no CMake: compiles with the C++ compiler against the libtorch
#                                 inside PY's (default python3) installed PyTorch, CUDA libraries
#                                 included when that PyTorch has them. The shim includes no CUDA
#                                 header, so this needs no CUDA toolkit.
# Needs a C++17 compiler (CXX, default g++). GN_BUILD_JOBS bounds CMake's parallel jobs.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
build="$here/build"
mkdir -p "$build"

if [ "${1:-}" = "--from-python" ]; then
    py="${2:-python3}"
    # torch's folder, its C++ ABI flag and whether it was built with CUDA
    read -r tdir abi cuda < <("$py" -c '
import os, torch
print(os.path.dirname(torch.__file__), int(torch._C._GLIBCXX_USE_CXX11_ABI), 1 if torch.version.cuda else 0)')
    libs=(-ltorch -ltorch_cpu -lc10)
    [ "$cuda" = "1" ] && libs+=(-ltorch_cuda -lc10_cuda)
    # --no-as-needed: nothing in the shim calls into torch_cuda directly, yet it must be
    # loaded for libtorch to register its CUDA kernels and device hooks
    "${CXX:-g++}" -std=c++17 -O2 -fPIC -shared -Wno-deprecated-declarations -fvisibility=hidden -fvisibility-inlines-hidden \
        -D_GLIBCXX_USE_CXX11_ABI="$abi" \
        -I"$tdir/include" -I"$tdir/include/torch/csrc/api/include" \
        "$here/gntorch.cpp" -o "$build/libgntorch.so" \
        -L"$tdir/lib" -Wl,--no-as-needed "${libs[@]}" -Wl,--as-needed -Wl,-rpath,"$tdir/lib" -ldl
    echo "built $build/libgntorch.so against $tdir (cuda: $cuda)"
    exit 0
fi

gen=()
command -v ninja >/dev/null 2>&1 && gen=(-G Ninja)
extra=()
[ -n "${Torch_DIR:-}" ] && extra+=(-DTorch_DIR="$Torch_DIR")
cmake -S "$here" -B "$build" "${gen[@]}" -DCMAKE_BUILD_TYPE=Release "${extra[@]}" >/dev/null
cmake --build "$build" --parallel "${GN_BUILD_JOBS:-2}"
echo "built $build/libgntorch.so"
