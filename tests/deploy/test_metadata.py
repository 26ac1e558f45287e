"""ONNX metadata round trips, reading foreign or broken files."""

import subprocess
import sys

import onnx
import pytest
from onnx import TensorProto, helper

from fpdctl.deploy.metadata import OnnxModelInfo, read_info, set_metadata
from fpdctl.deploy.runtime import OrtRunner
from fpdctl.errors import InputError
from fpdctl.models.spec import HourglassSpec


def _info(**changes):
    values = dict(
        spec=HourglassSpec(2, 32, joints=14), joint_set="lsp", joint_names=tuple(f"j{i}" for i in range(14)),
        flip_pairs=((0, 5),), skeleton=((0, 1), (1, 2)), input_size=128, color_order="RGB",
        mean=(0.5, 0.5, 0.5), std=(0.25, 0.25, 0.25), heatmap_stride=4, heatmap_size=32,
        outputs="all_stacks", precision="int8", batch=4, version="9.9", source_sha256="ab" * 32,
        source="ckpt.pth", opset=21, exporter="torchscript",
    )
    values.update(changes)
    return OnnxModelInfo(**values)


def _identity_model():
    graph = helper.make_graph(
        [helper.make_node("Identity", ["x"], ["y"])], "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3, 8, 8])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 3, 8, 8])],
    )
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)])


def test_props_round_trip_and_other_keys_kept(tmp_path):
    model = _identity_model()
    entry = model.metadata_props.add()
    entry.key, entry.value = "author", "someone"
    info = _info()
    set_metadata(model, info)
    set_metadata(model, _info(precision="fp16", batch=None))  # replaces, does not duplicate
    path = tmp_path / "m.onnx"
    onnx.save(model, str(path))
    assert read_info(path) == _info(precision="fp16", batch=None)
    keys = [e.key for e in onnx.load(str(path)).metadata_props]
    assert keys[0] == "author" and len(keys) == len(set(keys)) == 20
    assert OnnxModelInfo.from_props(info.to_props()) == info


def test_foreign_and_broken_files(tmp_path):
    foreign = tmp_path / "foreign.onnx"
    onnx.save(_identity_model(), str(foreign))
    with pytest.raises(InputError, match=r"is not an fpdctl export: its ONNX metadata lacks 'fpdctl.spec'"):
        read_info(foreign)
    broken = tmp_path / "broken.onnx"
    broken.write_bytes(b"\x00\x01garbage" * 10)
    with pytest.raises(InputError, match=r"cannot read .*broken.onnx: not a valid ONNX model"):
        read_info(broken)
    with pytest.raises(InputError, match="ONNX model not found"):
        read_info(tmp_path / "missing.onnx")
    props = _info().to_props()
    props["fpdctl.mean"] = "[1, 2]"
    with pytest.raises(InputError, match="malformed fpdctl metadata"):
        OnnxModelInfo.from_props(props)
    with pytest.raises(InputError, match="expected an ONNX model with one image input"):
        bad = helper.make_model(helper.make_graph(
            [helper.make_node("Identity", ["x"], ["y"])], "g",
            [helper.make_tensor_value_info("x", TensorProto.FLOAT, [4])],
            [helper.make_tensor_value_info("y", TensorProto.FLOAT, [4])],
        ), opset_imports=[helper.make_opsetid("", 18)])
        OrtRunner(bad.SerializeToString())


def test_cli_modules_do_not_import_heavy_libraries():
    code = (
        "import sys, fpdctl.cli.app\n"
        "heavy = [m for m in ('torch', 'onnxruntime', 'onnx', 'cv2', 'scipy', 'matplotlib') if m in sys.modules]\n"
        "assert not heavy, heavy\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)
