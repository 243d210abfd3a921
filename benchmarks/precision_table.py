"""The precision table of docs/performance.md: PrimeDepth-mini on two held-out sets in every precision configuration.

    python benchmarks/precision_table.py [--scenes 200] [--seeds 7,11] [--output-dir benchmarks/results/precision]

One thread (times are ratios within one run). Writes results.json and results.md to the output folder.
"""

import argparse
import json
from pathlib import Path

import torch

from primedepth.miniature.precision_study import markdown_table, precision_rows, within_bound_everywhere
from primedepth.pipelines.precision import PRECISIONS
from primedepth.utils.atomic import atomic_write

if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="primedepth-mini")
    parser.add_argument("--scenes", type=int, default=200)
    parser.add_argument("--seeds", default="7,11")
    parser.add_argument("--precisions", default=",".join(PRECISIONS))
    parser.add_argument("--output-dir", type=Path, default=Path("benchmarks/results/precision"))
    args = parser.parse_args()
    torch.set_num_threads(1)
    rows = precision_rows(args.model, args.precisions.split(","), [int(s) for s in args.seeds.split(",")], args.scenes)
    table = markdown_table(rows)
    args.output_dir.mkdir(parents=True, exist_ok=True)
    atomic_write(args.output_dir / "results.json", json.dumps(rows, indent=2).encode())
    atomic_write(args.output_dir / "results.md", (table + "\n").encode())
    print(table)
    print("within the bound on every set:", ", ".join(within_bound_everywhere(rows)) or "none")
