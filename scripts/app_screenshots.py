"""Screenshots of ``primedepth app`` for the docs (docs/app-image.png, docs/app-video.png), taken in the system's
headless Chromium: the image tab with a held-out example scene's result, and the video tab with a rendered clip's
depth video. Also prints the app's startup time (launch until the page answers).

    python scripts/app_screenshots.py [--chromium /usr/bin/chromium] [--out docs]
"""

from __future__ import annotations

import argparse
import io
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from fractions import Fraction
from pathlib import Path

import numpy as np
from PIL import Image
from playwright.sync_api import sync_playwright

from primedepth.data.scenes import render_trajectory
from primedepth.jobs.video import write_video

FLAGS = [
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--chromium", default=shutil.which("chromium") or "/usr/bin/chromium")
    parser.add_argument("--out", type=Path, default=Path("docs"))
    args = parser.parse_args()
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    url = f"http://127.0.0.1:{port}"
    work = Path(tempfile.mkdtemp())
    clip = work / "walk.mp4"
    write_video(clip, (s.image for s in render_trajectory(11, 24, 192, 256)), Fraction(12))
    start = time.perf_counter()
    app = subprocess.Popen(
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
        ]
    )
    try:
        while True:
            try:
                urllib.request.urlopen(url, timeout=1)
                break
            except OSError:
                time.sleep(0.1)
        print(f"startup: the page answered {time.perf_counter() - start:.1f} s after launch")
        with sync_playwright() as playwright:
            # tall viewport: a full-page shot must not resize the 3D canvas
            context = playwright.chromium.launch_persistent_context(
                str(work / "profile"),
                executable_path=args.chromium,
                headless=True,
                chromium_sandbox=False,
                args=FLAGS,
                viewport={"width": 1280, "height": 2000},
            )
            page = context.new_page()
            page.goto(url)
            page.locator(".gallery-item, button.gallery").first.click()
            page.wait_for_selector("#input-image img")
            page.click("#predict")
            page.wait_for_selector("#view-3d canvas", timeout=300_000)
            page.wait_for_selector("#downloads a", timeout=300_000)
            view = page.locator("#view-3d")
            view.scroll_into_view_if_needed()
            for _ in range(60):  # until the 3D viewer has drawn the mesh (white background otherwise)
                page.wait_for_timeout(500)
                shot = np.asarray(Image.open(io.BytesIO(view.locator("canvas").screenshot())).convert("RGB"))
                if (shot.astype(int).sum(-1) < 720).mean() > 0.02:
                    break
            page.screenshot(path=str(args.out / "app-image.png"), full_page=True)
            page.get_by_role("tab", name="Video").click()
            page.set_input_files("#input-video input[type=file]", str(clip))
            page.wait_for_selector("#input-video video")
            page.click("#predict-video")
            page.wait_for_timeout(1500)
            print("while running:", page.inner_text("#depth-video")[:200].replace("\n", " | "))
            page.wait_for_function(
                "() => { const v = document.querySelector('#depth-video video'); return v && v.readyState >= 2 }",
                timeout=300_000,
            )
            page.wait_for_timeout(1500)
            page.screenshot(path=str(args.out / "app-video.png"), full_page=True)
            context.close()
    finally:
        app.terminate()
        app.wait(timeout=30)
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
