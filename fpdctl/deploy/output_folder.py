"""predict's output folder: what an earlier run left there, and a new output staged beside it
and swapped in whole.

The rule: a command writes only inside the folder it was given, and replaces it atomically.

* **What may be replaced.** An earlier predict's output is the files its ``keypoints.json``
  lists (``written``) plus that file. :func:`previous_outputs` checks every listed name before
  anything runs: a plain file name (no folder part, not absolute, not ``..``) that is, in the
  folder, a plain file or absent. Anything else (``../x``, ``/etc/x``, a folder, a symbolic
  link) is an error and nothing is touched. A folder holding a file the manifest does not list
  (a user's own) is refused as a whole, so ``overwrite`` never puts a user's file at risk.
* **Staging.** A run writes into a hidden sibling folder, ``.NAME.fpdctl-XXXXXXXX`` beside
  ``NAME`` (the same parent, hence the same file system), and holds an exclusive ``flock`` on it
  for as long as it lives (the kernel drops the lock when the process dies, even by kill -9).
* **The swap.** A new folder is renamed to ``out``. An existing one is exchanged with the
  stage in ONE system call (Linux ``renameat2(RENAME_EXCHANGE)``), so at every moment
  ``out`` is either the old output or the new one, complete. The old output, now under the
  stage's name, then loses the files it listed and is removed. Where the exchange is not
  available (another OS, a file system without it) two renames do it: old out of the way, new
  in; a kill between the two leaves the old output under the hidden name.
* **Failures and kills.** A run that fails removes its stage; ``out`` is as it was. A run
  killed mid-way leaves its stage behind; the next run on the same ``out`` removes every
  stage whose lock nobody holds, and ignores the rest (a run still going).
"""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import errno
import json
import os
import secrets
import shutil
import stat
from pathlib import Path

from fpdctl.errors import FpdError, RuntimeFailure, UsageError

JSON_NAME = "keypoints.json"
# Between the folder's name and the stage's random part (see the module docstring).
STAGE_TAG = ".fpdctl-"
# renameat2 flags (linux/fs.h).
_AT_FDCWD = -100
_RENAME_EXCHANGE = 2


def previous_outputs(out: Path, overwrite: bool) -> set[str]:
    """The names of an earlier predict's files in ``out`` (to replace), or nothing for an empty
    or new folder.

    Raises:
        UsageError: ``out`` is not empty and ``overwrite`` is off; it holds files that predict's
            manifest (keypoints.json's ``written``) does not list; or the manifest lists a name
            that is not a plain file of ``out`` (a path outside it, a folder, a link).
    """
    if not out.is_dir():
        return set()
    present = sorted(p.name for p in out.iterdir())
    if not present:
        return set()
    if not overwrite:
        raise UsageError(f"`out` {out} is not empty; set `overwrite` to replace an earlier predict's output there")
    owned: set[str] = set()
    manifest_path = out / JSON_NAME
    try:
        if manifest_path.is_symlink():
            raise UsageError(f"`out` {out}: {JSON_NAME} is a symbolic link, not predict's manifest; not replaced")
        manifest = json.loads(manifest_path.read_text(encoding="utf-8"))
        if isinstance(manifest, dict) and isinstance(manifest.get("written"), list):
            owned = {JSON_NAME, *(_owned_name(out, entry) for entry in manifest["written"])}
    except (OSError, UnicodeDecodeError, json.JSONDecodeError):
        pass
    foreign = [name for name in present if name not in owned]
    if foreign:
        shown = ", ".join(foreign[:3]) + (f" and {len(foreign) - 3} more" if len(foreign) > 3 else "")
        raise UsageError(
            f"`out` {out} holds files predict did not write ({shown}); `overwrite` replaces only "
            f"predict's own output: give an empty or new folder"
        )
    return owned


def _owned_name(out: Path, entry: object) -> str:
    """One ``written`` entry of a manifest, checked: a plain name, a plain file of ``out`` (or absent)."""
    bad = None
    if not isinstance(entry, str) or not entry:
        bad = "is not a file name"
    elif entry in (".", "..") or "/" in entry or "\\" in entry or os.path.isabs(entry) or "\0" in entry:
        bad = "is not a file inside that folder"
    else:
        try:
            mode = os.lstat(out / entry).st_mode
        except FileNotFoundError:
            mode = None
        if mode is not None and stat.S_ISLNK(mode):
            bad = "is a symbolic link"
        elif mode is not None and not stat.S_ISREG(mode):
            bad = "is not a plain file"
    if bad is not None:
        raise UsageError(
            f"`out` {out}: its {JSON_NAME} lists {json.dumps(entry)}, which {bad}; "
            "`overwrite` replaces only plain files inside `out`: nothing was changed"
        )
    return entry  # type: ignore[return-value]


class StagedFolder:
    """A hidden folder beside ``target`` that a run writes into, then swaps in whole.

    Use as a context manager: the body writes into :attr:`path` and calls :meth:`commit` with
    the names the earlier output listed; leaving the block without a commit (an error, an
    interrupt) removes the stage and leaves ``target`` as it was.
    """

    def __init__(self, target: Path) -> None:
        # The real folder (a link to a folder is followed), so the stage sits on its file system.
        self.target = Path(os.path.realpath(target))
        self.shown = Path(target)  # as the caller gave it, for messages
        self.parent = self.target.parent
        self.path: Path | None = None
        self._lock: int | None = None
        self._made: list[Path] = []
        self.warnings: list[str] = []

    def __enter__(self) -> "StagedFolder":
        if os.path.ismount(self.target):
            raise UsageError(
                f"`out` {self.shown} is a mount point: predict replaces its output folder whole; "
                "give a folder inside it"
            )
        here = os.path.realpath(os.getcwd())
        if here == str(self.target) or here.startswith(str(self.target) + os.sep):
            raise UsageError(
                f"`out` {self.shown} holds the current folder: predict replaces its output folder whole; "
                "give another folder"
            )
        # The folders above out that do not exist yet: made now, removed again if the run fails.
        missing = []
        above = self.parent
        while not os.path.lexists(above) and above != above.parent:
            missing.append(above)
            above = above.parent
        self._made = missing
        try:
            self.parent.mkdir(parents=True, exist_ok=True)
            return self._make_stage()
        except BaseException:
            self._remove_made()
            raise

    def _make_stage(self) -> "StagedFolder":
        if not os.access(self.parent, os.W_OK | os.X_OK):
            raise UsageError(
                f"`out` {self.shown}: its parent folder is not writable (predict builds the new output beside it)"
            )
        remove_stale_stages(self.target)
        for _ in range(8):
            stage = self.parent / f".{self.target.name}{STAGE_TAG}{secrets.token_hex(4)}"
            try:
                os.mkdir(stage)  # 0777 less the umask, as the folder itself would be made
            except FileExistsError:
                continue
            except OSError as exc:
                raise RuntimeFailure(
                    f"could not create a folder beside `out` {self.shown}: {exc.strerror or exc}"
                ) from exc
            self._lock = _lock_dir(stage, wait=True)
            # A cleaner may have taken a fresh stage for a dead one before this lock: start over.
            if self._lock is not None and _same_dir(self._lock, stage):
                self.path = stage
                if self.target.is_dir():  # the new output keeps the old folder's permissions
                    os.chmod(stage, stat.S_IMODE(os.stat(self.target).st_mode))
                return self
            self._unlock()
        raise RuntimeFailure(f"could not create a folder beside `out` {self.shown}")

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None, trace: object) -> None:
        stage = self.path
        if stage is not None:  # not committed: the run failed or was interrupted
            shutil.rmtree(stage, ignore_errors=True)
            self.path = None
            self._remove_made()
        self._unlock()
        if stage is not None and isinstance(error, FpdError) and str(stage) in str(error):
            # The user knows the folder they gave, not the hidden stage: name theirs.
            raise type(error)(str(error).replace(str(stage), str(self.shown))) from error

    def _remove_made(self) -> None:
        for made in self._made:  # innermost first; only while still empty
            with contextlib.suppress(OSError):
                made.rmdir()
        self._made = []

    def commit(self, previous: set[str]) -> None:
        """Swap the stage in for ``target``; remove the earlier output's files (``previous``).

        Raises:
            RuntimeFailure: the swap itself failed (``target`` is then as it was).
        """
        stage = self.path
        assert stage is not None, "commit() outside the with block"
        _fsync_dir(stage)
        # Hold the old output's lock too: once swapped out it sits under a stage's name, and no
        # other run may take it for a dead stage while its files are removed.
        old_lock = _lock_dir(self.target, wait=False) if os.path.isdir(self.target) else None
        try:
            self._swap(stage, previous)
        finally:
            if old_lock is not None:
                os.close(old_lock)

    def _swap(self, stage: Path, previous: set[str]) -> None:
        try:
            if not os.path.lexists(self.target):
                os.rename(stage, self.target)
                old = None
            elif _exchange(stage, self.target):
                old = stage  # the earlier output, now under the stage's name
            else:  # no atomic exchange here: two renames
                old = self.parent / f".{self.target.name}{STAGE_TAG}old-{secrets.token_hex(4)}"
                os.rename(self.target, old)
                try:
                    os.rename(stage, self.target)
                except OSError:
                    os.rename(old, self.target)
                    raise
        except OSError as exc:
            raise RuntimeFailure(f"could not replace `out` {self.shown}: {exc.strerror or exc}") from exc
        self.path = None
        _fsync_dir(self.parent)
        if old is not None:
            self._retire(old, previous)

    def _retire(self, old: Path, previous: set[str]) -> None:
        """Remove the earlier output's listed files and its folder. A file that appeared there
        during the run (no run lists it) goes back into ``target`` if the new output has no file
        of that name; otherwise the old folder stays, with a warning."""
        try:
            for name in sorted(os.listdir(old)):
                path = old / name
                if name in previous and stat.S_ISREG(os.lstat(path).st_mode):
                    path.unlink()
                elif not os.path.lexists(self.target / name):
                    os.rename(path, self.target / name)
            old.rmdir()
        except OSError:  # the new output is in place: what is left of the old one is reported
            self.warnings.append(f"files added to {self.shown} during the run were kept in {old}")

    def _unlock(self) -> None:
        if self._lock is not None:
            os.close(self._lock)
            self._lock = None


def remove_stale_stages(target: Path) -> list[Path]:
    """Remove the stages of killed runs on ``target`` (those whose lock nobody holds).

    Returns:
        the folders removed.
    """
    removed: list[Path] = []
    prefix = f".{target.name}{STAGE_TAG}"
    with contextlib.suppress(OSError):
        # An "old-" folder is an earlier output set aside by the two-rename swap: never removed.
        candidates = [
            p for p in target.parent.iterdir() if p.name.startswith(prefix) and not p.name.startswith(prefix + "old-")
        ]
        for stage in candidates:
            if stage.is_symlink() or not stage.is_dir():
                continue
            lock = _lock_dir(stage, wait=False)
            if lock is None:
                continue  # a run still writing there
            try:
                shutil.rmtree(stage, ignore_errors=True)
                removed.append(stage)
            finally:
                os.close(lock)
    return removed


def _lock_dir(path: Path, wait: bool) -> int | None:
    """An open descriptor of folder ``path`` holding its exclusive flock, or None when another
    process holds it (``wait`` off) or the folder is gone. Where flock does not exist the
    descriptor comes unlocked: stale stages are then never taken for dead ones."""
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
    except OSError:
        return None
    try:
        import fcntl
    except ImportError:  # no flock (Windows): leftovers are ignored, never removed
        if wait:
            return fd
        os.close(fd)
        return None
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | (0 if wait else fcntl.LOCK_NB))
    except OSError:
        os.close(fd)
        return None
    return fd


def _same_dir(fd: int, path: Path) -> bool:
    try:
        return os.path.samestat(os.fstat(fd), os.stat(path))
    except OSError:
        return False


def _exchange(a: Path, b: Path) -> bool:
    """Swap two paths in one system call; False where the OS or file system cannot."""
    libc_name = ctypes.util.find_library("c")
    renameat2 = getattr(ctypes.CDLL(libc_name, use_errno=True), "renameat2", None) if libc_name else None
    if renameat2 is None:
        return False
    result = renameat2(_AT_FDCWD, os.fsencode(a), _AT_FDCWD, os.fsencode(b), _RENAME_EXCHANGE)
    if result == 0:
        return True
    code = ctypes.get_errno()
    if code in (errno.EINVAL, errno.ENOSYS, errno.EOPNOTSUPP):
        return False
    raise OSError(code, os.strerror(code))


def _fsync_dir(path: Path) -> None:
    """Make a folder's entries durable (a crash after the swap keeps the swap)."""
    with contextlib.suppress(OSError):
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


__all__ = ["JSON_NAME", "STAGE_TAG", "StagedFolder", "previous_outputs", "remove_stale_stages"]
