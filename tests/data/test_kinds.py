"""The table of data kinds (:data:`fpdctl.data.kinds.KINDS`) drives parsing, scoring and building."""

from __future__ import annotations

import pytest

from fpdctl.data.kinds import KINDS, DataSpec, data_joint_set, data_metric, parse_data_spec
from fpdctl.data.registry import build_dataset
from fpdctl.errors import InputError, UsageError
from fpdctl.skeleton import COCO, MPII


def test_every_row_names_an_importable_dataset_class() -> None:
    from fpdctl.data.coco import COCODataset
    from fpdctl.data.lsp import LSPDataset
    from fpdctl.data.mpii import MPIIDataset
    from fpdctl.data.synthetic import SyntheticPose

    classes = {name: kind.dataset_class() for name, kind in KINDS.items()}
    assert classes == {
        "synthetic": SyntheticPose,
        "mpii": MPIIDataset,
        "lsp": LSPDataset,
        "coco": COCODataset,
    }


@pytest.mark.parametrize(
    ("kind", "joint_set", "metric"),
    [("mpii", MPII, "pckh"), ("lsp", MPII, "pck"), ("coco", COCO, "oks")],
)
def test_a_path_kind_is_scored_as_its_row_says(tmp_path, kind, joint_set, metric) -> None:
    spec = parse_data_spec(f"{kind}:{tmp_path}")
    assert spec == DataSpec(kind=kind, path=tmp_path)
    assert str(spec) == f"{kind}:{tmp_path}"
    assert data_joint_set(spec) is joint_set and data_metric(spec) == metric


def test_the_synthetic_layout_option_switches_joints_and_metric() -> None:
    assert (data_joint_set("synthetic"), data_metric("synthetic")) == (MPII, "pckh")
    assert (data_joint_set("synthetic:layout=coco"), data_metric("synthetic:layout=coco")) == (COCO, "oks")
    assert str(parse_data_spec("synthetic:size=8,seed=3")) == "synthetic:size=8,seed=3"


def test_the_error_lists_the_forms_of_the_table(tmp_path) -> None:
    with pytest.raises(UsageError) as info:
        parse_data_spec("imagenet:/x")
    assert str(info.value) == ("`data` must be synthetic, mpii:PATH, lsp:PATH or coco:PATH, got 'imagenet:/x'")
    with pytest.raises(UsageError):
        parse_data_spec("mpii")
    with pytest.raises(InputError, match="lsp data not found"):
        parse_data_spec(f"lsp:{tmp_path / 'missing'}")


def test_build_dataset_builds_the_row_class_and_names_the_kind_in_option_errors() -> None:
    dataset = build_dataset("synthetic:size=3", "val", input_size=64)
    assert type(dataset) is KINDS["synthetic"].dataset_class() and len(dataset) == 3
    with pytest.raises(UsageError, match=r"^unknown synthetic option\(s\) colour; valid: "):
        build_dataset("synthetic:colour=3", "val", input_size=64)
