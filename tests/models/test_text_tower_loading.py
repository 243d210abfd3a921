"""The text tower loads from a full CLIP repo without transformers' load report, and refuses what the report would
only have listed: a missing text weight or a key of neither tower."""

import re

import pytest
import torch
from helpers.hub import tiny_clip_repo
from safetensors.torch import load_file, save_file
from transformers import CLIPTextModel

from primedepth.models.frozen.text_encoder import load_text_tower


def printed(capfd, caplog) -> str:
    """Everything written to the terminal or logged since the last call."""
    out = capfd.readouterr()
    text = out.out + out.err + caplog.text
    caplog.clear()
    return text


def test_a_full_clip_repo_loads_its_text_half_quietly(tmp_path, capfd, caplog):
    tiny_clip_repo(tmp_path / "clip", 32)
    printed(capfd, caplog)
    with caplog.at_level("WARNING"):
        CLIPTextModel.from_pretrained(tmp_path / "clip")  # transformers alone: the report, one line per vision key
        plain = printed(capfd, caplog)
        assert "LOAD REPORT" in plain and "UNEXPECTED" in plain
        tower = load_text_tower(tmp_path / "clip")
        quiet = printed(capfd, caplog)
    assert "LOAD REPORT" not in quiet and "UNEXPECTED" not in quiet
    assert "\x1b[" not in quiet  # no raw terminal colour codes
    state = load_file(tmp_path / "clip" / "model.safetensors")
    weights = {k if k in state else f"text_model.{k}": v for k, v in tower.state_dict().items()}
    assert all(torch.equal(v, state[k]) for k, v in weights.items())  # every text weight, from the file


def test_a_tower_missing_a_text_weight_is_refused(tmp_path):
    tiny_clip_repo(tmp_path / "clip", 32)
    file = tmp_path / "clip" / "model.safetensors"
    state = load_file(file)
    del state["text_model.final_layer_norm.weight"]
    state["something_else.weight"] = torch.zeros(2)
    save_file(state, file)
    expected = r"missing (text_model\.)?final_layer_norm.weight, unexpected something_else.weight"
    with pytest.raises(OSError, match=expected):
        load_text_tower(tmp_path / "clip")


def test_hub_failures_name_the_endpoint_in_use_and_no_advice_that_does_not_apply(monkeypatch, tmp_path):
    """With HF_ENDPOINT at a hub that lacks the repo, and with HF_HUB_OFFLINE=1: no public hub URL, no token hint."""
    from helpers.hub import point_hub_at
    from helpers.hub_server import HubServer

    from primedepth.models.frozen.text_encoder import load_clip_tokenizer
    from primedepth.pipelines.captioning import Blip2Captioner, CaptionModelUnavailableError

    hub = {"cache_dir": str(tmp_path / "hf")}
    with HubServer() as server:
        for offline in (False, True):
            point_hub_at(monkeypatch, server.url, offline=offline)
            messages = []
            for load in (load_text_tower, load_clip_tokenizer):
                with pytest.raises(OSError) as err:
                    load("someone/absent-clip", local_files_only=offline, **hub)
                messages.append(str(err.value))
            with pytest.raises(CaptionModelUnavailableError) as err:
                Blip2Captioner("someone/absent-blip", local_files_only=offline, **hub)._load()
            messages.append(str(err.value))
            for message in messages:
                assert "huggingface.co" not in message and not re.search(r"\btoken\b|login", message), message
                assert "internet connection" not in message, message
                expected = "HF_HUB_OFFLINE=1" if offline else f"the hub {server.url} does not serve it"
                assert expected in message, message
