"""Pseudo-labels for pre-training images: relative depth, ADE20K-150 segmentation and a caption per image.

Models (transformers): depth ``depth-anything/Depth-Anything-V2-Large-hf`` (relative inverse depth), segmentation
``facebook/mask2former-swin-large-ade-semantic`` (Mask2Former Swin-L, 56.1 mIoU on ADE20K val: the strongest
ADE20K-150 model in transformers; the authors used InternImage-H, which transformers lacks), captions BLIP-2
``Salesforce/blip2-opt-2.7b`` (as the authors). ``Labellers`` loads them lazily; ``label_files`` labels a folder of
images into ``data.pseudo``'s layout (resumable: images in the manifest are skipped; with several processes each
labels every ``world``-th image into its own manifest shard and the main one merges them), ``caption_files`` writes
captions only. An image that cannot be read is named and skipped, never the end of the run. WebDataset shards go
through ``distributed.shard_workers.PseudoLabelShardWorker`` with the same ``Labellers``.
"""

from __future__ import annotations

import json
import os
import pickle
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

from ..constants import IMAGE_EXTENSIONS

DEFAULT_DEPTH = "depth-anything/Depth-Anything-V2-Large-hf"
DEFAULT_SEGMENTATION = "facebook/mask2former-swin-large-ade-semantic"
NO_CAPTIONS = "none"  # --caption-model none: empty captions, no caption model


def read_rgb(path: Path):
    """The image at ``path`` as RGB, or None with the reason when it cannot be read (one bad file never stops a
    labelling run)."""
    from PIL import Image

    try:
        with Image.open(path) as im:
            return im.convert("RGB"), None
    except (OSError, ValueError, SyntaxError, Image.DecompressionBombError) as err:
        return None, f"{path}: cannot read the image ({err})"


def list_images(root: Path) -> list[str]:
    return sorted(
        p.relative_to(root).as_posix() for p in root.rglob("*") if p.is_file() and p.suffix.lower() in IMAGE_EXTENSIONS
    )


class Labellers:
    """Loads the three models lazily; a missing model ends with a message naming it and how to get it.
    ``device="auto"``: the GPU when there is one (a Ray actor's own), else the CPU."""

    def __init__(self, depth_id, seg_id, caption_id, device, local_files_only):
        if device == "auto":
            from ..utils.devices import auto_device

            device = str(auto_device())
        self.ids = dict(depth=depth_id, segmentation=seg_id, caption=caption_id)
        self.device, self.local = device, local_files_only
        self._models = {}

    def _load(self, kind):
        from ..conversion.loading import WeightsNotFoundError

        if kind in self._models:
            return self._models[kind]
        model_id = self.ids[kind]
        from ..conversion.model_folder import ModelError, check_library_folder

        check_library_folder(model_id)  # a local folder: weights-only checks, code noted as ignored
        try:
            if kind == "depth":
                from transformers import AutoImageProcessor, AutoModelForDepthEstimation

                m = (
                    AutoImageProcessor.from_pretrained(model_id, local_files_only=self.local),
                    AutoModelForDepthEstimation.from_pretrained(model_id, local_files_only=self.local),
                )
            elif kind == "segmentation":
                from transformers import AutoImageProcessor, AutoModelForUniversalSegmentation

                m = (
                    AutoImageProcessor.from_pretrained(model_id, local_files_only=self.local),
                    AutoModelForUniversalSegmentation.from_pretrained(model_id, local_files_only=self.local),
                )
            else:
                from ..pipelines.captioning import Blip2Captioner

                m = (None, Blip2Captioner(model_id, device=self.device, local_files_only=self.local))
        except pickle.UnpicklingError:  # a downloaded .bin that transformers' weights-only load refused
            raise ModelError(
                f"{kind} model {model_id!r}: its weights hold Python objects besides tensors; refused without "
                "unpickling them"
            ) from None
        except OSError as err:
            raise WeightsNotFoundError(
                f"{kind} model {model_id!r} could not be loaded ({err}). Download it first (e.g. "
                f"`huggingface-cli download {model_id}`) or pass a local folder with --{kind}-model"
                + (f" (or label without captions: --caption-model {NO_CAPTIONS})." if kind == "caption" else ".")
            ) from None
        if m[0] is not None:
            m[1].to(self.device).eval()
        self._models[kind] = m
        return m

    def depth(self, image):
        from ..pipelines.depth_anything import predict_inverse_depth

        return predict_inverse_depth(*self._load("depth"), image)

    def segmentation(self, image):
        import torch

        proc, model = self._load("segmentation")
        inputs = proc(images=image, return_tensors="pt").to(self.device)
        with torch.no_grad():
            out = model(**inputs)
        seg = proc.post_process_semantic_segmentation(out, target_sizes=[(image.height, image.width)])[0]
        return seg.cpu().numpy().astype("uint8")

    def caption(self, image):
        from ..conversion.loading import WeightsNotFoundError
        from ..pipelines.captioning import CaptionModelUnavailableError

        if self.ids["caption"] == NO_CAPTIONS:
            return ""
        _, captioner = self._load("caption")
        try:
            return captioner([image])[0]
        except CaptionModelUnavailableError as err:  # loaded on first use
            reason = str(err).splitlines()[0]
            raise WeightsNotFoundError(
                f"{reason}. Download it once with network access, or label without captions: "
                f"--caption-model {NO_CAPTIONS}."
            ) from None


@dataclass
class ProcessLayout:
    """This process's place among ``accelerate launch`` processes: (0, 1, CPU, main) when run alone."""

    rank: int = 0
    world: int = 1
    device: str = "cpu"
    is_main: bool = True
    wait: Callable[[], None] = lambda: None  # returns once every process got here

    @classmethod
    def current(cls) -> ProcessLayout:
        try:
            from accelerate import PartialState

            state = PartialState()
            return cls(
                state.process_index, state.num_processes, state.device, state.is_main_process, state.wait_for_everyone
            )
        except Exception:  # accelerate present but no distributed setup
            return cls()


@dataclass
class LabelResult:
    """Images labelled by this process in this run, what the manifest (or caption file) holds at the end, and one
    message per image that could not be read (a rerun retries them)."""

    labelled: int = 0
    total: int = 0
    failures: list[str] = field(default_factory=list)


def label_image(labellers, image, segmentation: bool = True) -> tuple:
    """``(depth, segmentation or None, caption)`` of one RGB image: what every labelled image gets, in a folder
    run and in a shard."""
    depth = labellers.depth(image)
    seg = labellers.segmentation(image) if segmentation else None
    return depth, seg, labellers.caption(image)


def _images_of_this_process(
    root: Path, names: list[str], layout: ProcessLayout, done, failures: list[str]
) -> Iterator[tuple[str, object]]:
    """``(name, RGB image)`` for this process's share of ``names`` not in ``done``; unreadable ones go to
    ``failures``."""
    for i, name in enumerate(names):
        if i % layout.world != layout.rank or name in done:
            continue
        image, failure = read_rgb(root / name)
        if image is None:
            failures.append(failure)
            continue
        yield name, image


def caption_files(
    labellers, images_root: Path, out: Path, names: list[str], layout: ProcessLayout | None = None, log=print
) -> LabelResult:
    """Captions only, into ``out/captions.json`` keyed by ``names`` (paths relative to ``images_root``); with
    several processes each writes ``captions.rankNNNNN.json``."""
    from ..utils.atomic import atomic_write_text

    layout = layout or ProcessLayout()
    result = LabelResult()
    cap_path = out / "captions.json"
    captions = json.loads(cap_path.read_text()) if cap_path.is_file() else {}
    for name, image in _images_of_this_process(images_root, names, layout, captions, result.failures):
        captions[name] = labellers.caption(image)
        result.labelled += 1
        if layout.world == 1:
            atomic_write_text(cap_path, json.dumps(captions))
    part = out / f"captions.rank{layout.rank:05d}.json" if layout.world > 1 else cap_path
    atomic_write_text(part, json.dumps(captions))
    result.total = len(captions)
    log(f"{len(captions)} captions in {part}")
    return result


def label_files(
    labellers,
    images_root: Path,
    out: Path,
    names: list[str],
    *,
    segmentation: bool = True,
    layout: ProcessLayout | None = None,
    log=print,
) -> LabelResult:
    """Depth, segmentation (unless off) and a caption for each image of ``names`` under ``images_root``, written
    into ``out`` (``data.pseudo.write_outputs``; ``info.json`` and ``manifest.jsonl``). Each entry is appended and
    synced to this process's manifest shard as soon as its files exist, so a killed run resumes where it stopped."""
    from ..data.pseudo import INFO, MANIFEST, read_manifest, write_outputs
    from ..utils.atomic import atomic_write_text

    layout = layout or ProcessLayout()
    result = LabelResult()
    if layout.is_main:
        info = {
            "images_root": str(images_root),
            "depth_model": labellers.ids["depth"],
            "segmentation_model": labellers.ids["segmentation"] if segmentation else None,
            "caption_model": labellers.ids["caption"],
            "depth": "relative inverse depth (float16 .npy)",
        }
        atomic_write_text(out / INFO, json.dumps(info, indent=2))
    done = {e["key"] for e in read_manifest(out)}
    shard = out / f"manifest.rank{layout.rank:05d}.jsonl"
    with open(shard, "a") as fh:
        for name, image in _images_of_this_process(images_root, names, layout, done, result.failures):
            depth, seg, caption = label_image(labellers, image, segmentation)
            entry = {"key": name, "image": name, "caption": caption, **write_outputs(out, name, depth, seg)}
            fh.write(json.dumps(entry) + "\n")
            fh.flush()
            os.fsync(fh.fileno())
            result.labelled += 1
    log(f"process {layout.rank}: labelled {result.labelled} new images")
    try:
        layout.wait()
    except Exception:
        pass
    if layout.is_main:
        entries = sorted(read_manifest(out), key=lambda e: e["key"])
        atomic_write_text(out / MANIFEST, "".join(json.dumps(e) + "\n" for e in entries))
        for part in out.glob("manifest.rank*.jsonl"):
            part.unlink()
        result.total = len(entries)
        log(f"{len(entries)} images in {out / MANIFEST}")
    return result
