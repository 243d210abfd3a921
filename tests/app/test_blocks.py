"""The page's wiring: both predictions share one queue slot, and the upload input hands over the file untouched."""

from types import SimpleNamespace

import gradio as gr
import pytest

from primedepth.app.blocks import DEVICE_QUEUE, build_app, undecoded_upload
from primedepth.app.models import ModelRegistry, model_choice


def test_image_and_video_predictions_share_one_queue_slot(tmp_path):
    app = build_app(ModelRegistry([model_choice("tiny-random")], device="cpu"), workdir=tmp_path, max_pixels=10**6)
    runs = {fn.api_name: fn for fn in app.fns.values() if fn.api_name in ("predict_image", "predict_video")}
    assert sorted(runs) == ["predict_image", "predict_video"]
    for fn in runs.values():
        assert fn.concurrency_id == DEVICE_QUEUE and fn.concurrency_limit == 1 and fn.queue


def test_upload_input_passes_the_file_itself(tmp_path):
    upload = tmp_path / "notes.png"
    upload.write_text("not an image: the pipeline's loader, not Gradio, must say so")
    component = undecoded_upload(gr.Image(type="filepath", image_mode=None, render=False))
    assert component.preprocess(SimpleNamespace(path=str(upload), url=None)) == str(upload)
    # unpatched, Gradio would have tried to decode it
    with pytest.raises(Exception, match="cannot identify image file"):
        gr.Image(type="filepath", image_mode=None, render=False).preprocess(
            SimpleNamespace(path=str(upload), url=None, orig_name="notes.png")
        )
