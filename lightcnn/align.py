"""Raw photos -> gray faces on the LightCNN template: detection, five landmarks, a similarity transform.

    python -m lightcnn.align --root PHOTOS --out ALIGNED [--min-size 40] [--max-outside 0.2] [--workers N]
        [--force]

``PHOTOS/<identity>/<image>`` becomes ``ALIGNED/<identity>/<image>``: the same relative path and format (JPEG
quality 95), gray 144x144, so image lists and LFW's ``pairs.txt`` resolve in the aligned tree as in the original.
``ALIGNED/summary.json`` (and the console) list every image that was not aligned with its reason (unreadable, no
face found, face too small, face cut off by the image border, no landmarks) and every aligned image with a note
(several faces: the largest was taken). Nothing is dropped silently; a non-empty output folder needs ``--force``.
The folder rules are the dataset builder's (:func:`lightcnn.prepare.scan_root`). The summary records the template,
so the extractor knows the tree is aligned and does not align it again.

The template (:class:`lightcnn.images.Template`, the authors' ``face_db_align.m``): rotate so the two eyes are
level, scale so the vertical distance from the eyes' midpoint to the mouth corners' midpoint is 48 px, put the eyes'
midpoint at column 72 and row 48 of a 144x144 gray image, bicubic, black outside the photo. Those are four
conditions on the four parameters of a similarity transform (rotation, uniform scale, two shifts), so the transform
is their exact (zero-residual least-squares) solution; like the authors' code it does not use the nose. The 128x128
test crop (eyes at row 40) is the centre crop of that image.

Faces and landmarks come from MediaPipe 0.10.14, whose wheel carries its models (nothing is downloaded at run
time). :meth:`Aligner.detect` finds the faces (two BlazeFace detectors, then a tiled search for small faces); the
largest is aligned. The five points come from the 468-point face mesh refined by its attention model, run on a
square crop around that face: the eye centres are the iris centres (points 468 and 473), the nose tip is point 1,
the mouth corners are points 61 and 291. Measured with ``python -m lightcnn.tools.bench_align``: the aligned face
moves by 0.4 px (median) between rotated/scaled/shifted views of the same photo with these points, 0.9 px with the
plain mesh, 3.2 px with the detector's own keypoints (which have a mouth centre, not corners).

MediaPipe is optional (``pip install --no-deps -r requirements-align.txt``) and only alignment uses it, imported
when an :class:`Aligner` is made; training and feature extraction of faces that need no alignment never import it.
A MediaPipe graph must not be shared between threads (measured: "Packet type mismatch"), but separate graphs run in
parallel threads (MediaPipe releases the GIL: 2 threads aligned 1.45x faster than one on 2 busy cores), so every
thread gets its own :class:`Aligner` (:class:`ThreadAligners`).
"""
from __future__ import annotations

import argparse
import concurrent.futures
import contextlib
import dataclasses
import math
import os
import sys
import threading
import time
import warnings

import numpy as np
import cv2

from lightcnn import cli, files, images
from lightcnn.images import LANDMARK_SOURCES, TEMPLATE, TEST_TEMPLATE, Template  # noqa: F401 (re-exported)
from lightcnn.optional import MissingDependencyError, require
from lightcnn.progress import Progress

INSTALL = "--no-deps -r requirements-align.txt (mediapipe 0.10.14, whose wheel carries the face models)"
SUMMARY_FILE = "summary.json"
# A landmark nearer the border than this share of the eye-to-mouth distance is on a face cut off by the border (the
# mesh then extrapolates it). Measured: 1 of 500 LFW crops is nearer (0.09); an eye cut through its centre is ~0.
LANDMARK_MARGIN = 0.1
# The face policy (which faces are aligned) and its flags, decided once for align, prepare, the extractor and verify.
POLICY_DEFAULTS = {"min_size": 40.0, "max_outside": 0.2, "pad": 0.25, "min_confidence": 0.5}
POLICY_FLAGS = (("--min-size", "faces narrower than this (detector box, in photo pixels) are not aligned"),
                ("--max-outside", "faces with more than this share of their outline outside the photo are 'cut off'"),
                ("--pad", "border added before detection, as a fraction of the longer side (tight crops)"),
                ("--min-confidence", "detector score threshold"))
LANDMARK_NAMES = ("right eye", "left eye", "nose tip", "right mouth corner", "left mouth corner")  # the subject's

# Face-mesh indices (MediaPipe's canonical 468-point mesh; the eye contours are its FACEMESH_RIGHT_EYE and
# FACEMESH_LEFT_EYE, "right" meaning the subject's right, on the image's left for an upright frontal face).
MESH_RIGHT_EYE = (33, 7, 163, 144, 145, 153, 154, 155, 133, 173, 157, 158, 159, 160, 161, 246)
MESH_LEFT_EYE = (263, 249, 390, 373, 374, 380, 381, 382, 362, 398, 384, 385, 386, 387, 388, 466)
MESH_NOSE_TIP = 1
MESH_MOUTH_CORNERS = (61, 291)  # the subject's right, left
MESH_IRIS_CENTRES = (468, 473)  # right, left; only with the attention model (refine_landmarks)
MESH_FACE_OVAL = (10, 338, 297, 332, 284, 251, 389, 356, 454, 323, 361, 288, 397, 365, 379, 378, 400, 377, 152,
                  148, 176, 149, 150, 136, 172, 58, 132, 93, 234, 127, 162, 21, 54, 103, 67, 109)


def template_transform(landmarks, template=TEMPLATE):
    """The similarity transform that puts five landmarks on the template.

    Parameters
    ----------
    landmarks : array_like, shape (5, 2)
        Pixel coordinates in the order of :data:`LANDMARK_NAMES` (the subject's right eye first).
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


# ----------------------------------------------------------------------------------------------------------------
# Detection and landmarks

@dataclasses.dataclass
class Face:
    """One detected face, in the pixel coordinates of the image given to :meth:`Aligner.detect`.

    ``box`` is ``(x0, y0, x1, y1)`` (may reach outside the image), ``keypoints`` the detector's six
    ``(x, y)`` (the subject's right eye, left eye, nose tip, mouth centre, right ear tragion, left ear tragion).
    """

    box: tuple
    score: float
    keypoints: np.ndarray

    @property
    def width(self):
        return self.box[2] - self.box[0]

    @property
    def height(self):
        return self.box[3] - self.box[1]


@dataclasses.dataclass
class AlignResult:
    """What :meth:`Aligner.align` made of one image.

    Attributes
    ----------
    image : numpy.ndarray or None
        The aligned gray ``(size, size)`` uint8 face, or None when the image was not aligned.
    reason : str or None
        Why the image was not aligned (None when it was).
    note : str or None
        Something the user should know about an aligned image (e.g. several faces: the largest was taken).
    landmarks : numpy.ndarray or None
        ``(5, 2)`` pixel coordinates in the input image, in the order of :data:`LANDMARK_NAMES`.
    matrix : numpy.ndarray or None
        ``(2, 3)`` input -> aligned transform.
    face : Face or None
        The detection that was aligned (or rejected).
    outside : float or None
        Share of the face outline's area that lies outside the image.
    outline : numpy.ndarray or None
        The face outline (the mesh's 36-point face oval; the detector box with ``landmarks="detector"``).
    num_faces : int
        Faces the detector found.
    colour : bool
        The file was a colour image (:func:`align_bytes`).
    """

    image: np.ndarray | None
    reason: str | None = None
    note: str | None = None
    landmarks: np.ndarray | None = None
    matrix: np.ndarray | None = None
    face: Face | None = None
    num_faces: int = 0
    outside: float | None = None
    outline: np.ndarray | None = None
    colour: bool = False

    @property
    def ok(self):
        return self.image is not None


def _mediapipe():
    """MediaPipe, or MissingDependencyError with the install line (also for a release without the bundled models)."""
    mediapipe = require("mediapipe", "face alignment", INSTALL)
    if not hasattr(mediapipe, "solutions"):
        raise MissingDependencyError(f"face alignment needs mediapipe 0.10.14 (mediapipe "
                                     f"{getattr(mediapipe, '__version__', '?')} does not carry the face models): "
                                     f"pip install {INSTALL}")
    # MediaPipe 0.10.14 calls a protobuf API that protobuf 4.25 marks deprecated, once per graph
    warnings.filterwarnings("ignore", message=r"SymbolDatabase\.GetPrototype\(\) is deprecated",
                            category=UserWarning)
    return mediapipe


def mediapipe_available():
    """True when MediaPipe can be imported (alignment can run)."""
    try:
        _mediapipe()
    except MissingDependencyError:
        return False
    return True


_STDERR_LOCK = threading.Lock()


@contextlib.contextmanager
def _quiet_stderr():
    """Silence file descriptor 2 while MediaPipe starts a graph: its C++ code prints a few lines of start-up
    warnings per graph ("Feedback manager requires a model with a single signature inference", "Created TensorFlow
    Lite XNNPACK delegate") that tell a user nothing. Other threads' stderr lines of those ~50 ms are lost too."""
    with _STDERR_LOCK:
        sys.stderr.flush()
        saved = os.dup(2)
        null = os.open(os.devnull, os.O_WRONLY)
        try:
            os.dup2(null, 2)
            yield
        finally:
            os.dup2(saved, 2)
            os.close(saved)
            os.close(null)


def _as_rgb_and_gray(image):
    image = np.asarray(image)
    if image.dtype != np.uint8:
        raise ValueError(f"expected a uint8 image, got {image.dtype}")
    if image.ndim == 2:
        return cv2.cvtColor(image, cv2.COLOR_GRAY2RGB), image
    if image.ndim == 3 and image.shape[2] == 1:
        return cv2.cvtColor(image[:, :, 0], cv2.COLOR_GRAY2RGB), image[:, :, 0]
    if image.ndim == 3 and image.shape[2] in (3, 4):
        bgr = image[:, :, :3]
        return cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB), cv2.cvtColor(bgr, cv2.COLOR_BGR2GRAY)
    raise ValueError(f"expected a gray (H, W) or BGR (H, W, 3) image, got shape {image.shape}")


class Aligner:
    """Finds the largest face of an image and warps it onto the LightCNN template.

    One instance holds MediaPipe graphs: use one per thread (:class:`ThreadAligners`).

    Parameters
    ----------
    template : Template
        Output geometry and landmark source (default: 144x144, the training template, iris landmarks).
    **policy
        The face policy below, by name (:data:`POLICY_DEFAULTS` for each one not given):
    min_size : float
        Faces whose detector box is narrower than this many pixels (of the input image) are "too small": the
        template holds a face box about 100 px wide, so a 40 px face is already enlarged 2.5 times.
    max_outside : float
        Faces with more than this share of their outline's area (the mesh's face oval) outside the image are "cut
        off by the border". Measured: at most 16% on 500 tight LFW crops, which are aligned; a face whose landmark
        lies within a tenth of the eye-to-mouth distance of the border (:data:`LANDMARK_MARGIN`) is cut off too.
    pad : float
        Border added on every side before the short-range detector runs, as a fraction of the longer side.
        Measured on 500 LFW crops: it found 499 without a border, 500 with 0.1 to 0.5.
    min_confidence : float
        Detector score threshold.

    ``template.landmarks`` says where the five points come from. "iris" (the default): the face mesh refined by its
    attention model, eye centres = iris centres (the pupils, where five-point annotations put the eye centres);
    "eye-contour": the same mesh, eye centres = mean of the 16 eye-contour points (as precise as "iris"); "mesh":
    the plain mesh, eye-contour centres (half as precise); "detector": the detector's keypoints, whose mouth centre
    stands for both mouth corners (7 times less precise; ``python -m lightcnn.tools.bench_align``).
    """

    def __init__(self, template=TEMPLATE, **policy):
        if not isinstance(template, Template):
            raise ValueError(f"template must be a lightcnn.images.Template, got {template!r}")
        policy = check_policy(**policy)
        self.template, self.min_size, self.max_outside = template, policy["min_size"], policy["max_outside"]
        self.pad, self.min_confidence = policy["pad"], policy["min_confidence"]
        landmarks = self.landmark_source = template.landmarks
        mp = _mediapipe()
        with _quiet_stderr():
            self._short = mp.solutions.face_detection.FaceDetection(
                model_selection=0, min_detection_confidence=self.min_confidence)
            self._full = mp.solutions.face_detection.FaceDetection(
                model_selection=1, min_detection_confidence=self.min_confidence)
            self._mesh = None
            if landmarks != "detector":
                self._mesh = mp.solutions.face_mesh.FaceMesh(
                    static_image_mode=True, max_num_faces=1, refine_landmarks=landmarks != "mesh",
                    min_detection_confidence=self.min_confidence)
            blank = np.zeros((64, 64, 3), np.uint8)
            for graph in (self._short, self._full, self._mesh):
                if graph is not None:
                    graph.process(blank)  # its first run prints the rest of the start-up warnings

    def close(self):
        """Release the MediaPipe graphs."""
        for graph in (self._short, self._full, self._mesh):
            if graph is not None:
                graph.close()
        self._short = self._full = self._mesh = None

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    # -- detection --------------------------------------------------------------------------------------------
    def detect(self, image):
        """All faces found in ``image`` (gray or BGR uint8), largest box first, in its pixel coordinates.

        Two detectors run on every image: the short-range one on the image padded by ``pad`` (close-ups and
        tight crops; it misses faces under about a third of the frame) and the full-range one on the image itself
        (faces down to about a fifth of the frame; it misses tight crops); a face both find counts once. When
        neither finds a face, the full-range detector searches overlapping tiles of a half and a quarter of the
        longer side, as long as a tile is at least three times ``min_size`` (small faces in large photos).
        Measured in ``python -m lightcnn.tools.bench_align``.
        """
        rgb, _ = _as_rgb_and_gray(image)
        return self._detect_rgb(rgb)

    def _detect_rgb(self, rgb):
        h, w = rgb.shape[:2]
        faces = self._run_detector(self._short, rgb, int(round(self.pad * max(h, w))))
        for extra in self._run_detector(self._full, rgb, 0):
            if all(_overlap(extra.box, face.box) <= 0.5 for face in faces):
                faces.append(extra)
        side = max(h, w) // 2
        while not faces and side >= 3 * self.min_size and side >= 32:
            faces = self._tile_pass(rgb, side)
            side //= 2
        faces.sort(key=lambda f: -f.width * f.height)
        return faces

    def _tile_pass(self, rgb, side):
        h, w = rgb.shape[:2]
        stride = side // 2  # 50% overlap: every face up to side/2 wide lies whole in some tile
        found = []
        for y in _tile_starts(h, side, stride):
            for x in _tile_starts(w, side, stride):
                tile = rgb[y:y + side, x:x + side]
                th, tw = tile.shape[:2]
                for face in self._run_detector(self._full, np.ascontiguousarray(tile), 0):
                    x0, y0, x1, y1 = face.box
                    # a face cut by a tile edge (not an image edge) is found whole in a neighbouring tile
                    if (x0 < 0 and x > 0) or (y0 < 0 and y > 0) or (x1 > tw - 1 and x + tw < w) or \
                            (y1 > th - 1 and y + th < h):
                        continue
                    found.append(Face((x0 + x, y0 + y, x1 + x, y1 + y), face.score,
                                      face.keypoints + np.array([x, y])))
        return _suppress_overlaps(found)

    def _run_detector(self, detector, rgb, border):
        padded = cv2.copyMakeBorder(rgb, border, border, border, border, cv2.BORDER_CONSTANT, value=(0, 0, 0)) \
            if border else rgb
        ph, pw = padded.shape[:2]
        result = detector.process(np.ascontiguousarray(padded))
        faces = []
        for det in result.detections or ():
            rel = det.location_data.relative_bounding_box
            # MediaPipe's normalised coordinates span the image's edges; -0.5 gives pixel indices
            x0, y0 = rel.xmin * pw - border - 0.5, rel.ymin * ph - border - 0.5
            box = (x0, y0, x0 + rel.width * pw, y0 + rel.height * ph)
            kps = np.array([[k.x * pw - border - 0.5, k.y * ph - border - 0.5]
                            for k in det.location_data.relative_keypoints])
            faces.append(Face(box, float(det.score[0]), kps))
        faces.sort(key=lambda f: -f.width * f.height)
        return faces

    # -- landmarks --------------------------------------------------------------------------------------------
    def landmarks(self, image, face):
        """The five points of ``face`` (a :meth:`detect` result of ``image``) or None when the mesh finds none.

        The mesh runs on a square crop twice the face box's side around it, so that a small face in a large
        photo is seen at full resolution and a neighbour's face is mostly outside the crop.
        """
        rgb, _ = _as_rgb_and_gray(image)
        return self._landmarks_rgb(rgb, face)[0]

    def _landmarks_rgb(self, rgb, face):
        """``(five points, face outline)`` of ``face``, or ``(None, None)``."""
        if self.landmark_source == "detector":
            k = face.keypoints
            x0, y0, x1, y1 = face.box
            return np.array([k[0], k[1], k[2], k[3], k[3]]), np.array([[x0, y0], [x1, y0], [x1, y1], [x0, y1]])
        crop, origin, step = _square_crop(rgb, face.box, 2.0, 512)
        result = self._mesh.process(crop)
        if not result.multi_face_landmarks:
            return None, None
        side = crop.shape[0]
        pts = np.array([[p.x, p.y] for p in result.multi_face_landmarks[0].landmark]) * side * step
        pts += np.asarray(origin) - 0.5  # crop pixels -> continuous image coordinates -> pixel indices
        # the mesh must describe the face we chose, not a neighbour that the crop also shows
        centre = pts[list(MESH_FACE_OVAL)].mean(axis=0)
        x0, y0, x1, y1 = face.box
        if not (x0 <= centre[0] <= x1 and y0 <= centre[1] <= y1):
            return None, None
        if self.landmark_source == "iris":
            right, left = pts[MESH_IRIS_CENTRES[0]], pts[MESH_IRIS_CENTRES[1]]
        else:
            right, left = pts[list(MESH_RIGHT_EYE)].mean(axis=0), pts[list(MESH_LEFT_EYE)].mean(axis=0)
        five = np.array([right, left, pts[MESH_NOSE_TIP], pts[MESH_MOUTH_CORNERS[0]], pts[MESH_MOUTH_CORNERS[1]]])
        return five, pts[list(MESH_FACE_OVAL)]

    # -- the whole thing --------------------------------------------------------------------------------------
    def align(self, image, gray=None):
        """Align the largest face of ``image``.

        Parameters
        ----------
        image : numpy.ndarray
            uint8 gray ``(H, W)`` or BGR ``(H, W, 3)`` (as OpenCV decodes it); colour is used for detection.
        gray : numpy.ndarray, optional
            The gray version to warp (default: ``image`` itself, or OpenCV's BGR -> gray of it). The command line
            passes :func:`lightcnn.images.decode_gray`'s, the project's one gray decoding rule.

        Returns
        -------
        AlignResult
            ``image`` is None and ``reason`` says why when the face could not be aligned.
        """
        rgb, own_gray = _as_rgb_and_gray(image)
        gray = own_gray if gray is None else np.asarray(gray)
        if gray.shape[:2] != rgb.shape[:2]:
            raise ValueError(f"gray image {gray.shape} and image {rgb.shape} differ in size")
        h, w = gray.shape[:2]
        faces = self._detect_rgb(rgb)
        if not faces:
            return AlignResult(None, "no face found")
        face = faces[0]
        note = f"{len(faces)} faces found; took the largest" if len(faces) > 1 else None
        result = AlignResult(None, None, note, face=face, num_faces=len(faces))
        if face.width < self.min_size:
            result.reason = f"face too small: {face.width:.0f} px wide < min-size {self.min_size:g}"
            return result
        points, outline = self._landmarks_rgb(rgb, face)
        if points is None:
            result.reason = "no landmarks found on the face"
            return result
        result.landmarks = points
        result.outline = outline
        # distance of each landmark to the nearest image edge (pixel edges lie at -0.5 and size - 0.5)
        margins = np.minimum(np.minimum(points[:, 0] + 0.5, w - 0.5 - points[:, 0]),
                             np.minimum(points[:, 1] + 0.5, h - 0.5 - points[:, 1]))
        eye_mouth = float(np.hypot(*((points[3] + points[4]) / 2 - (points[0] + points[1]) / 2)))
        if margins.min() < LANDMARK_MARGIN * eye_mouth:
            worst = int(np.argmin(margins))
            where = "outside the image" if margins[worst] < 0 else f"{margins[worst]:.0f} px from the edge"
            result.reason = f"face cut off by the image border (the {LANDMARK_NAMES[worst]} is {where})"
            return result
        try:
            result.matrix = template_transform(points, self.template)
        except ValueError as error:
            result.reason = f"implausible landmarks: {error}"
            return result
        result.outside = outline_outside(outline, w, h)
        if result.outside > self.max_outside:
            result.reason = (f"face cut off by the image border ({result.outside:.0%} of the face outline outside "
                             f"the image; max-outside {self.max_outside:.0%})")
            return result
        result.image = warp_to_template(gray, result.matrix, self.template)
        return result


def _tile_starts(length, side, stride):
    """Start offsets of tiles of ``side`` every ``stride`` covering ``length`` (the last one flush with the end)."""
    if length <= side:
        return [0]
    starts = list(range(0, length - side, stride))
    return starts + [length - side]


def _suppress_overlaps(faces, max_overlap=0.5):
    """Faces found twice (overlapping tiles): keep the higher score."""
    kept = []
    for face in sorted(faces, key=lambda f: -f.score):
        if all(_overlap(face.box, other.box) <= max_overlap for other in kept):
            kept.append(face)
    return kept


def _overlap(a, b):
    """Intersection of two boxes over the smaller one's area (a box inside another counts as the same face)."""
    ix = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    iy = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    smaller = min((a[2] - a[0]) * (a[3] - a[1]), (b[2] - b[0]) * (b[3] - b[1]))
    return ix * iy / smaller if smaller > 0 else 0.0


def _square_crop(rgb, box, factor, max_side):
    """A square crop of side ``factor`` x the box's longer side around its centre (black outside the image),
    reduced by area averaging to at most ``max_side``. Returns ``(crop, (x, y) of its top-left corner in
    continuous image coordinates, image pixels per crop pixel)``."""
    x0, y0, x1, y1 = box
    side = max(int(round(factor * max(x1 - x0, y1 - y0))), 8)
    # box corners are pixel indices; +0.5 makes them continuous before centring the crop
    left = int(round((x0 + x1) / 2 + 0.5 - side / 2))
    top = int(round((y0 + y1) / 2 + 0.5 - side / 2))
    h, w = rgb.shape[:2]
    crop = np.zeros((side, side, 3), np.uint8)
    sx0, sy0, sx1, sy1 = max(left, 0), max(top, 0), min(left + side, w), min(top + side, h)
    if sx1 > sx0 and sy1 > sy0:
        crop[sy0 - top:sy1 - top, sx0 - left:sx1 - left] = rgb[sy0:sy1, sx0:sx1]
    step = 1.0
    if side > max_side:
        step = side / max_side
        crop = cv2.resize(crop, (max_side, max_side), interpolation=cv2.INTER_AREA)
    return np.ascontiguousarray(crop), (left, top), step


# ----------------------------------------------------------------------------------------------------------------
# Files and folders

class AlignError(ValueError):
    """A problem with the input or the options; the command line prints it and exits with status 2."""


def check_policy(**policy):
    """The face policy: the given values over the defaults, as floats; AlignError naming the flag for an unknown
    name or a value that cannot be meant."""
    unknown = set(policy) - set(POLICY_DEFAULTS)
    if unknown:
        raise AlignError(f"unknown face-policy setting(s) {sorted(unknown)}; known: {sorted(POLICY_DEFAULTS)}")
    full = {name: float(policy.get(name, default)) for name, default in POLICY_DEFAULTS.items()}
    valid = {"min_size": full["min_size"] >= 0, "max_outside": 0 <= full["max_outside"] <= 1, "pad": full["pad"] >= 0,
             "min_confidence": 0 < full["min_confidence"] < 1}
    for (flag, _), name in zip(POLICY_FLAGS, POLICY_DEFAULTS):
        if not (valid[name] and math.isfinite(full[name])):  # inf passes ">= 0" (--min-size inf: no face at all)
            raise AlignError(f"{flag}: {full[name]!r} is out of range (finite, --min-size >= 0, 0 <= --max-outside "
                             f"<= 1, --pad >= 0, 0 < --min-confidence < 1)")
    return full


def align_bytes(aligner, data):
    """Encoded image bytes -> :class:`AlignResult` (``reason`` says so when the bytes do not decode).

    The gray image that is warped is :func:`lightcnn.images.decode_gray`'s (the dataset builder's rule); a colour
    image is decoded a second time in colour for the detector.
    """
    if not data:
        return AlignResult(None, "empty file (0 bytes)")
    gray, colour = images.decode_gray(data)
    if gray is None:
        return AlignResult(None, "cannot decode: corrupt, truncated or not a supported image")
    if images.too_small(gray):  # no face to find in a thumbnail, whatever the detector's --min-size
        return AlignResult(None, images.too_small(gray))
    image = gray
    if colour:
        image = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)
        if image is None or image.shape[:2] != gray.shape:
            image = gray
    result = aligner.align(image, gray=gray)
    result.colour = colour
    return result


def align_file(aligner, path):
    """An image file -> :class:`AlignResult`; a file that cannot be read or decoded gets its reason, never raises
    for the image's sake (one odd image must not stop the others)."""
    try:
        data = images.read_image_file(path)
    except FileNotFoundError:
        return AlignResult(None, "not found")
    except OSError as error:
        return AlignResult(None, f"cannot read: {error.strerror or error}")
    try:
        return align_bytes(aligner, data)
    except (ValueError, cv2.error) as error:
        return AlignResult(None, f"cannot align: {type(error).__name__}: {str(error).strip()}")


class ThreadAligners:
    """One :class:`Aligner` per thread, made on the thread's first image and closed together by :meth:`close`.

    A MediaPipe graph must not be shared between threads; separate graphs run in parallel (see the module doc).
    """

    def __init__(self, template=TEMPLATE, **policy):
        self.template, self.policy = template, check_policy(**policy)  # every setting, defaults included
        _mediapipe()  # the install line before any thread starts
        self._local = threading.local()
        self._made, self._lock = [], threading.Lock()

    def get(self):
        aligner = getattr(self._local, "aligner", None)
        if aligner is None:
            aligner = self._local.aligner = Aligner(self.template, **self.policy)
            with self._lock:
                self._made.append(aligner)
        return aligner

    def align_file(self, path):
        return align_file(self.get(), path)

    def close(self):
        with self._lock:
            for aligner in self._made:
                aligner.close()
            self._made.clear()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def aligned_tree_template(root):
    """The :class:`Template` a folder was aligned to by ``python -m lightcnn.align`` (its ``summary.json`` says),
    or None for any other folder. ``(template, not_aligned)``: the second maps relative paths to the reason they
    were not aligned (they are absent from the tree)."""
    path = os.path.join(os.fspath(root), SUMMARY_FILE)
    if not os.path.isfile(path):
        return None, {}
    try:
        summary = files.read_json(path)
    except (OSError, ValueError):
        return None, {}
    if not isinstance(summary, dict) or summary.get("tool") != "lightcnn.align" or "template" not in summary:
        return None, {}
    try:
        template = Template.from_dict(summary["template"])
    except (TypeError, ValueError) as error:
        raise AlignError(f"{path}: the template it records is not valid ({error})") from None
    return template, {item["path"]: item["reason"] for item in summary.get("not_aligned", ())}


def _encode(image, ext, quality):
    params = [cv2.IMWRITE_JPEG_QUALITY, int(quality)] if ext in (".jpg", ".jpeg") else []
    ok, buf = cv2.imencode(ext, image, params)
    if not ok:
        raise ValueError(f"cannot encode {ext}")
    return buf.tobytes()


def _write(path, data):
    """Write through a temporary name (a killed run leaves no half image); the file gets the umask's mode."""
    os.makedirs(os.path.dirname(path), exist_ok=True)
    tmp = path + ".tmp"
    try:
        with open(tmp, "wb") as f:
            f.write(data)
        os.replace(tmp, path)
    except BaseException:
        files.remove_quietly(tmp)
        raise


def align_folder(root, out_dir, template=TEMPLATE, workers=None, quality=95, force=False, verbose=True, **policy):
    """Align every image of ``root/<identity>/<image>`` into ``out_dir/<identity>/<image>``.

    The output keeps each file's relative path and format (JPEG at ``quality``), so image lists and LFW's
    ``pairs.txt`` resolve in it as in ``root``. The folder rules are the dataset builder's
    (:func:`lightcnn.prepare.scan_root`).

    Parameters
    ----------
    root, out_dir : str
        Input tree and output folder; ``out_dir`` must not hold files unless ``force``.
    template : Template
        Output geometry and landmark source.
    **policy
        ``min_size``, ``max_outside``, ``pad``, ``min_confidence`` (POLICY_DEFAULTS for those not given); see
        :class:`Aligner`.
    workers : int, optional
        Threads, each with its own :class:`Aligner` (default: the core count).
    quality : int
        JPEG quality of ``.jpg`` outputs.
    force, verbose : bool
        Write into a non-empty ``out_dir`` (replacing outputs); print progress and the summary.

    Returns
    -------
    dict
        The summary, also written to ``out_dir/summary.json``: the template, counts, options, every image not
        aligned with its reason, every aligned image with a note, and the folder problems the scan found.
    """
    from lightcnn.prepare import scan_root  # the dataset builder's folder rules

    started = time.time()
    root, out_dir = os.fspath(root), os.fspath(out_dir)
    if not os.path.isdir(root):
        raise AlignError(f"root folder not found: {root}")
    if os.path.realpath(root) == os.path.realpath(out_dir):
        raise AlignError("--out must differ from --root")
    if os.path.exists(out_dir) and not os.path.isdir(out_dir):
        raise AlignError(f"--out {out_dir} exists and is not a folder")
    if os.path.isdir(out_dir) and any(os.scandir(out_dir)) and not force:
        raise AlignError(f"{out_dir} is not empty; pass --force to write into it (aligned images are replaced)")
    if not 1 <= quality <= 100:
        raise AlignError(f"--quality must be in [1, 100], got {quality}")
    workers = max(1, int(workers or os.cpu_count() or 1))
    aligners = ThreadAligners(template, **policy)  # checks the policy and says how to install MediaPipe
    listing, empty, non_image, ignored = scan_root(root, exclude=out_dir)
    rels = [f"{name}/{fname}" for name in sorted(listing) for fname in listing[name]]
    os.makedirs(out_dir, exist_ok=True)
    progress = Progress("[align] ", len(rels), enabled=verbose)
    not_aligned, notes = [], []
    written = 0

    def one(rel):
        result = aligners.align_file(os.path.join(root, *rel.split("/")))
        encoded = _encode(result.image, os.path.splitext(rel)[1].lower(), quality) if result.ok else None
        return rel, result, encoded

    with aligners, concurrent.futures.ThreadPoolExecutor(workers, thread_name_prefix="align") as pool:
        for rel, result, encoded in pool.map(one, rels):
            dst = os.path.join(out_dir, *rel.split("/"))
            try:
                if result.ok:
                    _write(dst, encoded)
                    written += 1
                elif os.path.lexists(dst):
                    os.remove(dst)  # a stale output of an earlier run (--force) must not pass for this run's
            except OSError as error:
                pool.shutdown(wait=True, cancel_futures=True)
                raise AlignError(f"cannot write {dst}: {error.strerror or error} ({written} aligned images were "
                                 f"written under {out_dir} before it; run again with --force)") from None
            if not result.ok:
                not_aligned.append({"path": rel, "reason": result.reason})
            if result.note:
                notes.append({"path": rel, "note": result.note})
            progress.update(1, f", {len(not_aligned)} not aligned")
    progress.finish(f", {len(not_aligned)} not aligned")
    summary = {
        "tool": "lightcnn.align",
        "template": template.to_dict(),
        "root": os.path.abspath(root), "out_dir": os.path.abspath(out_dir),
        "options": dict(aligners.policy, workers=workers, quality=quality),
        "images": len(rels), "aligned": len(rels) - len(not_aligned), "not_aligned_count": len(not_aligned),
        "identities": len(listing),
        "not_aligned": not_aligned, "notes": notes,
        "empty_identity_folders": empty, "non_image_files": non_image, "ignored": ignored,
        "seconds": round(time.time() - started, 2),
    }
    files.write_json(os.path.join(out_dir, SUMMARY_FILE), summary)
    if verbose:
        print_summary(summary)
    return summary


def reason_counts(items):
    """``{"no face found": 3, ...}``: reasons without their details."""
    counts = {}
    for item in items:
        key = item["reason"].split(" (")[0].split(":")[0]
        counts[key] = counts.get(key, 0) + 1
    return counts


def print_summary(summary, out=None, limit=20):
    """The summary for a human: counts, then each kind of problem (the first ``limit`` of each)."""
    out = out or sys.stdout

    def p(text=""):
        print(f"[align] {text}", file=out)

    p(f"aligned {summary['aligned']} of {summary['images']} images of {summary['identities']} identities in "
      f"{summary['seconds']} s -> {summary['out_dir']} (gray, {Template.from_dict(summary['template']).describe()})")
    reasons = reason_counts(summary["not_aligned"])
    sections = [
        (f"not aligned ({', '.join(f'{k}: {v}' for k, v in sorted(reasons.items()))})",
         [f"{s['path']}: {s['reason']}" for s in summary["not_aligned"]]),
        ("aligned, with a note", [f"{s['path']}: {s['note']}" for s in summary["notes"]]),
        ("empty identity folders (no image files)", summary["empty_identity_folders"]),
        ("non-image files", summary["non_image_files"]),
        ("ignored entries", [f"{s['path']}: {s['reason']}" for s in summary["ignored"]]),
    ]
    cli.print_listed(p, sections, limit, os.path.join(summary['out_dir'], SUMMARY_FILE))


def add_policy_flags(parser, unset=False):
    """The face-policy flags (POLICY_FLAGS). With ``unset`` they default to None, so that a command where alignment is
    optional can tell which were given (:func:`given_policy`)."""
    faces = parser.add_argument_group("which faces (alignment; as python -m lightcnn.align)")
    for (flag, text), (name, default) in zip(POLICY_FLAGS, POLICY_DEFAULTS.items()):
        faces.add_argument(flag, type=float, default=None if unset else default, help=f"{text} (default {default:g})")
    return faces


def given_policy(args):
    """The face-policy flags given on the command line (the defaults stand for the others)."""
    return {name: getattr(args, name) for name in POLICY_DEFAULTS if getattr(args, name) is not None}


def build_parser():
    parser = argparse.ArgumentParser(
        prog="python -m lightcnn.align",
        description="Align the faces of <root>/<identity>/<image> photos onto LightCNN's template: gray 144x144, "
                    "eyes level, eyes' midpoint at (72, 48), mouth corners 48 px below.")
    io = parser.add_argument_group("input and output")
    io.add_argument("--root", required=True, help="folder of photos, one sub-folder per identity")
    io.add_argument("--out", required=True, help="output folder: the same tree of aligned faces + summary.json")
    io.add_argument("--force", action="store_true", help="write into a non-empty --out (replacing images)")
    io.add_argument("--quality", type=int, default=95, help="JPEG quality of .jpg outputs")
    add_policy_flags(parser)
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 1,
                        help="threads (each holds its own MediaPipe graphs)")
    cli.add_debug_flag(parser)
    return parser


def _align(argv):
    args = build_parser().parse_args(argv)
    align_folder(args.root, args.out, workers=args.workers, quality=args.quality, force=args.force,
                 **given_policy(args))
    return 0


def main(argv=None):
    """The aligner's command line; returns the exit status (2: bad input or MediaPipe missing)."""
    return cli.run(_align, argv)


if __name__ == "__main__":
    raise SystemExit(main())
