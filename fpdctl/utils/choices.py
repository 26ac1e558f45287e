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

    Args:
        option: the parameter's name (the library), or the flag (the CLI, which alone has flags).

    Raises:
        UsageError: ```option` must be one of a, b, c, got 'value'``.
    """
    names = tuple(choices)
    choice = match_choice(value, names)
    if choice is None:
        shown = option if option.startswith("-") else f"`{option}`"
        raise UsageError(f"{shown} must be one of {', '.join(names)}, got '{value}'", params=option.lstrip("-"))
    return choice


__all__ = ["match_choice", "parse_choice"]
