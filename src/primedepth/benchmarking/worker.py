"""Times one contender at one resolution: ``measure`` in this process, or ``python -m primedepth.benchmarking.worker
--worker '<json arguments>'`` (what ``runs.measure_in_subprocess`` starts) printing one ``RESULT <json>`` line.

Peak memory: on the CPU the process's resident-set high-water mark (reset after the build), on CUDA
``torch.cuda.max_memory_allocated``; the baseline just before the first run is subtracted for activation memory."""

from __future__ import annotations

import ctypes
import gc
import json
import re
import resource
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

import torch

from .contenders import build_primedepth_onnx, contenders, fastest_primedepth_options


def _proc_status(key: str) -> int:
    match = re.search(rf"^{key}:\s+(\d+) kB", Path("/proc/self/status").read_text(), re.M)
    return int(match.group(1)) * 1024 if match else 0


def _reset_peak_rss() -> bool:
    try:
        Path("/proc/self/clear_refs").write_text("5")
        return True
    except OSError:
        return False


def _peak_rss() -> int:
    hwm = _proc_status("VmHWM")
    if hwm:
        return hwm
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * (1 if sys.platform == "darwin" else 1024)


def _malloc_trim() -> None:
    """Hand freed heap memory back to the OS so that the baseline is the weights, not build-time garbage."""
    try:
        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):
        pass


def _sync(device: torch.device):
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def tensor_bytes(modules) -> int:
    seen, total = set(), 0
    for module in modules:
        for t in list(module.parameters()) + list(module.buffers()):
            if t.data_ptr() not in seen:
                seen.add(t.data_ptr())
                total += t.numel() * t.element_size()
    return total


def measure(name: str, resolution: int, **settings) -> dict:
    """Build contender ``name`` and time it at ``resolution`` (in this process). Returns one result record."""
    return measure_sizes(name, [resolution], **settings)[0]


def measure_sizes(
    name: str,
    resolutions: list[int],
    *,
    device: str = "cpu",
    scale: str = "full",
    warmup: int = 1,
    repeats: int = 3,
    batch_size: int = 1,
    threads: int | None = None,
    on_record: Callable[[dict], None] | None = None,
) -> list[dict]:
    """Build contender ``name`` once and time it at each of ``resolutions`` in turn (in this process): one record
    per resolution, each with its own warm-up and its own peak memory, handed to ``on_record`` as it is done. A
    resolution that fails (e.g. out of memory) gives an error record and the next one still runs."""
    dev = torch.device(device)
    if threads:
        torch.set_num_threads(threads)
    contender = contenders()[name]
    options = dict(contender.options)
    if name == "primedepth":
        options.update(fastest_primedepth_options(dev))
    if contender.build is build_primedepth_onnx:
        options["threads"] = threads
    torch.manual_seed(0)
    t0 = time.perf_counter()
    runner = contender.build(scale, dev, **options)
    build_s = time.perf_counter() - t0
    weights = tensor_bytes(runner.modules) if runner.weights_bytes is None else runner.weights_bytes
    records = []
    for resolution in resolutions:
        try:
            timing = _time_runner(runner, resolution, dev, warmup, repeats, batch_size)
        except Exception as err:  # one size that does not fit must not end the others
            records.append(dict(contender=name, resolution=resolution, error=f"{type(err).__name__}: {err}"))
            if dev.type == "cuda":
                torch.cuda.empty_cache()
        else:
            records.append(
                dict(
                    contender=name,
                    label=contender.label,
                    notes=contender.notes,
                    resolution=resolution,
                    batch_size=batch_size,
                    device=str(dev),
                    scale=scale,
                    threads=torch.get_num_threads(),
                    **timing,
                    warmup=warmup,
                    build_seconds=build_s,
                    weights_bytes=weights,
                    memory_kind="cuda max allocated" if dev.type == "cuda" else "process RSS high-water mark",
                )
            )
        if on_record is not None:
            on_record(records[-1])
    return records


def _time_runner(runner, resolution: int, dev: torch.device, warmup: int, repeats: int, batch_size: int) -> dict:
    """Median seconds per image of ``runner`` at ``resolution`` after ``warmup`` untimed runs, and the peak memory."""
    size = runner.input_size(resolution)
    lo, hi = runner.value_range
    images = torch.rand(batch_size, 3, size, size, generator=torch.Generator().manual_seed(0)) * (hi - lo) + lo
    images = images.to(dev)
    _sync(dev)
    if dev.type == "cuda":
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats(dev)
        base = torch.cuda.memory_allocated(dev)
    else:
        gc.collect()
        _malloc_trim()
        reset = _reset_peak_rss()
        base = _proc_status("VmRSS") if reset else _peak_rss()
    times, cpu_times = [], []
    with torch.inference_mode():
        for i in range(warmup + repeats):
            _sync(dev)
            t, c = time.perf_counter(), time.process_time()
            runner.run(images)
            _sync(dev)
            if i >= warmup:
                times.append((time.perf_counter() - t) / batch_size)
                cpu_times.append((time.process_time() - c) / batch_size)
    peak = torch.cuda.max_memory_allocated(dev) if dev.type == "cuda" else _peak_rss()
    return dict(
        input_size=size,
        seconds=statistics.median(times),
        seconds_all=times,
        cpu_seconds=statistics.median(cpu_times),
        cpu_seconds_all=cpu_times,
        peak_bytes=int(peak),
        base_bytes=int(base),
        activation_bytes=int(max(0, peak - base)),
    )


def _worker_main(argv: list[str]) -> None:
    """One ``RESULT <json>`` line per resolution, printed as each finishes (a later one may time out)."""
    args = json.loads(argv[argv.index("--worker") + 1])
    name, resolutions = args.pop("name"), args.pop("resolutions")
    measure_sizes(name, resolutions, on_record=lambda r: print("RESULT " + json.dumps(r), flush=True), **args)


if __name__ == "__main__":
    _worker_main(sys.argv)
