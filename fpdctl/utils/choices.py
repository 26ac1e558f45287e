"""The one rule for choice options (``--format``, ``--layout``, ``--pixel-order``, ``--precision``...):
a value matches a choice whatever its case and surrounding spaces, and comes back in the
choice's own spelling; anything else is one clear UsageError listing the choices."""

from __future__ import annotations

from collections.abc import Iterable

from fpdctl.errors import UsageError


def match_choice(value: str, choices: Iterable[str]) -> str | None:
    """The choice ``value`` names, case-insensitively (surrounding spaces ignored), else None."""
    word = str(value).strip().casefold()
    return next((choice for choice in choices if choice.casefold() == word), None)


def parse_choice(value: str, choices: Iterable[str], option: str) -> str:
    """The choice ``value`` names (see :func:`match_choice`), in the choice's spelling.

    Raises:
        UsageError: ``{option} must be one of a, b, c, got 'value'``.
    """
    names = tuple(choices)
    choice = match_choice(value, names)
    if choice is None:
        raise UsageError(f"{option} must be one of {', '.join(names)}, got '{value}'")
    return choice


__all__ = ["match_choice", "parse_choice"]
