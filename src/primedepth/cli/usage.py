"""Usage checks decided before the heavy imports: the output formats, the inputs, the output folder and the device.

A command that cannot run should say so at once. torch, diffusers and transformers take many seconds to import (tens
of seconds on a busy machine), so everything that can be decided from the command line and the file system is
decided here first, with the same ``error:`` lines and exit codes as the later checks (docs/reliability.md).
"""

from __future__ import annotations

import errno
import glob
import os
import sys
from pathlib import Path

import click

# spellings accepted for a format, besides its name (the docs write "colour")
FORMAT_ALIASES = {"colour": "color", "gray": "grey"}
SHARD_MARKERS = ("://", "{", ".tar")


def formats_callback(ctx, param, value: str) -> str:
    """``--format``: comma-separated names, aliases replaced, unknown names refused (before anything heavy loads)."""
    from ..outputs.formats import FORMATS  # numpy and Pillow: no torch

    names = [FORMAT_ALIASES.get(f.strip(), f.strip()) for f in value.split(",") if f.strip()]
    unknown = [f for f in names if f not in FORMATS]
    if unknown or not names:
        raise click.BadParameter(f"unknown format(s) {unknown}; choose from {', '.join(FORMATS)}")
    return ",".join(dict.fromkeys(names))


def _looks_like_shards(item: str) -> bool:
    return any(marker in item for marker in SHARD_MARKERS)


def _exists_or_matches(item: str) -> bool:
    path = Path(item).expanduser()
    return path.exists() or path.is_symlink() or (glob.has_magic(item) and bool(glob.glob(item, recursive=True)))


def _cuda_impossible() -> bool:
    """True when no GPU driver is present at all (neither NVIDIA's nor ROCm's), so torch cannot see a CUDA device;
    False when there may be one (torch then decides)."""
    if not sys.platform.startswith("linux"):
        return False
    return not (Path("/proc/driver/nvidia").exists() or Path("/dev/kfd").exists() or glob.glob("/dev/nvidia[0-9]*"))


def check_device(device: str) -> None:
    """``--device cuda`` on a machine without a GPU driver, ``--device mps`` off macOS: one error line, exit 2."""
    if device.startswith("cuda") and _cuda_impossible():
        problem = "no CUDA GPU is visible (no NVIDIA or ROCm driver on this machine)"
    elif device == "mps" and sys.platform != "darwin":
        problem = "MPS is not available on this machine (it needs macOS)"
    else:
        return
    click.echo(f"error: device {device} requested but {problem}; use --device cpu or auto", err=True)
    sys.exit(2)


def check_writable_folder(folder) -> None:
    """Raise the ``OSError`` that creating files in ``folder`` would meet, creating nothing (a usage error later on
    must leave no folder behind): its nearest existing ancestor must be a folder this process may write in."""
    existing = Path(folder).expanduser().absolute()
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent
    where = "" if existing == Path(folder).expanduser().absolute() else f": {existing}"
    if not existing.is_dir():
        raise NotADirectoryError(errno.ENOTDIR, os.strerror(errno.ENOTDIR) + where, str(folder))
    if not os.access(existing, os.W_OK | os.X_OK):
        raise PermissionError(errno.EACCES, os.strerror(errno.EACCES) + where, str(folder))


def check_before_loading(inputs, output_dir, device: str) -> None:
    """The checks of ``predict`` and ``video`` that need no model: the device, inputs that name nothing (when none
    is usable: exit 1 with the usual summary) and the output folder (exit 3 if it cannot be written; not created).
    Shard specs and URLs are left to the shard runner."""
    check_device(device)
    items = [str(item) for item in inputs]
    if any(_looks_like_shards(item) for item in items):
        return
    missing = [item for item in items if not _exists_or_matches(item)]
    if missing and len(missing) == len(items):
        click.echo(f"done: 0 written, 0 skipped (outputs exist), {len(missing)} failed", err=True)
        for item in missing:  # worded as cli.inputs.collect_inputs words them
            problem = "no files match this pattern" if glob.has_magic(item) else "no such file or folder"
            click.echo(f"  failed: {item}: {problem}", err=True)
        sys.exit(1)
    try:
        check_writable_folder(output_dir)
    except OSError as err:
        click.echo(f"error: {err.filename}: output folder is not writable ({err.strerror})", err=True)
        sys.exit(3)
