"""The drawing of the synthetic faces (:mod:`benchmarks.synthetic_faces`): what a person is, what one photograph
of them adds, and the rendering of both into a gray 144x144 image.

Everything is numpy + OpenCV, seeded explicitly from ``(seed, identity[, image])``: the same parameters give the
same pixels on the same machine. A change here changes the demo's dataset: bump
``synthetic_faces.GENERATOR_VERSION`` with it.
"""
from __future__ import annotations

import math

import cv2
import numpy as np

from lightcnn.images import STORED_SIZE

IMAGE_SIZE = STORED_SIZE
_SS = 2  # faces are drawn at twice the size and filtered down: smooth edges without per-shape anti-aliasing
_SHIFT = 4  # sub-pixel precision of cv2's drawing (coordinates in 1/16 pixel)
_CENTER = (72.0, 76.0)  # head centre in the 144x144 frame; the 128x128 centre crop keeps the whole face


# ----------------------------------------------------------------------------------------------------------------
# Parameters: what a person is, and what one photograph of them adds

def _rng(*key):
    return np.random.default_rng([int(k) for k in key])


def identity_params(seed, index):
    """The face of identity ``index``: a dict of geometry (pixels in the 144 frame, head-centred) and tones."""
    r = _rng(seed, index, 0)
    u = r.uniform
    p = {
        "head_w": u(35, 47), "head_top": u(50, 60), "head_bottom": u(50, 62), "jaw": u(2.0, 3.6),
        "skin": u(95, 205),
        "ear_h": u(9, 15), "ear_w": u(4, 8), "ear_y": u(-8, 6),
        "hair_tone": u(10, 230), "hair_volume": u(1, 11), "hairline": u(-48, -28), "hair_curve": u(-8, 12),
        "hair_part": u(-10, 10), "bald": r.random() < 0.08,
        "eye_dx": u(12, 21), "eye_y": u(-18, -4), "eye_w": u(5.5, 10), "eye_h": u(2.6, 5.2), "eye_tilt": u(-9, 9),
        "iris": u(8, 110), "iris_r": u(2.2, 3.8),
        "brow_gap": u(5, 13), "brow_len": u(9, 18), "brow_thick": u(1.5, 5), "brow_angle": u(-16, 16),
        "brow_arch": u(-1, 5), "brow_tone": u(0.15, 0.75),
        "nose_len": u(14, 27), "nose_w": u(4, 11), "nostril": u(1.2, 3.2), "nose_shade": u(0.05, 0.3),
        "mouth_gap": u(7, 17), "mouth_w": u(9, 19), "lip": u(1.5, 5), "lip_tone": u(0.55, 0.9),
        "texture_amp": u(0.03, 0.12), "rim": u(0.1, 0.4),
        "moles": [(u(-30, 30), u(-30, 40), u(0.8, 2.4)) for _ in range(int(r.integers(0, 4)))],
        "beard": (u(0.3, 0.8), u(-4, 10)) if r.random() < 0.22 else None,
        "moustache": u(1.5, 4) if r.random() < 0.22 else None,
        "glasses": (u(1.2, 2.6), u(1.2, 1.8), u(0, 90)) if r.random() < 0.15 else None,
        # a fixed low-frequency skin pattern, part of the identity (like freckles or blotches)
        "texture": r.standard_normal((6, 6)).astype(np.float32),
    }
    return p


def image_params(seed, index, image, difficulty=1.0):
    """The nuisance of one photograph: pose, expression, light, background, blur, noise."""
    r = _rng(seed, index, image + 1, 1)
    d = float(difficulty)

    def sym(a):
        return r.uniform(-a, a) * d

    eye_open = 1.0
    if r.random() < min(0.18 * d, 0.9):
        eye_open = r.uniform(0.0, 0.6)
    return {
        "roll": sym(8), "tx": sym(4), "ty": sym(4), "scale": 1 + sym(0.06),
        "yaw": sym(4), "pitch": sym(2),
        "mouth_open": max(0.0, r.uniform(-0.6, 1.0)) * 5 * d, "smile": sym(0.7), "brow_raise": r.uniform(0, 3) * d,
        "eye_open": eye_open,
        "light_angle": r.uniform(0, 2 * math.pi), "light": r.uniform(0, 0.5) * d,
        "ambient": 1 + sym(0.25), "gamma": math.exp(sym(0.35)), "contrast": 1 + sym(0.2),
        "bg": 128 + sym(85), "bg_texture": r.uniform(3, 32) * d + 3,
        "bg_field": r.standard_normal((5, 5)).astype(np.float32),
        "blur": r.uniform(0, 1.1) * d, "noise": r.uniform(1, 6.3) * d + 1,
        "noise_seed": int(r.integers(0, 2 ** 31)),
    }


# ----------------------------------------------------------------------------------------------------------------
# Drawing

def _fix(points):
    """Head-centred 144-frame points -> cv2's fixed-point integer coordinates on the supersampled canvas."""
    pts = np.asarray(points, np.float64).reshape(-1, 2) + _CENTER
    return np.round(pts * _SS * (1 << _SHIFT)).astype(np.int32)


def _ellipse(cx, cy, ax, ay, angle=0.0, start=0.0, end=360.0, n=40):
    t = np.deg2rad(np.linspace(start, end, n))
    x, y = ax * np.cos(t), ay * np.sin(t)
    a = math.radians(angle)
    return np.stack([cx + math.cos(a) * x - math.sin(a) * y, cy + math.sin(a) * x + math.cos(a) * y], 1)


def _fill(img, points, tone):
    cv2.fillPoly(img, [_fix(points)], float(tone), lineType=cv2.LINE_8, shift=_SHIFT)


def _stroke(img, points, tone, thickness, closed=False):
    cv2.polylines(img, [_fix(points)], closed, float(tone), thickness=max(1, int(round(thickness * _SS))),
                  lineType=cv2.LINE_8, shift=_SHIFT)


def _head_outline(p, n=72):
    """Upper half an ellipse, lower half a superellipse: exponent 2 is round, larger gives a square jaw."""
    t = np.linspace(0, 2 * math.pi, n, endpoint=False)
    c, s = np.cos(t), np.sin(t)
    e = 2.0 / p["jaw"]
    lower = s > 0
    x = np.where(lower, np.sign(c) * np.abs(c) ** e, c) * p["head_w"]
    y = np.where(lower, np.abs(s) ** e * p["head_bottom"], s * p["head_top"])
    return np.stack([x, y], 1)


def _grid(size, step=1.0):
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32)
    return xx * step, yy * step


_GRID_SS = _grid(IMAGE_SIZE * _SS, 1.0 / _SS)  # supersampled canvas, in 144-frame pixels
_GRID = _grid(IMAGE_SIZE)


def _shading(p):
    """The identity's fixed skin pattern times a rim darkening towards the head outline (computed once)."""
    if "_shading" not in p:
        size = IMAGE_SIZE * _SS
        tex = cv2.resize(p["texture"], (size, size), interpolation=cv2.INTER_CUBIC)
        xx, yy = _GRID_SS
        rx = (xx - _CENTER[0]) / p["head_w"]
        ry = (yy - _CENTER[1]) / np.where(yy < _CENTER[1], p["head_top"], p["head_bottom"])
        rim = 1 - p["rim"] * np.clip(rx * rx + ry * ry, 0, 1) ** 2
        p["_shading"] = ((1 + p["texture_amp"] * tex) * rim).astype(np.float32)
    return p["_shading"]


def _mix(a, b, w):
    return a * (1 - w) + b * w


def _draw_face(p, v):
    """The face on a supersampled canvas: (tones float32, coverage mask float32), head-centred, upright."""
    size = IMAGE_SIZE * _SS
    face = np.zeros((size, size), np.float32)
    mask = np.zeros((size, size), np.float32)
    skin, hair = p["skin"], p["hair_tone"]
    dx, dy = v["yaw"], v["pitch"]  # the inner features move against the outline, as when the head turns
    head = _draw_head(face, mask, p, dx, dy)

    # beard before the mouth, so the lips stay on top
    cy_mouth = p["eye_y"] + p["nose_len"] + p["mouth_gap"] + dy
    if p["beard"] is not None:
        strength, top = p["beard"]
        outline = head[head[:, 1] > cy_mouth - 6 + top * 0.3]
        _fill(face, outline, _mix(skin, hair * 0.6, strength))

    # skin texture and a darker rim (the head is round): multiplicative, before the small features
    face *= _shading(p)

    _draw_eyes(face, p, v, dx, dy)
    _draw_nose(face, p, dx, dy)
    _draw_mouth(face, p, v, dx, cy_mouth)
    for mx0, my0, radius in p["moles"]:
        _fill(face, _ellipse(mx0 + dx, my0 + dy, radius, radius, n=12), skin * 0.45)
    return face, mask


def _draw_head(face, mask, p, dx, dy):
    """Hair volume and ears behind the head, the head, hair over the forehead. Returns the head outline."""
    skin, hair = p["skin"], p["hair_tone"]
    # behind the head: hair volume, ears
    if not p["bald"]:
        back = _ellipse(0, -4, p["head_w"] + p["hair_volume"], p["head_top"] + p["hair_volume"], start=180, end=360)
        back = np.vstack([back, [[p["head_w"] + p["hair_volume"], 8], [-p["head_w"] - p["hair_volume"], 8]]])
        _fill(face, back, hair)
        _fill(mask, back, 1)
    for side in (-1, 1):
        ear = _ellipse(side * (p["head_w"] - 1) - 0.6 * dx, p["ear_y"] + dy, p["ear_w"], p["ear_h"])
        _fill(face, ear, skin * 0.85)
        _fill(mask, ear, 1)
    head = _head_outline(p)
    _fill(face, head, skin)
    _fill(mask, head, 1)

    # hair over the forehead: the top of the head above a curved, possibly parted hairline
    if not p["bald"]:
        w = p["head_w"] + p["hair_volume"]
        xs = np.linspace(-w, w, 25)
        hairline = p["hairline"] + dy + p["hair_curve"] * (xs / w) ** 2 + p["hair_part"] * (xs / w)
        top = _ellipse(0, 0, w, p["head_top"] + p["hair_volume"], start=360, end=180, n=30)
        _fill(face, np.vstack([np.stack([xs, hairline], 1), top]), hair)
    return head


def _draw_eyes(face, p, v, dx, dy):
    """Eyes: sclera, iris and pupil, lid line (closing squeezes the opening); brows; glasses."""
    skin, hair = p["skin"], p["hair_tone"]
    eye_y = p["eye_y"] + dy
    for side in (-1, 1):
        ex = side * p["eye_dx"] + dx
        tilt = side * p["eye_tilt"]
        opening = p["eye_h"] * v["eye_open"]
        if opening > 0.8:
            _fill(face, _ellipse(ex, eye_y, p["eye_w"], opening, tilt), min(255, skin + 45))
            r_iris = min(p["iris_r"], opening)
            _fill(face, _ellipse(ex + 0.3 * dx, eye_y, r_iris, r_iris), p["iris"])
            _fill(face, _ellipse(ex + 0.3 * dx, eye_y, 0.45 * r_iris, 0.45 * r_iris), p["iris"] * 0.3)
        lid = _ellipse(ex, eye_y, p["eye_w"], max(opening, 0.3), tilt, start=180, end=360, n=16)
        _stroke(face, lid, skin * 0.35, 1.0)
        # brow: an arched stroke, raised by expression
        by = eye_y - p["brow_gap"] - v["brow_raise"]
        bx = np.linspace(-p["brow_len"] / 2, p["brow_len"] / 2, 9)
        a = math.radians(side * p["brow_angle"])
        bys = by - p["brow_arch"] * (1 - (2 * bx / p["brow_len"]) ** 2) + math.tan(a) * bx
        _stroke(face, np.stack([ex + bx, bys], 1), _mix(skin, hair, 1 - p["brow_tone"]) * 0.8, p["brow_thick"])
        if p["glasses"] is not None:
            rim_w, aspect, _ = p["glasses"]
            _stroke(face, _ellipse(ex, eye_y, p["eye_w"] + 4, (p["eye_w"] + 4) / aspect, n=30), 25, rim_w, True)
    if p["glasses"] is not None:
        inner = p["eye_dx"] - p["eye_w"] - 4
        _stroke(face, [[-inner + dx, eye_y - 1], [inner + dx, eye_y - 1]], 25, p["glasses"][0])


def _draw_nose(face, p, dx, dy):
    """A shaded side of the bridge, the tip and two nostrils."""
    skin = p["skin"]
    eye_y = p["eye_y"] + dy
    tip_y = eye_y + p["nose_len"]
    nx = 1.6 * dx
    shade = skin * (1 - p["nose_shade"])
    _stroke(face, [[nx + 0.4 * p["nose_w"], eye_y + 3], [nx + 0.7 * p["nose_w"], tip_y - 2]], shade, 1.5)
    _fill(face, _ellipse(nx, tip_y - 1, p["nose_w"] * 0.6, 3.5), skin * (1 - 0.5 * p["nose_shade"]))
    for side in (-1, 1):
        _fill(face, _ellipse(nx + side * p["nose_w"] * 0.55, tip_y + 1, p["nostril"], p["nostril"] * 0.6), skin * 0.4)


def _draw_mouth(face, p, v, dx, cy_mouth):
    """Lips around an opening that expression widens; corners up for a smile, down for a frown; a moustache."""
    skin, hair = p["skin"], p["hair_tone"]
    mw, lip, opening = p["mouth_w"], p["lip"], v["mouth_open"]
    mx_ = 1.3 * dx
    corner = -v["smile"] * 4
    xs = np.linspace(-1, 1, 15)
    bend = corner * xs ** 2
    upper_out = np.stack([mx_ + mw * xs, cy_mouth + bend - opening / 2 - lip * (1 - 0.5 * xs ** 2)], 1)
    lower_out = np.stack([mx_ + mw * xs, cy_mouth + bend + opening / 2 + 1.2 * lip * (1 - xs ** 2)], 1)
    _fill(face, np.vstack([upper_out, lower_out[::-1]]), skin * p["lip_tone"])
    if opening > 0.8:
        inner_up = np.stack([mx_ + 0.85 * mw * xs, cy_mouth + bend - opening / 2 * (1 - xs ** 2)], 1)
        inner_lo = np.stack([mx_ + 0.85 * mw * xs, cy_mouth + bend + opening / 2 * (1 - xs ** 2)], 1)
        _fill(face, np.vstack([inner_up, inner_lo[::-1]]), 20)
    else:
        _stroke(face, np.stack([mx_ + mw * xs, cy_mouth + bend], 1), skin * p["lip_tone"] * 0.55, 1.0)
    if p["moustache"] is not None:
        _stroke(face, np.stack([mx_ + 1.05 * mw * xs, cy_mouth + 0.6 * bend - lip - 3 - 0.8 * (1 - xs ** 2)], 1),
                hair * 0.7, p["moustache"])


def _smooth_field(coarse, size):
    return cv2.resize(coarse, (size, size), interpolation=cv2.INTER_CUBIC)


def render(p, v):
    """One 144x144 uint8 gray photograph of face ``p`` under nuisance ``v``."""
    face, mask = _draw_face(p, v)
    # supersampled -> final frame in one affine warp (roll, scale, translation), after a low-pass against aliasing
    face = cv2.GaussianBlur(face, (0, 0), 0.5 * _SS)
    mask = cv2.GaussianBlur(mask, (0, 0), 0.5 * _SS)
    center = (_CENTER[0] * _SS, _CENTER[1] * _SS)
    m = cv2.getRotationMatrix2D(center, v["roll"], v["scale"] / _SS)
    m[0, 2] += _CENTER[0] + v["tx"] - center[0]
    m[1, 2] += _CENTER[1] + v["ty"] - center[1]
    size = (IMAGE_SIZE, IMAGE_SIZE)
    face = cv2.warpAffine(face, m, size, flags=cv2.INTER_AREA, borderValue=0)
    mask = cv2.warpAffine(mask, m, size, flags=cv2.INTER_AREA, borderValue=0)

    bg = v["bg"] + v["bg_texture"] * _smooth_field(v["bg_field"], IMAGE_SIZE)
    img = mask * face + (1 - mask) * bg

    # light: ambient level times a linear gradient across the frame, then contrast and gamma
    xx, yy = _GRID
    along = ((xx - 72) * math.cos(v["light_angle"]) + (yy - 72) * math.sin(v["light_angle"])) / 72
    img = img * v["ambient"] * np.clip(1 + v["light"] * along, 0.15, None)
    img = (img - 128) * v["contrast"] + 128
    img = 255 * (np.clip(img, 0, 255) / 255) ** v["gamma"]
    if v["blur"] > 0.15:
        img = cv2.GaussianBlur(img, (0, 0), v["blur"])
    img = img + np.random.default_rng(v["noise_seed"]).standard_normal(img.shape).astype(np.float32) * v["noise"]
    return np.clip(np.round(img), 0, 255).astype(np.uint8)
