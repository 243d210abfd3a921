"""Smoke tests of the benchmark machinery on tiny models (no timing assertions)."""

import json

import pytest
import torch
from click.testing import CliRunner

from primedepth.benchmarking.contenders import build_primedepth, contenders
from primedepth.benchmarking.precision_errors import PRECISION_SPLITS, reference_errors
from primedepth.benchmarking.runs import add_marigold_protocol
from primedepth.benchmarking.worker import measure
from primedepth.cli import main

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.mark.slow  # over 10 s on the 2-core machine (pytest --durations, -m 'not slow' run)
def test_every_contender_builds_and_runs_tiny():
    for name in contenders():
        if name in ("marigold-50x10", "primedepth-onnx"):  # the second: test below (its export is slow)
            continue
        record = measure(name, 32, scale="tiny", warmup=0, repeats=1)
        assert record["seconds"] > 0 and record["weights_bytes"] > 0, name
        assert record["peak_bytes"] >= record["base_bytes"] - 1, name


@pytest.mark.slow
def test_onnx_contender_exports_and_times_onnxruntime_tiny():
    record = measure("primedepth-onnx", 64, scale="tiny", warmup=0, repeats=1, threads=1)
    assert record["seconds"] > 0 and record["threads"] == 1
    assert 1e6 < record["weights_bytes"] < 1e8  # the exported file (the tiny model is ~40 MB in fp32)


def test_auto_contender_runs_in_the_configuration_auto_resolves_to():
    from primedepth.pipelines import precision

    runner = build_primedepth("tiny", torch.device("cpu"), precision="auto", channels_last=True)
    expected = precision.resolve_precision("auto", "cpu")
    assert {m.dtype for m in runner.modules[1].parameters() if m.ndim > 1} == {expected.frozen_dtype}
    assert {m.dtype for m in runner.modules[2].parameters()} == {expected.labeller_dtype}


def test_marigold_protocol_is_extrapolated_from_one_and_two_steps():
    rows = [
        dict(contender="marigold-1x1", resolution=64, seconds=3.0, label="", notes=""),
        dict(contender="marigold-2x1", resolution=64, seconds=5.0, label="", notes=""),
    ]
    derived = [r for r in add_marigold_protocol(rows) if r.get("derived")]
    assert len(derived) == 1 and derived[0]["seconds"] == pytest.approx(10 * (3.0 + 49 * 2.0))


@pytest.mark.slow  # over 10 s on the 2-core machine (pytest --durations, -m 'not slow' run)
def test_bench_cli_in_subprocesses_writes_table_json_and_plot(tmp_path):
    out = tmp_path / "bench"
    result = CliRunner().invoke(
        main,
        [
            "bench",
            "--device",
            "cpu",
            "--scale",
            "tiny",
            "--resolutions",
            "32",
            "--contenders",
            "primedepth,primedepth-authors,depth-anything-v2-s",
            "--warmup",
            "0",
            "--repeats",
            "1",
            "--threads",
            "1",
            "--output-dir",
            str(out),
        ],
    )
    assert result.exit_code == 0, result.output
    data = json.loads((out / "results.json").read_text())
    assert {r["contender"] for r in data["results"]} == {"primedepth", "primedepth-authors", "depth-anything-v2-s"}
    assert all("error" not in r for r in data["results"])
    assert "time vs ours" in (out / "results.md").read_text()
    assert (out / "bench.png").stat().st_size > 0


def test_fast_and_low_memory_paths_match_the_reference_in_fp32(reference_dir):
    splits = {k: PRECISION_SPLITS[k] for k in ("fp32 + channels_last", "fp32 + low_memory")}
    for name, errors in reference_errors(reference_dir, splits).items():
        assert errors["worst"] <= 1e-4, (name, errors)


def test_pipeline_call_with_low_memory_matches_default(tiny_pipe, rgb_image):
    a = tiny_pipe(rgb_image, caption="none", noise="none").inverse_depth[0]
    b = tiny_pipe(rgb_image, caption="none", noise="none", low_memory=True).inverse_depth[0]
    assert abs(a - b).max() <= 1e-4 * abs(a).max()


def test_build_once_builds_each_contender_once_and_times_every_size(monkeypatch):
    """``run_benchmark(build_once=True)``: one build per contender, one record per size with its own input size; a
    size that fails gives an error record and the next size still runs."""
    from primedepth.benchmarking import runs, worker

    registry = contenders()
    builds = []

    def counting(scale, device, **options):
        builds.append(options)
        runner = build_primedepth(scale, device, **options)
        run = runner.run

        def fails_at_48(images):
            if images.shape[-1] == 48:
                raise RuntimeError("CUDA out of memory")
            return run(images)

        runner.run = fails_at_48
        return runner

    registry["primedepth"].build = counting
    monkeypatch.setattr(worker, "contenders", lambda: registry)
    records = runs.run_benchmark(
        ["primedepth"], [32, 48, 64], build_once=True, subprocesses=False, log=lambda m: None, scale="tiny", warmup=0
    )
    assert len(builds) == 1
    assert [r["resolution"] for r in records] == [32, 48, 64]
    assert "out of memory" in records[1]["error"]
    assert [records[0]["input_size"], records[2]["input_size"]] == [32, 64]
    assert all(r["seconds"] > 0 and len(r["seconds_all"]) == 3 for r in (records[0], records[2]))
