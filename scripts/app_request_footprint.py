"""Peak RSS and disk of one large app request: the app's ``predict_image`` on a synthetic JPEG, in this process.

    python scripts/app_request_footprint.py WORKDIR [--model tiny-random] [--side 5000]

Prints the time, the peak resident memory of the process and the size of every file the request wrote.
"""

from __future__ import annotations

import argparse
import resource
import time
from pathlib import Path

import numpy as np
from PIL import Image

from primedepth.app.models import ModelRegistry, model_choice
from primedepth.app.predict import predict_image
from primedepth.app.results import folder_bytes


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("work", type=Path)
    parser.add_argument("--model", default="tiny-random")
    parser.add_argument("--side", type=int, default=5000)
    a = parser.parse_args()
    a.work.mkdir(parents=True, exist_ok=True)
    image = a.work / f"{a.side}x{a.side}.jpg"
    if not image.exists():
        y, x = np.mgrid[0 : a.side, 0 : a.side]
        Image.fromarray(np.stack([x % 256, y % 256, (x + y) % 256], -1).astype(np.uint8)).save(image, quality=90)
    registry = ModelRegistry([model_choice(a.model)], device="cpu")
    start = time.perf_counter()
    result = predict_image(registry, image, model=a.model, workdir=a.work / "app", max_pixels=a.side * a.side)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20
    written = folder_bytes(a.work / "app" / "results") / 2**20
    seconds = time.perf_counter() - start
    print(f"{a.side} x {a.side}, {a.model}: {seconds:.0f} s, peak RSS {peak:.2f} GB, results {written:.0f} MB")
    for path in [*result.downloads, result.view_glb]:
        if path is not None:
            print(f"  {path.name}: {path.stat().st_size / 2**20:.1f} MB")


if __name__ == "__main__":
    main()
