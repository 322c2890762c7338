"""Faces in a photo: MediaPipe's two BlazeFace detectors, then a tiled search for small faces.

MediaPipe is optional (``pip install --no-deps -r requirements-align.txt``): it is imported when a
:class:`FaceDetector` (or a ``lightcnn.align.Aligner``) is made, so training and the extraction of faces that need
no alignment never import it. Its wheel carries its models: nothing is downloaded at run time. A MediaPipe graph
must not be shared between threads (it fails with "Packet type mismatch"), but separate graphs run in parallel
threads, so every thread gets its own (``lightcnn.align.ThreadAligners``).
"""
from __future__ import annotations

import contextlib
import dataclasses
import os
import sys
import threading
import warnings

import cv2
import numpy as np

from lightcnn.optional import MissingDependencyError, require

INSTALL = "--no-deps -r requirements-align.txt (mediapipe 0.10.14, whose wheel carries the face models)"


def load_mediapipe():
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
        load_mediapipe()
    except MissingDependencyError:
        return False
    return True


_STDERR_LOCK = threading.Lock()


@contextlib.contextmanager
def quiet_stderr():
    """Silence file descriptor 2 while MediaPipe starts a graph: its C++ code prints a few lines of start-up
    warnings per graph ("Feedback manager requires a model with a single signature inference", "Created TensorFlow
    Lite XNNPACK delegate") that tell a user nothing. Other threads' stderr lines of that moment are lost too."""
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


def as_rgb_and_gray(image):
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


@dataclasses.dataclass
class Face:
    """One detected face, in the pixel coordinates of the image given to :meth:`FaceDetector.detect`.

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


class FaceDetector:
    """The two BlazeFace detectors of MediaPipe; one instance holds their graphs: use one per thread.

    Parameters
    ----------
    min_size : float
        The tiled search stops at tiles under three times this width (smaller faces are not aligned anyway).
    pad : float
        Border added on every side before the short-range detector runs, as a fraction of the longer side.
    min_confidence : float
        Detector score threshold.
    """

    def __init__(self, min_size, pad, min_confidence):
        self.min_size, self.pad, self.min_confidence = min_size, pad, min_confidence
        mp = load_mediapipe()
        with quiet_stderr():
            self.short_range = mp.solutions.face_detection.FaceDetection(
                model_selection=0, min_detection_confidence=min_confidence)
            self.full_range = mp.solutions.face_detection.FaceDetection(
                model_selection=1, min_detection_confidence=min_confidence)
            blank = np.zeros((64, 64, 3), np.uint8)
            for graph in (self.short_range, self.full_range):
                graph.process(blank)  # its first run prints the rest of the start-up warnings

    def close(self):
        """Release the MediaPipe graphs."""
        for graph in (self.short_range, self.full_range):
            if graph is not None:
                graph.close()
        self.short_range = self.full_range = None

    def detect(self, image):
        """All faces found in ``image`` (gray or BGR uint8), largest box first, in its pixel coordinates.

        Two detectors run on every image: the short-range one on the image padded by ``pad`` (close-ups and
        tight crops; it misses faces under about a third of the frame) and the full-range one on the image itself
        (faces down to about a fifth of the frame; it misses tight crops); a face both find counts once. When
        neither finds a face, the full-range detector searches overlapping tiles of a half and a quarter of the
        longer side, as long as a tile is at least three times ``min_size`` (small faces in large photos).
        Measured in ``python -m benchmarks.bench_align``.
        """
        rgb, _ = as_rgb_and_gray(image)
        return self.detect_rgb(rgb)

    def detect_rgb(self, rgb):
        h, w = rgb.shape[:2]
        faces = self.run_detector(self.short_range, rgb, int(round(self.pad * max(h, w))))
        for extra in self.run_detector(self.full_range, rgb, 0):
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
                for face in self.run_detector(self.full_range, np.ascontiguousarray(tile), 0):
                    x0, y0, x1, y1 = face.box
                    # a face cut by a tile edge (not an image edge) is found whole in a neighbouring tile
                    if (x0 < 0 and x > 0) or (y0 < 0 and y > 0) or (x1 > tw - 1 and x + tw < w) or \
                            (y1 > th - 1 and y + th < h):
                        continue
                    found.append(Face((x0 + x, y0 + y, x1 + x, y1 + y), face.score,
                                      face.keypoints + np.array([x, y])))
        return _suppress_overlaps(found)

    def run_detector(self, detector, rgb, border):
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
