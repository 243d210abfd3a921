"""Trainer: loss goes down on generated scenes, stop + resume is bit-exact, ablations build/train/differ as named,
checkpoints load into the inference pipeline. Tiny model, 32x32 images: seconds each on CPU."""

import json

import numpy as np
import pytest
import torch
from safetensors.torch import load_file

from primedepth.training.ablations import ABLATIONS
from primedepth.training.config import ConfigError, load_config
from primedepth.training.trainer import Trainer, enable_gradient_checkpointing, run_training


def _cfg(out, **over):
    base = {
        "output_dir": str(out),
        "data": {"resolution": [32, 32], "val": [{"kind": "scenes", "seed": 99, "length": 8}]},
        "train": {"max_steps": 4, "batch_size": 2},
        "validation": {"every": 1000, "samples": 8},
        "checkpoint": {"every": 1000, "keep_last": 0},
        "logging": {"every": 1, "tensorboard": False},
        "optim": {"lr": 3e-4},
    }
    for key, value in over.items():
        base[key] = {**base.get(key, {}), **value} if isinstance(value, dict) else value
    return base


def test_training_lowers_the_validation_loss(tmp_path):
    config = load_config(
        None,
        extra=_cfg(
            tmp_path,
            train={"max_steps": 20, "batch_size": 4},
            data={"train": [{"kind": "scenes", "length": 8}]},
            schedule={"warmup_steps": 2},
        ),
    )
    trainer = Trainer(config)
    before = trainer.validate(write_images=False)
    trainer.train()
    after = trainer.validate(write_images=True)
    assert after["depth"] < 0.8 * before["depth"], (before, after)
    assert after["loss"] < before["loss"]
    lines = [json.loads(x) for x in (tmp_path / "logs" / "metrics.jsonl").read_text().splitlines()]
    assert sum(1 for x in lines if x["split"] == "train") == 20
    assert (tmp_path / "samples" / "step-000020.png").is_file()


@pytest.mark.slow  # over 10 s on the 2-core machine (pytest --durations, -m 'not slow' run)
def test_stop_and_resume_gives_the_same_weights(tmp_path):
    over = dict(
        train={"max_steps": 4, "batch_size": 2, "grad_accum": 2, "ema_decay": 0.9},
        schedule={"kind": "cosine", "warmup_steps": 2},
        checkpoint={"every": 2, "keep_last": 0},
    )
    run_training(None, extra=_cfg(tmp_path / "a", **over), resume=None)
    run_training(None, extra=_cfg(tmp_path / "b", **over), resume=None, stop_after=2)
    assert (tmp_path / "b" / "checkpoints" / "latest").read_text().strip() == "step-000002"
    resumed = run_training(None, extra=_cfg(tmp_path / "b", **over), resume="auto")
    assert resumed.step == 4
    for name in ("labeller.safetensors", "ema.safetensors"):
        a = load_file(str(tmp_path / "a" / "checkpoints" / "step-000004" / "training" / name))
        b = load_file(str(tmp_path / "b" / "checkpoints" / "step-000004" / "training" / name))
        assert a.keys() == b.keys()
        for k in a:
            assert torch.equal(a[k], b[k]), (name, k)
    # and the weights did move
    first = load_file(str(tmp_path / "b" / "checkpoints" / "step-000002" / "training" / "labeller.safetensors"))
    assert any(not torch.equal(first[k], a[k]) for k in a)


def test_checkpoint_loads_into_the_inference_pipeline(tmp_path):
    from primedepth.pipelines.pipeline import PrimeDepthPipeline

    trainer = run_training(None, extra=_cfg(tmp_path, train={"max_steps": 1}), resume=None)
    ckpt = tmp_path / "checkpoints" / "step-000001"
    pipe = PrimeDepthPipeline.from_pretrained(str(ckpt), device="cpu")
    trained = trainer.unwrapped.state_dict()
    for k, v in pipe.labeller.state_dict().items():
        assert torch.equal(v, trained[k])
    out = pipe(np.full((32, 32, 3), 120, np.uint8), caption="none")
    assert out.inverse_depth[0].shape == (32, 32)


def _labeller_shapes(model):
    return {k: tuple(v.shape) for k, v in model.state_dict().items()}


@pytest.fixture(scope="module")
def ablation_models(tmp_path_factory):
    models = {}
    for ablation in ABLATIONS:  # every registered ablation builds, trains a step and is checked below
        out = tmp_path_factory.mktemp(ablation)
        trainer = Trainer(load_config(None, extra=_cfg(out, model={"ablation": ablation}, train={"max_steps": 1})))
        before = {k: v.clone() for k, v in trainer.unwrapped.state_dict().items()}
        result = trainer.train()
        assert np.isfinite(result["train_loss"][0])
        after = trainer.unwrapped.state_dict()
        assert any(not torch.equal(before[k], after[k]) for k in before)  # it trained a step
        models[ablation] = trainer
    return models


@pytest.mark.slow  # over 10 s on the 2-core machine (pytest --durations, -m 'not slow' run)
def test_ablations_change_exactly_the_named_part(ablation_models):
    shapes = {k: _labeller_shapes(t.unwrapped) for k, t in ablation_models.items()}
    full = shapes["full"]

    def prefixed(s, prefix):
        return {k: v for k, v in s.items() if k.startswith(prefix)}

    # Latent: same network, only the loss differs
    assert shapes["latent"] == full
    assert ablation_models["latent"].ablation == "latent"
    # NoSegmen: exactly the segmentation head is gone
    assert shapes["no_segmentation"] == {k: v for k, v in full.items() if not k.startswith("segmentation_head")}
    # NoAttent: attention convs gone; feature convs and heads untouched
    na = shapes["no_attention"]
    assert not prefixed(na, "attention_convs")
    for part in ("feature_convs", "depth_head", "segmentation_head"):
        assert prefixed(na, part) == prefixed(full, part)
    # NoFeature: feature convs gone; attention convs and heads untouched
    nf = shapes["no_features"]
    assert not prefixed(nf, "feature_convs")
    for part in ("attention_convs", "depth_head", "segmentation_head"):
        assert prefixed(nf, part) == prefixed(full, part)
    # BlockPreIm: one fusion block instead of per-block fusion; heads untouched
    bp = shapes["block_preimage"]
    assert not prefixed(bp, "feature_convs.") and prefixed(bp, "feature_conv.")
    for part in ("depth_head", "segmentation_head", "refiner_conv_out"):
        assert prefixed(bp, part) == prefixed(full, part)
    assert len(ablation_models["block_preimage"].unwrapped.refiner) == 9  # stages 2-4 of the refiner
    # no-preimage baseline: NoAttent's refiner and heads, but the feature convs read the 4-channel latent
    npi = shapes["no_preimage"]
    assert not prefixed(npi, "attention_convs")
    assert all(v[1] == 4 for k, v in prefixed(npi, "feature_convs").items() if k.endswith("weight"))
    assert {k: v[0] for k, v in prefixed(npi, "feature_convs").items()} == {
        k: v[0] for k, v in prefixed(na, "feature_convs").items()
    }
    for part in ("refiner.", "depth_head", "segmentation_head", "refiner_conv_out"):
        assert prefixed(npi, part) == prefixed(na, part)


def test_no_preimage_baseline_never_runs_the_unet(ablation_models):
    """Its input is the noisy latent, area-resized to each decoder block's size; the frozen UNet stays unused."""
    trainer = ablation_models["no_preimage"]
    unet = trainer.frozen.unet
    calls = []
    hooks = [m.register_forward_hook(lambda *a: calls.append(1)) for m in (unet.conv_in, unet.mid_block)]
    try:
        x_t = torch.randn(2, 4, 9, 7)
        request = trainer.unwrapped.preimage_request()
        assert request == {"source": "latent"}
        pre = trainer.frozen.extract(x_t, torch.zeros(2, 77, 32), **request)
    finally:
        for h in hooks:
            h.remove()
    assert not calls
    assert [tuple(f.shape[-2:]) for f in pre.features] == [(2, 1)] * 3 + [(3, 2)] * 3 + [(5, 4)] * 3 + [(9, 7)] * 3
    assert torch.allclose(pre.features[-1], x_t)
    assert torch.allclose(pre.features[3], torch.nn.functional.adaptive_avg_pool2d(x_t, (3, 2)))
    out = trainer.unwrapped(pre)
    assert out.depth.shape == (2, 3, 72, 56)


def test_ablation_parameter_counts_are_recorded(ablation_models):
    counts = {k: t.param_counts["total"] for k, t in ablation_models.items()}
    assert counts["latent"] == counts["full"]
    assert counts["no_segmentation"] == counts["full"] - ablation_models["full"].param_counts["segmentation_head"]
    assert len(set(counts[k] for k in ("full", "no_attention", "no_features", "block_preimage", "no_preimage"))) == 5


def test_gradient_checkpointing_gives_the_same_gradients(tmp_path):
    config = load_config(None, extra=_cfg(tmp_path))
    trainer = Trainer(config)
    from primedepth.data.mixing import collate

    batch = collate([trainer.train_set[i] for i in range(2)])
    terms, _ = trainer.forward(batch, [0, 1])
    terms.total.backward()
    ref = {n: p.grad.clone() for n, p in trainer.model.named_parameters()}
    trainer.model.zero_grad()
    assert enable_gradient_checkpointing(trainer.model) > 10
    terms2, _ = trainer.forward(batch, [0, 1])
    terms2.total.backward()
    assert terms2.total.item() == pytest.approx(terms.total.item(), rel=1e-6)
    for n, p in trainer.model.named_parameters():
        torch.testing.assert_close(p.grad, ref[n], rtol=1e-4, atol=1e-6)


def test_config_errors_name_the_file_and_key(tmp_path):
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"train": {"max_stepz": 3}}))
    with pytest.raises(ConfigError, match=r"bad\.json.*train\.max_stepz"):
        load_config(bad)
    child = tmp_path / "child.json"
    child.write_text(json.dumps({"extends": "bad.json"}))
    with pytest.raises(ConfigError, match="bad.json"):
        load_config(child)
    broken = tmp_path / "broken.json"
    broken.write_text("{")
    with pytest.raises(ConfigError, match="not valid JSON"):
        load_config(broken)
    with pytest.raises(ConfigError, match="model.ablation"):
        load_config(None, ["model.ablation=everything"])
    for alias, name in (("NoAttent", "no_attention"), ("blockpreim", "block_preimage"), ("Full", "full")):
        assert load_config(None, [f"model.ablation={alias}"])["model"]["ablation"] == name


def test_repository_configs_load():
    from pathlib import Path

    root = Path(__file__).resolve().parents[2] / "configs"
    files = sorted(root.rglob("*.json"))
    assert len(files) >= 14
    for path in files:
        cfg = load_config(path)
        if path.name == "pretrain.json":
            assert cfg["train"]["max_steps"] == 75000 and cfg["train"]["batch_size"] == 16
            assert cfg["optim"]["lr"] == 1e-5 and cfg["data"]["resolution"] == [512, 512]
        if path.name == "finetune.json":
            assert cfg["train"]["max_steps"] == 5000 and cfg["optim"]["lr"] == 5e-6
            assert [d["weight"] for d in cfg["data"]["train"]] == [0.9, 0.1]
    assert (
        load_config(
            root / "ablations" / "tiny_nosegmen.json" if False else root / "ablations" / "tiny_block_preimage.json"
        )["model"]["ablation"]
        == "block_preimage"
    )


class _RunsCodeWhenUnpickled:
    """What a hostile checkpoint would hold: unpickling it creates ``marker`` (any code could run instead)."""

    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        from pathlib import Path

        return Path.touch, (Path(self.marker),)


def _two_checkpoints(out):
    over = dict(train={"max_steps": 4, "batch_size": 2}, checkpoint={"every": 2, "keep_last": 0})
    run_training(None, extra=_cfg(out, **over), resume=None)
    return over


def test_resume_never_unpickles_code_unless_trusted(tmp_path):
    from primedepth.utils.torch_files import UntrustedCheckpointError

    over = _two_checkpoints(tmp_path)
    ckpt = tmp_path / "checkpoints" / "step-000002"
    state = ckpt / "training" / "optimizer.pt"
    # what the trainer writes loads as plain tensors and containers
    saved = torch.load(state, weights_only=True)
    assert saved["rng"]["numpy"]["keys"].shape == (624,)

    marker = tmp_path / "code-ran"
    torch.save({**saved, "optimizer": _RunsCodeWhenUnpickled(str(marker))}, state)
    trainer = Trainer(load_config(None, extra=_cfg(tmp_path, **over)))
    with pytest.raises(UntrustedCheckpointError, match=r"optimizer\.pt.*--trust-pickle"):
        trainer.resume(ckpt)
    assert not marker.exists()

    # an older checkpoint (numpy RNG state as numpy objects) loads only when trusted, and then resumes exactly
    torch.save({**saved, "rng": {"torch": saved["rng"]["torch"], "numpy": np.random.get_state()}}, state)
    with pytest.raises(UntrustedCheckpointError):
        Trainer(load_config(None, extra=_cfg(tmp_path, **over))).resume(ckpt)
    trusted = Trainer(load_config(None, extra=_cfg(tmp_path, **over)))
    assert trusted.resume(ckpt, trust_pickle=True) and trusted.step == 2


def test_train_cli_refuses_a_pickled_checkpoint_without_trust_pickle(tmp_path):
    from click.testing import CliRunner

    from primedepth.cli import main

    over = _two_checkpoints(tmp_path)
    state = tmp_path / "checkpoints" / "step-000004" / "training" / "optimizer.pt"
    marker = tmp_path / "code-ran"
    torch.save({**torch.load(state, weights_only=True), "optimizer": _RunsCodeWhenUnpickled(str(marker))}, state)
    config = tmp_path / "config.json"
    config.write_text(json.dumps(_cfg(tmp_path, **over)))
    result = CliRunner().invoke(main, ["train", str(config)])
    assert result.exit_code != 0 and "--trust-pickle" in result.output and "Traceback" not in result.output
    assert not marker.exists()
    assert "--trust-pickle" in CliRunner().invoke(main, ["train", "--help"]).output


def test_metrics_log_holds_each_step_once_after_a_resume(tmp_path):
    over = _two_checkpoints(tmp_path)
    # resume from step 2 although the run went on to step 4 (a kill after step 4's log, before its checkpoint)
    run_training(None, extra=_cfg(tmp_path, **over), resume=str(tmp_path / "checkpoints" / "step-000002"))
    rows = [json.loads(x) for x in (tmp_path / "logs" / "metrics.jsonl").read_text().splitlines()]
    train_steps = [r["step"] for r in rows if r["split"] == "train"]
    assert train_steps == [1, 2, 3, 4]
    assert [r["step"] for r in rows if r["split"] == "model"] == [0]


def test_train_takes_shipped_config_names(tmp_path, monkeypatch):
    from click.testing import CliRunner

    from primedepth.cli import main
    from primedepth.cli.options import shipped_configs

    monkeypatch.chdir(tmp_path)  # no configs/ folder here: the names resolve to the package's own files
    unknown = CliRunner().invoke(main, ["train", "no-such-config"])
    assert unknown.exit_code == 2 and "no-such-config: no such file, nor a shipped config" in unknown.output
    assert "tiny_cpu" in unknown.output and "ablations/tiny_full" in unknown.output
    assert (shipped_configs() / "tiny_cpu.json").is_file() and (shipped_configs() / "mini-sd.toml").is_file()
    shipped = load_config(shipped_configs() / "ablations" / "tiny_full.json")  # its extends chain resolves too
    assert shipped["model"]["ablation"] == "full"
