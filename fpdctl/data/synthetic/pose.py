"""Synthetic bodies and layouts: everything about a sample except its pixels.

A pose is drawn from joint angles along a kinematic tree rooted at the pelvis, then placed in the
image with its occluders, which decide the visibility of each joint. Trigonometry uses Python's
``math`` and the random numbers come from one numpy Generator per sample part
(:func:`sample_rng`), so a layout is exact and the same on every machine.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Literal

import numpy as np

from fpdctl.boxes import PIXEL_STD, SCALE_MARGIN
from fpdctl.skeleton import MPII

Split = Literal["train", "val"]

# Each split draws from its own stream of seed sequences, so train and val never share a sample
# whatever the seed and the lengths.
SPLIT_STREAMS: dict[str, int] = {"train": 0, "val": 1}
DEFAULT_LENGTHS: dict[str, int] = {"train": 20000, "val": 500}
MIN_IMAGE_SIZE = 32
# Sub-streams of one sample: the layout (pose, placement, occluders) and the pixels.
LAYOUT_STREAM = 0
SCENE_STREAM = 1

# MPII joint indices, named for the kinematic code below.
(
    R_ANKLE,
    R_KNEE,
    R_HIP,
    L_HIP,
    L_KNEE,
    L_ANKLE,
    PELVIS,
    THORAX,
    UPPER_NECK,
    HEAD_TOP,
    R_WRIST,
    R_ELBOW,
    R_SHOULDER,
    L_SHOULDER,
    L_ELBOW,
    L_WRIST,
) = (
    MPII.index(name)
    for name in (
        "r_ankle",
        "r_knee",
        "r_hip",
        "l_hip",
        "l_knee",
        "l_ankle",
        "pelvis",
        "thorax",
        "upper_neck",
        "head_top",
        "r_wrist",
        "r_elbow",
        "r_shoulder",
        "l_shoulder",
        "l_elbow",
        "l_wrist",
    )
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
            [(self.center[0] + x * cos_t - y * sin_t, self.center[1] + x * sin_t + y * cos_t) for x, y in local]
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


class Draws:
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


def direction(angle: float) -> tuple[float, float]:
    """Unit vector at ``angle`` radians from screen-up, clockwise (image y points down)."""
    return math.sin(angle), -math.cos(angle)


def _two_segments(
    draws: Draws,
    start: tuple[float, float],
    angles: tuple[float, float],
    lengths: tuple[float, float],
    max_tilt: float,
) -> tuple[tuple[float, float], tuple[float, float]]:
    """The middle and end joints of a limb of two segments from ``start``.

    Args:
        draws: the sample's random numbers.
        start: the limb's root joint, px.
        angles: each segment's screen angle (see :func:`direction`).
        lengths: each segment's full length, px.
        max_tilt: largest out-of-plane angle, radians: each segment is foreshortened by the cosine
            of its own random tilt in [0, max_tilt].
    """
    upper = lengths[0] * math.cos(draws.u(0.0, max_tilt))
    lower = lengths[1] * math.cos(draws.u(0.0, max_tilt))
    ax, ay = direction(angles[0])
    middle = (start[0] + ax * upper, start[1] + ay * upper)
    bx, by = direction(angles[1])
    return middle, (middle[0] + bx * lower, middle[1] + by * lower)


def _arm(
    draws: Draws, shoulder: tuple[float, float], down: float, outward: float, lengths: tuple[float, float]
) -> tuple[tuple[float, float], tuple[float, float]]:
    """Elbow and wrist of one arm; ``outward`` (+1 or -1) is the screen side abduction turns to."""
    if draws.p(0.25):
        abduction = draws.u(math.radians(80.0), math.radians(180.0))  # raised arm
    else:
        abduction = draws.u(math.radians(-35.0), math.radians(80.0))
    arm_angle = down - outward * abduction
    bend = draws.u(0.0, math.radians(150.0)) * draws.u() ** 0.5
    fore_angle = arm_angle + draws.sign() * bend
    return _two_segments(draws, shoulder, (arm_angle, fore_angle), lengths, math.radians(65.0))


def _leg(
    draws: Draws, hip: tuple[float, float], down: float, outward: float, lengths: tuple[float, float]
) -> tuple[tuple[float, float], tuple[float, float]]:
    """Knee and ankle of one leg; ``outward`` as for :func:`_arm`."""
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
    return _two_segments(draws, hip, (leg_angle, shin_angle), lengths, math.radians(55.0))


def sample_body(draws: Draws, torso_px: float, rotation_std_deg: float, acrobatic_prob: float) -> Body:
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
    ux, uy = direction(torso_angle)
    thorax = (ux * torso_len, uy * torso_len)
    joints[PELVIS] = (0.0, 0.0)
    joints[THORAX] = thorax
    neck_angle = torso_angle + draws.normal(math.radians(12.0))
    nx, ny = direction(neck_angle)
    upper_neck = (thorax[0] + nx * neck_len, thorax[1] + ny * neck_len)
    joints[UPPER_NECK] = upper_neck
    head_angle = neck_angle + draws.normal(math.radians(15.0))
    hx, hy = direction(head_angle)
    joints[HEAD_TOP] = (upper_neck[0] + hx * head_len, upper_neck[1] + hy * head_len)

    # The person's left side lies toward screen +lateral when facing the camera (cos yaw > 0).
    lx, ly = direction(torso_angle + math.pi / 2.0)
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

        joints[elbow], joints[wrist] = _arm(draws, s, down, outward, (upper_arm, forearm))
        joints[knee], joints[ankle] = _leg(draws, h, down, outward, (thigh, shin))

    return Body(
        joints=np.array(joints, dtype=np.float64),
        torso=t,
        yaw=yaw,
        widths=draws.u(0.85, 1.2),
        near_left=math.sin(yaw) < 0.0,
        arms_behind=(draws.p(0.2), draws.p(0.2)),
    )


def moved(body: Body, offset: tuple[float, float]) -> Body:
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
    rng: np.random.Generator,
    image_size: int,
    config: SyntheticConfig = DEFAULT_CONFIG,
    anchor: tuple[float, float] | None = None,
) -> SyntheticLayout:
    """Pose, placement, occluders and visibility of one sample (no pixels).

    Args:
        rng: the sample's layout Generator (see :func:`sample_rng`).
        image_size: side of the square image, px.
        config: difficulty knobs.
        anchor: the point (px) the person's box centre is placed around (within 10% of the
            image side); None for the image centre. A crowd spreads its persons with it.
    """
    draws = Draws(rng)
    size = float(image_size)
    height = size * draws.u(*config.person_height)
    torso_px = height / STANDING_HEIGHT
    body = sample_body(draws, torso_px, config.rotation_std_deg, config.acrobatic_prob)

    lo, hi = body.joints.min(axis=0), body.joints.max(axis=0)
    box_center = (lo + hi) / 2.0
    ax, ay = (size / 2.0, size / 2.0) if anchor is None else anchor
    target = np.array([ax + draws.u(-0.1, 0.1) * size, ay + draws.u(-0.1, 0.1) * size])
    if draws.p(config.truncation_prob):
        angle = draws.u(-math.pi, math.pi)
        shift = draws.u(0.25, 0.5) * height
        target = target + shift * np.array(direction(angle))
    offset = target - box_center
    body = moved(body, (float(offset[0]), float(offset[1])))
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
