"""Numeric precision of the pipeline: the named configurations, which one ``"auto"`` picks on a device, and how to
tell what ran.

A configuration fixes the dtype of the frozen parts (VAE, UNet, text tower; their GroupNorms always compute in
fp32) and of the trained labeller. ``"auto"`` picks ``AUTO_HALF_PRECISION`` where the hardware computes bf16
natively (x86 CPUs with AVX512-BF16 or AMX, Arm CPUs with the BF16 extension, CUDA GPUs of compute capability 8.0
and up) and fp32 elsewhere: bf16 emulated in software is slower than fp32. The choice is the fastest configuration
that stays within 0.2 delta1 points and 0.002 AbsRel of fp32 on two held-out sets of PrimeDepth-mini (the table
and the command that reproduces it are in docs/performance.md; a test checks the bound on a subset).

fp32 means IEEE fp32: on Ampere and later GPUs PyTorch lets cuDNN compute fp32 convolutions in TF32 by default (10-bit
mantissa, about 1e-3 relative instead of fp32's 1e-7), so every forward pass runs inside ``fp32_arithmetic``, which
switches TF32 off (or on, for the named ``"tf32"`` configuration) and restores the process's settings afterwards.
"""

from __future__ import annotations

import contextlib
import copy
import functools
import os
import time
from dataclasses import dataclass
from pathlib import Path

import torch

from ..constants import PRECISION_CHOICES, PRECISION_CONFIGS


@dataclass(frozen=True)
class Precision:
    name: str
    frozen_dtype: torch.dtype
    labeller_dtype: torch.dtype
    description: str
    tf32: bool = False  # fp32 matmuls and convolutions may use TF32 on CUDA (no effect elsewhere)


PRECISIONS = {
    name: Precision(name, getattr(torch, frozen), getattr(torch, labeller), description, tf32)
    for name, (frozen, labeller, tf32, description) in PRECISION_CONFIGS.items()
}

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
    """Name of the configuration ``pipe`` is in now (from its modules' dtypes and its ``allow_tf32``), e.g.
    ``"bf16-frozen"``; a combination outside ``PRECISIONS`` is described as ``"<frozen dtype> frozen + <labeller
    dtype> labeller"``."""
    key = (pipe.dtype, pipe.labeller_dtype, getattr(pipe, "allow_tf32", False))
    for p in PRECISIONS.values():
        if (p.frozen_dtype, p.labeller_dtype, p.tf32) == key:
            return p.name
    frozen, labeller = key[:2]
    return f"{str(frozen).removeprefix('torch.')} frozen + {str(labeller).removeprefix('torch.')} labeller"


# The fp32 settings of PyTorch >= 2.9, per backend and operator (``torch.backends.<path>.fp32_precision``; "" is the
# global one that "none" defers to), and the leaves that fp32 pins to IEEE.
_FP32_PRECISION_NODES = (
    "",
    "cuda.matmul",
    "cudnn",
    "cudnn.conv",
    "cudnn.rnn",
    "mkldnn",
    "mkldnn.matmul",
    "mkldnn.conv",
)
_IEEE_LEAVES = ("cuda.matmul", "cudnn.conv", "cudnn.rnn", "mkldnn.matmul", "mkldnn.conv")


def _fp32_nodes() -> dict[str, object]:
    """The nodes of ``_FP32_PRECISION_NODES``, or nothing on a PyTorch without the per-backend settings."""
    nodes = {}
    for path in _FP32_PRECISION_NODES:
        node = functools.reduce(getattr, path.split("."), torch.backends) if path else torch.backends
        if not hasattr(node, "fp32_precision"):
            return {}
        nodes[path] = node
    return nodes


def _legacy_setting(read):
    """A legacy switch's value, or None where PyTorch refuses to read it (its caller mixed the two APIs)."""
    try:
        return read()
    except RuntimeError:
        return None


@contextlib.contextmanager
def fp32_arithmetic(allow_tf32: bool = False):
    """Run the block with fp32 matmuls and convolutions in IEEE fp32 (``allow_tf32=False``) or allowed to use TF32
    on CUDA (``True``), and restore the process's settings on exit, also when the block raises, so that a caller's
    own policy is untouched.

    Both of PyTorch's switches are set, so that either reads consistently inside the block: the legacy ones
    (``torch.set_float32_matmul_precision("highest" / "high")``, which sets ``torch.backends.cuda.matmul.allow_tf32``,
    and ``torch.backends.cudnn.allow_tf32``) and, for fp32, the per-backend ``fp32_precision`` of the matmul and
    convolution leaves pinned to ``"ieee"`` (a leaf left at ``"none"`` would follow a global ``"tf32"``)."""
    nodes = _fp32_nodes()
    saved_nodes = {path: node.fp32_precision for path, node in nodes.items()}
    saved_matmul = _legacy_setting(torch.get_float32_matmul_precision)
    saved_cudnn = _legacy_setting(lambda: torch.backends.cudnn.allow_tf32)
    try:
        torch.set_float32_matmul_precision("high" if allow_tf32 else "highest")
        torch.backends.cudnn.allow_tf32 = allow_tf32
        if not allow_tf32:
            for path in _IEEE_LEAVES:
                if path in nodes:
                    nodes[path].fp32_precision = "ieee"
        yield
    finally:
        if saved_matmul is not None:
            torch.set_float32_matmul_precision(saved_matmul)
        if saved_cudnn is not None:
            torch.backends.cudnn.allow_tf32 = saved_cudnn
        for path, node in nodes.items():
            node.fp32_precision = saved_nodes[path]
