"""A run folder records the settings its rows were scored with; resuming it under other settings is refused."""

import json

from click.testing import CliRunner
from helpers import benchmark_files

from primedepth.cli import main


def _eval(tmp_path, *extra):
    args = ["eval", "--dataset", "scannet", "--data-root", str(tmp_path / "data"), "--output", str(tmp_path / "out")]
    return CliRunner().invoke(main, [*args, "--model", "tiny-random", "--allow-partial", *extra])


def test_resume_with_another_seed_is_refused_and_names_the_file(tmp_path, one_thread):
    benchmark_files.make_scannet(tmp_path / "data", n=2)
    first = _eval(tmp_path, "--seed", "0")
    assert first.exit_code == 0, first.output
    run = tmp_path / "out/scannet/primedepth-tiny-random"
    settings = json.loads((run / "settings.json").read_text())
    assert settings["seed"] == 0 and settings["model"] == "tiny-random" and settings["dtype"] == "fp32"
    rows = (run / "per_sample.csv").read_text()

    second = _eval(tmp_path, "--seed", "5")
    assert second.exit_code == 2
    errors = [line for line in second.output.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and str(run / "settings.json") in errors[0]
    assert "seed 0 now 5" in errors[0] and "Traceback" not in second.output
    assert (run / "per_sample.csv").read_text() == rows  # nothing merged

    same = _eval(tmp_path, "--seed", "0")  # the recorded settings resume (here: nothing left to do)
    assert same.exit_code == 0, same.output
    elsewhere = _eval(tmp_path, "--seed", "5", "--name", "seed5")  # a separate run
    assert elsewhere.exit_code == 0, elsewhere.output
    assert json.loads((tmp_path / "out/scannet/seed5/settings.json").read_text())["seed"] == 5
