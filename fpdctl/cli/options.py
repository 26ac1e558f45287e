"""Parsing helpers shared by the subcommands (one clear UsageError per bad value)."""

from __future__ import annotations

from fpdctl.errors import UsageError


def parse_int_list(text: str, option: str, minimum: int | None = None) -> list[int]:
    """``"1,2,4"`` -> ``[1, 2, 4]``; a clear error for anything else."""
    parts = [p.strip() for p in text.split(",") if p.strip()]
    if not parts:
        raise UsageError(f"{option} must be a comma-separated list of integers, got '{text}'")
    values = []
    for part in parts:
        try:
            value = int(part)
        except ValueError:
            raise UsageError(f"{option} must be a comma-separated list of integers, got '{text}'") from None
        if minimum is not None and value < minimum:
            raise UsageError(f"{option} values must be at least {minimum}, got {value}")
        values.append(value)
    return values
