"""The training run's scalar and image log: ``logs/metrics.jsonl`` always, TensorBoard when asked for and installed."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from ..utils.atomic import atomic_write_text


class MetricsLog:
    """JSONL log (always) + TensorBoard (when importable and not switched off); a no-op off the main process."""

    def __init__(self, directory: Path, tensorboard: str | bool, enabled: bool):
        self.enabled = enabled
        self.writer = None
        if not enabled:
            return
        directory.mkdir(parents=True, exist_ok=True)
        self.path = directory / "metrics.jsonl"
        if tensorboard in (True, "auto", "true"):
            try:  # an optional dependency: imported only when this run logs to TensorBoard
                from torch.utils.tensorboard import SummaryWriter

                self.writer = SummaryWriter(str(directory / "tensorboard"))
            except ImportError:
                if tensorboard is True or tensorboard == "true":
                    raise ImportError(
                        "logging.tensorboard is true but tensorboard is not installed "
                        '(pip install tensorboard), or set it to "auto"'
                    ) from None

    def drop_after(self, step: int) -> None:
        """Forget every row logged after ``step`` (a resumed run replays those steps and logs them again)."""
        if not self.enabled or not self.path.is_file():
            return
        lines = self.path.read_text().splitlines(keepends=True)
        kept = []
        for line in lines:
            try:
                if json.loads(line)["step"] <= step:
                    kept.append(line if line.endswith("\n") else line + "\n")
            except (json.JSONDecodeError, KeyError, TypeError):
                continue  # a line cut by a kill, or not ours
        if len(kept) != len(lines):
            atomic_write_text(self.path, "".join(kept))

    def scalars(self, step: int, values: dict, prefix: str) -> None:
        if not self.enabled:
            return
        with open(self.path, "a") as fh:
            fh.write(json.dumps({"step": step, "split": prefix, **values}) + "\n")
        if self.writer is not None:
            for key, value in values.items():
                if isinstance(value, (int, float)):
                    self.writer.add_scalar(f"{prefix}/{key}", value, step)

    def image(self, step: int, name: str, image: np.ndarray) -> None:
        if self.enabled and self.writer is not None:
            self.writer.add_image(name, image, step, dataformats="HWC")

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
