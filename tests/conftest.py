"""Shared test fixtures: the real data beside the repository, skipped cleanly when absent."""

from __future__ import annotations

from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]
SHARED_DIR = REPO_ROOT.parent / "shared"
SHARED_DATA = SHARED_DIR / "data"


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """``../shared/data`` (MPII validation ground truth, LSPET sample); skip when absent."""
    if not SHARED_DATA.is_dir():
        pytest.skip("../shared/data is not present (a user's clone has no shared data)")
    return SHARED_DATA


@pytest.fixture(scope="session")
def mpii_val_gt(shared_data: Path) -> Path:
    path = shared_data / "mpii" / "mpii_val_gt_tompson.mat"
    if not path.is_file():
        pytest.skip(f"{path} is not present")
    return path


@pytest.fixture(scope="session")
def lspet400(shared_data: Path) -> Path:
    path = shared_data / "lspet400"
    if not (path / "joints.mat").is_file():
        pytest.skip(f"{path} is not present")
    return path


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--reliability-report", default=None, metavar="PATH",
        help="write every tests/reliability case (what was tried, what happened) as JSON to PATH",
    )
