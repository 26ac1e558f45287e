"""Evaluation on COCO's 17 keypoints: the channel count comes from the data, the flip test swaps
COCO's pairs, and the score is pycocotools' AP with the heatmap peaks as keypoint scores."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from fpdctl.data.registry import build_dataset
from fpdctl.errors import UsageError
from fpdctl.evaluation import evaluate_model, predict_dataset, predictions_for_reference
from fpdctl.metrics import COCOResult, evaluate_coco_reference, headline_score, score_name
from fpdctl.models.factory import create_model
from fpdctl.skeleton import COCO


def _oracle(dataset) -> object:  # type: ignore[no-untyped-def]
    """A numpy runner that returns each sample's own target heatmaps, in order; for the mirrored
    half of a flip-test batch, the maps whose ``flip_back`` is exactly the target (mirror, swap
    COCO's left/right channels, one heatmap pixel to the left)."""
    targets = np.stack([dataset[i]["target"].numpy() for i in range(len(dataset))])
    perm = COCO.flip_permutation()
    state = {"next": 0}

    def run(images: np.ndarray) -> np.ndarray:
        count = images.shape[0]
        flip = count > 1 and np.array_equal(images[count // 2 :], images[: count // 2, :, :, ::-1])
        n = count // 2 if flip else count
        batch = targets[state["next"] : state["next"] + n]
        state["next"] += n
        if not flip:
            return batch
        shifted = np.zeros_like(batch)
        shifted[..., :-1] = batch[..., 1:]
        mirrored = shifted[:, perm, :, ::-1]
        return np.concatenate([batch, mirrored])

    return run


def test_the_flip_test_swaps_coco_pairs() -> None:
    dataset = build_dataset("synthetic:layout=coco,length=6,seed=5", "val", input_size=64)
    plain, plain_scores = predict_dataset(_oracle(dataset), dataset, flip_test=False, batch_size=4)
    flipped, _ = predict_dataset(_oracle(dataset), dataset, flip_test=True, batch_size=4)
    assert plain.shape == (6, 17, 2) and plain_scores.shape == (6, 17)
    reference = dataset.eval_reference()
    # The averaged maps are the targets again (bar the border column), so the joints agree.
    visible = reference.visible
    np.testing.assert_allclose(flipped[visible], plain[visible], atol=1e-4)
    # The peaks are the targets' samples of a sigma-2 Gaussian within half a heatmap pixel of its
    # centre in x and y: at least exp(-(0.5^2 + 0.5^2) / 8) = 0.939.
    assert (plain_scores[visible] > 0.939).all() and (plain_scores[visible] <= 1.0).all()
    np.testing.assert_allclose(plain[visible], reference.joints[visible], atol=1.01)


def test_evaluate_model_scores_coco_ap_with_peak_scores() -> None:
    dataset = build_dataset("synthetic:layout=coco,length=6,seed=5", "val", input_size=64)
    result = evaluate_model(_oracle(dataset), dataset, flip_test=False, batch_size=3)
    assert isinstance(result.metric, COCOResult) and result.reference is not None
    assert predictions_for_reference(result.coords, result.reference) is result.coords
    # The same figure as scoring the predictions directly, and the oracle is right at OKS 0.5.
    direct = evaluate_coco_reference(result.coords, result.reference, result.scores)
    assert result.metric == direct and result.metric.ap50 == 1.0
    assert result.metric.mean == pytest.approx(100.0 * result.metric.ap)
    report = result.metric.to_dict()
    assert headline_score(report, "oks") == pytest.approx(result.metric.mean)
    assert report["oks"]["AP50"] == 100.0 and score_name("oks") == "AP"
    with pytest.raises(UsageError, match="COCO AP averages over OKS 0.50:0.95"):
        evaluate_model(_oracle(dataset), dataset, flip_test=False, threshold=0.5)


def test_a_model_with_other_joints_is_refused() -> None:
    dataset = build_dataset("synthetic:layout=coco,length=2", "val", input_size=64)
    torch.manual_seed(0)
    with pytest.raises(UsageError) as info:
        evaluate_model(create_model("hg1x16"), dataset, flip_test=True, batch_size=2)
    assert str(info.value) == "the model predicts 16 joints but the data has the 17 COCO joints"
    mpii = build_dataset("synthetic:length=2", "val", input_size=64)
    with pytest.raises(UsageError) as info:
        evaluate_model(create_model("hg1x16j17"), mpii, flip_test=False, batch_size=2)
    assert str(info.value) == "the model predicts 17 joints but the data has the 16 MPII joints"
