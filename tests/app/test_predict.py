"""The app's prediction function: the same files as ``primedepth predict``, limits and options refused clearly."""

import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image

from primedepth.app.models import ModelRegistry, model_choice
from primedepth.app.predict import InputRejected, caption_argument, predict_image
from primedepth.cli import main
from primedepth.pipelines.image_processor import ImageLoadError


@pytest.fixture(scope="module")
def registry():
    return ModelRegistry([model_choice("tiny-random")], device="cpu")


def test_app_writes_what_predict_writes(registry, tmp_path, rgb_image):
    Image.fromarray(rgb_image).save(tmp_path / "x.png")
    result = predict_image(
        registry, tmp_path / "x.png", model="tiny-random", workdir=tmp_path / "app", max_pixels=10_000
    )
    cli = CliRunner().invoke(
        main,
        [
            "predict",
            str(tmp_path / "x.png"),
            "-o",
            str(tmp_path / "cli"),
            "--model",
            "tiny-random",
            "--format",
            "npy,png16,color,side,ply,glb",
            "--depth-range",
            "1,10",
        ],
    )
    assert cli.exit_code == 0, cli.output
    assert [p.name for p in result.downloads] == ["x.npy", "x_16bit.png", "x_color.png", "x_side.png", "x.ply", "x.glb"]
    for path in result.downloads:
        assert path.is_relative_to(tmp_path / "app" / "results")
        assert path.read_bytes() == (tmp_path / "cli" / path.name).read_bytes(), path.name
    assert result.color.name == "x_color.png"
    np.testing.assert_array_equal(result.rgb, rgb_image)
    assert "**tiny-random** on cpu · processed at 96 x 72 px" in result.label and "output 93 x 75 px" in result.label
    assert "random weights" in result.label and "depth assumed to span 1-10 m" in result.label
    assert "set on this page" in result.label and "--" not in result.label  # no CLI options the page lacks
    # the viewer's copy of the mesh is the downloaded one turned y up, looking along -z ...
    import trimesh

    surface, view = (trimesh.load(p, force="mesh") for p in (result.downloads[-1], result.view_glb))
    turned = surface.vertices * [1, -1, -1]
    # ... scaled so that the photo's camera (the origin) is 1 from its centre: the viewer's orbit radius assumes it
    distance = np.linalg.norm((turned.min(axis=0) + turned.max(axis=0)) / 2)
    np.testing.assert_allclose(view.vertices, turned / distance, rtol=1e-5, atol=1e-6)
    assert np.linalg.norm(view.bounds.mean(axis=0)) == pytest.approx(1.0, rel=1e-5)
    assert len(view.faces) == len(surface.faces) > 0


def test_images_over_the_pixel_limit_are_refused_before_decoding(registry, tmp_path, rgb_image):
    Image.fromarray(rgb_image).save(tmp_path / "x.png")
    with pytest.raises(InputRejected, match=r"x.png: 93 x 75 pixels is over this app's limit of 6,974 pixels"):
        predict_image(registry, tmp_path / "x.png", model="tiny-random", workdir=tmp_path, max_pixels=93 * 75 - 1)


def test_non_images_and_unknown_models_are_named(registry, tmp_path):
    (tmp_path / "notes.png").write_text("not an image")
    with pytest.raises(ImageLoadError, match=r"^notes.png: not an image file"):
        predict_image(registry, tmp_path / "notes.png", model="tiny-random", workdir=tmp_path, max_pixels=10**6)
    with pytest.raises(ValueError, match="unknown model 'other'; this app offers tiny-random"):
        predict_image(registry, tmp_path / "notes.png", model="other", workdir=tmp_path, max_pixels=10**6)


def test_caption_modes():
    assert caption_argument("none", "ignored") == "none"
    assert caption_argument("auto", "") == "auto"
    assert caption_argument("text", "  a red chair ") == "a red chair"
    with pytest.raises(InputRejected, match="needs a caption text"):
        caption_argument("text", " ")


def test_ensemble_toggle_averages_with_depth_anything(tiny_depth_anything, tmp_path, rgb_image):
    from primedepth.pipelines.depth_anything import DepthAnything
    from primedepth.pipelines.ensemble import average_normalised

    member = DepthAnything(tiny_depth_anything, name="depth-anything-v2-small")
    with_member = ModelRegistry([model_choice("tiny-random")], device="cpu", ensemble_member=member)
    Image.fromarray(rgb_image).save(tmp_path / "x.png")
    alone = predict_image(
        with_member, tmp_path / "x.png", model="tiny-random", workdir=tmp_path / "a", max_pixels=10_000
    )
    both = predict_image(
        with_member, tmp_path / "x.png", model="tiny-random", workdir=tmp_path / "b", max_pixels=10_000, ensemble=True
    )
    primedepth, combined = (np.load(next(p for p in r.downloads if p.suffix == ".npy")) for r in (alone, both))
    expected = average_normalised([primedepth, member.predict(rgb_image)])
    np.testing.assert_allclose(combined, expected, atol=1e-5)
    assert "depth-anything-v2-small (pixel-wise average" in both.label
    registry = ModelRegistry([model_choice("tiny-random")], device="cpu")
    with pytest.raises(InputRejected, match="--ensemble"):
        predict_image(
            registry, tmp_path / "x.png", model="tiny-random", workdir=tmp_path / "c", max_pixels=10_000, ensemble=True
        )


def test_metric_toggle_gives_metres_with_the_priors_camera(tmp_path, rgb_image):
    import json
    import math

    from helpers.metric_priors import FOV_DEG, save_tiny_depth_pro_with_fov

    from primedepth.pipelines.metric import load_prior
    from primedepth.pipelines.pipeline import PrimeDepthPipeline

    spec = f"depth-pro={save_tiny_depth_pro_with_fov(tmp_path / 'depth-pro')}"
    with_prior = ModelRegistry([model_choice("tiny-random")], device="cpu", metric_prior=load_prior(spec))
    Image.fromarray(rgb_image).save(tmp_path / "x.png")
    result = predict_image(
        with_prior, tmp_path / "x.png", model="tiny-random", workdir=tmp_path / "a", max_pixels=10_000, metric=True
    )
    files = {p.name: p for p in result.downloads}
    assert {"x_depth.npy", "x_confidence.png", "x_confidence.npy", "x_residual.npy", "x_metric.json"} <= set(files)
    expected = PrimeDepthPipeline.tiny_random()(rgb_image, caption="none", metric=spec).metric[0].depth
    np.testing.assert_allclose(np.load(files["x_depth.npy"]), expected, rtol=2e-3)
    meta = json.loads(files["x_metric.json"].read_text())
    w = rgb_image.shape[1]
    assert meta["focal_length_px"] == pytest.approx(0.5 * w / math.tan(math.radians(FOV_DEG / 2)), rel=1e-5)
    assert set(meta["licences"]) == {"tiny-random", "depth-pro"}
    assert "Metres: licences:" in result.label and "NON-COMMERCIAL" in result.label
    registry = ModelRegistry([model_choice("tiny-random")], device="cpu")
    with pytest.raises(InputRejected, match="--metric"):
        predict_image(
            registry, tmp_path / "x.png", model="tiny-random", workdir=tmp_path / "b", max_pixels=10_000, metric=True
        )
