#!/usr/bin/env bash
# The CPU benchmark of docs/performance.md: all contenders at 256^2 and 512^2, then our optimisation variants at
# 256^2. About 30 minutes on 2 cores. Outputs go to docs/bench-cpu/ and docs/bench-cpu-variants/.
set -euo pipefail
cd "$(dirname "$0")/.."
primedepth bench --device cpu --resolutions 256,512 --warmup 1 --repeats 2 --output-dir docs/bench-cpu "$@"
primedepth bench --device cpu --resolutions 256 --warmup 1 --repeats 2 --no-plot --output-dir docs/bench-cpu-variants \
  --contenders primedepth,primedepth-plain,primedepth-lowmem,primedepth-bf16,primedepth-bf16-all,sd-single-step-nchw "$@"
