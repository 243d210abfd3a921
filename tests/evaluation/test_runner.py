import csv
import json

import numpy as np
import pytest
from helpers import benchmark_files
from helpers.fakes import AffineOfGT, Constant

from primedepth.evaluation import DATASETS, EnsemblePredictor, SavedPredictor, evaluate, write_oracle_run
from primedepth.evaluation.runner import FIELDS, Processes
from primedepth.utils.atomic import is_our_temp


def rows_of(path):
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def no_temp_files(root):
    return not [p for p in root.rglob("*") if is_our_temp(p)]


def build(name, root, tmp_path):
    if name == "nuscenes_c":
        benchmark_files.make_nuscenes(root, {"scene-0001": 2, "scene-0002": 2})
        scenes = benchmark_files.write_scene_list(
            tmp_path / "scenes.json", {"Day Sunny": ["scene-0001"], "Night Dark": ["scene-0002"]}
        )
        return DATASETS[name](root, scene_list=scenes, allow_partial=True)
    {
        "nyu": benchmark_files.make_nyu,
        "kitti": benchmark_files.make_kitti,
        "eth3d": benchmark_files.make_eth3d,
        "scannet": benchmark_files.make_scannet,
        "diode": benchmark_files.make_diode,
    }[name](root)
    return DATASETS[name](root, allow_partial=True)


@pytest.mark.parametrize("name", ["nyu", "kitti", "eth3d", "scannet", "diode", "nuscenes_c"])
@pytest.mark.parametrize("space", ["disparity", "depth"])
def test_exact_affine_model_scores_perfectly_end_to_end(name, space, tmp_path):
    ds = build(name, tmp_path / "data", tmp_path)
    out = tmp_path / "out"
    summary = evaluate(ds, AffineOfGT(ds, space), out)
    assert summary["samples"] == len(ds) and not summary["complete"]  # fixture is partial by construction
    assert summary["metrics"]["abs_rel"] == pytest.approx(0, abs=1e-5)
    assert summary["metrics"]["delta1"] == 1.0
    rows = rows_of(out / name / f"affine-{space}" / "per_sample.csv")
    assert [r["sample_id"] for r in rows] == [e[0] for e in ds.entries]
    assert (out / "table.md").is_file() and no_temp_files(out)
    if ds.config.categories:
        assert (out / name / "boxplot_delta1.png").stat().st_size > 0


def test_constant_prediction_end_to_end(tmp_path):
    ds = build("scannet", tmp_path / "data", tmp_path)
    summary = evaluate(ds, Constant(), tmp_path / "out")
    expected = []
    for i in range(len(ds)):
        gt = ds[i].depth[ds[i].valid].astype(np.float64)
        expected.append(np.mean(np.abs(gt.mean() - gt) / gt))
    assert summary["metrics"]["abs_rel"] == pytest.approx(np.mean(expected), rel=1e-4)


class Interrupt(Exception):
    pass


class DiesAfter(AffineOfGT):
    def __init__(self, ds, calls_before_death):
        super().__init__(ds, name="model")
        self.left = calls_before_death

    def predict(self, sample_id, rgb):
        if self.left == 0:
            raise Interrupt
        self.left -= 1
        return super().predict(sample_id, rgb)


def test_resume_skips_finished_samples(tmp_path):
    ds = build("diode", tmp_path / "data", tmp_path)
    out = tmp_path / "out"
    with pytest.raises(Interrupt):
        evaluate(ds, DiesAfter(ds, 2), out)
    assert not (out / "diode/model/summary.json").exists()
    again = AffineOfGT(ds, name="model")
    summary = evaluate(ds, again, out)
    assert again.calls == [ds.entries[2][0]]  # only the unfinished sample is recomputed
    assert summary["samples"] == 3
    assert len(rows_of(out / "diode/model/per_sample.csv")) == 3


def test_line_cut_by_a_kill_is_dropped_and_redone(tmp_path):
    ds = build("scannet", tmp_path / "data", tmp_path)
    out = tmp_path / "out"
    evaluate(ds, AffineOfGT(ds, name="model"), out)
    part = out / "scannet/model/parts/rank0.csv"
    text = part.read_text()
    part.write_text(text[: len(text) - 20])  # the last row is cut half-way
    again = AffineOfGT(ds, name="model")
    evaluate(ds, again, out)
    assert again.calls == [ds.entries[1][0]]
    assert len(rows_of(part)) == 2 and part.read_text().count("\n") == 3


def test_shards_cover_every_sample_once_and_merge_like_one_process(tmp_path):
    ds = build("diode", tmp_path / "data", tmp_path)
    single = evaluate(ds, AffineOfGT(ds, name="m", a=2.0), tmp_path / "one")
    models = [AffineOfGT(ds, name="m", a=2.0) for _ in range(2)]
    assert evaluate(ds, models[1], tmp_path / "two", processes=Processes(1, 2)) is None  # only rank 0 merges
    merged = evaluate(ds, models[0], tmp_path / "two", processes=Processes(0, 2))
    assert models[0].calls == [ds.entries[0][0], ds.entries[2][0]] and models[1].calls == [ds.entries[1][0]]
    assert merged["metrics"] == single["metrics"]
    assert [r["sample_id"] for r in rows_of(tmp_path / "two/diode/m/per_sample.csv")] == [e[0] for e in ds.entries]


def test_bad_prediction_names_the_sample(tmp_path):
    ds = build("scannet", tmp_path / "data", tmp_path)
    bad = AffineOfGT(ds, name="bad")
    bad.predict = lambda sample_id, rgb: np.full(rgb.shape[:2], np.nan, np.float32)
    with pytest.raises(ValueError, match=ds.entries[0][0]):
        evaluate(ds, bad, tmp_path / "out")


def test_saved_predictions_ensemble_oracle_and_report(tmp_path):
    ds = build("nuscenes_c", tmp_path / "data", tmp_path)
    out = tmp_path / "out"
    good = evaluate(ds, AffineOfGT(ds, name="primedepth"), out)
    noisy = AffineOfGT(ds, name="depth-anything-v2")
    rng = np.random.default_rng(0)
    base_predict = noisy.predict
    noisy.predict = lambda sid, rgb: base_predict(sid, rgb) * rng.uniform(0.5, 1.5, rgb.shape[:2]).astype(np.float32)
    evaluate(ds, noisy, out)

    # --predictions: scoring the saved files reproduces the run.
    saved = SavedPredictor(out / "nuscenes_c/primedepth/predictions", "disparity", "rescored")
    assert evaluate(ds, saved, out, save_predictions=False)["metrics"] == good["metrics"]

    members = [
        SavedPredictor(out / f"nuscenes_c/{n}/predictions", "disparity", n) for n in ("primedepth", "depth-anything-v2")
    ]
    ens = evaluate(ds, EnsemblePredictor(members), out)
    assert ens["model"] == "ensemble(primedepth+depth-anything-v2)" and ens["samples"] == len(ds)

    orc = write_oracle_run(out, ds, "primedepth", "depth-anything-v2")
    assert orc["picks"] == {"primedepth": len(ds), "depth-anything-v2": 0}
    assert orc["metrics"]["abs_rel"] == pytest.approx(0, abs=1e-5)

    table = (out / "table.md").read_text()
    assert "nuScenes-C* δ1 % ↑" in table and "avg. rank" in table
    assert "| primedepth | 100.0 | 0.0 | 1.00 |" in table  # tied best models all rank 1
    assert table.splitlines()[-3].startswith("| depth-anything-v2 |")  # sorted by average rank: worst last
    ensemble_row = next(line for line in table.splitlines() if line.startswith("| ensemble("))
    assert float(ensemble_row.split("|")[3]) < float(table.splitlines()[-3].split("|")[3])  # beats the noisy member
    for png in ("boxplot_delta1.png", "strips_worst.png", "strips_best.png"):
        assert (out / "nuscenes_c" / png).stat().st_size > 1000
    summary = json.loads((out / "nuscenes_c/primedepth/summary.json").read_text())
    assert set(summary["categories"]) == {"Day Sunny", "Night Dark"}
    assert "Night Dark" in (out / "nuscenes_c/primedepth/summary.md").read_text()
    assert no_temp_files(out)


def test_missing_saved_prediction_names_the_file(tmp_path):
    ds = build("scannet", tmp_path / "data", tmp_path)
    (tmp_path / "preds").mkdir()
    with pytest.raises(FileNotFoundError, match=r"preds/scene0500_00__color__000000\.jpg\.npy"):
        evaluate(ds, SavedPredictor(tmp_path / "preds"), tmp_path / "out")


def test_csv_header_is_the_documented_one(tmp_path):
    ds = build("scannet", tmp_path / "data", tmp_path)
    evaluate(ds, Constant(), tmp_path / "out")
    assert tuple(rows_of(tmp_path / "out/scannet/constant/per_sample.csv")[0]) == FIELDS
