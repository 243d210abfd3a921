"""The miniature world's small metric prior: it learns metres and the focal length from rendered scenes."""

import numpy as np

from primedepth.data.scenes import render_scene
from primedepth.miniature.metric_prior import train_metric_prior, training_scenes
from primedepth.models.metric_prior import MiniMetricPrior


def test_a_short_training_learns_the_scale_and_the_focal_length():
    data = training_scenes(24, 32)
    images, log_depth, log_focal = data
    assert images.shape == (24, 3, 32, 32) and log_depth.shape == (24, 32, 32)
    scene = render_scene(3 * 1_000_003 + 5, 32)  # one of the training scenes
    np.testing.assert_allclose(log_depth[5].exp().nan_to_num(np.inf).numpy(), scene.depth, rtol=1e-5)

    def error(model):
        depth, focal = model.predict(scene.image)
        ok = np.isfinite(scene.depth)
        return np.mean(np.abs(np.log(depth[ok] / scene.depth[ok]))), abs(focal / scene.intrinsics[0, 0] - 1)

    untrained = error(MiniMetricPrior(8))
    trained = train_metric_prior(0, data, steps=60, batch=8, width=8)
    depth, focal = trained.predict(scene.image)
    assert depth.shape == (32, 32) and depth.dtype == np.float32 and depth.min() > 0 and focal > 0
    after = error(trained)
    assert after[0] < 0.5 * untrained[0]  # mean |log ratio| to the metric ground truth
    assert after[1] < 0.1


def test_the_shipped_prior_gives_metres_and_demo_scores_the_fusion(tmp_path):
    import json

    from click.testing import CliRunner

    from primedepth.cli import main
    from primedepth.data.scenes import held_out_scenes
    from primedepth.miniature.metric_prior import metric_scores
    from primedepth.pipelines.metric import load_prior

    prior = load_prior("primedepth-mini-metric")
    scenes = held_out_scenes(6)
    errors, focal = [], []
    for scene in scenes:
        prediction = prior.predict(scene.image, (32, 48))  # any output size: bilinear from the model's grid
        assert prediction.depth.shape == (32, 48)
        full = prior.predict(scene.image)
        valid = np.isfinite(scene.depth)
        errors.append(metric_scores(full.depth, scene.depth, valid)["abs_rel"])
        focal.append(abs(full.focal_px / scene.intrinsics[0, 0] - 1))
    assert np.mean(errors) < 0.35 and np.mean(focal) < 0.25  # metres without any alignment (0.20 on 100 scenes)

    out = tmp_path / "demo"
    result = CliRunner().invoke(main, ["demo", "--scenes", "4", "-o", str(out), "--metric"])
    assert result.exit_code == 0, result.output
    report = json.loads((out / "metrics.json").read_text())["metric"]
    assert set(report) == {"prior", "fusion"}
    assert report["fusion"]["boundary_f1"] > report["prior"]["boundary_f1"]
    assert f"AbsRel {report['fusion']['abs_rel']:.4f}" in result.output
