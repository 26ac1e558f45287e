"""The built-in synthetic pose dataset: articulated figures on the MPII 16-joint skeleton.

Every sample is generated from ``(seed, split, index)`` alone, so the same triple gives the same
pixels on every run, in every DataLoader worker, with no files on disk. Generation has two steps
with independent random streams:

1. :func:`sample_layout` (cheap, no pixels): a pose drawn from joint angles along a kinematic tree
   rooted at the pelvis, its placement in the image, the occluders and hence which joints are
   visible. ``SyntheticPose.load_annotation`` stops here, so ``eval_reference()`` over a whole split
   takes milliseconds.
2. :func:`render_layout`: a textured, cluttered background, distractor limbs and sometimes a
   second person behind the subject, the subject drawn as shaded tapered limbs, the occluders on
   top, then sensor noise and blur.

What makes it hard enough for model capacity to matter: left and right differ only by a slight
tint and the face cue, so the side has to be inferred from the pose and the head; distractor limbs
and background people look exactly like body parts; occluded and truncated joints are unlabelled
(visibility 0, so weight 0 in the loss and excluded from PCKh) and must not be hallucinated from
clutter.

Only exact operations touch pixels (integer numpy, and OpenCV's bit-exact uint8 drawing, resize,
saturating add and Gaussian blur), and pose trigonometry uses Python's ``math``, so images do not
depend on the machine's SIMD flavour.
"""

from __future__ import annotations

import functools
import json
import math
import os
import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import cv2
import numpy as np

from fpdctl.data.dataset import PoseDataset, Record
from fpdctl.skeleton import MPII, JointSet
from fpdctl.data.mpii import SCALE_MARGIN
from fpdctl.data.transforms import PIXEL_STD
from fpdctl.errors import InputError, RuntimeFailure, UsageError

Split = Literal["train", "val"]

# Each split draws from its own stream of seed sequences, so train and val never share a sample
# whatever the seed and the lengths.
SPLIT_STREAMS: dict[str, int] = {"train": 0, "val": 1}
DEFAULT_LENGTHS: dict[str, int] = {"train": 20000, "val": 500}
MIN_IMAGE_SIZE = 32
# Sub-streams of one sample: the layout (pose, placement, occluders) and the pixels.
_LAYOUT_STREAM = 0
_SCENE_STREAM = 1

# MPII joint indices, named for the kinematic code below.
(R_ANKLE, R_KNEE, R_HIP, L_HIP, L_KNEE, L_ANKLE, PELVIS, THORAX, UPPER_NECK, HEAD_TOP,
 R_WRIST, R_ELBOW, R_SHOULDER, L_SHOULDER, L_ELBOW, L_WRIST) = (
    MPII.index(name)
    for name in ("r_ankle", "r_knee", "r_hip", "l_hip", "l_knee", "l_ankle", "pelvis", "thorax",
                 "upper_neck", "head_top", "r_wrist", "r_elbow", "r_shoulder", "l_shoulder",
                 "l_elbow", "l_wrist")
)
NUM_JOINTS = MPII.num_joints

# Body proportions in units of the torso length (pelvis to thorax), close to adult ratios. Each
# person scales every one of them by its own factor in [1 - PROPORTION_JITTER, 1 + ...].
NECK_LENGTH = 0.32
HEAD_LENGTH = 0.62  # upper neck to head top
SHOULDER_HALF_WIDTH = 0.45
HIP_HALF_WIDTH = 0.26
UPPER_ARM_LENGTH = 0.68
FOREARM_LENGTH = 0.62
THIGH_LENGTH = 0.95
SHIN_LENGTH = 0.90
PROPORTION_JITTER = 0.10

# Limb widths (proximal, distal) in torso lengths.
UPPER_ARM_WIDTH = (0.21, 0.16)
FOREARM_WIDTH = (0.16, 0.11)
THIGH_WIDTH = (0.30, 0.21)
SHIN_WIDTH = (0.21, 0.13)
NECK_WIDTH = 0.17
HEAD_WIDTH_RATIO = 0.78  # head ellipse width / length (upper neck to head top)

# MPII's head boxes are tight axis-aligned rectangles around the head: the bounding box of the
# drawn head ellipse, enlarged by this factor for the hair line. For an upright head that is 0.82 x
# 1.05 head lengths, so PCKh's head size (0.6 x diagonal) is 0.8 head lengths, as in MPII (about
# 0.75 of the upper-neck-to-head-top distance on its validation set). It always contains both head
# joints, which are the ends of the ellipse's long axis.
HEADBOX_MARGIN = 1.05

# MPII convention: raw scale = person height / 200 px, where height is the standing height
# (ankle to head top, unforeshortened) whatever the pose, as MPII's scale does not shrink for a
# crouch. Records carry the crop scale, raw x SCALE_MARGIN (1.25), the margin every MPII loader adds
# (fpdctl.data.mpii.adjust_center_scale), so synthetic and MPII crops frame persons alike.
STANDING_HEIGHT = SHIN_LENGTH + THIGH_LENGTH + 1.0 + NECK_LENGTH + HEAD_LENGTH

# Drawing uses 4 fractional bits so small figures keep sub-pixel geometry.
_SHIFT = 4
_ONE = float(1 << _SHIFT)

# Left is slightly warm, right slightly cool: a weak cue, like clothing in real photos.
SIDE_TINT = 0.07

_SKIN_TONES_BGR = (
    (189, 224, 255), (160, 200, 240), (125, 170, 225), (100, 145, 200),
    (80, 120, 175), (60, 90, 140), (45, 65, 105), (140, 180, 230),
)

_TEXTURE_TILES = 16
# Sensor noise levels: each noise tile sums three uniforms in [0, amplitude].
_NOISE_AMPLITUDES = (4, 8, 14)


@dataclass(frozen=True)
class SyntheticConfig:
    """Difficulty knobs of the generator (defaults tuned so that model capacity matters).

    Attributes:
        person_height: range of the subject's standing height as a fraction of the image side.
        rotation_std_deg: spread of the whole-body in-plane rotation.
        acrobatic_prob: probability of an arbitrary body rotation (lying, handstand).
        truncation_prob: probability of pushing the person partly out of the frame.
        occlusion_prob: probability of one or two occluding shapes over the body.
        max_occluders: most occluders in one image.
        clutter: (min, max) number of background shapes.
        max_distractor_limbs: most limb-like distractors (one or two segments each).
        background_person_prob: probability of a second, unlabelled person behind the subject.
        noise_prob: probability of additive sensor noise.
        blur_prob: probability of a Gaussian blur of the whole image.
    """

    person_height: tuple[float, float] = (0.50, 0.72)
    rotation_std_deg: float = 12.0
    acrobatic_prob: float = 0.06
    truncation_prob: float = 0.2
    occlusion_prob: float = 0.4
    max_occluders: int = 2
    clutter: tuple[int, int] = (4, 14)
    max_distractor_limbs: int = 4
    background_person_prob: float = 0.3
    noise_prob: float = 0.7
    blur_prob: float = 0.3


DEFAULT_CONFIG = SyntheticConfig()


@dataclass(frozen=True)
class Occluder:
    """A filled shape drawn over the person; joints inside it are not visible.

    Attributes:
        kind: "rect" or "ellipse".
        center: (x, y) image px.
        half_size: half extents along the shape's own axes, px.
        angle_deg: rotation of the shape's axes (clockwise on screen, as OpenCV draws).
    """

    kind: Literal["rect", "ellipse"]
    center: tuple[float, float]
    half_size: tuple[float, float]
    angle_deg: float

    def contains(self, points: np.ndarray) -> np.ndarray:
        """Which of ``points`` (float [N, 2] image px) lie inside the shape (bool [N])."""
        theta = math.radians(self.angle_deg)
        cos_t, sin_t = math.cos(theta), math.sin(theta)
        dx = points[:, 0] - self.center[0]
        dy = points[:, 1] - self.center[1]
        # Coordinates along the shape's axes (rotating back by the shape's angle).
        u = (dx * cos_t + dy * sin_t) / self.half_size[0]
        v = (-dx * sin_t + dy * cos_t) / self.half_size[1]
        if self.kind == "rect":
            return (np.abs(u) <= 1.0) & (np.abs(v) <= 1.0)
        return u * u + v * v <= 1.0

    def corners(self) -> np.ndarray:
        """Rectangle corners, float [4, 2] image px."""
        theta = math.radians(self.angle_deg)
        cos_t, sin_t = math.cos(theta), math.sin(theta)
        hx, hy = self.half_size
        local = ((-hx, -hy), (hx, -hy), (hx, hy), (-hx, hy))
        return np.array(
            [(self.center[0] + x * cos_t - y * sin_t, self.center[1] + x * sin_t + y * cos_t)
             for x, y in local]
        )


@dataclass(frozen=True)
class Body:
    """A posed figure in image px, with what the renderer needs to draw it.

    Attributes:
        joints: float64 [16, 2] MPII-order joint positions, image px.
        torso: torso length in px, the unit of every width.
        yaw: body orientation about the vertical axis, radians (0 faces the camera).
        widths: per-person width factor.
        near_left: True if the left side is nearer the camera (drawn last).
        arms_behind: (right, left) whether each arm passes behind the torso.
    """

    joints: np.ndarray
    torso: float
    yaw: float
    widths: float
    near_left: bool
    arms_behind: tuple[bool, bool]


@dataclass(frozen=True)
class SyntheticLayout:
    """Everything about one sample except its pixels.

    Attributes:
        image_size: side of the square image, px.
        body: the labelled person.
        visible: bool [16], False for joints outside the image or under an occluder.
        center: float32 [2] person centre (middle of the joints' bounding box), image px.
        scale: crop scale, SCALE_MARGIN x standing height / 200 (as MPII Records carry).
        headbox: float32 [2, 2] ((x1, y1), (x2, y2)).
        occluders: shapes drawn over the person.
    """

    image_size: int
    body: Body
    visible: np.ndarray
    center: np.ndarray
    scale: float
    headbox: np.ndarray
    occluders: tuple[Occluder, ...] = field(default_factory=tuple)

    def joints_with_visibility(self) -> np.ndarray:
        """float32 [16, 3]: x, y, visibility."""
        out = np.empty((NUM_JOINTS, 3), dtype=np.float32)
        out[:, :2] = self.body.joints
        out[:, 2] = self.visible
        return out


class _Draws:
    """Uniform numbers drawn from a Generator in blocks: one numpy call serves many draws."""

    __slots__ = ("_rng", "_buf", "_pos")

    def __init__(self, rng: np.random.Generator, block: int = 128) -> None:
        self._rng = rng
        self._buf = rng.random(block).tolist()
        self._pos = 0

    def u(self, low: float = 0.0, high: float = 1.0) -> float:
        if self._pos == len(self._buf):
            self._buf = self._rng.random(128).tolist()
            self._pos = 0
        value = self._buf[self._pos]
        self._pos += 1
        return low + (high - low) * value

    def i(self, low: int, high: int) -> int:
        """An integer in [low, high] inclusive."""
        return min(high, low + int(self.u() * (high - low + 1)))

    def p(self, prob: float) -> bool:
        return self.u() < prob

    def block(self, n: int) -> list[float]:
        """``n`` uniforms in [0, 1)."""
        if self._pos + n > len(self._buf):
            self._buf = self._buf[self._pos :] + self._rng.random(max(128, n)).tolist()
            self._pos = 0
        values = self._buf[self._pos : self._pos + n]
        self._pos += n
        return values

    def sign(self) -> float:
        return 1.0 if self.u() < 0.5 else -1.0

    def normal(self, std: float) -> float:
        # Sum of four uniforms: bell-shaped, bounded, and exact (no log or exp).
        return (self.u() + self.u() + self.u() + self.u() - 2.0) * std * math.sqrt(3.0)


def sample_rng(seed: int, split: str, index: int, part: int) -> np.random.Generator:
    """The Generator of one sample's ``part`` (layout or scene); the same inputs, the same draws."""
    return np.random.default_rng([seed, SPLIT_STREAMS[split], index, part])


def _direction(angle: float) -> tuple[float, float]:
    """Unit vector at ``angle`` radians from screen-up, clockwise (image y points down)."""
    return math.sin(angle), -math.cos(angle)


def sample_body(draws: _Draws, torso_px: float, rotation_std_deg: float, acrobatic_prob: float) -> Body:
    """Draw a pose from joint angles along the kinematic tree, pelvis at the origin.

    Angles are measured from screen-up, clockwise. The yaw folds the lateral offsets (shoulders,
    hips) and flips which image side each body side lands on when the person turns away; each limb
    segment is foreshortened by a random out-of-plane angle.

    Returns:
        A Body whose joints are relative to the pelvis, in px.
    """
    t = torso_px
    prop = [draws.u(1.0 - PROPORTION_JITTER, 1.0 + PROPORTION_JITTER) for _ in range(8)]
    neck_len, head_len = NECK_LENGTH * prop[0] * t, HEAD_LENGTH * prop[1] * t
    shoulder_half, hip_half = SHOULDER_HALF_WIDTH * prop[2] * t, HIP_HALF_WIDTH * prop[3] * t
    upper_arm, forearm = UPPER_ARM_LENGTH * prop[4] * t, FOREARM_LENGTH * prop[5] * t
    thigh, shin = THIGH_LENGTH * prop[6] * t, SHIN_LENGTH * prop[7] * t

    if draws.p(acrobatic_prob):
        rotation = draws.u(-math.pi, math.pi)
    else:
        rotation = math.radians(max(-45.0, min(45.0, draws.normal(rotation_std_deg))))
    # Mostly facing the camera, as in photos of people; a third of them at any orientation.
    yaw = draws.normal(0.9) if draws.p(0.65) else draws.u(-math.pi, math.pi)
    facing = math.cos(yaw)
    lean = draws.normal(math.radians(10.0))
    if draws.p(0.15):  # bending forward or sideways
        lean += draws.sign() * draws.u(math.radians(20.0), math.radians(70.0))
    torso_angle = rotation + lean
    torso_len = t * draws.u(0.8, 1.0)

    joints = [(0.0, 0.0)] * NUM_JOINTS
    ux, uy = _direction(torso_angle)
    thorax = (ux * torso_len, uy * torso_len)
    joints[PELVIS] = (0.0, 0.0)
    joints[THORAX] = thorax
    neck_angle = torso_angle + draws.normal(math.radians(12.0))
    nx, ny = _direction(neck_angle)
    upper_neck = (thorax[0] + nx * neck_len, thorax[1] + ny * neck_len)
    joints[UPPER_NECK] = upper_neck
    head_angle = neck_angle + draws.normal(math.radians(15.0))
    hx, hy = _direction(head_angle)
    joints[HEAD_TOP] = (upper_neck[0] + hx * head_len, upper_neck[1] + hy * head_len)

    # The person's left side lies toward screen +lateral when facing the camera (cos yaw > 0).
    lx, ly = _direction(torso_angle + math.pi / 2.0)
    down = torso_angle + math.pi
    for side, shoulder, elbow, wrist, hip, knee, ankle in (
        (-1.0, R_SHOULDER, R_ELBOW, R_WRIST, R_HIP, R_KNEE, R_ANKLE),
        (1.0, L_SHOULDER, L_ELBOW, L_WRIST, L_HIP, L_KNEE, L_ANKLE),
    ):
        lateral = side * facing
        # +1 where this side appears on the screen's +lateral half: abduction turns toward it.
        outward = side * (1.0 if facing >= 0.0 else -1.0)
        s = (thorax[0] + lx * lateral * shoulder_half, thorax[1] + ly * lateral * shoulder_half)
        h = (lx * lateral * hip_half, ly * lateral * hip_half)
        joints[shoulder], joints[hip] = s, h

        if draws.p(0.25):
            abduction = draws.u(math.radians(80.0), math.radians(180.0))  # raised arm
        else:
            abduction = draws.u(math.radians(-35.0), math.radians(80.0))
        arm_angle = down - outward * abduction
        bend = draws.u(0.0, math.radians(150.0)) * draws.u() ** 0.5
        fore_angle = arm_angle + draws.sign() * bend
        upper = upper_arm * math.cos(draws.u(0.0, math.radians(65.0)))
        lower = forearm * math.cos(draws.u(0.0, math.radians(65.0)))
        ax, ay = _direction(arm_angle)
        e = (s[0] + ax * upper, s[1] + ay * upper)
        fx, fy = _direction(fore_angle)
        joints[elbow] = e
        joints[wrist] = (e[0] + fx * lower, e[1] + fy * lower)

        if draws.p(0.15):
            hip_abduction = draws.u(math.radians(40.0), math.radians(110.0))  # kick, sitting, split
        else:
            hip_abduction = draws.u(math.radians(-20.0), math.radians(40.0))
        leg_angle = down - outward * hip_abduction
        if draws.p(0.3):
            knee_bend = draws.u(math.radians(25.0), math.radians(140.0))
        else:
            knee_bend = draws.u(0.0, math.radians(25.0))
        shin_angle = leg_angle + draws.sign() * knee_bend
        upper = thigh * math.cos(draws.u(0.0, math.radians(55.0)))
        lower = shin * math.cos(draws.u(0.0, math.radians(55.0)))
        kx, ky = _direction(leg_angle)
        k = (h[0] + kx * upper, h[1] + ky * upper)
        sx, sy = _direction(shin_angle)
        joints[knee] = k
        joints[ankle] = (k[0] + sx * lower, k[1] + sy * lower)

    return Body(
        joints=np.array(joints, dtype=np.float64),
        torso=t,
        yaw=yaw,
        widths=draws.u(0.85, 1.2),
        near_left=math.sin(yaw) < 0.0,
        arms_behind=(draws.p(0.2), draws.p(0.2)),
    )


def _moved(body: Body, offset: tuple[float, float]) -> Body:
    return Body(
        joints=body.joints + np.array(offset),
        torso=body.torso,
        yaw=body.yaw,
        widths=body.widths,
        near_left=body.near_left,
        arms_behind=body.arms_behind,
    )


def head_box(upper_neck: np.ndarray, head_top: np.ndarray) -> np.ndarray:
    """The MPII-style head box of a head drawn between two joints.

    The head is an ellipse whose long axis (half-length a) joins the joints and whose half-width
    is ``HEAD_WIDTH_RATIO * a``; the box is its axis-aligned bounding box times HEADBOX_MARGIN.

    Returns:
        float32 [2, 2] ((x1, y1), (x2, y2)).
    """
    dx, dy = float(head_top[0] - upper_neck[0]), float(head_top[1] - upper_neck[1])
    a = 0.5 * math.hypot(dx, dy)
    b = HEAD_WIDTH_RATIO * a
    phi = math.atan2(dy, dx)
    half_x = HEADBOX_MARGIN * math.hypot(a * math.cos(phi), b * math.sin(phi))
    half_y = HEADBOX_MARGIN * math.hypot(a * math.sin(phi), b * math.cos(phi))
    cx, cy = 0.5 * float(head_top[0] + upper_neck[0]), 0.5 * float(head_top[1] + upper_neck[1])
    return np.array([[cx - half_x, cy - half_y], [cx + half_x, cy + half_y]], dtype=np.float32)


def sample_layout(
    rng: np.random.Generator, image_size: int, config: SyntheticConfig = DEFAULT_CONFIG
) -> SyntheticLayout:
    """Pose, placement, occluders and visibility of one sample (no pixels).

    Args:
        rng: the sample's layout Generator (see :func:`sample_rng`).
        image_size: side of the square image, px.
        config: difficulty knobs.
    """
    draws = _Draws(rng)
    size = float(image_size)
    height = size * draws.u(*config.person_height)
    torso_px = height / STANDING_HEIGHT
    body = sample_body(draws, torso_px, config.rotation_std_deg, config.acrobatic_prob)

    lo, hi = body.joints.min(axis=0), body.joints.max(axis=0)
    box_center = (lo + hi) / 2.0
    target = np.array([size / 2.0 + draws.u(-0.1, 0.1) * size, size / 2.0 + draws.u(-0.1, 0.1) * size])
    if draws.p(config.truncation_prob):
        angle = draws.u(-math.pi, math.pi)
        shift = draws.u(0.25, 0.5) * height
        target = target + shift * np.array(_direction(angle))
    offset = target - box_center
    body = _moved(body, (float(offset[0]), float(offset[1])))
    joints = body.joints

    occluders: list[Occluder] = []
    if draws.p(config.occlusion_prob):
        for _ in range(draws.i(1, max(1, config.max_occluders))):
            anchor = joints[draws.i(0, NUM_JOINTS - 1)]
            occluders.append(
                Occluder(
                    kind="rect" if draws.p(0.5) else "ellipse",
                    center=(
                        float(anchor[0]) + draws.normal(0.3 * torso_px),
                        float(anchor[1]) + draws.normal(0.3 * torso_px),
                    ),
                    half_size=(draws.u(0.25, 0.75) * torso_px, draws.u(0.25, 0.75) * torso_px),
                    angle_deg=draws.u(0.0, 180.0),
                )
            )

    # A joint on the last pixel row or column is still in the image; beyond it is truncated.
    visible = (joints >= 0.0).all(axis=1) & (joints <= size - 1.0).all(axis=1)
    for occluder in occluders:
        visible &= ~occluder.contains(joints)

    headbox = head_box(joints[UPPER_NECK], joints[HEAD_TOP])
    lo, hi = joints.min(axis=0), joints.max(axis=0)
    return SyntheticLayout(
        image_size=image_size,
        body=body,
        visible=visible,
        center=((lo + hi) / 2.0).astype(np.float32),
        scale=float(SCALE_MARGIN * STANDING_HEIGHT * torso_px / PIXEL_STD),
        headbox=headbox,
        occluders=tuple(occluders),
    )


# --------------------------------------------------------------------------------------------
# Pixels


@functools.lru_cache(maxsize=4)
def _tiles(image_size: int) -> tuple[tuple[np.ndarray, ...], tuple[np.ndarray, ...]]:
    """Background textures and noise fields, built once per image size (per process).

    A background is the sum of random windows of two texture tiles, so every background differs
    while costing one saturating add (OpenCV's scalar and LUT paths are several times slower).
    Textures hold values 0..127 so that sums stay in range. Tiles come from a fixed seed, integer
    arithmetic and bit-exact resizes.

    Returns:
        (textures, noises): uint8 [T, T, 3] each, T = image_size + min(image_size, 256).
    """
    side = image_size + min(image_size, 256)
    rng = np.random.default_rng([0x5EED, image_size])
    textures = []
    for kind in range(_TEXTURE_TILES):
        # Mix of blob sizes: a few large smooth blobs to fine grain, with random weights.
        mix = np.zeros((side, side), dtype=np.int32)
        total = 0
        for cells in (3, 9, 27, side // 3):
            weight = int(rng.integers(1, 5))
            grid = rng.integers(0, 256, size=(cells, cells), dtype=np.uint8)
            smooth = cv2.resize(grid, (side, side), interpolation=cv2.INTER_LINEAR)
            mix += weight * smooth.astype(np.int32)
            total += weight
        level = (mix // total).astype(np.uint8)
        if kind % 4 == 1:  # stripes (walls, fences, fabric)
            step = int(rng.integers(6, 24))
            for x in range(0, 2 * side, step):
                shade, width = int(rng.integers(0, 256)), int(rng.integers(1, 4))
                cv2.line(level, (x, 0), (x - side, side), shade, width)
        elif kind % 4 == 3:  # tiles and windows
            step = int(rng.integers(16, 64))
            for x in range(0, side, step):
                cv2.line(level, (x, 0), (x, side), int(rng.integers(0, 256)), 2)
                cv2.line(level, (0, x), (side, x), int(rng.integers(0, 256)), 2)
        low = rng.integers(0, 256, size=3).astype(np.int32)
        high = rng.integers(0, 256, size=3).astype(np.int32)
        m = level.astype(np.int32)[:, :, None]
        textures.append(((low * (255 - m) + high * m) // 510).astype(np.uint8))
    noises = []
    for amplitude in _NOISE_AMPLITUDES:
        # Irwin-Hall (sum of uniforms) noise: near-Gaussian, exact integers.
        parts = rng.integers(0, amplitude + 1, size=(3, side, side, 3), dtype=np.int32)
        noises.append(parts.sum(axis=0).astype(np.uint8))
    return tuple(textures), tuple(noises)


def _fixed(points: np.ndarray) -> np.ndarray:
    """Float px -> int32 with _SHIFT fractional bits, as OpenCV's ``shift`` argument expects."""
    return np.rint(np.asarray(points, dtype=np.float64) * _ONE).astype(np.int32)


def _pt(x: float, y: float) -> tuple[int, int]:
    return int(round(x * _ONE)), int(round(y * _ONE))


def _scaled(color: tuple[int, int, int], factor: float) -> tuple[int, int, int]:
    b, g, r = color
    return min(255, int(b * factor)), min(255, int(g * factor)), min(255, int(r * factor))


def _tinted(color: tuple[int, int, int], side: float) -> tuple[int, int, int]:
    """Left (side +1) slightly warmer, right (-1) slightly cooler; BGR."""
    b, g, r = color
    k = SIDE_TINT * side
    return max(0, min(255, int(b * (1.0 - k)))), g, max(0, min(255, int(r * (1.0 + k) + 6.0 * side)))


def _random_color(draws: _Draws) -> tuple[int, int, int]:
    v = draws.block(3)
    return int(v[0] * 256.0), int(v[1] * 256.0), int(v[2] * 256.0)


@dataclass(frozen=True)
class _LimbShapes:
    """Fixed-point drawing geometry of K tapered limbs (see :func:`_limb_shapes`)."""

    outer: np.ndarray  # int32 [K, 4, 2]
    inner: np.ndarray  # int32 [K, 4, 2], the lit core
    caps: list  # K proximal cap centres, fixed point
    radii: list  # K proximal cap radii, fixed point


def _limb_shapes(
    p: np.ndarray, q: np.ndarray, widths: np.ndarray, light: tuple[float, float]
) -> _LimbShapes:
    """Tapered quads from p (width w1) to q (width w2), with a narrower core shifted to the light.

    Args:
        p, q: float [K, 2] limb ends, px.
        widths: float [K, 2] (w1, w2), px.
        light: unit (x, y) direction the light comes from.
    """
    d = q - p
    length = np.maximum(np.hypot(d[:, 0], d[:, 1]), 1e-6)[:, None]
    n = np.stack([-d[:, 1], d[:, 0]], axis=1) / length  # unit normal [K, 2]
    half_p, half_q = 0.5 * widths[:, :1], 0.5 * widths[:, 1:]
    outer = np.stack([p + n * half_p, q + n * half_q, q - n * half_q, p - n * half_p], axis=1)
    # The core is 60% as wide and pushed toward the light: a cheap cylinder shading.
    shift = n * (0.22 * (n[:, 0] * light[0] + n[:, 1] * light[1]))[:, None]
    core_p, core_q = p + shift * widths[:, :1], q + shift * widths[:, 1:]
    inner = np.stack(
        [core_p + n * (0.6 * half_p), core_q + n * (0.6 * half_q), core_q - n * (0.6 * half_q),
         core_p - n * (0.6 * half_p)],
        axis=1,
    )
    return _LimbShapes(
        outer=_fixed(outer),
        inner=_fixed(inner),
        caps=[tuple(c) for c in _fixed(p).tolist()],
        radii=_fixed(half_p[:, 0]).tolist(),
    )


def _draw_limb(image: np.ndarray, shapes: _LimbShapes, k: int, color: tuple[int, int, int]) -> None:
    dark = _scaled(color, 0.72)
    cv2.circle(image, shapes.caps[k], shapes.radii[k], dark, -1, cv2.LINE_8, _SHIFT)
    cv2.fillConvexPoly(image, shapes.outer[k], dark, cv2.LINE_8, _SHIFT)
    cv2.fillConvexPoly(image, shapes.inner[k], color, cv2.LINE_8, _SHIFT)


# The limbs of a body: (proximal joint, distal joint, (proximal, distal) width in torso lengths).
_BODY_LIMBS = (
    (R_SHOULDER, R_ELBOW, UPPER_ARM_WIDTH), (R_ELBOW, R_WRIST, FOREARM_WIDTH),
    (L_SHOULDER, L_ELBOW, UPPER_ARM_WIDTH), (L_ELBOW, L_WRIST, FOREARM_WIDTH),
    (R_HIP, R_KNEE, THIGH_WIDTH), (R_KNEE, R_ANKLE, SHIN_WIDTH),
    (L_HIP, L_KNEE, THIGH_WIDTH), (L_KNEE, L_ANKLE, SHIN_WIDTH),
    (THORAX, UPPER_NECK, (NECK_WIDTH, 0.9 * NECK_WIDTH)),
)
_LIMB_FROM = np.array([limb[0] for limb in _BODY_LIMBS])
_LIMB_TO = np.array([limb[1] for limb in _BODY_LIMBS])
_LIMB_WIDTHS = np.array([limb[2] for limb in _BODY_LIMBS], dtype=np.float64)
_ARM_LIMBS = {-1.0: (0, 1), 1.0: (2, 3)}  # side -> (upper arm, forearm) rows of _BODY_LIMBS
_LEG_LIMBS = {-1.0: (4, 5), 1.0: (6, 7)}
_NECK_LIMB = 8
_WRIST = {-1.0: R_WRIST, 1.0: L_WRIST}
_ANKLE = {-1.0: R_ANKLE, 1.0: L_ANKLE}


@dataclass(frozen=True)
class _Outfit:
    skin: tuple[int, int, int]
    hair: tuple[int, int, int]
    shirt: tuple[int, int, int]
    trousers: tuple[int, int, int]
    long_sleeves: bool
    long_trousers: bool


def _sample_outfit(draws: _Draws) -> _Outfit:
    skin = _SKIN_TONES_BGR[draws.i(0, len(_SKIN_TONES_BGR) - 1)]
    hair = draws.block(3)
    return _Outfit(
        skin=_scaled(skin, draws.u(0.85, 1.1)),
        hair=(10 + int(80 * hair[0]), 15 + int(95 * hair[1]), 20 + int(120 * hair[2])),
        shirt=_random_color(draws),
        trousers=_random_color(draws),
        long_sleeves=draws.p(0.5),
        long_trousers=draws.p(0.7),
    )


def draw_body(image: np.ndarray, body: Body, outfit: _Outfit, light: tuple[float, float]) -> None:
    """Draw a Body in place: legs, torso, neck and head, then arms; far side before near side.

    Args:
        image: uint8 [H, W, 3] BGR, drawn on.
        body: the figure, joints in image px.
        outfit: its colours.
        light: unit (x, y) direction of the light, for shading.
    """
    j = body.joints
    t = body.torso * body.widths
    shapes = _limb_shapes(j[_LIMB_FROM], j[_LIMB_TO], _LIMB_WIDTHS * t, light)
    far, near = (-1.0, 1.0) if body.near_left else (1.0, -1.0)
    behind = {-1.0: body.arms_behind[0], 1.0: body.arms_behind[1]}

    def arm(side: float) -> None:
        sleeve, skin = _tinted(outfit.shirt, side), _tinted(outfit.skin, side)
        upper, fore = _ARM_LIMBS[side]
        _draw_limb(image, shapes, upper, sleeve)
        _draw_limb(image, shapes, fore, sleeve if outfit.long_sleeves else skin)
        wx, wy = j[_WRIST[side]]
        cv2.circle(image, _pt(wx, wy), int(0.11 * t * _ONE), skin, -1, cv2.LINE_8, _SHIFT)

    def leg(side: float) -> None:
        cloth = _tinted(outfit.trousers, side)
        thigh, shin = _LEG_LIMBS[side]
        _draw_limb(image, shapes, thigh, cloth)
        _draw_limb(image, shapes, shin, cloth if outfit.long_trousers else _tinted(outfit.skin, side))
        # A foot pointing where the person faces: sideways in profile, toward us when frontal.
        forward = math.sin(body.yaw)
        ax, ay = j[_ANKLE[side]]
        axes = (int((0.08 + 0.1 * abs(forward)) * t * _ONE), int(0.07 * t * _ONE))
        cv2.ellipse(
            image, _pt(ax + forward * 0.18 * t, ay + 0.05 * t), axes, 0.0, 0.0, 360.0,
            _scaled(cloth, 0.5), -1, cv2.LINE_8, _SHIFT,
        )

    if behind[far]:
        arm(far)
    leg(far)
    leg(near)

    # Torso: a convex hexagon around the pelvis-thorax axis, wide at the shoulders, narrower at
    # the waist; its width follows the yaw but keeps a side-view depth.
    (px, py), (tx, ty) = j[PELVIS], j[THORAX]
    ax, ay = tx - px, ty - py
    length = math.hypot(ax, ay) or 1.0
    ux, uy = ax / length, ay / length  # up the torso
    nx, ny = -uy, ux
    facing = abs(math.cos(body.yaw))
    shoulders = math.hypot(*(j[L_SHOULDER] - j[R_SHOULDER]))
    hips = math.hypot(*(j[L_HIP] - j[R_HIP]))
    top = max(facing * 0.5 * shoulders, 0.24 * t) + 0.09 * t
    bottom = max(facing * 0.5 * hips, 0.22 * t) + 0.13 * t
    waist = 0.82 * min(top, bottom) + 0.1 * abs(top - bottom)
    mx, my = px + 0.5 * ax, py + 0.5 * ay
    hx, hy = tx + 0.06 * t * ux, ty + 0.06 * t * uy  # shoulder line
    bx, by = px - 0.04 * t * ux, py - 0.04 * t * uy  # hip line
    hexagon = np.array(
        [(hx + nx * top, hy + ny * top), (mx + nx * waist, my + ny * waist),
         (bx + nx * bottom, by + ny * bottom), (bx - nx * bottom, by - ny * bottom),
         (mx - nx * waist, my - ny * waist), (hx - nx * top, hy - ny * top)]
    )
    cv2.fillConvexPoly(image, _fixed(hexagon), _scaled(outfit.shirt, 0.75), cv2.LINE_8, _SHIFT)
    lit = 0.25 * top * (nx * light[0] + ny * light[1])
    core = (hexagon - (mx, my)) * 0.7 + (mx + nx * lit, my + ny * lit)
    cv2.fillConvexPoly(image, _fixed(core), outfit.shirt, cv2.LINE_8, _SHIFT)

    # Neck and head; the face turns toward where the person looks and is hidden from behind.
    _draw_limb(image, shapes, _NECK_LIMB, outfit.skin)
    (nkx, nky), (htx, hty) = j[UPPER_NECK], j[HEAD_TOP]
    vx, vy = htx - nkx, hty - nky
    head_len = math.hypot(vx, vy) or 1.0
    cx, cy = nkx + 0.5 * vx, nky + 0.5 * vy
    angle = math.degrees(math.atan2(vy, vx))
    half_width = 0.5 * HEAD_WIDTH_RATIO * head_len
    cv2.ellipse(
        image, _pt(cx, cy), (int(0.5 * head_len * _ONE), int(half_width * _ONE)), angle, 0.0, 360.0,
        outfit.hair, -1, cv2.LINE_8, _SHIFT,
    )
    facing_signed = math.cos(body.yaw)
    if facing_signed > -0.25:
        across = 0.28 * half_width * math.sin(body.yaw)
        fx = cx - 0.08 * vx - vy / head_len * across
        fy = cy - 0.08 * vy + vx / head_len * across
        face_width = (0.25 + 0.13 * max(0.0, facing_signed)) * head_len
        face_axes = (int(0.36 * head_len * _ONE), int(face_width * _ONE))
        cv2.ellipse(
            image, _pt(fx, fy), face_axes, angle, 0.0, 360.0, outfit.skin, -1, cv2.LINE_8, _SHIFT
        )

    if not behind[far]:
        arm(far)
    arm(near)


def _draw_clutter(image: np.ndarray, draws: _Draws, count: int) -> None:
    """Random filled and outlined shapes and lines over the background."""
    size = image.shape[0]
    for _ in range(count):
        kind, b, g, r, x, y, s1, s2, extra = draws.block(9)
        color = (int(b * 256.0), int(g * 256.0), int(r * 256.0))
        center = _pt(x * size, y * size)
        r1, r2 = (0.02 + 0.23 * s1) * size, (0.02 + 0.23 * s2) * size
        kind = int(kind * 5.0)
        if kind == 0:
            corner = (center[0] + int(r1 * _ONE), center[1] + int(r2 * _ONE))
            cv2.rectangle(image, center, corner, color, -1, cv2.LINE_8, _SHIFT)
        elif kind == 1:
            cv2.circle(image, center, int(0.5 * r1 * _ONE), color, -1, cv2.LINE_8, _SHIFT)
        elif kind == 2:
            end = (
                center[0] + int((2.0 * extra - 1.0) * 2.0 * r1 * _ONE),
                center[1] + int((1.0 - 2.0 * s1) * 2.0 * r2 * _ONE),
            )
            width = max(1, int((0.005 + 0.025 * s2) * size))
            cv2.line(image, center, end, color, width, cv2.LINE_8, _SHIFT)
        elif kind == 3:
            axes = (int(r1 * _ONE), int(0.4 * r2 * _ONE))
            cv2.ellipse(image, center, axes, 180.0 * extra, 0.0, 360.0, color, -1, cv2.LINE_8, _SHIFT)
        else:
            corner = (center[0] + int(r1 * _ONE), center[1] + int(r2 * _ONE))
            width = max(1, int((0.004 + 0.016 * extra) * size))
            cv2.rectangle(image, center, corner, color, width, cv2.LINE_8, _SHIFT)


def _draw_distractors(
    image: np.ndarray,
    draws: _Draws,
    count: int,
    torso: float,
    outfit: _Outfit,
    light: tuple[float, float],
) -> None:
    """Loose arms and legs (one or two segments) in the person's own colours and widths."""
    if count == 0:
        return
    size = image.shape[0]
    palette = (
        outfit.shirt, outfit.trousers, outfit.skin,
        _tinted(outfit.shirt, 1.0), _tinted(outfit.trousers, -1.0),
    )
    starts, mids, ends, widths, colors, two = [], [], [], [], [], []
    for _ in range(count):
        pick, leg_like, x, y, a, l1, bend, l2, second = draws.block(9)
        w = THIGH_WIDTH if leg_like < 0.4 else UPPER_ARM_WIDTH
        lengths = (THIGH_LENGTH, SHIN_LENGTH) if leg_like < 0.4 else (UPPER_ARM_LENGTH, FOREARM_LENGTH)
        angle = (2.0 * a - 1.0) * math.pi
        start = (x * size, y * size)
        seg = lengths[0] * torso * (0.6 + 0.4 * l1)
        dx, dy = _direction(angle)
        mid = (start[0] + dx * seg, start[1] + dy * seg)
        angle += (2.0 * bend - 1.0) * math.radians(130.0)
        seg = lengths[1] * torso * (0.6 + 0.4 * l2)
        dx, dy = _direction(angle)
        starts += [start, mid]
        ends += [mid, (mid[0] + dx * seg, mid[1] + dy * seg)]
        widths += [(w[0] * torso, w[1] * torso), (w[1] * torso, 0.7 * w[1] * torso)]
        colors.append(palette[min(len(palette) - 1, int(pick * len(palette)))])
        two.append(second < 0.7)
    shapes = _limb_shapes(np.array(starts), np.array(ends), np.array(widths), light)
    for k, color in enumerate(colors):
        _draw_limb(image, shapes, 2 * k, color)
        if two[k]:
            _draw_limb(image, shapes, 2 * k + 1, color)


def _draw_occluder(image: np.ndarray, occluder: Occluder, draws: _Draws) -> None:
    color = _random_color(draws)
    edge = _scaled(color, 0.6)
    if occluder.kind == "rect":
        corners = _fixed(occluder.corners())
        cv2.fillConvexPoly(image, corners, color, cv2.LINE_8, _SHIFT)
        width = max(1, int(0.08 * min(occluder.half_size)))
        cv2.polylines(image, [corners], True, edge, width, cv2.LINE_8, _SHIFT)
    else:
        center = _pt(*occluder.center)
        axes = (int(occluder.half_size[0] * _ONE), int(occluder.half_size[1] * _ONE))
        cv2.ellipse(image, center, axes, occluder.angle_deg, 0.0, 360.0, edge, -1, cv2.LINE_8, _SHIFT)
        inner = (int(axes[0] * 0.85), int(axes[1] * 0.85))
        cv2.ellipse(image, center, inner, occluder.angle_deg, 0.0, 360.0, color, -1, cv2.LINE_8, _SHIFT)


def render_layout(
    layout: SyntheticLayout, rng: np.random.Generator, config: SyntheticConfig = DEFAULT_CONFIG
) -> np.ndarray:
    """Draw a sample's pixels.

    Args:
        layout: from :func:`sample_layout`.
        rng: the sample's scene Generator (see :func:`sample_rng`).
        config: difficulty knobs.

    Returns:
        uint8 [S, S, 3] BGR image, S = ``layout.image_size``.
    """
    draws = _Draws(rng)
    size = layout.image_size
    textures, noises = _tiles(size)
    span = textures[0].shape[0] - size
    first = draws.i(0, len(textures) - 1)
    second = (first + draws.i(1, len(textures) - 1)) % len(textures)  # a different tile
    x0, y0, x1, y1 = (draws.i(0, span) for _ in range(4))
    # cv2.add reads the strided windows directly and returns a new contiguous image.
    image = cv2.add(
        textures[first][y0 : y0 + size, x0 : x0 + size],
        textures[second][y1 : y1 + size, x1 : x1 + size],
    )

    light_angle = draws.u(-math.pi, math.pi)
    light = (math.cos(light_angle), math.sin(light_angle))
    outfit = _sample_outfit(draws)
    torso = layout.body.torso
    _draw_clutter(image, draws, draws.i(*config.clutter))

    if draws.p(config.background_person_prob):
        # An unlabelled person behind the subject, beside it and often half out of the frame.
        other = sample_body(draws, torso * draws.u(0.7, 1.1), config.rotation_std_deg, 0.0)
        side = draws.sign()
        spot = (
            float(layout.center[0]) + side * draws.u(0.45, 0.9) * STANDING_HEIGHT * torso,
            float(layout.center[1]) + draws.u(-0.3, 0.3) * size,
        )
        lo, hi = other.joints.min(axis=0), other.joints.max(axis=0)
        shift = (spot[0] - 0.5 * float(lo[0] + hi[0]), spot[1] - 0.5 * float(lo[1] + hi[1]))
        draw_body(image, _moved(other, shift), _sample_outfit(draws), light)
    _draw_distractors(image, draws, draws.i(0, config.max_distractor_limbs), torso, outfit, light)

    draw_body(image, layout.body, outfit, light)
    for occluder in layout.occluders:
        _draw_occluder(image, occluder, draws)

    if draws.p(config.noise_prob):
        noise = noises[draws.i(0, len(noises) - 1)]
        nx, ny, mx, my = (draws.i(0, span) for _ in range(4))
        # Two independent windows, added then subtracted: zero-mean noise, saturating like a sensor.
        cv2.add(image, noise[ny : ny + size, nx : nx + size], dst=image)
        cv2.subtract(image, noise[my : my + size, mx : mx + size], dst=image)
    if draws.p(config.blur_prob):
        kernel = 3 if draws.p(0.6) else 5
        image = cv2.GaussianBlur(image, (kernel, kernel), 0)
    return image


def _check_sample_args(seed: int, split: str, image_size: int) -> None:
    if split not in SPLIT_STREAMS:
        raise UsageError(f"split must be train or val, got {split!r}")
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise UsageError(f"synthetic seed must be a non-negative integer, got {seed!r}")
    if (
        isinstance(image_size, bool)
        or not isinstance(image_size, (int, np.integer))
        or image_size < MIN_IMAGE_SIZE
    ):
        raise UsageError(
            f"synthetic image size must be an integer of at least {MIN_IMAGE_SIZE}, got {image_size!r}"
        )


def synthetic_record(
    seed: int,
    split: str,
    index: int,
    image_size: int,
    config: SyntheticConfig = DEFAULT_CONFIG,
    *,
    render: bool = True,
) -> Record:
    """Sample ``index`` of ``split`` for ``seed`` as a Record.

    Args:
        seed: dataset seed (non-negative).
        split: "train" or "val".
        index: sample index (non-negative).
        image_size: side of the square image, px.
        config: difficulty knobs.
        render: draw the image (uint8 [S, S, 3] BGR); False leaves ``image`` None and is ~10x faster.

    Returns:
        A Record with joints float32 [16, 3] (x, y, visibility), MPII order.
    """
    _check_sample_args(seed, split, image_size)
    if index < 0:
        raise IndexError(f"synthetic index must be non-negative, got {index}")
    layout = sample_layout(sample_rng(seed, split, index, _LAYOUT_STREAM), image_size, config)
    image = None
    if render:
        image = render_layout(layout, sample_rng(seed, split, index, _SCENE_STREAM), config)
    return Record(
        image=image,
        joints=layout.joints_with_visibility(),
        center=layout.center.copy(),
        scale=layout.scale,
        headbox=layout.headbox.copy(),
        image_id=f"synthetic-{split}-{seed}-{index:06d}",
    )


class SyntheticPose(PoseDataset):
    """Procedural MPII-style persons, generated on the fly and deterministic from (seed, index).

    Args:
        split: "train" or "val"; the two draw from disjoint random streams.
        length: number of samples (default 20000 for train, 500 for val).
        seed: dataset seed (a non-negative integer).
        image_size: side of the rendered image, px (default: the input size).
        config: difficulty knobs.
        **kwargs: PoseDataset options (input_size, heatmap_size, sigma, augment, max_bad_fraction).
    """

    joint_set: JointSet = MPII
    metric = "pckh"

    def __init__(
        self,
        split: Split = "train",
        *,
        length: int | None = None,
        seed: int = 0,
        image_size: int | None = None,
        config: SyntheticConfig = DEFAULT_CONFIG,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        if length is None:
            length = DEFAULT_LENGTHS.get(split, 0)
        if isinstance(length, bool) or not isinstance(length, int) or length <= 0:
            raise UsageError(f"synthetic length must be a positive integer, got {length!r}")
        if image_size is None:
            image_size = self.input_size
        _check_sample_args(seed, split, image_size)
        if not isinstance(config, SyntheticConfig):
            raise UsageError(f"synthetic config must be a SyntheticConfig, got {config!r}")
        self.split = split
        self.length = length
        self.seed = seed
        self.image_size = image_size
        self.config = config

    def __len__(self) -> int:
        return self.length

    def _check_index(self, index: int) -> int:
        if not -self.length <= index < self.length:
            raise IndexError(f"synthetic index {index} out of range for {self.length} samples")
        return index % self.length

    def layout(self, index: int) -> SyntheticLayout:
        """The layout (pose, placement, occluders, visibility) of sample ``index``."""
        index = self._check_index(index)
        rng = sample_rng(self.seed, self.split, index, _LAYOUT_STREAM)
        return sample_layout(rng, self.image_size, self.config)

    def load_annotation(self, index: int) -> Record:
        """The Record of sample ``index`` without its image (no rendering)."""
        index = self._check_index(index)
        return synthetic_record(self.seed, self.split, index, self.image_size, self.config, render=False)

    def load_record(self, index: int) -> Record:
        """The Record of sample ``index`` with its rendered uint8 [S, S, 3] BGR image."""
        index = self._check_index(index)
        return synthetic_record(self.seed, self.split, index, self.image_size, self.config)


# --------------------------------------------------------------------------------------------
# Export as an MPII dataset (HRNet / official FPD layout)

JPEG_QUALITY = 95
# MPII's joint abbreviations, as stored in the evaluation ground truth's ``dataset_joints``.
MPII_GT_JOINT_NAMES = (
    "rank", "rkne", "rhip", "lhip", "lkne", "lank", "pelv", "thor",
    "neck", "head", "rwri", "relb", "rsho", "lsho", "lelb", "lwri",
)


@dataclass(frozen=True)
class SynthExportResult:
    """What :func:`export_mpii` wrote.

    Attributes:
        out_dir: the dataset folder (``images/``, ``annot/``).
        split: the synthetic split exported ("train", "val" or "both").
        count: persons (one per image), over every split written.
        image_size: image side, px.
        seed: dataset seed.
        annotation: ``annot/train.json`` or ``annot/valid.json``.
        ground_truth: ``annot/gt_valid.mat`` with the head boxes (val only), else None.
        visible_joints: joints with visibility 1, over all persons.
        annotations: every annotation file written (both of them for split "both").
    """

    out_dir: Path
    split: str
    count: int
    image_size: int
    seed: int
    annotation: Path
    ground_truth: Path | None
    visible_joints: int
    annotations: tuple[Path, ...] = ()

    @property
    def total_joints(self) -> int:
        return self.count * NUM_JOINTS


def _check_out_dir(out_dir: Path) -> None:
    if out_dir.exists():
        if not out_dir.is_dir():
            raise InputError(f"output path exists and is not a folder: {out_dir}")
        if any(out_dir.iterdir()):
            raise InputError(f"output folder is not empty: {out_dir}")
    from fpdctl.utils.io import check_folder_creatable

    check_folder_creatable(out_dir)  # a file in the path: one clear line, nothing created
    try:
        out_dir.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise InputError(f"cannot create output folder {out_dir.parent}: {exc.strerror or exc}") from exc
    if not os.access(out_dir.parent, os.W_OK):
        raise InputError(f"output folder is not writable: {out_dir.parent}")


def export_mpii(
    out_dir: str | os.PathLike[str],
    count: int,
    *,
    image_size: int = 256,
    seed: int = 0,
    split: Split | Literal["both"] = "val",
    config: SyntheticConfig = DEFAULT_CONFIG,
) -> SynthExportResult:
    """Write ``count`` synthetic persons as an MPII dataset that ``--data mpii:DIR`` reads.

    Layout (HRNet / official FPD code): ``images/<id>.jpg``; ``annot/valid.json`` (or
    ``train.json``), a list of ``{image, center, scale, joints [16][2], joints_vis [16]}`` in
    MATLAB 1-based px with MPII's raw centre and scale (the loaders' centre shift and 1.25 margin
    undone, so reading it back gives the same Records); for val, ``annot/gt_valid.mat`` in the
    evaluation layout (``pos_gt_src``, ``jnt_missing``, ``headboxes_src``, ``dataset_joints``) for
    the head boxes. ``split="both"`` writes ``count`` persons of each split into the one folder
    (image names carry the split), which ``train`` and ``distill`` read as a whole dataset. The
    folder appears complete or not at all: it is written beside ``out_dir`` under a temporary
    name and renamed at the end.

    Raises:
        UsageError: count, image size, seed or split out of range.
        InputError: ``out_dir`` exists and is not an empty folder, or cannot be created.
        RuntimeFailure: writing failed (disk full, ...).
    """
    if isinstance(count, bool) or not isinstance(count, (int, np.integer)) or count <= 0:
        raise UsageError(f"--count must be a positive integer, got {count!r}")
    if split not in ("train", "val", "both"):
        raise UsageError(f"--split must be train, val or both, got '{split}'")
    splits: tuple[Split, ...] = ("train", "val") if split == "both" else (split,)  # type: ignore[assignment]
    for one in splits:
        _check_sample_args(seed, one, image_size)
    out = Path(out_dir)
    _check_out_dir(out)

    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.", suffix=".tmp", dir=out.parent))
    try:
        (tmp / "images").mkdir()
        (tmp / "annot").mkdir()
        written = [_write_split(tmp, out, one, count, image_size, seed, config) for one in splits]
        os.rename(tmp, out)  # replaces an empty folder atomically on POSIX
    except OSError as exc:
        shutil.rmtree(tmp, ignore_errors=True)
        raise RuntimeFailure(f"could not write {out}: {exc.strerror or exc}") from exc
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    annotation, ground_truth, _ = written[-1]
    return SynthExportResult(
        out_dir=out,
        split=split,
        count=count * len(splits),
        image_size=image_size,
        seed=seed,
        annotation=out / "annot" / annotation.name,
        ground_truth=None if ground_truth is None else out / "annot" / ground_truth.name,
        visible_joints=sum(visible for _, _, visible in written),
        annotations=tuple(out / "annot" / a.name for a, _, _ in written),
    )


def _write_split(
    tmp: Path, out: Path, split: Split, count: int, image_size: int, seed: int, config: SyntheticConfig,
) -> tuple[Path, Path | None, int]:
    """One split's images and annotations into the folder being built: (annotation, gt, visible)."""
    import scipy.io

    from fpdctl.data.mpii import CENTER_SHIFT_Y, HRNET_JSON, MATLAB_OFFSET

    persons = []
    joints = np.zeros((count, NUM_JOINTS, 3), dtype=np.float32)
    headboxes = np.zeros((count, 2, 2), dtype=np.float32)
    for index in range(count):
        record = synthetic_record(seed, split, index, image_size, config)
        name = f"{record.image_id}.jpg"
        written = cv2.imwrite(
            str(tmp / "images" / name), record.image, [cv2.IMWRITE_JPEG_QUALITY, JPEG_QUALITY]
        )
        if not written:
            raise RuntimeFailure(f"could not write {out / 'images' / name}")
        raw_scale = record.scale / SCALE_MARGIN
        center = record.center.astype(np.float64) + MATLAB_OFFSET
        center[1] -= CENTER_SHIFT_Y * raw_scale
        persons.append(
            {
                "image": name,
                "center": center.tolist(),
                "scale": raw_scale,
                "joints": (record.joints[:, :2].astype(np.float64) + MATLAB_OFFSET).tolist(),
                "joints_vis": record.joints[:, 2].astype(int).tolist(),
            }
        )
        joints[index] = record.joints
        headboxes[index] = record.headbox
    annotation = tmp / "annot" / HRNET_JSON[split]
    annotation.write_text(json.dumps(persons), encoding="utf-8")
    ground_truth = None
    if split == "val":
        ground_truth = tmp / "annot" / "gt_valid.mat"
        names = np.empty((1, NUM_JOINTS), dtype=object)
        names[0, :] = [np.array([n]) for n in MPII_GT_JOINT_NAMES]
        scipy.io.savemat(
            ground_truth,
            {
                "dataset_joints": names,
                "jnt_missing": (joints[:, :, 2] == 0).astype(np.uint8).T,
                "pos_gt_src": (np.float64(joints[:, :, :2]) + MATLAB_OFFSET).transpose(1, 2, 0),
                "headboxes_src": (np.float64(headboxes) + MATLAB_OFFSET).transpose(1, 2, 0),
            },
        )
    return annotation, ground_truth, int(joints[:, :, 2].sum())
