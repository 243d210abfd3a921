"""Which files a batch prediction reads: files, folders (recursive) and globs, each with its output stem.

Two rules keep a batch honest. Every entry that looks like an image is either returned or reported with the reason
(a dangling or looping symbolic link, something that is not a regular file, a format that cannot be read such as
HEIC, a subfolder that cannot be read), never dropped without a word. And our own outputs are never read back as
input: files recorded in the output manifest of a folder above them (``outputs.manifest``) and our temporaries are
skipped, so rerunning ``predict photos -o photos`` (or ``-o photos/depth``) resumes instead of predicting its own
outputs, while the user's files stay inputs whatever their names.
"""

from __future__ import annotations

import errno
import glob
import os
from pathlib import Path

from ..constants import IMAGE_EXTENSIONS, UNSUPPORTED_IMAGE_EXTENSIONS
from ..outputs.manifest import recorded_output
from ..utils.atomic import is_our_temp


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
        unsupported = UNSUPPORTED_IMAGE_EXTENSIONS.get(path.suffix.lower()) if path.is_file() else None
        if unsupported:
            return f"{unsupported} images cannot be read; convert it to JPEG or PNG first"
        return None
    return "not a regular file (a FIFO, socket or device)"


def _search(folder: Path, errors: list[str]) -> list[Path]:
    """Every entry under ``folder`` named like an image (readable or not), sorted; subfolders that cannot be read
    are reported in ``errors``. Symbolic links to folders are not followed; our temporaries are left out."""
    found = []

    def unreadable(err: OSError) -> None:
        errors.append(f"{err.filename}: folder cannot be read ({err.strerror or err}); the images in it are skipped")

    suffixes = IMAGE_EXTENSIONS | set(UNSUPPORTED_IMAGE_EXTENSIONS)
    for root, dirs, files in os.walk(folder, onerror=unreadable):
        dirs[:] = [d for d in dirs if not is_our_temp(Path(d))]
        for name in (*dirs, *files):
            if Path(name).suffix.lower() in suffixes and not is_our_temp(Path(name)):
                found.append(Path(root) / name)
    return sorted(found)


def collect_inputs(
    inputs: list[str], output_dir: str | Path | None = None
) -> tuple[list[tuple[Path, Path]], list[str]]:
    """(file, output stem relative to the output folder) pairs, and one error per input that cannot be used.

    Folders are searched recursively for image extensions and mirrored under the output folder; files and glob
    matches keep their name. Recorded outputs found in folders or globs (see module docstring) are skipped; a file
    named explicitly is always used. ``output_dir`` is accepted for callers that pass it; the manifests themselves
    say which files are outputs.
    """
    recorded: dict = {}  # output manifests read so far, by folder
    items, errors, seen = [], [], {}
    for item in inputs:
        path = Path(item)
        candidates: list[tuple[Path, Path]] = []
        if path.is_dir():
            reported = len(errors)
            for f in _search(path, errors):
                if not recorded_output(f, recorded):
                    candidates.append((f, f.relative_to(path).with_suffix("")))
            if not candidates and len(errors) == reported:
                errors.append(f"{item}: folder holds no images ({', '.join(sorted(IMAGE_EXTENSIONS))})")
        elif any(c in item for c in "*?["):
            for f in map(Path, sorted(glob.glob(item, recursive=True))):
                if not f.is_dir() and not is_our_temp(f) and not recorded_output(f, recorded):
                    candidates.append((f, Path(f.stem)))
            if not candidates:
                errors.append(f"{item}: no files match this pattern")
        elif os.path.lexists(path):
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
