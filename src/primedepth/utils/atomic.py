"""Atomic file output: a file appears complete under its final name or not at all.

Temporary files are named ``.NAME.PID.tmp[SUFFIX]`` next to their target, so a later run can tell ours apart from
the user's files and remove those whose writing process is gone (a kill mid-write).
"""

from __future__ import annotations

import contextlib
import os
import re
from collections.abc import Iterator
from pathlib import Path

_TEMP_NAME = re.compile(r"^\.(?P<name>.+)\.(?P<pid>\d+)\.tmp(\.[A-Za-z0-9]+)?$")


def temp_path_for(path: Path) -> Path:
    """The temporary name used while ``path`` is being written (keeps the suffix, for writers that need it)."""
    return path.with_name(f".{path.name}.{os.getpid()}.tmp{path.suffix}")


@contextlib.contextmanager
def atomic_path(path: str | Path) -> Iterator[Path]:
    """Yield a temporary path to write; on success it is fsynced and renamed to ``path``, on failure removed."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = temp_path_for(path)
    try:
        yield tmp
        with open(tmp, "rb+") as f:
            os.fsync(f.fileno())
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def atomic_write(path: str | Path, data: bytes) -> None:
    """Write ``data`` to ``path`` atomically."""
    with atomic_path(path) as tmp:
        tmp.write_bytes(data)


def is_our_temp(path: Path) -> bool:
    return _TEMP_NAME.match(path.name) is not None


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def remove_stale_temps(folder: str | Path) -> list[Path]:
    """Remove our temporary files under ``folder`` whose writing process no longer runs; returns what was removed."""
    removed = []
    folder = Path(folder)
    if not folder.is_dir():
        return removed
    for tmp in folder.rglob(".*.tmp*"):
        m = _TEMP_NAME.match(tmp.name)
        if m and tmp.is_file() and (int(m["pid"]) == os.getpid() or not _alive(int(m["pid"]))):
            tmp.unlink(missing_ok=True)
            removed.append(tmp)
    return removed
