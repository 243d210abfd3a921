"""The app's results store: one folder per request under ``WORKDIR/results``, kept within an age and a size limit
while the app runs, so that a long-running app cannot fill the disk.

Before a request writes, and once more when it is done, folders older than the age limit are removed, then the
oldest ones until the store fits its size limit; folders of requests still running are never touched. A timer
prunes as well when no request comes. Gradio's own upload cache gets the same age limit (its ``delete_cache``).
"""

from __future__ import annotations

import os
import shutil
import threading
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path

DEFAULT_MAX_AGE_MIN = 60
DEFAULT_MAX_MB = 2000
PRUNE_EVERY_S = 60


def folder_bytes(folder: Path) -> int:
    total = 0
    for root, _, files in os.walk(folder):
        for name in files:
            try:
                total += os.lstat(os.path.join(root, name)).st_size
            except OSError:
                pass  # removed meanwhile
    return total


@dataclass
class ResultStore:
    """Result folders under ``root``, at most ``max_age_s`` old and ``max_bytes`` in all (the request being
    written may exceed the size limit alone: it is kept until it is not the newest)."""

    root: Path
    max_age_s: float = DEFAULT_MAX_AGE_MIN * 60
    max_bytes: int = DEFAULT_MAX_MB * 2**20
    _active: set[Path] = field(default_factory=set)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def new_folder(self) -> Path:
        """A fresh folder for one request (pruning first); call ``done`` with it when the request has written."""
        folder = self.root / uuid.uuid4().hex
        with self._lock:
            self._active.add(folder)
        self.prune()
        folder.mkdir(parents=True)
        return folder

    def done(self, folder: Path) -> None:
        with self._lock:
            self._active.discard(folder)
        self.prune(keep=folder)

    def prune(self, keep: Path | None = None) -> list[Path]:
        """Remove folders over the age limit, then the oldest until the store fits; returns what was removed."""
        removed = []
        with self._lock:
            protected = {*self._active, keep}
            try:
                entries = [p for p in self.root.iterdir() if p.is_dir() and not p.is_symlink()]
            except FileNotFoundError:
                return removed
            now = time.time()
            aged = sorted(((p.stat().st_mtime, p) for p in entries), key=lambda e: e[0])
            sizes = {p: folder_bytes(p) for _, p in aged}
            total = sum(sizes.values())
            for mtime, path in aged:  # oldest first
                if path in protected:
                    continue
                if now - mtime > self.max_age_s or total > self.max_bytes:
                    shutil.rmtree(path, ignore_errors=True)
                    total -= sizes[path]
                    removed.append(path)
        return removed

    def start_timer(self, every_s: float = PRUNE_EVERY_S) -> threading.Thread:
        """Prune every ``every_s`` seconds in a daemon thread (the age limit holds without requests)."""

        def loop():
            while True:
                time.sleep(every_s)
                self.prune()

        thread = threading.Thread(target=loop, daemon=True, name="primedepth-results-pruner")
        thread.start()
        return thread


_STORES: dict[Path, ResultStore] = {}


def configure(workdir: Path, max_age_s: float, max_bytes: int) -> ResultStore:
    """Set the limits of the store under ``workdir`` (the app does this once, at start)."""
    store = _STORES[Path(workdir)] = ResultStore(Path(workdir) / "results", max_age_s, max_bytes)
    return store


def store_for(workdir: Path) -> ResultStore:
    """The store under ``workdir`` (with the default limits if the app did not configure one)."""
    workdir = Path(workdir)
    if workdir not in _STORES:
        _STORES[workdir] = ResultStore(workdir / "results")
    return _STORES[workdir]


def upload_cache_policy(workdir: Path) -> tuple[int, int]:
    """Gradio's ``delete_cache`` (how often, maximum age, in seconds) matching the results' age limit."""
    age = max(int(store_for(workdir).max_age_s), 1)
    return min(PRUNE_EVERY_S, age), age
