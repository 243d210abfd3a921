"""nuScenes-C: the PrimeDepth paper's 87 nuScenes scenes in 6 condition categories, front-camera key frames with
the key frame's LiDAR sweep projected into the image as sparse GT (3,489 frames).

Reads the nuScenes devkit layout (``<version>/{scene,sample,sample_data,sensor,calibrated_sensor,ego_pose}.json``,
``samples/CAM_FRONT/*.jpg``, ``samples/LIDAR_TOP/*.pcd.bin``) with plain numpy, projecting as the devkit's
``map_pointcloud_to_image`` does: lidar -> ego(lidar time) -> global -> ego(camera time) -> camera, points at least
1 m in front of the camera, nearest point per pixel.

The scene -> category list must come from the paper's Table 5. It could not be verified when this was written, so
the shipped ``nuscenes_c_scenes.json`` holds the six categories with empty scene lists and this loader refuses to
run until a list is given (``scene_list=``, ``--scene-list``)."""

from __future__ import annotations

import json
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
    config_name = "nuscenes_c"

    def __init__(self, root, split_file=None, allow_partial=False, scene_list=None, version="v1.0-trainval"):
        self.version = version
        self.scene_categories = load_scene_list(scene_list)
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
        missing = sorted(set(self.scene_categories) - set(scenes))
        if missing:
            raise DatasetError(f"{self.root / self.version}/scene.json lacks scenes of the list: {', '.join(missing)}")
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
        for name in sorted(self.scene_categories):
            token = scenes[name]["first_sample_token"]
            while token:
                cam, lidar = keyframes.get((token, CAMERA)), keyframes.get((token, LIDAR))
                if cam is None or lidar is None:
                    raise DatasetError(f"{self.root / self.version}: sample {token} of {name} lacks {CAMERA} or {LIDAR}")
                self.records[cam["filename"]] = (cam, lidar, name)
                entries.append((cam["filename"], lidar["filename"]))
                token = samples[token]["next"]
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


def load_scene_list(path=None) -> dict[str, str]:
    """``{scene name: category}`` from a JSON ``{"categories": {category: [scene names]}}``; the packaged one when
    ``path`` is None (which is empty until the paper's Table 5 list is verified)."""
    from importlib import resources

    source = Path(path) if path else resources.files("primedepth.evaluation").joinpath("configs", "nuscenes_c_scenes.json")
    try:
        raw = json.loads(source.read_text())["categories"]
    except (OSError, ValueError, KeyError) as exc:
        raise DatasetError(f"{source}: not a nuScenes-C scene list ({exc})") from exc
    mapping = {scene: category for category, scenes in raw.items() for scene in scenes}
    if not mapping:
        raise DatasetError(
            f"{source}: no scenes listed. The nuScenes-C scene list (PrimeDepth paper, Table 5) is not shipped "
            "because it could not be verified; pass a JSON {\"categories\": {category: [scene names]}} via --scene-list"
        )
    return mapping
