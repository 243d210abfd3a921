"""Miniature ablation of PrimeDepth-mini: every variant x seed at one budget, then a table.

    python scripts/ablate_mini.py run --variants full no_attention --seeds 0 1 2 --steps 1000
    python scripts/ablate_mini.py table --steps 1000

Each run is ``primedepth train configs/mini-primedepth.json`` with only the ablation, the seed (labeller init, data
order, noise) and the step budget changed, written to ``<root>/<variant>-s<seed>`` (``--root``, default
``runs/ablation-mini``). The score is the
run's final validation: the same 200 held-out scenes (data seed 7) for every run, disparity-space alignment.
Finished runs are skipped, so the command resumes; disjoint ``--variants`` lists can run side by side.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
from pathlib import Path

from primedepth.training.ablations import ABLATIONS

VARIANTS = {name: ablation.label for name, ablation in ABLATIONS.items() if name != "latent"}  # name -> row label


def final_validation(run: Path, steps: int) -> dict | None:
    log = run / "logs" / "metrics.jsonl"
    if not log.is_file():
        return None
    rows = [json.loads(line) for line in log.read_text().splitlines() if line.strip()]
    done = [r for r in rows if r.get("split") == "val" and r.get("step") == steps]
    return done[-1] if done else None


def run(args) -> int:
    failures = 0
    for variant in args.variants:
        for seed in args.seeds:
            out = Path(args.root) / f"{variant}-s{seed}"
            if final_validation(out, args.steps):
                print(f"{out}: done, skipped", flush=True)
                continue
            cmd = [
                sys.executable,
                "-m",
                "primedepth.cli",
                "train",
                args.config,
                "--set",
                f"model.ablation={variant}",
                "--set",
                f"seed={seed}",
                "--set",
                f"train.max_steps={args.steps}",
                "--set",
                f"output_dir={out}",
                "--set",
                f"validation.every={args.steps}",
                "--set",
                f"checkpoint.every={args.steps}",
            ]
            print(" ".join(cmd), flush=True)
            env = dict(os.environ, OMP_NUM_THREADS=str(args.threads))
            if subprocess.run(cmd, env=env).returncode != 0:
                print(f"{out}: FAILED", flush=True)
                failures += 1
    return 1 if failures else 0


def table(args) -> int:
    lines = [
        "| variant | seeds | δ1 ↑ mean | δ1 spread | AbsRel ↓ mean | AbsRel spread | per seed δ1 / AbsRel |",
        "| --- | ---: | ---: | ---: | ---: | ---: | --- |",
    ]
    missing = []
    for variant in args.variants:
        label, scores = VARIANTS[variant], {}
        for seed in args.seeds:
            val = final_validation(Path(args.root) / f"{variant}-s{seed}", args.steps)
            if val is None:
                missing.append(f"{variant}-s{seed}")
            else:
                scores[seed] = (val["delta1"], val["abs_rel"])
        if not scores:
            continue
        d1 = [d for d, _ in scores.values()]
        ar = [a for _, a in scores.values()]
        per_seed = ", ".join(f"s{s}: {d:.4f} / {a:.4f}" for s, (d, a) in scores.items())
        lines.append(
            f"| {label} | {len(scores)} | {statistics.mean(d1):.4f} | {max(d1) - min(d1):.4f} | "
            f"{statistics.mean(ar):.4f} | {max(ar) - min(ar):.4f} | {per_seed} |"
        )
    text = "\n".join(lines) + "\n"
    if missing:
        text += f"\nmissing runs: {', '.join(missing)}\n"
    print(text)
    if args.out:
        Path(args.out).write_text(text)
    return 1 if missing else 0


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    for name in ("run", "table"):
        p = sub.add_parser(name)
        p.add_argument("--variants", nargs="+", default=list(VARIANTS), choices=list(VARIANTS))
        p.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
        p.add_argument("--steps", type=int, default=1000)
        p.add_argument("--root", default="runs/ablation-mini")
        if name == "run":
            p.add_argument("--config", default="configs/mini-primedepth.json")
            p.add_argument("--threads", type=int, default=1)
        else:
            p.add_argument("--out", default=None)
    args = parser.parse_args(argv)
    return run(args) if args.command == "run" else table(args)


if __name__ == "__main__":
    sys.exit(main())
