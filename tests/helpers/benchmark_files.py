"""Tiny datasets written in each benchmark's real on-disk layout, with known ground truth."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
from PIL import Image


def _rgb(path: Path, h: int, w: int, seed: int, fmt: str | None = None) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    Image.fromarray(rng.integers(0, 255, (h, w, 3), dtype=np.uint8)).save(path, format=fmt)


def _png16(path: Path, values: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(values.astype(np.uint16)).save(path)


def smooth_depth(h, w, lo, hi, seed):
    """A positive, smooth, non-planar depth field (so that affine fits are exact only for the right model)."""
    y, x = np.mgrid[0:h, 0:w] / max(h, w)
    phase = seed * 0.7
    return (lo + (hi - lo) * (0.5 + 0.4 * np.sin(3 * x + phase) * np.cos(2 * y))).astype(np.float64)


def make_nyu(root: Path, n: int = 3) -> dict:
    gts = {}
    for i in range(n):
        scene = f"test/{'bathroom' if i % 2 else 'kitchen'}"
        _rgb(root / scene / f"rgb_{i:04d}.png", 480, 640, i)
        depth_mm = np.round(smooth_depth(480, 640, 500, 9000, i))
        depth_mm[0, 0] = 0  # missing depth
        _png16(root / scene / f"depth_{i:04d}.png", depth_mm)
        _png16(root / scene / f"filled_{i:04d}.png", np.maximum(depth_mm, 1))
        gts[f"{scene}/rgb_{i:04d}.png"] = depth_mm / 1000.0
    return gts


def make_kitti(root: Path, n: int = 2, h: int = 375, w: int = 1242) -> dict:
    gts = {}
    for i in range(n + 1):
        drive = "2011_09_26_drive_0002_sync"
        rel = f"2011_09_26/{drive}/image_02/data/{i:010d}.png"
        _rgb(root / rel, h, w, i)
        if i == n:
            continue  # an Eigen test frame without projected GT is not part of the split
        gt = np.zeros((h, w))
        rows = slice(h // 3, h)
        gt[rows] = np.round(smooth_depth(h, w, 3, 70, i)[rows] * 256)  # sparse-ish: no GT in the sky
        gt[::2, ::3] = 0
        _png16(root / drive / "proj_depth/groundtruth/image_02" / f"{i:010d}.png", gt)
        gts[rel] = gt / 256.0
    return gts


def make_eth3d(root: Path, n: int = 2, h: int = 60, w: int = 90) -> dict:
    gts = {}
    for i in range(n):
        scene = "courtyard"
        rel = f"rgb/{scene}/images/dslr_images/DSC_{i:04d}.JPG"
        _rgb(root / rel, h, w, i, fmt="JPEG")
        depth = smooth_depth(h, w, 1, 40, i).astype(np.float32)
        depth[:5] = np.inf
        path = root / f"depth/{scene}_dslr_depth/{scene}/ground_truth_depth/dslr_images/DSC_{i:04d}.JPG"
        path.parent.mkdir(parents=True, exist_ok=True)
        depth.astype("<f4").tofile(path)
        gts[rel] = depth
    return gts


def make_scannet(root: Path, n: int = 2, h: int = 48, w: int = 64) -> dict:
    gts = {}
    for i in range(n):
        rel = f"scene0{500 + i}_00/color/{i * 100:06d}.jpg"
        _rgb(root / rel, h, w, i, fmt="JPEG")
        depth_mm = np.round(smooth_depth(h, w, 400, 9500, i))
        _png16(root / f"scene0{500 + i}_00/depth/{i * 100:06d}.png", depth_mm)
        gts[rel] = depth_mm / 1000.0
    return gts


def make_diode(root: Path, h: int = 48, w: int = 64) -> dict:
    gts = {}
    for i, kind in enumerate(["indoors", "outdoor", "outdoor"]):
        stem = f"val/{kind}/scene_{i:05d}/scan_{i:05d}/{i:05d}_{i:05d}_{kind}_000_010"
        _rgb(root / (stem + ".png"), h, w, i)
        depth = smooth_depth(h, w, 1, 300 if kind == "outdoor" else 9, i).astype(np.float32)
        mask = np.ones((h, w), dtype=np.float32)
        mask[:, :4] = 0
        np.save(root / (stem + "_depth.npy"), depth[..., None])
        np.save(root / (stem + "_depth_mask.npy"), mask)
        gts[stem + ".png"] = np.where(mask > 0, depth, 0)
    return gts


# nuScenes: ego frame x forward, y left, z up; camera frame x right, y down, z forward.
EGO_TO_CAMERA_QUATERNION = [0.5, -0.5, 0.5, -0.5]  # (w, x, y, z) rotating camera axes into the ego frame
NUSC_H, NUSC_W, NUSC_F = 45, 80, 40.0


def make_nuscenes(root: Path, scenes: dict[str, int], cam_forward_shift: float = 1.0) -> dict:
    """A devkit-layout nuScenes with ``scenes`` {name: number of key frames}. The lidar sits at the ego origin, the
    camera 1.5 m up; at camera time the ego has moved ``cam_forward_shift`` m forward of where it was at lidar time.
    Returns {CAM_FRONT filename: list of (row, col, expected depth)} for a few projected points."""
    version = root / "v1.0-trainval"
    version.mkdir(parents=True)
    tables = {k: [] for k in ("scene", "sample", "sample_data", "sensor", "calibrated_sensor", "ego_pose", "log")}
    tables["sensor"] = [
        {"token": "s_cam", "channel": "CAM_FRONT", "modality": "camera"},
        {"token": "s_lid", "channel": "LIDAR_TOP", "modality": "lidar"},
        {"token": "s_back", "channel": "CAM_BACK", "modality": "camera"},
    ]
    intrinsic = [[NUSC_F, 0, NUSC_W / 2], [0, NUSC_F, NUSC_H / 2], [0, 0, 1]]
    tables["calibrated_sensor"] = [
        {
            "token": "cs_cam",
            "sensor_token": "s_cam",
            "translation": [0, 0, 1.5],
            "rotation": EGO_TO_CAMERA_QUATERNION,
            "camera_intrinsic": intrinsic,
        },
        {
            "token": "cs_lid",
            "sensor_token": "s_lid",
            "translation": [0, 0, 0],
            "rotation": [1, 0, 0, 0],
            "camera_intrinsic": [],
        },
        {
            "token": "cs_back",
            "sensor_token": "s_back",
            "translation": [0, 0, 1.5],
            "rotation": [1, 0, 0, 0],
            "camera_intrinsic": intrinsic,
        },
    ]
    expected = {}
    for name, frames in scenes.items():
        tokens = [f"{name}_smp{k}" for k in range(frames)]
        tables["scene"].append(
            {
                "token": f"{name}_tok",
                "name": name,
                "first_sample_token": tokens[0],
                "nbr_samples": frames,
                "description": "fixture",
                "log_token": "log",
            }
        )
        for k, tok in enumerate(tokens):
            x0 = 10.0 * k
            tables["sample"].append(
                {
                    "token": tok,
                    "scene_token": f"{name}_tok",
                    "timestamp": k,
                    "prev": tokens[k - 1] if k else "",
                    "next": tokens[k + 1] if k + 1 < frames else "",
                }
            )
            tables["ego_pose"] += [
                {"token": f"{tok}_ep_l", "translation": [x0, 5.0, 0], "rotation": [1, 0, 0, 0]},
                {"token": f"{tok}_ep_c", "translation": [x0 + cam_forward_shift, 5.0, 0], "rotation": [1, 0, 0, 0]},
            ]
            cam_file, lid_file = f"samples/CAM_FRONT/{tok}.jpg", f"samples/LIDAR_TOP/{tok}.pcd.bin"
            channels = (
                ("cam", "cs_cam", cam_file),
                ("lid", "cs_lid", lid_file),
                ("back", "cs_back", f"samples/CAM_BACK/{tok}.jpg"),
            )
            for ch, cs, fn in channels:
                tables["sample_data"].append(
                    {
                        "token": f"{tok}_{ch}",
                        "sample_token": tok,
                        "ego_pose_token": f"{tok}_ep_{'l' if ch == 'lid' else 'c'}",
                        "calibrated_sensor_token": cs,
                        "filename": fn,
                        "is_key_frame": True,
                        "fileformat": "jpg" if ch != "lid" else "pcd",
                        "timestamp": k,
                    }
                )
            # a sweep (non key frame) that must be ignored
            tables["sample_data"].append(
                {
                    "token": f"{tok}_sweep",
                    "sample_token": tok,
                    "ego_pose_token": f"{tok}_ep_c",
                    "calibrated_sensor_token": "cs_cam",
                    "filename": f"sweeps/CAM_FRONT/{tok}.jpg",
                    "is_key_frame": False,
                    "fileformat": "jpg",
                    "timestamp": k,
                }
            )
            _rgb(root / cam_file, NUSC_H, NUSC_W, k)
            # Points in the lidar frame (x forward, y left, z up): (forward, left, up).
            # The 4th point is on the ray of the 2nd, twice as far (hidden: nearest wins); the last two are behind the
            # camera or closer than 1 m and must be dropped.
            pts = [
                (11.0, 0.01, 1.5),
                (21.0, 2.01, 0.5),
                (6.0, -1.01, 1.0),
                (41.0, 4.02, -0.5),
                (31.0, 2.0, 0.5),
                (-5.0, 0, 0),
                (1.5, 0, 1.5),
            ]
            (root / lid_file).parent.mkdir(parents=True, exist_ok=True)
            np.array([[*p, 0.5, 3] for p in pts], dtype="<f4").tofile(root / lid_file)
            exp = []
            for fwd, left, up in pts[:3]:
                z = fwd - cam_forward_shift
                u, v = NUSC_F * (-left) / z + NUSC_W / 2, NUSC_F * (1.5 - up) / z + NUSC_H / 2
                exp.append((int(np.floor(v)), int(np.floor(u)), z))
            expected[cam_file] = exp
    for name, rows in tables.items():
        (version / f"{name}.json").write_text(json.dumps(rows))
    return expected


def write_scene_list(path: Path, categories: dict[str, list[str]]) -> Path:
    path.write_text(json.dumps({"categories": categories}))
    return path


def make_rabbitai(root: Path, scenes=("alley", "garden"), per_scene: int = 2, h: int = 40, w: int = 56) -> dict:
    """The RVC 2020 layout: ``train/<scene>/image_01/<name>.png`` with ``proj_depth/groundtruth/image_01/<name>.png``
    (uint16, metres x 256, 0 = invalid), intrinsics in ``camdata_left``; plus one image without ground truth."""
    gts = {}
    for s, scene in enumerate(scenes):
        base = root / "train" / scene
        for k in range(per_scene):
            name = f"{k:04d}"
            _rgb(base / "image_01" / f"{name}.png", h, w, 10 * s + k)
            gt = np.round(smooth_depth(h, w, 0.8, 60, 10 * s + k) * 256)
            gt[:3, :5] = 0  # invalid
            _png16(base / "proj_depth/groundtruth/image_01" / f"{name}.png", gt)
            (base / "camdata_left").mkdir(parents=True, exist_ok=True)
            (base / "camdata_left" / f"{name}.txt").write_text(f"{w} 0 {w / 2}\n0 {w} {h / 2}\n0 0 1\n")
            gts[f"train/{scene}/image_01/{name}.png"] = gt / 256.0
        _rgb(base / "image_01" / "9999.png", h, w, 99)  # no ground truth: not a sample
    return gts


def write_packaged_style_scene_list(path: Path, groups: list[tuple[str, list[str], int]]) -> Path:
    """A scene list in the packaged format, with the frame count of each category."""
    path.write_text(
        json.dumps(
            {
                "source": "test",
                "categories": [
                    {"category": c, "scenes": s, "num_scenes": len(s), "num_images": n} for c, s, n in groups
                ],
            }
        )
    )
    return path
