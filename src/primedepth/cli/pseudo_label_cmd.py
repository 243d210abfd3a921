"""``primedepth pseudo-label IMAGES OUT``: depth, ADE20K-150 segmentation and captions for pre-training images.

Models (transformers): depth ``depth-anything/Depth-Anything-V2-Large-hf`` (relative inverse depth), segmentation
``facebook/mask2former-swin-large-ade-semantic`` (Mask2Former Swin-L, 56.1 mIoU on ADE20K val: the strongest
ADE20K-150 model in transformers; the authors used InternImage-H, which transformers lacks), captions BLIP-2
``Salesforce/blip2-opt-2.7b`` (as the authors). Resumable (done images are skipped), sharded over processes with
``accelerate launch "$(which primedepth)" pseudo-label ...``; every process appends to its own manifest shard, the
main one merges them at the end.
IMAGES may also be WebDataset shards (paths, fsspec URLs, brace patterns); then OUT receives one result shard per
input shard (image, depth, segmentation, caption, metadata; see ``primedepth.distributed.shard_workers``), in this
process, over ``accelerate launch`` processes or as a Ray Data pipeline (``--engine ray``).
"""

from __future__ import annotations

import functools
import json
import os
import pickle
import sys
from pathlib import Path

import click

from ..constants import DEFAULT_CAPTIONER, IMAGE_EXTENSIONS
from .errors import EXIT_INPUTS_FAILED, reported_errors
from .options import local_files_only_option, threads_option
from .shard_runner import shard_options

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
            import torch

            device = "cuda" if torch.cuda.is_available() else "cpu"
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


@click.command(context_settings={"help_option_names": ["-h", "--help"]})
@click.argument("images")
@click.argument("out", type=click.Path(file_okay=False))
@click.option("--depth-model", default=DEFAULT_DEPTH, show_default=True)
@click.option("--segmentation-model", default=DEFAULT_SEGMENTATION, show_default=True)
@click.option(
    "--caption-model",
    default=DEFAULT_CAPTIONER,
    show_default=True,
    help=f"BLIP-2 id or folder; '{NO_CAPTIONS}' labels without captions (empty ones).",
)
@click.option("--no-segmentation", is_flag=True, help="Depth and captions only.")
@click.option(
    "--captions-only", is_flag=True, help="Only captions: OUT/captions.json, keyed by path relative to IMAGES."
)
@local_files_only_option()
@threads_option()
@click.option("--limit", type=int, default=None, help="Label at most this many images (testing).")
@shard_options
@reported_errors("out")
def command(
    images,
    out,
    depth_model,
    segmentation_model,
    caption_model,
    no_segmentation,
    captions_only,
    local_files_only,
    limit,
    engine,
    workers,
    ray_address,
):
    """Label the images under IMAGES (a folder, or WebDataset shards) into OUT (see docs/training.md)."""

    from ..data.pseudo import INFO, MANIFEST, read_manifest, write_outputs
    from ..data.shards import is_shard_spec
    from ..utils.atomic import atomic_write

    if is_shard_spec(images):
        from ..distributed.shard_workers import PseudoLabelShardWorker
        from .shard_runner import run_shard_command

        if captions_only or limit:
            raise click.UsageError("--captions-only and --limit apply to image folders, not shards")
        make_labellers = functools.partial(
            Labellers, depth_model, segmentation_model, caption_model, "auto", local_files_only
        )
        make_worker = functools.partial(PseudoLabelShardWorker, make_labellers, segmentation=not no_segmentation)
        sys.exit(run_shard_command([images], out, make_worker, engine, workers, ray_address, overwrite=False))
    if not Path(images).is_dir():
        raise click.BadParameter(f"{images}: not a folder of images nor WebDataset shards (.tar)", param_hint="IMAGES")
    try:
        from accelerate import PartialState

        state = PartialState()
        rank, world, device, is_main = state.process_index, state.num_processes, state.device, state.is_main_process
    except Exception:  # accelerate present but no distributed setup
        rank, world, device, is_main = 0, 1, "cpu", True
    images_root, out = Path(images).resolve(), Path(out)
    out.mkdir(parents=True, exist_ok=True)
    names = list_images(images_root)[:limit] if limit else list_images(images_root)
    if not names:
        raise click.ClickException(f"{images_root}: no images ({', '.join(sorted(IMAGE_EXTENSIONS))})")
    labellers = Labellers(depth_model, segmentation_model, caption_model, device, local_files_only)
    failures = []

    if captions_only:
        cap_path = out / "captions.json"
        captions = json.loads(cap_path.read_text()) if cap_path.is_file() else {}
        for i, name in enumerate(names):
            if i % world != rank or name in captions:
                continue
            image, failure = read_rgb(images_root / name)
            if image is None:
                failures.append(failure)
                continue
            captions[name] = labellers.caption(image)
            if world == 1:
                atomic_write(cap_path, json.dumps(captions).encode())
        part = out / f"captions.rank{rank:05d}.json" if world > 1 else cap_path
        atomic_write(part, json.dumps(captions).encode())
        click.echo(f"{len(captions)} captions in {part}")
        report_failures(failures)
        return

    if is_main:
        info = {
            "images_root": str(images_root),
            "depth_model": depth_model,
            "segmentation_model": None if no_segmentation else segmentation_model,
            "caption_model": caption_model,
            "depth": "relative inverse depth (float16 .npy)",
        }
        atomic_write(out / INFO, json.dumps(info, indent=2).encode())
    done = {e["key"] for e in read_manifest(out)}
    shard = out / f"manifest.rank{rank:05d}.jsonl"
    count = 0
    with open(shard, "a") as fh:
        for i, name in enumerate(names):
            if i % world != rank or name in done:
                continue
            image, failure = read_rgb(images_root / name)
            if image is None:
                failures.append(failure)
                continue
            depth = labellers.depth(image)
            seg = None if no_segmentation else labellers.segmentation(image)
            entry = {
                "key": name,
                "image": name,
                "caption": labellers.caption(image),
                **write_outputs(out, name, depth, seg),
            }
            fh.write(json.dumps(entry) + "\n")
            fh.flush()
            os.fsync(fh.fileno())
            count += 1
    click.echo(f"process {rank}: labelled {count} new images")
    try:
        state.wait_for_everyone()
    except Exception:
        pass
    if is_main:
        entries = sorted(read_manifest(out), key=lambda e: e["key"])
        atomic_write(out / MANIFEST, "".join(json.dumps(e) + "\n" for e in entries).encode())
        for part in out.glob("manifest.rank*.jsonl"):
            part.unlink()
        click.echo(f"{len(entries)} images in {out / MANIFEST}")
    report_failures(failures)


def report_failures(failures: list[str]) -> None:
    """Name each image that could not be labelled (a rerun retries them); exit 1 if there is any."""
    if failures:
        click.echo(f"{len(failures)} image(s) failed (not labelled; a rerun retries them):", err=True)
        for failure in failures:
            click.echo(f"  failed: {failure}", err=True)
        sys.exit(EXIT_INPUTS_FAILED)
