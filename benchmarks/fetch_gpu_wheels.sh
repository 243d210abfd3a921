#!/usr/bin/env bash
# Wheels for the GPU machine (Python 3.12, x86-64, no network there): the packages primedepth imports that its image
# lacks, at the versions installed here, into the ignored folder .gpu-wheels/ that the device call carries.
# Usage: benchmarks/fetch_gpu_wheels.sh [PYTHON]   (PYTHON: the interpreter whose versions to pin; default python3)
set -euo pipefail
cd "$(dirname "$0")/.."
python=${1:-python3}
# diffusers (+ importlib_metadata, lazy-importer), ftfy (+ wcwidth), webdataset (+ braceexpand), trimesh. The image
# has torch, transformers, accelerate, safetensors, huggingface_hub, numpy, scipy, pillow, matplotlib, click, tqdm,
# tifffile, pyyaml, regex, requests, filelock and zipp.
packages=(diffusers importlib_metadata lazy-importer ftfy wcwidth webdataset braceexpand trimesh)
pins=()
for name in "${packages[@]}"; do
  version=$("$python" -c "import importlib.metadata as m, sys; print(m.version(sys.argv[1]))" "$name" 2>/dev/null) || version=""
  pins+=("$name${version:+==$version}")
done
rm -rf .gpu-wheels && mkdir -p .gpu-wheels
"$python" -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
  --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 \
  -d .gpu-wheels "${pins[@]}"
ls .gpu-wheels
du -sh .gpu-wheels
