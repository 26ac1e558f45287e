"""Joint sets: MPII's 16 joints, LSP's 14 (and the mapping between them), COCO's 17 keypoints.

The MPII order is the one of the official release, pytorch-pose and the FPD code, so heatmap
channel ``j`` of every model is joint ``j`` below.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class JointSet:
    """A named, ordered set of body joints.

    Attributes:
        name: short identifier, e.g. ``"mpii"``.
        names: joint names in heatmap-channel order.
        flip_pairs: (left, right) index pairs swapped by a horizontal flip.
        skeleton: (a, b) index pairs joined by a limb when drawing.
    """

    name: str
    names: tuple[str, ...]
    flip_pairs: tuple[tuple[int, int], ...]
    skeleton: tuple[tuple[int, int], ...]

    @property
    def num_joints(self) -> int:
        return len(self.names)

    def index(self, joint_name: str) -> int:
        return self.names.index(joint_name)

    def flip_permutation(self) -> list[int]:
        """The channel order of a horizontally flipped image: ``perm[j]`` is j's mirror joint."""
        perm = list(range(self.num_joints))
        for a, b in self.flip_pairs:
            perm[a], perm[b] = b, a
        return perm


MPII = JointSet(
    name="mpii",
    names=(
        "r_ankle",
        "r_knee",
        "r_hip",
        "l_hip",
        "l_knee",
        "l_ankle",
        "pelvis",
        "thorax",
        "upper_neck",
        "head_top",
        "r_wrist",
        "r_elbow",
        "r_shoulder",
        "l_shoulder",
        "l_elbow",
        "l_wrist",
    ),
    flip_pairs=((0, 5), (1, 4), (2, 3), (10, 15), (11, 14), (12, 13)),
    skeleton=(
        (0, 1),
        (1, 2),
        (2, 6),
        (6, 3),
        (3, 4),
        (4, 5),
        (6, 7),
        (7, 8),
        (8, 9),
        (10, 11),
        (11, 12),
        (12, 7),
        (7, 13),
        (13, 14),
        (14, 15),
    ),
)

LSP = JointSet(
    name="lsp",
    names=(
        "r_ankle",
        "r_knee",
        "r_hip",
        "l_hip",
        "l_knee",
        "l_ankle",
        "r_wrist",
        "r_elbow",
        "r_shoulder",
        "l_shoulder",
        "l_elbow",
        "l_wrist",
        "neck",
        "head_top",
    ),
    flip_pairs=((0, 5), (1, 4), (2, 3), (6, 11), (7, 10), (8, 9)),
    skeleton=(
        (0, 1),
        (1, 2),
        (2, 3),
        (3, 4),
        (4, 5),
        (6, 7),
        (7, 8),
        (8, 12),
        (12, 9),
        (9, 10),
        (10, 11),
        (12, 13),
        (2, 8),
        (3, 9),
    ),
)

# LSP joint i is MPII joint LSP_TO_MPII[i]. LSP's "neck" is MPII's "upper_neck"; MPII's pelvis
# and thorax have no LSP counterpart. A model trained on LSP data uses 16 MPII channels and the
# loader leaves pelvis and thorax unannotated (weight 0), so one model family serves both sets.
LSP_TO_MPII: tuple[int, ...] = (0, 1, 2, 3, 4, 5, 10, 11, 12, 13, 14, 15, 8, 9)

# COCO's 17 person keypoints, in the order and with the names of the official
# ``person_keypoints_*.json`` category; the skeleton is that category's 1-based "skeleton" made
# 0-based. COCO is its own channel layout (17 heatmaps): it is not mapped onto MPII's 16.
COCO = JointSet(
    name="coco",
    names=(
        "nose",
        "left_eye",
        "right_eye",
        "left_ear",
        "right_ear",
        "left_shoulder",
        "right_shoulder",
        "left_elbow",
        "right_elbow",
        "left_wrist",
        "right_wrist",
        "left_hip",
        "right_hip",
        "left_knee",
        "right_knee",
        "left_ankle",
        "right_ankle",
    ),
    flip_pairs=((1, 2), (3, 4), (5, 6), (7, 8), (9, 10), (11, 12), (13, 14), (15, 16)),
    skeleton=(
        (15, 13),
        (13, 11),
        (16, 14),
        (14, 12),
        (11, 12),
        (5, 11),
        (6, 12),
        (5, 6),
        (5, 7),
        (6, 8),
        (7, 9),
        (8, 10),
        (1, 2),
        (0, 1),
        (0, 2),
        (1, 3),
        (2, 4),
        (3, 5),
        (4, 6),
    ),
)

JOINT_SETS: dict[str, JointSet] = {"mpii": MPII, "lsp": LSP, "coco": COCO}


def joint_set_for(num_joints: int) -> JointSet:
    """The joint set with ``num_joints`` joints (16: MPII, 14: LSP, 17: COCO)."""
    for joint_set in JOINT_SETS.values():
        if joint_set.num_joints == num_joints:
            return joint_set
    raise KeyError(f"no joint set has {num_joints} joints")


def channel_joint_set(joint_set: JointSet) -> JointSet:
    """The heatmap channels a model trained on ``joint_set`` data predicts.

    LSP data trains MPII's 16 channels (see ``LSP_TO_MPII``); every other set is its own channel
    layout (MPII 16, COCO 17).
    """
    return MPII if joint_set.name == LSP.name else joint_set


def to_channel_order(values, joint_set: JointSet):
    """Per-joint values of ``joint_set`` [..., J, C] placed into its :func:`channel_joint_set`'s
    channels (a copy; LSP goes through :func:`to_mpii_order`)."""
    import numpy as np

    if joint_set.name == LSP.name:
        return to_mpii_order(values, joint_set)
    values = np.asarray(values)
    if values.shape[-2] != joint_set.num_joints:
        raise ValueError(f"expected {joint_set.num_joints} {joint_set.name} joints, got shape {values.shape}")
    return values.copy()


def to_mpii_order(values, joint_set: JointSet):
    """Place per-joint values of ``joint_set`` into the 16 MPII channels.

    Args:
        values: numpy array [..., J, C] in ``joint_set`` order.
        joint_set: MPII (returned as a copy) or LSP (mapped with LSP_TO_MPII).

    Returns:
        numpy array [..., 16, C] of the same dtype; MPII joints the set lacks (LSP: pelvis and
        thorax) are all zeros, i.e. unannotated when C holds (x, y, vis).
    """
    import numpy as np

    values = np.asarray(values)
    if values.shape[-2] != joint_set.num_joints:
        raise ValueError(f"expected {joint_set.num_joints} {joint_set.name} joints, got shape {values.shape}")
    if joint_set.name == MPII.name:
        return values.copy()
    if joint_set.name != LSP.name:
        raise ValueError(f"no mapping from joint set {joint_set.name!r} to MPII")
    out = np.zeros(values.shape[:-2] + (MPII.num_joints, values.shape[-1]), dtype=values.dtype)
    out[..., list(LSP_TO_MPII), :] = values
    return out
