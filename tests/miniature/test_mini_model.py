"""PrimeDepth-mini, the embedded offline model: loads without network, predicts real depth on held-out rendered
scenes (a random model of the same architecture cannot), backs `primedepth predict` when the full weights are
absent, and drives `primedepth demo`."""

import json

import huggingface_hub
import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image

from primedepth.cli import main
from primedepth.conversion.loading import EMBEDDED_MODEL, embedded_model_dir
from primedepth.data.scenes import held_out_scenes
from primedepth.evaluation.protocol import score_in_own_range
from primedepth.pipelines.pipeline import PrimeDepthPipeline

# mean δ1 over the first 8 held-out scenes; the embedded model scores ~0.94, a random model ~0.24
DELTA1_THRESHOLD = 0.85


@pytest.fixture(scope="module")
def mini():
    return PrimeDepthPipeline.from_pretrained(EMBEDDED_MODEL, device="cpu", local_files_only=True)


@pytest.fixture(scope="module")
def scenes():
    return held_out_scenes(8)


def _mean_scores(pipe, scenes):
    out = pipe([s.image for s in scenes], caption=[s.caption for s in scenes], noise="none", batch_size=8)
    scores = [score_in_own_range(d, s.depth)[0] for d, s in zip(out.inverse_depth, scenes)]
    return {k: float(np.mean([s[k] for s in scores])) for k in ("delta1", "abs_rel")}


def test_embedded_weights_are_small_safetensors_and_load_offline(mini, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    root = embedded_model_dir()
    files = [f for f in root.rglob("*") if f.is_file()]
    assert sum(f.stat().st_size for f in files) <= 30e6
    weights = [f for f in files if f.suffix in (".safetensors", ".bin", ".pt", ".ckpt", ".pth")]
    assert len(weights) == 4 and all(f.suffix == ".safetensors" for f in weights)
    assert mini.settings["max_size"] == 64 and mini.settings["default_caption"] == "none"
    assert all(
        p.dtype.is_floating_point and p.dtype == mini.dtype for m in mini.modules.values() for p in m.parameters()
    )
    assert json.loads((root / "PROVENANCE.json").read_text())["recipe"]


def test_embedded_tokenizer_gives_each_caption_word_one_token(mini, scenes):
    from primedepth.models.frozen.text_encoder import tokenize

    for scene in scenes:
        ids = tokenize(mini.tokenizer, [scene.caption])[0]
        words = len(scene.caption.replace(",", " ,").split())
        assert int((ids != 0).sum()) == words + 2, scene.caption  # start, one id per word, end: nothing truncated


def test_mini_predicts_depth_that_a_random_model_cannot(mini, scenes, tiny_pipe):
    ours = _mean_scores(mini, scenes)
    assert ours["delta1"] >= DELTA1_THRESHOLD and ours["abs_rel"] <= 0.12, ours
    random = _mean_scores(tiny_pipe, scenes)  # same architecture, untrained weights
    assert random["delta1"] < DELTA1_THRESHOLD, random


def test_scoring_is_exact_for_an_affine_inverse_depth_and_ignores_sky():
    depth = np.array([[1.0, 2.0, np.inf], [4.0, 5.0, 8.0]], np.float32)
    finite = np.where(np.isfinite(depth), depth, 1.0)
    metrics, aligned = score_in_own_range((3.0 / finite + 0.5).astype(np.float32), depth)
    assert metrics["delta1"] == pytest.approx(1.0) and metrics["abs_rel"] == pytest.approx(0.0, abs=1e-5)
    metrics, _ = score_in_own_range(np.zeros((2, 3), np.float32), depth)  # zeros: none enters the fit, all far
    assert metrics["delta1"] < 1.0


def test_one_caption_per_image_must_match_the_image_count(mini, scenes):
    with pytest.raises(ValueError, match="2 captions for 1 images"):
        mini(scenes[0].image, caption=["a", "b"])


def test_predict_without_model_uses_full_weights_when_present_else_mini_with_one_notice(
    tmp_path, monkeypatch, tiny_pipe
):
    image = tmp_path / "scene.png"
    Image.fromarray(held_out_scenes(1)[0].image).save(image)
    monkeypatch.setenv("PRIMEDEPTH_MODEL", str(tmp_path / "absent"))
    result = CliRunner().invoke(main, ["predict", str(image), "-o", str(tmp_path / "a"), "--format", "npy"])
    assert result.exit_code == 2 and "PRIMEDEPTH_MODEL" in result.output and "absent" in result.output

    monkeypatch.delenv("PRIMEDEPTH_MODEL")
    monkeypatch.setenv("PRIMEDEPTH_CACHE", str(tmp_path / "empty-cache"))
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)  # no converted weights, no hub
    result = CliRunner().invoke(main, ["predict", str(image), "-o", str(tmp_path / "a"), "--format", "npy"])
    assert result.exit_code == 0, result.output
    lines = [line for line in result.output.splitlines() if not line.startswith("licences:")]
    notices = [line for line in lines if "PrimeDepth-mini" in line]
    assert len(notices) == 1 and "not found" in notices[0] and "rendered scenes" in notices[0]
    assert np.load(tmp_path / "a" / "scene.npy").shape == (64, 64)

    full = tmp_path / "full"
    tiny_pipe.save_pretrained(full)
    monkeypatch.setenv("PRIMEDEPTH_MODEL", str(full))
    result = CliRunner().invoke(main, ["predict", str(image), "-o", str(tmp_path / "b"), "--format", "npy"])
    assert result.exit_code == 0, result.output
    assert "PrimeDepth-mini" not in result.output and str(full) in result.output


def test_demo_prints_the_harness_numbers_and_writes_a_gallery(tmp_path, mini, scenes):
    out = tmp_path / "demo"
    result = CliRunner().invoke(main, ["demo", "--scenes", "8", "-o", str(out)])
    assert result.exit_code == 0, result.output
    report = json.loads((out / "metrics.json").read_text())
    expected = _mean_scores(mini, scenes)
    assert report["delta1"] == pytest.approx(expected["delta1"], abs=1e-6)
    assert report["abs_rel"] == pytest.approx(expected["abs_rel"], abs=1e-6)
    assert f"δ1 {report['delta1']:.4f}" in result.output and f"AbsRel {report['abs_rel']:.4f}" in result.output
    gallery = Image.open(out / "gallery.png")
    assert gallery.size[0] > 400 and gallery.size[1] > 400
