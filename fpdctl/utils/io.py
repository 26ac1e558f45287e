"""Atomic file output: write to a temporary file beside the target, then rename.

A reader (or a killed process) never sees a half-written file: either the old file or the new one
is in place.
"""

from __future__ import annotations

import contextlib
import errno
import os
import re
import tempfile
from pathlib import Path
from typing import Callable, Iterator

from fpdctl.errors import FpdError, InputError, RuntimeFailure

# Native writers report a failed write in their own words: safetensors (Rust) says
# "... (os error 28)"; torch.save wraps the OSError its file object raised (as __context__).
_RUST_OS_ERROR = re.compile(r"\(os error (\d+)\)")

# Errors that mean "the disk cannot take this file": full, over a file-size limit, over quota.
DISK_FULL_ERRNOS: frozenset[int] = frozenset({errno.ENOSPC, errno.EFBIG, errno.EDQUOT})
# Errors that mean "this path cannot be used as given": too long, a loop of links, a file where a
# folder should be, missing, not permitted. An OSError with one of these that no command turned
# into an InputError is still the user's to fix: main() reports it as an input error (exit 2).
PATH_ERRNOS: frozenset[int] = frozenset(
    {
        errno.ENAMETOOLONG,
        errno.ELOOP,
        errno.ENOTDIR,
        errno.EISDIR,
        errno.ENOENT,
        errno.EACCES,
        errno.EPERM,
        errno.EROFS,
    }
)
# A path longer than this is shown by its two ends in an error line.
SHOWN_PATH_CHARS = 120


def short_path(path: str | os.PathLike[str]) -> str:
    """``path`` for an error line: as it is, or its two ends and its length when very long."""
    text = os.fspath(path) if not isinstance(path, bytes) else path.decode(errors="replace")
    text = str(text)
    if len(text) <= SHOWN_PATH_CHARS:
        return text
    half = SHOWN_PATH_CHARS // 2
    return f"{text[:half]}...{text[-half:]} ({len(text)} characters)"


def check_folder_creatable(folder: str | os.PathLike[str]) -> Path:
    """Check, creating nothing, that ``folder`` exists or can be made, and can be written to.

    A command calls this (or :func:`check_output_file`) before its slow work, so that an output
    path under a file or in a read-only folder fails at once, not after an hour of training.

    Raises:
        InputError: a file stands where the folder or one of its parents would go, or the
            nearest existing folder is not writable.
    """
    target = Path(folder) if str(folder) else Path(".")
    existing = target
    # Path.exists() is False for "file/sub" (ENOTDIR): walk up to what is really there.
    while not os.path.lexists(existing) and existing != existing.parent:
        existing = existing.parent
    if os.path.lexists(existing) and not existing.is_dir():
        where = "a file has that name" if existing == target else f"{existing} is a file"
        raise InputError(f"cannot create output folder {target}: {where}")
    if not os.access(existing, os.W_OK):
        if existing == target:
            raise InputError(f"output folder is not writable: {target}")
        raise InputError(f"cannot create output folder {target}: {existing} is not writable")
    return target


def check_output_file(path: str | os.PathLike[str]) -> Path:
    """Check, creating nothing, that file ``path`` can be written (see :func:`check_folder_creatable`).

    Raises:
        InputError: ``path`` is a directory, or its folder cannot be created or written to.
    """
    target = Path(path)
    if target.is_dir():
        raise InputError(f"output path is a directory: {target}")
    check_folder_creatable(target.parent if str(target.parent) else Path("."))
    return target


def ensure_parent_writable(path: str | os.PathLike[str]) -> Path:
    """Check that ``path`` can be created: its folder exists (or can be made) and is writable.

    Raises:
        InputError: the folder cannot be created or written to.
    """
    target = Path(path)
    parent = target.parent if str(target.parent) else Path(".")
    check_folder_creatable(parent)
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
    try:
        fd, tmp_name = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    except OSError as exc:  # e.g. no inode left on a full disk
        raise RuntimeFailure(f"could not write {target}: {exc.strerror or exc}") from exc
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        yield tmp
        # mkstemp creates 0600 files, and some writers replace the file (safetensors writes its
        # own temporary and renames it): give the result the permissions a plain open() would.
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)
        with open(tmp, "rb+") as handle:
            os.fsync(handle.fileno())
        os.replace(tmp, target)
    except FpdError:
        tmp.unlink(missing_ok=True)
        raise
    except Exception as exc:
        tmp.unlink(missing_ok=True)
        cause = write_error(exc)
        if cause is None:
            raise
        raise RuntimeFailure(f"could not write {target}: {cause.strerror or cause}") from exc
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def write_error(exc: BaseException) -> OSError | None:
    """The operating-system error behind a failed write, or None if ``exc`` is not one.

    A plain ``OSError`` is its own answer; torch.save raises a RuntimeError whose ``__context__``
    is the OSError of the file object it wrote to; safetensors raises its own error ending in
    "(os error N)". A full disk (ENOSPC), a file-size limit (EFBIG) or a quota (EDQUOT) all come
    back as an OSError with ``errno`` and ``strerror`` set.
    """
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if isinstance(current, OSError):
            return current
        found = _RUST_OS_ERROR.search(str(current))
        if found:
            code = int(found.group(1))
            return OSError(code, os.strerror(code))
        current = current.__cause__ or current.__context__
    return None


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
