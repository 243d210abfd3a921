#!/usr/bin/env bash
# The GPU check (benchmarks/gpu_check.py) on the GPU machine: installs the wheels carried in .gpu-wheels/ (made here by
# benchmarks/fetch_gpu_wheels.sh) into /tmp/gpu-site, runs the package from src/ with no network, and writes
# gpu_check.json, gpu_check.md and the log into $OUT (the device tool's folder; ./gpu-check-results elsewhere).
#   benchmarks/gpu_check.sh --steps env,fidelity,user,bench     # tree from `benchmarks/gpu_tree.sh main`
#   benchmarks/gpu_check.sh --steps env,demo                    # tree from `benchmarks/gpu_tree.sh demo`
#   benchmarks/gpu_check.sh --scale tiny --device cpu           # the whole machinery on tiny models, on a CPU
set -uo pipefail
cd "$(dirname "$0")/.."
python=${PYTHON:-python3}
if compgen -G ".gpu-wheels/*.whl" >/dev/null; then
  "$python" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/gpu-site \
    .gpu-wheels/*.whl || { echo "error: installing .gpu-wheels failed" >&2; exit 1; }
  export PYTHONPATH=/tmp/gpu-site
fi
export PYTHONPATH=$PWD/src${PYTHONPATH:+:$PYTHONPATH}
export PYTHONUNBUFFERED=1 HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 HF_HUB_DISABLE_TELEMETRY=1
unset PRIMEDEPTH_AUTO_PRECISION
out=${OUT:-gpu-check-results}
mkdir -p "$out"
"$python" benchmarks/gpu_check.py --output "$out" "$@" 2>&1 | tee "$out/gpu_check.log"
