"""The ground truth a metric needs, independent of where it came from.

A dataset (MPII, LSP, COCO, synthetic) or an official ``.mat`` file produces an
:class:`EvalReference`; the metric functions take it together with predicted joint coordinates.
COCO's is the subclass :class:`~fpdctl.metrics.coco.COCOReference`, which adds what pycocotools
needs.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np


@dataclass(frozen=True)
class EvalReference:
    """Ground truth for N persons with J joints.

    Attributes:
        joints: float64 [N, J, 2], x and y in original image pixels (0-based).
        visible: bool [N, J], True where the joint is annotated and counts in the metric.
        headboxes: float64 [N, 2, 2] head rectangles ((x1, y1), (x2, y2)) for PCKh, else None.
        metric: "pckh" (MPII protocol, head-normalised), "pck" (LSP, torso-normalised) or
            "oks" (COCO keypoint AP, a :class:`~fpdctl.metrics.coco.COCOReference`).
        joint_set: name of the joint set ("mpii", "lsp" or "coco").
    """

    joints: np.ndarray
    visible: np.ndarray
    headboxes: np.ndarray | None
    metric: Literal["pckh", "pck", "oks"]
    joint_set: str = "mpii"

    def __len__(self) -> int:
        return int(self.joints.shape[0])
