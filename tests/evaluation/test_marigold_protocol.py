"""The harness against an independent re-implementation of Marigold's evaluation (prs-eth/Marigold
``script/depth/eval.py``, ``src/util/alignment.py``, ``src/util/metric.py`` and the dataset classes), on files in
Marigold's own layouts at the real image sizes, scored from predictions saved as Marigold's ``infer.py`` saves them.

The reference below is written from Marigold's rules, not from this package: it reads the split list, builds the
valid mask, fits in float32 as Marigold does (numpy least squares on float32 arrays), subsamples the ETH3D fit with
torch's nearest rule on a ``[1, H, W]`` tensor written out in numpy, clips and scores."""

from __future__ import annotations

import csv
import json

import numpy as np
import pytest
import torch
from click.testing import CliRunner
from helpers.benchmark_files import smooth_depth
from PIL import Image

from primedepth.alignment import fit_subsample_columns
from primedepth.cli import main
from primedepth.evaluation import DATASETS, Predictor, SavedPredictor, evaluate
from primedepth.evaluation.datasets import DatasetConfig
from primedepth.evaluation.peers import MARIGOLD_FORMATS, MarigoldPredictor
from primedepth.evaluation.predictors import marigold_prediction_path

# -- Marigold's rules, re-implemented ---------------------------------------------------------------------------

RANGES = {"nyu": (1e-3, 10.0), "kitti": (1e-5, 80.0), "eth3d": (1e-5, np.inf), "scannet": (1e-3, 10.0)}
RANGES["diode"] = (0.6, 350.0)


def reference_valid(name, depth, mask=None):
    if name == "diode":
        return mask.astype(bool)  # the mask file alone
    lo, hi = RANGES[name]
    valid = (depth > lo) & (depth < hi)
    crop = np.zeros_like(valid)
    h, w = depth.shape
    if name == "nyu":
        crop[45:471, 41:601] = True
    elif name == "kitti":  # "eigen" valid_mask_crop
        crop[int(0.3324324 * h) : int(0.91351351 * h), int(0.0359477 * w) : int(0.96405229 * w)] = True
    else:
        crop[:] = True
    return valid & crop


def reference_subsample(arrays, max_res):
    """``nn.Upsample(scale_factor=min(max_res / (H, W)), mode="nearest")`` on ``[1, H, W]``: (N, C, L) to torch, so
    only the width shrinks; column j of the output is input column floor(j * float32(1 / factor))."""
    h, w = arrays[0].shape
    factor = np.min(max_res / np.array([h, w]))
    if factor >= 1:
        return arrays
    out_w = int(np.floor(w * factor))
    cols = np.minimum(np.floor(np.arange(out_w, dtype=np.float32) * np.float32(1.0 / factor)), w - 1).astype(int)
    return [a[:, cols] for a in arrays]


def reference_lstsq(gt, pred, mask, max_res):
    g, p, m = reference_subsample([gt, pred, mask], max_res) if max_res else (gt, pred, mask)
    a = np.stack([p[m], np.ones_like(p[m])], axis=-1)
    scale, shift = np.linalg.lstsq(a, g[m].reshape(-1, 1), rcond=None)[0]
    return pred * scale + shift  # float32, as in Marigold


def reference_align(name, pred, depth, valid, space, max_res=None):
    pred = pred.astype(np.float32)
    if space == "depth":
        out = reference_lstsq(depth, pred, valid, max_res)
    else:
        disparity = np.zeros_like(depth)
        disparity[depth > 0] = 1.0 / depth[depth > 0]
        out = reference_lstsq(disparity, pred, valid & (depth > 0) & (pred > 0), max_res)
        out = np.clip(out, 1e-3, None)
        out = 1.0 / out
    lo, hi = RANGES[name]
    return np.clip(np.clip(out, lo, hi), 1e-6, None)


def reference_metrics(pred, gt, valid):
    p, g = pred[valid].astype(np.float64), gt[valid].astype(np.float64)
    d = np.log(p) - np.log(g)
    p32, g32 = pred[valid].astype(np.float32), gt[valid].astype(np.float32)
    ratio = np.maximum(p32 / g32, g32 / p32)  # float32, as torch computes it in Marigold
    return {
        "abs_rel": np.mean(np.abs(p - g) / g),
        "sq_rel": np.mean((p - g) ** 2 / g),
        "rmse": np.sqrt(np.mean((p - g) ** 2)),
        "rmse_log": np.sqrt(np.mean(d**2)),
        "log10": np.mean(np.abs(np.log10(p) - np.log10(g))),
        "delta1": np.mean(ratio < 1.25),
        "delta2": np.mean(ratio < 1.25**2),
        "delta3": np.mean(ratio < 1.25**3),
        "i_rmse": np.sqrt(np.mean((1 / p - 1 / g) ** 2)),
        "silog": 100 * np.sqrt(np.mean(d**2) - np.mean(d) ** 2),
    }


def pipeline_upsample(pred, shape):
    """What Marigold's pipeline does to bring its output to the input size (bilinear, antialias)."""
    t = torch.from_numpy(pred.astype(np.float32))[None, None]
    return torch.nn.functional.interpolate(t, size=shape, mode="bilinear", antialias=True)[0, 0].numpy()


# -- files in Marigold's layouts ----------------------------------------------------------------------------------


def _image(path, h, w, seed):
    path.parent.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    small = rng.integers(0, 255, (h // 16 + 1, w // 16 + 1, 3), dtype=np.uint8)  # blocky: small files
    Image.fromarray(small).resize((w, h), Image.NEAREST).save(path)


def _png16(path, values):
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(values.astype(np.uint16)).save(path)


def write_dataset(name, root, seed=0, eth3d_shape=(1344, 2016)):
    """Two or three samples in Marigold's layout and its list format; returns (split file, {rgb: (depth, valid)})."""
    lines, truth = [], {}
    if name == "nyu":
        for i in range(2):
            rel = f"test/kitchen_{i:04d}/rgb_{i + 1:04d}.png"
            _image(root / rel, 480, 640, seed + i)
            mm = np.round(smooth_depth(480, 640, 300, 11000, seed + i))  # some pixels beyond 10 m
            mm[::7, ::5] = 0
            _png16(root / rel.replace("rgb_", "depth_"), mm)
            _png16(root / rel.replace("rgb_", "filled_"), np.maximum(mm, 1))
            lines.append(f"{rel} {rel.replace('rgb_', 'depth_')} {rel.replace('rgb_', 'filled_')}")
            truth[rel] = (mm / 1000.0, None)
    elif name == "kitti":
        for i in range(3):
            drive = "2011_09_26_drive_0002_sync"
            rel = f"2011_09_26/{drive}/image_02/data/{i:010d}.png"
            h, w = (375, 1242) if i else (370, 1224)  # KITTI raw sizes differ per date
            _image(root / rel, h, w, seed + i)
            if i == 1:
                lines.append(f"{rel} None 721.5377")  # an Eigen test frame without ground truth
                continue
            gt = np.zeros((h, w))
            gt[h // 3 :] = np.round(smooth_depth(h, w, 2, 95, seed + i)[h // 3 :] * 256)  # some beyond 80 m
            gt[::2, ::3] = 0
            gt_rel = f"{drive}/proj_depth/groundtruth/image_02/{i:010d}.png"
            _png16(root / gt_rel, gt)
            lines.append(f"{rel} {gt_rel} 721.5377")
            top, left = h - 352, int((w - 1216) / 2)
            truth[rel] = (gt[top : top + 352, left : left + 1216] / 256.0, None)
    elif name == "scannet":
        for i in range(2):
            rel = f"scene0{406 + i}_02/color/{i * 100:06d}.jpg"
            _image(root / rel, 480, 640, seed + i)
            mm = np.round(smooth_depth(480, 640, 200, 9800, seed + i))
            mm[:, :10] = 0
            _png16(root / f"scene0{406 + i}_02/depth/{i * 100:06d}.png", mm)
            lines.append(f"{rel} scene0{406 + i}_02/depth/{i * 100:06d}.png")
            truth[rel] = (mm / 1000.0, None)
    elif name == "diode":
        for i, kind in enumerate(["indoors", "outdoor", "outdoor"]):
            stem = f"{kind}/scene_{i:05d}/scan_{i:05d}/{i:05d}_{i:05d}_{kind}_000_010"
            _image(root / (stem + ".png"), 768, 1024, seed + i)
            depth = smooth_depth(768, 1024, 1, 300 if kind == "outdoor" else 9, seed + i).astype(np.float32)
            mask = np.ones((768, 1024), dtype=np.float32)
            mask[:, :20] = 0
            depth[100:110, 100:400] = 0.3  # mask-valid pixels outside 0.6-350 m: Marigold scores them
            depth[200:210, 100:400] = 420.0
            np.save(root / (stem + "_depth.npy"), depth[..., None])
            np.save(root / (stem + "_depth_mask.npy"), mask)
            lines.append(f"{stem}.png {stem}_depth.npy {stem}_depth_mask.npy")
            truth[stem + ".png"] = (depth.astype(np.float64), mask)
    elif name == "eth3d":  # a third of the DSLR size by default: the 1024-px fit still subsamples (reader: below)
        h, w = eth3d_shape
        for i in range(2):
            rel = f"rgb/courtyard/images/dslr_images/DSC_{i:04d}.JPG"
            _image(root / rel, h, w, seed + i)
            depth = smooth_depth(h, w, 1, 40, seed + i).astype(np.float32)
            depth[:50] = np.inf
            gt_rel = f"depth/courtyard_dslr_depth/courtyard/ground_truth_depth/dslr_images/DSC_{i:04d}.JPG"
            (root / gt_rel).parent.mkdir(parents=True, exist_ok=True)
            depth.tofile(root / gt_rel)
            lines.append(f"{rel} {gt_rel}")
            truth[rel] = (np.where(np.isinf(depth), 0, depth).astype(np.float64), None)
    split = root / "list.txt"
    split.write_text("\n".join(lines))  # no trailing newline, like Marigold's lists
    return split, truth


def predictions(truth, space, kind, seed=0):
    """{rgb: prediction}: an affine map of the GT with noise; "holes" adds zeros and negatives (3 %), "low" comes
    at half the resolution."""
    out = {}
    for k, (rgb, (depth, _)) in enumerate(sorted(truth.items())):
        rng = np.random.default_rng(seed + k)
        base = np.where(depth > 0, depth, 5.0)
        pred = (0.2 * base + 0.1) if space == "depth" else (2.0 / base + 0.05)
        pred = pred * rng.uniform(0.85, 1.15, pred.shape)
        if kind == "holes":
            holes = rng.random(pred.shape) < 0.03
            pred[holes] = rng.choice([0.0, -0.2, -1.5], holes.sum())
        if kind == "low":
            h, w = pred.shape
            pred = pred[::2, ::2][: h // 2, : w // 2]
        out[rgb] = pred.astype(np.float32)
    return out


def save_marigold_predictions(folder, preds, names):
    for rgb, pred in preds.items():
        path = folder / marigold_prediction_path(rgb, names)
        path.parent.mkdir(parents=True, exist_ok=True)
        np.save(path, pred)


def reference_run(name, truth, preds, space, max_res=None):
    rows = {}
    for rgb, (depth, mask) in truth.items():
        valid = reference_valid(name, depth, mask)
        pred = preds[rgb]
        if pred.shape != depth.shape:
            pred = pipeline_upsample(pred, depth.shape)
        aligned = reference_align(name, pred, depth.astype(np.float32), valid, space, max_res)
        rows[rgb] = reference_metrics(aligned, depth.astype(np.float32), valid)
    return rows


def harness_rows(out, name, run):
    with open(out / name / run / "per_sample.csv") as f:
        return {r["sample_id"]: r for r in csv.DictReader(f)}


def assert_same(ours: dict, reference: dict):
    for metric, value in reference.items():
        tolerance = dict(abs=1e-6) if metric in ("abs_rel", "delta1", "delta2", "delta3") else dict(rel=1e-5)
        assert float(ours[metric]) == pytest.approx(float(value), **tolerance), metric


CASES = [
    ("nyu", "depth", "plain"),
    ("nyu", "disparity", "holes"),
    ("kitti", "depth", "holes"),
    ("kitti", "disparity", "low"),
    ("scannet", "disparity", "plain"),
    ("scannet", "depth", "low"),
    ("diode", "depth", "plain"),
    ("diode", "disparity", "holes"),
    ("eth3d", "depth", "holes"),
    ("eth3d", "disparity", "low"),
]


@pytest.fixture(scope="module")
def layouts(tmp_path_factory):
    """Each dataset written once per module (the files are the slow part)."""
    cache = {}

    def get(name):
        if name not in cache:
            root = tmp_path_factory.mktemp(name)
            cache[name] = (root, *write_dataset(name, root))
        return cache[name]

    return get


@pytest.mark.parametrize(("name", "space", "kind"), CASES)
def test_scores_equal_marigolds_evaluation(layouts, tmp_path, name, space, kind):
    root, split, truth = layouts(name)
    dataset = DATASETS[name](root, split_file=split, allow_partial=True)
    assert [e[0] for e in dataset.entries] == sorted(truth, key=[e[0] for e in dataset.entries].index)
    preds = predictions(truth, space, kind)
    if kind == "holes":
        assert any((p <= 0).mean() > 0.02 for p in preds.values())
    save_marigold_predictions(tmp_path / "pred", preds, dataset.config.prediction_names)
    saved = SavedPredictor(tmp_path / "pred", space, "saved")
    summary = evaluate(dataset, saved, tmp_path / "out", save_predictions=False, reports=False)
    max_res = 1024 if name == "eth3d" else None
    reference = reference_run(name, truth, preds, space, max_res)
    ours = harness_rows(tmp_path / "out", name, "saved")
    assert set(ours) == set(reference)
    for rgb in reference:
        assert_same(ours[rgb], reference[rgb])
    mean = {m: np.mean([r[m] for r in reference.values()]) for m in reference[next(iter(reference))]}
    assert_same(summary["metrics"], mean)  # the mean over images


def test_each_rule_moves_the_numbers(layouts, tmp_path):
    """The rules the reference follows are not idle: breaking one of them in the reference changes the scores."""
    root, _, truth = layouts("diode")
    preds = predictions(truth, "disparity", "holes")
    rgb = sorted(truth)[1]
    depth, mask = truth[rgb]
    depth32 = depth.astype(np.float32)
    valid = reference_valid("diode", depth, mask)
    ranged = valid & (depth > 0.6) & (depth < 350)
    marigold = reference_metrics(reference_align("diode", preds[rgb], depth32, valid, "disparity"), depth32, valid)
    with_range = reference_metrics(reference_align("diode", preds[rgb], depth32, ranged, "disparity"), depth32, ranged)
    assert abs(marigold["abs_rel"] - with_range["abs_rel"]) > 1e-3  # the DIODE range is not part of the mask
    disparity = np.where(depth32 > 0, 1 / np.where(depth32 > 0, depth32, 1), 0).astype(np.float32)
    without = reference_lstsq(disparity, preds[rgb], valid & (depth32 > 0) & (preds[rgb] > 0), None)
    kept = reference_lstsq(disparity, preds[rgb], valid & (depth32 > 0), None)
    assert np.abs(without - kept).max() > 1e-3  # non-positive predictions left out of the disparity fit


def test_eth3d_fit_subsamples_the_width_only():
    columns = fit_subsample_columns((4032, 6048), 1024)
    factor = np.min(1024 / np.array([4032, 6048]))
    expected = np.minimum(np.floor(np.arange(1024, dtype=np.float32) * np.float32(1 / factor)), 6047).astype(int)
    np.testing.assert_array_equal(columns, expected)
    probe = torch.arange(4032 * 6048, dtype=torch.float64).reshape(1, 4032, 6048)  # Marigold's call, verbatim torch
    picked = torch.nn.Upsample(scale_factor=float(factor), mode="nearest")(probe)[0].numpy()
    assert picked.shape == (4032, 1024)  # every row, 1024 columns
    np.testing.assert_array_equal(picked[7] - 7 * 6048, columns)
    assert fit_subsample_columns((480, 640), 1024) is None


def test_eth3d_reader_at_the_dslr_size(tmp_path):
    """The ETH3D GT at its real size: 4032 x 6048 little-endian float32 (97 MB), inf = no GT."""
    rel = "rgb/office/images/dslr_images/DSC_0219.JPG"
    (tmp_path / rel).parent.mkdir(parents=True)
    Image.new("RGB", (6048, 4032), (90, 120, 30)).save(tmp_path / rel)
    depth = np.full((4032, 6048), np.inf, dtype=np.float32)
    depth[1000:3000, 2000:5000] = np.linspace(1, 30, 3000, dtype=np.float32)
    gt = tmp_path / "depth/office_dslr_depth/office/ground_truth_depth/dslr_images/DSC_0219.JPG"
    gt.parent.mkdir(parents=True)
    depth.tofile(gt)
    del depth
    sample = DATASETS["eth3d"](tmp_path, allow_partial=True)[0]
    assert sample.depth.shape == (4032, 6048) and sample.valid.sum() == 2000 * 3000
    assert sample.depth[0, 0] == 0 and sample.depth[1000, 4999] == pytest.approx(30)


def test_marigolds_kitti_list_with_none_lines_is_the_full_split(tmp_path):
    """697 lines, 45 of them ``None``: 652 samples, the protocol's count, accepted without --allow-partial."""
    image = tmp_path / "img.png"
    Image.new("RGB", (4, 4)).save(image)
    lines = []
    for i in range(697):
        rel = f"2011_09_26/2011_09_26_drive_0002_sync/image_02/data/{i:010d}.png"
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / rel).write_bytes(image.read_bytes())
        gt = (
            "None"
            if i % 15 == 0 and i < 675
            else f"2011_09_26_drive_0002_sync/proj_depth/groundtruth/image_02/{i:010d}.png"
        )
        lines.append(f"{rel} {gt} 721.5377")
    assert sum(" None " in line for line in lines) == 45
    (tmp_path / "eigen_test_files_with_gt.txt").write_text("\n".join(lines))
    dataset = DATASETS["kitti"](tmp_path, split_file=tmp_path / "eigen_test_files_with_gt.txt")
    assert len(dataset) == 652 and not dataset.partial
    assert all(entry[1] != "None" for entry in dataset.entries)


def test_diode_extracted_archive_layout_and_names(layouts):
    root, _, truth = layouts("diode")
    dataset = DATASETS["diode"](root, allow_partial=True)  # discovered: no val/ level
    assert sorted(e[0] for e in dataset.entries) == sorted(truth)
    assert sorted({dataset.category(e) for e in dataset.entries}) == ["indoors", "outdoor"]
    assert dataset.config.categories == ("indoors", "outdoor")
    sample = dataset[[e[0] for e in dataset.entries].index(sorted(truth)[0])]
    assert sample.valid.sum() == (truth[sample.sample_id][1] > 0).sum()  # includes the 0.3 m and 420 m pixels


def test_prediction_names_are_marigolds():
    assert marigold_prediction_path("test/kitchen_0004/rgb_0001.png", "rgb_id") == "test/kitchen_0004/pred_0001.npy"
    kitti = "2011_09_26/2011_09_26_drive_0002_sync/image_02/data/0000000069.png"
    assert marigold_prediction_path(kitti) == "2011_09_26/2011_09_26_drive_0002_sync/image_02/data/pred_0000000069.npy"
    assert marigold_prediction_path("rgb/office/images/dslr_images/DSC_0219.JPG") == (
        "rgb/office/images/dslr_images/pred_DSC_0219.npy"
    )


def test_prediction_of_another_aspect_ratio_is_refused(layouts, tmp_path):
    """An uncropped 375 x 1242 KITTI map for the 352 x 1216 benchmark crop: one error line naming the file and both
    shapes; --resize-predictions scores it anyway."""
    root, split, truth = layouts("kitti")
    for rgb in truth:
        path = tmp_path / "pred" / marigold_prediction_path(rgb)
        path.parent.mkdir(parents=True, exist_ok=True)
        np.save(path, np.linspace(1, 2, 375 * 1242, dtype=np.float32).reshape(375, 1242))
    args = ["eval", "--dataset", "kitti", "--data-root", str(root), "--split-file", str(split), "--allow-partial"]
    args += ["--predictions", str(tmp_path / "pred"), "--prediction-space", "depth", "--output", str(tmp_path / "o")]
    refused = CliRunner().invoke(main, args)
    assert refused.exit_code == 1 and "Traceback" not in refused.output
    assert "pred_0000000000.npy: prediction is 375x1242, ground truth is 352x1216" in refused.output
    resized = CliRunner().invoke(main, [*args, "--resize-predictions"])
    assert resized.exit_code == 0, resized.output
    summary = json.loads((tmp_path / "o/kitti/pred/summary.json").read_text())
    assert summary["samples"] == 2 and "i_rmse" in summary["metrics"]


class Recorder(Predictor):
    name, space = "recorder", "depth"

    def __init__(self, resizes_input):
        self.resizes_input, self.shapes = resizes_input, []

    def predict(self, sample_id, rgb):
        self.shapes.append(rgb.shape[:2])
        return np.linspace(1, 2, rgb.shape[0] * rgb.shape[1], dtype=np.float32).reshape(rgb.shape[:2])


def test_a_model_that_resizes_itself_gets_the_native_image(layouts, tmp_path):
    root, split, _ = layouts("diode")
    dataset = DATASETS["diode"](root, split_file=split, allow_partial=True)
    harness, itself = Recorder(False), Recorder(True)
    evaluate(dataset, harness, tmp_path / "a", save_predictions=False)
    summary = evaluate(dataset, itself, tmp_path / "b", save_predictions=False)
    assert set(harness.shapes) == {(480, 640)} and set(itself.shapes) == {(768, 1024)}
    assert summary["input"] == "native RGB, resized by the model itself"


def test_marigold_runs_at_its_evaluation_resolutions():
    """Native on NYUv2, KITTI, ScanNet; 756 on ETH3D; 640 on DIODE (Marigold's infer scripts); elsewhere the format's
    own setting; an explicit resolution wins everywhere. Checked on the resolution choice alone (no weights)."""
    for kind, fallback in (("marigold-v1-0", 768), ("marigold-v1-1", None)):
        peer = MarigoldPredictor.__new__(MarigoldPredictor)
        peer.format, peer.fixed_resolution = MARIGOLD_FORMATS[kind], False
        assert peer.resizes_input
        for name in ("nyu", "kitti", "scannet", "eth3d", "diode", "nuscenes_c"):
            peer.prepare(DatasetConfig.load(name))
            assert peer.resolution == {"nyu": 0, "kitti": 0, "scannet": 0, "eth3d": 756, "diode": 640}.get(
                name, fallback
            )
    peer.fixed_resolution, peer.resolution = True, 32
    peer.prepare(DatasetConfig.load("eth3d"))
    assert peer.resolution == 32
