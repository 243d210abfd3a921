"""Official checkpoints by hub id, through the real ``huggingface_hub`` client and a loopback hub
(helpers/hub_server.py): listing, download + resume, config inference, conversion cache, offline runs, and one clear
line for each failure."""

import argparse
import json
import os
import subprocess
import sys
import time

import numpy as np
import pytest
import torch
from click.testing import CliRunner
from helpers.hub import REPO, point_hub_at, tiny_clip_repo
from helpers.hub_server import HubServer
from PIL import Image

from primedepth.cli import main
from primedepth.conversion import hub_weights
from primedepth.conversion.config_inference import ConfigInferenceError, infer_official_config
from primedepth.conversion.loading import WeightsNotFoundError
from primedepth.conversion.official_config import FULL_OFFICIAL_CONFIG
from primedepth.models.frozen.text_encoder import DEFAULT_TEXT_ENCODER, byte_level_tokenizer


@pytest.fixture(scope="module")
def hub(reference_dir, tmp_path_factory):
    root = tmp_path_factory.mktemp("hub-files")
    ckpt = reference_dir / "official_tiny.ckpt"
    pickled = torch.load(ckpt, weights_only=True)
    pickled["hyper_parameters"] = argparse.Namespace(lr=1)
    torch.save(pickled, root / "pickled.ckpt")
    with HubServer() as server:
        server.add_repo(REPO, {"PrimeDepth.ckpt": ckpt, "README.md": b"# PrimeDepth\n"})
        server.add_repo("someone/two-checkpoints", {"a/PrimeDepth.ckpt": ckpt, "PrimeDepth-v2.ckpt": ckpt})
        server.add_repo("someone/pickled", {"PrimeDepth.ckpt": root / "pickled.ckpt"})
        server.add_repo("someone/resume", {"PrimeDepth.ckpt": ckpt})
        server.add_repo(DEFAULT_TEXT_ENCODER, tiny_clip_repo(root / "clip32", 32))
        server.add_repo("someone/clip-48", tiny_clip_repo(root / "clip48", 48))
        server.clip_folder = root / "clip32"
        yield server


@pytest.fixture
def online(hub, monkeypatch, tmp_path):
    """The process talks to the loopback hub, with fresh hub and primedepth caches."""
    point_hub_at(monkeypatch, hub.url)
    monkeypatch.setenv("PRIMEDEPTH_CACHE", str(tmp_path / "pd-cache"))
    monkeypatch.delenv("PRIMEDEPTH_MODEL", raising=False)
    return tmp_path / "hf-cache"


def image(tmp_path, rgb_image):
    Image.fromarray(rgb_image).save(tmp_path / "x.png")
    return str(tmp_path / "x.png")


def test_config_is_inferred_from_tensor_shapes(reference_dir):
    manifest = json.loads((reference_dir / "official_full_manifest.json").read_text())["tensors"]
    full = infer_official_config(manifest)
    for part in ("unet", "vae_ddconfig", "labeller"):
        assert full[part] == FULL_OFFICIAL_CONFIG[part]
    tiny = json.loads((reference_dir / "official_tiny_config.json").read_text())
    state = torch.load(reference_dir / "official_tiny.ckpt", weights_only=True)["state_dict"]
    inferred = infer_official_config({k: v.shape for k, v in state.items()})
    for part in ("unet", "vae_ddconfig", "labeller"):
        assert inferred[part] == tiny[part]
    # the head size is fixed by the fusion convs: 64 self + 77 cross maps per head
    assert inferred["unet"]["num_head_channels"] == 32
    # a full-size model whose shapes contradict the published config is refused, naming the value
    bad = {k: v for k, v in manifest.items() if "label_predictor" not in k}
    with pytest.raises(ConfigInferenceError, match="segmentation.*150"):
        infer_official_config(bad)


@pytest.mark.slow  # over 10 s on the 2-core machine (pytest --durations, -m 'not slow' run)
def test_predict_by_hub_id_equals_local_conversion_and_reruns_offline(
    online, hub, reference_dir, tmp_path, rgb_image, caplog, monkeypatch
):
    x = image(tmp_path, rgb_image)
    local = tmp_path / "local"
    converted = CliRunner().invoke(
        main,
        [
            "convert",
            str(reference_dir / "official_tiny.ckpt"),
            str(local),
            "--config",
            str(reference_dir / "official_tiny_config.json"),
            "--text-encoder",
            str(hub.clip_folder),
            "--local-files-only",
        ],
    )
    assert converted.exit_code == 0, converted.output
    expected = CliRunner().invoke(
        main, ["predict", x, "-o", str(tmp_path / "a"), "--model", str(local), "--caption", "none", "--format", "npy"]
    )
    assert expected.exit_code == 0, expected.output

    hub.requests.clear()
    with caplog.at_level("WARNING"):
        result = CliRunner().invoke(
            main,
            [
                "predict",
                x,
                "-o",
                str(tmp_path / "b"),
                "--model",
                REPO,
                "--caption",
                "none",
                "--format",
                "npy",
                "--cache-dir",
                str(online),
            ],
        )
    assert result.exit_code == 0, result.output
    np.testing.assert_array_equal(np.load(tmp_path / "b" / "x.npy"), np.load(tmp_path / "a" / "x.npy"))
    downloads = [r.getMessage() for r in caplog.records if "downloading" in r.getMessage()]
    assert len(downloads) == 1 and "PrimeDepth.ckpt (43.7 MB)" in downloads[0] and str(online) in downloads[0]
    assert any(
        m == "GET" and p.endswith("/resolve/" + hub.repos[REPO].sha + "/PrimeDepth.ckpt") for m, p, _ in hub.requests
    )
    folder = hub_weights.converted_dir(REPO, hub.repos[REPO].sha, "PrimeDepth.ckpt")
    index = json.loads((folder / "model_index.json").read_text())
    assert index["source_checkpoint"] == f"{REPO}/PrimeDepth.ckpt" and index["text_encoder"] == "text_encoder"

    # second run offline: no request at all, same numbers from the conversion cache
    hub.requests.clear()
    point_hub_at(monkeypatch, hub.url, offline=True)
    again = CliRunner().invoke(
        main,
        [
            "predict",
            x,
            "-o",
            str(tmp_path / "c"),
            "--model",
            REPO,
            "--caption",
            "none",
            "--format",
            "npy",
            "--cache-dir",
            str(online),
        ],
    )
    assert again.exit_code == 0, again.output
    assert hub.requests == []
    np.testing.assert_array_equal(np.load(tmp_path / "c" / "x.npy"), np.load(tmp_path / "a" / "x.npy"))


def test_an_interrupted_download_resumes(online, hub, reference_dir):
    hub.interrupt("PrimeDepth.ckpt", after_bytes=25_000_000)  # past the client's first two 10 MiB chunks
    try:
        path, *_ = hub_weights.download_official_checkpoint("someone/resume", cache_dir=str(online))
    except Exception:  # the dropped connection may surface; the next call resumes from the partial file
        path, *_ = hub_weights.download_official_checkpoint("someone/resume", cache_dir=str(online))
    ranges = [
        r
        for m, p, r in hub.requests
        if m == "GET" and p.endswith("someone/resume/resolve/" + hub.repos["someone/resume"].sha + "/PrimeDepth.ckpt")
    ]
    assert ranges[0] is None and any(r and r.startswith("bytes=") and int(r[6:-1]) > 0 for r in ranges[1:])
    assert path.read_bytes() == (reference_dir / "official_tiny.ckpt").read_bytes()


@pytest.mark.parametrize(
    "args, message",
    [
        (
            ["predict", "X", "--model", "someone/two-checkpoints"],
            "2 checkpoints (PrimeDepth-v2.ckpt, a/PrimeDepth.ckpt); choose one with someone/two-checkpoints/<file>",
        ),
        (["convert", "someone/pickled"], "--trust-pickle"),
        (["predict", "X", "--model", "someone/pickled"], "primedepth convert someone/pickled --trust-pickle"),
        (["convert", REPO, "--text-encoder", "someone/clip-48"], "48 wide, but the UNet's cross-attention expects 32"),
    ],
)
def test_bad_repos_give_one_clear_line(online, hub, tmp_path, rgb_image, args, message):
    args = [image(tmp_path, rgb_image) if a == "X" else a for a in args]
    if args[0] == "predict":
        args += ["-o", str(tmp_path / "o")]
    start = time.monotonic()
    result = CliRunner().invoke(main, [*args, "--cache-dir", str(online)])
    assert time.monotonic() - start < 10
    assert result.exit_code == 2, result.output
    errors = [line for line in result.output.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and message in result.output
    if args[0] == "predict":  # one line, naming a command predict's user can run (predict has no --trust-pickle)
        assert all(line.startswith(("error:", "note:")) for line in result.output.splitlines()), result.output
        assert "pass --trust-pickle" not in result.output and "--model primedepth-mini" in errors[0]
    assert not list((tmp_path / "pd-cache").rglob("model_index.json"))  # nothing half-converted


@pytest.mark.slow  # over 10 s on the 2-core machine (pytest --durations, -m 'not slow' run)
def test_convert_takes_a_hub_id(online, hub, tmp_path):
    result = CliRunner().invoke(main, ["convert", REPO, str(tmp_path / "out"), "--cache-dir", str(online)])
    assert result.exit_code == 0, result.output
    index = json.loads((tmp_path / "out" / "model_index.json").read_text())
    assert index["source_checkpoint"] == f"{REPO}/PrimeDepth.ckpt@{hub.repos[REPO].sha[:12]}"
    assert "configuration inferred from the tensor shapes" in result.output
    # without OUT_DIR: into the conversion cache, where --model finds it
    result = CliRunner().invoke(main, ["convert", REPO, "--cache-dir", str(online)])
    assert result.exit_code == 0, result.output
    assert str(hub_weights.converted_dir(REPO, hub.repos[REPO].sha, "PrimeDepth.ckpt")) in result.output


@pytest.mark.slow  # over 10 s on the 2-core machine (pytest --durations, -m 'not slow' run)
def test_two_checkpoints_are_chosen_by_file(online, hub):
    folder = hub_weights.resolve_hub_model("someone/two-checkpoints/PrimeDepth-v2.ckpt", cache_dir=str(online))
    assert folder.name == "PrimeDepth-v2" and (folder / "model_index.json").is_file()


def test_unreachable_hub_is_decided_in_seconds(monkeypatch, tmp_path, rgb_image):
    point_hub_at(monkeypatch, "http://127.0.0.1:9")  # nothing listens on the discard port
    monkeypatch.setenv("PRIMEDEPTH_CACHE", str(tmp_path / "pd"))
    start = time.monotonic()
    result = CliRunner().invoke(
        main,
        [
            "predict",
            image(tmp_path, rgb_image),
            "-o",
            str(tmp_path / "o"),
            "--model",
            REPO,
            "--cache-dir",
            str(tmp_path / "hf"),
        ],
    )
    assert time.monotonic() - start < 10
    assert result.exit_code == 2 and "cannot be reached" in result.output and "Retry" not in result.output
    with pytest.raises(WeightsNotFoundError, match="127.0.0.1:9 cannot be reached"):
        hub_weights.resolve_hub_model(REPO)


@pytest.mark.slow  # over 10 s on the 2-core machine (pytest --durations, -m 'not slow' run)
def test_default_model_order(online, hub, monkeypatch, tmp_path):
    monkeypatch.setenv("PRIMEDEPTH_MODEL", str(tmp_path / "absent"))
    with pytest.raises(WeightsNotFoundError, match="PRIMEDEPTH_MODEL.*absent"):
        hub_weights.default_model()
    monkeypatch.delenv("PRIMEDEPTH_MODEL")
    # hub reachable, nothing converted yet: the official weights, downloaded and converted once
    model, note = hub_weights.default_model(cache_dir=str(online))
    assert note is None and model == str(hub_weights.converted_dir(REPO, hub.repos[REPO].sha, "PrimeDepth.ckpt"))
    # now converted: found in the cache even offline
    point_hub_at(monkeypatch, hub.url, offline=True)
    assert hub_weights.default_model() == (model, None)
    # nothing converted and offline: the embedded model with its note
    monkeypatch.setenv("PRIMEDEPTH_CACHE", str(tmp_path / "empty"))
    model, note = hub_weights.default_model()
    assert model == "primedepth-mini" and "HF_HUB_OFFLINE" in note


OFFLINE_SCRIPT = """
import numpy as np
from primedepth import PrimeDepthPipeline
pipe = PrimeDepthPipeline.from_pretrained({model!r}, device="cpu")
out = pipe([np.zeros((40, 48, 3), np.uint8)], caption="auto", seed=0)
print("captions", out.captions)
"""


@pytest.mark.slow
def test_offline_commands_finish_in_seconds_without_retries(reference_dir, tmp_path, rgb_image):
    """As a user would: real processes, HF_ENDPOINT at a closed port, then HF_HUB_OFFLINE=1. Each must end within
    15 s; on a loaded machine, within twice the time of merely importing the libraries, plus 5 s (a retry storm
    costs 1 + 2 + 4 + 8 + 8 s of back-off per file, several files per command, and prints 'Retry' lines)."""
    env = {
        **os.environ,
        "HF_ENDPOINT": "http://127.0.0.1:9",
        "HF_HOME": str(tmp_path / "hf"),
        "PRIMEDEPTH_CACHE": str(tmp_path / "pd"),
        "OMP_NUM_THREADS": "1",
    }
    env.pop("PRIMEDEPTH_MODEL", None)
    exe = [sys.executable, "-m", "primedepth.cli"]
    x = image(tmp_path, rgb_image)

    def runs(offline):
        return {
            "convert": exe + ["convert", str(reference_dir / "official_tiny.ckpt"), str(tmp_path / f"m{offline}")],
            "predict": exe + ["predict", x, "-o", str(tmp_path / f"o{offline}"), "--model", str(tmp_path / "m0")],
            "readme": [sys.executable, "-c", OFFLINE_SCRIPT.format(model=str(tmp_path / "m0"))],
        }

    start = time.monotonic()
    subprocess.run(
        [sys.executable, "-c", "import primedepth.pipelines.pipeline, primedepth.cli.predict_cmd"],
        env=env,
        check=True,
        timeout=120,
    )
    budget = max(15.0, 2 * (time.monotonic() - start) + 5.0)
    for offline in ("0", "1"):
        for name, cmd in runs(offline).items():
            start = time.monotonic()
            done = subprocess.run(
                cmd, env={**env, "HF_HUB_OFFLINE": offline}, capture_output=True, text=True, timeout=120
            )
            took = time.monotonic() - start
            output = done.stdout + done.stderr
            print(f"{name} HF_HUB_OFFLINE={offline}: {took:.1f} s (budget {budget:.1f} s)")
            assert took < budget, (name, offline, took, output)
            assert "Retry" not in output, output
            if name == "convert":
                assert done.returncode == 0, output
                assert "note: text encoder" in output
                # the converted model names the text tower it could not fetch; give it the tiny one for the rest
                tiny = tmp_path / "m0" / "text_encoder"
                if not tiny.exists():
                    from transformers import CLIPTextConfig, CLIPTextModel

                    CLIPTextModel(
                        CLIPTextConfig(
                            vocab_size=514,
                            hidden_size=32,
                            intermediate_size=64,
                            num_hidden_layers=1,
                            num_attention_heads=2,
                            bos_token_id=512,
                            eos_token_id=513,
                            pad_token_id=0,
                        )
                    ).save_pretrained(tiny)
                    byte_level_tokenizer().save_pretrained(tmp_path / "m0" / "tokenizer")
                    index = json.loads((tmp_path / "m0" / "model_index.json").read_text())
                    index.update(text_encoder="text_encoder", tokenizer="tokenizer")
                    (tmp_path / "m0" / "model_index.json").write_text(json.dumps(index))
            else:
                assert done.returncode == 0, output
                assert output.count("note: caption model") == 1 and "using the empty prompt" in output, output
