"""The record of what our runs wrote into an output folder, so outputs are recognised by the record, never by name.

``predict`` and ``video`` append the path of every output (relative to the output folder) to
``.primedepth-outputs.jsonl`` in that folder *before* the file is written. Since every file appears atomically under
its final name, an output that exists and is recorded is complete and ours; a recorded path that does not exist is
one a killed run never finished. From the record follow three rules:

- a file that exists but is not recorded is the user's (a photo named ``a.tiff``, their own ``notes_color.png``):
  it is never overwritten, even with ``--overwrite``; the image whose output it would be is reported instead;
- an input is never overwritten by an output, recorded or not;
- when an output folder lies inside an input folder, the recorded files are skipped as inputs (they are our
  outputs, not photos) and everything else is an input, whatever its name.

One JSON object per line, appended with one ``write`` (concurrent runs into one folder interleave whole lines); a
cut line (a full disk) is ignored when read and never glued to the next record.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Iterable
from pathlib import Path

MANIFEST_NAME = ".primedepth-outputs.jsonl"


class OutputClashError(ValueError):
    """An output would replace an input or a file no run of ours wrote; the message names both."""


def _absolute(path: str | Path) -> Path:
    return Path(os.path.abspath(path))  # lexical: symbolic links stay where they are


class OutputManifest:
    """The outputs recorded in one folder (``MANIFEST_NAME`` in it); paths are relative to the folder.

    ``inputs``: files this run reads, which no output may replace."""

    def __init__(self, folder: str | Path, inputs: Iterable[str | Path] = ()):
        self.folder = _absolute(folder)
        self.path = self.folder / MANIFEST_NAME
        self.inputs = {_absolute(p) for p in inputs}
        self._recorded: set[str] | None = None
        self._read_at: tuple[int, int] | None = None  # size and mtime of the file when read

    def _stamp(self) -> tuple[int, int] | None:
        try:
            st = os.stat(self.path)
        except OSError:
            return None
        return st.st_size, st.st_mtime_ns

    def recorded(self, refresh: bool = False) -> set[str]:
        """Relative paths (POSIX) of everything recorded so far, by this or earlier runs (``refresh``: read again
        if another process appended since)."""
        if refresh and self._recorded is not None and self._stamp() != self._read_at:
            self._recorded = None
        if self._recorded is None:
            self._recorded = set()
            self._read_at = self._stamp()
            try:
                lines = self.path.read_text(encoding="utf-8", errors="replace").splitlines()
            except OSError:  # none yet, or unreadable: nothing is taken for ours, so nothing is overwritten
                lines = []
            for line in lines:
                try:
                    entry = json.loads(line)
                except json.JSONDecodeError:
                    continue  # a line cut short (a full disk)
                if isinstance(entry, dict) and isinstance(entry.get("path"), str):
                    self._recorded.add(entry["path"])
        return self._recorded

    def _relative(self, path: str | Path) -> str | None:
        path = _absolute(path)
        if path != self.folder and self.folder not in path.parents:
            return None
        return path.relative_to(self.folder).as_posix()

    def owns(self, path: str | Path) -> bool:
        """Whether ``path`` (inside the folder) is a recorded output, or lies in a recorded output folder (the
        record is read again when another run has appended to it since: two runs may share a folder)."""
        rel = self._relative(path)
        if rel is None:
            return False
        parts = rel.split("/")
        keys = ["/".join(parts[:k]) for k in range(1, len(parts) + 1)]
        return any(k in self.recorded() for k in keys) or any(k in self.recorded(refresh=True) for k in keys)

    def clash(self, path: str | Path) -> str | None:
        """Why ``path`` must not be written (None: it may be): it is an input, or it exists and is not ours."""
        path = _absolute(path)
        if path in self.inputs:
            return f"its output {path} would overwrite that input file"
        if os.path.lexists(path) and not self.owns(path):
            return (
                f"{path} exists and no primedepth run wrote it (it is not in {self.path}); it is left alone: "
                "move it away or choose another output folder"
            )
        return None

    def done(self, paths: Iterable[str | Path]) -> bool:
        """Whether every path exists as a complete output of ours."""
        return all(os.path.lexists(p) and self.owns(p) for p in paths)

    def plan(
        self, items: list[tuple[Path, Path]], targets: Callable[[Path], list[Path]], overwrite: bool = False
    ) -> tuple[list[tuple[Path, Path]], int, list[str]]:
        """Split ``(file, stem)`` items into those to compute, the number skipped because their outputs
        (``targets(stem)``) exist and are ours (unless ``overwrite``), and one report per item refused because an
        output would replace an input or a file we did not write."""
        todo, skipped, refused = [], 0, []
        for file, stem in items:
            paths = targets(stem)
            reason = next((r for r in map(self.clash, paths) if r is not None), None)
            if reason is not None:
                refused.append(f"{file}: {reason}")
            elif not overwrite and self.done(paths):
                skipped += 1
            else:
                todo.append((file, stem))
        return todo, skipped, refused

    def claim(self, paths: Iterable[str | Path]) -> None:
        """Record ``paths`` as outputs about to be written; raises ``OutputClashError`` (recording nothing) when one
        of them must not be written, ``OSError`` naming the manifest when it cannot be appended to."""
        paths = list(paths)
        for path in paths:
            reason = self.clash(path)
            if reason is not None:
                raise OutputClashError(reason)
        new = [rel for rel in map(self._relative, paths) if rel is not None and rel not in self.recorded()]
        if not new:
            return
        data = "".join(json.dumps({"path": rel}) + "\n" for rel in new).encode()
        try:
            self.folder.mkdir(parents=True, exist_ok=True)
            fd = os.open(self.path, os.O_RDWR | os.O_APPEND | os.O_CREAT, 0o666)
            try:
                size = os.fstat(fd).st_size
                if size and os.pread(fd, 1, size - 1) != b"\n":
                    data = b"\n" + data  # the last line was cut (a full disk): keep ours whole
                os.write(fd, data)  # not fsynced: a record lost to a power cut only makes a file look not ours
            finally:
                os.close(fd)
        except OSError as err:
            raise type(err)(err.errno, err.strerror or str(err), str(self.path)) from None
        self.recorded().update(new)


def recorded_output(path: str | Path, cache: dict[Path, OutputManifest] | None = None) -> bool:
    """Whether ``path`` is recorded as an output in the manifest of any folder above it (the output folder of a
    run may lie anywhere inside a searched input folder). ``cache``: manifests already read, by folder."""
    cache = {} if cache is None else cache
    for folder in _absolute(path).parents:
        if folder not in cache:
            cache[folder] = OutputManifest(folder) if (folder / MANIFEST_NAME).is_file() else None
        if cache[folder] is not None and cache[folder].owns(path):
            return True
    return False
