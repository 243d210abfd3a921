"""Tiled high-resolution inference measured in the miniature world: global only vs naive tiles vs tiles on the prior.

    nice -n 10 python scripts/tiling_study.py quality --scenes 100 --resolution 256 --tiles 7 --json q.json
    python scripts/tiling_study.py table q.json  # or the halves of two runs side by side (--first 50 --scenes 50)
    nice -n 10 python scripts/tiling_study.py cost --size 2048 1536 --tiles 0 2 4 8
    python scripts/tiling_study.py gallery --scenes 0 1 --tiles 7 --out docs/tiling-gallery.png

quality: held-out scenes (data seed 7, never trained on) rendered at ``--resolution`` (PrimeDepth-mini processes
64 px) with exact depth, predicted by PrimeDepth-mini (the scene's caption, noise-free) as
(a) global only: the whole image at 64 px, upsampled (``tiles="off"``);
(b) naive tiles: 64 px tiles at the chosen scale, each chained to the blend before it over the overlap, no prior;
(c) tiled: the same tiles aligned to the global prior, low frequencies from the prior (``tiles=N``).
Every map is aligned to the ground truth in disparity at full resolution (the evaluation's ``score_in_own_range``)
and scored with δ1 / AbsRel, the depth-boundary F1 of Depth Pro (occluding contours of neighbouring pixels, depth
ratio above 1 + t, F1 averaged over t in 5 .. 25 %), a seam measure (mean gradient magnitude of the disparity
error on the tiles' borders over that elsewhere; the global map on the same borders is the seam-free reference) and
seconds per image.

cost: time and peak memory (RSS, each setting in its own process) of one ``--size`` image against the tile count.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time

import numpy as np
import torch

from primedepth.data.scenes import held_out_scenes
from primedepth.evaluation.protocol import score_in_own_range
from primedepth.pipelines.pipeline import PrimeDepthPipeline
from primedepth.pipelines.tiling import TileLayout, predict_tiles

MODEL = "primedepth-mini"
F1_THRESHOLDS = np.linspace(0.05, 0.25, 5)


def contours(depth: np.ndarray, valid: np.ndarray, t: float) -> tuple[np.ndarray, np.ndarray]:
    """Occluding contours between right and lower neighbours: depth ratio above ``1 + t`` (either way)."""
    out = []
    for a, b, ok in (
        (depth[:, :-1], depth[:, 1:], valid[:, :-1] & valid[:, 1:]),
        (depth[:-1], depth[1:], valid[:-1] & valid[1:]),
    ):
        ratio = np.maximum(a / b, b / a)
        out.append(np.where(ok, ratio > 1 + t, False))
    return out[0], out[1]


def boundary_f1(pred: np.ndarray, gt: np.ndarray, valid: np.ndarray) -> float:
    """Depth Pro's boundary F1: contours of ``pred`` against those of ``gt``, averaged over ``F1_THRESHOLDS``."""
    safe_gt = np.where(valid, gt, 1.0)
    safe_pred = np.where(valid, np.maximum(pred, 1e-6), 1.0)
    scores = []
    for t in F1_THRESHOLDS:
        true, found = contours(safe_gt, valid, t), contours(safe_pred, valid, t)
        hits = sum(int((a & b).sum()) for a, b in zip(true, found))
        n_true, n_found = sum(int(a.sum()) for a in true), sum(int(b.sum()) for b in found)
        precision = hits / n_found if n_found else 1.0
        recall = hits / n_true if n_true else 1.0
        scores.append(0.0 if precision + recall == 0 else 2 * precision * recall / (precision + recall))
    return float(np.mean(scores))


def tile_borders(layout: TileLayout, size: tuple[int, int]) -> np.ndarray:
    """Full-resolution mask of the tiles' edges inside the image (2 px wide): where a tile's contribution starts
    or stops, hence where a seam would show."""
    mask = np.zeros(size, bool)
    for axis, starts, length in ((0, layout.tops, layout.tile[0]), (1, layout.lefts, layout.tile[1])):
        scale = size[axis] / layout.size[axis]
        for edge in {*starts, *(s + length for s in starts)}:
            at = int(round(edge * scale))
            if 1 <= at < size[axis] - 1:
                if axis == 0:
                    mask[at - 1 : at + 1] = True
                else:
                    mask[:, at - 1 : at + 1] = True
    return mask


def seam_measure(aligned: np.ndarray, gt: np.ndarray, valid: np.ndarray, borders: np.ndarray) -> float:
    """Mean gradient magnitude of the disparity error on the tile borders over that elsewhere (1: no seams)."""
    error = np.where(valid, 1.0 / np.maximum(aligned, 1e-6) - 1.0 / np.where(valid, gt, 1.0), 0.0)
    gy, gx = np.gradient(error)
    magnitude = np.hypot(gx, gy)
    ok = valid.copy()
    ok[1:] &= valid[:-1]
    ok[:-1] &= valid[1:]
    ok[:, 1:] &= valid[:, :-1]
    ok[:, :-1] &= valid[:, 1:]
    inside, outside = magnitude[ok & borders], magnitude[ok & ~borders]
    if inside.size == 0 or outside.size == 0 or outside.mean() == 0:
        return float("nan")
    return float(inside.mean() / outside.mean())


def predict(pipe, scene, method: str, tiles: int) -> tuple[np.ndarray, float]:
    start = time.perf_counter()
    if method == "global":
        depth = pipe(scene.image, caption=scene.caption, noise="none").inverse_depth[0]
    elif method == "tiled":
        depth = pipe(scene.image, caption=scene.caption, noise="none", tiles=tiles, batch_size=32).inverse_depth[0]
    else:
        pixels = torch.from_numpy(scene.image).permute(2, 0, 1).float() / 255.0
        context = pipe._encode_prompts([scene.caption])
        depth, _ = predict_tiles(
            pipe, pixels, torch.zeros(64, 64), tiles, context, tile=64, seed=None, batch_size=32, use_prior=False
        )
    return depth, time.perf_counter() - start


def quality(args) -> None:
    torch.set_num_threads(args.threads)
    pipe = PrimeDepthPipeline.from_pretrained(MODEL, device="cpu")
    scenes = held_out_scenes(args.first + args.scenes, args.resolution)[args.first :]
    size = (args.resolution, args.resolution)
    layouts = {n: TileLayout.build(size, 64, n) for n in args.tiles}
    rows = {("global", 0): []}
    for n in args.tiles:
        rows[("naive", n)], rows[("tiled", n)] = [], []
    for index, scene in enumerate(scenes):
        valid = np.isfinite(scene.depth) & (scene.depth > 0)
        for method, n in rows:
            depth, seconds = predict(pipe, scene, method, n)
            score, aligned = score_in_own_range(depth, scene.depth)
            values = {
                "delta1": score["delta1"],
                "abs_rel": score["abs_rel"],
                "boundary_f1": boundary_f1(aligned, scene.depth, valid),
                "seconds": seconds,
            }
            for m in [n] if n else args.tiles:  # the global map on every layout's borders: the reference
                values[f"seam{m}"] = seam_measure(aligned, scene.depth, valid, tile_borders(layouts[m], size))
            rows[(method, n)].append(values)
        if (index + 1) % 10 == 0:
            print(f"{index + 1}/{len(scenes)} scenes", file=sys.stderr, flush=True)
    if args.json:
        with open(args.json, "w") as f:
            json.dump({f"{m}-{n}": v for (m, n), v in rows.items()}, f)
    print_table(rows, args.resolution, args.tiles)


def print_table(rows: dict, resolution: int, tiles: list[int]) -> None:
    size = (resolution, resolution)
    layouts = {n: TileLayout.build(size, 64, n) for n in tiles}
    count = len(rows[("global", 0)])
    print(f"\n{count} held-out scenes at {resolution}x{resolution}, PrimeDepth-mini (64 px)\n")
    print("| method | tiles (grid, working size) | δ1 ↑ | AbsRel ↓ | boundary F1 ↑ | seam | s / image |")
    print("|---|---|---|---|---|---|---|")
    means = {key: {k: float(np.nanmean([v[k] for v in values])) for k in values[0]} for key, values in rows.items()}
    for (method, n), mean in means.items():
        if n:
            layout = layouts[n]
            where = f"{len(layout)} ({layout.grid[0]}x{layout.grid[1]}, {layout.size[0]} px)"
            seam = f"{mean[f'seam{n}']:.3f} (global: {means[('global', 0)][f'seam{n}']:.3f})"
        else:
            where, seam = "-", " / ".join(f"{mean[f'seam{m}']:.3f}" for m in tiles)
        print(
            f"| {method} | {where} | {mean['delta1']:.4f} | {mean['abs_rel']:.4f} | {mean['boundary_f1']:.4f} | "
            f"{seam} | {mean['seconds']:.3f} |"
        )
    print(
        "\nseam: mean gradient magnitude of the disparity error on the tiles' borders over that elsewhere "
        "(the global map on the same borders is the seam-free reference; global row: on each layout's borders)"
    )


def table(args) -> None:
    """The table of several ``quality --json`` runs (e.g. halves of the scenes run side by side)."""
    rows: dict = {}
    for path in args.json:
        with open(path) as f:
            for key, values in json.load(f).items():
                method, n = key.rsplit("-", 1)
                rows.setdefault((method, int(n)), []).extend(values)
    tiles = sorted({n for _, n in rows if n})
    print_table(rows, args.resolution, tiles)


def gallery(args) -> None:
    from matplotlib.figure import Figure

    from primedepth.outputs.colour import show_depth

    pipe = PrimeDepthPipeline.from_pretrained(MODEL, device="cpu")
    rendered = held_out_scenes(max(args.scenes) + 1, args.resolution)
    crop = slice(args.resolution // 4, args.resolution // 4 + args.resolution // 2)
    fig = Figure(figsize=(12, 2.45 * 2 * len(args.scenes)), layout="constrained")
    axes = fig.subplots(2 * len(args.scenes), 5, squeeze=False)
    for k, index in enumerate(args.scenes):
        scene = rendered[index]
        valid = np.isfinite(scene.depth) & (scene.depth > 0)
        gt = np.where(valid, scene.depth, np.nan)
        vmin, vmax = np.nanpercentile(gt, [1, 95])  # outdoor ground runs to the horizon: clip the far end
        panels = [(f"scene {index}: RGB", None), ("ground truth", gt)]
        for method, label in (
            ("global", "global only (64 px, upsampled)"),
            ("naive", "naive tiles"),
            ("tiled", "tiled"),
        ):
            depth, _ = predict(pipe, scene, method, args.tiles)
            score, aligned = score_in_own_range(depth, scene.depth)
            f1 = boundary_f1(aligned, scene.depth, valid)
            panels.append(
                (f"{label}\nAbsRel {score['abs_rel']:.3f}  boundary F1 {f1:.3f}", np.where(valid, aligned, np.nan))
            )
        for column, (title, values) in enumerate(panels):
            for row, window in enumerate((np.s_[:, :], np.s_[crop, crop])):
                ax = axes[2 * k + row, column]
                if values is None:
                    ax.imshow(scene.image[window], interpolation="nearest")
                else:
                    show_depth(ax, values[window], vmin, vmax, colorbar=False)
                ax.set_title(title if row == 0 else "centre, 2x", fontsize=7)
                ax.set_xticks([]), ax.set_yticks([])
    layout = TileLayout.build((args.resolution,) * 2, 64, args.tiles)
    fig.suptitle(
        f"held-out scenes at {args.resolution} px; PrimeDepth-mini processes 64 px; "
        f"{len(layout)} tiles ({layout.grid[0]}x{layout.grid[1]}, working size {layout.size[0]} px)",
        fontsize=8,
    )
    fig.savefig(args.out, dpi=100, format="png")
    print(args.out)


def cost_one(args) -> None:
    """One setting, in this process: prints seconds and peak RSS (MiB) as JSON."""
    torch.set_num_threads(args.threads)
    pipe = PrimeDepthPipeline.from_pretrained(MODEL, device="cpu")
    h, w = args.size[1], args.size[0]
    image = np.random.default_rng(0).integers(0, 256, (h, w, 3), dtype=np.uint8)
    pipe(image[:64, :64], caption="none", noise="none")  # warm-up
    start = time.perf_counter()
    out = pipe(image, caption="none", noise="none", tiles=args.tiles or "off", batch_size=args.batch_size)
    seconds = time.perf_counter() - start
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    tiling = (out.metadata.get("tiling") or [None])[0]
    print(json.dumps({"tiles": tiling["tiles"] if tiling else 0, "seconds": seconds, "peak_mib": peak}))


def cost(args) -> None:
    w, h = args.size
    print(f"\nPrimeDepth-mini, one {w}x{h} image, CPU, {args.threads} thread(s), tile batch {args.batch_size}\n")
    print("| tiles along the long side | tiles | seconds | peak RSS (MiB) |")
    print("|---|---|---|---|")
    for n in args.tiles:
        command = [sys.executable, __file__, "cost-one", "--size", str(w), str(h), "--tiles", str(n)]
        command += ["--threads", str(args.threads), "--batch-size", str(args.batch_size)]
        result = json.loads(subprocess.run(command, capture_output=True, text=True, check=True).stdout.splitlines()[-1])
        print(f"| {n or 'off'} | {result['tiles']} | {result['seconds']:.2f} | {result['peak_mib']:.0f} |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    commands = parser.add_subparsers(dest="command", required=True)
    q = commands.add_parser("quality")
    q.add_argument("--scenes", type=int, default=100)
    q.add_argument("--first", type=int, default=0, help="Index of the first held-out scene.")
    q.add_argument("--resolution", type=int, default=256)
    q.add_argument("--tiles", type=int, nargs="+", default=[2, 3, 5])
    q.add_argument("--threads", type=int, default=1)
    q.add_argument("--json", default=None, help="Also write the per-scene values here.")
    t = commands.add_parser("table")
    t.add_argument("json", nargs="+")
    t.add_argument("--resolution", type=int, default=256)
    g = commands.add_parser("gallery")
    g.add_argument("--scenes", type=int, nargs="+", default=[0, 1])
    g.add_argument("--resolution", type=int, default=256)
    g.add_argument("--tiles", type=int, default=7)
    g.add_argument("--out", default="docs/tiling-gallery.png")
    for name in ("cost", "cost-one"):
        c = commands.add_parser(name)
        c.add_argument("--size", type=int, nargs=2, default=[2048, 1536], metavar=("W", "H"))
        c.add_argument("--tiles", type=int, nargs="+" if name == "cost" else None, default=[0, 2, 4, 8])
        c.add_argument("--threads", type=int, default=1)
        c.add_argument("--batch-size", type=int, default=8)
    args = parser.parse_args()
    {"quality": quality, "table": table, "gallery": gallery, "cost": cost, "cost-one": cost_one}[args.command](args)


if __name__ == "__main__":
    main()
