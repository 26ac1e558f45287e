"""The one skeleton drawer: colours by body side, visibility, scores, outlines, any joint set."""

from __future__ import annotations

import numpy as np
import pytest

from fpdctl.skeleton import JOINT_SETS, LSP, MPII, JointSet
from fpdctl.viz import (
    BOX_COLOR,
    CENTER_COLOR,
    LEFT_COLOR,
    RIGHT_COLOR,
    box_corners,
    draw_skeleton,
    joint_side,
    limb_color,
)

# A set named the way COCO names its keypoints ("left_...", "right_..."), not MPII's "l_", "r_".
SPELLED_OUT = JointSet(
    name="spelled-out",
    names=("nose", "left_shoulder", "right_shoulder", "left_wrist", "right_wrist"),
    flip_pairs=((1, 2), (3, 4)),
    skeleton=((0, 1), (0, 2), (1, 2), (1, 3), (2, 4)),
)


def test_right_is_warm_and_left_is_cool() -> None:
    """BGR: the right side orange (red channel high), the left side blue (blue channel high)."""
    b, _, r = RIGHT_COLOR
    assert r > b
    b, _, r = LEFT_COLOR
    assert b > r
    assert len({LEFT_COLOR, RIGHT_COLOR, CENTER_COLOR}) == 3


def test_sides_come_from_the_joint_names() -> None:
    assert [joint_side(n) for n in ("l_knee", "left_knee", "Left_Eye", "r_wrist", "right_hip")] == [
        "left",
        "left",
        "left",
        "right",
        "right",
    ]
    assert [joint_side(n) for n in ("pelvis", "nose", "upper_neck", "joint_3")] == ["center"] * 4
    # A limb takes a side's colour only when both its joints are on that side.
    assert limb_color(MPII, MPII.index("l_knee"), MPII.index("l_ankle")) == LEFT_COLOR
    assert limb_color(MPII, MPII.index("r_hip"), MPII.index("r_knee")) == RIGHT_COLOR
    assert limb_color(MPII, MPII.index("r_hip"), MPII.index("pelvis")) == CENTER_COLOR
    assert limb_color(SPELLED_OUT, 1, 3) == LEFT_COLOR and limb_color(SPELLED_OUT, 2, 4) == RIGHT_COLOR
    assert limb_color(SPELLED_OUT, 1, 2) == CENTER_COLOR  # shoulder to shoulder
    assert limb_color(MPII, MPII.index("head_top"), MPII.index("head_top")) == CENTER_COLOR


def test_scores_below_the_minimum_are_not_drawn() -> None:
    image = np.zeros((400, 480, 3), np.uint8)  # lines 3 px wide, joints of radius 4
    keypoints = np.full((16, 2), np.nan, np.float32)
    keypoints[MPII.index("l_knee")] = (30, 40)
    keypoints[MPII.index("l_ankle")] = (30, 80)
    keypoints[MPII.index("pelvis")] = (90, 50)
    scores = np.ones(16, np.float32)
    scores[MPII.index("pelvis")] = 0.1
    canvas = draw_skeleton(image, keypoints, MPII, scores=scores, min_score=0.2)
    assert not image.any()  # the input is not modified
    assert tuple(canvas[40, 30]) == LEFT_COLOR and tuple(canvas[60, 30]) == LEFT_COLOR  # joint, limb
    assert not canvas[45:56, 85:96].any()  # the pelvis scored below min_score: not drawn
    assert tuple(CENTER_COLOR) not in {tuple(p) for p in canvas.reshape(-1, 3)}


def test_visible_joints_are_dots_and_invisible_ones_rings() -> None:
    image = np.zeros((64, 64, 3), np.uint8)
    joints = np.full((16, 3), np.nan, np.float32)
    joints[MPII.index("l_wrist")] = (16, 16, 1)
    joints[MPII.index("r_wrist")] = (48, 48, 0)
    drawn = draw_skeleton(image, joints, MPII)
    assert tuple(drawn[16, 16]) == LEFT_COLOR  # a filled dot
    assert tuple(drawn[48, 48]) == (0, 0, 0)  # a ring: hollow centre ...
    radius = max(2, round(64 / 110)) + 1
    assert tuple(drawn[48, 48 + radius]) == RIGHT_COLOR  # ... drawn at radius + 1
    assert np.count_nonzero(drawn.any(axis=2)) < 100  # NaN joints and their limbs are not drawn


def test_a_limb_to_an_invisible_joint_is_thin() -> None:
    image = np.zeros((320, 320, 3), np.uint8)  # full limbs 2 px wide
    joints = np.full((16, 3), np.nan, np.float32)
    joints[MPII.index("l_knee")] = (100, 100, 1)
    joints[MPII.index("l_ankle")] = (100, 200, 1)
    joints[MPII.index("l_hip")] = (100, 20, 0)
    drawn = draw_skeleton(image, joints, MPII)
    lit = lambda row: int(np.count_nonzero(drawn[row].any(axis=1)))  # noqa: E731
    assert lit(150) > lit(60) >= 1  # knee-ankle at full width, hip-knee thin


def test_outline_is_drawn_and_box_corners_go_round() -> None:
    np.testing.assert_array_equal(box_corners(1, 2, 5, 7), [[1, 2], [5, 2], [5, 7], [1, 7]])
    image = np.zeros((100, 100, 3), np.uint8)
    joints = np.full((16, 2), np.nan)
    drawn = draw_skeleton(image, joints, MPII, outline=box_corners(10, 20, 80, 90))
    # An anti-aliased 1 px grey line along each side; nothing inside or outside it.
    for edge in (drawn[18:23, 50], drawn[88:93, 50], drawn[50, 8:13], drawn[50, 78:83]):
        assert (edge[:, 0] == edge[:, 1]).all() and (edge[:, 1] == edge[:, 2]).all()  # grey
        assert 150 < edge.max() <= BOX_COLOR[0]
    assert not drawn[25:85, 15:75].any() and not drawn[:15].any() and not drawn[95:].any()


@pytest.mark.parametrize("joint_set", [*JOINT_SETS.values(), SPELLED_OUT], ids=lambda s: s.name)
def test_any_joint_set_draws_with_its_own_limbs_and_sides(joint_set: JointSet) -> None:
    rng = np.random.default_rng(0)
    joints = rng.uniform(20, 180, size=(joint_set.num_joints, 2))
    drawn = draw_skeleton(np.zeros((200, 200, 3), np.uint8), joints, joint_set)
    colors = {tuple(p) for p in drawn.reshape(-1, 3)}
    assert {LEFT_COLOR, RIGHT_COLOR, CENTER_COLOR} <= colors
    for j, name in enumerate(joint_set.names):
        x, y = np.rint(joints[j]).astype(int)
        # The joint drawn last on this pixel has its side's colour, unless another dot covers it.
        covered = [k for k in range(j + 1, joint_set.num_joints) if np.hypot(*(joints[k] - joints[j])) < 6]
        if not covered:
            assert tuple(drawn[y, x]) == limb_color(joint_set, j, j), name


def test_wrong_joint_count_is_a_clear_error() -> None:
    with pytest.raises(ValueError, match=r"expected 14 lsp joints as \[J, 2\] or \[J, 3\], got shape \(16, 2\)"):
        draw_skeleton(np.zeros((8, 8, 3), np.uint8), np.zeros((16, 2)), LSP)


def test_a_huge_box_is_drawn_along_the_image_edge() -> None:
    """A detector's [0, 0, 1e7, 1e7] once stopped OpenCV (thickness and int32 limits): it is drawn
    clipped to the image, with the lines of a person as large as the image."""
    from fpdctl.viz import draw_persons

    image = np.zeros((60, 80, 3), np.uint8)
    joints = np.full((1, MPII.num_joints, 2), 30.0)
    huge = draw_persons(image, joints, MPII, boxes=np.array([[0.0, 0.0, 1e7, 1e7]]))
    whole = draw_persons(image, joints, MPII, boxes=np.array([[0.0, 0.0, 79.0, 59.0]]))
    assert huge[0, 40].min() > 100 and huge[30, 0].min() > 100  # grey on the top and left edges
    np.testing.assert_array_equal(huge[5:55, 5:75], whole[5:55, 5:75])  # the same skeleton inside
    far = np.full((1, MPII.num_joints, 2), 1e12)  # a point far off the image is not drawn
    assert not draw_persons(image, far, MPII).any()
