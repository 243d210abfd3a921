"""One atomic-write helper: nothing half-written, errors name the final path, temporaries of dead writers removed
by the next predict / eval run (including a real process killed with SIGKILL in the middle of a write)."""

import errno
import os
import signal
import subprocess
import sys

import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image

from primedepth.cli import main
from primedepth.utils.atomic import (
    TEMP_PREFIX,
    atomic_dir,
    atomic_write,
    is_our_temp,
    remove_stale_temps,
)

KILLED_WRITER = """
import sys, time
from primedepth.utils.atomic import atomic_path
with atomic_path(sys.argv[1]) as tmp:
    tmp.write_bytes(b"half")
    print(tmp, flush=True)
    time.sleep(60)
"""


def _dead_pid():
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def _killed_mid_write(target):
    """A real writer, SIGKILLed while its temporary file exists; returns that file."""
    proc = subprocess.Popen([sys.executable, "-c", KILLED_WRITER, str(target)], stdout=subprocess.PIPE, text=True)
    tmp = proc.stdout.readline().strip()
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    assert os.path.exists(tmp) and not target.exists()
    return tmp


def test_stale_temps_of_dead_writers_are_removed_and_live_ones_kept(tmp_path):
    dead = tmp_path / "sub" / f"{TEMP_PREFIX}{_dead_pid()}-x.npy"
    dead.parent.mkdir()
    dead.write_bytes(b"partial")
    dead_dir = tmp_path / f"{TEMP_PREFIX}{_dead_pid()}-model"
    (dead_dir / "unet").mkdir(parents=True)
    live = tmp_path / f"{TEMP_PREFIX}{os.getppid()}-y.png"  # the parent process is alive
    live.write_bytes(b"being written")
    user = tmp_path / ".notes.tmp"
    user.write_text("the user's")
    assert is_our_temp(dead) and is_our_temp(dead_dir) and not is_our_temp(user)
    removed = remove_stale_temps(tmp_path)
    assert sorted(removed) == sorted([dead, dead_dir])
    assert live.exists() and user.exists() and not dead.exists() and not dead_dir.exists()


def _users_files_named_like_temporaries(folder):
    """Files and a folder of the user's that look like temporaries of a dead process to a name-only test."""
    pid = _dead_pid()
    files = [folder / f".notes.txt.{pid}.tmp", folder / f".x.png.{pid}.tmp.png", folder / f".draft.{pid}.tmp.txt"]
    for f in files:
        f.write_text("the user's")
    backup = folder / f".backup.{pid}.tmp"
    (backup / "inner").mkdir(parents=True)
    (backup / "inner" / "keep.txt").write_text("the user's")
    return [*files, backup / "inner" / "keep.txt"]


def test_the_sweep_never_touches_files_it_did_not_create(tmp_path, rgb_image):
    out = tmp_path / "out"
    out.mkdir()
    users = _users_files_named_like_temporaries(out)
    assert remove_stale_temps(out) == [] and all(f.exists() for f in users)
    Image.fromarray(rgb_image).save(tmp_path / "x.png")
    args = ["predict", str(tmp_path / "x.png"), "-o", str(out), "--model", "tiny-random", "--format", "npy"]
    for _ in range(2):  # predicting, then nothing to predict: the sweep runs both times
        result = CliRunner().invoke(main, args)
        assert result.exit_code == 0, result.output
        assert all(f.read_text() == "the user's" for f in users)


def test_write_errors_name_the_final_path_and_leave_nothing(tmp_path, monkeypatch):
    target = tmp_path / "out" / "x.npy"

    def full(fd):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(os, "fsync", full)
    with pytest.raises(OSError, match="No space left") as info:
        atomic_write(target, b"data")
    assert info.value.filename == str(target) and info.value.errno == errno.ENOSPC
    assert list((tmp_path / "out").iterdir()) == []


def test_atomic_dir_respects_the_umask_and_replaces_whole(tmp_path):
    old = os.umask(0o022)
    try:
        with atomic_dir(tmp_path / "model") as tmp:
            (tmp / "a.txt").write_text("one")
        assert (tmp_path / "model" / "a.txt").read_text() == "one"
        assert (tmp_path / "model").stat().st_mode & 0o777 == 0o755
        with pytest.raises(RuntimeError):
            with atomic_dir(tmp_path / "model") as tmp:
                (tmp / "b.txt").write_text("two")
                raise RuntimeError("killed half-way")
        assert sorted(p.name for p in tmp_path.iterdir()) == ["model"]
        assert [p.name for p in (tmp_path / "model").iterdir()] == ["a.txt"]
    finally:
        os.umask(old)


def test_predict_removes_temps_of_killed_runs(tmp_path, rgb_image):
    Image.fromarray(rgb_image).save(tmp_path / "x.png")
    out = tmp_path / "out"
    out.mkdir()
    killed = _killed_mid_write(out / "x.npy")
    dead = out / f"{TEMP_PREFIX}{_dead_pid()}-x_16bit.png"
    dead.write_bytes(b"partial")
    result = CliRunner().invoke(main, ["predict", str(tmp_path / "x.png"), "-o", str(out), "--model", "tiny-random"])
    assert result.exit_code == 0, result.output
    assert not os.path.exists(killed) and not dead.exists()
    outputs = sorted(p.name for p in out.iterdir() if not p.name.startswith("."))
    assert outputs == ["x.npy", "x_16bit.png", "x_color.png"]
    assert np.load(out / "x.npy").shape == (75, 93)


def test_eval_removes_temps_of_killed_runs(tmp_path):
    from helpers import benchmark_files
    from helpers.fakes import AffineOfGT

    from primedepth.evaluation import DATASETS, evaluate

    benchmark_files.make_nyu(tmp_path / "data")
    ds = DATASETS["nyu"](tmp_path / "data", allow_partial=True)
    predictor = AffineOfGT(ds, "disparity")
    run = tmp_path / "out" / "nyu" / predictor.name
    (run / "predictions").mkdir(parents=True)
    killed = _killed_mid_write(run / "predictions" / "a.npy")
    dead = run / f"{TEMP_PREFIX}{_dead_pid()}-summary.json"
    dead.write_text("{")
    evaluate(ds, predictor, tmp_path / "out")
    assert not os.path.exists(killed) and not dead.exists()
    assert not [p for p in (tmp_path / "out").rglob("*") if is_our_temp(p)]
