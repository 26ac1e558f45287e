"""Annotator-like label noise for the synthetic training split (``synthetic:label_noise=coco``).

The synthetic labels are exact; real ones are not. This module perturbs the labels of a training
sample the way human annotators are measured to, leaving its pixels alone:

1. **Left/right swaps.** Each limb pair (the arms: shoulder, elbow, wrist; the legs: hip, knee,
   ankle) has its left and right labels exchanged with probability ``swap_prob`` (5 %), position
   and visibility together, as an annotator who confuses the sides does.
2. **Jitter.** Every joint moves by an isotropic Gaussian whose spread is COCO's per-keypoint
   sigma times the person's scale. COCO measured its sigmas on redundantly annotated images as
   the root-mean-square annotator error over the object scale, ``sigma^2 = E[d^2 / s^2]`` with
   ``d`` the Euclidean displacement and ``s^2`` the object's segmentation area; OKS's kernel width
   ``kappa = 2 sigma`` is a tolerance built on top of that measurement, not the error itself. So
   here the displacement has ``E[d^2] = (sigma * s)^2``: each axis has standard deviation
   ``sigma * sqrt(area) / sqrt(2)`` px, with ``area`` the person's area in the synthetic COCO
   layout of the same figure (half its clipped person box, :func:`coco.coco_annotation`).
3. **Self-occluded joints unlabelled.** A labelled joint the body itself covers in the drawing
   (:func:`self_occluded`) loses its label (visibility 0) with probability ``drop_prob`` (one
   half).

MPII's joints take COCO's sigma of the same joint (ankles .089, knees .087, hips .107, shoulders
.079, elbows .072, wrists .062) or of the nearest COCO keypoint where COCO has none: the pelvis
takes the hips' .107, the thorax the shoulders' .079, the upper neck and the head top the ears'
.035 (the largest of COCO's five head points).

Every draw comes from the sample's own random stream (``LABEL_NOISE_STREAM`` of
:func:`fpdctl.data.synthetic.pose.sample_rng`), so the same seed and index give the same noisy
labels in every run and DataLoader worker, and the layout and pixels do not change.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from fpdctl.data.synthetic.pose import (
    FOREARM_WIDTH,
    L_ANKLE,
    L_ELBOW,
    L_HIP,
    L_KNEE,
    L_SHOULDER,
    L_WRIST,
    NUM_JOINTS,
    PELVIS,
    R_ANKLE,
    R_ELBOW,
    R_HIP,
    R_KNEE,
    R_SHOULDER,
    R_WRIST,
    SHIN_WIDTH,
    THIGH_WIDTH,
    THORAX,
    UPPER_ARM_WIDTH,
    SyntheticLayout,
)
from fpdctl.errors import UsageError
from fpdctl.skeleton import MPII

# The sub-stream of a sample's labels (LAYOUT_STREAM is 0, SCENE_STREAM 1).
LABEL_NOISE_STREAM = 2

# pycocotools' keypoint sigmas (COCOeval.Params.kpt_oks_sigmas) for the COCO joints MPII shares,
# and the nearest COCO keypoint's for the four it does not (see the module docstring).
COCO_SIGMAS: dict[str, float] = {
    "r_ankle": 0.089,
    "r_knee": 0.087,
    "r_hip": 0.107,
    "l_hip": 0.107,
    "l_knee": 0.087,
    "l_ankle": 0.089,
    "pelvis": 0.107,  # proxy: the hips
    "thorax": 0.079,  # proxy: the shoulders
    "upper_neck": 0.035,  # proxy: the ears
    "head_top": 0.035,  # proxy: the ears
    "r_wrist": 0.062,
    "r_elbow": 0.072,
    "r_shoulder": 0.079,
    "l_shoulder": 0.079,
    "l_elbow": 0.072,
    "l_wrist": 0.062,
}
MPII_SIGMAS = np.array([COCO_SIGMAS[name] for name in MPII.names], dtype=np.float64)

# The limb pairs a side swap exchanges: (right joints, left joints).
SWAP_LIMBS: tuple[tuple[tuple[int, ...], tuple[int, ...]], ...] = (
    ((R_SHOULDER, R_ELBOW, R_WRIST), (L_SHOULDER, L_ELBOW, L_WRIST)),
    ((R_HIP, R_KNEE, R_ANKLE), (L_HIP, L_KNEE, L_ANKLE)),
)


@dataclass(frozen=True)
class LabelNoise:
    """An annotator noise model (see the module docstring).

    Attributes:
        name: the ``label_noise=`` value that selects it.
        sigmas: float [16] COCO-style sigma of each MPII joint; the jitter's RMS displacement is
            ``sigma * sqrt(area)``.
        swap_prob: probability that a limb pair (arms, legs) has its sides exchanged.
        drop_prob: probability that a self-occluded labelled joint is unlabelled.
    """

    name: str
    sigmas: tuple[float, ...]
    swap_prob: float
    drop_prob: float

    def axis_std(self, area: float) -> np.ndarray:
        """float [16]: each joint's jitter standard deviation per axis, px, for a person of
        ``area`` px^2 (``sigma * sqrt(area) / sqrt(2)``, so that ``E[d^2] = sigma^2 * area``)."""
        return np.asarray(self.sigmas) * math.sqrt(max(area, 0.0)) / math.sqrt(2.0)


# ``label_noise=`` values: none (exact labels, the default); coco (the model above); coco2 (the
# same, stronger: twice the jitter and twice the swap rate, for when coco costs a student alone
# less than a point).
LABEL_NOISE_MODELS: dict[str, LabelNoise | None] = {
    "none": None,
    "coco": LabelNoise("coco", tuple(MPII_SIGMAS.tolist()), swap_prob=0.05, drop_prob=0.5),
    "coco2": LabelNoise("coco2", tuple((2.0 * MPII_SIGMAS).tolist()), swap_prob=0.10, drop_prob=0.5),
}
DEFAULT_LABEL_NOISE = "none"


def label_noise_model(name: str) -> LabelNoise | None:
    """The noise model a ``label_noise=`` value names (None for ``none``).

    Raises:
        UsageError: an unknown name, naming the valid ones.
    """
    if not isinstance(name, str) or name not in LABEL_NOISE_MODELS:
        raise UsageError(f"synthetic label_noise must be one of {', '.join(LABEL_NOISE_MODELS)}, got {name!r}")
    return LABEL_NOISE_MODELS[name]


def person_area(layout: SyntheticLayout) -> float:
    """The person's area in px^2: the ``area`` its COCO-layout annotation carries (COCO's ``s^2``)."""
    from fpdctl.data.synthetic.coco import PERSON_AREA_FRACTION, person_bbox

    _, _, width, height = person_bbox(layout)
    return PERSON_AREA_FRACTION * width * height


def _segment_distance(points: np.ndarray, p: np.ndarray, q: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Distance of each point [N, 2] to the segment p-q, and where along it (0 at p, 1 at q)."""
    d = q - p
    length2 = float(d @ d)
    u = np.zeros(len(points)) if length2 == 0.0 else np.clip((points - p) @ d / length2, 0.0, 1.0)
    closest = p + u[:, None] * d
    return np.hypot(*(points - closest).T), u


def self_occluded(layout: SyntheticLayout) -> np.ndarray:
    """bool [16]: the labelled joints the figure's own body covers in the drawing.

    The renderer (:func:`fpdctl.data.synthetic.render.draw_body`) draws, in this order: the far
    arm when it passes behind the torso, the far leg, the near leg, the torso, the far arm when it
    does not, the near arm. A joint is covered when a part drawn after its own lies over it:

    - a limb segment (upper arm, forearm, thigh, shin) whose drawn width there (the renderer's
      widths in torso lengths, times the torso length and the person's width factor) is more
      than twice the joint's distance to the segment;
    - the torso, for an elbow, wrist, knee or ankle closer to the pelvis-thorax axis than the
      torso's half width (the renderer's at the shoulders without its margin). Shoulders and
      hips lie on the torso's outline and count as uncovered by it.

    Joints already unlabelled (truncated, or under an occluder) are not self-occluded.
    """
    body = layout.body
    joints = np.asarray(body.joints, dtype=np.float64)
    t = body.torso * body.widths
    far_left = not body.near_left
    arms_behind = {False: body.arms_behind[0], True: body.arms_behind[1]}  # keyed by "is left"
    arm = {False: (R_SHOULDER, R_ELBOW, R_WRIST), True: (L_SHOULDER, L_ELBOW, L_WRIST)}
    leg = {False: (R_HIP, R_KNEE, R_ANKLE), True: (L_HIP, L_KNEE, L_ANKLE)}
    # Drawing order, as (joints of the part, segments with their (proximal, distal) widths).
    groups: list[tuple[tuple[int, ...], list[tuple[int, int, tuple[float, float]]]]] = []

    def limb_group(chain: tuple[int, int, int], widths: tuple[tuple[float, float], tuple[float, float]]) -> None:
        a, b, c = chain
        groups.append((chain, [(a, b, widths[0]), (b, c, widths[1])]))

    arm_widths = (UPPER_ARM_WIDTH, FOREARM_WIDTH)
    leg_widths = (THIGH_WIDTH, SHIN_WIDTH)
    if arms_behind[far_left]:
        limb_group(arm[far_left], arm_widths)
    limb_group(leg[far_left], leg_widths)
    limb_group(leg[not far_left], leg_widths)
    torso_at = len(groups)
    groups.append(((PELVIS, THORAX), []))
    if not arms_behind[far_left]:
        limb_group(arm[far_left], arm_widths)
    limb_group(arm[not far_left], arm_widths)

    shoulders = float(np.hypot(*(joints[L_SHOULDER] - joints[R_SHOULDER])))
    torso_half = max(abs(math.cos(body.yaw)) * 0.5 * shoulders, 0.24 * t)
    ends = [R_ELBOW, R_WRIST, L_ELBOW, L_WRIST, R_KNEE, R_ANKLE, L_KNEE, L_ANKLE]
    covered = np.zeros(NUM_JOINTS, dtype=bool)
    for k, (members, _) in enumerate(groups):
        idx = list(members)
        points = joints[idx]
        hit = np.zeros(len(idx), dtype=bool)
        for later_k in range(k + 1, len(groups)):
            for a, b, (w1, w2) in groups[later_k][1]:
                distance, u = _segment_distance(points, joints[a], joints[b])
                hit |= distance < 0.5 * (w1 + (w2 - w1) * u) * t
            if later_k == torso_at:
                distance, _ = _segment_distance(points, joints[PELVIS], joints[THORAX])
                hit |= (distance < torso_half) & np.isin(idx, ends)
        covered[idx] |= hit
    return covered & layout.visible


def noisy_joints(
    layout: SyntheticLayout, joints: np.ndarray, noise: LabelNoise, rng: np.random.Generator
) -> np.ndarray:
    """The labels of one sample with annotator noise: swaps, then jitter, then dropped joints.

    Args:
        layout: the sample's layout (its body, for scale and self-occlusion).
        joints: float32 [16, 3] exact labels (x, y, visibility), MPII order.
        noise: the noise model.
        rng: the sample's label-noise Generator (``LABEL_NOISE_STREAM``).

    Returns:
        float32 [16, 3] noisy labels; unlabelled joints keep visibility 0.
    """
    out = np.array(joints, dtype=np.float64, copy=True)
    occluded = self_occluded(layout)
    # Fixed number of draws per sample whatever happens, so each part of the noise is its own.
    swap_draws = rng.random(len(SWAP_LIMBS))
    jitter = rng.standard_normal((NUM_JOINTS, 2))
    drop_draws = rng.random(NUM_JOINTS)
    for (right, left), draw in zip(SWAP_LIMBS, swap_draws):
        if draw < noise.swap_prob:
            out[list(right) + list(left)] = out[list(left) + list(right)]
            occluded[list(right) + list(left)] = occluded[list(left) + list(right)]
    out[:, :2] += jitter * noise.axis_std(person_area(layout))[:, None]
    drop = occluded & (drop_draws < noise.drop_prob)
    out[drop, 2] = 0.0
    return out.astype(np.float32)
