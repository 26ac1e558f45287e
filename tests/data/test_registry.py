"""``--data`` specs and build_dataset."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from fpdctl.data.kinds import DataSpec, parse_data_spec
from fpdctl.data.lsp import LSPDataset
from fpdctl.data.registry import build_dataset
from fpdctl.data.transforms import AugmentConfig
from fpdctl.errors import InputError, UsageError
from tests.data.formats import write_jpeg, write_lsp_mat


def test_parse_valid_specs(tmp_path: Path) -> None:
    assert parse_data_spec("synthetic") == DataSpec(kind="synthetic")
    spec = parse_data_spec("synthetic:size=64, seed=3,scale=0.5,name=x")
    assert spec.options == {"size": 64, "seed": 3, "scale": 0.5, "name": "x"}
    assert isinstance(spec.options["size"], int) and isinstance(spec.options["scale"], float)
    assert parse_data_spec(f"mpii:{tmp_path}") == DataSpec(kind="mpii", path=tmp_path)
    assert str(parse_data_spec(f"lsp:{tmp_path}")) == f"lsp:{tmp_path}"


@pytest.mark.parametrize(
    "data",
    [
        "foo",
        "",
        "mpii",
        "mpii:",
        "lsp: ",
        "foo:/x",
        "synthetic:size",
        "synthetic:=3",
        "synthetic:a=1,a=2",
        "synthetic:a b=1",
        "Synthetic",
    ],
)
def test_bad_specs(data: str) -> None:
    with pytest.raises(UsageError) as info:
        parse_data_spec(data)
    assert str(info.value) == f"`data` must be synthetic, mpii:PATH, lsp:PATH or coco:PATH, got {data!r}"
    assert not isinstance(info.value, InputError)


def test_missing_path(tmp_path: Path) -> None:
    with pytest.raises(InputError) as info:
        parse_data_spec(f"lsp:{tmp_path / 'nope'}")
    assert str(info.value) == f"lsp data not found: {tmp_path / 'nope'}"


def test_build_lsp_and_options(tmp_path: Path) -> None:
    joints = np.zeros((4, 14, 3))
    joints[:, :, :2] = np.random.default_rng(0).uniform(10, 50, (4, 14, 2))
    joints[:, :, 2] = 1
    write_lsp_mat(tmp_path / "joints.mat", joints, "lspet")
    for k in range(4):
        write_jpeg(tmp_path / "images" / f"im{k + 1:05d}.jpg", 64, 64, seed=k)
    augment = AugmentConfig(flip_prob=0.0)
    ds = build_dataset(f"lsp:{tmp_path}", "train", input_size=64, sigma=1.0, augment=augment, max_bad_fraction=0.5)
    assert isinstance(ds, LSPDataset) and len(ds) == 3
    assert (ds.input_size, ds.heatmap_size, ds.sigma, ds.augment, ds.max_bad_fraction) == (64, 16, 1.0, augment, 0.5)
    assert ds[0]["target"].shape == (16, 16, 16)
    with pytest.raises(UsageError, match="split must be 'train' or 'val', got 'test'"):
        build_dataset(f"lsp:{tmp_path}", "test")


def test_build_mpii_reports_missing_annotations(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="no MPII annotations in"):
        build_dataset(f"mpii:{tmp_path}", "val")


def test_build_synthetic() -> None:
    pytest.importorskip("fpdctl.data.synthetic")
    ds = build_dataset("synthetic:size=3,seed=5", "val", input_size=64)
    assert len(ds) == 3 and ds.seed == 5 and ds.split == "val"
    assert ds[0]["image"].shape == (3, 64, 64)
    with pytest.raises(UsageError, match=r"unknown synthetic option\(s\) colour; valid: "):
        build_dataset("synthetic:colour=1", "val")
    with pytest.raises(UsageError, match=r"synthetic option\(s\) input_size clash"):
        build_dataset("synthetic:input_size=64", "val")
