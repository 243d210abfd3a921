"""Training configs: JSON files with ``extends`` inheritance, checked against the defaults below.

Unknown keys and wrong types are errors that name the file and the key. ``extends`` (a path relative to the config
file) merges the parent first; ``--set a.b=value`` overrides on the command line (value parsed as JSON, else a
string). Relative paths inside a config are resolved against the directory ``primedepth train`` runs from.
"""

from __future__ import annotations

import copy
import json
from pathlib import Path

from ..utils.json_files import read_json
from .ablations import resolve_ablation

DEFAULTS: dict = {
    "output_dir": "runs/primedepth",
    "seed": 0,
    "model": {
        # frozen SD parts (VAE, UNet, text tower, tokenizer, step settings) from a pipeline folder in our layout
        # (``primedepth convert`` output), a hub id in that layout, or "tiny-random" for tests
        "frozen_from": "tiny-random",
        # "random": a fresh labeller with the frozen model's labeller architecture (+ overrides);
        # or a folder written by save_pretrained (e.g. <pre-training checkpoint>/labeller) to fine-tune from
        "labeller_init": "random",
        "labeller": {},  # overrides of PrimeDepthLabeller arguments
        "ablation": "full",
        "frozen_dtype": "fp32",  # fp16 | bf16 | fp32 for VAE, UNet and text tower
    },
    "data": {
        "train": [{"kind": "scenes"}],
        "val": [{"kind": "scenes", "seed": 1000003}],
        "resolution": [512, 512],
        "hflip": True,
        "num_workers": 0,
    },
    "optim": {"lr": 1e-5, "weight_decay": 0.01, "betas": [0.9, 0.999], "eps": 1e-8, "max_grad_norm": 1.0},
    "schedule": {"kind": "constant", "warmup_steps": 0, "min_lr_ratio": 0.0},
    "train": {
        "max_steps": 1000,
        "batch_size": 16,  # global batch: processes x micro-batch x grad_accum
        "grad_accum": 1,
        "mixed_precision": "no",  # no | fp16 | bf16
        "gradient_checkpointing": False,
        "noise": "sampled",  # sampled (official: posterior sample + t=1 noise) | none (posterior mean)
        "ema_decay": None,  # e.g. 0.999; None disables EMA
        "segmentation_gamma": 2.0,
    },
    "checkpoint": {"every": 1000, "keep_last": 2, "frozen": "symlink"},  # frozen parts: symlink | copy
    "validation": {"every": 500, "samples": 16, "batch_size": 4, "images": 4},
    "logging": {"every": 10, "tensorboard": "auto"},  # auto: if tensorboard is importable; true; false
}

FREE_FORM = {("model", "labeller"), ("data", "train"), ("data", "val")}


class ConfigError(ValueError):
    pass


def _merge(base: dict, over: dict, where: str, path: tuple = ()) -> dict:
    out = copy.deepcopy(base)
    for key, value in over.items():
        here = path + (key,)
        if key not in base:
            raise ConfigError(f"{where}: unknown key {'.'.join(here)!r} (known: {', '.join(sorted(base))})")
        if here in FREE_FORM:
            if key == "labeller":
                if not isinstance(value, dict):
                    raise ConfigError(f"{where}: {'.'.join(here)} must be an object")
                out[key] = {**out[key], **value}
            else:
                out[key] = copy.deepcopy(value)
        elif isinstance(base[key], dict):
            if not isinstance(value, dict):
                raise ConfigError(f"{where}: {'.'.join(here)} must be an object, got {type(value).__name__}")
            out[key] = _merge(base[key], value, where, here)
        else:
            out[key] = value
    return out


def _read(path: Path) -> dict:
    raw = read_json(path, "config file", ConfigError)
    if not isinstance(raw, dict):
        raise ConfigError(f"{path}: a config must be a JSON object")
    raw.pop("_comment", None)
    return raw


def _layers(path: Path, seen: tuple = ()) -> list[tuple[Path, dict]]:
    path = path.resolve()
    if path in seen:
        raise ConfigError(f"{path}: 'extends' cycle")
    raw = _read(path)
    parent = raw.pop("extends", None)
    layers = _layers((path.parent / parent), seen + (path,)) if parent else []
    return layers + [(path, raw)]


def parse_override(text: str) -> tuple[list[str], object]:
    if "=" not in text:
        raise ConfigError(f"--set {text!r}: expected key.path=value")
    key, value = text.split("=", 1)
    try:
        parsed = json.loads(value)
    except json.JSONDecodeError:
        parsed = value
    return key.strip().split("."), parsed


def load_config(path: str | Path | None = None, overrides: list[str] | tuple = (), extra: dict | None = None) -> dict:
    """Defaults <- the ``extends`` chain <- ``path`` <- ``extra`` (dict) <- ``overrides`` ("a.b=value")."""
    config = copy.deepcopy(DEFAULTS)
    where = str(path) if path else "<defaults>"
    if path is not None:
        for layer_path, raw in _layers(Path(path)):
            config = _merge(config, raw, str(layer_path))
    if extra:
        config = _merge(config, extra, f"{where} (extra)")
    for text in overrides:
        keys, value = parse_override(text)
        nested: dict = {}
        cursor = nested
        for k in keys[:-1]:
            cursor = cursor.setdefault(k, {})
        cursor[keys[-1]] = value
        config = _merge(config, nested, f"--set {text}")
    validate(config, where)
    return config


def validate(config: dict, where: str = "<config>") -> None:
    def fail(msg):
        raise ConfigError(f"{where}: {msg}")

    try:
        config["model"]["ablation"] = resolve_ablation(config["model"]["ablation"]).name
    except KeyError as err:
        fail(f"model.ablation {err.args[0]}")
    if config["model"]["frozen_dtype"] not in ("fp16", "bf16", "fp32"):
        fail("model.frozen_dtype must be fp16, bf16 or fp32")
    t = config["train"]
    if t["mixed_precision"] not in ("no", "fp16", "bf16"):
        fail("train.mixed_precision must be no, fp16 or bf16")
    if t["noise"] not in ("sampled", "none"):
        fail("train.noise must be sampled or none")
    for key in ("max_steps", "batch_size", "grad_accum"):
        if not isinstance(t[key], int) or t[key] < 1:
            fail(f"train.{key} must be a positive integer, got {t[key]!r}")
    if t["ema_decay"] is not None and not (0.0 < float(t["ema_decay"]) < 1.0):
        fail("train.ema_decay must be in (0, 1) or null")
    res = config["data"]["resolution"]
    if isinstance(res, int):
        config["data"]["resolution"] = res = [res, res]
    if len(res) != 2 or any((not isinstance(r, int)) or r < 16 or r % 8 for r in res):
        fail(f"data.resolution must be [H, W], multiples of 8 and >= 16, got {res!r}")
    if config["schedule"]["kind"] not in ("constant", "cosine", "linear"):
        fail("schedule.kind must be constant, cosine or linear")
    if config["checkpoint"]["frozen"] not in ("symlink", "copy"):
        fail("checkpoint.frozen must be symlink or copy")
    for split in ("train", "val"):
        specs = config["data"][split]
        if not isinstance(specs, list) or (split == "train" and not specs):
            fail(f"data.{split} must be a list of dataset specs")
        for spec in specs:
            if not isinstance(spec, dict) or "kind" not in spec:
                fail(f"data.{split}: every entry needs a 'kind' (scenes, hypersim, vkitti2, pseudo, shards)")
