"""The exit-code contract every command keeps (docs/reliability.md), in one place.

| code | meaning |
|---|---|
| 0 | everything done |
| 1 | some inputs failed (each named) |
| 2 | usage or model error: a broken or refused model file, run settings that do not match |
| 3 | an output could not be written (disk full, read-only, no permission) |

A command's own loop reports what it can (``predict`` names each failed image); what escapes it goes through
``reported_errors``, which turns the errors every command can meet into one ``error:`` line naming the file and the
cause, instead of a traceback. Writers do not all raise ``OSError`` on a full disk: NumPy says "N requested and M
written", ``torch.save`` "unexpected pos", safetensors "No space left on device (os error 28)"; those are recognised
and reported against the command's output folder.
"""

from __future__ import annotations

import errno
import functools
import re
import sys
from pathlib import Path

import click

EXIT_OK, EXIT_INPUTS_FAILED, EXIT_USAGE_OR_MODEL, EXIT_OUTPUT_ERROR = 0, 1, 2, 3

# errors that only writing meets; permission errors count as output errors when they name an output path
WRITE_ERRNOS = {errno.ENOSPC, errno.EDQUOT, errno.EFBIG, errno.EROFS}
DENIED_ERRNOS = {errno.EACCES, errno.EPERM}
# how writers that do not raise an OSError with an errno say that the disk is full
SHORT_WRITE = re.compile(
    r"No space left on device|os error (28|122)|\d+ requested and \d+ written|unexpected pos \d+ vs \d+|"
    r"file write failed|Disk quota exceeded"
)


def model_errors() -> tuple[type[Exception], ...]:
    """Errors meaning "this model, checkpoint or run folder cannot be used as given" (exit 2). Imported when asked:
    the CLI module itself stays light."""
    from ..conversion.loading import WeightsNotFoundError
    from ..conversion.model_folder import ModelError
    from ..evaluation.runner import RunSettingsError
    from ..utils.torch_files import UntrustedCheckpointError

    return ModelError, WeightsNotFoundError, UntrustedCheckpointError, RunSettingsError


def _inside(path: str | Path, folders: list[Path]) -> bool:
    resolved = Path(path).resolve()
    return any(resolved == f or f in resolved.parents for f in folders)


def output_error(err: BaseException, outputs: list[Path]) -> str | None:
    """The ``PATH: cannot write (CAUSE)`` line for ``err`` if it is a failure to write an output, else None."""
    if isinstance(err, OSError) and err.errno is not None:
        named = err.filename is not None and _inside(err.filename, outputs)
        if err.errno in WRITE_ERRNOS or (err.errno in DENIED_ERRNOS and named):
            return f"{err.filename or ', '.join(map(str, outputs))}: cannot write ({err.strerror or err})"
        return None
    if SHORT_WRITE.search(str(err)):
        where = ", ".join(map(str, outputs)) or "output"
        return f"{where}: cannot write (no space left on device: {str(err).strip().splitlines()[0][:200]})"
    return None


def fail_for(err: BaseException, outputs: list[Path], default_code: int = EXIT_USAGE_OR_MODEL) -> None:
    """Exit for an error a command caught: 3 with the ``cannot write`` line if it is a write failure under
    ``outputs``, else ``default_code`` with the error's own message."""
    line = output_error(err, [Path(p).expanduser().resolve() for p in outputs])
    fail(line or str(err), EXIT_OUTPUT_ERROR if line else default_code)


def _close_progress_bars() -> None:
    """End the progress bars still drawn (a loop left by the error), so the error line starts a line of its own."""
    tqdm = sys.modules.get("tqdm")
    for bar in list(getattr(getattr(tqdm, "tqdm", None), "_instances", ())):
        bar.close()


def fail(message: str, code: int) -> None:
    """Print ``error: MESSAGE`` (first line kept, the rest indented) and exit with ``code``."""
    first, *rest = str(message).strip().splitlines() or [""]
    _close_progress_bars()
    click.echo(f"error: {first}", err=True)
    for line in rest:
        click.echo(f"  {line}", err=True)
    sys.exit(code)


def _output_folders(specs, kwargs: dict) -> list[Path]:
    folders = []
    for spec in specs:
        try:
            found = spec(kwargs) if callable(spec) else kwargs.get(spec)
        except Exception:  # the folder cannot be worked out (a broken config): the message names none
            found = None
        for value in found if isinstance(found, list | tuple) else [found]:
            if value:
                folders.append(Path(value).expanduser().resolve())
    return folders


def reported_errors(*outputs):
    """Decorate a click command so that a write failure under its output folders exits 3 and a model error exits
    2, each as one ``error:`` line. ``outputs``: names of the parameters holding output folders, or callables
    taking the parameters and returning folders. Anything else propagates (a bug stays a traceback)."""

    def decorate(command):
        @functools.wraps(command)
        def wrapper(*args, **kwargs):
            try:
                return command(*args, **kwargs)
            except (click.exceptions.ClickException, click.exceptions.Exit, click.exceptions.Abort):
                raise
            except Exception as err:
                line = output_error(err, _output_folders(outputs, kwargs))
                if line is not None:
                    fail(line, EXIT_OUTPUT_ERROR)
                if isinstance(err, model_errors()):
                    fail(str(err), EXIT_USAGE_OR_MODEL)
                raise

        return wrapper

    return decorate
