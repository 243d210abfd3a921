#!/usr/bin/env bash
# The CPU benchmark of docs/performance.md: all contenders at 256^2 and 512^2, then our optimisation variants at
# 256^2, then the memory table (ours, the memory-saving switch and the authors' arithmetic at 512^2 and 768^2, the
# largest size whose N x N maps fit 24 GB of RAM; one cold run each: memory, not time), then ours vs the single-step
# SD baseline at 512^2 on its own (the ratio the 15 % target is about). About 40 minutes with one thread. Outputs:
# benchmarks/results/cpu*/.
set -euo pipefail
cd "$(dirname "$0")/.."
primedepth bench --device cpu --threads 1 --resolutions 256,512 --warmup 1 --repeats 2 --output-dir benchmarks/results/cpu "$@"
primedepth bench --device cpu --threads 1 --resolutions 256 --warmup 1 --repeats 2 --no-plot --output-dir benchmarks/results/cpu-variants \
  --contenders primedepth,primedepth-plain,primedepth-lowmem,primedepth-bf16,primedepth-bf16-all,sd-single-step-nchw "$@"
primedepth bench --device cpu --threads 1 --resolutions 512,768 --warmup 0 --repeats 1 --no-plot \
  --output-dir benchmarks/results/cpu-memory --contenders primedepth,primedepth-lowmem,primedepth-authors "$@"
primedepth bench --device cpu --threads 1 --resolutions 512 --warmup 1 --repeats 2 --no-plot \
  --output-dir benchmarks/results/cpu-single-step --contenders primedepth,sd-single-step "$@"
primedepth bench --device cpu --threads 1 --resolutions 256,512 --warmup 1 --repeats 2 --no-plot \
  --output-dir benchmarks/results/cpu-auto-onnx --contenders primedepth,primedepth-auto,primedepth-onnx,primedepth-authors "$@"
primedepth bench --device cpu --threads 1 --resolutions 256,512 --warmup 1 --repeats 2 --no-plot \
  --output-dir benchmarks/results/cpu-precision \
  --contenders primedepth,primedepth-bf16,primedepth-auto,primedepth-fp16,primedepth-fp16-all "$@"
