"""Atomic file output: write to a temporary file beside the target, then rename.

A reader (or a killed process) never sees a half-written file: either the old file or the new one
is in place.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from pathlib import Path
from typing import Callable, Iterator

from fpdctl.errors import InputError, RuntimeFailure


def ensure_parent_writable(path: str | os.PathLike[str]) -> Path:
    """Check that ``path`` can be created: its folder exists (or can be made) and is writable.

    Raises:
        InputError: the folder cannot be created or written to.
    """
    target = Path(path)
    parent = target.parent if str(target.parent) else Path(".")
    try:
        parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise InputError(f"cannot create output folder {parent}: {exc.strerror or exc}") from exc
    if not os.access(parent, os.W_OK):
        raise InputError(f"output folder is not writable: {parent}")
    if target.is_dir():
        raise InputError(f"output path is a directory: {target}")
    return target


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike[str]) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; on success rename it over ``path``.

    On any exception the temporary file is removed and ``path`` is left as it was.
    """
    target = ensure_parent_writable(path)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    os.close(fd)
    tmp = Path(tmp_name)
    # mkstemp creates 0600 files; give the result the permissions a plain open() would.
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(tmp, 0o666 & ~umask)
    try:
        yield tmp
        with open(tmp, "rb+") as handle:
            os.fsync(handle.fileno())
        os.replace(tmp, target)
    except OSError as exc:
        tmp.unlink(missing_ok=True)
        raise RuntimeFailure(f"could not write {target}: {exc.strerror or exc}") from exc
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def atomic_write_bytes(path: str | os.PathLike[str], data: bytes) -> None:
    """Write ``data`` to ``path`` atomically."""
    with atomic_path(path) as tmp:
        tmp.write_bytes(data)


def atomic_write_text(path: str | os.PathLike[str], text: str) -> None:
    """Write ``text`` (UTF-8) to ``path`` atomically."""
    atomic_write_bytes(path, text.encode("utf-8"))


def atomic_save(path: str | os.PathLike[str], writer: Callable[[Path], None]) -> None:
    """Call ``writer(tmp_path)`` and move the result to ``path`` atomically."""
    with atomic_path(path) as tmp:
        writer(tmp)


def require_file(path: str | os.PathLike[str], what: str = "file") -> Path:
    """Return ``path`` as a Path if it is an existing file, else raise a one-line InputError."""
    p = Path(path)
    if not p.exists():
        raise InputError(f"{what} not found: {p}")
    if not p.is_file():
        raise InputError(f"{what} is not a file: {p}")
    return p


def require_dir(path: str | os.PathLike[str], what: str = "directory") -> Path:
    """Return ``path`` as a Path if it is an existing directory, else raise InputError."""
    p = Path(path)
    if not p.exists():
        raise InputError(f"{what} not found: {p}")
    if not p.is_dir():
        raise InputError(f"{what} is not a directory: {p}")
    return p
