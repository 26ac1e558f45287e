"""Done means (issue 12): a pytorch-pose checkpoint and an official-FPD checkpoint predict on real
photos what the same network predicts when fed each project's own preprocessing.

One tiny network's weights are written in each project's file layout (pytorch-pose's dict with
``arch`` and a ``module.`` state_dict; the official FPD code's ``checkpoint.pth`` with
``best_state_dict`` and ``perf``, and its bare state_dict ``model_best.pth``). ``fpdctl predict``
and ``fpdctl eval`` run them on LSPET photos; the oracle is the same network fed the input tensor
the project itself builds from the same crop (tests/reference_preprocessing.py, re-stated from its
own code). A negative control shows what fpdctl fed these checkpoints before: other heatmaps.
Skipped when ../shared/data is absent.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from scipy.io import loadmat

from fpdctl.cli.app import main
from fpdctl.models.convention import FPD_OFFICIAL, NATIVE, PYTORCH_POSE_MPII
from fpdctl.pipeline import crop, normalise, person_box, to_image
from tests import reference_preprocessing as ref
from tests.conftest import INPUT_SIZE, make_net
from tests.models.test_checkpoint_convention import write_foreign

HEATMAP_TOLERANCE = 1e-5
KINDS = {
    "pytorch-pose": PYTORCH_POSE_MPII,
    "fpd-checkpoint": FPD_OFFICIAL,
    "state_dict": FPD_OFFICIAL,
}
PHOTOS = (0, 7, 42)  # im00001, im00008, im00043


def reference_input(kind: str, crop_bgr: np.ndarray) -> torch.Tensor:
    """The input tensor the checkpoint's own project builds from this crop: [3, S, S]."""
    if kind == "pytorch-pose":
        return ref.pytorch_pose_input(np.ascontiguousarray(crop_bgr[..., ::-1]))
    return ref.fpd_input(crop_bgr)


@pytest.fixture(scope="module")
def net() -> torch.nn.Module:
    return make_net()


@pytest.fixture(scope="module")
def checkpoints(tmp_path_factory: pytest.TempPathFactory, net) -> dict[str, Path]:
    files = {}
    for kind in KINDS:
        folder = tmp_path_factory.mktemp(kind)
        files[kind] = write_foreign(net, folder, kind)
    return files


def _box(lspet400: Path, index: int) -> tuple[float, float, float, float]:
    """The annotated person's box (x, y, w, h) from its visible joints."""
    joints = loadmat(str(lspet400 / "joints.mat"))["joints"][:, :, index]
    visible = joints[joints[:, 2] > 0, :2]
    low, high = visible.min(axis=0), visible.max(axis=0)
    return float(low[0]), float(low[1]), float(high[0] - low[0] + 1), float(high[1] - low[1] + 1)


def _oracle(net, kind: str, image: np.ndarray, box) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """The crop fpdctl takes, the project's own input for it, its heatmaps and keypoints."""
    height, width = image.shape[:2]
    center, scale, _ = person_box(width, height, box)
    patch, affine = crop(image, center, scale, INPUT_SIZE)
    with torch.no_grad():
        heatmaps = net(reference_input(kind, patch)[None]).numpy()
    coords, scores = to_image(heatmaps, [affine], INPUT_SIZE)
    return patch, heatmaps, coords[0], scores[0]


@pytest.mark.parametrize("kind", list(KINDS))
def test_predict_equals_the_network_fed_its_projects_preprocessing(
    kind, checkpoints, net, lspet400, tmp_path, capsys
) -> None:
    from fpdctl.data.dataset import read_image
    from fpdctl.models.factory import create_model

    loaded = create_model(checkpoints[kind])
    assert loaded.input_convention is KINDS[kind]
    for index in PHOTOS:
        photo = lspet400 / "images" / f"im{index + 1:05d}.jpg"
        box = _box(lspet400, index)
        image = read_image(photo)
        patch, expected_maps, expected_xy, expected_scores = _oracle(net, kind, image, box)
        # The tensors and heatmaps, stage by stage: fpdctl's normalisation of the same crop.
        ours = normalise(patch[None], loaded.input_convention)
        np.testing.assert_allclose(ours[0], reference_input(kind, patch).numpy(), rtol=0, atol=HEATMAP_TOLERANCE)
        with torch.no_grad():
            maps = loaded(torch.from_numpy(ours)).numpy()
            before = loaded(torch.from_numpy(normalise(patch[None], NATIVE))).numpy()
        np.testing.assert_allclose(maps, expected_maps, rtol=0, atol=HEATMAP_TOLERANCE)
        # Negative control: what every model was fed before (NATIVE) gives other heatmaps.
        assert np.abs(before - expected_maps).max() > 100 * HEATMAP_TOLERANCE

        # The command end to end: the keypoints it writes are the oracle's.
        out = tmp_path / f"{kind}-{index}"
        code = main(
            [
                "predict",
                str(checkpoints[kind]),
                str(photo),
                "--bbox",
                ",".join(repr(v) for v in box),
                "--input-size",
                str(INPUT_SIZE),
                "--out",
                str(out),
                "--no-draw",
            ]
        )
        assert code == 0, capsys.readouterr().err
        report = json.loads((out / "keypoints.json").read_text())
        assert report["input_convention"] == KINDS[kind].to_dict()
        points = report["results"][0]["persons"][0]["keypoints"]
        np.testing.assert_allclose([[p["x"], p["y"]] for p in points], expected_xy, rtol=0, atol=1.5e-3)
        np.testing.assert_allclose([p["score"] for p in points], expected_scores, rtol=0, atol=1e-4)


@pytest.mark.parametrize("kind", ["pytorch-pose", "fpd-checkpoint"])
def test_eval_feeds_each_person_its_projects_input(kind, checkpoints, net, lspet400, capsys) -> None:
    """``fpdctl eval`` on LSPET: the dataset's NATIVE crops are converted to the checkpoint's
    convention; per person, the coordinates are those of the network fed its project's own
    input of the same crop. The JSON report names the convention used."""
    from fpdctl.data.registry import build_dataset
    from fpdctl.data.subset import FirstPersons
    from fpdctl.data.transforms import denormalize_image
    from fpdctl.evaluation import evaluate_checkpoint, evaluate_model
    from fpdctl.models.factory import create_model

    dataset = FirstPersons(build_dataset(f"lsp:{lspet400}", "val", input_size=INPUT_SIZE), 6)
    result = evaluate_model(create_model(checkpoints[kind]), dataset, flip_test=False, batch_size=3)
    assert result.input_convention is KINDS[kind]
    for i in range(len(dataset)):
        sample = dataset[i]
        patch = denormalize_image(sample["image"].numpy())  # the uint8 crop the sample was made from
        np.testing.assert_allclose(NATIVE.normalize(patch, source_order="bgr"), sample["image"].numpy(), atol=1e-5)
        with torch.no_grad():
            heatmaps = net(reference_input(kind, patch)[None]).numpy()
        coords, scores = to_image(heatmaps, [sample["meta"]["affine"]], INPUT_SIZE)
        index = sample["meta"]["index"]
        np.testing.assert_allclose(result.coords[index], coords[0], rtol=0, atol=1e-3)
        np.testing.assert_allclose(result.scores[index], scores[0], rtol=0, atol=1e-5)

    code = main(
        [
            "eval",
            str(checkpoints[kind]),
            "--data",
            f"lsp:{lspet400}",
            "--input-size",
            str(INPUT_SIZE),
            "--no-flip-test",
            "--device",
            "cpu",
            "--format",
            "json",
        ]
    )
    out = capsys.readouterr().out
    assert code == 0
    assert json.loads(out)["input_convention"] == KINDS[kind].to_dict()
    whole = evaluate_checkpoint(
        str(checkpoints[kind]), f"lsp:{lspet400}", input_size=INPUT_SIZE, flip_test=False, device="cpu"
    )
    assert json.loads(out)["pck"]["mean"] == pytest.approx(whole.metric.groups["mean"], abs=1e-9)


def test_an_export_records_the_checkpoints_convention_and_predicts_alike(
    checkpoints, lspet400, tmp_path, capsys
) -> None:
    """The ONNX file of a pytorch-pose checkpoint records PYTORCH_POSE_MPII; ``fpdctl predict``
    on the file gives the checkpoint's keypoints (the convention travels with the export)."""
    from fpdctl.deploy.export import export_onnx
    from fpdctl.deploy.metadata import read_info

    onnx_path = tmp_path / "pp.onnx"
    result = export_onnx(
        checkpoints["pytorch-pose"],
        onnx_path,
        input_size=INPUT_SIZE,
        exporter="torchscript",
        verify_random=1,
        verify_images=2,
        threads=1,
    )
    assert result.verification.passed and result.verification.image_keypoint_agreement == 1.0
    assert read_info(onnx_path).input_convention is PYTORCH_POSE_MPII
    assert result.to_dict()["input_convention"] == PYTORCH_POSE_MPII.to_dict()
    photo = lspet400 / "images" / "im00001.jpg"
    box = ",".join(repr(v) for v in _box(lspet400, 0))
    reports = []
    for model in (checkpoints["pytorch-pose"], onnx_path):
        out = tmp_path / f"out-{model.suffix.lstrip('.')}"
        assert (
            main(
                [
                    "predict",
                    str(model),
                    str(photo),
                    "--bbox",
                    box,
                    "--input-size",
                    str(INPUT_SIZE),
                    "--out",
                    str(out),
                    "--no-draw",
                ]
            )
            == 0
        ), capsys.readouterr().err
        reports.append(json.loads((out / "keypoints.json").read_text()))
    assert reports[0]["input_convention"] == reports[1]["input_convention"] == PYTORCH_POSE_MPII.to_dict()
    for ours, theirs in zip(
        reports[0]["results"][0]["persons"][0]["keypoints"], reports[1]["results"][0]["persons"][0]["keypoints"]
    ):
        assert abs(ours["x"] - theirs["x"]) < 1e-2 and abs(ours["y"] - theirs["y"]) < 1e-2
        assert abs(ours["score"] - theirs["score"]) < 1e-4


def test_verification_and_calibration_images_are_in_the_models_convention() -> None:
    from fpdctl.data.registry import build_dataset
    from fpdctl.deploy.quantize import image_batches
    from fpdctl.deploy.verify import verification_inputs
    from fpdctl.models.convention import convert_array

    _, native = verification_inputs(INPUT_SIZE, 1, 2)
    _, theirs = verification_inputs(INPUT_SIZE, 1, 2, convention=FPD_OFFICIAL)
    np.testing.assert_array_equal(theirs, convert_array(native, NATIVE, FPD_OFFICIAL))
    dataset = build_dataset("synthetic:length=4", "train", input_size=INPUT_SIZE)
    plain = np.concatenate(list(image_batches(dataset, np.arange(3), 2)))
    converted = np.concatenate(list(image_batches(dataset, np.arange(3), 2, convention=PYTORCH_POSE_MPII)))
    np.testing.assert_array_equal(converted, convert_array(plain, NATIVE, PYTORCH_POSE_MPII))
