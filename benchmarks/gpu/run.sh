#!/usr/bin/env bash
# The torch backend on one device, end to end: builds the libtorch shim against the local
# libtorch, runs the self-contained .NET runner (conformance cases on the device, then the
# timings side by side with the same machine's PyTorch on the same device) and leaves the
# JSON report in OUT/report.json.
#
#   benchmarks/gpu/run.sh [--device cpu|cuda:N] [--out DIR] [--quick] [runner options...]
#
# --quick: few repetitions, a short GroupedNewton-avg period and a small VGG batch (a smoke
# run of the whole pipeline, about a minute on a CPU). Other options go to the runner
# (--models, --reps, --mlp-batch, --vgg-batch, --skip-conformance, --skip-timing).
#
# libtorch: Torch_DIR when set; else the PyTorch of the first of $PYTHON, python3 and
# /usr/bin/python3 that has one
# (CMake against its config, or without CMake when that fails); else Debian's
# libtorch-dev. The runner: published here with `dotnet publish` when dotnet exists (into
# benchmarks/gpu/publish, ignored by git); on a machine without .NET, that folder must have
# travelled with the working tree.
#
# Exit status: the runner's (0 all conformance cases passed, 1 some failed, 3 the torch
# backend or the device is unavailable: the reason is printed and in the report), 3 also when
# no libtorch is found to build the shim against, 2 on bad arguments or no runner.
set -uo pipefail
root="$(cd "$(dirname "$0")/../.." && pwd)"
cd "$root"
device=cpu
out="$root/benchmarks/gpu/out"
quick=()
pass=()
while [ $# -gt 0 ]; do
    case "$1" in
        --device) device="$2"; shift 2 ;;
        --out) out="$2"; shift 2 ;;
        --quick) quick=(--quick); shift ;;
        *) pass+=("$1"); shift ;;
    esac
done
mkdir -p "$out"
# the first Python that has PyTorch ($PYTHON, python3, /usr/bin/python3)
py="${PYTHON:-python3}"
for cand in "${PYTHON:-}" python3 /usr/bin/python3; do
    if [ -n "$cand" ] && "$cand" -c "import torch" >/dev/null 2>&1; then py="$cand"; break; fi
done
log="$out/build.log"
: > "$log"
start=$(date +%s)

# ---- the shim ----
torch_py_dir=""
if "$py" -c "import torch" >/dev/null 2>&1; then
    torch_py_dir="$("$py" -c "import torch; print(torch.utils.cmake_prefix_path)")/Torch"
fi
built=0
if [ -n "${Torch_DIR:-}" ]; then
    native/torchshim/build.sh >>"$log" 2>&1 && built=1
elif [ -n "$torch_py_dir" ] && [ -d "$torch_py_dir" ] && command -v cmake >/dev/null 2>&1; then
    Torch_DIR="$torch_py_dir" native/torchshim/build.sh >>"$log" 2>&1 && built=1
fi
if [ $built = 0 ] && [ -n "$torch_py_dir" ]; then
    native/torchshim/build.sh --from-python "$py" >>"$log" 2>&1 && built=1
fi
if [ $built = 0 ] && command -v cmake >/dev/null 2>&1; then
    native/torchshim/build.sh >>"$log" 2>&1 && built=1
fi
if [ $built = 0 ]; then
    reason="no libtorch to build the shim against (no Torch_DIR, no PyTorch in $py, no Debian libtorch-dev; see $log)"
    echo "SKIPPED: $reason"
    printf '{ "device": "%s", "unavailable": "%s" }\n' "$device" "$reason" > "$out/report.json"
    exit 3
fi
echo "shim built ($(( $(date +%s) - start )) s): $(tail -n 1 "$log")"

# ---- the runner ----
publish="$root/benchmarks/gpu/publish"
if command -v dotnet >/dev/null 2>&1 && [ -z "${GN_NO_PUBLISH:-}" ]; then
    t=$(date +%s)
    if ! dotnet publish benchmarks/gpu/Runner -c Release -r linux-x64 --self-contained -p:PublishTrimmed=true \
            -p:DebugType=none -o "$publish" >>"$log" 2>&1; then
        echo "the runner did not publish; see $log"
        exit 2
    fi
    rm -f "$publish"/*.xml "$publish"/*.pdb
    echo "runner published ($(( $(date +%s) - t )) s, $(du -sm "$publish" | cut -f1) MiB)"
fi
if [ ! -x "$publish/GpuRunner" ]; then
    echo "no runner at $publish/GpuRunner and no dotnet to publish it (publish it where .NET is and let the folder travel)"
    exit 2
fi

# what the device is, for the record
if command -v nvidia-smi >/dev/null 2>&1; then
    nvidia-smi --query-gpu=name,driver_version,memory.total,compute_cap --format=csv > "$out/nvidia-smi.csv" 2>&1 || true
fi

"$publish/GpuRunner" --device "$device" --out "$out" --python "$py" --script "$root/benchmarks/gpu/pytorch_side.py" \
    "${quick[@]}" "${pass[@]}"
rc=$?
echo "run.sh: runner exit $rc after $(( $(date +%s) - start )) s; report $out/report.json"
exit $rc
