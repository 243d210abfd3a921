#!/usr/bin/env bash
# Fit the working tree into the 64 MiB a device call may send: the tracked files are ~79 MB, of which the official
# reference (tests/reference, 52 MB) and the embedded PrimeDepth-mini weights (23 MB) are most. Each part of
# benchmarks/gpu_check.py needs one of them, so each device call leaves the other out of the tree for its duration.
#
#   benchmarks/gpu_tree.sh main      # mini weights out: for --steps env,fidelity,bench,user
#   benchmarks/gpu_tree.sh demo      # reference checkpoint and vectors out: for --steps env,demo
#   benchmarks/gpu_tree.sh restore   # git restore of both (run it right after each call)
#   benchmarks/gpu_tree.sh size      # what would travel now: tracked + untracked-not-ignored files + .gpu-wheels
#
# Only unmodified tracked files are taken out, and `git restore` brings them back from the index.
set -euo pipefail
cd "$(dirname "$0")/.."
MINI=(src/primedepth/weights/primedepth-mini)
REFERENCE=(tests/reference/official_tiny.ckpt tests/reference/official_tiny_io.safetensors)
LIMIT=$((64 * 1024 * 1024))

size() {
  local tree wheels=0
  tree=$(git ls-files -z --cached --others --exclude-standard | { xargs -0 stat -c %s 2>/dev/null || true; } | awk '{s += $1} END {print s + 0}')
  [ -d .gpu-wheels ] && wheels=$(du -sb .gpu-wheels | cut -f1)
  echo "would travel: $(( (tree + wheels) / 1048576 )) MiB (tree $((tree / 1048576)) MiB + .gpu-wheels $((wheels / 1048576)) MiB) of $((LIMIT / 1048576)) MiB"
  [ $((tree + wheels)) -le $LIMIT ]
}

leave_out() {
  if ! git diff --quiet -- "$@"; then
    echo "error: $* has local changes; commit or restore them first" >&2
    exit 1
  fi
  git ls-files -z -- "$@" | xargs -0 rm -f
  echo "left out of the tree: $* (benchmarks/gpu_tree.sh restore brings them back)"
}

case "${1:-}" in
  main) git restore -- "${REFERENCE[@]}"; leave_out "${MINI[@]}"; size ;;
  demo) git restore -- "${MINI[@]}"; leave_out "${REFERENCE[@]}"; size ;;
  restore) git restore -- "${MINI[@]}" "${REFERENCE[@]}"; echo "restored"; size || true ;;
  size) size ;;
  *) echo "usage: benchmarks/gpu_tree.sh main|demo|restore|size" >&2; exit 2 ;;
esac
