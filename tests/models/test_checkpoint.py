import os
import pickle

import pytest
import torch
from safetensors import safe_open

from fpdctl import HourglassSpec, create_model, save_model
from fpdctl.errors import CheckpointError
from fpdctl.models.checkpoint import SPEC_KEY, infer_spec, read_checkpoint
from tests.models.reference_hourglass import RefHourglassNet


def _reference(stacks=2, blocks=1, feats=8, seed=0):
    torch.manual_seed(seed)
    ref = RefHourglassNet(num_stacks=stacks, num_blocks=blocks, num_feats=feats).eval()
    for module in ref.modules():
        if isinstance(module, torch.nn.BatchNorm2d):
            module.running_mean.uniform_(-0.5, 0.5)
            module.running_var.uniform_(0.5, 1.5)
            module.weight.data.uniform_(0.5, 1.5)
    return ref


def _outputs(model, x):
    with torch.inference_mode():
        out = model(x)
    return torch.stack(out, 1) if isinstance(out, list) else out


@pytest.mark.parametrize(
    "spec", [HourglassSpec(1, 16), HourglassSpec(3, 32, blocks=2), HourglassSpec(2, 16, joints=14, depth=3)]
)
def test_infer_spec_from_state_dict(spec):
    with torch.device("meta"):
        model = create_model(spec)
    assert infer_spec(model.state_dict()) == spec


@pytest.mark.parametrize("legacy", [False, True])
def test_pytorch_pose_checkpoint_loads_with_same_outputs(tmp_path, legacy):
    ref = _reference(stacks=2, feats=8)
    path = tmp_path / "checkpoint.pth.tar"
    torch.save(
        {
            "epoch": 12,
            "arch": "hg",
            "state_dict": {f"module.{k}": v for k, v in ref.state_dict().items()},
            "best_acc": torch.tensor(0.87),
            "optimizer": {"state": {}, "param_groups": [{"lr": 2.5e-4, "params": [0, 1]}]},
        },
        path,
        _use_new_zipfile_serialization=not legacy,
    )
    model = create_model(path)
    assert model.spec == HourglassSpec(2, 16)
    x = torch.randn(2, 3, 64, 64)
    torch.testing.assert_close(_outputs(model, x), _outputs(ref, x), rtol=0, atol=0)
    _, meta = read_checkpoint(path)
    assert meta["format"] == "pytorch-pose" and meta["epoch"] == "12"


def test_official_fpd_checkpoints(tmp_path):
    """checkpoint.pth (prefixed state_dict + best_state_dict) and bare model_best.pth."""
    ref = _reference(stacks=2, feats=16)  # an F=32 student: conv1 has F/4 = 8 channels
    sd = ref.state_dict()
    assert sd["conv1.weight"].shape == (8, 3, 7, 7)
    torch.save(
        {
            "epoch": 3,
            "model": "get_pose_net",
            "state_dict": {f"module.{k}": v for k, v in sd.items()},
            "best_state_dict": sd,
            "perf": 0.5,
            "optimizer": {},
        },
        tmp_path / "checkpoint.pth",
    )
    torch.save(sd, tmp_path / "model_best.pth")
    x = torch.randn(1, 3, 64, 64)
    for name in ("checkpoint.pth", "model_best.pth"):
        model = create_model(tmp_path / name)
        assert model.spec == HourglassSpec(2, 32)
        torch.testing.assert_close(_outputs(model, x), _outputs(ref, x), rtol=0, atol=0)


def test_checkpoint_without_num_batches_tracked(tmp_path):
    """PyTorch 0.4.0 checkpoints predate BN's num_batches_tracked buffer."""
    ref = _reference(stacks=1, feats=8)
    sd = {k: v for k, v in ref.state_dict().items() if not k.endswith("num_batches_tracked")}
    torch.save({"state_dict": sd, "arch": "hg"}, tmp_path / "old.pth.tar")
    x = torch.randn(1, 3, 64, 64)
    torch.testing.assert_close(_outputs(create_model(tmp_path / "old.pth.tar"), x), _outputs(ref, x))


def test_native_round_trip_with_metadata(tmp_path):
    model = create_model("hg2x16").eval()
    path = save_model(model, tmp_path / "m.safetensors", metadata={"step": "7"})
    with safe_open(str(path), framework="pt") as handle:
        meta = handle.metadata()
    assert HourglassSpec.from_json(meta[SPEC_KEY]) == HourglassSpec(2, 16)
    assert meta["fpdctl.version"] and meta["step"] == "7"
    loaded = create_model(path)
    x = torch.randn(2, 3, 64, 64)
    torch.testing.assert_close(_outputs(loaded, x), _outputs(model, x), rtol=0, atol=0)
    assert [p.name for p in tmp_path.iterdir()] == ["m.safetensors"]  # no temp file left


def test_spec_mismatch_names_first_tensor(tmp_path):
    save_model(create_model("hg1x16"), tmp_path / "m.safetensors")
    with pytest.raises(
        CheckpointError,
        match=r"does not fit hg1x32: tensor 'conv1.weight' has shape \(4, 3, 7, 7\), expected \(8, 3, 7, 7\)",
    ):
        create_model(tmp_path / "m.safetensors", spec="hg1x32")


class _Payload:
    def __reduce__(self):
        return (os.system, ("touch PWNED_BY_CHECKPOINT",))


def test_refuses_code_running_pickle(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    path = tmp_path / "evil.pth.tar"
    with open(path, "wb") as handle:
        pickle.dump({"state_dict": _Payload()}, handle)
    torch.save({"state_dict": _Payload()}, tmp_path / "evil_zip.pth")
    with pytest.raises(CheckpointError, match="not a plain-data PyTorch checkpoint .* never runs code"):
        create_model(path)
    with pytest.raises(
        CheckpointError, match=r"refusing to load .*: it references posix\.system, which would run code"
    ):
        create_model(tmp_path / "evil_zip.pth")
    assert not (tmp_path / "PWNED_BY_CHECKPOINT").exists()


@pytest.mark.parametrize(
    "content, message",
    [
        (b"", "checkpoint is empty"),
        (b"\x00garbage-bytes-that-are-not-a-checkpoint" * 10, "corrupt, or not a plain-data PyTorch checkpoint"),
    ],
)
def test_corrupt_files(tmp_path, content, message):
    path = tmp_path / "bad.pth"
    path.write_bytes(content)
    with pytest.raises(CheckpointError, match=message):
        create_model(path)


def test_truncated_native_and_zip(tmp_path):
    good = save_model(create_model("hg1x16"), tmp_path / "m.safetensors")
    (tmp_path / "cut.safetensors").write_bytes(good.read_bytes()[:500])
    with pytest.raises(CheckpointError, match="not a valid safetensors file"):
        create_model(tmp_path / "cut.safetensors")
    torch.save(create_model("hg1x16").state_dict(), tmp_path / "m.pth")
    (tmp_path / "cut.pth").write_bytes((tmp_path / "m.pth").read_bytes()[:2000])
    with pytest.raises(CheckpointError, match="corrupt"):
        create_model(tmp_path / "cut.pth")


def test_not_a_hourglass(tmp_path):
    torch.save({"fc.weight": torch.zeros(2, 2)}, tmp_path / "other.pth")
    with pytest.raises(CheckpointError, match="not a Stacked Hourglass checkpoint"):
        create_model(tmp_path / "other.pth")
    with pytest.raises(CheckpointError, match="checkpoint not found"):
        create_model(tmp_path / "missing.pth")


def test_create_model_is_the_one_way_from_a_name_a_spec_or_a_file(tmp_path, monkeypatch):
    from fpdctl.errors import UsageError

    fresh = create_model("hg1x16")
    assert fresh.spec == HourglassSpec(1, 16) and fresh.training  # like any new module
    assert create_model(HourglassSpec(1, 16, depth=2)).spec.name == "hg1x16d2"
    saved = save_model(fresh, tmp_path / "m.safetensors")
    for source in (saved, str(saved)):  # a Path, or a string naming an existing file
        loaded = create_model(source)
        assert not loaded.training and loaded.spec == fresh.spec
        for key, tensor in fresh.state_dict().items():
            torch.testing.assert_close(loaded.state_dict()[key], tensor)
    monkeypatch.chdir(tmp_path)  # a string with a checkpoint suffix is a file even if missing
    with pytest.raises(CheckpointError, match="checkpoint not found: gone.pth"):
        create_model("gone.pth")
    with pytest.raises(UsageError, match="unknown model name 'gone'"):
        create_model("gone")
    with pytest.raises(UsageError, match="spec= applies to a checkpoint file"):
        create_model("hg1x16", spec="hg1x16")
    with pytest.raises(UsageError, match="expected a model name, HourglassSpec or checkpoint path, got int"):
        create_model(16)  # type: ignore[arg-type]


def test_resolve_input_size(tmp_path):
    from fpdctl.models.checkpoint_files import TRAIN_INPUT_SIZE_KEY, resolve_input_size, trained_input_size
    from fpdctl.models.spec import DEFAULT_INPUT_SIZE

    net = create_model("hg1x16")
    trained = save_model(net, tmp_path / "t.safetensors", {TRAIN_INPUT_SIZE_KEY: "128"})
    plain = save_model(net, tmp_path / "p.safetensors")
    assert trained_input_size(trained) == 128 and trained_input_size(str(trained)) == 128
    assert trained_input_size(plain) is None and trained_input_size(net) is None
    assert resolve_input_size(trained) == 128  # the size it was trained at
    assert resolve_input_size(trained, 192) == 192  # the user's word wins
    assert resolve_input_size(plain) == resolve_input_size("hg1x16") == DEFAULT_INPUT_SIZE == 256
    assert resolve_input_size(net) == DEFAULT_INPUT_SIZE  # a loaded module carries no record
