"""The built-in synthetic pose dataset: articulated figures on the MPII 16-joint skeleton.

Every sample is generated from ``(seed, split, index)`` alone, so the same triple gives the same
pixels on every run, in every DataLoader worker, with no files on disk. Generation has two steps
with independent random streams:

1. :func:`sample_layout` (``pose.py``, cheap, no pixels): a pose drawn from joint angles along a
   kinematic tree rooted at the pelvis, its placement in the image, the occluders and hence which
   joints are visible. ``SyntheticPose.load_annotation`` stops here, so ``eval_reference()`` over
   a whole split takes milliseconds.
2. :func:`render_layout` (``render.py``): a textured, cluttered background, distractor limbs and
   sometimes a second person behind the subject, the subject drawn as shaded tapered limbs, the
   occluders on top, then sensor noise and blur.

``dataset.py`` turns the two into Records and the :class:`SyntheticPose` dataset; ``coco.py``
annotates the same figures with COCO's 17 keypoints (``synthetic:layout=coco``); ``export.py``
writes them to disk as an MPII dataset (:func:`export_mpii`) or a COCO one (:func:`export_coco`).

What makes it hard enough for model capacity to matter: left and right differ only by a slight
tint and the face cue, so the side has to be inferred from the pose and the head; distractor limbs
and background people look exactly like body parts; occluded and truncated joints are unlabelled
(visibility 0, so weight 0 in the loss and excluded from PCKh) and must not be hallucinated from
clutter.

Only exact operations touch pixels (integer numpy, and OpenCV's bit-exact uint8 drawing, resize,
saturating add and Gaussian blur), and pose trigonometry uses Python's ``math``, so images do not
depend on the machine's SIMD flavour.
"""

from fpdctl.data.synthetic.dataset import LAYOUTS, SyntheticPose, check_sample_args, synthetic_record
from fpdctl.data.synthetic.export import SynthExportResult, export_coco, export_mpii
from fpdctl.data.synthetic.pose import (
    DEFAULT_CONFIG,
    DEFAULT_LENGTHS,
    HEAD_WIDTH_RATIO,
    HEADBOX_MARGIN,
    MIN_IMAGE_SIZE,
    SPLIT_STREAMS,
    STANDING_HEIGHT,
    Body,
    Occluder,
    Split,
    SyntheticConfig,
    SyntheticLayout,
    head_box,
    sample_body,
    sample_layout,
    sample_rng,
)
from fpdctl.data.synthetic.render import draw_body, render_layout

__all__ = [
    "Body",
    "DEFAULT_CONFIG",
    "DEFAULT_LENGTHS",
    "HEADBOX_MARGIN",
    "HEAD_WIDTH_RATIO",
    "LAYOUTS",
    "MIN_IMAGE_SIZE",
    "Occluder",
    "SPLIT_STREAMS",
    "STANDING_HEIGHT",
    "Split",
    "SynthExportResult",
    "SyntheticConfig",
    "SyntheticLayout",
    "SyntheticPose",
    "check_sample_args",
    "draw_body",
    "export_coco",
    "export_mpii",
    "head_box",
    "render_layout",
    "sample_body",
    "sample_layout",
    "sample_rng",
    "synthetic_record",
]
