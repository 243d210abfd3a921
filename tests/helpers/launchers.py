"""Processes the tests start: ``accelerate launch`` over two CPU processes with the console scripts found beside the
running interpreter (CI runs without an activated venv), and free loopback ports for them and the web app."""

import socket
import sys
from pathlib import Path


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def accelerate_launch(*primedepth_args: str, main_process_port: int | None = None) -> list[str]:
    """``accelerate launch`` of ``primedepth PRIMEDEPTH_ARGS`` over two CPU processes on one machine."""
    scripts = Path(sys.executable).parent
    port = ["--main_process_port", str(main_process_port)] if main_process_port is not None else []
    return [
        str(scripts / "accelerate"),
        "launch",
        "--multi_gpu",
        "--num_processes",
        "2",
        "--num_machines",
        "1",
        "--mixed_precision",
        "no",
        "--dynamo_backend",
        "no",
        *port,
        str(scripts / "primedepth"),
        *primedepth_args,
    ]
