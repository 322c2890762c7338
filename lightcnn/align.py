"""Raw photos -> gray faces on the LightCNN template: detection, five landmarks, a similarity transform.

:class:`Aligner` finds the faces (``lightcnn.detection``: two BlazeFace detectors, then a tiled search for small
faces) and aligns the largest: the five points come from MediaPipe's 468-point face mesh refined by its attention
model, run on a square crop around that face (the eye centres are the iris centres, points 468 and 473; the nose tip
is point 1; the mouth corners are points 61 and 291), and the similarity transform that puts them on the template
warps the photo (``lightcnn.warp``). ``python -m benchmarks.bench_align`` compares the landmark sources; the
README gives its figures.

Whether a face is aligned is the face policy (:data:`POLICY_DEFAULTS`, one setting per flag of
:data:`POLICY_FLAGS`): a face too small, cut off by the image border or without landmarks is not aligned, and
:class:`AlignResult` says why. A folder of photos is aligned by ``lightcnn.align_folder`` (``python -m lightcnn
align``), whose ``summary.json`` records the template, so the extractor knows the tree is aligned
(:func:`aligned_tree_template`) and does not align it again.

MediaPipe is optional (``pip install --no-deps -r requirements-align.txt``), imported when an :class:`Aligner` is
made. A MediaPipe graph must not be shared between threads, so every thread gets its own :class:`Aligner`
(:class:`ThreadAligners`).
"""
from __future__ import annotations

import dataclasses
import math
import os
import threading

import cv2
import numpy as np

from lightcnn import files, images
from lightcnn.dataset_summary import SUMMARY_FILE
from lightcnn.detection import Face, FaceDetector, as_rgb_and_gray, load_mediapipe, quiet_stderr
from lightcnn.detection import INSTALL, mediapipe_available  # noqa: F401 (the extractor and verify-pair ask align)
from lightcnn.faces import too_small
from lightcnn.images import LANDMARK_SOURCES, TEMPLATE, TEST_TEMPLATE, Template  # noqa: F401 (re-exported)
from lightcnn.warp import outline_outside, template_transform, warp_to_template

# A landmark nearer the border than this share of the eye-to-mouth distance is on a face cut off by the border (the
# mesh then extrapolates it); an eye cut through its centre is about 0 from it, tight LFW crops stay clear (README).
LANDMARK_MARGIN = 0.1
# The face policy (which faces are aligned) and its flags, decided once for align, prepare, the extractor and verify.
POLICY_DEFAULTS = {"min_size": 40.0, "max_outside": 0.2, "pad": 0.25, "min_confidence": 0.5}
POLICY_FLAGS = (("--min-size", "faces narrower than this (detector box, in photo pixels) are not aligned"),
                ("--max-outside", "faces with more than this share of their outline outside the photo are 'cut off'"),
                ("--pad", "border added before detection, as a fraction of the longer side (tight crops)"),
                ("--min-confidence", "detector score threshold"))
# What the summary.json of an aligned tree says under "tool" (the aligner's module name, as earlier releases wrote)
ALIGNED_TREE_TOOL = "lightcnn.align"
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
        off by the border" (tight LFW crops stay below the default: README); a face whose landmark lies within a
        tenth of the eye-to-mouth distance of the border (:data:`LANDMARK_MARGIN`) is cut off too.
    pad : float
        Border added on every side before the short-range detector runs, as a fraction of the longer side (tight
        crops need it: README).
    min_confidence : float
        Detector score threshold.

    ``template.landmarks`` says where the five points come from. "iris" (the default): the face mesh refined by its
    attention model, eye centres = iris centres (the pupils, where five-point annotations put the eye centres);
    "eye-contour": the same mesh, eye centres = mean of the 16 eye-contour points; "mesh": the plain mesh,
    eye-contour centres; "detector": the detector's keypoints, whose mouth centre stands for both mouth corners (the
    least precise; ``python -m benchmarks.bench_align`` measures them all).
    """
    def __init__(self, template=TEMPLATE, **policy):
        if not isinstance(template, Template):
            raise ValueError(f"template must be a lightcnn.images.Template, got {template!r}")
        policy = check_policy(**policy)
        self.template, self.min_size, self.max_outside = template, policy["min_size"], policy["max_outside"]
        self.pad, self.min_confidence = policy["pad"], policy["min_confidence"]
        landmarks = self.landmark_source = template.landmarks
        self.detector = FaceDetector(self.min_size, self.pad, self.min_confidence)
        self._mesh = None
        if landmarks != "detector":
            mp = load_mediapipe()
            with quiet_stderr():
                self._mesh = mp.solutions.face_mesh.FaceMesh(
                    static_image_mode=True, max_num_faces=1, refine_landmarks=landmarks != "mesh",
                    min_detection_confidence=self.min_confidence)
                self._mesh.process(np.zeros((64, 64, 3), np.uint8))  # its first run prints the rest of the warnings

    def close(self):
        """Release the MediaPipe graphs."""
        if self.detector is not None:
            self.detector.close()
        if self._mesh is not None:
            self._mesh.close()
        self.detector = self._mesh = None

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def detect(self, image):
        """All faces found in ``image`` (gray or BGR uint8), largest box first, in its pixel coordinates
        (:meth:`lightcnn.detection.FaceDetector.detect`)."""
        return self.detector.detect(image)

    # -- landmarks --------------------------------------------------------------------------------------------
    def landmarks(self, image, face):
        """The five points of ``face`` (a :meth:`detect` result of ``image``) or None when the mesh finds none.

        The mesh runs on a square crop twice the face box's side around it, so that a small face in a large
        photo is seen at full resolution and a neighbour's face is mostly outside the crop.
        """
        rgb, _ = as_rgb_and_gray(image)
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
        rgb, own_gray = as_rgb_and_gray(image)
        gray = own_gray if gray is None else np.asarray(gray)
        if gray.shape[:2] != rgb.shape[:2]:
            raise ValueError(f"gray image {gray.shape} and image {rgb.shape} differ in size")
        h, w = gray.shape[:2]
        faces = self.detector.detect_rgb(rgb)
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
    if too_small(gray):  # no face to find in a thumbnail, whatever the detector's --min-size
        return AlignResult(None, too_small(gray))
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
        load_mediapipe()  # the install line before any thread starts
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
    """The :class:`Template` a folder was aligned to by ``python -m lightcnn align`` (its ``summary.json`` says),
    or None for any other folder. ``(template, not_aligned)``: the second maps relative paths to the reason they
    were not aligned (they are absent from the tree)."""
    path = os.path.join(os.fspath(root), SUMMARY_FILE)
    if not os.path.isfile(path):
        return None, {}
    try:
        summary = files.read_json(path)
    except (OSError, ValueError):
        return None, {}
    if not isinstance(summary, dict) or summary.get("tool") != ALIGNED_TREE_TOOL or "template" not in summary:
        return None, {}
    try:
        template = Template.from_dict(summary["template"])
    except (TypeError, ValueError) as error:
        raise AlignError(f"{path}: the template it records is not valid ({error})") from None
    return template, {item["path"]: item["reason"] for item in summary.get("not_aligned", ())}
