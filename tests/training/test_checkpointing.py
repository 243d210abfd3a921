"""Checkpointer and the validation helpers on their own: a stand-in model, no pipeline, fractions of a second."""

import json

import numpy as np
import pytest
import torch
from safetensors.torch import save_file

from primedepth.training.checkpointing import FROZEN_PARTS, Checkpointer, TrainingState
from primedepth.training.ema import EMA
from primedepth.training.validation import ema_weights


class _Labeller(torch.nn.Linear):
    def save_pretrained(self, folder):
        folder.mkdir(parents=True)
        weights = {k: v.contiguous() for k, v in self.state_dict().items()}
        save_file(weights, str(folder / "diffusion_pytorch_model.safetensors"))  # the file name load() falls back to


def _state(ema_decay=None):
    torch.manual_seed(0)
    model = _Labeller(3, 2)
    optimizer = torch.optim.AdamW(model.parameters(), lr=0.1)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: 1.0 / (step + 1))
    ema = EMA(model, ema_decay) if ema_decay else None
    return TrainingState(model, optimizer, scheduler, None, ema)


def _train_step(state):
    state.model(torch.ones(4, 3)).sum().backward()
    state.optimizer.step()
    state.scheduler.step()
    state.optimizer.zero_grad()
    if state.ema is not None:
        state.ema.update(state.model)


def _checkpointer(tmp_path, keep_last):
    source = tmp_path / "frozen-source"
    for part in FROZEN_PARTS:
        (source / part).mkdir(parents=True)
    return Checkpointer(tmp_path / "run", str(source), {"timestep": 1}, frozen_mode="symlink", keep_last=keep_last)


def test_checkpoints_prune_point_at_the_newest_and_link_the_frozen_parts(tmp_path):
    checkpointer = _checkpointer(tmp_path, keep_last=2)
    assert checkpointer.latest() is None
    state = _state(ema_decay=0.9)
    for step in (1, 2, 3):
        _train_step(state)
        checkpointer.save(step, state, {"ablation": "full"})
    folders = sorted(p.name for p in checkpointer.root.glob("step-*"))
    assert folders == ["step-000002", "step-000003"]
    newest = checkpointer.latest()
    assert newest == checkpointer.root / "step-000003"
    assert json.loads((newest / "training" / "state.json").read_text()) == {"step": 3, "ablation": "full"}
    for part in FROZEN_PARTS:
        assert (newest / part).is_symlink() and (newest / part).resolve() == (tmp_path / "frozen-source" / part)
    index = json.loads((newest / "model_index.json").read_text())
    assert index["_class_name"] == ["pipeline_primedepth", "PrimeDepthPipeline"]  # diffusers' form for our class
    assert not (tmp_path / "run" / "frozen").exists()  # the source folder holds the frozen parts already


def test_load_restores_weights_optimizer_schedule_ema_and_rngs(tmp_path):
    checkpointer = _checkpointer(tmp_path, keep_last=0)
    saved = _state(ema_decay=0.9)
    _train_step(saved)
    torch.manual_seed(7)
    np.random.seed(7)
    folder = checkpointer.save(1, saved, {"ablation": "full"})
    expected_draws = torch.rand(3), np.random.rand(3)
    _train_step(saved)  # the saved run goes on; a resumed one must take the same second step

    resumed = _state(ema_decay=0.9)
    with pytest.raises(ValueError, match="trained as 'full'"):
        checkpointer.load(folder, resumed, "latent")
    assert checkpointer.load(folder, resumed, "full") == {"step": 1, "ablation": "full"}
    assert torch.equal(torch.rand(3), expected_draws[0]) and np.array_equal(np.random.rand(3), expected_draws[1])
    _train_step(resumed)
    for key, value in saved.model.state_dict().items():
        assert torch.equal(resumed.model.state_dict()[key], value)
        assert torch.equal(resumed.ema.shadow[key], saved.ema.shadow[key])
    assert resumed.scheduler.get_last_lr() == saved.scheduler.get_last_lr()

    without_ema = _state(ema_decay=None)
    checkpointer.save(2, without_ema, {"ablation": "full"})
    with pytest.raises(ValueError, match="checkpoint has none"):
        checkpointer.load(checkpointer.root / "step-000002", _state(ema_decay=0.9), "full")


def test_ema_weights_are_swapped_in_and_the_raw_ones_restored_on_error():
    state = _state(ema_decay=0.5)
    _train_step(state)
    raw = {k: v.clone() for k, v in state.model.state_dict().items()}
    with pytest.raises(RuntimeError), ema_weights(state.model, state.ema):
        for key, value in state.model.state_dict().items():
            assert torch.equal(value, state.ema.shadow[key])
        raise RuntimeError("validation failed")
    for key, value in state.model.state_dict().items():
        assert torch.equal(value, raw[key])
    with ema_weights(state.model, None):
        assert torch.equal(state.model.weight, raw["weight"])
