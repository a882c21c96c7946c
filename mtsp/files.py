"""Output folders: checked writable before anything is computed, and written whole or not at all.

`check_out(out)` checks, before a long computation, that `out` can be written without creating
anything.  `staged(out)` is where a command writes its outputs: a temporary folder beside `out` (``.<name>.partial-<pid>``),
moved into place only when everything was written — an error or an interrupt removes it and leaves
`out` as it was.  Into an existing `out`, the new outputs replace what the command owns there: the
entries listed in its manifest (`MANIFEST`, written by the previous run) and those of the same
names; anything else in the folder is left alone.
"""
from __future__ import annotations

import os
import shutil
from contextlib import contextmanager
from pathlib import Path

from .errors import RequestError

__all__ = ["check_out", "staged", "MANIFEST"]

MANIFEST = ".mtsp-output"   # the entries an mtsp command wrote into a folder, one a line


def _existing_parent(path: Path) -> Path:
    p = path.parent
    while not p.exists() and p != p.parent:
        p = p.parent
    return p


def check_out(out, key: str = "out") -> Path:
    """RequestError(key, ...) unless `out` can be written: an existing writable folder, or a name
    whose nearest existing parent is a writable folder.  Creates nothing."""
    path = Path(out)
    if path.exists():
        if not path.is_dir():
            raise RequestError(key, f"{str(path)!r} exists and is not a folder")
        if not os.access(path, os.W_OK):
            raise RequestError(key, f"{str(path)!r} is not writable")
        return path
    parent = _existing_parent(path.absolute())
    if not parent.is_dir():
        raise RequestError(key, f"cannot create {str(path)!r}: {str(parent)!r} is not a folder")
    if not os.access(parent, os.W_OK):
        raise RequestError(key, f"cannot create {str(path)!r}: {str(parent)!r} is not writable")
    return path


def _remove(p: Path) -> None:
    if p.is_dir() and not p.is_symlink():
        shutil.rmtree(p, ignore_errors=True)
    else:
        try:
            p.unlink()
        except FileNotFoundError:
            pass


@contextmanager
def staged(out, key: str = "out"):
    """Yield a temporary folder beside `out` to write into; on success its entries replace what
    the command owns in `out` (see the module docstring), on any exception (an interrupt too) it
    is removed and `out` is left as it was."""
    out = check_out(out, key).absolute()
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.parent / f".{out.name}.partial-{os.getpid()}"
    _remove(tmp)
    tmp.mkdir()
    try:
        yield tmp
        names = sorted(p.name for p in tmp.iterdir())
        (tmp / MANIFEST).write_text("".join(n + "\n" for n in names))
        if not out.exists():
            os.replace(tmp, out)
            return
        old = out / MANIFEST
        owned = set(names)
        if old.is_file():
            owned |= {n for n in old.read_text().splitlines() if n and "/" not in n and n not in (".", "..")}
        trash = out.parent / f".{out.name}.old-{os.getpid()}"
        _remove(trash)
        trash.mkdir()
        for n in sorted(owned):
            if (out / n).exists() or (out / n).is_symlink():
                os.replace(out / n, trash / n)
        for n in names + [MANIFEST]:
            os.replace(tmp / n, out / n)
        _remove(trash)
    finally:
        _remove(tmp)
