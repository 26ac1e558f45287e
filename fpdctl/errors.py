"""The fpdctl error hierarchy.

Every failure a user can cause or meet is an :class:`FpdError`. ``fpdctl.cli.app.main`` turns
one into a single ``error: ...`` line and an exit code: 2 for usage and input errors (the user can
fix the command or the file), 1 for runtime failures. Anything else is a bug and shows a traceback
only with ``FPDCTL_DEBUG=1``.
"""

from __future__ import annotations


class FpdError(Exception):
    """Base class of every error fpdctl reports to a user."""

    exit_code: int = 1


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
