"""Loaders on small fixtures written here in the datasets' real file formats."""

import json

import numpy as np
import pytest
import torch
from PIL import Image

from primedepth.data.common import DataError, RawSample, prepare_sample
from primedepth.data.mixing import Mixture, StepSampler, build_mixture
from primedepth.data.vkitti import VKITTI2Dataset, kb_crop


# ---------------------------------------------------------------------------------------------------- Hypersim
def _write_h5(path, array):
    h5py = pytest.importorskip("h5py")
    path.parent.mkdir(parents=True, exist_ok=True)
    with h5py.File(path, "w") as fh:
        fh.create_dataset("dataset", data=array)


@pytest.fixture
def hypersim_root(tmp_path):
    pytest.importorskip("h5py")
    h, w = 24, 32
    rng = np.random.default_rng(0)
    for scene, frames in (("ai_001_001", (0, 1)), ("ai_002_001", (0,))):
        for f in frames:
            img = tmp_path / scene / "images"
            geo = img / "scene_cam_00_geometry_hdf5"
            _write_h5(
                img / "scene_cam_00_final_hdf5" / f"frame.{f:04d}.color.hdf5",
                (rng.random((h, w, 3)) * 3).astype(np.float16),
            )
            dist = np.full((h, w), 4.0, np.float16)
            dist[0, 0] = np.nan
            _write_h5(geo / f"frame.{f:04d}.depth_meters.hdf5", dist)
            sem = np.full((h, w), 1, np.int16)
            sem[:, : w // 2] = 2
            sem[0, :] = -1
            _write_h5(geo / f"frame.{f:04d}.semantic.hdf5", sem)
            ent = np.zeros((h, w), np.int32)
            ent[-1, -1] = -1
            _write_h5(geo / f"frame.{f:04d}.render_entity_id.hdf5", ent)
    (tmp_path / "metadata_images_split_scene_v1.csv").write_text(
        "scene_name,camera_name,frame_id,included_in_public_release,exclude_reason,split_partition_name\n"
        "ai_001_001,cam_00,0,True,,train\nai_001_001,cam_00,1,True,,train\n"
        "ai_002_001,cam_00,0,True,,val\nai_001_001,cam_01,5,False,missing,train\n"
    )
    return tmp_path


def test_hypersim_planar_depth_tone_mapping_labels_and_split(hypersim_root):
    from primedepth.data.hypersim import DEFAULT_FOCAL_1024, HypersimDataset

    train = HypersimDataset(str(hypersim_root), split="train")
    assert len(train) == 2 and train.key(1) == "ai_001_001/cam_00/0001"
    assert len(HypersimDataset(str(hypersim_root), split="val")) == 1
    s = train[0]
    h, w = 24, 32
    assert s.image.shape == (h, w, 3) and s.image.dtype == np.uint8
    # ray distance 4 m -> planar depth 4 * f / sqrt(f^2 + x^2 + y^2) with f scaled to the width
    f = DEFAULT_FOCAL_1024 * w / 1024
    y, x = 5, 7
    px, py = x + 0.5 - w / 2, y + 0.5 - h / 2
    assert s.depth[y, x] == pytest.approx(4 * f / np.sqrt(f * f + px * px + py * py), rel=1e-5)
    assert s.depth[y, x] < 4.0 and s.depth.max() < 4.0
    assert not s.valid[0, 0] and not s.valid[-1, -1] and s.valid[5, 5]  # NaN distance, no entity
    # NYU40 wall (1) -> ADE wall (0), floor (2) -> ADE floor (3), -1 -> unlabelled
    assert s.labels[5, 0] == 3 and s.labels[5, -2] == 0 and s.labels[0, 3] == 255
    # tone mapping: 90th percentile brightness -> 0.8 after gamma
    assert 150 < np.percentile(s.image.mean(2), 90) < 255


def test_hypersim_camera_csv_and_marigold_file_list(hypersim_root, tmp_path):
    from primedepth.data.hypersim import HypersimDataset

    cols = ",".join(f"M_cam_from_uv_{i}{j}" for i in range(3) for j in range(3))
    (hypersim_root / "metadata_camera_parameters.csv").write_text(
        f"scene_name,{cols}\nai_001_001,0.5,0,0,0,0.375,0,0,0,-1\n"
    )
    listing = tmp_path / "filename_list_train.txt"
    listing.write_text("train/ai_001_001/rgb_cam_00_fr0001.png train/ai_001_001/depth_plane_cam_00_fr0001.png\n")
    ds = HypersimDataset(str(hypersim_root), file_list=str(listing))
    assert len(ds) == 1 and ds.key(0) == "ai_001_001/cam_00/0001"
    s = ds[0]
    # centre-most pixel: u = 1/32, v = 1/24 (grid is symmetric) -> ray (0.5/32, 0.375/24, -1)
    u, v = 1 / 32, 1 / 24
    ray = np.array([0.5 * u, 0.375 * v, -1.0])
    assert s.depth[11, 16] == pytest.approx(4 / np.linalg.norm(ray), rel=1e-5)
    bad = tmp_path / "bad.txt"
    bad.write_text("hello\n")
    with pytest.raises(DataError, match="bad.txt:1"):
        HypersimDataset(str(hypersim_root), file_list=str(bad))


def test_hypersim_errors_name_the_file(hypersim_root, tmp_path):
    from primedepth.data.hypersim import HypersimDataset

    ds = HypersimDataset(str(hypersim_root), split="train")
    broken = ds.paths(0)["depth"]
    broken.write_bytes(b"not hdf5")
    with pytest.raises(DataError, match="depth_meters.hdf5"):
        ds[0]
    caps = tmp_path / "caps.json"
    caps.write_text(json.dumps({"ai_001_001/cam_00/0000": "a room"}))
    with pytest.raises(DataError, match="no caption for 1 of 2"):
        HypersimDataset(str(hypersim_root), split="train", captions=str(caps))
    with pytest.raises(DataError, match="not found"):
        HypersimDataset(str(tmp_path / "nowhere"))


# ------------------------------------------------------------------------------------------------ Virtual KITTI 2
@pytest.fixture
def vkitti_root(tmp_path):
    h, w = 375, 1242
    frames = tmp_path / "Scene01" / "clone" / "frames"
    for sub in ("rgb", "depth", "classSegmentation"):
        (frames / sub / "Camera_0").mkdir(parents=True)
    rgb = np.zeros((h, w, 3), np.uint8)
    rgb[:, :, 0] = np.arange(w) % 256
    Image.fromarray(rgb).save(frames / "rgb" / "Camera_0" / "rgb_00000.jpg", quality=95)
    depth = np.full((h, w), 1234, np.uint16)  # 12.34 m
    depth[-1, :] = 65535  # sky
    depth[-2, :] = 9000  # 90 m: beyond 80 m
    Image.fromarray(depth).save(frames / "depth" / "Camera_0" / "depth_00000.png")
    seg = np.zeros((h, w, 3), np.uint8)
    seg[:] = (100, 60, 100)  # road
    seg[:, :100] = (255, 127, 80)  # car
    Image.fromarray(seg).save(frames / "classSegmentation" / "Camera_0" / "classgt_00000.png")
    return tmp_path


def test_vkitti2_depth_in_centimetres_kitti_crop_and_classes(vkitti_root):
    ds = VKITTI2Dataset(str(vkitti_root))
    assert len(ds) == 1 and ds.key(0) == "Scene01/clone/frames/rgb/Camera_0/rgb_00000.jpg"
    s = ds[0]
    assert s.image.shape == (352, 1216, 3) and s.depth.shape == (352, 1216)
    assert s.depth[0, 0] == pytest.approx(12.34)
    assert not s.valid[-1].any() and not s.valid[-2].any() and s.valid[:-2].all()
    # crop: bottom 352 rows, columns 13..1228; column 0 of the crop is column 13 of the image
    assert abs(int(s.image[0, 0, 0]) - 13) <= 3
    assert s.labels[0, 0] == 20 and s.labels[0, 200] == 6  # car, road (ADE20K)
    np.testing.assert_array_equal(kb_crop(np.zeros((375, 1242))).shape, (352, 1216))


def test_vkitti2_wrong_depth_format_is_named(vkitti_root):
    p = vkitti_root / "Scene01/clone/frames/depth/Camera_0/depth_00000.png"
    Image.fromarray(np.zeros((375, 1242, 3), np.uint8)).save(p)
    with pytest.raises(DataError, match="depth_00000.png.*16-bit"):
        VKITTI2Dataset(str(vkitti_root))[0]


# --------------------------------------------------------------------------------------------- pseudo-labelled
def test_pseudo_labelled_folder_round_trip(tmp_path):
    from primedepth.data.pseudo import PseudoLabelledFolder, write_outputs

    images, out = tmp_path / "images", tmp_path / "out"
    (images / "sub").mkdir(parents=True)
    Image.fromarray(np.full((20, 30, 3), 77, np.uint8)).save(images / "sub" / "a.png")
    depth = np.linspace(0, 1, 600).reshape(20, 30)
    seg = np.full((20, 30), 3, np.uint8)
    fields = write_outputs(out, "sub/a.png", depth, seg)
    (out / "info.json").write_text(json.dumps({"images_root": str(images)}))
    entry = {"key": "sub/a.png", "image": "sub/a.png", "caption": "a grey wall", **fields}
    (out / "manifest.rank00000.jsonl").write_text(json.dumps(entry) + '\n{"key": "torn')  # torn last line
    ds = PseudoLabelledFolder(str(out))
    assert len(ds) == 1
    s = ds[0]
    assert s.depth_kind == "inverse" and s.caption == "a grey wall"
    np.testing.assert_allclose(s.depth, depth.astype(np.float16).astype(np.float32))
    assert (s.labels == 3).all()
    sample = prepare_sample(s, (16, 16), None)
    assert sample["target"].shape == (16, 16) and sample["depth"].abs().sum() == 0


def test_pseudo_label_command_without_weights_fails_clearly(tmp_path):
    from click.testing import CliRunner

    from primedepth.cli.pseudo_label_cmd import command

    images = tmp_path / "images"
    images.mkdir()
    Image.fromarray(np.zeros((8, 8, 3), np.uint8)).save(images / "x.png")
    result = CliRunner().invoke(
        command,
        [str(images), str(tmp_path / "out"), "--local-files-only", "--depth-model", str(tmp_path / "no-such-model")],
    )
    assert result.exit_code != 0
    assert "depth model" in result.output and "no-such-model" in result.output and "download" in result.output


# ------------------------------------------------------------------------------------------ transforms + mixing
def test_prepare_sample_inverse_depth_masking_and_flip():
    depth = np.array([[1.0, 2.0], [4.0, 0.0]], np.float32)
    raw = RawSample(np.zeros((2, 2, 3), np.uint8), depth, np.array([[True, True], [True, False]]), None, "c")
    s = prepare_sample(raw, (2, 2), None)
    np.testing.assert_allclose(s["target"].numpy(), [[1.0, 0.5], [0.25, 0.0]])
    assert s["valid"].tolist() == [[True, True], [True, False]] and (s["labels"] == 255).all()

    class FlipAlways:
        def integers(self, n):
            return 0

        def random(self):
            return 0.0

    flipped = prepare_sample(raw, (2, 2), FlipAlways(), hflip=True)
    np.testing.assert_allclose(flipped["target"].numpy(), [[0.5, 1.0], [0.0, 0.25]])


def test_mixture_is_deterministic_and_respects_weights():
    class Const:
        def __init__(self, value):
            self.value = value

        def __len__(self):
            return 5

        def __getitem__(self, i):
            return RawSample(
                np.zeros((16, 16, 3), np.uint8),
                np.full((16, 16), self.value, np.float32),
                np.ones((16, 16), bool),
                None,
                str(self.value),
            )

    mix = Mixture([Const(1.0), Const(2.0)], [9, 1], (8, 8), seed=3, train=True, hflip=True)
    picks = [mix.locate(i)[0] for i in range(2000)]
    assert 0.87 < picks.count(0) / 2000 < 0.93
    a, b = mix[17], mix[17]
    assert torch.equal(a["image"], b["image"]) and a["caption"] == b["caption"]


def test_step_sampler_covers_each_global_batch_exactly_once():
    seen = []
    for rank in range(2):
        seen += list(StepSampler(8, 2, 2, rank, start_step=3, max_steps=5))
    assert sorted(seen) == list(range(24, 40))
    with pytest.raises(ValueError, match="not divisible"):
        StepSampler(6, 4, 1, 0, 0, 1)


def test_scene_mixture_from_specs():
    mix = build_mixture([{"kind": "scenes", "length": 4}], (32, 32), seed=0, train=False, hflip=False)
    assert len(mix) == 4
    s = mix[2]
    assert s["image"].shape == (3, 32, 32) and s["valid"].any() and s["caption"]
    assert (s["depth"][s["valid"]] > 0).all()
