"""A whole benchmark: the contenders and resolutions to run, each pair timed in a fresh worker process (or in this
one), and the derived Marigold v1-0 protocol rows."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Callable

import torch

from ..utils import devices
from .contenders import CPU_DEFAULT_RESOLUTIONS, MARIGOLD_PROTOCOL, RESOLUTIONS, contenders, default_contenders
from .worker import measure_sizes


def parse_sides(text: str) -> list[int]:
    """``"256,512"`` -> ``[256, 512]``."""
    return [int(x) for x in text.split(",") if x.strip()]


def resolve_device(device: str) -> str:
    """The device's name, ``"auto"`` resolved (``utils.devices``)."""
    return str(devices.resolve_device(device))


def plan(device: str, names: str | None = None, resolutions: str | None = None) -> tuple[list[str], list[int]]:
    """The contender names (comma-separated, or the device's defaults) and square sides (comma-separated, or the
    device's defaults) of one benchmark. Raises ``ValueError`` naming unknown contenders."""
    dev = torch.device(device)
    selected = names.split(",") if names else list(default_contenders(dev))
    unknown = [n for n in selected if n not in contenders()]
    if unknown:
        raise ValueError(f"unknown contender(s) {', '.join(unknown)}; see --list")
    sides = (
        parse_sides(resolutions) if resolutions else list(CPU_DEFAULT_RESOLUTIONS if dev.type == "cpu" else RESOLUTIONS)
    )
    return selected, sides


def measure_sizes_in_subprocess(
    name: str, resolutions: list[int], timeout: float | None = None, **kwargs
) -> list[dict]:
    """``measure_sizes`` in a fresh interpreter: the contender built once and run at every resolution; one record per
    resolution (an error record for each one a crash or the ``timeout`` left unmeasured)."""
    args = json.dumps(dict(name=name, resolutions=list(resolutions), **kwargs))
    # A fixed mmap threshold: large tensors go back to the OS when freed, so RSS tracks live memory.
    env = {**os.environ, "MALLOC_MMAP_THRESHOLD_": os.environ.get("MALLOC_MMAP_THRESHOLD_", "4194304")}
    try:
        proc = subprocess.run(
            [sys.executable, "-m", "primedepth.benchmarking.worker", "--worker", args],
            capture_output=True,
            text=True,
            timeout=timeout,
            env=env,
        )
        stdout, failure = proc.stdout, None
    except subprocess.TimeoutExpired as err:
        stdout, failure, proc = err.stdout or "", f"timed out after {timeout} s", None
    if isinstance(stdout, bytes):
        stdout = stdout.decode(errors="replace")
    done = {}
    for line in stdout.splitlines():
        if line.startswith("RESULT "):
            record = json.loads(line[len("RESULT ") :])
            done[record["resolution"]] = record
    if failure is None and len(done) < len(resolutions):
        tail = (proc.stderr or proc.stdout).strip().splitlines()[-3:]
        failure = f"exit {proc.returncode}: {' | '.join(tail)}"
    return [done.get(res) or dict(contender=name, resolution=res, error=failure) for res in resolutions]


def add_marigold_protocol(results: list[dict]) -> list[dict]:
    """Derived rows ``marigold-50x10 (extrapolated)`` from the 1x1 and 2x1 rows of each resolution."""
    steps, ensemble = MARIGOLD_PROTOCOL
    out = [r for r in results if not r.get("derived")]
    measured = {(r["contender"], r["resolution"]): r for r in out if "error" not in r}
    for (name, res), one in list(measured.items()):
        two = measured.get(("marigold-2x1", res))
        if name != "marigold-1x1" or two is None or ("marigold-50x10", res) in measured:
            continue
        per_step = max(0.0, two["seconds"] - one["seconds"])
        seconds = ensemble * (one["seconds"] + (steps - 1) * per_step)
        if "cpu_seconds" in one and "cpu_seconds" in two:
            cpu_step = max(0.0, two["cpu_seconds"] - one["cpu_seconds"])
            one = {**one, "cpu_seconds": ensemble * (one["cpu_seconds"] + (steps - 1) * cpu_step)}
        out.append(
            {
                **one,
                "contender": "marigold-50x10",
                "label": "Marigold, 50 steps x 10 (v1-0), extrapolated",
                "notes": f"= {ensemble} x (t(1x1) + {steps - 1} x (t(2x1) - t(1x1))); memory of 1x1 (batch 1)",
                "seconds": seconds,
                "seconds_all": [],
                "derived": True,
                "per_step_seconds": per_step,
            }
        )
    return out


def run_benchmark(
    contender_names,
    resolutions,
    *,
    subprocesses: bool = True,
    build_once: bool = False,
    timeout: float | None = None,
    log: Callable[[str], None] = print,
    **settings,
) -> list[dict]:
    """Every contender at every resolution, each in its own process unless ``subprocesses`` is off; ``settings`` are
    ``measure``'s (device, scale, warmup, repeats, batch_size, threads). ``build_once``: each contender built once
    and run at every resolution (one process per contender; ``timeout`` then covers all its resolutions), instead
    of built anew per (contender, resolution). A contender that fails gives an error record, not an exception."""
    if build_once:
        jobs = [(name, list(resolutions)) for name in contender_names]
    else:
        jobs = [(name, [res]) for res in resolutions for name in contender_names]
    results = []
    for name, sides in jobs:
        if subprocesses:
            records = measure_sizes_in_subprocess(name, sides, timeout=timeout, **settings)
        else:
            try:
                records = measure_sizes(name, sides, **settings)
            except Exception as err:  # a contender that does not build must not end the run
                records = [dict(contender=name, resolution=res, error=f"{type(err).__name__}: {err}") for res in sides]
        for record in records:
            res = record["resolution"]
            results.append(record)
            if "error" in record:
                log(f"{name} @ {res}: {record['error']}")
            else:
                log(
                    f"{name} @ {res}: {record['seconds']:.3f} s/img, peak {record['peak_bytes'] / 2**20:.0f} MiB, "
                    f"activations {record['activation_bytes'] / 2**20:.0f} MiB"
                )
    return add_marigold_protocol(results)
