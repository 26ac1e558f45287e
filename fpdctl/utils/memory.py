"""This process's memory as Linux reports it: current and peak resident set, and a reset of the
peak, so that ``fpdctl bench`` can measure each case's own peak.

Off Linux (no ``/proc``) every reading is None and the reset reports False.
"""

from __future__ import annotations

from pathlib import Path

_CLEAR_REFS = Path("/proc/self/clear_refs")
_STATUS = Path("/proc/self/status")


def _status_kb(field_name: str) -> int | None:
    try:
        for line in _STATUS.read_text().splitlines():
            if line.startswith(field_name + ":"):
                return int(line.split()[1])
    except (OSError, ValueError, IndexError):
        return None
    return None


def reset_peak_rss() -> bool:
    """Reset the kernel's peak-RSS counter to the current RSS; False where that is not allowed."""
    try:
        _CLEAR_REFS.write_text("5")
        return True
    except OSError:
        return False


def rss_mb() -> float | None:
    """Current resident set size of this process (``VmRSS``) in MB, or None off Linux."""
    kb = _status_kb("VmRSS")
    return None if kb is None else kb * 1024 / 1e6


def peak_rss_mb() -> float | None:
    """Peak resident set size of this process (``VmHWM``) in MB, or None off Linux."""
    kb = _status_kb("VmHWM")
    return None if kb is None else kb * 1024 / 1e6


__all__ = ["peak_rss_mb", "reset_peak_rss", "rss_mb"]
