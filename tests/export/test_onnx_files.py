"""The ONNX export works in a temporary folder of ``utils.atomic``: a failed export leaves nothing beside the target
(and a killed one leaves a folder that the next run's sweep recognises)."""

import pytest
import torch

from primedepth.export.onnx import export_onnx
from primedepth.pipelines.pipeline import PrimeDepthPipeline
from primedepth.utils.atomic import is_our_temp, remove_stale_temps


def test_a_failed_export_leaves_nothing(tmp_path, monkeypatch):
    seen = []

    def failing_export(model, args, path, **kwargs):
        seen.append(path)
        raise RuntimeError("exporter failed")

    monkeypatch.setattr(torch.onnx, "export", failing_export)
    with pytest.raises(RuntimeError, match="exporter failed"):
        export_onnx(PrimeDepthPipeline.tiny_random(0), tmp_path / "depth.onnx")  # export casts the pipeline
    assert list(tmp_path.iterdir()) == []
    # the exporter wrote into a folder named as our temporaries, so a killed run's folder is swept
    work = tmp_path / seen[0].split("/")[-2]
    assert is_our_temp(work)
    work.mkdir()
    assert remove_stale_temps(tmp_path) == [work] and list(tmp_path.iterdir()) == []
