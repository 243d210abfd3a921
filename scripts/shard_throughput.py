"""Throughput (images/s) of ``predict`` over WebDataset shards: the local engine and ``--engine ray`` with 1 and 2
model actors, PrimeDepth-mini by default (docs/scale.md).

    python scripts/shard_throughput.py --shards 8 --per-shard 8 --size 192 256 --workers 1 2

Writes ``--shards`` img2dataset-style shards of random smooth images into a temporary folder, then times each
engine from the first to the last finished shard (steady state: model loading and Ray start-up are reported
separately as the time to the first shard) and the whole run.
"""

from __future__ import annotations

import argparse
import functools
import io
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image
from webdataset import TarWriter

from primedepth.distributed.shard_jobs import plan_jobs, run_local
from primedepth.distributed.shard_workers import PredictShardWorker


def write_shards(root: Path, shards: int, per_shard: int, size: tuple[int, int]) -> str:
    rng = np.random.default_rng(0)
    y, x = np.mgrid[0 : size[0], 0 : size[1]]
    for s in range(shards):
        with open(root / f"{s:05d}.tar", "wb") as fh, TarWriter(fh) as tar:
            for i in range(per_shard):
                a, b, c = rng.uniform(0.5, 3, 3)
                img = np.stack([x * a, y * b, (x + y) * c], -1) % 256
                buf = io.BytesIO()
                Image.fromarray(img.astype(np.uint8)).save(buf, format="JPEG")
                tar.write({"__key__": f"{s * per_shard + i:09d}", "jpg": buf.getvalue(), "txt": b"a scene"})
    return str(root / f"{{00000..{shards - 1:05d}}}.tar")


def timed(run, images: int) -> dict:
    stamps = []
    t0 = time.perf_counter()
    results = run(lambda r: stamps.append(time.perf_counter()))
    total = time.perf_counter() - t0
    done = sum(r.written for r in results)
    assert done == images, (done, images)
    per_shard = images / len(results)
    steady = (len(stamps) - 1) * per_shard / (stamps[-1] - stamps[0]) if len(stamps) > 1 else float("nan")
    return {
        "images": done,
        "first_shard_s": stamps[0] - t0,
        "total_s": total,
        "images_per_s_total": done / total,
        "images_per_s_steady": steady,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="primedepth-mini")
    parser.add_argument("--shards", type=int, default=8)
    parser.add_argument("--per-shard", type=int, default=8)
    parser.add_argument("--size", type=int, nargs=2, default=[192, 256], metavar=("H", "W"))
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    args = parser.parse_args()
    make_worker = functools.partial(
        PredictShardWorker, {"model": args.model, "device": "cpu"}, ["npy"], {"caption": "none", "seed": 0}, 1
    )
    images = args.shards * args.per_shard
    with tempfile.TemporaryDirectory() as tmp:
        (Path(tmp) / "in").mkdir()
        spec = write_shards(Path(tmp) / "in", args.shards, args.per_shard, tuple(args.size))
        rows = {}
        jobs, _ = plan_jobs(spec, str(Path(tmp) / "local"))
        rows["local, 1 process"] = timed(lambda cb: run_local(jobs, make_worker, on_result=cb), images)
        from primedepth.distributed.ray_engine import connect, run_ray

        connect(num_cpus=max(args.workers))
        for n in args.workers:
            jobs, _ = plan_jobs(spec, str(Path(tmp) / f"ray{n}"))
            rows[f"ray, {n} actor(s)"] = timed(
                lambda cb, jobs=jobs, n=n: run_ray(jobs, make_worker, workers=n, on_result=cb), images
            )
    print(f"{args.model}, {images} images {args.size[0]}x{args.size[1]} in {args.shards} shards")
    print("| engine | images/s (steady) | images/s (whole run) | first shard after (s) | whole run (s) |")
    print("| --- | --- | --- | --- | --- |")
    for name, r in rows.items():
        print(
            f"| {name} | {r['images_per_s_steady']:.2f} | {r['images_per_s_total']:.2f} | "
            f"{r['first_shard_s']:.1f} | {r['total_s']:.1f} |"
        )


if __name__ == "__main__":
    main()
