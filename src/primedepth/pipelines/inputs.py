"""Which files a batch prediction reads: files, folders (recursive) and globs, each with its output stem.

Two rules keep a batch honest. Every entry that looks like an image is either returned or reported with the reason
(a dangling or looping symbolic link, something that is not a file), never dropped without a word. And the output
tree is never read back as input: when the output folder lies inside an input folder it is skipped, and outputs of
ours (``NAME_16bit.png``, ``NAME_color.png``, ...) in it are not images to predict, so rerunning
``predict photos -o photos`` (or ``-o photos/depth``) resumes instead of predicting its own outputs.
"""

from __future__ import annotations

import errno
import glob
import os
from pathlib import Path

from ..constants import IMAGE_EXTENSIONS
from .export import FORMATS


def _absolute(path: Path) -> Path:
    return Path(os.path.abspath(path))  # lexical: a symbolic link stays where it is


def _unusable_reason(path: Path) -> str | None:
    """Why an entry named like an image cannot be read as one (None: a regular file, or a folder to skip)."""
    try:
        os.stat(path)
    except OSError as err:
        if path.is_symlink():
            if err.errno == errno.ELOOP:
                return "symbolic link loop"
            return f"broken symbolic link (points to {os.readlink(path)}, which does not exist)"
        return err.strerror or str(err)
    if path.is_file() or path.is_dir():
        return None
    return "not a regular file"


class _OutputTree:
    """Recognises files that belong to the output tree rather than to the inputs."""

    def __init__(self, output_dir: str | Path | None):
        self.root = _absolute(Path(output_dir)) if output_dir is not None else None
        self.suffixes = tuple(FORMATS.values())

    def inside(self, path: Path) -> bool:
        return self.root is not None and (self.root == path or self.root in path.parents)

    def owns(self, file: Path, searched_folder: Path | None) -> bool:
        """Whether ``file`` (found by searching ``searched_folder``, or by a glob when None) is ours."""
        if self.root is None or not self.inside(_absolute(file)):
            return False
        output_below_search = searched_folder is not None and not self.inside(_absolute(searched_folder))
        return output_below_search or file.name.endswith(self.suffixes)


def collect_inputs(
    inputs: list[str], output_dir: str | Path | None = None
) -> tuple[list[tuple[Path, Path]], list[str]]:
    """(file, output stem relative to the output folder) pairs, and one error per input that cannot be used.

    Folders are searched recursively for image extensions and mirrored under the output folder; files and glob
    matches keep their name. Files of the output tree found in folders or globs (see module docstring) are skipped;
    a file named explicitly is always used.
    """
    outputs = _OutputTree(output_dir)
    items, errors, seen = [], [], {}
    for item in inputs:
        path = Path(item)
        candidates: list[tuple[Path, Path]] = []
        if path.is_dir():
            for f in sorted(path.rglob("*")):
                if f.suffix.lower() in IMAGE_EXTENSIONS and not outputs.owns(f, path):
                    candidates.append((f, f.relative_to(path).with_suffix("")))
            if not candidates:
                errors.append(f"{item}: folder holds no images ({', '.join(sorted(IMAGE_EXTENSIONS))})")
        elif any(c in item for c in "*?["):
            for f in map(Path, sorted(glob.glob(item, recursive=True))):
                if not f.is_dir() and not outputs.owns(f, None):
                    candidates.append((f, Path(f.stem)))
            if not candidates:
                errors.append(f"{item}: no files match this pattern")
        elif path.is_file() or path.is_symlink():
            candidates.append((path, Path(path.stem)))
        else:
            errors.append(f"{item}: no such file or folder")
        for file, stem in candidates:
            reason = _unusable_reason(file)
            if reason is not None:
                errors.append(f"{file}: {reason}")
                continue
            if file.is_dir():
                continue  # a folder named like an image; its contents are searched as part of the folder
            if stem in seen and seen[stem] != file:
                errors.append(f"{file}: its outputs would overwrite those of {seen[stem]} (same name); rename one")
                continue
            if stem not in seen:
                seen[stem] = file
                items.append((file, stem))
    return items, errors
