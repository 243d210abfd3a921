"""nuScenes-C: the PrimeDepth paper's 87 nuScenes scenes in 6 condition categories, front-camera key frames with
the key frame's LiDAR sweep projected into the image as sparse GT (3,489 frames).

Reads the nuScenes devkit layout (``<version>/{scene,sample,sample_data,sensor,calibrated_sensor,ego_pose}.json``,
``samples/CAM_FRONT/*.jpg``, ``samples/LIDAR_TOP/*.pcd.bin``) with plain numpy, projecting as the devkit's
``map_pointcloud_to_image`` does: lidar -> ego(lidar time) -> global -> ego(camera time) -> camera, points at least
1 m in front of the camera, nearest point per pixel.

The scene -> category list is the paper's supplementary Table 5, shipped as ``configs/nuscenes_c_scenes.json`` with
the number of scenes and images of each category; a full dataset is checked against those counts per category.
Another list can be given (``scene_list=``, ``--scene-list``)."""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

import numpy as np

from .base import DatasetError, DepthDataset

CAMERA, LIDAR = "CAM_FRONT", "LIDAR_TOP"
MIN_POINT_DISTANCE = 1.0  # metres in front of the camera, as the devkit


def quaternion_to_matrix(q) -> np.ndarray:
    """Rotation matrix of a unit quaternion given as nuScenes stores it, ``(w, x, y, z)``."""
    w, x, y, z = np.asarray(q, dtype=np.float64) / np.linalg.norm(q)
    return np.array(
        [
            [1 - 2 * (y * y + z * z), 2 * (x * y - z * w), 2 * (x * z + y * w)],
            [2 * (x * y + z * w), 1 - 2 * (x * x + z * z), 2 * (y * z - x * w)],
            [2 * (x * z - y * w), 2 * (y * z + x * w), 1 - 2 * (x * x + y * y)],
        ]
    )


def project_lidar(points, lidar_cs, lidar_pose, cam_pose, cam_cs, shape) -> np.ndarray:
    """Sparse depth map (metres, 0 = no point) of lidar ``points`` (Nx3, lidar frame) in the camera image."""
    p = points @ quaternion_to_matrix(lidar_cs["rotation"]).T + lidar_cs["translation"]
    p = p @ quaternion_to_matrix(lidar_pose["rotation"]).T + lidar_pose["translation"]
    p = (p - cam_pose["translation"]) @ quaternion_to_matrix(cam_pose["rotation"])
    p = (p - cam_cs["translation"]) @ quaternion_to_matrix(cam_cs["rotation"])
    z = p[:, 2]
    front = z > MIN_POINT_DISTANCE
    uvw = p[front] @ np.asarray(cam_cs["camera_intrinsic"], dtype=np.float64).T
    u, v, z = uvw[:, 0] / uvw[:, 2], uvw[:, 1] / uvw[:, 2], z[front]
    h, w = shape
    inside = (u > 1) & (u < w - 1) & (v > 1) & (v < h - 1)
    cols, rows, z = np.floor(u[inside]).astype(int), np.floor(v[inside]).astype(int), z[inside]
    depth = np.full(shape, np.inf)
    np.minimum.at(depth, (rows, cols), z)
    depth[np.isinf(depth)] = 0.0
    return depth.astype(np.float32)


class NuScenesCDataset(DepthDataset):
    """With ``allow_partial``, scenes of the list that the database lacks are skipped (``missing_scenes``), e.g. on
    nuScenes-mini; otherwise each is an error, and so is a category whose frame count differs from the list's."""

    config_name = "nuscenes_c"

    def __init__(self, root, split_file=None, allow_partial=False, scene_list=None, version="v1.0-trainval"):
        self.version, self.allow_partial = version, allow_partial
        self.scene_list = load_scene_list(scene_list)
        self.scene_categories = self.scene_list.categories
        self.missing_scenes: list[str] = []
        super().__init__(root, split_file, allow_partial)

    def _table(self, name):
        path = self.root / self.version / f"{name}.json"
        if not path.is_file():
            raise DatasetError(f"{path}: nuScenes table does not exist (expected the devkit layout)")
        try:
            return {row["token"]: row for row in json.loads(path.read_text())}
        except (ValueError, KeyError, TypeError) as exc:
            raise DatasetError(f"{path}: not a nuScenes table ({exc})") from exc

    def discover(self):
        scenes = {row["name"]: row for row in self._table("scene").values()}
        self.missing_scenes = sorted(set(self.scene_categories) - set(scenes))
        if self.missing_scenes and not self.allow_partial:
            raise DatasetError(
                f"{self.root / self.version}/scene.json lacks scenes of the list "
                f"{self.scene_list.source}: "
                f"{_first(self.missing_scenes)} (--allow-partial skips them)"
            )
        samples, sample_data = self._table("sample"), self._table("sample_data")
        self.calibrated, self.poses = self._table("calibrated_sensor"), self._table("ego_pose")
        channel = {token: row["channel"] for token, row in self._table("sensor").items()}
        keyframes = {}  # (sample token, channel) -> sample_data row
        for row in sample_data.values():
            ch = channel[self.calibrated[row["calibrated_sensor_token"]]["sensor_token"]]
            if row["is_key_frame"] and ch in (CAMERA, LIDAR):
                keyframes[(row["sample_token"], ch)] = row
        self.records = {}
        entries = []
        for name in sorted(set(self.scene_categories) - set(self.missing_scenes)):
            token = scenes[name]["first_sample_token"]
            while token:
                cam, lidar = keyframes.get((token, CAMERA)), keyframes.get((token, LIDAR))
                if cam is None or lidar is None:
                    raise DatasetError(
                        f"{self.root / self.version}: sample {token} of {name} lacks {CAMERA} or {LIDAR}"
                    )
                self.records[cam["filename"]] = (cam, lidar, name)
                entries.append((cam["filename"], lidar["filename"]))
                token = samples[token]["next"]
        if self.scene_list.expected_images:  # the list's own frame count is the protocol's
            self.config = dataclasses.replace(self.config, expected_count=sum(self.scene_list.expected_images.values()))
        if not self.allow_partial:
            frames = [self.scene_categories[self.records[e[0]][2]] for e in entries]
            check_category_counts(frames, self.scene_list, self.root / self.version)
        return entries

    def read_depth(self, entry, rgb_shape):
        cam, lidar, _ = self.records[entry[0]]
        path = self.root / entry[1]
        if not path.is_file():
            raise DatasetError(f"{path}: lidar sweep does not exist")
        raw = np.fromfile(path, dtype="<f4")
        if raw.size % 5:
            raise DatasetError(f"{path}: {raw.size} float32 values is not a whole number of (x,y,z,i,ring) points")
        depth = project_lidar(
            raw.reshape(-1, 5)[:, :3].astype(np.float64),
            self.calibrated[lidar["calibrated_sensor_token"]],
            self.poses[lidar["ego_pose_token"]],
            self.poses[cam["ego_pose_token"]],
            self.calibrated[cam["calibrated_sensor_token"]],
            rgb_shape,
        )
        return depth, depth > 0

    def category(self, entry):
        return self.scene_categories[self.records[entry[0]][2]]


def _first(names: list[str], count: int = 8) -> str:
    more = f", ... ({len(names)} in all)" if len(names) > count else ""
    return ", ".join(names[:count]) + more


@dataclass(frozen=True)
class SceneList:
    """A nuScenes-C scene list: ``{scene name: category}``, the frames each category should have (empty when the list
    does not say) and where the list came from."""

    categories: dict[str, str]
    expected_images: dict[str, int]
    source: str


PACKAGED_SCENE_LIST = "nuscenes_c_scenes.json"


def load_scene_list(path=None) -> SceneList:
    """The packaged list (the paper's Table 5) when ``path`` is None, else a JSON file in the same format
    (``{"categories": [{"category", "scenes", "num_images"}, ...]}``) or the short one
    ``{"categories": {category: [scene names]}}``."""
    source = Path(path) if path else resources.files("primedepth.evaluation").joinpath("configs", PACKAGED_SCENE_LIST)
    try:
        raw = json.loads(source.read_text())["categories"]
        if isinstance(raw, dict):
            groups = [(category, list(scenes), None) for category, scenes in raw.items()]
        else:
            groups = [(g["category"], list(g["scenes"]), g.get("num_images")) for g in raw]
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise DatasetError(f"{source}: not a nuScenes-C scene list ({exc})") from exc
    mapping = {}
    for category, scenes, _ in groups:
        for scene in scenes:
            if mapping.setdefault(scene, category) != category:
                raise DatasetError(f"{source}: {scene} is listed under both {mapping[scene]} and {category}")
    if not mapping:
        raise DatasetError(f"{source}: no scenes listed")
    expected = {category: int(n) for category, _, n in groups if n is not None}
    return SceneList(mapping, expected, str(path) if path else f"packaged {PACKAGED_SCENE_LIST}")


def check_category_counts(frame_categories: list[str], scene_list: SceneList, where) -> None:
    """Raises naming every category whose number of frames (one category per frame) differs from the list's."""
    found = {c: frame_categories.count(c) for c in scene_list.expected_images}
    wrong = [f"{c} {found[c]} (expected {n})" for c, n in scene_list.expected_images.items() if found[c] != n]
    if wrong:
        raise DatasetError(
            f"{where}: CAM_FRONT key frames per category differ from the scene list "
            f"{scene_list.source}: {'; '.join(wrong)} (--allow-partial evaluates them anyway)"
        )
