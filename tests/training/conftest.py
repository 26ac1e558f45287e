"""Training tests run their tiny models on one CPU thread.

With models this small, OpenMP threads only add synchronisation, and on a shared, loaded machine
a descheduled worker thread can stall each step for a large fraction of a second. One thread is
also what the exact-resume tests compare like with like (subprocesses get OMP_NUM_THREADS=1).
"""

from __future__ import annotations

from typing import Iterator

import pytest
import torch


@pytest.fixture(autouse=True)
def _one_thread() -> Iterator[None]:
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(before)
