#!/usr/bin/env bash
# The CPU benchmark of docs/performance.md: all contenders at 256^2 and 512^2, then our optimisation variants at
# 256^2, then ours vs the memory-saving switch. About 25 minutes with one thread. Outputs: benchmarks/results/cpu*/.
set -euo pipefail
cd "$(dirname "$0")/.."
primedepth bench --device cpu --threads 1 --resolutions 256,512 --warmup 1 --repeats 2 --output-dir benchmarks/results/cpu "$@"
primedepth bench --device cpu --threads 1 --resolutions 256 --warmup 1 --repeats 2 --no-plot --output-dir benchmarks/results/cpu-variants \
  --contenders primedepth,primedepth-plain,primedepth-lowmem,primedepth-bf16,primedepth-bf16-all,sd-single-step-nchw "$@"
primedepth bench --device cpu --threads 1 --resolutions 256,512 --warmup 1 --repeats 2 --no-plot \
  --output-dir benchmarks/results/cpu-lowmem --contenders primedepth,primedepth-lowmem "$@"
