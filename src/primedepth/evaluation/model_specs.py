"""A run's model from its ``--model`` spec (``primedepth eval``, the suites): which ``Predictor`` it builds, and the
settings that decide its predictions, recorded with the run so that a resume under other settings is refused."""

from __future__ import annotations

import importlib
import inspect
import json
from pathlib import Path


class UnknownModelKindError(ValueError):
    """A ``KIND=ARG`` spec whose kind no adapter has."""


def build_predictor(spec, *, device, dtype, seed, marigold_setting, output_root, dataset_name, dataset=None):
    """The ``Predictor`` of a ``--model`` spec: a PrimeDepth id or folder, or ``KIND=ARG`` (a peer's weights, a
    ``python=module:factory``, an ``ensemble=RUN_A,RUN_B`` of finished runs under ``output_root``). ``dataset``: given
    to a python factory that takes an argument. Raises ``UnknownModelKindError`` for any other kind."""
    from .ensemble import EnsemblePredictor
    from .peers import PEERS, MarigoldPredictor
    from .predictors import DepthAnythingV2Predictor, PrimeDepthPredictor, SavedPredictor
    from .runner import run_directory

    kind, _, arg = spec.partition("=")
    if not arg:
        return PrimeDepthPredictor(spec, device=device, dtype=dtype, seed=seed)
    if kind == "depth-anything-v2":
        return DepthAnythingV2Predictor(arg, device=device)
    if kind == "marigold":
        return MarigoldPredictor(arg, f"marigold-{marigold_setting}", device=device, seed=seed)
    if kind in PEERS:
        return PEERS[kind](arg, device=device, seed=seed)
    if kind == "python":
        module, _, attr = arg.partition(":")
        factory = getattr(importlib.import_module(module), attr)
        return factory(dataset) if inspect.signature(factory).parameters else factory()
    if kind == "ensemble":
        members = []
        for name in arg.split(","):
            run = run_directory(output_root, dataset_name, name)
            space = json.loads((run / "summary.json").read_text())["alignment"]
            members.append(SavedPredictor(run / "predictions", space, name))
        return EnsemblePredictor(members)
    raise UnknownModelKindError(f"unknown model kind {kind!r}")


def run_settings(model_spec, predictions, prediction_space, seed, dtype, marigold_setting) -> dict:
    """What decides a run's predictions, recorded with its rows so that a resume under other settings is refused:
    the model (a folder by its absolute path), and the seed, precision and Marigold setting where they apply."""
    if predictions:
        return {"predictions": str(Path(predictions).resolve()), "prediction_space": prediction_space}
    kind, sep, arg = model_spec.partition("=")
    if sep and Path(arg).exists():
        model_spec = f"{kind}={Path(arg).resolve()}"
    elif not sep and Path(model_spec).exists():
        model_spec = str(Path(model_spec).resolve())
    settings = {"model": model_spec}
    if kind not in ("ensemble", "python", "depth-anything-v2", "depth-anything", "depth-pro") or not sep:
        settings["seed"] = seed
    if not sep:
        settings["dtype"] = dtype
    if kind == "marigold" and sep:
        settings["marigold_setting"] = marigold_setting
    return settings
