import json
import os
import signal
import subprocess
import sys
import textwrap

import pytest
from click.testing import CliRunner
from helpers import benchmark_files
from helpers.launchers import accelerate_launch

from primedepth.cli import main

KILLABLE_MODEL = textwrap.dedent(
    """
    import os, signal
    import numpy as np
    from primedepth.evaluation import Predictor

    class Logged(Predictor):
        name, space = "logged", "disparity"

        def predict(self, sample_id, rgb):
            log = os.environ["CALL_LOG"]
            calls = open(log).read().split() if os.path.exists(log) else []
            if len(calls) == int(os.environ.get("KILL_AFTER", "-1")):
                os.kill(os.getpid(), signal.SIGKILL)  # killed half-way, like a pre-empted job
            with open(log, "a") as f:
                f.write(sample_id + "\\n")
            y, x = np.mgrid[0 : rgb.shape[0], 0 : rgb.shape[1]]
            return (1.0 + x + 2 * y).astype(np.float32)

    def make():
        return Logged()
    """
)


def run_cli(args, env):
    return subprocess.run(
        [sys.executable, "-c", "from primedepth.cli import main; main()", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_eval_killed_half_way_resumes_without_recomputing(tmp_path):
    benchmark_files.make_scannet(tmp_path / "data", n=4)
    (tmp_path / "killable_model.py").write_text(KILLABLE_MODEL)
    log = tmp_path / "calls.txt"
    env = {
        **os.environ,
        "PYTHONPATH": f"{tmp_path}{os.pathsep}{os.environ.get('PYTHONPATH', '')}",
        "CALL_LOG": str(log),
    }
    args = [
        "eval",
        "--dataset",
        "scannet",
        "--data-root",
        str(tmp_path / "data"),
        "--output",
        str(tmp_path / "out"),
        "--model",
        "python=killable_model:make",
        "--allow-partial",
    ]
    first = run_cli(args, {**env, "KILL_AFTER": "2"})
    assert first.returncode == -signal.SIGKILL
    run = tmp_path / "out/scannet/logged"
    assert not (run / "summary.json").exists() and not (run / "per_sample.csv").exists()
    assert len(log.read_text().split()) == 2

    second = run_cli(args, env)
    assert second.returncode == 0, second.stderr
    calls = log.read_text().split()
    assert len(calls) == 4 and len(set(calls)) == 4  # the two finished samples were not recomputed
    assert json.loads((run / "summary.json").read_text())["samples"] == 4
    assert (run / "per_sample.csv").read_text().count("\n") == 5
    assert (tmp_path / "out/table.md").is_file()


@pytest.mark.slow  # over 10 s on the 2-core machine (pytest --durations, -m 'not slow' run)
def test_eval_tiny_random_primedepth_writes_outputs_and_resumes(tmp_path):
    benchmark_files.make_diode(tmp_path / "data", h=24, w=32)
    args = [
        "eval",
        "--dataset",
        "diode",
        "--data-root",
        str(tmp_path / "data"),
        "--output",
        str(tmp_path / "out"),
        "--model",
        "tiny-random",
        "--allow-partial",
        "--device",
        "cpu",
    ]
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 0, result.output
    assert "3 samples" in result.output
    run = tmp_path / "out/diode/primedepth-tiny-random"
    for name in ("per_sample.csv", "summary.json", "summary.md"):
        assert (run / name).is_file()
    assert len(list((run / "predictions").glob("*.npy"))) == 3
    for name in ("boxplot_delta1.png", "strips_worst.png", "strips_best.png"):
        assert (tmp_path / "out/diode" / name).stat().st_size > 0
    assert "primedepth-tiny-random" in (tmp_path / "out/table.md").read_text()
    before = (run / "parts/rank0.csv").read_text()
    again = CliRunner().invoke(main, args)
    assert again.exit_code == 0 and (run / "parts/rank0.csv").read_text() == before  # nothing recomputed


def test_eval_errors_are_clear(tmp_path):
    benchmark_files.make_nyu(tmp_path / "nyu", n=1)
    result = CliRunner().invoke(main, ["eval", "--dataset", "nyu", "--data-root", str(tmp_path / "nyu")])
    assert result.exit_code == 1 and "--allow-partial" in result.output
    assert result.output.startswith("error: NYUv2: found 1 samples")
    result = CliRunner().invoke(
        main,
        [
            "eval",
            "--dataset",
            "nyu",
            "--data-root",
            str(tmp_path / "nyu"),
            "--allow-partial",
            "--model",
            f"depth-anything-v2={tmp_path / 'none'}",
        ],
    )
    # missing weights are a model error: exit 2 and one error: line, as for predict (docs/reliability.md)
    assert result.exit_code == 2 and "error: Depth Anything V2 weights not found" in result.output


@pytest.mark.slow  # over 10 s on the 2-core machine (pytest --durations, -m 'not slow' run)
def test_accelerate_launch_shards_over_two_processes(tmp_path):

    benchmark_files.make_scannet(tmp_path / "data", n=4)
    (tmp_path / "killable_model.py").write_text(KILLABLE_MODEL)
    env = {
        **os.environ,
        "PYTHONPATH": f"{tmp_path}{os.pathsep}{os.environ.get('PYTHONPATH', '')}",
        "CALL_LOG": str(tmp_path / "calls.txt"),
    }
    cmd = accelerate_launch(
        "eval",
        "--dataset",
        "scannet",
        "--data-root",
        str(tmp_path / "data"),
        "--output",
        str(tmp_path / "out"),
        "--model",
        "python=killable_model:make",
        "--allow-partial",
        "--device",
        "cpu",
    )
    result = subprocess.run(cmd, env=env, cwd=tmp_path, capture_output=True, text=True, timeout=180)
    assert result.returncode == 0, result.stderr[-3000:]
    run = tmp_path / "out/scannet/logged"
    parts = {p.name: p.read_text().count("\n") - 1 for p in (run / "parts").glob("*.csv")}
    assert parts == {"rank0.csv": 2, "rank1.csv": 2}  # every second sample each
    calls = (tmp_path / "calls.txt").read_text().split()
    assert sorted(calls) == sorted(set(calls))
    assert json.loads((run / "summary.json").read_text())["samples"] == 4
