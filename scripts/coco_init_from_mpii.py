"""Start the 17-keypoint reference model from the shipped 16-joint one.

``synthetic-coco-hg2x64`` sees the same synthetic figures as ``synthetic-hg2x64``; only the
keypoint set differs (data/synthetic/coco.py: COCO's twelve body keypoints are the figure's
joints, the five face points are placed on the drawn head). So every layer is copied except the
joint-indexed ones, the per-stack heatmap heads (``score``: C -> J) and the feedback of the
heatmaps into the next stack (``score_``: J -> C). Their rows (columns) are remapped: a body
keypoint takes its MPII joint's row; a face point takes the mean of the head top's and the upper
neck's rows (the head's centre, near every face point), so training starts from a network that
already finds the figure.

    python scripts/coco_init_from_mpii.py OUT.safetensors [--teacher synthetic-hg2x64]
"""

from __future__ import annotations

import argparse
import sys

import torch

from fpdctl.data.synthetic.coco import BODY_KEYPOINTS
from fpdctl.models.checkpoint import save_model
from fpdctl.models.factory import create_model
from fpdctl.skeleton import COCO, MPII


def mpii_rows() -> list[list[int]]:
    """For each COCO keypoint, the MPII joints whose heatmap rows it starts from."""
    face = [MPII.index("head_top"), MPII.index("upper_neck")]
    return [[MPII.index(BODY_KEYPOINTS[name])] if name in BODY_KEYPOINTS else face for name in COCO.names]


def remap(teacher: str) -> torch.nn.Module:
    """An hg(S)x(C)j17 network: the teacher's weights, heads remapped to COCO's keypoints."""
    source = create_model(teacher)
    spec = source.spec
    target = create_model(f"hg{spec.stacks}x{spec.channels}j{COCO.num_joints}")
    rows = mpii_rows()
    state = source.state_dict()
    out = {}
    for key, value in target.state_dict().items():
        old = state[key]
        if key.startswith("score."):  # [J, C, 1, 1] weights and [J] biases: rows per keypoint
            out[key] = torch.stack([old[r].mean(0) for r in rows])
        elif key.startswith("score_.") and key.endswith("weight"):  # [C, J, 1, 1]: columns
            out[key] = torch.stack([old[:, r].mean(1) for r in rows], dim=1)
        else:
            out[key] = old.clone()
    target.load_state_dict(out)
    target.input_convention = source.input_convention
    return target


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out")
    parser.add_argument("--teacher", default="synthetic-hg2x64")
    args = parser.parse_args(argv)
    save_model(remap(args.teacher), args.out, {"source": args.teacher})
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
