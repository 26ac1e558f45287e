"""fpdctl.boxes: clipping, the crop's centre and scale, the one rule for unusable boxes, and NMS,
against values worked out by hand."""

from __future__ import annotations

import numpy as np
import pytest

from fpdctl.boxes import (
    NO_AREA,
    NOT_FINITE,
    PIXEL_STD,
    SCALE_MARGIN,
    TOO_SMALL,
    box_center_scale,
    box_iou,
    check_box,
    clip_box,
    image_center_scale,
    iou_nms,
    nms,
)


def test_person_boxes_follow_hrnet() -> None:
    # bbox [20, 30, 41, 81]: last pixels x 60, y 110 -> box 40 x 80, centre (40, 70); square
    # crop of side 80, enlarged 1.25 -> 100 px = scale 0.5.
    box = clip_box([20.0, 30.0, 41.0, 81.0], 200, 160)
    assert box == (20.0, 30.0, 40.0, 80.0)
    center, scale = box_center_scale(box)
    assert center.tolist() == [40.0, 70.0] and scale == 0.5
    # Partly outside a 200 x 160 image: clipped to x 150..199, y 40..159.
    assert clip_box([150.0, 40.0, 70.0, 130.0], 200, 160) == (150.0, 40.0, 49.0, 119.0)
    assert clip_box([250.0, 10.0, 30.0, 20.0], 200, 160) is None
    center, scale = box_center_scale((10.0, 20.0, 60.0, 20.0))  # wide box: its width decides
    assert center.tolist() == [40.0, 30.0] and scale == pytest.approx(60 * 1.25 / 200)
    # A crop of aspect 0.75 (w / h): a 60 x 20 box becomes 60 x 80, scale = width 60 x 1.25 / 200.
    center, scale = box_center_scale((10.0, 20.0, 60.0, 20.0), aspect_ratio=0.75, margin=1.0)
    assert scale == pytest.approx(60 / 200)
    assert SCALE_MARGIN == 1.25 and PIXEL_STD == 200.0


def test_a_box_running_off_the_left_keeps_its_far_edge() -> None:
    # [-10, -5, 30, 20] covers pixels x -10..19, y -5..14: in the image x 0..19, y 0..14.
    # (HRNet measures the far edge from the clipped corner and would give x 0..29, y 0..19.)
    assert clip_box([-10.0, -5.0, 30.0, 20.0], 200, 160) == (0.0, 0.0, 19.0, 14.0)
    # Ending on the pixel before the image: nothing left.
    assert clip_box([-10.0, 0.0, 10.0, 20.0], 200, 160) is None
    assert clip_box([-10.0, 0.0, 11.0, 20.0], 200, 160) == (0.0, 0.0, 0.0, 19.0)


def test_image_center_scale() -> None:
    center, scale = image_center_scale(300, 200)
    assert center.tolist() == [149.5, 99.5] and scale == 1.5


@pytest.mark.parametrize(
    ("box", "reason", "clipped"),
    [
        ([10.0, 20.0, 30.0, 40.0], None, (10.0, 20.0, 29.0, 39.0)),
        ([0.0, 0.0, 1e7, 1e7], None, (0.0, 0.0, 199.0, 159.0)),  # huge: the whole image
        ([-1e7, -1e7, 2e7, 2e7], None, (0.0, 0.0, 199.0, 159.0)),
        ([10.0, 20.0, 1e-6, 1e-6], TOO_SMALL, None),
        ([10.0, 20.0, 0.5, 40.0], TOO_SMALL, None),
        ([10.0, 20.0, 1.0, 1.0], NO_AREA, None),  # one pixel: a crop of no size
        ([float("nan"), 20.0, 30.0, 40.0], NOT_FINITE, None),
        ([10.0, 20.0, float("inf"), 40.0], NOT_FINITE, None),
        ([250.0, 10.0, 30.0, 20.0], NO_AREA, None),  # right of the image
        ([-50.0, 10.0, 30.0, 20.0], NO_AREA, None),  # left of it
        ([199.0, 159.0, 30.0, 20.0], NO_AREA, None),  # its last pixel only
    ],
)
def test_one_rule_for_boxes(box: list[float], reason: str | None, clipped: tuple | None) -> None:
    check = check_box(box, 200, 160)
    assert (check.reason, check.clipped, check.usable) == (reason, clipped, reason is None)
    if check.usable:
        _center, scale = box_center_scale(check.clipped)
        assert scale > 0


def test_nms_by_iou_and_by_any_overlap() -> None:
    corners = np.array([[0, 0, 10, 10], [1, 0, 11, 10], [20, 20, 30, 30]], np.float32)
    # IoU(0, 1) = 90 / 110 = 0.818; box 2 overlaps neither.
    np.testing.assert_allclose(box_iou(corners[0], corners), [1.0, 90 / 110, 0.0], rtol=1e-6)
    scores = np.array([0.5, 0.9, 0.7])
    assert iou_nms(corners, scores, 0.8).tolist() == [1, 2]
    assert iou_nms(corners, scores, 0.85).tolist() == [1, 2, 0]
    # Any overlap function: here, candidates within 1.5 of each other on a line are duplicates.
    points = np.array([0.0, 1.0, 5.0, 5.5, 10.0])
    kept = nms(np.array([0.1, 0.9, 0.3, 0.8, 0.2]), lambda i, rest: (abs(points[rest] - points[i]) < 1.5) * 1.0, 0.5)
    assert kept.tolist() == [1, 3, 4]
    # Ties keep the earlier candidate; nothing in, nothing out.
    assert nms(np.ones(3), lambda i, rest: np.ones(len(rest)), 0.5).tolist() == [0]
    assert nms(np.zeros(0), lambda i, rest: np.zeros(0), 0.5).tolist() == []
