"""Synthetic pixels: a layout drawn as a textured, cluttered, noisy photo.

:func:`render_layout` paints a background from texture tiles, clutter, distractor limbs and
sometimes a second person behind the subject, then the subject as shaded tapered limbs, the
occluders on top, and sensor noise and blur. Only exact operations touch pixels (integer numpy,
and OpenCV's bit-exact uint8 drawing, resize, saturating add and Gaussian blur), so an image does
not depend on the machine's SIMD flavour.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import cv2
import numpy as np

from fpdctl.data.synthetic.pose import (
    DEFAULT_CONFIG,
    FOREARM_LENGTH,
    FOREARM_WIDTH,
    HEAD_TOP,
    HEAD_WIDTH_RATIO,
    L_ANKLE,
    L_ELBOW,
    L_HIP,
    L_KNEE,
    L_SHOULDER,
    L_WRIST,
    NECK_WIDTH,
    PELVIS,
    R_ANKLE,
    R_ELBOW,
    R_HIP,
    R_KNEE,
    R_SHOULDER,
    R_WRIST,
    SHIN_LENGTH,
    SHIN_WIDTH,
    STANDING_HEIGHT,
    THIGH_LENGTH,
    THIGH_WIDTH,
    THORAX,
    UPPER_ARM_LENGTH,
    UPPER_ARM_WIDTH,
    UPPER_NECK,
    Body,
    Draws,
    Occluder,
    SyntheticConfig,
    SyntheticLayout,
    direction,
    moved,
    sample_body,
)
from fpdctl.data.synthetic.texture import background_tiles

# Drawing uses 4 fractional bits so small figures keep sub-pixel geometry.
_SHIFT = 4
_ONE = float(1 << _SHIFT)

# Left is slightly warm, right slightly cool: a weak cue, like clothing in real photos.
SIDE_TINT = 0.07

_SKIN_TONES_BGR = (
    (189, 224, 255),
    (160, 200, 240),
    (125, 170, 225),
    (100, 145, 200),
    (80, 120, 175),
    (60, 90, 140),
    (45, 65, 105),
    (140, 180, 230),
)


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


def _random_color(draws: Draws) -> tuple[int, int, int]:
    v = draws.block(3)
    return int(v[0] * 256.0), int(v[1] * 256.0), int(v[2] * 256.0)


@dataclass(frozen=True)
class _LimbShapes:
    """Fixed-point drawing geometry of K tapered limbs (see :func:`_limb_shapes`)."""

    outer: np.ndarray  # int32 [K, 4, 2]
    inner: np.ndarray  # int32 [K, 4, 2], the lit core
    caps: list  # K proximal cap centres, fixed point
    radii: list  # K proximal cap radii, fixed point


def _limb_shapes(p: np.ndarray, q: np.ndarray, widths: np.ndarray, light: tuple[float, float]) -> _LimbShapes:
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
        [
            core_p + n * (0.6 * half_p),
            core_q + n * (0.6 * half_q),
            core_q - n * (0.6 * half_q),
            core_p - n * (0.6 * half_p),
        ],
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
    (R_SHOULDER, R_ELBOW, UPPER_ARM_WIDTH),
    (R_ELBOW, R_WRIST, FOREARM_WIDTH),
    (L_SHOULDER, L_ELBOW, UPPER_ARM_WIDTH),
    (L_ELBOW, L_WRIST, FOREARM_WIDTH),
    (R_HIP, R_KNEE, THIGH_WIDTH),
    (R_KNEE, R_ANKLE, SHIN_WIDTH),
    (L_HIP, L_KNEE, THIGH_WIDTH),
    (L_KNEE, L_ANKLE, SHIN_WIDTH),
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


def _sample_outfit(draws: Draws) -> _Outfit:
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


def _draw_torso(
    image: np.ndarray, body: Body, shirt: tuple[int, int, int], light: tuple[float, float], t: float
) -> None:
    """Draw the torso in place: a convex hexagon around the pelvis-thorax axis.

    It is wide at the shoulders and narrower at the waist; its width follows the yaw but keeps a
    side-view depth. ``t`` is the width unit (torso length x the person's width factor), px.
    """
    j = body.joints
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
        [
            (hx + nx * top, hy + ny * top),
            (mx + nx * waist, my + ny * waist),
            (bx + nx * bottom, by + ny * bottom),
            (bx - nx * bottom, by - ny * bottom),
            (mx - nx * waist, my - ny * waist),
            (hx - nx * top, hy - ny * top),
        ]
    )
    cv2.fillConvexPoly(image, _fixed(hexagon), _scaled(shirt, 0.75), cv2.LINE_8, _SHIFT)
    lit = 0.25 * top * (nx * light[0] + ny * light[1])
    core = (hexagon - (mx, my)) * 0.7 + (mx + nx * lit, my + ny * lit)
    cv2.fillConvexPoly(image, _fixed(core), shirt, cv2.LINE_8, _SHIFT)


def _draw_head(image: np.ndarray, body: Body, outfit: _Outfit) -> None:
    """Draw the head in place: an ellipse of hair, and the face unless seen from behind.

    The face turns toward where the person looks.
    """
    j = body.joints
    (nkx, nky), (htx, hty) = j[UPPER_NECK], j[HEAD_TOP]
    vx, vy = htx - nkx, hty - nky
    head_len = math.hypot(vx, vy) or 1.0
    cx, cy = nkx + 0.5 * vx, nky + 0.5 * vy
    angle = math.degrees(math.atan2(vy, vx))
    half_width = 0.5 * HEAD_WIDTH_RATIO * head_len
    cv2.ellipse(
        image,
        _pt(cx, cy),
        (int(0.5 * head_len * _ONE), int(half_width * _ONE)),
        angle,
        0.0,
        360.0,
        outfit.hair,
        -1,
        cv2.LINE_8,
        _SHIFT,
    )
    facing_signed = math.cos(body.yaw)
    if facing_signed > -0.25:
        across = 0.28 * half_width * math.sin(body.yaw)
        fx = cx - 0.08 * vx - vy / head_len * across
        fy = cy - 0.08 * vy + vx / head_len * across
        face_width = (0.25 + 0.13 * max(0.0, facing_signed)) * head_len
        face_axes = (int(0.36 * head_len * _ONE), int(face_width * _ONE))
        cv2.ellipse(image, _pt(fx, fy), face_axes, angle, 0.0, 360.0, outfit.skin, -1, cv2.LINE_8, _SHIFT)


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
            image,
            _pt(ax + forward * 0.18 * t, ay + 0.05 * t),
            axes,
            0.0,
            0.0,
            360.0,
            _scaled(cloth, 0.5),
            -1,
            cv2.LINE_8,
            _SHIFT,
        )

    if behind[far]:
        arm(far)
    leg(far)
    leg(near)

    _draw_torso(image, body, outfit.shirt, light, t)
    _draw_limb(image, shapes, _NECK_LIMB, outfit.skin)
    _draw_head(image, body, outfit)

    if not behind[far]:
        arm(far)
    arm(near)


def _draw_clutter(image: np.ndarray, draws: Draws, count: int) -> None:
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
    draws: Draws,
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
        outfit.shirt,
        outfit.trousers,
        outfit.skin,
        _tinted(outfit.shirt, 1.0),
        _tinted(outfit.trousers, -1.0),
    )
    starts, ends, widths, colors, two = [], [], [], [], []
    for _ in range(count):
        pick, leg_like, x, y, a, l1, bend, l2, second = draws.block(9)
        w = THIGH_WIDTH if leg_like < 0.4 else UPPER_ARM_WIDTH
        lengths = (THIGH_LENGTH, SHIN_LENGTH) if leg_like < 0.4 else (UPPER_ARM_LENGTH, FOREARM_LENGTH)
        angle = (2.0 * a - 1.0) * math.pi
        start = (x * size, y * size)
        seg = lengths[0] * torso * (0.6 + 0.4 * l1)
        dx, dy = direction(angle)
        mid = (start[0] + dx * seg, start[1] + dy * seg)
        angle += (2.0 * bend - 1.0) * math.radians(130.0)
        seg = lengths[1] * torso * (0.6 + 0.4 * l2)
        dx, dy = direction(angle)
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


def _draw_occluder(image: np.ndarray, occluder: Occluder, draws: Draws) -> None:
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
    return render_scene((layout,), rng, config)


# A fixed outfit for :func:`body_mask`: every colour it draws (shaded, tinted) stays above 0.
_MASK_OUTFIT = _Outfit(
    skin=(200, 200, 200),
    hair=(200, 200, 200),
    shirt=(200, 200, 200),
    trousers=(200, 200, 200),
    long_sleeves=True,
    long_trousers=True,
)


def body_mask(body: Body, image_size: int) -> np.ndarray:
    """The pixels :func:`draw_body` covers with ``body`` (bool [S, S]): the same drawing calls on
    a black image, so the mask is exactly the figure the renderer paints (colours do not change
    the shapes)."""
    canvas = np.zeros((image_size, image_size, 3), np.uint8)
    draw_body(canvas, body, _MASK_OUTFIT, (1.0, 0.0))
    return canvas.any(axis=2)


def render_scene(
    layouts: tuple[SyntheticLayout, ...], rng: np.random.Generator, config: SyntheticConfig = DEFAULT_CONFIG
) -> np.ndarray:
    """Draw a scene of one or more persons: background as for one, then the persons in order
    (a later one over the earlier ones), then every person's occluders over them all.

    With one layout this is :func:`render_layout`, draw for draw. The first person's outfit is
    drawn where a lone person's is; the others' after the distractor limbs.

    Args:
        layouts: the persons (same image size), back to front.
        rng: the scene Generator of the image.
        config: difficulty knobs.

    Returns:
        uint8 [S, S, 3] BGR image.
    """
    layout = layouts[0]
    draws = Draws(rng)
    size = layout.image_size
    textures, noises = background_tiles(size)
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
        draw_body(image, moved(other, shift), _sample_outfit(draws), light)
    _draw_distractors(image, draws, draws.i(0, config.max_distractor_limbs), torso, outfit, light)

    outfits = [outfit] + [_sample_outfit(draws) for _ in layouts[1:]]
    for person, clothes in zip(layouts, outfits):
        draw_body(image, person.body, clothes, light)
    for person in layouts:
        for occluder in person.occluders:
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
