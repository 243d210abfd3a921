import hashlib
import os
from pathlib import Path

import numpy as np
import pytest
from helpers import loopback_only

# "auto" precision means fp32 in the tests (subprocesses included), so results compare across machines whatever
# their bf16 speed; tests of the auto choice itself remove this.
os.environ["PRIMEDEPTH_AUTO_PRECISION"] = "fp32"
# Ray on loopback only: a local, single-machine Ray (node address 127.0.0.1, every server bound to it) in the tests
# and the processes they start; read when ray is imported, so set before any test module imports it.
os.environ["RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"] = "0"
# Hub calls that no test points at the loopback hub (huggingface_hub's own user-agent registry, a probe) meet a closed
# loopback port and give up at once; read when huggingface_hub is imported.
os.environ["HF_ENDPOINT"] = "http://127.0.0.1:9"
loopback_only.install()

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


@pytest.hookimpl(trylast=True)
def pytest_runtest_teardown(item):
    loopback_only.check_after_test()


@pytest.fixture(scope="session")
def reference_dir() -> Path:
    """The official reference vectors (tests/reference, or $PRIMEDEPTH_REFERENCE); missing or altered ones fail."""
    problems = check_reference(REFERENCE)
    if problems:
        pytest.fail("reference vectors unusable: " + "; ".join(problems), pytrace=False)
    return REFERENCE


@pytest.fixture(scope="session")
def tiny_official_with_text(reference_dir, tmp_path_factory):
    """The reference tiny checkpoint plus an OpenCLIP text tower of its context width, and a tokenizer folder."""
    import torch
    from helpers.open_clip import open_clip_text_tower

    from primedepth.models.frozen.text_encoder import byte_level_tokenizer

    root = tmp_path_factory.mktemp("official")
    ckpt = torch.load(reference_dir / "official_tiny.ckpt", weights_only=True)
    for key, value in open_clip_text_tower(width=32).items():
        ckpt["state_dict"]["cond_stage_model.model." + key] = value
    torch.save(ckpt, root / "tiny_with_text.ckpt")
    byte_level_tokenizer().save_pretrained(root / "tokenizer")
    return root


@pytest.fixture
def one_thread():
    """Torch on one thread for the test (summation order as in one-CPU workers; timings without contention)."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


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


@pytest.fixture(scope="session")
def tiny_depth_anything(tmp_path_factory):
    """A random-weight Depth Anything (DINOv2 backbone + DPT head) saved like a hub checkpoint."""
    from helpers.tiny_peers import save_tiny_depth_anything

    return save_tiny_depth_anything(tmp_path_factory.mktemp("depth-anything-v2"))
