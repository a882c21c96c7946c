"""Output folders: created when missing and checked writable before anything is computed."""
from __future__ import annotations

import os
from pathlib import Path

from .errors import RequestError

__all__ = ["writable_folder"]


def writable_folder(out, key: str = "out") -> Path:
    """The folder `out`, created if missing; RequestError(key, ...) when it cannot be created or
    written."""
    path = Path(out)
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise RequestError(key, f"cannot create {str(path)!r}: {e.strerror or e}") from None
    if not os.access(path, os.W_OK):
        raise RequestError(key, f"{str(path)!r} is not writable")
    return path
