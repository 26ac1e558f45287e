"""``fpdctl export``: round trips through ONNX Runtime, metadata, batch handling, precisions."""

import hashlib
import json
import os
import re

import numpy as np
import onnx
import pytest
import torch

from fpdctl import __version__
from fpdctl.cli.app import main
from fpdctl.data.transforms import MEAN, STD
from fpdctl.deploy.backends import get_backend
from fpdctl.deploy.bench_report import instruction_set
from fpdctl.deploy.export import export_onnx
from fpdctl.deploy.metadata import read_info
from fpdctl.deploy.quantize import pair_sum_bound
from fpdctl.deploy.runtime import OrtRunner, TorchRunner
from fpdctl.deploy.torch_onnx import parse_batch
from fpdctl.errors import UsageError
from fpdctl.models.convention import NATIVE
from fpdctl.skeleton import MPII
from tests.conftest import HEATMAP_SIZE, INPUT_SIZE, make_net


def _torch_heatmaps(net, x, all_stacks=False):
    with torch.inference_mode():
        out = net(torch.from_numpy(x))
    return (out if all_stacks else out[:, -1]).numpy()


def _inputs(n, seed=1):
    return np.random.default_rng(seed).standard_normal((n, 3, INPUT_SIZE, INPUT_SIZE)).astype(np.float32)


def test_fp32_round_trip_matches_torch_on_the_final_stack(fp32_export, tiny_net):
    result, path = fp32_export
    x = _inputs(2)
    got = OrtRunner(path)(x)
    assert got.shape == (2, 16, HEATMAP_SIZE, HEATMAP_SIZE)
    np.testing.assert_allclose(got, _torch_heatmaps(tiny_net, x), rtol=1e-4, atol=1e-5)


def test_verification_report(fp32_export):
    result, _ = fp32_export
    report = result.verification
    assert report.passed and report.min_agreement == 0.999
    assert report.keypoint_agreement == 1.0 and report.image_keypoint_agreement == 1.0
    assert report.joints_compared == (4 + 8) * 16
    assert 0 < report.max_abs_error < 1e-4 and report.max_rel_error < 1e-5
    assert report.batch_sizes == (4, 8)  # random and image inputs run as two batch sizes
    assert result.base_verification is None and result.accuracy is None


def test_metadata(fp32_export, tiny_checkpoint):
    result, path = fp32_export
    info = read_info(path)
    assert info == result.info
    assert info.spec == make_net().spec and info.spec.name == "hg1x16"
    assert info.joint_set == "mpii" and info.joint_names == MPII.names
    assert info.flip_pairs == MPII.flip_pairs and info.skeleton == MPII.skeleton
    assert (info.input_size, info.heatmap_stride, info.heatmap_size) == (64, 4, 16)
    assert info.mean == MEAN and info.std == STD and info.color_order == "RGB"
    assert info.input_convention is NATIVE  # the checkpoint's (a native file)
    assert (info.outputs, info.precision, info.batch, info.opset) == ("final", "fp32", None, 18)
    assert info.version == __version__ and info.exporter == "dynamo"
    assert info.source == tiny_checkpoint.name
    assert info.source_sha256 == hashlib.sha256(tiny_checkpoint.read_bytes()).hexdigest()
    props = {e.key: e.value for e in onnx.load(str(path)).metadata_props}
    assert json.loads(props["fpdctl.spec"]) == {"stacks": 1, "channels": 16, "blocks": 1, "joints": 16, "depth": 4}


def test_one_self_contained_file(fp32_export):
    _, path = fp32_export
    assert sorted(p.name for p in path.parent.iterdir()) == [path.name]  # no .data, no temp files
    model = onnx.load(str(path), load_external_data=False)
    onnx.checker.check_model(model)
    assert all(i.data_location == onnx.TensorProto.DEFAULT for i in model.graph.initializer)
    # The exporter's per-node stack traces (paths of this machine) are stripped.
    assert not any(n.metadata_props or n.doc_string for n in model.graph.node)
    # The last score convolution writes the output: no stacking of all stacks to keep one.
    assert model.graph.node[-1].op_type == "Conv" and model.graph.node[-1].output[0] == "heatmaps"
    assert not {"Gather", "Concat", "Unsqueeze"} & {n.op_type for n in model.graph.node}


def test_dynamic_batch_runs_batch_1_and_3(fp32_export, tiny_net):
    _, path = fp32_export
    runner = OrtRunner(path)
    assert runner.batch is None
    x = _inputs(3, seed=2)
    three = runner(x)
    one = runner(x[1:2])
    assert three.shape[0] == 3 and one.shape[0] == 1
    np.testing.assert_allclose(one[0], three[1], rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(three, _torch_heatmaps(tiny_net, x), rtol=1e-4, atol=1e-5)


def test_fixed_batch_and_all_stacks(tmp_path):
    net = make_net("hg2x16", seed=3)
    path = tmp_path / "hg2x16_b2.onnx"
    result = export_onnx(net, path, input_size=INPUT_SIZE, batch=2, all_stacks=True, verify_images=3)
    assert result.verification.passed and result.verification.batch_sizes == (2,)
    info = read_info(path)
    assert (info.batch, info.outputs, info.source, info.source_sha256) == (2, "all_stacks", "hg2x16", "")
    runner = OrtRunner(path)
    assert runner.batch == 2 and runner.all_stacks
    x = _inputs(3, seed=4)  # 3 images through a batch-2 graph: split and padded
    got = runner(x)
    assert got.shape == (3, 2, 16, HEATMAP_SIZE, HEATMAP_SIZE)
    np.testing.assert_allclose(got, _torch_heatmaps(net, x, all_stacks=True), rtol=1e-4, atol=1e-5)


def test_pytorch_pose_checkpoint_exports_directly(tmp_path, capsys):
    """A pytorch-pose checkpoint.pth.tar: DataParallel keys, legacy (pre-zip) serialisation."""
    net = make_net(seed=5)
    payload = {
        "epoch": 90,
        "arch": "hg",
        "state_dict": {f"module.{k}": v for k, v in net.state_dict().items()},
        "best_acc": torch.tensor(0.83),
        "optimizer": {"state": {}, "param_groups": [{"lr": 2.5e-4}]},
    }
    checkpoint = tmp_path / "checkpoint.pth.tar"
    torch.save(payload, checkpoint, _use_new_zipfile_serialization=False)
    out = tmp_path / "out" / "pose.onnx"
    code = main(["export", str(checkpoint), "-o", str(out), "--input-size", "64", "--format", "json"])
    captured = capsys.readouterr()
    assert code == 0, captured.err
    report = json.loads(captured.out)
    assert report["model"] == "hg1x16" and report["verification"]["passed"] is True
    assert report["source_sha256"] == hashlib.sha256(checkpoint.read_bytes()).hexdigest()
    x = _inputs(2, seed=6)
    np.testing.assert_allclose(OrtRunner(out)(x), _torch_heatmaps(net, x), rtol=1e-4, atol=1e-5)


def test_fp16_export(tmp_path, tiny_net):
    path = tmp_path / "fp16.onnx"
    result = export_onnx(tiny_net, path, input_size=INPUT_SIZE, precision="fp16", validation_samples=16)
    model = onnx.load(str(path))
    weights = [i for i in model.graph.initializer if len(i.dims) == 4]
    assert weights and all(i.data_type == onnx.TensorProto.FLOAT16 for i in weights)
    # Inputs and outputs stay fp32.
    assert model.graph.input[0].type.tensor_type.elem_type == onnx.TensorProto.FLOAT
    assert model.graph.output[0].type.tensor_type.elem_type == onnx.TensorProto.FLOAT
    report = result.verification
    assert report.finite and report.precision == "fp16" and report.min_agreement is None
    assert 0 < report.max_rel_error < 1e-2  # fp16 has a 2^-11 relative step
    assert result.base_verification.keypoint_agreement == 1.0
    assert result.accuracy.candidate_precision == "fp16" and result.accuracy.samples == 16
    assert read_info(path).precision == "fp16"


def test_int8_export_reports_pckh_against_fp32(tmp_path, tiny_net):
    from fpdctl.data.registry import build_dataset
    from fpdctl.data.subset import FirstPersons
    from fpdctl.evaluation import evaluate_model

    path = tmp_path / "int8.onnx"
    result = export_onnx(
        tiny_net,
        path,
        input_size=INPUT_SIZE,
        precision="int8",
        calibration_samples=24,
        validation_samples=40,
    )
    q = result.quantization
    assert q.calibration_samples == 24 and q.per_channel and q.calibration_data == "synthetic"
    # hg1x16: 3 stem bottlenecks + 13 hourglass + 1 head residual, one pre-activation BN each.
    assert q.bn_converted == 17
    # 7-bit weights: no pair of u8 x s8 products can leave int16, so CPUs without VNNI (whose
    # kernels add pairs in int16) give this file's results too; the bound is the written file's.
    assert q.reduce_range and q.int16_safe
    assert q.pair_sum_bound == pair_sum_bound(onnx.load(str(path))) <= 255 * 128
    assert result.to_dict()["isa"] == result.isa == instruction_set() != ""
    ops = {n.op_type for n in onnx.load(str(path)).graph.node}
    assert {"QuantizeLinear", "DequantizeLinear", "Conv"} <= ops and "BatchNormalization" not in ops
    acc = result.accuracy
    assert (acc.metric, acc.samples, acc.reference_precision, acc.candidate_precision) == ("pckh", 40, "fp32", "int8")
    assert 0.0 <= acc.candidate_mean <= 100.0
    assert acc.drop == pytest.approx(acc.reference_mean - acc.candidate_mean)
    # The fp32 figure is the PyTorch model's, computed independently by the eval pipeline with
    # eval's defaults (the flip test on).
    dataset = FirstPersons(build_dataset("synthetic", "val", input_size=INPUT_SIZE), 40)
    expected = evaluate_model(tiny_net, dataset).metric
    assert acc.flip_test and not acc.whole_split
    assert acc.protocol == "fpdctl eval pipeline, flip test on, the first 40 persons of the synthetic val split"
    assert acc.reference_mean == pytest.approx(expected.mean, abs=1e-9)
    assert acc.reference.per_joint == pytest.approx(expected.per_joint, nan_ok=True)
    assert result.verification.finite and read_info(path).precision == "int8"


# Over 20 s in a full run on two busy cores: test_int8_export_reports_pckh_against_fp32
# checks the fp32 figure against eval's in the default run.
@pytest.mark.slow
def test_export_reports_what_eval_gives_each_file(tmp_path, tiny_checkpoint):
    """One protocol: export's fp32 and int8 figures are `fpdctl eval`'s on the two files, on the
    same persons (the whole split, flip test on); with --no-flip-test, eval's --no-flip-test figures."""
    from fpdctl.api import evaluate

    data = "synthetic:size=48"
    fp32_file, int8_file = tmp_path / "fp32.onnx", tmp_path / "int8.onnx"
    export_onnx(tiny_checkpoint, fp32_file, input_size=INPUT_SIZE)
    for flip in (True, False):
        result = export_onnx(
            tiny_checkpoint,
            int8_file,
            input_size=INPUT_SIZE,
            precision="int8",
            calibration_data=data,
            calibration_samples=8,
            flip_test=flip,
        )
        acc = result.accuracy
        assert (acc.samples, acc.flip_test, acc.whole_split) == (48, flip, True)
        assert acc.protocol.endswith(f"flip test {'on' if flip else 'off'}, all 48 persons of the {data} val split")
        fp32 = evaluate(fp32_file, data, flip_test=flip).metric
        int8 = evaluate(int8_file, data, flip_test=flip).metric
        assert acc.reference_mean == fp32.mean and acc.candidate_mean == int8.mean
        assert acc.reference.per_joint == pytest.approx(fp32.per_joint, nan_ok=True, abs=0)


def test_a_wrong_graph_fails_verification_and_writes_nothing(tmp_path, monkeypatch, tiny_checkpoint, capsys):
    """If the exporter produced a graph that computes something else (here: the graph of a net
    with other weights), the export must fail with exit 1, one line, and leave no file."""
    import fpdctl.deploy.export as export_module

    real_export = export_module.torch_to_onnx
    other = make_net(seed=99)
    monkeypatch.setattr(export_module, "torch_to_onnx", lambda net, path, **kw: real_export(other, path, **kw))
    out = tmp_path / "out"
    code = main(["export", str(tiny_checkpoint), "-o", str(out / "m.onnx"), "--input-size", "64"])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 1
    assert re.fullmatch(
        r"error: fp32 export disagrees with PyTorch: heatmap argmax differs for \d+ of 192 joints "
        r"\(agreement [\d.]+% < 99\.90%\), max abs error [\d.e+-]+; nothing was written",
        err[-1],
    ), err[-1]
    assert not [line for line in err if not line.endswith("...")][:-1]  # progress lines, then one error
    assert list(out.iterdir()) == []


@pytest.mark.parametrize(
    "args, message",
    [
        (["--batch", "0"], "error: --batch must be 'dynamic' or a positive integer, got '0'"),
        (["--batch", "x"], "error: --batch must be 'dynamic' or a positive integer, got 'x'"),
        (["--precision", "int4"], "error: --precision must be one of fp32, fp16, int8, got 'int4'"),
        (["--opset", "12"], "error: --opset must be between 18 and"),
        (["--input-size", "100"], "error: input size must be a positive multiple of 64"),
        (["--precision", "int8", "--calibration-data", "foo:/x"], "error: --data must be synthetic"),
    ],
)
def test_bad_options_are_one_line_exit_2(tmp_path, capsys, tiny_checkpoint, args, message):
    out = tmp_path / "m.onnx"
    code = main(["export", str(tiny_checkpoint), "-o", str(out), *args])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2
    assert len(err) == 1 and err[0].startswith(message)
    assert list(tmp_path.iterdir()) == []


def test_bad_checkpoints_and_output_paths(tmp_path, capsys, tiny_checkpoint):
    out = tmp_path / "m.onnx"
    cases = []
    missing = tmp_path / "missing.pth"
    cases.append(([str(missing), "-o", str(out)], f"error: checkpoint not found: {missing}"))
    corrupt = tmp_path / "corrupt.pth.tar"
    corrupt.write_bytes(os.urandom(64) + b"not a checkpoint")
    cases.append(([str(corrupt), "-o", str(out)], f"error: cannot read {corrupt}: corrupt"))
    blocker = tmp_path / "a_file"
    blocker.write_text("x")
    bad_out = blocker / "m.onnx"  # its folder is a file: cannot be created
    cases.append(([str(tiny_checkpoint), "-o", str(bad_out)], f"error: cannot create output folder {blocker}"))
    cases.append(([str(tiny_checkpoint), "-o", str(tmp_path)], f"error: output path is a directory: {tmp_path}"))
    cases.append(
        (["model.onnx", "-o", str(out)], "error: model.onnx is already an ONNX model; export takes a checkpoint")
    )
    for args, message in cases:
        code = main(["export", *args, "--input-size", "64"])
        err = capsys.readouterr().err.strip().splitlines()
        assert code == 2, message
        assert len(err) == 1 and err[0].startswith(message), err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a_file", "corrupt.pth.tar"]


def test_parse_batch():
    assert parse_batch("dynamic") is None and parse_batch(None) is None
    assert parse_batch("8") == 8 and parse_batch(3) == 3
    with pytest.raises(UsageError):
        parse_batch(-1)


def test_torch_runner_layouts_agree(tiny_net):
    """channels_last is a layout, not a different computation."""
    import copy

    x = _inputs(2, seed=7)
    nchw = TorchRunner(copy.deepcopy(tiny_net), get_backend("torch"))(x)
    nhwc = TorchRunner(copy.deepcopy(tiny_net), get_backend("torch-cl"))(x)
    np.testing.assert_allclose(nhwc, nchw, rtol=1e-4, atol=1e-5)
    bf16 = TorchRunner(copy.deepcopy(tiny_net), get_backend("torch-bf16"))(x)
    assert bf16.dtype == np.float32 and np.abs(bf16 - nchw).max() < 0.05 * np.abs(nchw).max()


def test_int8_calibrated_on_real_lsp_images(tmp_path, capsys, lspet400, tiny_checkpoint):
    """--calibration-data lsp:PATH: calibration on LSPET's train split, PCK on its val split."""
    out = tmp_path / "lsp_int8.onnx"
    code = main(
        [
            "export",
            str(tiny_checkpoint),
            "-o",
            str(out),
            "--input-size",
            "64",
            "--precision",
            "int8",
            "--calibration-data",
            f"lsp:{lspet400}",
            "--calibration-samples",
            "16",
            "--validation-samples",
            "20",
            "--threads",
            "1",
            "--format",
            "json",
        ]
    )
    captured = capsys.readouterr()
    assert code == 0, captured.err
    report = json.loads(captured.out)
    assert report["quantization"]["calibration_samples"] == 16
    assert report["quantization"]["calibration_data"] == f"lsp:{lspet400}"
    accuracy = report["accuracy"]
    assert (accuracy["metric"], accuracy["samples"], accuracy["candidate_precision"]) == ("pck", 20, "int8")
    assert 0.0 <= accuracy["candidate_mean"] <= 100.0 and read_info(out).precision == "int8"


def test_a_checkpoint_exports_at_the_size_it_was_trained_at(tmp_path) -> None:
    from fpdctl.deploy.export import export_onnx
    from fpdctl.models.checkpoint import save_model
    from fpdctl.models.checkpoint_files import TRAIN_INPUT_SIZE_KEY
    from fpdctl.models.factory import create_model

    trained = save_model(create_model("hg1x16"), tmp_path / "m.safetensors", {TRAIN_INPUT_SIZE_KEY: "64"})
    result = export_onnx(trained, tmp_path / "m.onnx", verify=False, exporter="torchscript")
    assert result.info.input_size == 64
    graph_input = onnx.load(str(tmp_path / "m.onnx")).graph.input[0].type.tensor_type.shape.dim
    assert [d.dim_value for d in graph_input][2:] == [64, 64]
    assert (
        export_onnx(
            trained, tmp_path / "m128.onnx", input_size=128, verify=False, exporter="torchscript"
        ).info.input_size
        == 128
    )
