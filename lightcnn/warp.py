"""The LightCNN template's geometry: five landmarks -> a similarity transform -> the warped face.

The template (:class:`lightcnn.images.Template`, the authors' ``face_db_align.m``): rotate so the two eyes are
level, scale so the vertical distance from the eyes' midpoint to the mouth corners' midpoint is 48 px, put the eyes'
midpoint at column 72 and row 48 of a 144x144 gray image, bicubic, black outside the photo. Those are four
conditions on the four parameters of a similarity transform (rotation, uniform scale, two shifts), so the transform
is their exact (zero-residual least-squares) solution; like the authors' code it does not use the nose. The 128x128
test crop (eyes at row 40) is the centre crop of that image. Nothing here needs MediaPipe.
"""
import math

import cv2
import numpy as np

from lightcnn.images import TEMPLATE


def template_transform(landmarks, template=TEMPLATE):
    """The similarity transform that puts five landmarks on the template.

    Parameters
    ----------
    landmarks : array_like, shape (5, 2)
        Pixel coordinates in the order of ``lightcnn.align.LANDMARK_NAMES`` (the subject's right eye
        first).
    template : Template

    Returns
    -------
    numpy.ndarray, shape (2, 3)
        ``M`` with ``aligned = M @ [x, y, 1]``, for ``cv2.warpAffine``.

    Raises
    ------
    ValueError
        When the mouth is not below the eyes once they are level (landmarks that cannot be a face).
    """
    p = np.asarray(landmarks, dtype=np.float64).reshape(5, 2)
    eyes = (p[0] + p[1]) / 2.0
    mouth = (p[3] + p[4]) / 2.0
    dx, dy = p[1] - p[0]  # the subject's right eye -> left eye: +x once upright
    angle = math.atan2(dy, dx)
    c, s = math.cos(-angle), math.sin(-angle)
    rotation = np.array([[c, -s], [s, c]])
    drop = (rotation @ (mouth - eyes))[1]  # eyes-to-mouth distance, vertical, after levelling the eyes
    if not drop > 0:
        raise ValueError("the mouth is not below the eyes")
    linear = (template.eye_mouth_y / drop) * rotation
    shift = np.asarray(template.eye_centre) - linear @ eyes
    return np.hstack([linear, shift[:, None]])


def warp_to_template(gray, matrix, template=TEMPLATE):
    """Warp a gray image with ``matrix`` (input pixels -> template pixels) into a ``template.size`` square.

    Bicubic, as the authors' ``imrotate``/``imresize``; pixels from outside the photo are black, as their crop's
    ``zeros``. When the face shrinks, the photo is first reduced by area averaging to the output scale (MATLAB's
    ``imresize`` also low-passes when it shrinks), so a large photo does not alias.
    """
    matrix = np.asarray(matrix, dtype=np.float64)
    scale = math.sqrt(abs(np.linalg.det(matrix[:, :2])))
    if scale < 1.0:
        h, w = gray.shape[:2]
        nw, nh = max(1, round(w * scale)), max(1, round(h * scale))
        fx, fy = nw / w, nh / h
        gray = cv2.resize(gray, (nw, nh), interpolation=cv2.INTER_AREA)
        # resized pixel p' holds source pixel (p' + 0.5) / f - 0.5: compose that with the matrix
        back = np.array([[1 / fx, 0, 0.5 / fx - 0.5], [0, 1 / fy, 0.5 / fy - 0.5], [0, 0, 1]])
        matrix = matrix @ back
    return cv2.warpAffine(gray, matrix, (template.size, template.size), flags=cv2.INTER_CUBIC,
                          borderMode=cv2.BORDER_CONSTANT, borderValue=0)


def outline_outside(outline, width, height):
    """Share of the area of the polygon ``outline`` ``(n, 2)`` that lies outside a ``width`` x ``height`` image.

    The polygon is clipped to the image's rectangle (Sutherland-Hodgman; a face outline is convex enough for the
    areas to be right) and the areas compared.
    """
    poly = [tuple(p) for p in np.asarray(outline, np.float64)]
    total = abs(_polygon_area(poly))
    if total <= 0:
        return 1.0
    lo_x, lo_y, hi_x, hi_y = -0.5, -0.5, width - 0.5, height - 0.5  # pixel edges, in pixel-index coordinates
    edges = [(0, lo_x, 1), (0, hi_x, -1), (1, lo_y, 1), (1, hi_y, -1)]  # keep side: sign * (coord - limit) >= 0
    for axis, limit, sign in edges:
        clipped = []
        for i, cur in enumerate(poly):
            prev = poly[i - 1]
            cur_in, prev_in = sign * (cur[axis] - limit) >= 0, sign * (prev[axis] - limit) >= 0
            if cur_in != prev_in:
                t = (limit - prev[axis]) / (cur[axis] - prev[axis])
                clipped.append((prev[0] + t * (cur[0] - prev[0]), prev[1] + t * (cur[1] - prev[1])))
            if cur_in:
                clipped.append(cur)
        poly = clipped
        if not poly:
            return 1.0
    return max(0.0, 1.0 - abs(_polygon_area(poly)) / total)


def _polygon_area(poly):
    return 0.5 * sum(x0 * y1 - x1 * y0 for (x0, y0), (x1, y1) in zip(poly, poly[1:] + poly[:1]))


def apply_transform(matrix, points):
    """Map ``(n, 2)`` points with a ``(2, 3)`` affine matrix."""
    points = np.asarray(points, dtype=np.float64).reshape(-1, 2)
    return points @ np.asarray(matrix)[:, :2].T + np.asarray(matrix)[:, 2]
