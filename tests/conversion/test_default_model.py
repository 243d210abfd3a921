"""One default-model policy for every entry point: a default that cannot be loaded falls back to PrimeDepth-mini with
one note (also on later runs, also offline), a named model that cannot be loaded says how to try the embedded one,
and the web app offers what ``predict`` would pick. Hub access goes to the loopback hub (helpers/hub_server.py)."""

import json

import pytest
from click.testing import CliRunner
from helpers.hub import REPO, point_hub_at
from helpers.hub_server import HubServer
from PIL import Image

from primedepth.cli import main
from primedepth.conversion import cache as conversion_cache
from primedepth.conversion import hub_weights


@pytest.fixture(scope="module")
def hub_without_text_tower(reference_dir):
    """A hub that serves the official checkpoint (no text tower inside) but not the text tower it names."""
    with HubServer() as server:
        server.add_repo(REPO, {"PrimeDepth.ckpt": reference_dir / "official_tiny.ckpt"})
        yield server


@pytest.fixture
def fresh(monkeypatch, tmp_path):
    monkeypatch.setenv("PRIMEDEPTH_CACHE", str(tmp_path / "pd-cache"))
    monkeypatch.delenv("PRIMEDEPTH_MODEL", raising=False)
    Image.new("RGB", (40, 32), (90, 140, 200)).save(tmp_path / "x.png")
    return tmp_path


def predict(tmp_path, out, *extra):
    args = ["predict", str(tmp_path / "x.png"), "-o", str(tmp_path / out), "--caption", "none", "--format", "npy"]
    return CliRunner().invoke(main, [*args, "--cache-dir", str(tmp_path / "hf-cache"), *extra])


@pytest.mark.slow  # downloads and converts the tiny official checkpoint (~10 s on the 2-core machine)
def test_a_default_that_cannot_load_falls_back_to_the_embedded_model(hub_without_text_tower, fresh, monkeypatch):
    point_hub_at(monkeypatch, hub_without_text_tower.url)
    first = predict(fresh, "a")
    assert first.exit_code == 0, first.output
    folder = hub_weights.converted_dir(REPO, hub_without_text_tower.repos[REPO].sha, "PrimeDepth.ckpt")
    assert (folder / "model_index.json").is_file()  # converted, naming the text tower it could not fetch
    notes = [line for line in first.output.splitlines() if "using the embedded PrimeDepth-mini" in line]
    assert len(notes) == 1 and f"the default model {folder} could not be loaded" in notes[0], first.output
    assert "model: primedepth-mini" in first.output and (fresh / "a" / "x.npy").is_file()
    assert not any(line.startswith("error:") for line in first.output.splitlines())

    # the conversion stays in the cache: later runs, online or offline, fall back the same way
    for offline in (False, True):
        point_hub_at(monkeypatch, hub_without_text_tower.url, offline=offline)
        again = predict(fresh, f"b{offline}")
        assert again.exit_code == 0, again.output
        assert "model: primedepth-mini" in again.output and "could not be loaded" in again.output

    # named explicitly, the same model is an error (exit 2) that points at the embedded model
    named = predict(fresh, "c", "--model", str(folder))
    assert named.exit_code == 2, named.output
    errors = [line for line in named.output.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and "text encoder" in errors[0]
    assert named.output.rstrip().endswith("--model primedepth-mini (embedded, no download)")


def test_the_app_offers_what_predict_would_pick(fresh, monkeypatch):
    from primedepth.app.models import available_models

    assert [c.name for c in available_models()] == ["primedepth-mini"]
    # a conversion of the official hub repo, as predict's first online run leaves it
    folder = conversion_cache.converted_dir(REPO, "0" * 40, "PrimeDepth.ckpt")
    folder.mkdir(parents=True)
    (folder / "model_index.json").write_text(json.dumps({"_class_name": "PrimeDepthPipeline", "max_size": 768}))
    ref = conversion_cache.ref_file(REPO, None, None)
    ref.parent.mkdir(parents=True)
    ref.write_text(json.dumps({"commit": "0" * 40, "file": "PrimeDepth.ckpt", "folder": str(folder)}))
    choices = available_models(["tiny-random"])
    assert [c.name for c in choices] == ["tiny-random", str(folder), "primedepth-mini"]
    assert choices[1].default_max_size == 768
    monkeypatch.setenv("PRIMEDEPTH_MODEL", str(fresh / "mine"))
    assert [c.name for c in available_models()] == [str(fresh / "mine"), str(folder), "primedepth-mini"]
