"""Reading ``torch.save`` files that may come from anyone: tensors and plain containers only, unless trusted.

``torch.load(weights_only=False)`` unpickles arbitrary Python objects and so runs code from the file. Every
``.pt`` / ``.ckpt`` the package reads goes through ``load_torch_file``: ``weights_only=True`` first; full unpickling
only when the caller passes ``trust_pickle`` (the ``--trust-pickle`` flag of the commands).
"""

from __future__ import annotations

import pickle
from pathlib import Path

import torch


class UntrustedCheckpointError(RuntimeError):
    """The file holds Python objects besides tensors and may only be unpickled when trusted."""


def load_torch_file(path: str | Path, trust_pickle: bool = False):
    """The object saved in ``path``, loaded onto the CPU."""
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as err:
        if not trust_pickle:
            raise UntrustedCheckpointError(
                f"{path}: this file holds Python objects besides tensors, and unpickling them can run arbitrary "
                f"code. If you trust the file, pass --trust-pickle (trust_pickle=True). Details: {err}"
            ) from None
        return torch.load(path, map_location="cpu", weights_only=False)
    except (RuntimeError, EOFError) as err:
        raise ValueError(f"{path}: not a readable PyTorch file ({err})") from None
