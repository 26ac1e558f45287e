"""The fpdctl error hierarchy.

Every failure a user can cause or meet is an :class:`FpdError`. ``fpdctl.cli.app.main`` turns
one into a single ``error: ...`` line and an exit code: 2 for usage and input errors (the user can
fix the command or the file), 1 for runtime failures. Anything else is a bug and shows a traceback
only with ``FPDCTL_DEBUG=1``.

Errors speak the caller's language. A message names Python parameters, never a command-line flag,
and quotes each name in backticks (as numpy does): ```max_frames` must be at least 1``. The
error also lists the names in :attr:`FpdError.params`. The CLI, which alone knows its flags,
rewrites each quoted name to the flag its command spells it with (``--max-frames must be at least
1``), from the command's own option table (:func:`fpdctl.cli.app.flag_table`). Only quoted words
are rewritten, so "detector boxes" stays prose and a path named ``out`` stays a path.
"""

from __future__ import annotations

from typing import Iterable


class FpdError(Exception):
    """Base class of every error fpdctl reports to a user.

    Args:
        message: the one line a user reads.
        params: the parameter name(s) the message quotes, as the function that raised it spells
            them (``"max_frames"``).
    """

    exit_code: int = 1

    def __init__(self, message: str = "", *, params: str | Iterable[str] = ()) -> None:
        super().__init__(message)
        self.params: tuple[str, ...] = (params,) if isinstance(params, str) else tuple(params)


class UsageError(FpdError):
    """A bad option value or combination of options."""

    exit_code = 2


class InputError(UsageError):
    """A missing, unreadable or malformed input file or directory."""


class CheckpointError(InputError):
    """A checkpoint that cannot be read safely or does not fit the requested model."""


class DataError(InputError):
    """A dataset, annotation or prediction file with the wrong layout or content."""


class RuntimeFailure(FpdError):
    """A failure while running: out of memory, a diverged loss, a verification that failed."""

    exit_code = 1


class TrainingDiverged(RuntimeFailure):
    """The loss became NaN or infinite."""


class VerificationError(RuntimeFailure):
    """An exported model disagrees with the model it was exported from."""
