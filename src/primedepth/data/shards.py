"""WebDataset tar shards: naming, reading and writing them, locally or through fsspec URLs.

Input shards are what img2dataset writes: ``00000.tar`` holding ``<key>.jpg`` (or png/webp), ``<key>.txt`` and
``<key>.json`` per sample. Shard lists are brace patterns (``shards/{00000..00099}.tar``), ``::``-separated lists
(webdataset's ``expand_urls``), local paths or fsspec URLs (``s3://``, ``gs://``, ``memory://`` ...). Tar members
are read with webdataset's tar iterators and written with its ``TarWriter``.

A result shard is named like its input shard and written under a temporary name first (local: through
``primedepth.utils.atomic.atomic_path``; other filesystems: a ``.tmp`` object moved into place), so it exists
complete or not at all: a shard is the unit of resume. Result shards are byte-reproducible (fixed member times).
"""

from __future__ import annotations

import contextlib
import io
import os
import posixpath
import tarfile
from collections.abc import Iterator
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps
from webdataset.shardlists import expand_urls
from webdataset.tariterators import group_by_keys, tar_file_expander
from webdataset.writer import TarWriter

from ..utils.atomic import atomic_path, remove_stale_temps
from .common import DataError

SHARD_SUFFIXES = (".tar",)
IMAGE_EXTENSIONS = ("jpg", "jpeg", "png", "webp", "bmp")


def is_shard_spec(text: str) -> bool:
    """Whether ``text`` names tar shards (a path, URL or brace pattern ending in ``.tar``)."""
    return all(url.endswith(SHARD_SUFFIXES) for url in expand_urls(str(text)))


def is_local(url: str) -> bool:
    return "://" not in url or url.startswith("file://")


def local_path(url: str) -> Path:
    return Path(url.removeprefix("file://")).expanduser()


def expand_shards(specs: str | list[str]) -> list[str]:
    """Every shard URL of one spec or a list of specs, in order, without duplicates; local ones must exist."""
    urls: list[str] = []
    for spec in [specs] if isinstance(specs, str) else specs:
        for url in expand_urls(str(spec)):
            if not url.endswith(SHARD_SUFFIXES):
                raise DataError(f"{url}: not a WebDataset shard (expected a .tar file)")
            if is_local(url) and not local_path(url).is_file():
                raise DataError(f"{url}: shard not found")
            if url not in urls:
                urls.append(url)
    if not urls:
        raise DataError(f"{specs}: no shards")
    return urls


def _fs(url: str):
    import fsspec

    return fsspec.core.url_to_fs(url)


def join(root: str, name: str) -> str:
    """``root/name`` for a local folder or an fsspec URL."""
    return str(local_path(root) / name) if is_local(root) else posixpath.join(root.rstrip("/"), name)


def result_url(out_root: str, shard_url: str) -> str:
    """Where the result shard of ``shard_url`` goes: its file name under ``out_root``."""
    return join(out_root, posixpath.basename(shard_url.rstrip("/")))


def shard_exists(url: str) -> bool:
    if is_local(url):
        return local_path(url).is_file()
    fs, path = _fs(url)
    return fs.exists(path)


@contextlib.contextmanager
def _open_for_reading(url: str):
    if is_local(url):
        with open(local_path(url), "rb") as fh:
            yield fh
    else:
        fs, path = _fs(url)
        with fs.open(path, "rb") as fh:
            yield fh


def read_shard(url: str) -> Iterator[dict]:
    """The samples of one shard: dicts ``{"__key__": key, "<ext>": bytes, ...}`` in file order."""
    try:
        with _open_for_reading(url) as stream:
            yield from group_by_keys(tar_file_expander([{"url": url, "stream": stream}]))
    except FileNotFoundError:
        raise DataError(f"{url}: shard not found") from None
    except (OSError, ValueError, tarfile.TarError) as err:
        raise DataError(f"{url}: not a readable tar shard ({err})") from None


def image_field(sample: dict) -> str:
    """The name of the sample's image member (``jpg``, ``png``, ...)."""
    for ext in IMAGE_EXTENSIONS:
        if ext in sample:
            return ext
    raise DataError(
        f"{sample.get('__url__', '?')}: sample {sample['__key__']!r} has no image "
        f"({', '.join(IMAGE_EXTENSIONS)}); it holds {sorted(k for k in sample if not k.startswith('__'))}"
    )


def decode_image(sample: dict) -> Image.Image:
    """The sample's image as an RGB PIL image (EXIF orientation applied); a clear DataError naming shard and key
    otherwise."""
    data = sample[image_field(sample)]
    try:
        with Image.open(io.BytesIO(data)) as im:
            return ImageOps.exif_transpose(im).convert("RGB")
    except (OSError, ValueError, Image.DecompressionBombError) as err:
        raise DataError(
            f"{sample.get('__url__', '?')}: sample {sample['__key__']!r}: not a readable image ({err})"
        ) from None


def decode_text(sample: dict, field: str = "txt") -> str:
    value = sample.get(field, b"")
    return value.decode("utf-8", errors="replace").strip() if isinstance(value, bytes) else str(value)


def load_npy(data: bytes, where: str) -> np.ndarray:
    try:
        return np.load(io.BytesIO(data), allow_pickle=False)
    except ValueError as err:
        raise DataError(f"{where}: not a .npy array ({err})") from None


@contextlib.contextmanager
def write_shard(url: str) -> Iterator[TarWriter]:
    """A ``TarWriter`` whose shard appears under ``url`` complete, only when the block ends without error."""
    if is_local(url):
        with atomic_path(local_path(url)) as tmp:
            with open(tmp, "wb") as fh, TarWriter(fh, mode=0o644, mtime=0.0) as writer:
                yield writer
        return
    fs, path = _fs(url)
    tmp = f"{path}.{os.getpid()}.tmp"
    try:
        with fs.open(tmp, "wb") as fh, TarWriter(fh, mode=0o644, mtime=0.0) as writer:
            yield writer
        fs.mv(tmp, path)
    finally:
        if fs.exists(tmp):
            fs.rm(tmp)


def prepare_output(out_root: str) -> None:
    """Create a local output folder and remove temporary shards left there by killed runs."""
    if is_local(out_root):
        local_path(out_root).mkdir(parents=True, exist_ok=True)
        remove_stale_temps(local_path(out_root))
