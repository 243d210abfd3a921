"""Numeric precision of the pipeline: the named configurations, which one ``"auto"`` picks on a device, and how to
tell what ran.

A configuration fixes the dtype of the frozen parts (VAE, UNet, text tower; their GroupNorms always compute in
fp32) and of the trained labeller. ``"auto"`` picks ``AUTO_HALF_PRECISION`` where the hardware computes bf16
natively (x86 CPUs with AVX512-BF16 or AMX, Arm CPUs with the BF16 extension, CUDA GPUs of compute capability 8.0
and up) and fp32 elsewhere: bf16 emulated in software is slower than fp32. The choice is the fastest configuration
that stays within 0.2 delta1 points and 0.002 AbsRel of fp32 on two held-out sets of PrimeDepth-mini (the table
and the command that reproduces it are in docs/performance.md; a test checks the bound on a subset).
"""

from __future__ import annotations

import copy
import functools
import os
import time
from dataclasses import dataclass
from pathlib import Path

import torch


@dataclass(frozen=True)
class Precision:
    name: str
    frozen_dtype: torch.dtype
    labeller_dtype: torch.dtype
    description: str


PRECISIONS = {
    p.name: p
    for p in (
        Precision("fp32", torch.float32, torch.float32, "everything fp32"),
        Precision("bf16-frozen", torch.bfloat16, torch.float32, "bf16 VAE, UNet and text tower, fp32 labeller"),
        Precision("bf16", torch.bfloat16, torch.bfloat16, "everything bf16"),
        Precision("fp16-frozen", torch.float16, torch.float32, "fp16 VAE, UNet and text tower, fp32 labeller"),
        Precision("fp16", torch.float16, torch.float16, "everything fp16"),
    )
}
PRECISION_CHOICES = ("auto", *PRECISIONS)

# The fastest configuration within the accuracy bound on trained weights (docs/performance.md, "Precision").
AUTO_HALF_PRECISION = "bf16"
# What "auto" means, when set (e.g. fp32 to make runs comparable across machines; the test suite sets it).
AUTO_OVERRIDE_ENV = "PRIMEDEPTH_AUTO_PRECISION"
# The bound: how far a configuration may move the held-out metrics of fp32.
DELTA1_BOUND = 0.002
ABS_REL_BOUND = 0.002

_X86_BF16_FLAGS = ("avx512_bf16", "amx_bf16")


def _cpu_flags(cpuinfo: str | None = None) -> set[str]:
    """Feature flags of the first CPU in ``/proc/cpuinfo`` (x86 ``flags``, Arm ``Features``); empty if unknown."""
    if cpuinfo is None:
        try:
            cpuinfo = Path("/proc/cpuinfo").read_text()
        except OSError:
            return set()
    for line in cpuinfo.splitlines():
        key, _, value = line.partition(":")
        if key.strip() in ("flags", "Features"):
            return set(value.split())
    return set()


def cpu_has_native_bf16(cpuinfo: str | None = None) -> bool:
    """True when this CPU computes bf16 in hardware: PyTorch's own probe (cpuinfo: AVX512-BF16, AMX tiles), else the
    kernel's flags (x86 ``avx512_bf16`` / ``amx_bf16``, Arm ``bf16``). ``cpuinfo``: text to read instead of
    ``/proc/cpuinfo`` (tests)."""
    if cpuinfo is None:
        for probe in ("_is_avx512_bf16_supported", "_is_amx_tile_supported"):
            check = getattr(torch.cpu, probe, None)
            if check is not None and check():
                return True
    flags = _cpu_flags(cpuinfo)
    return any(flag in flags for flag in _X86_BF16_FLAGS) or "bf16" in flags


@functools.cache
def cpu_bf16_is_faster() -> bool:
    """Whether bf16 convolutions actually beat fp32 on this CPU (measured once per process, ~0.3 s): native bf16
    instructions alone do not guarantee it (without AMX tiles, oneDNN's bf16 convolutions were 1.5x slower than fp32
    on an AVX512-BF16 Xeon, while faster on an AVX512-BF16 EPYC). A 3x3 conv of the UNet's shape class, channels
    last, best of three after a warm-up, at the process's thread count."""
    conv = torch.nn.Conv2d(320, 320, 3, padding=1).to(memory_format=torch.channels_last).eval()
    x = torch.randn(1, 320, 32, 32).contiguous(memory_format=torch.channels_last)

    def best(dtype: torch.dtype) -> float:
        module, inputs = copy.deepcopy(conv).to(dtype), x.to(dtype)
        times = []
        with torch.no_grad():
            for _ in range(4):
                start = time.perf_counter()
                module(inputs)
                times.append(time.perf_counter() - start)
        return min(times[1:])

    return best(torch.bfloat16) < 0.9 * best(torch.float32)


def has_native_bf16(device: torch.device | str) -> bool:
    """bf16 is native and worth it: CUDA capability >= 8, or a CPU with bf16 instructions on which it is faster."""
    device = torch.device(device)
    if device.type == "cpu":
        return cpu_has_native_bf16() and cpu_bf16_is_faster()
    if device.type == "cuda":
        return torch.cuda.is_available() and torch.cuda.get_device_capability(device)[0] >= 8
    return False


def resolve_precision(name: str, device: torch.device | str) -> Precision:
    """The configuration ``name`` stands for on ``device`` (``"auto"`` resolved; see the module docstring)."""
    if name == "auto":
        name = os.environ.get(AUTO_OVERRIDE_ENV) or (AUTO_HALF_PRECISION if has_native_bf16(device) else "fp32")
    try:
        return PRECISIONS[name]
    except KeyError:
        raise ValueError(f"unknown precision {name!r}; choose from {', '.join(PRECISION_CHOICES)}") from None


def precision_of(pipe) -> str:
    """Name of the configuration ``pipe`` is in now (from its modules' dtypes), e.g. ``"bf16-frozen"``; a
    combination outside ``PRECISIONS`` is described as ``"<frozen dtype> frozen + <labeller dtype> labeller"``."""
    frozen, labeller = pipe.dtype, pipe.labeller_dtype
    for p in PRECISIONS.values():
        if (p.frozen_dtype, p.labeller_dtype) == (frozen, labeller):
            return p.name
    return f"{str(frozen).removeprefix('torch.')} frozen + {str(labeller).removeprefix('torch.')} labeller"
