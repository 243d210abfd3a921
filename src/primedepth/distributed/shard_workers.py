"""The two shard workers: depth prediction (``primedepth predict``) and pseudo-labelling (``primedepth
pseudo-label``). Each is built from plain, picklable arguments so that a Ray actor can build its own copy.

Result samples keep the input's ``__key__``. Members written:

* predict: ``depth.npy`` (float32 inverse depth), ``depth.png`` (16-bit, min-max normalised), ``color.png``,
  ``seg.png`` (ADE20K-150 index, palette PNG) as requested by the formats, and ``json`` (size, source shard, model).
* pseudo-label: the input image member unchanged (``jpg``/``png``/...), ``depth.npy`` (float16 relative inverse
  depth), ``depth.png``, ``seg.png`` (unless switched off), ``txt`` (the generated caption) and ``json`` (size,
  models, the input's ``txt`` as ``alt_text`` and its ``json`` as ``meta``). These shards are training data for
  ``{"kind": "shards"}`` (``primedepth.data.streaming``).
"""

from __future__ import annotations

import json
from collections.abc import Callable

import numpy as np
from webdataset.writer import numpy_dumps

from ..data.common import DataError
from ..data.shards import decode_image, decode_text, image_field
from ..jobs.label_files import label_image
from ..jobs.predict_files import predict_in_batches
from ..outputs.writers import color_bytes, npy_bytes, png16_bytes, segmentation_bytes
from ..pipelines.captioning import default_cache_file
from ..pipelines.image_processor import load_image
from ..pipelines.pipeline import PrimeDepthPipeline

PREDICTION_MEMBERS = {"npy": "depth.npy", "png16": "depth.png", "color": "color.png", "seg": "seg.png"}


def _where(sample: dict) -> str:
    return f"{sample.get('__url__', '?')}: sample {sample['__key__']!r}"


class PredictShardWorker:
    """Runs a PrimeDepth pipeline over batches of shard samples."""

    def __init__(self, pipeline_kwargs: dict, formats: list[str], call_options: dict, batch_size: int = 1):
        kwargs = dict(pipeline_kwargs)
        model = kwargs.pop("model")
        precision = kwargs.pop("precision", "fp32")
        self.pipe = PrimeDepthPipeline.from_pretrained(model, caption_cache_file=default_cache_file(), **kwargs)
        self.pipe.prepare_for_inference(precision)
        self.model, self.formats, self.options, self.batch_size = model, list(formats), call_options, batch_size

    def _encode(self, sample: dict, depth: np.ndarray, seg: np.ndarray | None) -> dict:
        encoders = {
            "npy": lambda: npy_bytes(depth),
            "png16": lambda: png16_bytes(depth),
            "color": lambda: color_bytes(depth),
            "seg": lambda: segmentation_bytes(seg),
        }
        out = {"__key__": sample["__key__"], **{PREDICTION_MEMBERS[f]: encoders[f]() for f in self.formats}}
        meta = {
            "height": int(depth.shape[0]),
            "width": int(depth.shape[1]),
            "model": str(self.model),
            "source": sample.get("__url__", ""),
        }
        out["json"] = json.dumps(meta).encode()
        return out

    def __call__(self, samples: list[dict]) -> tuple[list[dict], list[str]]:
        loaded, failures = [], []
        for sample in samples:
            try:
                loaded.append((sample, load_image(decode_image(sample), name=_where(sample))))
            except DataError as err:
                failures.append(str(err))
        results = []
        images = [img for _, img in loaded]
        for group, out, error in predict_in_batches(self.pipe, images, self.batch_size, self.options):
            if error is not None:
                failures.append(f"{_where(loaded[group[0]][0])}: prediction failed ({error})")
                continue
            for k, i in enumerate(group):
                seg = out.segmentation[k] if out.segmentation is not None else None
                results.append(self._encode(loaded[i][0], out.inverse_depth[k], seg))
        return results, failures


class PseudoLabelShardWorker:
    """Depth, segmentation and caption labellers (``primedepth.jobs.label_files.Labellers`` or any object
    with ``depth(image)``, ``segmentation(image)``, ``caption(image)`` and ``ids``) over shard samples."""

    batch_size = 1

    def __init__(self, make_labellers: Callable, segmentation: bool = True):
        self.labellers, self.segmentation = make_labellers(), segmentation

    def __call__(self, samples: list[dict]) -> tuple[list[dict], list[str]]:
        results, failures = [], []
        for sample in samples:
            try:
                image = decode_image(sample)
            except DataError as err:
                failures.append(str(err))
                continue
            depth, seg, caption = label_image(self.labellers, image, self.segmentation)
            depth = np.asarray(depth, np.float32)
            ext = image_field(sample)
            meta = {
                "height": image.height,
                "width": image.width,
                "depth": "relative inverse depth (float16)",
                "depth_model": self.labellers.ids["depth"],
                "caption_model": self.labellers.ids["caption"],
                "segmentation_model": self.labellers.ids["segmentation"] if self.segmentation else None,
                "alt_text": decode_text(sample) if "txt" in sample else None,
            }
            if "json" in sample:
                try:
                    meta["meta"] = json.loads(sample["json"])
                except ValueError:
                    meta["meta"] = None
            out = {
                "__key__": sample["__key__"],
                ext: sample[ext],
                "depth.npy": numpy_dumps(depth.astype(np.float16)),
                "depth.png": png16_bytes(depth),
                "txt": caption.encode(),
                "json": json.dumps(meta).encode(),
            }
            if seg is not None:
                out["seg.png"] = segmentation_bytes(np.asarray(seg, np.uint8))
            results.append(out)
        return results, failures
