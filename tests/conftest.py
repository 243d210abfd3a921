import hashlib
import os
from pathlib import Path

import numpy as np
import pytest

REFERENCE = Path(os.environ.get("PRIMEDEPTH_REFERENCE", Path(__file__).resolve().parent / "reference"))


def check_reference(folder: Path) -> list[str]:
    """Problems with the reference vectors in ``folder``: missing files or SHA-256 sums that differ from SHA256SUMS."""
    sums = folder / "SHA256SUMS"
    if not sums.is_file():
        return [f"{sums}: missing"]
    problems = []
    for line in sums.read_text().splitlines():
        digest, name = line.split()
        file = folder / name
        if not file.is_file():
            problems.append(f"{file}: missing")
        elif hashlib.sha256(file.read_bytes()).hexdigest() != digest:
            problems.append(f"{file}: SHA-256 differs from SHA256SUMS")
    return problems


@pytest.fixture(scope="session")
def reference_dir() -> Path:
    """The official reference vectors (tests/reference, or $PRIMEDEPTH_REFERENCE); missing or altered ones fail."""
    problems = check_reference(REFERENCE)
    if problems:
        pytest.fail("reference vectors unusable: " + "; ".join(problems), pytrace=False)
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
