"""The GPU check's driver (benchmarks/gpu_check.py) on the CPU: its report and targets from recorded step results, and
its steps end to end at tiny scale."""

import importlib.util
import json
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def gpu_check():
    spec = importlib.util.spec_from_file_location("gpu_check", ROOT / "benchmarks" / "gpu_check.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _bench_row(contender, resolution, seconds, peak_gib):
    return dict(contender=contender, resolution=resolution, seconds=seconds, peak_bytes=int(peak_gib * 2**30))


def test_the_paper_figures_are_table_4s(gpu_check, reference_dir):
    """The seconds per image and the peak memory the report compares with are the paper's (tests/reference)."""
    text = (reference_dir / "paper_tables.md").read_text()
    for side, seconds in gpu_check.PAPER_SECONDS.items():
        assert f"| {side}² | {seconds:.2f} |" in text
    assert f"{gpu_check.PAPER_PEAK_GB_1024} GB at 1024²" in text


def test_report_gives_ratios_to_the_paper_and_the_authors_and_checks_the_targets(gpu_check):
    data = dict(
        scale="full",
        device="cuda",
        steps=dict(
            env=dict(gpu="GPU X", torch="2.11", auto_precision="bf16"),
            fidelity={
                "every tensor, fp32": dict(
                    tensors=102, within_tolerance=102, worst=8e-6, worst_tensor="b.depth", problems=[]
                ),
                "every tensor, pytorch defaults": dict(
                    tensors=102, within_tolerance=90, worst=2e-3, worst_tensor="a.z", problems=[]
                ),
                "pipeline outputs per precision": {"fp32": 8e-6, "bf16": 0.1},
            },
            bench=dict(
                resolutions=[768, 1024],
                results=[
                    _bench_row("primedepth-auto", 768, 0.12, 3.0),
                    _bench_row("primedepth-auto", 1024, 0.43, 6.5),
                    _bench_row("primedepth-authors", 768, 0.6, 30.0),
                    dict(contender="primedepth-authors", resolution=1024, error="CUDA out of memory"),
                ],
            ),
            demo={
                "cuda": dict(delta1=0.9124, abs_rel=0.08, seconds=9),
                "cpu": dict(delta1=0.9124, abs_rel=0.08, seconds=30),
                "delta1_difference": 0.0,
                "within_bound": True,
            },
            user=dict(error="timed out after 120 s"),
        ),
    )
    table = gpu_check.report(data)
    assert "| every tensor, fp32 | 102/102 | 8.0e-06 | b.depth |" in table
    assert "| every tensor, pytorch defaults | 90/102 | 2.0e-03 | a.z |" in table
    assert "| primedepth-auto | 0.120 s / 3.00 | 0.430 s / 6.50 |" in table
    assert "| primedepth-authors | 0.600 s / 30.00 | error |" in table
    # 0.83 s / 0.12 s and 1.72 s / 0.43 s (the paper's Table 4 at 768² and 1024²); 0.6 s / 0.12 s
    assert "| primedepth-auto: × faster than the paper's Table 4 (A100 fp32) | 6.9× | 4.0× |" in table
    assert "| primedepth-auto: × faster than the authors' arithmetic here | 5.0× |  |" in table
    assert "Peak at 1024²: ours (auto) 7.0 GB; the authors state 37 GB for their code." in table
    assert "step user: timed out after 120 s" in table
    verdicts = dict(gpu_check.targets(data))
    assert verdicts == {
        "fp32 every tensor <= 0.0001 on the device": True,
        "ours (auto) <= 0.15 s at 768²": True,
        "ours (auto) <= 6 GB peak at 1024²": False,  # 6.5 GiB = 6.98 GB
        "demo δ1 on the device = CPU's within the bound": True,
    }
    data["steps"]["fidelity"]["every tensor, fp32"]["within_tolerance"] = 101
    del data["steps"]["demo"]
    verdicts = dict(gpu_check.targets(data))
    assert verdicts["fp32 every tensor <= 0.0001 on the device"] is False
    assert verdicts["demo δ1 on the device = CPU's within the bound"] is None  # not measured


@pytest.mark.slow  # two step processes (torch imports): ~30 s on the 2-core machine
def test_steps_run_in_their_own_processes_and_a_failing_step_leaves_the_others(gpu_check, tmp_path, monkeypatch):
    """At tiny scale on the CPU: the env and user steps run; a step whose time is spent is recorded as skipped, not
    an exception, and the JSON and the table are written."""
    monkeypatch.setitem(gpu_check.STEP_TIMEOUTS, "demo", 0)
    code = gpu_check.main(["--scale", "tiny", "--device", "cpu", "--steps", "env,user,demo", "--output", str(tmp_path)])
    assert code == 0
    data = json.loads((tmp_path / "gpu_check.json").read_text())
    assert data["steps"]["env"]["device"] == "cpu"
    user = data["steps"]["user"]
    assert user["image"] == [48, 64] and user["fp32"]["precision"] == "fp32"
    assert user["fp32"]["seconds"] > 0 and user["auto"]["seconds"] > 0 and user["fp32"]["peak_gib"] > 0
    assert data["steps"]["demo"]["error"].startswith("skipped")
    assert "## User path: pipeline __call__ on a 48 × 64 image" in (tmp_path / "gpu_check.md").read_text()
