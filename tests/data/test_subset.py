"""The first persons of a dataset: the same samples, the same ground truth, cut at the limit."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from fpdctl.data.registry import build_dataset
from fpdctl.data.subset import FirstPersons


def test_first_persons_keep_samples_and_ground_truth_aligned() -> None:
    full = build_dataset("synthetic:length=6", "val", input_size=64)
    subset = FirstPersons(full, 4)
    assert len(subset) == 4 and subset.metric == full.metric == "pckh"
    assert subset.codec is full.codec and subset.joint_set is full.joint_set
    for index in (0, 3):
        assert torch.equal(subset[index]["image"], full[index]["image"])
    with pytest.raises(IndexError):
        subset[4]
    with pytest.raises(IndexError):
        subset[-1]

    whole, cut = full.eval_reference(), subset.eval_reference()
    np.testing.assert_array_equal(cut.joints, whole.joints[:4])
    np.testing.assert_array_equal(cut.visible, whole.visible[:4])
    np.testing.assert_array_equal(cut.headboxes, whole.headboxes[:4])
    assert (cut.metric, cut.joint_set) == (whole.metric, whole.joint_set)


def test_a_limit_past_the_end_keeps_everything() -> None:
    full = build_dataset("synthetic:length=3", "val", input_size=64)
    assert len(FirstPersons(full, 10)) == 3


def test_first_persons_of_coco_keep_the_image_ids() -> None:
    from fpdctl.metrics.coco import COCOReference, evaluate_coco_reference
    from fpdctl.skeleton import COCO

    full = build_dataset("synthetic:layout=coco,length=5", "val", input_size=64)
    subset = FirstPersons(full, 3)
    assert subset.channel_joint_set is COCO and subset.metric == "oks" and subset.input_size == 64
    cut = subset.eval_reference()
    assert isinstance(cut, COCOReference) and cut.image_ids.tolist() == [1, 2, 3]
    assert cut.ground_truth is not None and len(cut.ground_truth["images"]) == 5
    np.testing.assert_array_equal(cut.joints, full.eval_reference().joints[:3])
    # Only the subset's images are scored: its ground truth as predictions is AP 1.
    result = evaluate_coco_reference(cut.joints, cut)
    assert (result.ap, result.num_images) == (1.0, 3)
