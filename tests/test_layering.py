"""The layering a contract cannot see: what loads when torch is not there at all.

``lint-imports`` (``make test``, contracts in pyproject.toml) checks the import graph; these tests
run the code in a fresh interpreter in which any ``import torch`` fails, so a torch import hidden
anywhere on the path (a package ``__init__``, a default argument) fails them.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np

from fpdctl.metrics.mpii_files import write_mpii_ground_truth
from fpdctl.metrics.reference import EvalReference

# Prepended to each child's code: a meta-path finder that refuses torch and its submodules.
BLOCK_TORCH = """
import sys

class _NoTorch:
    def find_spec(self, name, path=None, target=None):
        if name == "torch" or name.startswith("torch."):
            raise ImportError(f"torch is blocked in this test (importing {name})")
        return None

sys.meta_path.insert(0, _NoTorch())
"""


def _run_without_torch(code: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-c", BLOCK_TORCH + code], capture_output=True, text=True, timeout=120)


def test_the_blocker_blocks() -> None:
    done = _run_without_torch("import torch")
    assert done.returncode == 1 and "torch is blocked in this test" in done.stderr


def test_metrics_import_without_torch_or_data() -> None:
    done = _run_without_torch(
        "import json, fpdctl.metrics, fpdctl.metrics.mpii_files\n"
        "print(json.dumps(sorted(m for m in sys.modules if m == 'torch' or m.startswith('fpdctl.data'))))"
    )
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout) == []


def test_scoring_prediction_files_runs_without_torch(tmp_path: Path) -> None:
    """``fpdctl eval --predictions P --ground-truth G`` is pure scoring: it runs with no torch."""
    rng = np.random.default_rng(0)
    joints = rng.uniform(20.0, 200.0, (3, 16, 2))
    headboxes = np.tile(np.array([[50.0, 40.0], [80.0, 70.0]]), (3, 1, 1))  # 30 x 30 px heads
    visible = np.ones((3, 16), bool)
    visible[0, 5] = False
    truth = EvalReference(joints=joints, visible=visible, headboxes=headboxes, metric="pckh")
    write_mpii_ground_truth(tmp_path / "gt.mat", truth)
    predictions = joints.copy()
    predictions[:, :8] += 100.0  # the first 8 joints of every person far off, the rest exact
    np.save(tmp_path / "preds.npy", predictions)

    done = _run_without_torch(
        "from fpdctl.cli.app import main\n"
        f"code = main(['eval', '--predictions', {str(tmp_path / 'preds.npy')!r}, "
        f"'--ground-truth', {str(tmp_path / 'gt.mat')!r}, '--format', 'json'])\n"
        "assert 'torch' not in sys.modules\n"
        "sys.exit(code)"
    )
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout)
    assert result["persons"] == 3 and result["visible_joints"] == 47
    assert set(result["per_joint"].values()) == {0.0, 100.0}
    assert [v for v in result["per_joint"].values()][8:] == [100.0] * 8
    # The MPII mean pools 14 joints (not pelvis, thorax): 3 * 14 - 1 annotated, 3 * 8 right.
    assert abs(result["pckh"]["mean"] - 100.0 * 24 / 41) < 1e-9
