"""``primedepth video`` when killed or given clashing names: a kill while the frame images are written leaves no
folder that passes for done, temporaries of killed runs are removed, same-named inputs and the user's files are
reported instead of skipped or overwritten."""

import os
import shutil
import signal
import subprocess
import sys
from fractions import Fraction
from types import SimpleNamespace

import numpy as np
import pytest
from click.testing import CliRunner

from primedepth.cli import main
from primedepth.data.scenes import render_trajectory
from primedepth.jobs.video import predict_video, write_video
from primedepth.outputs.manifest import OutputClashError
from primedepth.utils.atomic import is_our_temp


def flat_pipe(image, **kwargs):
    """Stands in for the pipeline (the clash checks come before any prediction)."""
    return SimpleNamespace(inverse_depth=[np.ones(image.shape[:2], np.float32)])


# `primedepth video` in a process that SIGKILLs itself while writing the 4th frame image (3 are written by then)
KILLED_WHILE_WRITING_FRAMES = """
import os, signal, sys
import primedepth.jobs.video as video
real, written = video.png16_in_range, []
def png16_in_range(values, lo, hi):
    if len(written) == 3:
        os.kill(os.getpid(), signal.SIGKILL)
    written.append(1)
    return real(values, lo, hi)
video.png16_in_range = png16_in_range
from primedepth.cli import main
main(sys.argv[1:])
"""


@pytest.fixture(scope="module")
def clip(tmp_path_factory):
    path = tmp_path_factory.mktemp("clip") / "walk.mp4"
    assert write_video(path, (s.image for s in render_trajectory(11, 10, 48, 64)), Fraction(10)) == 10
    return path


def test_a_kill_while_frames_are_written_is_redone_not_skipped(tmp_path, clip):
    out = tmp_path / "out"
    args = ["video", str(clip), "-o", str(out), "--model", "tiny-random", "--frames", "png16", "--no-npz"]
    killed = subprocess.run([sys.executable, "-c", KILLED_WHILE_WRITING_FRAMES, *args], capture_output=True)
    assert killed.returncode == -signal.SIGKILL, killed.stderr.decode()[-2000:]
    assert (out / "walk_depth.mp4").is_file() and not (out / "walk_frames").exists()
    assert [p for p in out.iterdir() if is_our_temp(p)]  # the half-written frame folder, under a temporary name
    rerun = CliRunner().invoke(main, args)
    assert rerun.exit_code == 0, rerun.output
    assert "skipped" not in rerun.output and "(0 predicted, 10 resumed)" in rerun.output
    assert len(list((out / "walk_frames").glob("*_16bit.png"))) == 10
    assert not [p for p in out.rglob("*") if is_our_temp(p)] and not (out / "walk_frames_raw").exists()
    again = CliRunner().invoke(main, args)
    assert again.exit_code == 0 and "outputs exist, skipped" in again.output


def test_same_named_videos_are_reported_like_predict(tmp_path, clip):
    for folder in ("a", "b"):
        (tmp_path / folder).mkdir()
        shutil.copy(clip, tmp_path / folder / "walk.mp4")
    args = [str(tmp_path / f / "walk.mp4") for f in ("a", "b")]
    result = CliRunner().invoke(
        main, ["video", *args, "-o", str(tmp_path / "out"), "--model", "tiny-random", "--max-frames", "2"]
    )
    assert result.exit_code == 1, result.output
    assert "done: 1 written, 1 failed" in result.output
    assert f"{args[1]}: its outputs would overwrite those of {args[0]} (same name); rename one" in result.output


def test_the_users_files_under_output_names_are_left_alone(tmp_path, clip):
    (tmp_path / "walk_frames_raw").mkdir()
    (tmp_path / "walk_frames_raw" / "mine.txt").write_text("the user's")
    with pytest.raises(OutputClashError, match="walk_frames_raw exists and no primedepth run wrote it"):
        predict_video(flat_pipe, clip, tmp_path, progress=False)
    (tmp_path / "walk_frames_raw" / "mine.txt").unlink()
    (tmp_path / "walk_frames_raw").rmdir()
    (tmp_path / "walk_depth.mp4").write_text("the user's")
    with pytest.raises(OutputClashError, match="walk_depth.mp4 exists"):
        predict_video(flat_pipe, clip, tmp_path, progress=False)
    assert (tmp_path / "walk_depth.mp4").read_text() == "the user's"
    assert predict_video(flat_pipe, clip, tmp_path / "out", progress=False).frames == 10


def test_a_fifo_is_not_a_regular_file(tmp_path):
    os.mkfifo(tmp_path / "clip.mp4")
    result = CliRunner().invoke(main, ["video", str(tmp_path / "clip.mp4"), "-o", str(tmp_path / "out")])
    assert result.exit_code == 1 and f"{tmp_path / 'clip.mp4'}: not a regular file" in result.output
