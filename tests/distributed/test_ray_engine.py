"""``--engine ray`` on a local Ray instance with 2 CPUs: the same result shards as the local engine, and a run
killed mid-way then rerun leaves every shard complete, once."""

import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import ray
from click.testing import CliRunner
from helpers.input_shards import make_input_shards

from primedepth.cli import main

SHARDS = 6


@pytest.fixture(scope="module")
def ray_address():
    ray.init(
        num_cpus=2,
        include_dashboard=False,
        log_to_driver=False,
        configure_logging=False,
        _node_ip_address="127.0.0.1",
    )
    try:
        address = ray.get_runtime_context().gcs_address
        assert address.startswith("127.0.0.1:"), address  # loopback only (tests/conftest.py)
        yield address
    finally:
        ray.shutdown()


# Ray's one-CPU actors run one thread; the in-process local engine must sum in the same order.
pytestmark = pytest.mark.usefixtures("one_thread")


def _shards(folder: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(folder.iterdir())}


@pytest.mark.slow
def test_ray_engine_matches_local_and_survives_a_kill(tmp_path, ray_address):
    make_input_shards(tmp_path / "in", shards=SHARDS, per_shard=4, size=(48, 64))
    spec = str(tmp_path / "in" / f"{{00000..{SHARDS - 1:05d}}}.tar")
    args = ["--model", "tiny-random", "--format", "npy,png16,seg"]
    local = CliRunner().invoke(main, ["predict", spec, "-o", str(tmp_path / "local"), *args])
    assert local.exit_code == 0, local.output
    expected = _shards(tmp_path / "local")
    assert len(expected) == SHARDS

    # Ray: a driver killed while the actors work, then the same command again
    out = tmp_path / "killed"
    cmd = [
        str(Path(sys.executable).parent / "primedepth"),
        "predict",
        spec,
        "-o",
        str(out),
        *args,
        "--engine",
        "ray",
        "--workers",
        "2",
        "--ray-address",
        ray_address,
    ]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    with open(tmp_path / "first.log", "wb") as log:
        proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, env=env, start_new_session=True)
        deadline = time.monotonic() + 240
        while not list(out.glob("0*.tar")) and proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.02)
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
    finished = sorted(p.name for p in out.glob("0*.tar"))
    assert 1 <= len(finished) < SHARDS, ((tmp_path / "first.log").read_text()[-3000:], finished)
    for name in finished:  # what is there is complete
        assert (out / name).read_bytes() == expected[name]

    rerun = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=300)
    assert rerun.returncode == 0, rerun.stderr[-3000:]
    skipped = int(re.search(r"written, (\d+) skipped", rerun.stderr)[1])
    assert skipped >= len(finished)
    assert f"done: {SHARDS - skipped} shards ({4 * (SHARDS - skipped)} samples) written" in rerun.stderr
    assert _shards(out) == expected  # the local engine's shards byte for byte; each once, no temporary left


@pytest.mark.slow
def test_ray_engine_pseudo_labels_like_the_local_engine(tmp_path, ray_address, monkeypatch):
    from helpers import input_shards
    from ray import cloudpickle

    from primedepth.cli import pseudo_label_cmd

    cloudpickle.register_pickle_by_value(input_shards)  # the actors cannot import the tests package
    monkeypatch.setattr(pseudo_label_cmd, "Labellers", input_shards.TinyRandomLabellers)
    make_input_shards(tmp_path / "in", shards=3, per_shard=2)
    spec = str(tmp_path / "in" / "{00000..00002}.tar")
    local = CliRunner().invoke(main, ["pseudo-label", spec, str(tmp_path / "local")])
    assert local.exit_code == 0, local.output
    result = CliRunner().invoke(
        main, ["pseudo-label", spec, str(tmp_path / "ray"), "--engine", "ray", "--workers", "2"]
    )
    assert result.exit_code == 0, result.output
    assert "done: 3 shards (6 samples) written" in result.output
    expected = _shards(tmp_path / "local")
    assert len(expected) == 3 and _shards(tmp_path / "ray") == expected
