"""Peak memory of ``predict_video`` against the video's length: each length runs in a fresh process (a synthetic
clip of a texture panning past the camera, a depth function of the pixels standing in for the model, so only the
video machinery is measured) and reports its peak resident set size (``ru_maxrss``) and time per frame.

    python scripts/video_memory.py --frames 100 2000 --size 32 [--temporal flow] [--json]
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from fractions import Fraction
from pathlib import Path
from types import SimpleNamespace

import numpy as np


def panning_clip(path: Path, frames: int, size: int) -> None:
    from primedepth.jobs.video import write_video

    rng = np.random.default_rng(0)
    coarse = rng.integers(0, 256, (size // 4 + 2, (size + frames) // 4 + 2, 3)).astype(np.float32)
    texture = np.repeat(np.repeat(coarse, 4, axis=0), 4, axis=1).astype(np.uint8)
    write_video(path, (texture[:size, k : k + size] for k in range(frames)), Fraction(25), crf=0)


def depth_of(rgb: np.ndarray, **kwargs) -> SimpleNamespace:
    return SimpleNamespace(inverse_depth=[1.0 + rgb[..., 0].astype(np.float32) / 255.0])


def child(frames: int, size: int, temporal: str) -> dict:
    from primedepth.jobs.video import predict_video

    with tempfile.TemporaryDirectory() as folder:
        clip = Path(folder) / "pan.mp4"
        panning_clip(clip, frames, size)
        start = time.perf_counter()
        result = predict_video(depth_of, clip, Path(folder) / "out", temporal=temporal, progress=False)
        seconds = time.perf_counter() - start
    assert result.frames == frames, result.frames
    return {
        "frames": frames,
        "size": size,
        "temporal": temporal,
        "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        "ms_per_frame": 1000 * seconds / frames,
    }


def measure(frames: int, size: int, temporal: str) -> dict:
    """``child`` in a fresh Python process (its peak RSS is its own)."""
    out = subprocess.run(
        [sys.executable, __file__, "--child", str(frames), "--size", str(size), "--temporal", temporal],
        check=True,
        capture_output=True,
        text=True,
    )
    return json.loads(out.stdout.strip().splitlines()[-1])


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--frames", type=int, nargs="+", default=[100, 2000])
    parser.add_argument("--size", type=int, default=32)
    parser.add_argument("--temporal", default="flow")
    parser.add_argument("--json", action="store_true", help="one JSON line per length instead of a table")
    parser.add_argument("--child", type=int, default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child is not None:
        print(json.dumps(child(args.child, args.size, args.temporal)))
        return
    rows = [measure(n, args.size, args.temporal) for n in args.frames]
    if args.json:
        for row in rows:
            print(json.dumps(row))
        return
    print("| frames | size | temporal | peak RSS (MB) | ms / frame |\n|---|---|---|---|---|")
    for row in rows:
        print(
            f"| {row['frames']} | {row['size']} × {row['size']} | {row['temporal']} | "
            f"{row['peak_rss_mb']:.1f} | {row['ms_per_frame']:.1f} |"
        )


if __name__ == "__main__":
    main()
