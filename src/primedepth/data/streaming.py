"""Pseudo-labelled WebDataset shards (``primedepth pseudo-label SHARDS OUT``) as an endless training stream.

Config: ``{"kind": "shards", "urls": "pseudo/{00000..00099}.tar", "shuffle_buffer": 1000}`` as the only entry of
``data.train``. Every process (rank ``r`` of ``P``) and every data-loader worker (``w`` of ``W``) forms one *slot*
``r * W + w`` of ``P * W``; in epoch ``e`` the shards are permuted with the seed and slot ``s`` reads shards
``s, s + P*W, ...`` of that order (so there must be at least ``P * W`` shards), through a shuffle buffer seeded by
(seed, epoch, slot). Crops and flips are seeded by (seed, epoch, slot, sample number).

The stream is a pure function of (seed, P, W), so the resume position is one number: the micro-batches a process
has consumed. The DataLoader takes its batches from the workers in turn, so stream ``w`` has produced the batches
``w, w + W, ...`` of that count; on resume loader worker ``k`` takes over stream ``(k + count) % W`` (the one whose
batch is due next), skips the samples that stream has produced (raw tar members, not decoded) and the run
continues exactly. Checkpoints record the position with the layout it holds for.
"""

from __future__ import annotations

import copy
import io
import random
from itertools import count

import numpy as np
from PIL import Image
from torch.utils.data import DataLoader, IterableDataset, get_worker_info
from webdataset.filters import shuffle

from ..constants import SEED_STRIDE
from .common import DataError, RawSample, prepare_sample
from .mixing import collate
from .shards import decode_image, decode_text, expand_shards, load_npy, read_shard

KIND = "shards"


def is_streaming(specs: list[dict]) -> bool:
    return any(spec.get("kind") == KIND for spec in specs)


def decode_pseudo_labelled(sample: dict) -> RawSample:
    """A result sample of ``pseudo-label`` (image, ``depth.npy``, optional ``seg.png``, ``txt``) as a RawSample."""
    where = f"{sample.get('__url__', '?')}: sample {sample['__key__']!r}"
    if "depth.npy" not in sample:
        raise DataError(f"{where}: no depth.npy (not a pseudo-labelled shard; run primedepth pseudo-label)")
    image = np.asarray(decode_image(sample))
    depth = load_npy(sample["depth.npy"], where).astype(np.float32)
    if depth.shape != image.shape[:2]:
        raise DataError(f"{where}: depth {depth.shape} and image {image.shape[:2]} differ in size")
    labels = None
    if "seg.png" in sample:
        with Image.open(io.BytesIO(sample["seg.png"])) as im:
            labels = np.asarray(im)
    return RawSample(image, depth, np.isfinite(depth), labels, decode_text(sample), "inverse", where)


class StreamingShards(IterableDataset):
    """Endless, seeded, shuffled stream of prepared training samples from pseudo-labelled shards."""

    def __init__(self, urls: str | list[str], resolution, seed: int, hflip: bool, shuffle_buffer: int = 1000):
        self.urls = expand_shards(urls)
        self.resolution, self.seed, self.hflip = tuple(resolution), int(seed), bool(hflip)
        self.shuffle_buffer = max(1, int(shuffle_buffer))
        self.rank, self.world, self.start_batches, self.batch_size = 0, 1, 0, 1

    @classmethod
    def from_specs(cls, specs: list[dict], resolution, seed: int, hflip: bool) -> StreamingShards:
        if len(specs) != 1:
            raise DataError(
                f"data.train: a {KIND!r} dataset streams on its own and cannot be mixed with others "
                f"(got {len(specs)} entries)"
            )
        args = {k: v for k, v in specs[0].items() if k not in ("kind", "weight")}
        if "urls" not in args:
            raise DataError(f"data.train: a {KIND!r} dataset needs 'urls' (paths, fsspec URLs or brace patterns)")
        return cls(args.pop("urls"), resolution, seed, hflip, **args)

    def loader(self, batch_size: int, rank: int, world: int, start_batches: int, num_workers: int) -> DataLoader:
        """This process's micro-batches of ``batch_size``, from micro-batch ``start_batches`` on."""
        slots = world * max(1, num_workers)
        if len(self.urls) < slots:
            raise DataError(
                f"data.train: {len(self.urls)} shards cannot feed {world} processes x "
                f"{max(1, num_workers)} data workers ({slots} streams); write more, smaller shards "
                "or lower data.num_workers"
            )
        stream = copy.copy(self)
        stream.rank, stream.world, stream.start_batches, stream.batch_size = rank, world, start_batches, batch_size
        return DataLoader(stream, batch_size=batch_size, collate_fn=collate, num_workers=num_workers)

    def _slot_stream(self, slot: int, slots: int):
        for epoch in count():
            order = np.random.default_rng([self.seed, epoch]).permutation(len(self.urls))
            urls = [self.urls[i] for i in order[slot::slots]]
            raw = (sample for url in urls for sample in read_shard(url))
            rng = random.Random((self.seed * SEED_STRIDE + epoch) * SEED_STRIDE + slot)
            for n, sample in enumerate(shuffle(self.shuffle_buffer, initial=self.shuffle_buffer, rng=rng)(raw)):
                yield epoch, n, sample

    def __iter__(self):
        info = get_worker_info()
        worker, workers = (info.id, info.num_workers) if info is not None else (0, 1)
        # the loader asks its workers in turn from worker 0 on, so after start_batches the roles rotate
        worker = (worker + self.start_batches) % workers
        slot, slots = self.rank * workers + worker, self.world * workers
        skip = len(range(worker, self.start_batches, workers)) * self.batch_size
        for epoch, n, sample in self._slot_stream(slot, slots):
            if skip:
                skip -= 1
                continue
            rng = np.random.default_rng([self.seed, epoch, slot, n])
            prepared = prepare_sample(decode_pseudo_labelled(sample), self.resolution, rng, hflip=self.hflip)
            prepared["source"] = 0
            yield prepared
