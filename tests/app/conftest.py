"""A running ``primedepth app`` (embedded PrimeDepth-mini) on a free loopback port, in a subprocess, shared by the
app tests, and the system Chromium that drives it."""

import os
import shutil
import subprocess
import sys
import time
import urllib.request

import pytest
from helpers.launchers import free_port
from PIL import Image

CHROMIUM_FLAGS = [
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
STARTUP_TIMEOUT = 240  # seconds; the machine these tests run on may be shared


class AppURL(str):
    """The app's address, with ``log``: the file holding what the app printed."""

    def __new__(cls, url: str, log):
        self = super().__new__(cls, url)
        self.log = log
        return self


@pytest.fixture(scope="session")
def app_url(tmp_path_factory):
    port = free_port()
    log = tmp_path_factory.mktemp("app") / "app.log"
    env = {**os.environ, "GRADIO_ANALYTICS_ENABLED": "False", "PYTHONUNBUFFERED": "1"}
    start = time.perf_counter()
    with open(log, "w") as out:
        proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "primedepth.cli",
                "app",
                "--model",
                "primedepth-mini",
                "--port",
                str(port),
                "--local-files-only",
            ],
            stdout=out,
            stderr=subprocess.STDOUT,
            env=env,
        )
    url = f"http://127.0.0.1:{port}"
    try:
        while True:
            if proc.poll() is not None:
                pytest.fail(f"the app exited with {proc.returncode}:\n{log.read_text()}")
            try:
                with urllib.request.urlopen(url + "/", timeout=2) as response:
                    if response.status == 200:
                        break
            except OSError:
                pass
            if time.perf_counter() - start > STARTUP_TIMEOUT:
                pytest.fail(f"the app did not answer within {STARTUP_TIMEOUT} s:\n{log.read_text()}")
            time.sleep(0.2)
        print(f"app answered after {time.perf_counter() - start:.1f} s")
        yield AppURL(url, log)
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()


@pytest.fixture(scope="session")
def chromium_path():
    path = shutil.which("chromium") or shutil.which("chromium-browser")
    assert path, "the browser tests need Chromium (Debian: apt-get install -y chromium; .ci/run installs it)"
    return path


@pytest.fixture
def browser_page(chromium_path, tmp_path):
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        context = playwright.chromium.launch_persistent_context(
            str(tmp_path / "chromium-profile"),
            executable_path=chromium_path,
            headless=True,
            chromium_sandbox=False,
            args=CHROMIUM_FLAGS,
            accept_downloads=True,
        )
        try:
            yield context.new_page()
        finally:
            context.close()


@pytest.fixture
def test_image(tmp_path, rgb_image):
    path = tmp_path / "scene.png"
    Image.fromarray(rgb_image).save(path)
    return path


@pytest.fixture
def not_an_image(tmp_path):
    path = tmp_path / "notes.png"
    path.write_text("a text file with an image extension")
    return path


@pytest.fixture(scope="session")
def clip(tmp_path_factory):
    """8 frames, 48 x 64, 8 fps: a camera moving through a rendered scene (written with the package's encoder)."""
    from fractions import Fraction

    from primedepth.data.scenes import render_trajectory
    from primedepth.jobs.video import write_video

    path = tmp_path_factory.mktemp("clip") / "walk.mp4"
    assert write_video(path, (s.image for s in render_trajectory(11, 8, 48, 64)), Fraction(8)) == 8
    return path
