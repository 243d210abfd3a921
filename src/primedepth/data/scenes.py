"""A procedural scene generator: ray-cast rooms and yards with boxes, spheres and cylinders.

Every scene is a pure function of its seed and size. Per pixel it gives the rendered RGB (textured Lambertian
surfaces, one point light with hard shadows, ambient light), the exact planar depth (distance along the camera's
optical axis, ``inf`` for sky), the ADE20K-150 class index (255 = unlabelled) and a caption naming the objects.
Everything is vectorised numpy; a 256x256 scene renders in tens of milliseconds on one CPU core.

Camera convention: pinhole, x right, y down in the image; the world is y-up; the camera looks along its +z axis.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from ..constants import HELD_OUT_SEED, SEED_STRIDE

# ADE20K-150 class indices (0-based, as in the 150-class benchmark) used by the generator
ADE_WALL, ADE_SKY, ADE_FLOOR, ADE_CEILING = 0, 2, 3, 5
ADE_BOX, ADE_COLUMN, ADE_LIGHT, ADE_BALL = 41, 42, 82, 119
CLASS_NAMES = {
    ADE_WALL: "wall",
    ADE_SKY: "sky",
    ADE_FLOOR: "floor",
    ADE_CEILING: "ceiling",
    ADE_BOX: "box",
    ADE_COLUMN: "column",
    ADE_LIGHT: "light",
    ADE_BALL: "ball",
}
UNLABELLED = 255

# Linear-RGB albedos. The order is part of the seed -> scene mapping (colours are drawn by index).
# fmt: off
COLOURS = {
    "red": (0.80, 0.15, 0.12), "orange": (0.90, 0.50, 0.10), "yellow": (0.90, 0.80, 0.15), "green": (0.20, 0.65, 0.25),
    "teal": (0.10, 0.55, 0.55), "blue": (0.15, 0.30, 0.80), "purple": (0.50, 0.20, 0.65), "pink": (0.90, 0.50, 0.65),
    "white": (0.90, 0.90, 0.88), "grey": (0.50, 0.50, 0.52), "black": (0.10, 0.10, 0.11), "brown": (0.45, 0.28, 0.15),
    "beige": (0.85, 0.78, 0.62),
}
# fmt: on
TEXTURES = ("plain", "checkered", "striped", "speckled")


@dataclass
class SceneObject:
    kind: str  # box | sphere | cylinder
    label: int
    colour: str
    texture: str
    center: np.ndarray  # (3,) world position (for box/cylinder: centre of the bottom face)
    size: np.ndarray  # box: half extents (3,); sphere: (r,); cylinder: (r, height)
    angle: float = 0.0  # rotation about the vertical axis (boxes)

    def describe(self) -> str:
        noun = {"box": "box", "sphere": "sphere", "cylinder": "cylinder"}[self.kind]
        tex = "" if self.texture == "plain" else f"{self.texture} "
        words = f"{self.colour} {tex}{noun}"
        return ("an " if words[0] in "aeiou" else "a ") + words


@dataclass
class Scene:
    image: np.ndarray  # (H, W, 3) uint8
    depth: np.ndarray  # (H, W) float32, planar depth in metres, inf where nothing was hit (sky)
    labels: np.ndarray  # (H, W) uint8 ADE20K-150 indices, 255 = unlabelled
    caption: str
    intrinsics: np.ndarray  # (3, 3)
    objects: list[SceneObject] = field(default_factory=list)
    indoor: bool = True
    # (4, 4) camera to world (world y up; camera x right, y up, z forward; pixel (i, j) looks along
    # ((j + 0.5 - cx) / f, -(i + 0.5 - cy) / f, 1)): with ``depth`` it gives exact correspondences between frames
    pose: np.ndarray | None = None

    @property
    def valid(self) -> np.ndarray:
        return np.isfinite(self.depth)


def _value_noise(rng: np.random.Generator, u: np.ndarray, v: np.ndarray, cells: int = 8) -> np.ndarray:
    grid = rng.random((cells + 1, cells + 1))
    u = np.mod(u, 1.0) * cells
    v = np.mod(v, 1.0) * cells
    i, j = np.floor(u).astype(int), np.floor(v).astype(int)
    fu, fv = u - i, v - j
    a, b = grid[i, j], grid[i + 1, j]
    c, d = grid[i, j + 1], grid[i + 1, j + 1]
    return (a * (1 - fu) + b * fu) * (1 - fv) + (c * (1 - fu) + d * fu) * fv


def _texture(
    kind: str, base: np.ndarray, u: np.ndarray, v: np.ndarray, scale: float, rng: np.random.Generator
) -> np.ndarray:
    """Albedo (N, 3) for texture coordinates ``u``, ``v`` (N,) in metres."""
    base = np.asarray(base, dtype=np.float64)
    if kind == "plain":
        f = np.ones_like(u)
    elif kind == "checkered":
        f = np.where((np.floor(u / scale) + np.floor(v / scale)) % 2 == 0, 1.0, 0.55)
    elif kind == "striped":
        f = np.where(np.floor(u / scale) % 2 == 0, 1.0, 0.6)
    elif kind == "speckled":
        f = 0.65 + 0.5 * _value_noise(rng, u / (8 * scale), v / (8 * scale), cells=16)
    else:
        raise ValueError(f"unknown texture {kind!r}")
    return np.clip(base[None, :] * f[:, None], 0.0, 1.0)


# ---------------------------------------------------------------------------------------------------- ray casting
# Every intersection takes one ray origin ``o`` of shape (3,) (camera rays) or one per ray, (N, 3) (shadow rays),
# with directions ``d`` (N, 3), and returns the ray parameter of the nearest hit in front of the origin (inf: none).
def _hit_plane(o, d, axis: int, value: float):
    denom = d[:, axis]
    with np.errstate(divide="ignore", invalid="ignore"):
        t = (value - o[..., axis]) / denom
    return np.where((np.abs(denom) > 1e-12) & (t > 1e-6), t, np.inf)


def _hit_sphere(o, d, c, r):
    oc = o - c
    a = (d * d).sum(1)
    b = 2 * (d * oc).sum(1)
    cc = (oc * oc).sum(-1) - r * r
    disc = b * b - 4 * a * cc
    sq = np.sqrt(np.maximum(disc, 0))
    t0, t1 = (-b - sq) / (2 * a), (-b + sq) / (2 * a)
    t = np.where(t0 > 1e-6, t0, np.where(t1 > 1e-6, t1, np.inf))
    return np.where(disc >= 0, t, np.inf)


def _box_frame(angle):
    c, s = np.cos(angle), np.sin(angle)
    return np.array([[c, 0, -s], [0, 1, 0], [s, 0, c]])  # world -> local (rotation about y)


def _hit_box(o, d, center, half, angle):
    rot = _box_frame(angle)
    mid = center + np.array([0, half[1], 0])
    lo_ = (o - mid) @ rot.T
    ld = d @ rot.T
    with np.errstate(divide="ignore", invalid="ignore"):
        inv = 1.0 / np.where(np.abs(ld) < 1e-12, 1e-12, ld)
        t1 = (-half - lo_) * inv
        t2 = (half - lo_) * inv
    tmin = np.minimum(t1, t2).max(1)
    tmax = np.maximum(t1, t2).min(1)
    t = np.where(tmin > 1e-6, tmin, tmax)
    return np.where((tmax >= tmin) & (t > 1e-6), t, np.inf)


def _hit_cylinder(o, d, base, r, h):
    ox, oz = o[..., 0] - base[0], o[..., 2] - base[2]
    a = d[:, 0] ** 2 + d[:, 2] ** 2
    b = 2 * (ox * d[:, 0] + oz * d[:, 2])
    c = ox * ox + oz * oz - r * r
    disc = b * b - 4 * a * c
    sq = np.sqrt(np.maximum(disc, 0))
    a_safe = np.where(a < 1e-12, 1e-12, a)
    best = np.full(len(d), np.inf)
    for t in ((-b - sq) / (2 * a_safe), (-b + sq) / (2 * a_safe)):
        y = o[..., 1] + t * d[:, 1]
        ok = (disc >= 0) & (a > 1e-12) & (t > 1e-6) & (y >= base[1]) & (y <= base[1] + h)
        best = np.where(ok & (t < best), t, best)
    tcap = _hit_plane(o, d, 1, base[1] + h)
    px, pz = o[..., 0] + tcap * d[:, 0] - base[0], o[..., 2] + tcap * d[:, 2] - base[2]
    with np.errstate(invalid="ignore"):
        cap_ok = np.isfinite(tcap) & (px * px + pz * pz <= r * r)
    return np.where(cap_ok & (tcap < best), tcap, best)


def _hit_object(obj: SceneObject, o, d):
    if obj.kind == "sphere":
        return _hit_sphere(o, d, obj.center, obj.size[0])
    if obj.kind == "box":
        return _hit_box(o, d, obj.center, obj.size, obj.angle)
    return _hit_cylinder(o, d, obj.center, obj.size[0], obj.size[1])


def _object_normal_uv(obj: SceneObject, p: np.ndarray):
    """Normals (N, 3) and texture coordinates (u, v) in metres at surface points ``p`` (N, 3)."""
    if obj.kind == "sphere":
        n = (p - obj.center) / obj.size[0]
        u = np.arctan2(n[:, 0], n[:, 2]) * obj.size[0]
        v = np.arccos(np.clip(n[:, 1], -1, 1)) * obj.size[0]
        return n, u, v
    if obj.kind == "box":
        rot = _box_frame(obj.angle)
        mid = obj.center + np.array([0, obj.size[1], 0])
        q = (p - mid) @ rot.T
        rel = np.abs(q) / obj.size[None, :]
        axis = rel.argmax(1)
        nl = np.zeros_like(q)
        nl[np.arange(len(q)), axis] = np.sign(q[np.arange(len(q)), axis])
        n = nl @ rot  # local -> world
        u = np.where(axis == 0, q[:, 2], q[:, 0])
        v = np.where(axis == 1, q[:, 2], q[:, 1])
        return n, u, v
    rel = p - obj.center
    top = rel[:, 1] >= obj.size[1] - 1e-5
    n = np.stack([rel[:, 0], np.zeros(len(p)), rel[:, 2]], 1)
    n /= np.maximum(np.linalg.norm(n, axis=1, keepdims=True), 1e-9)
    n[top] = (0, 1, 0)
    u = np.where(top, rel[:, 0], np.arctan2(rel[:, 0], rel[:, 2]) * obj.size[0])
    v = np.where(top, rel[:, 2], rel[:, 1])
    return n, u, v


# ----------------------------------------------------------------------------------------------------- generation
def _place_objects(rng, count, room_half_width, near, far):
    kinds = ["box", "sphere", "cylinder"]
    objects, footprints = [], []
    label = {"box": ADE_BOX, "sphere": ADE_BALL, "cylinder": ADE_COLUMN}
    for _ in range(count * 10):
        if len(objects) == count:
            break
        kind = kinds[rng.integers(3)]
        colour = list(COLOURS)[rng.integers(len(COLOURS))]
        texture = TEXTURES[rng.integers(len(TEXTURES))]
        x = rng.uniform(-room_half_width + 0.6, room_half_width - 0.6)
        z = rng.uniform(near, far)
        if kind == "box":
            size = np.array([rng.uniform(0.2, 0.7), rng.uniform(0.2, 0.9), rng.uniform(0.2, 0.7)])
            radius, center = np.hypot(size[0], size[2]), np.array([x, 0.0, z])
        elif kind == "sphere":
            r = rng.uniform(0.2, 0.6)
            size, radius, center = np.array([r]), r, np.array([x, r * rng.choice([1.0, 1.0, 2.2]), z])
        else:
            r = rng.uniform(0.12, 0.4)
            size, radius, center = np.array([r, rng.uniform(0.4, 1.8)]), r, np.array([x, 0.0, z])
        if any(np.hypot(x - fx, z - fz) < radius + fr + 0.05 for fx, fz, fr in footprints):
            continue
        footprints.append((x, z, radius))
        objects.append(SceneObject(kind, label[kind], colour, texture, center, size, float(rng.uniform(0, np.pi))))
    return objects


def _join(items):
    if len(items) == 1:
        return items[0]
    return ", ".join(items[:-1]) + " and " + items[-1]


def render_scene(
    seed: int,
    height: int = 128,
    width: int | None = None,
    *,
    indoor: bool | None = None,
    max_objects: int = 5,
    shadows: bool = True,
    camera_shift: tuple[float, float, float] = (0, 0, 0),
    yaw_offset_deg: float = 0.0,
) -> Scene:
    """Render the scene of ``seed`` at ``height`` x ``width`` (default square). Deterministic in its arguments.

    ``indoor`` forces a closed room / an open yard (default: drawn from the seed, 3:1); ``shadows=False`` switches
    the shadow rays off (same scene otherwise). ``camera_shift`` (world metres, y up) and ``yaw_offset_deg`` move
    the camera within the same scene, e.g. along a trajectory for video.
    """
    width = height if width is None else width
    if height < 8 or width < 8:
        raise ValueError(f"scene size {height}x{width} is too small (at least 8x8)")
    rng = np.random.default_rng(np.random.SeedSequence([int(seed), 0x5CE7E]))
    indoor = bool(rng.random() < 0.75) if indoor is None else indoor

    # camera
    fov = np.deg2rad(rng.uniform(50, 75))
    f = 0.5 * width / np.tan(fov / 2)
    cx, cy = width / 2, height / 2
    K = np.array([[f, 0, cx], [0, f, cy], [0, 0, 1.0]])
    cam_h = rng.uniform(1.0, 1.9)
    pitch = np.deg2rad(rng.uniform(8, 25))
    yaw = np.deg2rad(rng.uniform(-12, 12) + yaw_offset_deg)
    origin = np.array([0.0, cam_h, 0.0]) + np.asarray(camera_shift, dtype=float)
    cp, sp, cyw, syw = np.cos(pitch), np.sin(pitch), np.cos(yaw), np.sin(yaw)
    r_pitch = np.array([[1, 0, 0], [0, cp, -sp], [0, sp, cp]])  # tilts +z downwards (y-up world)
    r_yaw = np.array([[cyw, 0, syw], [0, 1, 0], [-syw, 0, cyw]])
    cam_to_world = r_yaw @ r_pitch
    jj, ii = np.meshgrid(np.arange(width) + 0.5, np.arange(height) + 0.5)
    d_cam = np.stack([(jj - cx) / f, -(ii - cy) / f, np.ones_like(jj)], -1).reshape(-1, 3)
    dirs = d_cam @ cam_to_world.T  # camera z-component 1, so ray parameter t == planar depth
    n_pix = len(dirs)

    # room / yard
    half_w = rng.uniform(2.0, 4.0)
    back = rng.uniform(5.0, 9.0)
    ceil_h = rng.uniform(2.6, 3.6)
    floor_col = list(COLOURS)[rng.integers(len(COLOURS))]
    wall_col = list(COLOURS)[rng.integers(len(COLOURS))]
    floor_tex = TEXTURES[rng.integers(len(TEXTURES))]
    wall_tex = TEXTURES[rng.integers(len(TEXTURES))]
    n_obj = int(rng.integers(1, max_objects + 1))
    objects = _place_objects(rng, n_obj, half_w if indoor else 4.0, 1.8, (back - 0.8) if indoor else 9.0)
    light = np.array(
        [
            rng.uniform(-half_w + 0.5, half_w - 0.5),
            (ceil_h - 0.3) if indoor else rng.uniform(3, 6),
            rng.uniform(1.0, back - 1.0),
        ]
    )
    light_power = rng.uniform(0.8, 1.3)
    ambient = rng.uniform(0.15, 0.3)

    surfaces = [("floor", ADE_FLOOR, 1, 0.0, floor_col, floor_tex)]
    if indoor:
        surfaces += [
            ("ceiling", ADE_CEILING, 1, ceil_h, "white", "plain"),
            ("wall", ADE_WALL, 2, back, wall_col, wall_tex),
            ("wall", ADE_WALL, 0, -half_w, wall_col, wall_tex),
            ("wall", ADE_WALL, 0, half_w, wall_col, wall_tex),
            ("wall", ADE_WALL, 2, -1.0, wall_col, wall_tex),
        ]
    ts = [_hit_plane(origin, dirs, axis, value) for _, _, axis, value, _, _ in surfaces]
    ts += [_hit_object(o, origin, dirs) for o in objects]
    show_lamp = indoor
    if show_lamp:
        ts.append(_hit_sphere(origin, dirs, light, 0.08))
    t_all = np.stack(ts, 0)
    hit = t_all.argmin(0)
    t = t_all[hit, np.arange(n_pix)]

    rgb = np.zeros((n_pix, 3))
    labels = np.full(n_pix, UNLABELLED, dtype=np.uint8)
    points = origin[None, :] + t[:, None] * dirs
    tex_rng_seed = rng.integers(2**31)
    for k in range(len(ts)):
        sel = (hit == k) & np.isfinite(t)
        if not sel.any():
            continue
        p = points[sel]
        tex_rng = np.random.default_rng([int(tex_rng_seed), k])
        if k < len(surfaces):
            _, label, axis, _, colour, tex = surfaces[k]
            n = np.zeros_like(p)
            n[:, axis] = -np.sign(dirs[sel, axis])
            a, b = [i for i in range(3) if i != axis]
            albedo = _texture(tex, COLOURS[colour], p[:, a], p[:, b], 0.5, tex_rng)
        elif k < len(surfaces) + len(objects):
            obj = objects[k - len(surfaces)]
            label = obj.label
            n, u, v = _object_normal_uv(obj, p)
            albedo = _texture(obj.texture, COLOURS[obj.colour], u, v, 0.12, tex_rng)
        else:  # the lamp: emissive
            labels[sel] = ADE_LIGHT
            rgb[sel] = 1.0
            continue
        to_light = light[None, :] - p
        dist = np.linalg.norm(to_light, axis=1, keepdims=True)
        ldir = to_light / dist
        lambert = np.clip((n * ldir).sum(1), 0, None)
        shadow_o = p + n * 1e-4
        lit = np.ones(len(p), dtype=bool)
        for obj in objects if shadows else ():  # hard shadows from the objects (room surfaces enclose the light)
            ts_obj = _hit_object(obj, shadow_o, ldir)
            lit &= ~(ts_obj < dist[:, 0])
        falloff = light_power * 9.0 / (dist[:, 0] ** 2 + 9.0)
        shade = ambient + (1 - ambient) * lambert * lit * falloff
        rgb[sel] = albedo * shade[:, None]
        labels[sel] = label

    sky = ~np.isfinite(t)
    if sky.any():
        up = np.clip(dirs[sky, 1] / np.linalg.norm(dirs[sky], axis=1), 0, 1)
        rgb[sky] = (
            np.array([0.75, 0.85, 0.95])[None] * (1 - up[:, None]) + np.array([0.3, 0.5, 0.85])[None] * up[:, None]
        )
        labels[sky] = ADE_SKY
    image = (np.clip(rgb, 0, 1) ** (1 / 2.2) * 255 + 0.5).astype(np.uint8).reshape(height, width, 3)
    depth = t.astype(np.float32).reshape(height, width)

    names = [o.describe() for o in objects]
    place = (
        (
            f"a room with a {floor_tex if floor_tex != 'plain' else ''} {floor_col} floor and "
            f"{wall_tex if wall_tex != 'plain' else ''} {wall_col} walls"
        ).replace("  ", " ")
        if indoor
        else f"an open yard with a {floor_tex if floor_tex != 'plain' else ''} {floor_col} floor under the sky".replace(
            "  ", " "
        )
    )
    caption = f"{place}, with {_join(names)}, lit by a {'ceiling lamp' if indoor else 'light'} casting shadows"
    pose = np.eye(4)
    pose[:3, :3], pose[:3, 3] = cam_to_world, origin
    return Scene(image, depth, labels.reshape(height, width), caption, K, objects, indoor, pose)


def render_trajectory(
    seed: int,
    frames: int,
    height: int = 64,
    width: int | None = None,
    *,
    step: tuple[float, float, float] = (0.03, 0.0, 0.06),
    yaw_step_deg: float = 0.6,
    **kwargs,
) -> list[Scene]:
    """The scene of ``seed`` seen from a camera moving ``step`` metres and turning ``yaw_step_deg`` per frame."""
    return [
        render_scene(
            seed, height, width, camera_shift=tuple(k * np.asarray(step)), yaw_offset_deg=k * yaw_step_deg, **kwargs
        )
        for k in range(frames)
    ]


def held_out_scenes(count: int, resolution: int = 64, seed: int = HELD_OUT_SEED) -> list[Scene]:
    """The first ``count`` scenes of data seed ``seed`` (default: the held-out one, never in the training stream)."""
    return [render_scene(seed * SEED_STRIDE + i, resolution, resolution) for i in range(count)]
