import json
from importlib import resources

import numpy as np
import pytest
from helpers import benchmark_files
from PIL import Image

from primedepth.evaluation.datasets import DATASETS, DatasetConfig, DatasetError
from primedepth.evaluation.datasets.nuscenes_c import load_scene_list, quaternion_to_matrix
from primedepth.evaluation.suite import load_suite

PROTOCOL_COUNTS = {
    "nyu": 654,
    "kitti": 652,
    "eth3d": 454,
    "scannet": 800,
    "diode": 771,
    "nuscenes_c": 3489,
    "rabbitai": 60,
}


@pytest.mark.parametrize("name", sorted(PROTOCOL_COUNTS))
def test_protocol_constants_are_written_down(name):
    config = DatasetConfig.load(name)
    assert config.expected_count == PROTOCOL_COUNTS[name]
    assert name in DATASETS


def test_the_command_offers_every_benchmark_each_with_its_protocol_file():
    from primedepth.cli.eval_cmd import command
    from primedepth.constants import BENCHMARK_DATASETS

    [dataset] = [p for p in command.params if p.name == "dataset_name"]
    assert tuple(dataset.type.choices) == BENCHMARK_DATASETS == tuple(DATASETS)
    assert all(DatasetConfig.load(name).name == name for name in BENCHMARK_DATASETS)
    [suite] = [p for p in command.params if p.name == "suite"]
    assert tuple(suite.type.choices) == ("paper-table2", "paper-table3")
    assert [load_suite(name).name for name in suite.type.choices] == list(suite.type.choices)


def test_protocol_values():
    nyu, kitti, eth3d, diode = (DatasetConfig.load(n) for n in ("nyu", "kitti", "eth3d", "diode"))
    assert (nyu.min_depth, nyu.max_depth, nyu.eval_crop) == (1e-3, 10.0, (45, 471, 41, 601))
    assert (kitti.min_depth, kitti.max_depth, kitti.kitti_bm_crop, kitti.garg_crop) == (1e-5, 80.0, True, True)
    assert (eth3d.max_depth, eth3d.processing_res, eth3d.alignment_max_res) == (np.inf, 756, 1024)
    assert (diode.min_depth, diode.max_depth, diode.processing_res) == (0.6, 350.0, 640)
    assert len(DatasetConfig.load("nuscenes_c").categories) == 6


def test_count_mismatch_is_a_clear_error(tmp_path):
    benchmark_files.make_nyu(tmp_path, n=2)
    with pytest.raises(DatasetError, match=r"found 2 samples .* protocol has 654"):
        DATASETS["nyu"](tmp_path)


def test_nyu_units_and_eigen_crop(tmp_path):
    gts = benchmark_files.make_nyu(tmp_path)
    ds = DATASETS["nyu"](tmp_path, allow_partial=True)
    assert len(ds) == 3 and ds.partial
    s = ds[0]
    np.testing.assert_allclose(s.depth, gts[s.sample_id], rtol=1e-6)
    rows, cols = np.nonzero(s.valid)
    assert (rows.min(), rows.max(), cols.min(), cols.max()) == (45, 470, 41, 600)
    assert s.rgb.shape == (480, 640, 3)


def test_kitti_png_reads_back_in_metres_and_is_cropped(tmp_path):
    gts = benchmark_files.make_kitti(tmp_path)
    ds = DATASETS["kitti"](tmp_path, allow_partial=True)
    assert len(ds) == 2  # the frame without GT is not in the split
    s = ds[1]
    assert s.rgb.shape == (352, 1216, 3) and s.depth.shape == (352, 1216)
    top, left = 375 - 352, (1242 - 1216) // 2
    np.testing.assert_allclose(s.depth, gts[s.sample_id][top:, left : left + 1216], rtol=1e-6)
    # A stored value of 256 * d reads back as d metres.
    raw = np.asarray(Image.open(tmp_path / ds.entries[1][1]))
    assert s.depth[100, 500] == pytest.approx(raw[top + 100, left + 500] / 256.0)
    rows, cols = np.nonzero(s.valid)
    assert rows.min() >= int(0.3324324 * 352) and rows.max() < int(0.91351351 * 352)
    assert cols.min() >= int(0.0359477 * 1216) and cols.max() < int(0.96405229 * 1216)
    assert not s.valid[s.depth == 0].any()


def test_eth3d_raw_float_with_inf_invalid(tmp_path):
    gts = benchmark_files.make_eth3d(tmp_path)
    ds = DATASETS["eth3d"](tmp_path, allow_partial=True)
    s = ds[0]
    assert not s.valid[:5].any() and s.valid[5:].all()
    np.testing.assert_allclose(s.depth[5:], gts[s.sample_id][5:])


def test_eth3d_wrong_size_names_the_file(tmp_path):
    benchmark_files.make_eth3d(tmp_path, n=1)
    ds = DATASETS["eth3d"](tmp_path, allow_partial=True)
    path = tmp_path / ds.entries[0][1]
    path.write_bytes(path.read_bytes()[:-4])
    with pytest.raises(DatasetError, match=f"{path}.*5399 float32 values.*60x90"):
        ds[0]


def test_scannet_units(tmp_path):
    gts = benchmark_files.make_scannet(tmp_path)
    ds = DATASETS["scannet"](tmp_path, allow_partial=True)
    s = ds[1]
    np.testing.assert_allclose(s.depth, gts[s.sample_id], rtol=1e-6)
    assert s.valid.all()


def test_diode_mask_and_categories(tmp_path):
    gts = benchmark_files.make_diode(tmp_path)
    ds = DATASETS["diode"](tmp_path, allow_partial=True)
    assert [ds.category(e) for e in ds.entries] == ["indoors", "outdoor", "outdoor"]
    s = ds[1]
    assert not s.valid[:, :4].any()
    assert s.valid[:, 4:].all()  # the mask alone decides (Marigold's DIODE class): no depth range
    np.testing.assert_allclose(s.depth[:, 4:], gts[s.sample_id][:, 4:])


def test_corrupt_png_names_the_file(tmp_path):
    benchmark_files.make_scannet(tmp_path, n=1)
    ds = DATASETS["scannet"](tmp_path, allow_partial=True)
    (tmp_path / ds.entries[0][1]).write_bytes(b"not a png")
    with pytest.raises(DatasetError, match=ds.entries[0][1]):
        ds[0]


def test_split_file_in_marigold_format(tmp_path):
    benchmark_files.make_scannet(tmp_path, n=2)
    ds = DATASETS["scannet"](tmp_path, allow_partial=True)
    split = tmp_path / "list.txt"
    split.write_text(" ".join(ds.entries[1]) + "\n")
    assert DATASETS["scannet"](tmp_path, split_file=split, allow_partial=True).entries == [ds.entries[1]]
    split.write_text("scene9/color/1.jpg scene9/depth/1.png\n")
    with pytest.raises(DatasetError, match="list.txt:1: image .*scene9/color/1.jpg does not exist"):
        DATASETS["scannet"](tmp_path, split_file=split, allow_partial=True)


def test_quaternion_matches_camera_convention():
    r = quaternion_to_matrix(benchmark_files.EGO_TO_CAMERA_QUATERNION)
    np.testing.assert_allclose(r, [[0, 0, 1], [-1, 0, 0], [0, -1, 0]], atol=1e-12)


def test_nuscenes_projection_categories_and_counts(tmp_path):
    expected = benchmark_files.make_nuscenes(tmp_path / "nusc", {"scene-0001": 3, "scene-0002": 2, "scene-0003": 1})
    scene_list = benchmark_files.write_scene_list(
        tmp_path / "scenes.json", {"Night": ["scene-0002"], "Day Rain": ["scene-0001"]}
    )
    ds = DATASETS["nuscenes_c"](tmp_path / "nusc", scene_list=scene_list, allow_partial=True)
    assert len(ds) == 5  # key frames of the listed scenes only; sweeps and other cameras ignored
    assert sorted(ds[i].category for i in range(len(ds))) == ["Day Rain"] * 3 + ["Night"] * 2
    s = ds[0]
    hits = expected[s.sample_id]
    for row, col, z in hits:
        assert s.depth[row, col] == pytest.approx(z, rel=1e-5)  # ego motion between lidar and camera compensated
    assert s.valid.sum() == 4  # 3 known points + 1 more; the hidden, behind-camera and too-close ones dropped


def test_packaged_scene_list_is_the_papers_table_5(reference_dir):
    """The packaged scene list is the paper's supplementary Table 5 (tests/reference, checksummed)."""
    packaged_file = resources.files("primedepth.evaluation").joinpath("configs", "nuscenes_c_scenes.json")
    packaged = json.loads(packaged_file.read_text())
    assert packaged == json.loads((reference_dir / "paper_nuscenes_c_scenes.json").read_text())
    assert "supplementary Table 5" in packaged["source"]


def test_packaged_scene_list_is_consistent_with_the_protocol():
    scenes = load_scene_list()
    config = DatasetConfig.load("nuscenes_c")
    assert len(scenes.categories) == 87 and len(set(scenes.categories)) == 87
    assert tuple(scenes.expected_images) == config.categories
    assert sum(scenes.expected_images.values()) == config.expected_count == 3489
    assert scenes.expected_images == {
        "Day Cloudy": 795,
        "Day Sunny": 722,
        "Day Rain": 323,
        "Night": 765,
        "Night Dark": 321,
        "Night Rain": 563,
    }
    assert scenes.categories["scene-0062"] == "Day Cloudy" and scenes.categories["scene-1110"] == "Night Rain"


def test_nuscenes_uses_the_packaged_list_and_skips_absent_scenes_when_partial(tmp_path):
    benchmark_files.make_nuscenes(tmp_path, {"scene-0062": 2, "scene-1077": 1, "scene-0001": 1})
    ds = DATASETS["nuscenes_c"](tmp_path, allow_partial=True)
    assert [ds[i].category for i in range(len(ds))] == ["Day Cloudy", "Day Cloudy", "Night"]  # scene-0001 is not listed
    assert len(ds.missing_scenes) == 85
    with pytest.raises(
        DatasetError, match=r"lacks scenes of the list packaged nuscenes_c_scenes.json: scene-0039, scene-0041"
    ):
        DATASETS["nuscenes_c"](tmp_path)


def test_nuscenes_frame_counts_are_checked_per_category(tmp_path):
    benchmark_files.make_nuscenes(tmp_path / "nusc", {"scene-0062": 2, "scene-1077": 3})
    good = benchmark_files.write_packaged_style_scene_list(
        tmp_path / "good.json", [("Day Cloudy", ["scene-0062"], 2), ("Night", ["scene-1077"], 3)]
    )
    ds = DATASETS["nuscenes_c"](tmp_path / "nusc", scene_list=good)  # complete: no --allow-partial needed
    assert len(ds) == 5 and not ds.partial and ds.config.expected_count == 5
    bad = benchmark_files.write_packaged_style_scene_list(
        tmp_path / "bad.json", [("Day Cloudy", ["scene-0062"], 2), ("Night", ["scene-1077"], 4)]
    )
    with pytest.raises(DatasetError, match=r"per category differ .*bad.json: Night 3 \(expected 4\)"):
        DATASETS["nuscenes_c"](tmp_path / "nusc", scene_list=bad)
    assert len(DATASETS["nuscenes_c"](tmp_path / "nusc", scene_list=bad, allow_partial=True)) == 5


def test_scene_in_two_categories_is_an_error(tmp_path):
    path = benchmark_files.write_scene_list(tmp_path / "s.json", {"Night": ["scene-1077"], "Day Rain": ["scene-1077"]})
    with pytest.raises(DatasetError, match="scene-1077 is listed under both Night and Day Rain"):
        load_scene_list(path)


def test_rabbitai_pairs_images_with_ground_truth_by_name(tmp_path):
    gts = benchmark_files.make_rabbitai(tmp_path)
    ds = DATASETS["rabbitai"](tmp_path, allow_partial=True)
    assert [e[0] for e in ds.entries] == sorted(gts)
    assert ds.entries[0][1] == "train/alley/proj_depth/groundtruth/image_01/0000.png"
    assert ds.images_without_gt == ["train/alley/image_01/9999.png", "train/garden/image_01/9999.png"]
    s = ds[3]
    np.testing.assert_allclose(s.depth, gts[s.sample_id], rtol=1e-6)  # value / 256 = metres
    assert not s.valid[:3, :5].any() and s.valid[3:].all()
    with pytest.raises(DatasetError, match=r"found 4 samples .* protocol has 60"):
        DATASETS["rabbitai"](tmp_path)


def test_rabbitai_layout_mismatch_says_what_was_expected(tmp_path):
    benchmark_files.make_rabbitai(tmp_path, scenes=("alley",), per_scene=1)
    gt = tmp_path / "train/alley/proj_depth/groundtruth/image_01/0000.png"
    gt.rename(gt.with_name("0000_depth.png"))
    with pytest.raises(DatasetError) as err:
        DATASETS["rabbitai"](tmp_path, allow_partial=True)
    message = str(err.value)
    assert "no image/ground-truth pair" in message and "proj_depth/groundtruth/image_0X/<name>.png" in message
    assert "2 image(s) in image_* folders (e.g. train/alley/image_01/0000.png)" in message
    assert "1 PNG(s) under proj_depth/ (e.g. train/alley/proj_depth/groundtruth/image_01/0000_depth.png)" in message


def test_nuscenes_custom_list_missing_scene_is_named(tmp_path):
    benchmark_files.make_nuscenes(tmp_path / "nusc", {"scene-0001": 1})
    scene_list = benchmark_files.write_scene_list(tmp_path / "s.json", {"Night": ["scene-0001", "scene-0999"]})
    with pytest.raises(DatasetError, match="s.json: scene-0999"):
        DATASETS["nuscenes_c"](tmp_path / "nusc", scene_list=scene_list)
