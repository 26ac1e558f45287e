"""The one .mat reader: values back as written, and one line for each way a file can be wrong."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from scipy.io import savemat

import fpdctl.data.lsp
import fpdctl.data.mpii
from fpdctl.errors import DataError, InputError
from fpdctl.metrics import mpii_files
from fpdctl.utils.matfile import load_mat


def test_values_come_back_as_written(tmp_path: Path) -> None:
    joints = np.arange(24, dtype=np.float64).reshape(2, 4, 3)
    savemat(str(tmp_path / "a.mat"), {"joints": joints, "name": "lsp"})
    data = load_mat(tmp_path / "a.mat", "joints file")
    np.testing.assert_array_equal(data["joints"], joints)
    assert data["joints"].dtype == np.float64
    assert str(data["name"][0]) == "lsp"
    # keyword arguments reach scipy: squeeze_me drops the 1 x 1 MATLAB wrapping of a scalar
    savemat(str(tmp_path / "s.mat"), {"n": 7})
    assert load_mat(tmp_path / "s.mat").get("n").shape == (1, 1)
    assert load_mat(tmp_path / "s.mat", squeeze_me=True)["n"] == 7


def test_missing_file_is_an_input_error(tmp_path: Path) -> None:
    with pytest.raises(InputError, match=r"^LSP joints file not found: .*gone\.mat$"):
        load_mat(tmp_path / "gone.mat", "LSP joints file")
    with pytest.raises(InputError, match=r"^LSP joints file is not a file: "):
        load_mat(tmp_path, "LSP joints file")


def test_junk_is_one_data_error_line(tmp_path: Path) -> None:
    (tmp_path / "junk.mat").write_bytes(b"not a mat file at all, just some bytes" * 10)
    with pytest.raises(
        DataError, match=r"^cannot read predictions file .*junk\.mat: not a MATLAB \.mat file \("
    ) as info:
        load_mat(tmp_path / "junk.mat", "predictions file")
    assert "\n" not in str(info.value)


def test_matlab_v73_is_refused_by_name(tmp_path: Path) -> None:
    # MATLAB v7.3 files are HDF5 behind a 128-byte MATLAB header whose version field is 0x0200.
    header = b"MATLAB 7.3 MAT-file, Platform: GLNXA64".ljust(116, b" ") + b"\0" * 8 + b"\x00\x02IM"
    (tmp_path / "v73.mat").write_bytes(header + b"\0" * 512)
    with pytest.raises(
        DataError,
        match=(
            r"^cannot read MPII release file .*v73\.mat: "
            r"MATLAB v7\.3 \(HDF5\) files are not supported; save it with -v7$"
        ),
    ):
        load_mat(tmp_path / "v73.mat", "MPII release file")


def test_data_and_metrics_share_it() -> None:
    assert fpdctl.data.mpii.load_mat is load_mat and fpdctl.data.lsp.load_mat is load_mat
    assert mpii_files.load_mat is load_mat
