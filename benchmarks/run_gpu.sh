#!/usr/bin/env bash
# The GPU benchmark of docs/performance.md: every contender at 256..1024 (Marigold 50 x 10 measured directly, plus
# the 1x1 / 2x1 rows), then our precision / memory variants. Outputs go to benchmarks/results/cuda*/.
set -euo pipefail
cd "$(dirname "$0")/.."
primedepth bench --device cuda --resolutions 256,384,512,768,1024 --warmup 2 --repeats 5 \
  --output-dir benchmarks/results/cuda "$@"
primedepth bench --device cuda --resolutions 512,1024 --warmup 2 --repeats 5 --no-plot \
  --output-dir benchmarks/results/cuda-variants \
  --contenders primedepth,primedepth-plain,primedepth-lowmem,primedepth-bf16,primedepth-bf16-all,sd-single-step-nchw "$@"
