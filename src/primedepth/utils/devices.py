"""Which device a model runs on: ``"auto"`` (or nothing) is the best one this machine has; a named device is checked
to exist before any weights are loaded, so that a missing GPU is one clear error instead of a deep CUDA traceback."""

from __future__ import annotations

import torch


class DeviceUnavailableError(RuntimeError):
    """The requested device does not exist on this machine (or this torch build lacks its backend)."""


def auto_device() -> torch.device:
    """CUDA when a GPU is visible, else Apple's MPS when available, else the CPU."""
    if torch.cuda.is_available():
        return torch.device("cuda")
    if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
        return torch.device("mps")
    return torch.device("cpu")


def resolve_device(device: str | torch.device | None) -> torch.device:
    """``None`` or ``"auto"``: ``auto_device()``; otherwise the device named, checked to exist."""
    if device is None or str(device) == "auto":
        return auto_device()
    device = torch.device(device)
    if device.type == "cuda" and not torch.cuda.is_available():
        build = "this torch build has no CUDA" if torch.version.cuda is None else "no CUDA GPU is visible"
        raise DeviceUnavailableError(
            f"device {device} requested but {build} (torch {torch.__version__}); "
            "use --device cpu or auto, or install a CUDA build of torch"
        )
    if device.type == "mps" and not (getattr(torch.backends, "mps", None) and torch.backends.mps.is_available()):
        raise DeviceUnavailableError(f"device {device} requested but MPS is not available on this machine")
    return device
