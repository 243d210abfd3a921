"""``max_size`` has one meaning in the command line and the app: unset = the model's own, 0 = the input's size."""

import numpy as np
import pytest

from primedepth.pipelines.image_processor import max_size_setting


def test_the_settings():
    assert max_size_setting(None) == "auto" and max_size_setting(0) is None and max_size_setting(512) == 512
    with pytest.raises(ValueError, match="0 \\(the input's size\\) or positive"):
        max_size_setting(-8)


def test_zero_processes_the_app_image_at_its_own_size(tiny_pipe, tmp_path):
    """The app's 0 runs at the input's size, as ``--max-size 0``, and the model's own size without a value."""
    from PIL import Image

    from primedepth.app.models import ModelRegistry, model_choice
    from primedepth.app.predict import predict_image

    rgb = np.random.default_rng(0).integers(0, 256, (80, 120, 3), dtype=np.uint8)
    Image.fromarray(rgb).save(tmp_path / "photo.png")
    registry = ModelRegistry([model_choice("primedepth-mini")], device="cpu")  # its own processing size: 64
    seen = []
    original = registry.run

    def spy(model, work):
        def watched(pipe):
            call = pipe.__call__

            def recording(*args, **kwargs):
                seen.append(kwargs["max_size"])
                return call(*args, **kwargs)

            pipe.__call__ = recording
            try:
                return work(_Caller(pipe, recording))
            finally:
                del pipe.__call__

        return original(model, watched)

    registry.run = spy
    for value in (0, None, 64):
        predict_image(
            registry,
            tmp_path / "photo.png",
            model="primedepth-mini",
            max_size=value,
            workdir=tmp_path / "w",
            max_pixels=10**6,
        )
    assert seen == [None, "auto", 64]


class _Caller:
    """The pipeline with its call recorded (instances' ``__call__`` is not used by Python's call syntax)."""

    def __init__(self, pipe, call):
        self._pipe, self._call = pipe, call

    def __call__(self, *args, **kwargs):
        return self._call(*args, **kwargs)

    def __getattr__(self, name):
        return getattr(self._pipe, name)
