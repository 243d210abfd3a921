"""Every command keeps the exit-code contract (docs/reliability.md): a full or read-only disk is one ``error:`` line
naming the output and exit 3, a refused model file one line and exit 2; never a traceback."""

import errno
import os

import click
import pytest
from click.testing import CliRunner
from helpers import benchmark_files

from primedepth.cli import main
from primedepth.cli.errors import output_error, reported_errors


def _errors(result):
    return [line for line in result.output.splitlines() if line.startswith("error:")]


def _disk(failure):
    """``os.fsync`` failing like a full or read-only disk (every atomic write and every CSV row fsyncs)."""

    def fsync(fd):
        raise OSError(failure, os.strerror(failure))

    return fsync


@pytest.mark.parametrize("failure", [errno.ENOSPC, errno.EROFS])
def test_eval_on_a_full_or_read_only_disk(tmp_path, monkeypatch, failure, one_thread):
    benchmark_files.make_scannet(tmp_path / "data", n=2)
    monkeypatch.setattr(os, "fsync", _disk(failure))
    out = tmp_path / "out"
    args = ["eval", "--dataset", "scannet", "--data-root", str(tmp_path / "data"), "--output", str(out)]
    result = CliRunner().invoke(main, [*args, "--model", "tiny-random", "--allow-partial"])
    assert result.exit_code == 3, result.output
    (line,) = _errors(result)
    assert line.startswith(f"error: {out}") and f"cannot write ({os.strerror(failure)})" in line
    assert isinstance(result.exception, SystemExit)


def test_convert_on_a_full_disk(reference_dir, tmp_path, monkeypatch):
    from diffusers import ModelMixin
    from safetensors import SafetensorError

    def full(self, directory, **kwargs):  # what safetensors raises when the disk fills while a part is written
        raise SafetensorError("Error while serializing: I/O error: No space left on device (os error 28)")

    monkeypatch.setattr(ModelMixin, "save_pretrained", full)
    out = tmp_path / "converted"
    args = [
        str(reference_dir / "official_tiny.ckpt"),
        str(out),
        "--config",
        str(reference_dir / "official_tiny_config.json"),
    ]
    result = CliRunner().invoke(main, ["convert", *args, "--local-files-only"])
    assert result.exit_code == 3, result.output
    (line,) = _errors(result)
    assert line.startswith(f"error: {out}: cannot write (no space left on device")
    assert not out.exists()


def test_writers_that_fill_the_disk_without_an_errno_are_recognised(tmp_path):
    """The errors torch.save, safetensors and ndarray.tofile raised on a full 1 MiB tmpfs (none has an errno)."""
    failures = [
        RuntimeError("[enforce fail at inline_container.cc:672] . unexpected pos 576 vs 534"),
        Exception("Error while serializing: I/O error: No space left on device (os error 28)"),
        OSError("12288 requested and 8160 written"),
    ]
    for failure in failures:
        line = output_error(failure, [tmp_path])
        assert line is not None and line.startswith(f"{tmp_path}: cannot write (no space left on device"), line
    assert output_error(ValueError("a bug"), [tmp_path]) is None
    assert output_error(FileNotFoundError(errno.ENOENT, "gone", "/x"), [tmp_path]) is None  # not a write failure


def test_permission_denied_counts_as_an_output_error_only_under_the_outputs(tmp_path):
    denied_out = PermissionError(errno.EACCES, "Permission denied", str(tmp_path / "out" / "a.npy"))
    denied_in = PermissionError(errno.EACCES, "Permission denied", "/etc/shadow")
    assert (
        output_error(denied_out, [tmp_path / "out"])
        == f"{tmp_path / 'out' / 'a.npy'}: cannot write (Permission denied)"
    )
    assert output_error(denied_in, [tmp_path / "out"]) is None


def test_reported_errors_leaves_bugs_as_tracebacks(tmp_path):
    @click.command()
    @click.option("--out")
    @reported_errors("out")
    def command(out):
        raise KeyError("a bug")

    result = CliRunner().invoke(command, ["--out", str(tmp_path)])
    assert isinstance(result.exception, KeyError)
