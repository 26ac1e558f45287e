"""The evaluation loop: crop -> network -> flip test -> decode -> original pixels -> metric."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from torch import nn

import fpdctl
from fpdctl.boxes import PIXEL_STD
from fpdctl.data.registry import build_dataset
from fpdctl.data.transforms import transform_points
from fpdctl.errors import DataError, UsageError
from fpdctl.evaluation import EvalResult, evaluate_model, predict_dataset, predictions_for_reference
from fpdctl.metrics import EvalReference, PCKhResult
from fpdctl.progress import Event
from fpdctl.skeleton import LSP_TO_MPII, MPII
from fpdctl.utils.device import resolve_device

INPUT = 64  # tiny crops keep every test in seconds


def _key(image: torch.Tensor) -> bytes:
    return image.detach().cpu().contiguous().numpy().tobytes()


class GroundTruthHeatmaps(nn.Module):
    """A network whose output is the exact target heatmaps of each dataset crop it is shown.

    It knows every crop of the split (and the crop's mirror image, whose targets are the mirrored
    joints with left and right swapped), so the only error left in the evaluation loop is the
    codec's quantisation: this checks decode, flip-back and the inverse affine end to end.
    """

    def __init__(self, dataset) -> None:  # type: ignore[no-untyped-def]
        super().__init__()
        self.anchor = nn.Parameter(torch.zeros(1))  # so .to(device) and .parameters() work
        self.table: dict[bytes, torch.Tensor] = {}
        for i in range(len(dataset)):
            sample = dataset[i]
            image, meta = sample["image"], sample["meta"]
            self.table[_key(image)] = sample["target"]
            crop = transform_points(meta["joints"][:, :2], meta["affine"]).astype(np.float64)
            crop[:, 0] = INPUT - 1 - crop[:, 0]  # what torch.flip does to pixel centres
            mirrored = np.concatenate([crop, meta["joints"][:, 2:3]], axis=1)[MPII.flip_permutation()]
            heatmaps, _ = dataset.codec.encode(mirrored)
            self.table[_key(torch.flip(image, dims=[2]))] = torch.from_numpy(heatmaps)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.stack([self.table[_key(img)] for img in x]).unsqueeze(1) + self.anchor * 0


@pytest.fixture(scope="module")
def synthetic_val():  # type: ignore[no-untyped-def]
    return build_dataset("synthetic:length=6", "val", input_size=INPUT)


@pytest.mark.parametrize(
    ("flip", "max_heatmap_error"),
    [
        # decode: argmax then a quarter-pixel step -> within 0.25 heatmap px per axis.
        (False, math.hypot(0.25, 0.25)),
        # flip test: the flip-back map peaks 0.25 px right of the truth (input x -> 63 - x is 0.75
        # heatmap px left of a plain map mirror; the reference code shifts by 1); the average peaks
        # 0.125 px right, plus the decode's 0.25 -> 0.375 in x, 0.25 in y.
        (True, math.hypot(0.375, 0.25)),
    ],
)
def test_ground_truth_heatmaps_decode_to_the_joints(synthetic_val, flip: bool, max_heatmap_error: float) -> None:  # type: ignore[no-untyped-def]
    model = GroundTruthHeatmaps(synthetic_val)
    coords, scores = predict_dataset(model, synthetic_val, flip_test=flip, batch_size=4)
    assert coords.shape == (6, 16, 2) and scores.shape == (6, 16)
    reference = synthetic_val.eval_reference()
    stride = INPUT / synthetic_val.heatmap_size
    checked = 0
    for i in range(len(synthetic_val)):
        record = synthetic_val.load_annotation(i)
        weights = synthetic_val[i]["target_weight"].numpy()
        pixels_per_input_px = record.scale * PIXEL_STD / INPUT
        bound = max_heatmap_error * stride * pixels_per_input_px + 1e-3
        for j in np.flatnonzero(weights > 0):
            error = np.linalg.norm(coords[i, j] - reference.joints[i, j])
            assert error <= bound, (i, MPII.names[j], error, bound)
            checked += 1
    assert checked > 50
    # Every annotated joint inside its crop is found within the bound, far inside PCKh@0.5.
    result = evaluate_model(model, synthetic_val, flip_test=flip, batch_size=4)
    weights = np.stack([synthetic_val[i]["target_weight"].numpy() for i in range(6)]) > 0
    in_mean = np.ones(16, dtype=bool)
    in_mean[[6, 7]] = False
    scored = reference.visible[:, in_mean]
    assert result.metric.mean == pytest.approx(100.0 * (scored & weights[:, in_mean]).sum() / scored.sum())


def test_batch_size_does_not_change_predictions(synthetic_val) -> None:  # type: ignore[no-untyped-def]
    torch.manual_seed(0)
    model = fpdctl.create_model("hg1x16")
    a, sa = predict_dataset(model, synthetic_val, flip_test=True, batch_size=4)
    b, sb = predict_dataset(model, synthetic_val, flip_test=True, batch_size=1)
    np.testing.assert_allclose(a, b, atol=1e-3)
    np.testing.assert_allclose(sa, sb, atol=1e-5)


def test_evaluate_model_result_and_mode_restored(synthetic_val) -> None:  # type: ignore[no-untyped-def]
    torch.manual_seed(0)
    model = fpdctl.create_model("hg1x16")
    model.train()
    result = evaluate_model(model, synthetic_val, flip_test=False, batch_size=3)
    assert model.training  # a training loop gets its model back in train mode
    assert isinstance(result, EvalResult) and isinstance(result.metric, PCKhResult)
    assert result.num_persons == 6 and result.seconds > 0 and result.device == "cpu"
    assert result.coords.shape == (6, 16, 2) and not result.flip_test
    # The metric is exactly that of the returned predictions.
    from fpdctl.metrics import compute_pckh

    again = compute_pckh(result.coords, synthetic_val.eval_reference())
    assert again.groups == result.metric.groups


def test_progress_callback(synthetic_val) -> None:  # type: ignore[no-untyped-def]
    events: list[Event] = []
    predict_dataset(fpdctl.create_model("hg1x16"), synthetic_val, flip_test=False, batch_size=4, progress=events.append)
    assert [(e.kind, e.done, e.total) for e in events] == [("eval.batch", 4, 6), ("eval.batch", 6, 6)]


def test_predictions_for_lsp_reference() -> None:
    coords = np.arange(2 * 16 * 2, dtype=np.float32).reshape(2, 16, 2)
    lsp = EvalReference(
        joints=np.zeros((2, 14, 2)), visible=np.ones((2, 14), bool), headboxes=None, metric="pck", joint_set="lsp"
    )
    picked = predictions_for_reference(coords, lsp)
    assert picked.shape == (2, 14, 2)
    np.testing.assert_array_equal(picked[:, 12], coords[:, MPII.index("upper_neck")])
    np.testing.assert_array_equal(picked, coords[:, list(LSP_TO_MPII)])


def test_bad_arguments(synthetic_val) -> None:  # type: ignore[no-untyped-def]
    model = fpdctl.create_model("hg1x16")
    with pytest.raises(UsageError, match="^`batch_size` must be at least 1, got 0$"):
        predict_dataset(model, synthetic_val, batch_size=0)
    with pytest.raises(UsageError, match="the model predicts 14 joints"):
        predict_dataset(fpdctl.create_model("hg1x16j14"), synthetic_val, flip_test=False)


def test_lsp_split_scores_pck(lspet400) -> None:  # type: ignore[no-untyped-def]
    pytest.importorskip("fpdctl.data.lsp")
    dataset = build_dataset(f"lsp:{lspet400}", "val", input_size=INPUT)
    reference = dataset.eval_reference()
    assert reference.metric == "pck" and reference.joint_set == "lsp"
    result = evaluate_model(fpdctl.create_model("hg1x16"), dataset, flip_test=False, batch_size=16)
    assert result.metric.metric == "pck" and result.metric.threshold == 0.2
    assert list(result.metric.per_joint) == list(dataset.joint_set.names)


# ---------------------------------------------------------------------------------------------
def test_resolve_device_cpu_and_errors() -> None:
    assert resolve_device("cpu") == torch.device("cpu")
    assert resolve_device(torch.device("cpu")) == torch.device("cpu")
    with pytest.raises(UsageError, match=r"^`device` must be auto, cpu, cuda, cuda:N or mps, got 'tpu'$"):
        resolve_device("tpu")
    if not torch.cuda.is_available():
        assert resolve_device("auto").type in ("cpu", "mps")
        with pytest.raises(UsageError, match=r"^`device` cuda:1: CUDA is not available"):
            resolve_device("cuda:1")
    else:
        assert resolve_device("auto") == torch.device("cuda", 0)
        count = torch.cuda.device_count()
        with pytest.raises(UsageError, match=f"this machine has {count} CUDA device"):
            resolve_device(f"cuda:{count}")


def test_empty_split_is_refused() -> None:
    class Empty(torch.utils.data.Dataset):
        def __len__(self) -> int:
            return 0

    with pytest.raises(DataError, match="^the evaluation split is empty$"):
        evaluate_model(fpdctl.create_model("hg1x16"), Empty())
