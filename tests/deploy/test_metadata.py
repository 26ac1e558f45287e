"""ONNX metadata round trips, reading foreign or broken files."""

import subprocess
import sys

import onnx
import pytest
from onnx import TensorProto, helper

from fpdctl.deploy.metadata import OnnxModelInfo, read_info, set_metadata
from fpdctl.deploy.runtime import OrtRunner
from fpdctl.errors import InputError
from fpdctl.models.convention import FPD_OFFICIAL, METADATA_KEY, NATIVE, InputConvention
from fpdctl.models.spec import HourglassSpec

CUSTOM = InputConvention("rgb", (0.5, 0.5, 0.5), (0.25, 0.25, 0.25))


def _info(**changes):
    values = dict(
        spec=HourglassSpec(2, 32, joints=14),
        joint_set="lsp",
        joint_names=tuple(f"j{i}" for i in range(14)),
        flip_pairs=((0, 5),),
        skeleton=((0, 1), (1, 2)),
        input_size=128,
        input_convention=CUSTOM,
        heatmap_stride=4,
        heatmap_size=32,
        outputs="all_stacks",
        precision="int8",
        batch=4,
        version="9.9",
        source_sha256="ab" * 32,
        source="ckpt.pth",
        opset=21,
        exporter="torchscript",
    )
    values.update(changes)
    return OnnxModelInfo(**values)


def _identity_model():
    graph = helper.make_graph(
        [helper.make_node("Identity", ["x"], ["y"])],
        "g",
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
    assert keys[0] == "author" and len(keys) == len(set(keys)) == 22  # + input_convention, graph_io
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
    del props[METADATA_KEY]  # a file written before the input convention was recorded
    props["fpdctl.mean"] = "[1, 2]"
    with pytest.raises(InputError, match="malformed fpdctl metadata"):
        OnnxModelInfo.from_props(props)
    props = _info().to_props()
    props[METADATA_KEY] = '{"order": "xyz", "mean": [0, 0, 0], "std": [1, 1, 1]}'
    with pytest.raises(InputError, match="'fpdctl.input_convention': input order must be 'rgb' or 'bgr', got 'xyz'"):
        OnnxModelInfo.from_props(props)
    with pytest.raises(InputError, match="expected an ONNX model with one image input"):
        bad = helper.make_model(
            helper.make_graph(
                [helper.make_node("Identity", ["x"], ["y"])],
                "g",
                [helper.make_tensor_value_info("x", TensorProto.FLOAT, [4])],
                [helper.make_tensor_value_info("y", TensorProto.FLOAT, [4])],
            ),
            opset_imports=[helper.make_opsetid("", 18)],
        )
        OrtRunner(bad.SerializeToString())


def test_cli_modules_do_not_import_heavy_libraries():
    code = (
        "import sys, fpdctl.cli.app\n"
        "heavy = [m for m in ('torch', 'onnxruntime', 'onnx', 'cv2', 'scipy', 'matplotlib') if m in sys.modules]\n"
        "assert not heavy, heavy\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


def test_input_convention_is_recorded_whole_and_repeated_for_other_readers():
    import json

    info = _info(input_convention=FPD_OFFICIAL)
    props = info.to_props()
    assert json.loads(props[METADATA_KEY]) == FPD_OFFICIAL.to_dict()
    assert (props["fpdctl.color_order"], json.loads(props["fpdctl.mean"]), json.loads(props["fpdctl.std"])) == (
        "BGR",
        list(FPD_OFFICIAL.mean),
        list(FPD_OFFICIAL.std),
    )
    back = OnnxModelInfo.from_props(props)
    assert back.input_convention is FPD_OFFICIAL and back.input_convention.train_sigma == 2.0
    assert (back.color_order, back.mean, back.std) == ("BGR", FPD_OFFICIAL.mean, FPD_OFFICIAL.std)


def test_files_written_before_the_convention_key_read_as_their_colour_order_mean_and_std():
    legacy = _info(input_convention=NATIVE).to_props()
    del legacy[METADATA_KEY]
    assert OnnxModelInfo.from_props(legacy).input_convention is NATIVE  # the preset it equals
    legacy = _info().to_props()
    del legacy[METADATA_KEY]
    custom = OnnxModelInfo.from_props(legacy).input_convention
    assert custom == CUSTOM and custom.name == "custom"
