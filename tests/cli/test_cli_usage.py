"""Usage errors decided before the heavy imports, ``--threads`` on every command that computes, option spellings."""

import json
import os
import subprocess
import sys
from fractions import Fraction

import numpy as np
import pytest
import torch
from click.testing import CliRunner
from PIL import Image

from primedepth.cli import COMMANDS, main
from primedepth.cli.usage import _cuda_impossible, formats_callback

HEAVY = ("torch", "diffusers", "transformers")

USAGE_SCRIPT = """
import json, sys
from primedepth.cli import main
for args in json.loads(sys.argv[1]):
    try:
        main(args, prog_name="primedepth")
        code = 0
    except SystemExit as exit:
        code = exit.code
    print(json.dumps([code, [m for m in {heavy!r} if m in sys.modules]]), flush=True)
"""


def test_usage_errors_are_decided_before_torch_is_imported(tmp_path):
    """Each case runs in one fresh process: the error and its exit code come before torch, diffusers or transformers
    is imported (the imports, not the checks, take the seconds)."""
    image = tmp_path / "x.png"
    Image.new("RGB", (8, 8)).save(image)
    out = str(tmp_path / "out")
    cases = {
        "bad format": (["predict", str(image), "-o", out, "--format", "npy,colr"], 2, "unknown format(s) ['colr']"),
        "missing input": (["predict", str(tmp_path / "nope.png"), "-o", out], 1, "nope.png: no such file or folder"),
        "empty glob": (["predict", str(tmp_path / "*.jpg"), "-o", out], 1, "*.jpg: no files match this pattern"),
        "unwritable -o": (["predict", str(image), "-o", str(image / "sub")], 3, "output folder is not writable"),
        "video, missing input": (["video", str(tmp_path / "nope.mp4"), "-o", out], 1, "nope.mp4: no such file"),
    }
    if _cuda_impossible():  # a machine without a GPU driver
        cases["cuda"] = (["predict", str(image), "-o", out, "--device", "cuda"], 2, "no CUDA GPU is visible")
    script = USAGE_SCRIPT.format(heavy=HEAVY)
    for name, (args, code, message) in cases.items():
        done = subprocess.run(
            [sys.executable, "-c", script, json.dumps([args])], capture_output=True, text=True, timeout=120
        )
        exit_code, imported = json.loads(done.stdout.strip().splitlines()[-1])
        assert exit_code == code and message in done.stderr, (name, done.stderr)
        assert imported == [], (name, imported)
        assert "Traceback" not in done.stderr


def test_colour_is_a_format_spelling():
    assert formats_callback(None, None, "npy, colour,color,png16") == "npy,color,png16"
    with pytest.raises(Exception, match="unknown format"):
        formats_callback(None, None, " , ,")
    with pytest.raises(Exception, match=r"unknown format\(s\) \[.tif.\]"):
        formats_callback(None, None, "npy,tif")


@pytest.mark.slow  # over 10 s on the 2-core machine (the video module imports the pipeline)
def test_video_loads_no_model_when_every_output_exists(tmp_path, monkeypatch):
    from primedepth.jobs.video import write_video
    from primedepth.outputs.manifest import OutputManifest
    from primedepth.pipelines.pipeline import PrimeDepthPipeline

    clip = tmp_path / "clip.mp4"
    write_video(clip, (np.full((16, 16, 3), 90, np.uint8) for _ in range(2)), Fraction(5))
    out = tmp_path / "out"
    out.mkdir()
    outputs = [out / "clip_depth.mp4", out / "clip_depth.npz"]
    OutputManifest(out, inputs=[clip]).claim(outputs)  # outputs are ours only when a run of ours recorded them
    for path in outputs:
        path.write_bytes(b"done")

    def no_loading(*args, **kwargs):
        raise AssertionError("the model was loaded although every output exists")

    monkeypatch.setattr(PrimeDepthPipeline, "from_pretrained", no_loading)
    result = CliRunner().invoke(main, ["video", str(clip), "-o", str(out), "--model", "tiny-random"])
    assert result.exit_code == 0, result.output
    assert "outputs exist, skipped" in result.output and "done: 0 written, 0 failed" in result.output


COMPUTING = ("predict", "video", "eval", "demo", "train", "pseudo-label", "bench", "app")


@pytest.mark.parametrize("name", COMPUTING)
def test_every_command_that_computes_takes_threads(name):
    result = CliRunner().invoke(main, [name, "--help"])
    assert result.exit_code == 0 and "--threads" in result.output and "PRIMEDEPTH_THREADS" in result.output
    assert set(COMPUTING) <= set(COMMANDS)


def test_threads_reach_torch_before_and_after_it_is_imported(monkeypatch):
    # in a fresh process, the option is parsed before torch is imported: torch starts with that many threads (one:
    # torch caps the environment's count at the number of cores, and its default here is one per core)
    script = (
        "import sys\nfrom primedepth.cli import main\n"
        "try:\n    main(['demo', '--threads', '1', '--scenes', 'x'])\nexcept SystemExit:\n    pass\n"
        "assert 'torch' not in sys.modules\nimport torch\nprint(torch.get_num_threads())"
    )
    env = {k: v for k, v in os.environ.items() if k not in ("OMP_NUM_THREADS", "PRIMEDEPTH_THREADS")}
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, env=env, timeout=120)
    assert done.stdout.split()[-1] == "1", done.stderr
    # $PRIMEDEPTH_THREADS works the same way (the app and worker processes); --scenes x is a usage error that comes
    # after the eager --threads (--help would come first)
    done = subprocess.run(
        [sys.executable, "-c", script.replace("'--threads', '1', ", "")],
        capture_output=True,
        text=True,
        env={**env, "PRIMEDEPTH_THREADS": "1"},
        timeout=120,
    )
    assert done.stdout.split()[-1] == "1", done.stderr
    # here torch is loaded already: the option sets it directly (restored afterwards)
    before = torch.get_num_threads()
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    monkeypatch.delenv("PRIMEDEPTH_THREADS", raising=False)
    try:
        CliRunner().invoke(main, ["predict", "--threads", "3", "--help"])
        assert torch.get_num_threads() == 3 and os.environ["OMP_NUM_THREADS"] == "3"
    finally:
        torch.set_num_threads(before)


def test_help_shows_no_docstring_markup():
    for args in ([], ["eval"]):
        result = CliRunner().invoke(main, [*args, "--help"])
        assert result.exit_code == 0 and "``" not in result.output
    assert "Score one model on one benchmark" in CliRunner().invoke(main, ["--help"]).output


def test_eval_takes_the_output_option_of_the_other_commands():
    result = CliRunner().invoke(main, ["eval", "--help"])
    assert "-o, --output-dir, --output" in result.output
