"""Atomic file output: a file or folder appears complete under its final name or not at all.

Temporary files and folders are named ``.primedepth-tmp-PID-NAME`` next to their target (``NAME`` keeps the target's
suffix, for writers that choose the format by it). Only names with that prefix are ever swept: a later run removes
those whose writing process is gone (a kill mid-write) and leaves every other file alone, whatever its name. A write
that fails for a reason of the file system (no space, no permission) raises ``OSError`` naming the final path, not
the temporary one.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
from collections.abc import Iterator
from pathlib import Path

TEMP_PREFIX = ".primedepth-tmp-"
_TEMP_NAME = re.compile(rf"^{re.escape(TEMP_PREFIX)}(?P<pid>[0-9]+)-(?P<name>.+)$")


def temp_path_for(path: Path, tag: str = "") -> Path:
    """The temporary name used while ``path`` is being written (ends with ``path``'s name, so keeps its suffix)."""
    return path.with_name(f"{TEMP_PREFIX}{os.getpid()}-{tag}{path.name}")


def _named(err: OSError, path: Path) -> OSError:
    """The same error, reported against the final ``path``."""
    return type(err)(err.errno, err.strerror or str(err), str(path)) if err.errno else err


@contextlib.contextmanager
def atomic_path(path: str | Path) -> Iterator[Path]:
    """Yield a temporary path to write; on success it is fsynced and renamed to ``path``, on failure removed."""
    path = Path(path)
    tmp = temp_path_for(path)
    try:
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            yield tmp
        except OSError as err:
            raise _named(err, path) from None
        publish(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def publish(tmp: str | Path, path: str | Path) -> None:
    """Give the finished file ``tmp`` the name ``path``: fsynced first, so that the name never points at a file
    whose contents are not on the disk yet; then renamed (atomic within one file system)."""
    try:
        with open(tmp, "rb+") as f:
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except OSError as err:
        raise _named(err, Path(path)) from None


@contextlib.contextmanager
def scratch_dir(path: str | Path) -> Iterator[Path]:
    """An empty working folder next to ``path`` for files that are finished there and then ``publish``-ed (a graph
    and its weights file, ...); removed at exit whatever happens, and named like the other temporaries so that a
    killed run's is swept by ``remove_stale_temps``."""
    path = Path(path)
    tmp = temp_path_for(path, "work-")
    shutil.rmtree(tmp, ignore_errors=True)
    try:
        try:
            tmp.mkdir(parents=True)
        except OSError as err:
            raise _named(err, path.parent) from None
        yield tmp
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def atomic_write(path: str | Path, data: bytes) -> None:
    """Write ``data`` to ``path`` atomically."""
    with atomic_path(path) as tmp:
        tmp.write_bytes(data)


def atomic_write_text(path: str | Path, text: str) -> None:
    """Write ``text`` (UTF-8) to ``path`` atomically."""
    atomic_write(path, text.encode())


def atomic_save_npy(path: str | Path, array) -> None:
    """Write ``array`` as ``.npy`` to ``path`` atomically, streamed to the temporary file (no in-memory copy of a
    large map; the name is kept as given, numpy adds no suffix)."""
    import numpy as np

    with atomic_path(path) as tmp, open(tmp, "wb") as f:
        np.save(f, array)


@contextlib.contextmanager
def atomic_dir(path: str | Path) -> Iterator[Path]:
    """Yield an empty temporary folder next to ``path`` (created with the process's umask, like ``mkdir``); on
    success it replaces ``path`` (an existing folder there is removed), on failure it is removed."""
    path = Path(path)
    tmp = temp_path_for(path)
    shutil.rmtree(tmp, ignore_errors=True)
    try:
        try:
            tmp.mkdir(parents=True)
            yield tmp
            if path.is_dir() and not path.is_symlink():
                old = temp_path_for(path, "old-")
                os.replace(path, old)
                os.replace(tmp, path)
                shutil.rmtree(old)
            else:
                os.replace(tmp, path)
        except OSError as err:
            raise _named(err, path) from None
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def ensure_writable_folder(folder: str | Path) -> None:
    """Create ``folder`` if needed and check that files can be created in it, before any long work (raises
    ``OSError`` naming the folder)."""
    folder = Path(folder)
    probe = temp_path_for(folder / ".write-check")
    try:
        folder.mkdir(parents=True, exist_ok=True)
        probe.write_bytes(b"\0")
    except OSError as err:
        raise _named(err, folder) from None
    finally:
        with contextlib.suppress(OSError):
            probe.unlink()


def is_our_temp(path: Path) -> bool:
    """Whether ``path`` is named like a temporary of this module's writers."""
    return _TEMP_NAME.match(Path(path).name) is not None


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    except OverflowError:  # not a process id at all
        return False
    return True


def remove_stale_temps(folder: str | Path) -> list[Path]:
    """Remove our temporary files and folders under ``folder`` whose writing process no longer runs (or is this
    one, between writes); returns what was removed. Others' files and live writers' temporaries are left alone."""
    removed = []
    folder = Path(folder)
    if not folder.is_dir():
        return removed
    for tmp in sorted(folder.rglob(f"{TEMP_PREFIX}*")):  # symbolic links to folders are not followed
        m = _TEMP_NAME.match(tmp.name)
        if not m or tmp.is_symlink() or not (tmp.is_file() or tmp.is_dir()):
            continue
        pid = int(m["pid"])
        if pid != os.getpid() and _alive(pid):
            continue
        if tmp.is_dir():
            shutil.rmtree(tmp, ignore_errors=True)
        else:
            tmp.unlink(missing_ok=True)
        removed.append(tmp)
    return removed
