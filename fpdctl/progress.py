"""The one progress protocol of fpdctl: the core reports events, only the CLI decides what to show.

Every long-running core function (training, the sweep, evaluation, export, bench, predict) takes
``progress: Progress | None`` and calls it with :class:`Event` objects. An event names what
happened (``kind``, dotted: ``"train.step"``, ``"sweep.config_start"``, ``"eval.batch"``,
``"export.stage"``...), carries an optional human-readable ``message``, an optional count
(``done`` of ``total``) and an optional typed payload (``data``: a ``StepLog``, an ``EvalLog``, a
``ConfigResult``...). A leaf module: it imports nothing of fpdctl.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Event:
    """One progress report.

    Attributes:
        kind: what happened, dotted by area (``"train.step"``, ``"export.stage"``...).
        message: a line a person can read, or "" when the payload says it all.
        done: items finished so far, for counted work.
        total: items in all, for counted work.
        data: the typed payload of the event, if any.
    """

    kind: str
    message: str = ""
    done: int | None = None
    total: int | None = None
    data: Any = None


Progress = Callable[[Event], None]


def silent(event: Event) -> None:
    """A :data:`Progress` that ignores every event (the default of every core function)."""


def report(
    progress: Progress | None,
    kind: str,
    message: str = "",
    *,
    done: int | None = None,
    total: int | None = None,
    data: Any = None,
) -> None:
    """Send one event to ``progress`` when there is one."""
    if progress is not None:
        progress(Event(kind, message, done, total, data))


__all__ = ["Event", "Progress", "report", "silent"]
