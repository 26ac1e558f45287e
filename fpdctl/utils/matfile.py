"""The one reader of MATLAB ``.mat`` files (scipy only, so that numpy-only :mod:`fpdctl.metrics`
and the dataset loaders of :mod:`fpdctl.data` share it)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from fpdctl.errors import DataError
from fpdctl.utils.io import require_file


def load_mat(path: str | os.PathLike[str], what: str = "MATLAB file", **kwargs: Any) -> dict[str, Any]:
    """Read a MATLAB .mat file with ``scipy.io.loadmat``, turning any failure into one line.

    Args:
        path: the file.
        what: how the errors name the file ("predictions file", "LSP joints file").
        **kwargs: passed to ``scipy.io.loadmat`` (e.g. ``struct_as_record=False``).

    Returns:
        loadmat's dict of variables.

    Raises:
        InputError: the file does not exist or is not a file.
        DataError: not a readable .mat file; MATLAB v7.3 (HDF5) files included, which scipy
            does not read.
    """
    from scipy.io import loadmat

    file: Path = require_file(path, what)
    try:
        return loadmat(str(file), **kwargs)
    except NotImplementedError as exc:  # scipy reads up to v7.2; v7.3 is HDF5
        raise DataError(
            f"cannot read {what} {file}: MATLAB v7.3 (HDF5) files are not supported; save it with -v7"
        ) from exc
    except Exception as exc:  # scipy's parser raises many types on foreign or truncated files
        reason = str(exc).strip().splitlines()[0][:160] if str(exc).strip() else type(exc).__name__
        raise DataError(f"cannot read {what} {file}: not a MATLAB .mat file ({reason})") from exc
