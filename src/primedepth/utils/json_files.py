"""Reading a JSON file a user pointed at: one line naming the file and the problem, never a traceback."""

from __future__ import annotations

import json
from pathlib import Path


def read_json(path: str | Path, what: str, error: type[Exception] | None = None):
    """The parsed content of ``path``. A missing file raises ``error`` (default ``FileNotFoundError``) with
    "PATH: WHAT not found"; invalid JSON raises ``error`` (default ``ValueError``) with "PATH: not valid JSON (...)"."""
    path = Path(path)
    try:
        return json.loads(path.read_text())
    except FileNotFoundError:
        raise (error or FileNotFoundError)(f"{path}: {what} not found") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise (error or ValueError)(f"{path}: not valid JSON ({err})") from None
