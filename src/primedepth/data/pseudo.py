"""Pseudo-labelled image folders (written by ``primedepth pseudo-label``) for pre-training.

Layout of OUT::

    OUT/info.json                   {"images_root": ..., "depth_model": ..., "segmentation_model": ..., ...}
    OUT/manifest.jsonl              one JSON object per image (merged from the per-process shards)
    OUT/manifest.rank00003.jsonl    per-process shards while labelling (resumable: done keys are skipped)
    OUT/depth/<key>.npy             float16 (H, W) relative inverse depth from Depth Anything (higher = nearer)
    OUT/segmentation/<key>.png      uint8 ADE20K-150 index per pixel (255 = unlabelled)

A manifest entry: {"key": "sub/dir/img.jpg", "image": "sub/dir/img.jpg", "depth": "depth/sub/dir/img.jpg.npy",
"segmentation": "segmentation/sub/dir/img.jpg.png", "caption": "...", "height": H, "width": W}; paths are
relative to OUT except ``image`` (relative to ``images_root``). Several OUT folders ("shards") can be listed.
"""

from __future__ import annotations

import io
import json
from pathlib import Path

import numpy as np
from PIL import Image

from ..utils.atomic import atomic_write
from .common import DataError, RawSample, read_image

MANIFEST = "manifest.jsonl"
INFO = "info.json"


def read_manifest(out: Path) -> list[dict]:
    """Entries of ``manifest.jsonl`` plus any per-process shards, de-duplicated by key (a torn last line of a
    shard, from a killed process, is ignored)."""
    entries: dict[str, dict] = {}
    files = ([out / MANIFEST] if (out / MANIFEST).is_file() else []) + sorted(out.glob("manifest.rank*.jsonl"))
    for path in files:
        lines = path.read_text().splitlines()
        for n, line in enumerate(lines, 1):
            if not line.strip():
                continue
            try:
                entry = json.loads(line)
            except json.JSONDecodeError:
                if n == len(lines):
                    continue  # interrupted while appending
                raise DataError(f"{path}:{n}: not valid JSON") from None
            entries[entry["key"]] = entry
    return list(entries.values())


def write_outputs(out: Path, key: str, depth: np.ndarray, segmentation: np.ndarray | None) -> dict:
    """Write one image's labels atomically; returns the manifest fields for them."""
    buf = io.BytesIO()
    np.save(buf, depth.astype(np.float16))
    atomic_write(out / "depth" / f"{key}.npy", buf.getvalue())
    fields = {"depth": f"depth/{key}.npy", "height": int(depth.shape[0]), "width": int(depth.shape[1])}
    if segmentation is not None:
        buf = io.BytesIO()
        Image.fromarray(segmentation.astype(np.uint8)).save(buf, format="PNG")
        atomic_write(out / "segmentation" / f"{key}.png", buf.getvalue())
        fields["segmentation"] = f"segmentation/{key}.png"
    return fields


class PseudoLabelledFolder:
    def __init__(self, root: str | list[str], images_root: str | None = None, limit: int | None = None):
        roots = [root] if isinstance(root, str) else list(root)
        self.items: list[tuple[Path, Path, dict]] = []
        for r in roots:
            out = Path(r).expanduser()
            info_path = out / INFO
            if not info_path.is_file():
                raise DataError(f"{out}: not a pseudo-labelled folder ({INFO} missing; run primedepth pseudo-label)")
            info = json.loads(info_path.read_text())
            img_root = Path(images_root or info["images_root"]).expanduser()
            self.items += [(out, img_root, e) for e in sorted(read_manifest(out), key=lambda e: e["key"])]
        if limit:
            self.items = self.items[: int(limit)]
        if not self.items:
            raise DataError(f"{roots}: no labelled images in the manifest(s)")

    def __len__(self):
        return len(self.items)

    def __getitem__(self, index: int) -> RawSample:
        out, img_root, e = self.items[index]
        image = read_image(img_root / e["image"])
        depth_path = out / e["depth"]
        try:
            depth = np.load(depth_path).astype(np.float32)
        except FileNotFoundError:
            raise DataError(f"{depth_path}: depth pseudo-label missing") from None
        except ValueError as err:
            raise DataError(f"{depth_path}: not a .npy array ({err})") from None
        if depth.shape != image.shape[:2]:
            raise DataError(f"{depth_path}: size {depth.shape} differs from the image {image.shape[:2]}")
        labels = None
        if e.get("segmentation"):
            with Image.open(out / e["segmentation"]) as im:
                labels = np.asarray(im)
        valid = np.isfinite(depth)
        return RawSample(image, depth, valid, labels, e.get("caption", ""), "inverse", str(img_root / e["image"]))
