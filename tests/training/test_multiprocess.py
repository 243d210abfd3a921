"""Multi-process training on CPU (gloo) through ``accelerate launch``, and the mixed-precision and
gradient-checkpointing switches, at tiny size."""

import json
import math
import os
import subprocess
from pathlib import Path

import pytest
import torch
from helpers.launchers import accelerate_launch, free_port
from safetensors.torch import load_file

from primedepth.training.config import load_config
from primedepth.training.trainer import Trainer, run_training


def _cfg(out, **train):
    return {
        "output_dir": str(out),
        "seed": 5,
        "data": {"resolution": [32, 32], "train": [{"kind": "scenes", "length": 8}], "val": []},
        "train": {"max_steps": 4, "batch_size": 2, **train},
        "checkpoint": {"every": 2, "keep_last": 0},
        "logging": {"every": 1, "tensorboard": False},
        "optim": {"lr": 3e-4},
    }


def _weights(run: Path, step: int) -> dict:
    return load_file(str(run / "checkpoints" / f"step-{step:06d}" / "labeller" / "diffusion_pytorch_model.safetensors"))


def _launch(config: Path, max_steps: int, cwd: Path) -> None:
    """``accelerate launch --num_processes 2`` of ``primedepth train`` on the CPU (gloo)."""
    cmd = accelerate_launch("train", str(config), "--max-steps", str(max_steps), main_process_port=free_port())
    env = {**os.environ, "ACCELERATE_USE_CPU": "1", "OMP_NUM_THREADS": "1"}
    result = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=400)
    assert result.returncode == 0, result.stderr[-4000:]
    assert f"done: {max_steps} steps" in result.stdout


@pytest.mark.slow
def test_two_processes_train_to_the_weights_of_one_and_resume_exactly(tmp_path):
    # one process: micro-batch 1, 2 accumulation steps = global batch 2
    run_training(None, extra=_cfg(tmp_path / "one", grad_accum=2), resume=None)
    # two processes: micro-batch 1 each = global batch 2; the same samples and noise draws per step
    for name in ("two", "two-resumed"):
        (tmp_path / f"{name}.json").write_text(json.dumps(_cfg(tmp_path / name)))
    _launch(tmp_path / "two.json", 4, tmp_path)
    _launch(tmp_path / "two-resumed.json", 2, tmp_path)  # stopped after step 2 ...
    _launch(tmp_path / "two-resumed.json", 4, tmp_path)  # ... and resumed from its checkpoint
    logs = [json.loads(x) for x in (tmp_path / "two" / "logs" / "metrics.jsonl").read_text().splitlines()]
    assert [x["step"] for x in logs if x["split"] == "train"] == [1, 2, 3, 4]

    one, two, resumed = (_weights(tmp_path / n, 4) for n in ("one", "two", "two-resumed"))
    start = Trainer(load_config(None, extra=_cfg(tmp_path / "fresh"))).unwrapped.state_dict()
    moved = 0
    for k in one:
        assert torch.equal(two[k], resumed[k]), k  # resuming is exact
        torch.testing.assert_close(two[k], one[k], rtol=1e-4, atol=2e-6)  # all-reduce vs accumulation: float noise
        moved += int(not torch.equal(one[k], start[k]))
    assert moved > len(one) // 2  # and the weights did train
    for k, v in _weights(tmp_path / "one", 2).items():
        torch.testing.assert_close(_weights(tmp_path / "two-resumed", 2)[k], v, rtol=1e-4, atol=2e-6)


def test_mixed_precision_and_gradient_checkpointing_switches(tmp_path):
    """bf16 autocast really runs the labeller in bf16, its loss stays near fp32 and it trains; gradient
    checkpointing changes nothing but memory."""
    from accelerate.state import AcceleratorState

    from primedepth.data.mixing import collate
    from primedepth.models.trained.labeller import RefinerBlock

    def build(name, **train):
        AcceleratorState._reset_state(reset_partial_state=True)  # one process, several precisions in turn
        return Trainer(load_config(None, extra=_cfg(tmp_path / name, max_steps=2, **train)))

    def loss_and_grads(trainer):
        batch = collate([trainer.train_set[i] for i in range(2)])
        terms, out = trainer.forward(batch, [0, 1])
        terms.total.backward()
        grads = torch.cat([p.grad.flatten() for p in trainer.model.parameters() if p.grad is not None])
        trainer.model.zero_grad(set_to_none=True)
        return float(terms.total.detach()), grads, out.depth.dtype

    try:
        fp32, ckpt, bf16 = build("fp32"), None, None
        loss32, grads32, dtype32 = loss_and_grads(fp32)
        bf16 = build("bf16", mixed_precision="bf16")
        loss16, grads16, dtype16 = loss_and_grads(bf16)
        assert (dtype32, dtype16) == (torch.float32, torch.bfloat16)  # autocast is on, and only when asked
        assert loss16 == pytest.approx(loss32, rel=0.02) and loss16 != loss32
        assert torch.isfinite(grads16).all() and grads16.abs().sum() > 0
        before = {k: v.clone() for k, v in bf16.unwrapped.state_dict().items()}
        result = bf16.train()
        assert bf16.step == 2 and all(map(math.isfinite, result["train_loss"]))
        assert any(not torch.equal(before[k], v) for k, v in bf16.unwrapped.state_dict().items())
        fp32.train()
        ckpt = build("ckpt", gradient_checkpointing=True)
        assert any("forward" in m.__dict__ for m in ckpt.unwrapped.modules() if isinstance(m, RefinerBlock))
        assert not any("forward" in m.__dict__ for m in fp32.unwrapped.modules() if isinstance(m, RefinerBlock))
        loss_ck, grads_ck, _ = loss_and_grads(ckpt)
        assert loss_ck == pytest.approx(loss32, rel=1e-6)
        torch.testing.assert_close(grads_ck, grads32, rtol=1e-4, atol=1e-6)
        ckpt.train()
        ref, w_ckpt = fp32.unwrapped.state_dict(), ckpt.unwrapped.state_dict()
        for k in ref:
            torch.testing.assert_close(w_ckpt[k], ref[k], rtol=1e-4, atol=1e-6)
    finally:
        AcceleratorState._reset_state(reset_partial_state=True)
