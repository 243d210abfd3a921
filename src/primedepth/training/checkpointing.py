"""Training checkpoints: written atomically, readable without unpickling code, loadable as inference pipelines.

Output folder::

    frozen/                      the frozen parts in pipeline layout (written once, unless frozen_from is a folder)
    checkpoints/step-000500/     model_index.json, unet/ vae/ text_encoder/ tokenizer/ (links to the frozen parts),
                                 labeller/ (EMA weights when EMA is on): loads with PrimeDepthPipeline.from_pretrained
                                 training/ state.json, optimizer.pt, labeller.safetensors (raw, with EMA),
                                 ema.safetensors
    checkpoints/latest           name of the newest complete checkpoint
"""

from __future__ import annotations

import json
import os
import shutil
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from safetensors.torch import load_file, save_file

from ..conversion.model_folder import pipeline_settings
from ..conversion.model_index import model_index, write_model_index
from ..utils.atomic import atomic_dir, atomic_write_text
from ..utils.quiet import no_library_progress_bars
from ..utils.torch_files import load_torch_file
from .ema import EMA

FROZEN_PARTS = ("unet", "vae", "text_encoder", "tokenizer")


class CheckpointError(ValueError):
    """A checkpoint that cannot be resumed (missing or malformed ``state.json``, another ablation, no EMA where the
    config wants one, another data-stream layout); the message names the file and the problem."""


def numpy_rng_state() -> dict:
    """numpy's global RNG state as a tensor and plain numbers (what ``torch.load(weights_only=True)`` reads)."""
    kind, keys, pos, has_gauss, cached = np.random.get_state()
    return {
        "kind": kind,
        "keys": torch.from_numpy(keys.astype(np.int64)),
        "pos": int(pos),
        "has_gauss": int(has_gauss),
        "cached_gaussian": float(cached),
    }


def set_numpy_rng_state(state) -> None:
    """Restore ``numpy_rng_state()``, or a tuple of ``np.random.get_state()`` (what a pickled checkpoint holds)."""
    if isinstance(state, dict):
        state = (
            state["kind"],
            state["keys"].numpy().astype(np.uint32),
            state["pos"],
            state["has_gauss"],
            state["cached_gaussian"],
        )
    np.random.set_state(state)


@dataclass
class TrainingState:
    """What a checkpoint saves and a resume restores, besides the step: the (unwrapped) labeller, its optimizer,
    learning-rate schedule, loss scaler and EMA."""

    model: torch.nn.Module
    optimizer: torch.optim.Optimizer
    scheduler: torch.optim.lr_scheduler.LRScheduler
    scaler: object | None
    ema: EMA | None


class Checkpointer:
    """The ``frozen/`` and ``checkpoints/`` folders of one run (main-process work; the caller synchronises).

    ``frozen_source``: where the frozen parts come from; when it is a folder that holds all of them, checkpoints
    link there instead of to ``frozen/``. ``frozen_mode``: "symlink" or "copy" the frozen parts into each checkpoint.
    ``keep_last``: how many checkpoints to keep (0: all)."""

    def __init__(self, output_dir: Path, frozen_source: str, settings: dict, frozen_mode: str, keep_last: int):
        self.root = output_dir / "checkpoints"
        self.frozen_copy = output_dir / "frozen"
        self.frozen_source = frozen_source
        self.settings = settings
        self.frozen_mode = frozen_mode
        self.keep_last = keep_last

    # ---------------------------------------------------------------------------------------------- frozen parts
    def _source_folder(self) -> Path | None:
        source = Path(self.frozen_source).expanduser()
        if source.is_dir() and all((source / part).is_dir() for part in FROZEN_PARTS):
            return source
        return None

    def frozen_dir(self) -> Path:
        """The folder the checkpoints' frozen parts link to."""
        source = self._source_folder()
        return (source if source is not None else self.frozen_copy).resolve()

    def model_index(self, labeller_class: str | None) -> dict:
        """The index of a checkpoint (``labeller_class``: its labeller's) or of ``frozen/`` (None: no labeller)."""
        return model_index(pipeline_settings(self.settings), labeller_class=labeller_class)

    def save_frozen_once(self, vae, unet, text_encoder, tokenizer) -> None:
        """Write ``frozen/`` unless the frozen parts already lie in a folder (the source, or an earlier run's)."""
        if self._source_folder() is not None or (self.frozen_copy / "model_index.json").is_file():
            return
        with atomic_dir(self.frozen_copy) as tmp, no_library_progress_bars():
            vae.save_pretrained(tmp / "vae")
            unet.save_pretrained(tmp / "unet")
            text_encoder.save_pretrained(tmp / "text_encoder")
            tokenizer.save_pretrained(tmp / "tokenizer")
            write_model_index(tmp, self.model_index(None))

    def _link_frozen(self, checkpoint: Path) -> None:
        frozen = self.frozen_dir()
        for part in FROZEN_PARTS:
            if self.frozen_mode == "copy":
                shutil.copytree(frozen / part, checkpoint / part)
            else:
                target = os.path.relpath(frozen / part, checkpoint.parent / "x")
                os.symlink(target, checkpoint / part, target_is_directory=True)

    # ------------------------------------------------------------------------------------------------- writing
    def save(self, step: int, state: TrainingState, record: dict) -> Path:
        """Write ``checkpoints/step-NNNNNN`` atomically, point ``latest`` at it and prune older ones.

        ``record``: what ``training/state.json`` holds besides the step (JSON-serialisable)."""
        final = self.root / f"step-{step:06d}"
        with atomic_dir(final) as tmp:
            self._write(tmp, step, state, record)
        atomic_write_text(self.root / "latest", final.name + "\n")
        self.prune()
        return final

    def _write(self, folder: Path, step: int, state: TrainingState, record: dict) -> None:
        """Everything a resume needs, in files that load without unpickling code (safetensors, JSON, and a
        ``torch.save`` of tensors and plain containers only, readable with ``weights_only=True``)."""
        training = folder / "training"
        training.mkdir(parents=True)
        model, ema = state.model, state.ema
        raw = {k: v.detach().to("cpu", copy=True).contiguous() for k, v in model.state_dict().items()}
        if ema is not None:
            save_file(raw, str(training / "labeller.safetensors"))
            save_file({k: v.contiguous() for k, v in ema.shadow.items()}, str(training / "ema.safetensors"))
            ema.copy_to(model)
            model.save_pretrained(folder / "labeller")
            model.load_state_dict(raw)
        else:
            model.save_pretrained(folder / "labeller")
        torch.save(
            {
                "optimizer": state.optimizer.state_dict(),
                "scheduler": state.scheduler.state_dict(),
                "scaler": state.scaler.state_dict() if state.scaler is not None else None,
                "ema": {"decay": ema.decay, "updates": ema.updates} if ema else None,
                "rng": {"torch": torch.get_rng_state(), "numpy": numpy_rng_state()},
            },
            training / "optimizer.pt",
        )
        (training / "state.json").write_text(json.dumps({"step": step, **record}, indent=2))
        self._link_frozen(folder)
        write_model_index(folder, self.model_index(type(model).__name__))

    def prune(self) -> None:
        """Keep the newest ``keep_last`` checkpoints (also run on resume: a kill may have come before the prune)."""
        if not self.keep_last:
            return
        checkpoints = sorted(p for p in self.root.glob("step-*") if p.is_dir())
        for old in checkpoints[: -self.keep_last]:
            shutil.rmtree(old)

    # ------------------------------------------------------------------------------------------------- reading
    def latest(self) -> Path | None:
        """The newest complete checkpoint, or None when there is none yet."""
        pointer = self.root / "latest"
        if not pointer.is_file():
            return None
        return self.root / pointer.read_text().strip()

    def load(self, checkpoint: Path, state: TrainingState, ablation: str, trust_pickle: bool = False) -> dict:
        """Restore ``state`` and the global RNGs from ``checkpoint``; returns its ``state.json``.

        Every file is read without running code from it (safetensors, JSON, ``torch.load(weights_only=True)``);
        ``trust_pickle`` allows full unpickling of ``optimizer.pt`` (needed when it holds numpy objects, such as a
        pickled numpy RNG state). Raises ``CheckpointError`` when ``state.json`` is missing or malformed, or the
        checkpoint was trained as another ablation or
        lacks the EMA the config asks for."""
        record = read_state(checkpoint)
        if record["ablation"] != ablation:
            raise CheckpointError(
                f"{checkpoint}: checkpoint was trained as {record['ablation']!r}, config says {ablation!r}"
            )
        raw_file = checkpoint / "training" / "labeller.safetensors"
        if raw_file.is_file():
            weights = load_file(str(raw_file))
        else:
            weights = load_file(str(checkpoint / "labeller" / "diffusion_pytorch_model.safetensors"))
        state.model.load_state_dict(weights, strict=True)
        extra = load_torch_file(checkpoint / "training" / "optimizer.pt", trust_pickle=trust_pickle)
        state.optimizer.load_state_dict(extra["optimizer"])
        state.scheduler.load_state_dict(extra["scheduler"])
        if extra["scaler"] is not None and state.scaler is not None:
            state.scaler.load_state_dict(extra["scaler"])
        if state.ema is not None:
            ema_file = checkpoint / "training" / "ema.safetensors"
            if not ema_file.is_file() or extra["ema"] is None:
                raise CheckpointError(f"{checkpoint}: config enables EMA but the checkpoint has none")
            state.ema.load_state_dict({**extra["ema"], "shadow": load_file(str(ema_file))})
        torch.set_rng_state(extra["rng"]["torch"])
        set_numpy_rng_state(extra["rng"]["numpy"])
        return record


def read_state(checkpoint: Path) -> dict:
    """The checkpoint's ``training/state.json``, checked: a JSON object with ``step`` (an integer >= 0) and
    ``ablation`` (a name); raises ``CheckpointError`` naming the file otherwise."""
    state_file = Path(checkpoint) / "training" / "state.json"
    if not state_file.is_file():
        raise CheckpointError(f"{checkpoint}: not a training checkpoint ({state_file} missing)")
    try:
        record = json.loads(state_file.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
        raise CheckpointError(f"{state_file}: unreadable ({err})") from None
    if not isinstance(record, dict):
        raise CheckpointError(f"{state_file}: expected a JSON object, found {type(record).__name__}")
    step = record.get("step")
    if isinstance(step, bool) or not isinstance(step, int) or step < 0:
        raise CheckpointError(f"{state_file}: 'step' must be an integer >= 0, found {step!r}")
    if not isinstance(record.get("ablation"), str):
        raise CheckpointError(f"{state_file}: 'ablation' must be a name, found {record.get('ablation')!r}")
    return record
