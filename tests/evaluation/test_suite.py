import csv
import json
from pathlib import Path

import numpy as np
import pytest
from helpers import benchmark_files, fakes
from helpers.launchers import accelerate_launch

from primedepth.evaluation.suite import average_ranks, load_suite, run_suite


def published_table(suite):
    """The published rows (without the oracle) as {row: {(dataset, measure): value}}."""
    return {
        key: {(d, m): v[i] for d, v in row["values"].items() for i, m in enumerate(("delta1", "abs_rel"))}
        for key, row in suite.published.items()
        if key != "image-oracle"
    }


def better(suite):
    return {(d, m): m == "delta1" for d in suite.datasets for m in ("delta1", "abs_rel")}


def test_average_rank_definition_reproduces_the_published_table_2():
    """Hand computation from the paper's Table 2 (five ranked rows; ties share the better rank):

    column          DA  Marigold  w/o-pre  PrimeDepth  Pixel-avg
    KITTI δ1         2     4        5         3           1
    KITTI AbsRel     3     5        4         2           1
    NYUv2 δ1         1     4        5         3           2
    NYUv2 AbsRel     1     3        5         4           2
    ETH3D δ1         1     4        5         3           1   (98.1 = 98.1: tied)
    ETH3D AbsRel     2     3        5         4           1
    rabbitai δ1      2     5        4         3           1
    rabbitai AbsRel  4     5        3         2           1
    nuScenes-C δ1    1     5        4         3           2
    nuScenes AbsRel  2     5        4         3           1
    sum             19    43       44        30          13   -> 1.9, 4.3, 4.4, 3.0, 1.3 as published."""
    suite = load_suite("paper-table2")
    ranks = average_ranks(published_table(suite), better(suite))
    assert ranks == {
        "depth-anything": 1.9,
        "marigold": 4.3,
        "primedepth-no-pretrain": 4.4,
        "primedepth": 3.0,
        "pixel-wise-average": 1.3,
    }
    assert all(ranks[k] == pytest.approx(suite.published[k]["avg_rank"]) for k in ranks)


def test_average_rank_on_the_published_table_3_matches_four_of_six_rows():
    """The same definition on Table 3: V.Full 6/6 = 1.0, V.NoAttent 25/6 = 4.17, V.NoFeature 29/6 = 4.83 and
    V.BlockPreIm 28/6 = 4.67 match the published 1.0 / 4.2 / 4.8 / 4.7. V.Latent (4+2+4+3+3+3 = 19 -> 3.17) and
    V.NoSegmen (1+3+2+4+3+3 = 16 -> 2.67) do not match the published 3.0 / 3.0 under any tie rule: no ranking of the
    published numbers gives V.Latent 3.0, since it is behind V.Full and V.BlockPreIm on both nuScenes-C columns."""
    suite = load_suite("paper-table3")
    ranks = average_ranks(published_table(suite), better(suite))
    expected = {
        "V.Full": 6 / 6,
        "V.Latent": 19 / 6,
        "V.NoSegmen": 16 / 6,
        "V.NoAttent": 25 / 6,
        "V.NoFeature": 29 / 6,
        "V.BlockPreIm": 28 / 6,
    }
    assert ranks == pytest.approx(expected)
    assert [round(ranks[k], 1) == suite.published[k]["avg_rank"] for k in expected] == [
        True,
        False,
        False,
        True,
        True,
        True,
    ]


def test_ranking_uses_the_shown_precision_and_only_the_columns_a_row_has():
    table = {"a": {"x": 0.951, "y": 3.0}, "b": {"x": 0.949, "y": 2.0}, "c": {"x": 0.5}}
    # x at 0.1: a 1.0, b 0.9, c 0.5 -> ranks 1, 2, 3; y: b 1, a 2 (c has no y) -> a 1.5, b 1.5, c 3.
    # x at 1: a 1, b 1 (tied, both rank 1), c 0 -> 3; y as before -> a 1.5, b 1.0, c 3.
    assert average_ranks(table, {"x": True, "y": False}) == {"a": 1.5, "b": 1.5, "c": 3.0}
    assert average_ranks(table, {"x": True, "y": False}, decimals=0) == {"a": 1.5, "b": 1.0, "c": 3.0}


def test_published_numbers_are_the_papers(reference_dir):
    """The packaged published numbers agree with the paper's tables (tests/reference/paper_tables.md, checksummed)."""
    text = (reference_dir / "paper_tables.md").read_text()
    for name in ("paper-table2", "paper-table3"):
        suite = load_suite(name)
        for row in suite.published.values():
            cells = " | ".join(f"{v[0]:.1f} / {v[1]:.1f}" for v in (row["values"][d] for d in suite.datasets))
            rank = "–" if row["avg_rank"] is None else f"{row['avg_rank']:.1f}"
            assert f"| {cells} | {rank} |" in text, row["label"]
    picks = load_suite("paper-table2").published_picks
    line = " | ".join(f"{a[0]}/{a[1]}, {b[0]}/{b[1]}" for a, b in picks.values())
    assert line in text


SUITE_SCENES = {"scene-0062": 2, "scene-0039": 1, "scene-0441": 1, "scene-1077": 2, "scene-1022": 1, "scene-1110": 1}


def make_table2_data(root):
    """Fixture datasets of Table 2 in their real layouts under ``root/<dataset>``; nuScenes-C with real scene names,
    one or two per category."""
    benchmark_files.make_kitti(root / "kitti", n=1)
    benchmark_files.make_nyu(root / "nyu", n=1)
    benchmark_files.make_eth3d(root / "eth3d", n=2)
    benchmark_files.make_rabbitai(root / "rabbitai")
    benchmark_files.make_nuscenes(root / "nuscenes_c", SUITE_SCENES)


def test_suite_table_2_with_fakes_ranks_resumes_and_reports_a_missing_dataset(tmp_path):
    data = tmp_path / "data"
    benchmark_files.make_eth3d(data / "eth3d", n=2)
    benchmark_files.make_rabbitai(data / "rabbitai")
    benchmark_files.make_nuscenes(data / "nuscenes_c", SUITE_SCENES)
    roots = {d: data / d for d in ("kitti", "nyu", "eth3d", "rabbitai", "nuscenes_c")}  # kitti, nyu absent
    calls = []

    def factory(make):
        def build(dataset):
            calls.append(dataset.config.name)
            return make(dataset)

        return build

    runs = {
        "perfect": factory(lambda ds: fakes.AffineOfGT(ds)),
        "primedepth": factory(lambda ds: fakes.Noisy(ds, 0.3)),
        "depth-anything": factory(lambda ds: fakes.Noisy(ds, 0.6)),
    }
    suite = load_suite("paper-table2")
    out = tmp_path / "out"
    result = run_suite(suite, roots, runs, out, allow_partial=True)
    assert result.status["kitti"].startswith("missing: no dataset folder at") and result.status["eth3d"] == "done"
    assert result.errors == []
    table = json.loads((out / "paper-table2.json").read_text())
    rows = {r["key"]: r for r in table["rows"]}
    assert [r["key"] for r in table["rows"]] == [
        "image-oracle",
        "perfect",
        "primedepth",
        "depth-anything",
        "marigold",
        "primedepth-no-pretrain",
        "pixel-wise-average",
    ]
    assert rows["marigold"]["kind"] == "paper" and rows["marigold"]["avg_rank"] is None  # published row, not run
    for d in ("eth3d", "rabbitai", "nuscenes_c"):
        assert rows["perfect"]["ours"][d]["delta1"] == 100.0 and rows["perfect"]["ours"][d]["abs_rel"] == pytest.approx(
            0, abs=1e-3
        )
    # The oracle picks the better of primedepth / depth-anything per image and per measure.
    for d in ("eth3d", "rabbitai", "nuscenes_c"):
        per = {r: {s["sample_id"]: s for s in fixtures_rows(out / d / r)} for r in ("primedepth", "depth-anything")}
        best_d1 = np.mean([max(float(per[r][k]["delta1"]) for r in per) for k in per["primedepth"]])
        best_abs = np.mean([min(float(per[r][k]["abs_rel"]) for r in per) for k in per["primedepth"]])
        assert rows["image-oracle"]["ours"][d]["delta1"] == pytest.approx(100 * best_d1)
        assert rows["image-oracle"]["ours"][d]["abs_rel"] == pytest.approx(100 * best_abs)
        picks = table["oracle_picks"][d]
        assert [sum(p) for p in picks] == [pytest.approx(100), pytest.approx(100)]
    # Hand computation of the average rank: per shown column (0.1 precision), 1 + rows strictly better.
    ranked = ["perfect", "primedepth", "depth-anything", "pixel-wise-average"]
    columns = [(d, m) for d in ("eth3d", "rabbitai", "nuscenes_c") for m in ("delta1", "abs_rel")]
    by_hand = {}
    for r in ranked:
        total = 0
        for d, m in columns:
            mine = round(rows[r]["ours"][d][m], 1)
            others = [round(rows[o]["ours"][d][m], 1) for o in ranked]
            total += 1 + sum((o > mine) if m == "delta1" else (o < mine) for o in others)
        by_hand[r] = total / len(columns)
    assert by_hand["perfect"] == 1.0
    assert {r: rows[r]["avg_rank"] for r in ranked} == pytest.approx(by_hand)
    assert rows["image-oracle"]["avg_rank"] is None
    # The paper's numbers beside ours where names match.
    md = (out / "paper-table2.md").read_text()
    assert "| primedepth [paper: PrimeDepth] |" in md and "(93.7)" in md and "(1.9)" in md
    assert "| Marigold (not run) | – (91.6) | – (10.0) |" in md
    assert "| oracle picks (primedepth % / depth-anything %) |" in md and "(42/58)" in md
    assert "- KITTI: missing: no dataset folder at" in md and "- NYUv2: missing" in md
    header = md.splitlines()[4]
    for title in ("KITTI", "NYUv2", "ETH3D", "rabbitai", "nuScenes-C"):
        assert f"{title} δ1 ↑" in header and f"{title} AbsRel ↓" in header
    assert (out / "paper-table2_fig5.png").stat().st_size > 1000
    fig5 = (out / "paper-table2_fig5.md").read_text()
    assert "| Day Cloudy | 100.0 [100.0–100.0], 2 |" in fig5  # perfect model, 2 frames of scene-0062
    # Resuming a finished suite builds no model again and leaves the table as it was.
    before, calls[:] = md, []
    run_suite(suite, roots, runs, out, allow_partial=True)
    assert calls == [] and (out / "paper-table2.md").read_text() == before


def fixtures_rows(run_dir):
    with open(run_dir / "per_sample.csv", newline="") as f:
        return list(csv.DictReader(f))


def hand_ranks(rows, ranked, columns):
    """Per shown column (0.1 precision): 1 + the number of ranked rows strictly better; then the mean per row."""
    out = {}
    for r in ranked:
        total = 0
        for d, m in columns:
            mine = round(rows[r]["ours"][d][m], 1)
            others = [round(rows[o]["ours"][d][m], 1) for o in ranked]
            total += 1 + sum((o > mine) if m == "delta1" else (o < mine) for o in others)
        out[r] = total / len(columns)
    return out


@pytest.mark.slow
def test_cli_paper_table2_with_a_tiny_random_model_two_peers_and_a_perfect_fake(tmp_path):
    from click.testing import CliRunner
    from helpers import tiny_peers

    from primedepth.cli import main

    data = tmp_path / "data"
    make_table2_data(data)
    da = tiny_peers.save_tiny_depth_anything(tmp_path / "da")
    mg = tiny_peers.save_tiny_marigold(tmp_path / "mg")
    out = tmp_path / "out"
    args = [
        "eval",
        "--suite",
        "paper-table2",
        "--data-root",
        str(data),
        "--output",
        str(out),
        "--allow-partial",
        "--device",
        "cpu",
        "--run",
        f"perfect-affine=python={fakes.__name__}:perfect_affine",
        "--run",
        "primedepth=tiny-random",
        "--run",
        f"depth-anything=depth-anything={da}",
        "--run",
        f"marigold=marigold-v1-1={mg}",
    ]
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 0, result.output
    assert f"-> {out / 'paper-table2.md'}" in result.output
    table = json.loads((out / "paper-table2.json").read_text())
    assert table["status"] == {d: "done" for d in ("kitti", "nyu", "eth3d", "rabbitai", "nuscenes_c")}
    rows = {r["key"]: r for r in table["rows"]}
    assert [r["key"] for r in table["rows"]] == [
        "image-oracle",
        "perfect-affine",
        "primedepth",
        "depth-anything",
        "marigold",
        "primedepth-no-pretrain",
        "pixel-wise-average",
    ]
    datasets = table["datasets"]
    for d in datasets:
        assert rows["perfect-affine"]["ours"][d]["delta1"] == 100.0
        assert rows["perfect-affine"]["ours"][d]["abs_rel"] == pytest.approx(0, abs=1e-3)
        for key in ("image-oracle", "primedepth", "depth-anything", "marigold", "pixel-wise-average"):
            assert set(rows[key]["ours"][d]) >= {"delta1", "abs_rel"}, (key, d)
        assert len(table["oracle_picks"][d]) == 2
    assert rows["perfect-affine"]["ours"]["nuscenes_c"]["samples"] == sum(SUITE_SCENES.values())
    ranked = ["perfect-affine", "primedepth", "depth-anything", "marigold", "pixel-wise-average"]
    by_hand = hand_ranks(rows, ranked, [(d, m) for d in datasets for m in ("delta1", "abs_rel")])
    assert by_hand["perfect-affine"] == 1.0
    assert {r: rows[r]["avg_rank"] for r in ranked} == pytest.approx(by_hand)
    md = (out / "paper-table2.md").read_text().splitlines()
    for label in (
        "Image-Oracle (upper bound)",
        "oracle picks (primedepth % / depth-anything %)",
        "primedepth [paper: PrimeDepth]",
        "depth-anything [paper: Depth Anything]",
        "marigold [paper: Marigold]",
        "PrimeDepth w/o pre-train (not run)",
        "Pixel-wise-Average (primedepth & depth-anything)",
    ):
        assert any(line.startswith(f"| {label} |") for line in md), label
    assert all(line.count("|") == 13 for line in md if line.startswith("| "))  # model + 10 measure columns + avg. rank
    assert (out / "paper-table2_fig5.png").stat().st_size > 1000
    # Resumed: nothing is recomputed.
    parts = {p: p.read_text() for p in out.glob("*/*/parts/rank0.csv")}
    again = CliRunner().invoke(main, args)
    assert again.exit_code == 0, again.output
    assert {p: p.read_text() for p in out.glob("*/*/parts/rank0.csv")} == parts


def test_cli_paper_table3_reports_a_missing_dataset_and_an_error_without_stopping(tmp_path):
    from click.testing import CliRunner

    from primedepth.cli import main

    data = tmp_path / "data"
    benchmark_files.make_rabbitai(data / "rabbitai")
    benchmark_files.make_nuscenes(data / "nuscenes_c", {"scene-0062": 1, "scene-1110": 1})
    out = tmp_path / "out"
    args = [
        "eval",
        "--suite",
        "paper-table3",
        "--data-root",
        str(data),
        "--output",
        str(out),
        "--allow-partial",
        "--run",
        f"V.Full=python={fakes.__name__}:perfect_affine",
        "--run",
        f"V.Latent=python={fakes.__name__}:noisy",
    ]
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 0, result.output
    assert f"warning: kitti not run (missing: no dataset folder at {data / 'kitti'})" in result.output
    md = (out / "paper-table3.md").read_text()
    assert "| V.Full | – (92.8) | – (8.7) | 100.0 (73.5) | 0.0 (21.9) | 100.0 (80.6) | 0.0 (14.2) | 1.0 (1.0) |" in md
    assert "| V.NoAttent (not run) |" in md and "| V.BlockPreIm (not run) |" in md and "Image-Oracle" not in md

    # A dataset that does not match its layout is an error line; the other datasets still run; exit code 1.
    gt = data / "rabbitai/train/alley/proj_depth"
    gt.rename(gt.with_name("depth_elsewhere"))
    (data / "rabbitai/train/garden/proj_depth").rename(data / "rabbitai/train/garden/depth_elsewhere")
    result = CliRunner().invoke(main, [*args, "--output", str(tmp_path / "out2")])
    assert result.exit_code == 1
    assert "error: rabbitai: no image/ground-truth pair under" in result.output
    table = json.loads((tmp_path / "out2/paper-table3.json").read_text())
    assert table["status"]["nuscenes_c"] == "done" and table["status"]["rabbitai"].startswith(
        "error: rabbitai: no image"
    )


@pytest.mark.slow
def test_suite_shards_over_two_processes_like_single_runs(tmp_path):
    import os
    import subprocess

    data = tmp_path / "data"
    benchmark_files.make_rabbitai(data / "rabbitai")
    benchmark_files.make_nuscenes(data / "nuscenes_c", {"scene-0062": 2, "scene-1077": 2})
    # the folder that `fakes.__name__` imports from (the repository or tests/, depending on the rootdir)
    importable = Path(fakes.__file__).resolve().parents[fakes.__name__.count(".")]
    env = {**os.environ, "PYTHONPATH": f"{importable}{os.pathsep}{os.environ.get('PYTHONPATH', '')}"}
    cmd = accelerate_launch(
        "eval",
        "--suite",
        "paper-table2",
        "--data-root",
        str(data),
        "--output",
        str(tmp_path / "out"),
        "--allow-partial",
        "--device",
        "cpu",
        "--run",
        f"primedepth=python={fakes.__name__}:noisy",
        "--run",
        f"depth-anything=python={fakes.__name__}:perfect_affine",
    )
    result = subprocess.run(cmd, env=env, cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "warning: kitti not run" in result.stderr
    for run in ("primedepth", "depth-anything", "pixel-wise-average"):
        parts = {
            p.name: p.read_text().count("\n") - 1 for p in (tmp_path / "out/nuscenes_c" / run / "parts").glob("*.csv")
        }
        assert parts == {"rank0.csv": 2, "rank1.csv": 2}, run  # every second frame each
    table = json.loads((tmp_path / "out/paper-table2.json").read_text())
    rows = {r["key"]: r for r in table["rows"]}
    assert rows["depth-anything"]["ours"]["nuscenes_c"]["delta1"] == 100.0 and rows["depth-anything"]["avg_rank"] == 1.0
    assert table["oracle_picks"]["rabbitai"] == [[0.0, 100.0], [0.0, 100.0]]
