"""The GPU check in one run of minutes: fidelity on the device against the official reference, every `primedepth bench`
contender built once and timed at every size with its peak memory, and the user path (the pipeline's ``__call__`` on
a 768 x 1024 image, `primedepth demo` on the device against the CPU). One results JSON, a table printed last.

    python benchmarks/gpu_check.py [--steps env,fidelity,user,bench,demo] [--scale full|tiny] [--device auto]
                                   [--budget SECONDS] [--output DIR]
    python benchmarks/gpu_check.py --merge A.json B.json [--output DIR]   # one table from two runs' JSONs

Each step runs in its own process under its own timeout (and within ``--budget``), so a step that fails, runs out of
memory or hangs leaves the others; the bench step times each contender in a process of its own too. ``--scale tiny``
runs the same steps on tiny models and sizes (a test of the machinery on a CPU; times meaningless).
benchmarks/gpu_check.sh wraps it for the GPU machine (carried wheels, no network); see benchmarks/README.md.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
REFERENCE = ROOT / "tests" / "reference"
STEPS = ("env", "fidelity", "user", "bench", "demo")
# Seconds per step at full scale (the bench step shares its time among the contenders).
STEP_TIMEOUTS = {"env": 60, "fidelity": 120, "user": 120, "bench": 330, "demo": 180}
# The comparison on the device: ours (what `--dtype auto` picks, fp32, fp16 frozen, TF32), the authors' arithmetic, the
# single-step SD floor, Marigold 1 x 1 and 2 x 1 (its 50 x 10 protocol extrapolated), Depth Anything V2-L.
BENCH_CONTENDERS = (
    "primedepth-auto",
    "primedepth",
    "primedepth-authors",
    "sd-single-step",
    "marigold-1x1",
    "marigold-2x1",
    "depth-anything-v2-l",
    "primedepth-fp16",
    "primedepth-tf32",
)
SIZES = {"full": (256, 512, 768, 1024), "tiny": (32, 64)}
USER_IMAGE = {"full": (768, 1024), "tiny": (48, 64)}
DEMO_SCENES = {"full": 200, "tiny": 8}
# The PrimeDepth paper's Table 4: seconds per image of the authors' code on an A100 in fp32, and its peak memory.
PAPER_SECONDS = {256: 0.15, 512: 0.39, 768: 0.83, 1024: 1.72}
PAPER_PEAK_GB_1024 = 37
# What ours must reach on the GPU.
TARGET_AUTO_SECONDS_768 = 0.15
TARGET_AUTO_PEAK_GB_1024 = 6.0
FIDELITY_TOLERANCE = 1e-4


# ---------------------------------------------------------------------------------------------------------- steps


def step_env(args) -> dict:
    import platform

    import diffusers
    import torch
    import transformers

    from primedepth.pipelines.precision import resolve_precision

    dev = torch.device(args.device)
    info = dict(
        python=platform.python_version(),
        torch=torch.__version__,
        cuda=torch.version.cuda,
        cudnn=torch.backends.cudnn.version() if torch.backends.cudnn.is_available() else None,
        diffusers=diffusers.__version__,
        transformers=transformers.__version__,
        device=str(dev),
        cpus=os.cpu_count(),
        # what an fp32 forward would use without our policy
        pytorch_tf32_defaults=dict(
            cuda_matmul_allow_tf32=torch.backends.cuda.matmul.allow_tf32,
            cudnn_allow_tf32=torch.backends.cudnn.allow_tf32,
            float32_matmul_precision=torch.get_float32_matmul_precision(),
        ),
        auto_precision=resolve_precision("auto", dev).name,
    )
    if dev.type == "cuda":
        props = torch.cuda.get_device_properties(dev)
        info.update(
            gpu=props.name, capability=list(torch.cuda.get_device_capability(dev)), gpu_gib=props.total_memory / 2**30
        )
    return info


def step_fidelity(args) -> dict:
    """Every tensor of the official reference recomputed on the device: in fp32 under our policy (TF32 off), under
    PyTorch's defaults (what fp32 would be without the policy) and with TF32 allowed; then the pipeline's depth and
    segmentation outputs in every named precision."""
    import torch

    from primedepth.benchmarking.precision_errors import NAMED_PRECISION_SPLITS, reference_errors
    from primedepth.conversion.verification import verify_vectors
    from primedepth.pipelines.precision import fp32_arithmetic

    files = (REFERENCE / "official_tiny_config.json", REFERENCE / "official_tiny.ckpt")
    vectors = REFERENCE / "official_tiny_io.safetensors"
    out = {}
    for label, policy in (("fp32", False), ("pytorch defaults", None), ("tf32", True)):
        start = time.perf_counter()
        if policy is None:
            comparisons, problems = verify_vectors(*files, vectors, device=args.device)
        else:
            with fp32_arithmetic(policy):
                comparisons, problems = verify_vectors(*files, vectors, device=args.device)
        worst = max(comparisons, key=lambda c: c.relative_error)
        out[f"every tensor, {label}"] = dict(
            tensors=len(comparisons),
            within_tolerance=sum(c.relative_error <= FIDELITY_TOLERANCE for c in comparisons),
            worst=worst.relative_error,
            worst_tensor=worst.name,
            problems=problems,
            seconds=time.perf_counter() - start,
        )
        if args.device.startswith("cuda"):
            torch.cuda.empty_cache()
    start = time.perf_counter()
    precisions = reference_errors(REFERENCE, NAMED_PRECISION_SPLITS, device=args.device)
    out["pipeline outputs per precision"] = {name: errors["worst"] for name, errors in precisions.items()}
    out["pipeline outputs seconds"] = time.perf_counter() - start
    return out


def step_user(args) -> dict:
    """``PrimeDepthPipeline.__call__`` on one H x W image (random weights of the real architecture), fp32 then auto:
    median seconds of 5 calls after 2 warm-ups, and the peak device memory."""
    import numpy as np
    import torch

    from primedepth.benchmarking.contenders import random_pipeline
    from primedepth.benchmarking.worker import _peak_rss, _reset_peak_rss

    dev = torch.device(args.device)
    height, width = USER_IMAGE[args.scale]
    image = np.random.default_rng(0).integers(0, 256, (height, width, 3), dtype=np.uint8)
    pipe = random_pipeline(args.scale, dev).optimize(channels_last=True, drop_vae_decoder=True)
    out = dict(image=[height, width])
    for name in ("fp32", "auto"):
        pipe.set_precision(name)
        if dev.type == "cuda":
            torch.cuda.empty_cache()
            torch.cuda.reset_peak_memory_stats(dev)
        else:
            _reset_peak_rss()
        times = []
        for i in range(7):
            if dev.type == "cuda":
                torch.cuda.synchronize(dev)
            start = time.perf_counter()
            result = pipe(image)
            if dev.type == "cuda":
                torch.cuda.synchronize(dev)
            if i >= 2:
                times.append(time.perf_counter() - start)
        peak = torch.cuda.max_memory_allocated(dev) if dev.type == "cuda" else _peak_rss()
        out[name] = dict(
            precision=result.metadata["precision"],
            processing_size=list(result.metadata["processing_sizes"][0]),
            seconds=statistics.median(times),
            seconds_all=times,
            peak_gib=peak / 2**30,
            memory_kind="cuda max allocated" if dev.type == "cuda" else "process RSS high-water mark",
        )
    return out


def step_bench(args, deadline: float, partial: Path) -> dict:
    """Each contender built once (in its own process, at most 75 s) and run at every size. Partial results are
    written after each contender."""
    from primedepth.benchmarking.runs import add_marigold_protocol, run_benchmark

    sides = list(SIZES[args.scale])
    per_contender = 75 if args.scale == "full" else 120
    results = []
    for name in BENCH_CONTENDERS:  # in order of importance: the last ones give way when time runs short
        left = deadline - time.time() - 5
        if left < 15:
            results += [dict(contender=name, resolution=s, error="skipped: no time left") for s in sides]
            continue
        results += run_benchmark(
            [name],
            sides,
            build_once=True,
            timeout=min(per_contender, left),
            log=lambda m: print(m, flush=True),
            device=args.device,
            scale=args.scale,
            warmup=2,
            repeats=5,
        )
        partial.write_text(json.dumps(dict(results=results)))
    return dict(resolutions=sides, warmup=2, repeats=5, results=add_marigold_protocol(results))


def step_demo(args, work: Path) -> dict:
    """`primedepth demo` (PrimeDepth-mini, fp32) on the device and on the CPU: δ1 must agree within the precision
    bound."""
    from primedepth.pipelines.precision import DELTA1_BOUND

    out = {}
    for device in dict.fromkeys([args.device, "cpu"]):
        folder = work / f"demo-{device.replace(':', '')}"
        start = time.perf_counter()
        proc = subprocess.run(
            [sys.executable, "-m", "primedepth.cli", "demo", "--device", device, "--output-dir", str(folder)]
            + ["--scenes", str(DEMO_SCENES[args.scale])],
            capture_output=True,
            text=True,
        )
        if proc.returncode != 0:
            out[device] = dict(error=f"exit {proc.returncode}: {' | '.join(proc.stderr.strip().splitlines()[-3:])}")
            continue
        metrics = json.loads((folder / "metrics.json").read_text())
        out[device] = dict(delta1=metrics["delta1"], abs_rel=metrics["abs_rel"], seconds=time.perf_counter() - start)
    if all("delta1" in out.get(d, {}) for d in (args.device, "cpu")):
        difference = abs(out[args.device]["delta1"] - out["cpu"]["delta1"])
        out["delta1_difference"] = difference
        out["within_bound"] = difference <= DELTA1_BOUND
    return out


# ---------------------------------------------------------------------------------------------------------- driver


def run_step(args) -> None:
    """Child process: one step, its result written to ``--result``."""
    result_path = Path(args.result)
    deadline = time.time() + args.step_timeout
    if args.run_step == "bench":
        result = step_bench(args, deadline, result_path.with_suffix(".partial.json"))
    elif args.run_step == "demo":
        result = step_demo(args, result_path.parent)
    else:
        result = {"env": step_env, "fidelity": step_fidelity, "user": step_user}[args.run_step](args)
    tmp = result_path.with_suffix(".tmp")
    tmp.write_text(json.dumps(result, indent=1, default=str))
    tmp.replace(result_path)


def run_steps(args) -> dict:
    """Every step in its own process, each under min(its timeout, the budget left)."""
    work = Path(tempfile.mkdtemp(prefix="gpu-check-"))
    env = {k: v for k, v in os.environ.items() if k != "PRIMEDEPTH_AUTO_PRECISION"}
    started = time.time()
    steps = {}
    for name in args.steps:
        left = args.budget - (time.time() - started)
        timeout = min(STEP_TIMEOUTS[name] * (1 if args.scale == "full" else 2), left)
        if timeout < 10:
            steps[name] = dict(error="skipped: the budget is spent")
            continue
        result = work / f"{name}.json"
        command = [
            sys.executable,
            __file__,
            "--run-step",
            name,
            "--result",
            str(result),
            "--step-timeout",
            str(timeout),
        ]
        command += ["--scale", args.scale, "--device", args.device]
        print(f"== {name} (up to {timeout:.0f} s)", flush=True)
        start = time.perf_counter()
        try:
            proc = subprocess.run(command, timeout=timeout + 15, env=env, capture_output=True, text=True)
            failure = None if proc.returncode == 0 else f"exit {proc.returncode}"
            tail = proc.stderr
            if name == "bench":
                print(proc.stdout, end="", flush=True)
        except subprocess.TimeoutExpired as err:
            failure, tail = f"timed out after {timeout:.0f} s", err.stderr or ""
        if isinstance(tail, bytes):
            tail = tail.decode(errors="replace")
        if result.is_file():
            steps[name] = json.loads(result.read_text())
        elif result.with_suffix(".partial.json").is_file():
            steps[name] = {**json.loads(result.with_suffix(".partial.json").read_text()), "partial": True}
        else:
            steps[name] = {}
        if failure:
            steps[name]["error"] = f"{failure}: {' | '.join(tail.strip().splitlines()[-4:])}"
        steps[name]["step_seconds"] = time.perf_counter() - start
        status = "error: " + steps[name]["error"] if failure else "done"
        print(f"   {name}: {status} ({steps[name]['step_seconds']:.0f} s)", flush=True)
    return dict(scale=args.scale, device=args.device, budget=args.budget, steps=steps)


# ---------------------------------------------------------------------------------------------------------- report


def _gib(record: dict) -> str:
    return f"{record['peak_bytes'] / 2**30:.2f}" if "peak_bytes" in record else "—"


def report(data: dict) -> str:
    """The tables: environment, fidelity, speed and memory per contender and size, the user path, the targets."""
    steps = data["steps"]
    lines = [f"# GPU check ({data['scale']} scale, {data['device']})", ""]
    env = steps.get("env", {})
    if env:
        lines.append(
            f"{env.get('gpu', env.get('device'))}, torch {env.get('torch')} (CUDA {env.get('cuda')}, cuDNN "
            f"{env.get('cudnn')}), diffusers {env.get('diffusers')}, transformers {env.get('transformers')}; "
            f"auto = {env.get('auto_precision')}; PyTorch's TF32 defaults {env.get('pytorch_tf32_defaults')}"
        )
    for name, step in steps.items():
        if "error" in step:
            lines.append(f"step {name}: {step['error']}")
    fidelity = steps.get("fidelity", {})
    if any(key.startswith("every tensor") for key in fidelity):
        lines += ["", "## Fidelity against the official reference (max|ours − ref| / max|ref|)", ""]
        lines += ["| computation | tensors within 1e-4 | worst | worst tensor |", "|---|---:|---:|---|"]
        for key, row in fidelity.items():
            if key.startswith("every tensor"):
                within = f"{row['within_tolerance']}/{row['tensors']}"
                lines.append(f"| {key} | {within} | {row['worst']:.1e} | {row['worst_tensor']} |")
        for name, worst in fidelity.get("pipeline outputs per precision", {}).items():
            lines.append(f"| pipeline depth + segmentation, {name} | | {worst:.1e} | |")
    bench = steps.get("bench", {})
    rows = [r for r in bench.get("results", [])]
    if rows:
        sides = bench.get("resolutions") or sorted({r["resolution"] for r in rows})
        by = {(r["contender"], r["resolution"]): r for r in rows}
        names = list(dict.fromkeys(r["contender"] for r in rows))
        lines += ["", "## Seconds per image (median of 5 after 2 warm-ups) / peak GiB", ""]
        lines += ["| contender | " + " | ".join(f"{s}²" for s in sides) + " |", "|---|" + "---:|" * len(sides)]
        for name in names:
            cells = []
            for s in sides:
                r = by.get((name, s), {})
                cells.append("error" if "error" in r else f"{r['seconds']:.3f} s / {_gib(r)}" if r else "")
            lines.append(f"| {name} | " + " | ".join(cells) + " |")
        for ours in ("primedepth-auto", "primedepth"):
            paper = [by.get((ours, s), {}).get("seconds") for s in sides]
            authors = [by.get(("primedepth-authors", s), {}).get("seconds") for s in sides]
            lines.append(
                f"| {ours}: × faster than the paper's Table 4 (A100 fp32) | "
                + " | ".join(
                    f"{PAPER_SECONDS[s] / t:.1f}×" if t and s in PAPER_SECONDS else "" for s, t in zip(sides, paper)
                )
                + " |"
            )
            lines.append(
                f"| {ours}: × faster than the authors' arithmetic here | "
                + " | ".join(f"{a / t:.1f}×" if t and a else "" for t, a in zip(paper, authors))
                + " |"
            )
        peak = by.get(("primedepth-auto", 1024), {}).get("peak_bytes")
        if peak:
            theirs = f"the authors state {PAPER_PEAK_GB_1024} GB for their code"
            lines += ["", f"Peak at 1024²: ours (auto) {peak / 1e9:.1f} GB; {theirs}."]
    user = steps.get("user", {})
    if "fp32" in user or "auto" in user:
        lines += ["", f"## User path: pipeline __call__ on a {user['image'][0]} × {user['image'][1]} image", ""]
        for name in ("fp32", "auto"):
            if name in user:
                u = user[name]
                size = "×".join(map(str, u["processing_size"]))
                timing = f"{u['seconds']:.3f} s, peak {u['peak_gib']:.2f} GiB"
                lines.append(f"- {name} ({u['precision']}, processed at {size}): {timing}")
    demo = steps.get("demo", {})
    if any(isinstance(row, dict) for row in demo.values()):
        lines += ["", "## primedepth demo (PrimeDepth-mini, fp32): δ1 on the device vs the CPU", ""]
        for device, row in demo.items():
            if isinstance(row, dict):
                lines.append(
                    f"- {device}: "
                    + (
                        row.get("error")
                        or f"δ1 {row['delta1']:.4f}, AbsRel {row['abs_rel']:.4f}, {row['seconds']:.0f} s"
                    )
                )
        if "delta1_difference" in demo:
            verdict = "within" if demo["within_bound"] else "OUTSIDE"
            lines.append(f"- |Δδ1| = {demo['delta1_difference']:.5f} ({verdict} the bound)")
    lines += ["", "## Targets", ""]
    for text, ok in targets(data):
        lines.append(f"- {text}: {'yes' if ok else 'no' if ok is not None else 'not measured'}")
    return "\n".join(lines) + "\n"


def targets(data: dict) -> list[tuple[str, bool | None]]:
    steps = data["steps"]
    by = {(r["contender"], r["resolution"]): r for r in steps.get("bench", {}).get("results", []) if "error" not in r}
    fp32 = steps.get("fidelity", {}).get("every tensor, fp32")
    auto_768, auto_1024 = by.get(("primedepth-auto", 768)), by.get(("primedepth-auto", 1024))
    demo = steps.get("demo", {})
    return [
        (
            f"fp32 every tensor <= {FIDELITY_TOLERANCE:g} on the device",
            None if not fp32 else fp32["within_tolerance"] == fp32["tensors"] > 0 and not fp32["problems"],
        ),
        (
            f"ours (auto) <= {TARGET_AUTO_SECONDS_768} s at 768²",
            None if not auto_768 else auto_768["seconds"] <= TARGET_AUTO_SECONDS_768,
        ),
        (
            f"ours (auto) <= {TARGET_AUTO_PEAK_GB_1024:g} GB peak at 1024²",
            None if not auto_1024 else auto_1024["peak_bytes"] <= TARGET_AUTO_PEAK_GB_1024 * 1e9,
        ),
        ("demo δ1 on the device = CPU's within the bound", demo.get("within_bound")),
    ]


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--steps", default=",".join(STEPS), help=f"comma-separated, from {', '.join(STEPS)}")
    parser.add_argument("--scale", choices=("full", "tiny"), default="full")
    parser.add_argument("--device", default="auto", help="cuda, cuda:N, cpu or auto (CUDA when available)")
    parser.add_argument("--budget", type=float, default=470, help="seconds for all steps together")
    parser.add_argument("--output", default="gpu-check-results", help="folder for gpu_check.json and gpu_check.md")
    parser.add_argument("--merge", nargs="+", metavar="JSON", help="merge the steps of earlier runs' JSONs")
    parser.add_argument("--run-step", help=argparse.SUPPRESS)
    parser.add_argument("--result", help=argparse.SUPPRESS)
    parser.add_argument("--step-timeout", type=float, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.device == "auto":
        import torch

        args.device = "cuda" if torch.cuda.is_available() else "cpu"
    if args.run_step:
        run_step(args)
        return 0
    if args.merge:
        parts = [json.loads(Path(p).read_text()) for p in args.merge]
        data = {**parts[0], "steps": {k: v for part in parts for k, v in part["steps"].items()}}
    else:
        args.steps = [s for s in args.steps.split(",") if s]
        unknown = set(args.steps) - set(STEPS)
        if unknown:
            parser.error(f"unknown step(s) {', '.join(sorted(unknown))}; choose from {', '.join(STEPS)}")
        data = run_steps(args)
    output = Path(args.output)
    output.mkdir(parents=True, exist_ok=True)
    table = report(data)
    for name, text in (("gpu_check.json", json.dumps(data, indent=1, default=str)), ("gpu_check.md", table)):
        tmp = output / f".{name}.tmp"
        tmp.write_text(text)
        tmp.replace(output / name)
    print(table, end="")
    return 0


if __name__ == "__main__":
    sys.exit(main())
