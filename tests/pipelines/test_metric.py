"""Metric priors through their libraries' own classes on tiny random configs (folders and the loopback hub), the
camera's focal length chain, the pipeline's ``metric=`` and the licences."""

import json
import math

import numpy as np
import pytest
import torch
from helpers.hub import point_hub_at
from helpers.metric_priors import FOV_DEG, hub_files, save_tiny_depth_pro_with_fov, save_tiny_metric_depth_anything

from primedepth.licences import LICENCES, NonCommercialError, check_commercial, licence_line
from primedepth.pipelines.depth_anything import DepthAnything
from primedepth.pipelines.metric import (
    DEPTH_ANYTHING_V2_METRIC,
    depth_pro_pixel_values,
    load_prior,
    metric_depth,
    parse_prior,
)


@pytest.fixture(scope="module")
def tiny_depth_pro(tmp_path_factory):
    return save_tiny_depth_pro_with_fov(tmp_path_factory.mktemp("depth-pro"))


@pytest.fixture(scope="module")
def tiny_da_metric(tmp_path_factory):
    return save_tiny_metric_depth_anything(tmp_path_factory.mktemp("da-metric"))


def test_prior_names():
    assert parse_prior("depth-pro") == ("depth-pro", "apple/DepthPro-hf")
    assert parse_prior("depth-anything-v2-metric-indoor") == (
        "depth-anything-v2-metric-indoor",
        "depth-anything/Depth-Anything-V2-Metric-Indoor-Large-hf",
    )
    assert parse_prior("depth-anything-v2-metric-outdoor-small=/x") == ("depth-anything-v2-metric-outdoor-small", "/x")
    assert parse_prior("points=p.csv") == ("points", "p.csv")
    assert len(DEPTH_ANYTHING_V2_METRIC) == 8
    with pytest.raises(ValueError, match="unknown metric prior 'depth-anything-v2'"):
        parse_prior("depth-anything-v2")
    with pytest.raises(ValueError, match="points needs a file"):
        parse_prior("points")


def test_depth_pro_is_its_models_metric_depth_and_field_of_view(tiny_depth_pro, rgb_image):
    from transformers import DepthProForDepthEstimation

    prior = load_prior(f"depth-pro={tiny_depth_pro}")
    h, w = rgb_image.shape[:2]
    prediction = prior.predict(rgb_image)
    focal = 0.5 * w / math.tan(math.radians(FOV_DEG / 2))
    assert prediction.focal_px == pytest.approx(focal, rel=1e-5)
    # by hand, as Depth Pro's post-processing: 1 / (canonical inverse depth * width / focal), bilinear to H x W
    model = DepthProForDepthEstimation.from_pretrained(tiny_depth_pro).eval()
    settings = json.loads((tiny_depth_pro / "preprocessor_config.json").read_text())
    with torch.no_grad():
        out = model(pixel_values=depth_pro_pixel_values(rgb_image, settings))
    assert float(out.field_of_view[0]) == pytest.approx(FOV_DEG, rel=1e-6)
    canonical = torch.nn.functional.interpolate(
        out.predicted_depth[:, None] * (w / focal), size=(h, w), mode="bilinear", align_corners=False
    )
    np.testing.assert_allclose(prediction.depth, 1 / canonical.clamp(1e-4, 1e4)[0, 0].numpy(), rtol=1e-5)
    # a known focal length replaces the estimate: depth scales with it
    twice = prior.predict(rgb_image, focal_px=2 * focal)
    unclamped = prediction.depth < 1e3  # random weights: some canonical inverse depths are <= 0, clamped
    assert unclamped.mean() > 0.9
    np.testing.assert_allclose(twice.depth[unclamped], 2 * prediction.depth[unclamped], rtol=1e-4)


def test_depth_anything_metric_prior(tiny_da_metric, tiny_depth_anything, rgb_image):
    prior = load_prior(f"depth-anything-v2-metric-indoor-small={tiny_da_metric}")
    prediction = prior.predict(rgb_image, (20, 30))
    assert prediction.focal_px is None and prediction.depth.shape == (20, 30)
    assert 0 < prediction.depth.min() and prediction.depth.max() <= 20  # sigmoid * max_depth
    np.testing.assert_allclose(prediction.depth, DepthAnything(tiny_da_metric).predict(rgb_image, (20, 30)), atol=1e-6)
    with pytest.raises(ValueError, match="a relative Depth Anything checkpoint, not a metric one"):
        load_prior(f"depth-anything-v2-metric-indoor={tiny_depth_anything}")


def test_priors_load_from_the_hub_and_then_offline(tiny_depth_pro, tiny_da_metric, monkeypatch, tmp_path, rgb_image):
    from helpers.hub_server import HubServer

    with HubServer() as hub:
        hub.add_repo("apple/DepthPro-hf", hub_files(tiny_depth_pro))
        hub.add_repo("depth-anything/Depth-Anything-V2-Metric-Outdoor-Small-hf", hub_files(tiny_da_metric))
        point_hub_at(monkeypatch, hub.url)
        cache = str(tmp_path / "hf")
        online = [load_prior(n, cache_dir=cache) for n in ("depth-pro", "depth-anything-v2-metric-outdoor-small")]
        assert any("/apple/DepthPro-hf/resolve/" in path for _, path, _ in hub.requests)
    point_hub_at(monkeypatch, "http://127.0.0.1:9", offline=True)
    offline = [load_prior(n, cache_dir=cache) for n in ("depth-pro", "depth-anything-v2-metric-outdoor-small")]
    for a, b in zip(online, offline):
        np.testing.assert_allclose(a.predict(rgb_image).depth, b.predict(rgb_image).depth)
    np.testing.assert_allclose(
        offline[0].predict(rgb_image).depth, load_prior(f"depth-pro={tiny_depth_pro}").predict(rgb_image).depth
    )
    from primedepth.conversion.loading import WeightsNotFoundError

    with pytest.raises(WeightsNotFoundError, match="depth-anything-v2-metric-indoor weights not found"):
        load_prior("depth-anything-v2-metric-indoor", cache_dir=cache)


def test_focal_length_chain(tiny_depth_pro, rgb_image):
    prior = load_prior(f"depth-pro={tiny_depth_pro}")
    h, w = rgb_image.shape[:2]
    inverse = 1 / prior.predict(rgb_image).depth  # the prior's own shape: the fusion must give its depth back
    estimated = metric_depth(inverse, rgb_image, prior)
    assert estimated.intrinsics.source == "depth-pro's field-of-view estimate"
    assert estimated.intrinsics.fx == pytest.approx(0.5 * w / math.tan(math.radians(FOV_DEG / 2)), rel=1e-5)
    near = estimated.prior_depth < 500  # random weights: a few pixels beyond the fusion's 1000 m cap
    np.testing.assert_allclose(estimated.depth[near], estimated.prior_depth[near], rtol=1e-3)
    assert estimated.confidence[near].min() > 0.99
    given = metric_depth(inverse, rgb_image, prior, focal_px=100.0)
    assert given.intrinsics.fx == 100.0 and given.intrinsics.source.startswith("--focal-px")
    assert given.estimated_focal_px == pytest.approx(estimated.intrinsics.fx)
    ratio = 100.0 / estimated.intrinsics.fx
    np.testing.assert_allclose(given.depth[near], estimated.depth[near] * ratio, rtol=1e-3)
    fov = metric_depth(inverse, rgb_image, prior, fov_deg=90.0)
    assert fov.intrinsics.fx == pytest.approx(0.5 * max(h, w))
    meta = given.metadata()
    assert meta["focal_length_px"] == 100.0 and meta["licence"]["commercial"] is False


def test_pipeline_metric(tiny_pipe, tiny_depth_pro, rgb_image, tmp_path):
    out = tiny_pipe(rgb_image, caption="none", metric=f"depth-pro={tiny_depth_pro}")
    result = out.metric[0]
    assert result.depth.shape == result.confidence.shape == out.inverse_depth[0].shape
    assert np.isfinite(result.depth).all() and result.depth.min() > 0
    assert 0 <= result.confidence.min() and result.confidence.max() <= 1
    assert out.metadata["metric"][0]["prior"] == "depth-pro" and result.fusion.correction is None
    bent = tiny_pipe(rgb_image, caption="none", metric=f"depth-pro={tiny_depth_pro}", metric_correction=True)
    assert bent.metric[0].fusion.correction is not None
    # points through the same fusion: the depths at the points come back where they agree
    points = np.zeros(out.inverse_depth[0].shape, np.float32)
    points[::7, ::5] = result.depth[::7, ::5]
    np.save(tmp_path / "p.npy", points)
    sparse = tiny_pipe(rgb_image, caption="none", metric=f"points={tmp_path / 'p.npy'}").metric[0]
    assert sparse.fusion.correction is None and sparse.intrinsics.source.startswith("assumed")
    assert sparse.fusion.points == int((points > 0).sum())


def test_licences():
    assert LICENCES["depth-anything-v2-small"].commercial and not LICENCES["depth-anything-v2-large"].commercial
    assert not LICENCES["depth-pro"].commercial and "apple-amlr" in LICENCES["depth-pro"].licence
    assert "RAIL++-M" in LICENCES["primedepth"].licence
    assert not LICENCES["depth-anything-v2-metric-outdoor"].commercial
    check_commercial(["primedepth", "depth-anything-v2-metric-indoor-small", "points"])
    with pytest.raises(NonCommercialError, match="Depth Pro.*NON-COMMERCIAL"):
        check_commercial(["primedepth", "depth-pro"])
    assert licence_line(["primedepth-mini"]).startswith("licences: PrimeDepth-mini")


def predict(tmp_path, rgb_image, *args):
    from click.testing import CliRunner
    from PIL import Image

    from primedepth.cli import main

    Image.fromarray(rgb_image).save(tmp_path / "x.png")
    base = ["predict", str(tmp_path / "x.png"), "-o", str(tmp_path / "o"), "--model", "tiny-random"]
    return CliRunner().invoke(main, [*base, "--caption", "none", *args])


def test_predict_metric_writes_metres_focal_confidence_and_a_metric_point_cloud(tiny_depth_pro, tmp_path, rgb_image):
    import trimesh

    result = predict(tmp_path, rgb_image, "--metric", f"depth-pro={tiny_depth_pro}", "--format", "npy,ply,tiff")
    assert result.exit_code == 0, result.output
    first = result.output.splitlines()[0]
    assert first.startswith("licences: random weights") and "Apple Machine Learning Research" in first
    o = tmp_path / "o"
    depth, confidence = np.load(o / "x_depth.npy"), np.load(o / "x_confidence.npy")
    residual, inverse = np.load(o / "x_residual.npy"), np.load(o / "x.npy")
    assert depth.shape == confidence.shape == residual.shape == inverse.shape == rgb_image.shape[:2]
    meta = json.loads((o / "x_metric.json").read_text())
    h, w = depth.shape
    focal = 0.5 * w / math.tan(math.radians(FOV_DEG / 2))
    assert meta["focal_length_px"] == pytest.approx(focal, rel=1e-5)
    assert meta["focal_length_source"] == "depth-pro's field-of-view estimate"
    assert meta["values"] == "depth along the optical axis in metres" and meta["model"] == "tiny-random"
    assert (
        set(meta["licences"]) == {"tiny-random", "depth-pro"} and meta["licences"]["depth-pro"]["commercial"] is False
    )
    # the same numbers as the library call
    from primedepth.pipelines.pipeline import PrimeDepthPipeline

    out = PrimeDepthPipeline.tiny_random()(rgb_image, caption="none", metric=f"depth-pro={tiny_depth_pro}")
    np.testing.assert_allclose(depth, out.metric[0].depth, rtol=2e-3)
    # the point cloud is the metric depth back-projected with that focal length
    cloud = trimesh.load(o / "x.ply")
    points = np.asarray(cloud.vertices)
    assert len(points) == h * w
    np.testing.assert_allclose(points[:, 2], depth.reshape(-1), rtol=1e-5)
    u = points[:, 0] / points[:, 2] * focal + w / 2 - 0.5
    np.testing.assert_allclose(u.reshape(h, w), np.broadcast_to(np.arange(w), (h, w)), atol=1e-3)
    from primedepth.outputs.formats import read_tiff

    np.testing.assert_allclose(read_tiff(o / "x.tiff"), depth)  # float files hold metres with --metric
    assert (o / "x_confidence.png").is_file()


def test_predict_metric_user_focal_and_commercial_safe(tiny_depth_pro, tiny_da_metric, tmp_path, rgb_image):
    result = predict(
        tmp_path, rgb_image, "--metric", f"depth-pro={tiny_depth_pro}", "--focal-px", "50", "--format", "npy"
    )
    assert result.exit_code == 0, result.output
    meta = json.loads((tmp_path / "o" / "x_metric.json").read_text())
    assert meta["focal_length_px"] == 50.0 and meta["focal_length_source"] == "--focal-px 50"
    refused = predict(
        tmp_path, rgb_image, "--metric", f"depth-pro={tiny_depth_pro}", "--commercial-safe", "--overwrite"
    )
    assert refused.exit_code == 2
    errors = [line for line in refused.output.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and "Depth Pro" in errors[0] and "NON-COMMERCIAL" in errors[0]
    small = f"depth-anything-v2-metric-indoor-small={tiny_da_metric}"
    allowed = predict(tmp_path, rgb_image, "--metric", small, "--commercial-safe", "--overwrite", "--format", "npy")
    assert allowed.exit_code == 0, allowed.output
    bad = predict(tmp_path, rgb_image, "--metric", "marigold", "--format", "npy")
    assert bad.exit_code == 2 and "unknown metric prior 'marigold'" in bad.output
    needs = predict(tmp_path, rgb_image, "--format", "confidence")
    assert needs.exit_code == 2 and "confidence need(s) --metric PRIOR" in needs.output


def test_exif_focal_length_wins_over_the_priors_estimate(tiny_depth_pro, tmp_path, rgb_image):
    from PIL import Image

    from primedepth.outputs.geometry import EXIF_FOCAL_35MM, EXIF_IFD

    exif = Image.Exif()
    exif.get_ifd(EXIF_IFD)[EXIF_FOCAL_35MM] = 28
    Image.fromarray(rgb_image).save(tmp_path / "photo.jpg", exif=exif)
    prior = load_prior(f"depth-pro={tiny_depth_pro}")
    inverse = np.ones(rgb_image.shape[:2], np.float32) + np.linspace(0, 1, rgb_image.shape[1], dtype=np.float32)
    result = metric_depth(inverse, rgb_image, prior, image_path=tmp_path / "photo.jpg")
    h, w = rgb_image.shape[:2]
    exif_focal = 28 * math.hypot(h, w) / math.hypot(36, 24)
    assert result.intrinsics.fx == pytest.approx(exif_focal) and "EXIF" in result.intrinsics.source
    assert result.estimated_focal_px == pytest.approx(0.5 * w / math.tan(math.radians(FOV_DEG / 2)), rel=1e-5)
    # Depth Pro's metric scale used the EXIF focal length, not its own estimate
    np.testing.assert_allclose(result.prior_depth, prior.predict(rgb_image, focal_px=exif_focal).depth, rtol=1e-6)
