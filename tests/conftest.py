import os
from pathlib import Path

import numpy as np
import pytest

REFERENCE = Path(os.environ.get("PRIMEDEPTH_REFERENCE", Path(__file__).resolve().parents[2] / "shared" / "reference"))


@pytest.fixture(scope="session")
def reference_dir() -> Path:
    if not (REFERENCE / "official_tiny.ckpt").is_file():
        pytest.skip(f"reference vectors not found at {REFERENCE} (set PRIMEDEPTH_REFERENCE)")
    return REFERENCE


@pytest.fixture(scope="session")
def tiny_pipe():
    from primedepth import PrimeDepthPipeline

    return PrimeDepthPipeline.from_pretrained("tiny-random", device="cpu")


@pytest.fixture
def rgb_image():
    """A smooth 75x93 test image (not a multiple of 8)."""
    y, x = np.mgrid[0:75, 0:93]
    img = np.stack([x * 2.5, y * 3.0, (x + y) * 1.5], axis=-1) % 256
    return img.astype(np.uint8)
