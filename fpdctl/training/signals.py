"""Stopping a run cleanly: SIGINT / SIGTERM in the training process and in its DataLoader workers.

The training process turns the first SIGINT or SIGTERM into a stop request (the loop saves a
checkpoint at the end of the current step and returns); a second Ctrl-C stops it at once. The
DataLoader workers ignore both signals, which reach the whole process group, and leave stopping
to the training process; they die with it when it is killed outright.
"""

from __future__ import annotations

import os
import signal
import sys
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

# Exit statuses of a run stopped by a signal (128 + signal number, the shell's convention).
SIGNAL_EXIT_CODES: dict[int, int] = {signal.SIGINT: 130, signal.SIGTERM: 143}

# prctl(2) option: the signal a process gets when its parent dies.
_PR_SET_PDEATHSIG = 1


@contextmanager
def stop_signals_handled(handler: Callable[[int, Any], None]) -> Iterator[None]:
    """Route SIGINT and SIGTERM to ``handler`` inside the block, then restore the old handlers.

    Python delivers signals to the main thread only: from any other thread this installs
    nothing (the run can still be stopped with :meth:`~fpdctl.training.trainer.Trainer.request_stop`).
    """
    previous: dict[int, Any] = {}
    if threading.current_thread() is threading.main_thread():
        for signum in SIGNAL_EXIT_CODES:
            previous[signum] = signal.signal(signum, handler)
    try:
        yield
    finally:
        for signum, old in previous.items():
            signal.signal(signum, old)


def worker_init(_worker_id: int) -> None:
    """``worker_init_fn`` of the training DataLoader: ignore stop signals, die with the parent.

    Ctrl-C reaches the whole process group: workers ignore it and let the main process save a
    checkpoint and stop them, instead of dying mid-batch.
    """
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    _die_with_parent()


def _die_with_parent() -> None:
    """Have the kernel kill this DataLoader worker when the training process dies (Linux).

    PyTorch's worker notices a dead parent by comparing getppid() with the parent it saw when it
    started; a parent killed (kill -9) before that first look leaves the worker polling forever.
    """
    if not sys.platform.startswith("linux"):
        return
    import ctypes
    import multiprocessing

    try:
        ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_PDEATHSIG, int(signal.SIGKILL))
    except (OSError, AttributeError):  # no prctl: PyTorch's own check still applies
        return
    parent = multiprocessing.parent_process()
    if parent is not None and os.getppid() != parent.pid:
        os._exit(1)  # the parent died before the death signal was armed


__all__ = ["SIGNAL_EXIT_CODES", "stop_signals_handled", "worker_init"]
