"""How long `primedepth app` takes to start: seconds from launching the command until the page answers HTTP 200, and
until the first depth map comes back through the API (the default model loads in the background meanwhile).

    python benchmarks/app_startup.py --runs 3

Prints a markdown table (one row per run, then the median). Needs the `app` extra and gradio_client.
"""

from __future__ import annotations

import argparse
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path

import numpy as np
from gradio_client import Client, handle_file
from PIL import Image


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_for_page(url: str, process: subprocess.Popen, limit_s: float = 120.0) -> None:
    deadline = time.monotonic() + limit_s
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"the app exited with {process.returncode} before answering")
        try:
            with urllib.request.urlopen(url, timeout=1) as response:
                if response.status == 200:
                    return
        except (urllib.error.URLError, ConnectionError, TimeoutError):
            pass
        time.sleep(0.05)
    raise RuntimeError(f"no answer from {url} within {limit_s:.0f} s")


def one_run(image: Path) -> tuple[float, float]:
    port = free_port()
    url = f"http://127.0.0.1:{port}/"
    command = [str(Path(sys.executable).parent / "primedepth"), "app", "--port", str(port)]
    start = time.perf_counter()
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=os.environ.copy())
    try:
        wait_for_page(url, process)
        page_s = time.perf_counter() - start
        client = Client(url, verbose=False)
        client.predict(
            handle_file(str(image)), "primedepth-mini", "none", "", 0, 1.0, 10.0, False, api_name="/predict_image"
        )
        depth_s = time.perf_counter() - start
    finally:
        process.terminate()
        process.wait(timeout=30)
    return page_s, depth_s


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        image = Path(folder) / "input.png"
        rng = np.random.default_rng(0)
        Image.fromarray(rng.integers(0, 256, (96, 128, 3), dtype=np.uint8)).save(image)
        rows = [one_run(image) for _ in range(args.runs)]
    load = os.getloadavg()[0]
    print(f"`primedepth app` start-up, {len(rows)} runs, load average at the end {load:.2f}\n")
    print("| run | page answers (s) | first depth map (s) |")
    print("|---|---|---|")
    for i, (page_s, depth_s) in enumerate(rows, 1):
        print(f"| {i} | {page_s:.2f} | {depth_s:.2f} |")
    print(f"| median | {statistics.median(r[0] for r in rows):.2f} | {statistics.median(r[1] for r in rows):.2f} |")


if __name__ == "__main__":
    main()
