"""What the app keeps on disk: results within an age and a size limit while it runs, 3D files of a bounded size,
its temporary folder removed on every way it can end; and a decompression bomb named in the page."""

import os
import signal
import struct
import subprocess
import sys
import time
import urllib.request
import zlib

import numpy as np
import pytest
import trimesh
from helpers.launchers import free_port
from PIL import Image

from primedepth.app import predict as app_predict
from primedepth.app.models import ModelRegistry, model_choice
from primedepth.app.predict import InputRejected, predict_image
from primedepth.app.results import ResultStore


@pytest.fixture(scope="module")
def registry():
    return ModelRegistry([model_choice("tiny-random")], device="cpu")


def _result(store, age_s, size):
    folder = store.new_folder()
    (folder / "data").write_bytes(b"\0" * size)
    store.done(folder)
    os.utime(folder, (time.time() - age_s, time.time() - age_s))
    return folder


def test_results_past_the_age_limit_go_first_then_the_oldest_over_the_size_limit(tmp_path):
    store = ResultStore(tmp_path / "results", max_age_s=600, max_bytes=2500)
    old = _result(store, 3600, 10)
    a = _result(store, 300, 1000)
    b = _result(store, 200, 1000)
    assert not old.exists() and a.exists() and b.exists()  # the age limit, at the next request
    c = _result(store, 100, 1000)  # 3000 bytes > 2500: the oldest goes
    assert not a.exists() and b.exists() and c.exists()
    running = store.new_folder()  # a request being written is never removed, nor the one just finished
    (running / "data").write_bytes(b"\0" * 5000)
    store.prune()
    assert running.exists() and not b.exists() and not c.exists()
    store.done(running)
    assert running.exists()


def test_3d_files_of_large_images_are_built_on_a_bounded_grid(registry, tmp_path, monkeypatch, rgb_image):
    monkeypatch.setattr(app_predict, "MAX_3D_PIXELS", 1000)
    Image.fromarray(rgb_image).save(tmp_path / "x.png")  # 93 x 75 = 6975 pixels
    result = predict_image(registry, tmp_path / "x.png", model="tiny-random", workdir=tmp_path, max_pixels=10**6)
    files = {p.suffix: p for p in result.downloads}
    assert np.load(files[".npy"]).shape == (75, 93)  # the maps keep the full size
    cloud = trimesh.load(files[".ply"])
    assert len(cloud.vertices) == 25 * 31 <= 1000  # every 3rd pixel
    assert len(trimesh.load(files[".glb"], force="mesh").vertices) <= 1000
    assert "built on 31 x 25 points (at most 1,000)" in result.label
    assert result.view_glb is not None


def _png_header(path, w, h):
    def chunk(kind, body):
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))

    header = chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 8, 2, 0, 0, 0))
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + header + chunk(b"IDAT", zlib.compress(b"\0" * 100)) + chunk(b"IEND", b""))


def test_a_decompression_bomb_is_named_like_predict_names_it(registry, tmp_path):
    _png_header(tmp_path / "huge.png", 30000, 30000)
    with pytest.raises(InputRejected, match=r"huge.png: image too large to decode safely \(Image size \(900000000"):
        predict_image(registry, tmp_path / "huge.png", model="tiny-random", workdir=tmp_path, max_pixels=10**12)


@pytest.mark.slow  # an app subprocess per signal
@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGHUP, signal.SIGINT])
def test_the_temporary_folder_is_removed_on_every_exit_signal(tmp_path, signum):
    port = free_port()
    env = {**os.environ, "TMPDIR": str(tmp_path), "GRADIO_ANALYTICS_ENABLED": "False"}
    args = ["app", "--model", "tiny-random", "--port", str(port), "--local-files-only"]
    proc = subprocess.Popen(
        [sys.executable, "-m", "primedepth.cli", *args], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
    )
    try:
        deadline = time.monotonic() + 240
        while True:
            assert proc.poll() is None, proc.stderr.read().decode()
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=2) as response:
                    if response.status == 200:
                        break
            except OSError:
                pass
            assert time.monotonic() < deadline, "the app did not start"
            time.sleep(0.2)
        (workdir,) = tmp_path.glob("primedepth-app-*")
        assert (workdir / "examples").is_dir()
        proc.send_signal(signum)
        proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert not workdir.exists()
    assert proc.returncode != 0 or signum == signal.SIGINT
