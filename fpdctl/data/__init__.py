"""Pose data: joint sets, the dataset contract, transforms, the heatmap codec and the loaders.

Only numpy and torch are imported here; OpenCV and SciPy are imported where images or ``.mat``
files are actually read.
"""

from fpdctl.codec import HeatmapCodec, flip_back
from fpdctl.data.dataset import (
    AnnotationTable,
    FilePoseDataset,
    PoseDataset,
    Record,
    UnreadableImage,
    read_image,
)
from fpdctl.skeleton import JOINT_SETS, LSP, LSP_TO_MPII, MPII, JointSet, to_mpii_order
from fpdctl.data.lsp import LSPDataset
from fpdctl.data.mpii import MPIIDataset
from fpdctl.data.registry import DataSpec, build_dataset, parse_data_spec
from fpdctl.data.transforms import (
    MEAN,
    PIXEL_STD,
    STD,
    AugmentConfig,
    crop_affine,
    invert_affine,
    normalize_image,
    transform_points,
)

__all__ = [
    "AnnotationTable",
    "AugmentConfig",
    "DataSpec",
    "FilePoseDataset",
    "HeatmapCodec",
    "JOINT_SETS",
    "JointSet",
    "LSP",
    "LSPDataset",
    "LSP_TO_MPII",
    "MEAN",
    "MPII",
    "MPIIDataset",
    "PIXEL_STD",
    "PoseDataset",
    "Record",
    "STD",
    "UnreadableImage",
    "build_dataset",
    "crop_affine",
    "flip_back",
    "invert_affine",
    "normalize_image",
    "parse_data_spec",
    "read_image",
    "to_mpii_order",
    "transform_points",
]
