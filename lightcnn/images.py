"""One face image -> network input: the decoding, sizing and normalisation rules, decided once.

The dataset builder (``lightcnn.prepare``), the RecordIO iterators (``lightcnn.data``), the feature extractor
(``lightcnn.extract``) and the face aligner (``lightcnn.align``) all follow these rules, so training and extraction
see faces the same way:

- images are decoded to 8-bit gray (OpenCV's gray decode, what im2rec ``--color 0`` and ``ImageRecordIter`` with one
  channel use);
- faces may first be aligned (``align``: a :class:`Template`; the aligner writes ``image_size`` squares);
- a face that is not square is made square (``fit``: its centre square, padded with black, or stretched), then
  resized to ``image_size`` x ``image_size`` (144 in the LightCNN recipe); the network takes the ``crop_size``
  centre (evaluation) or a random ``crop_size`` window (training), ``crop_size`` being the model's input;
- values are ``(pixel - mean) * scale`` in float32, ``mean`` in pixel units; ``mean=0, scale=1/255`` gives [0, 1]
  inputs, as in the authors' PyTorch recipe.
- an image too small to be a face (``lightcnn.faces``, the face policy) is not taken as one: the dataset builder
  skips it and lists it with the reason, the extractor and ``verify-pair`` refuse it.

A checkpoint's sidecar records the :class:`Preprocess` its network was trained with, so extraction repeats it.
This module imports neither MXNet nor MediaPipe: alignment workers and tools use it alone.
"""
import dataclasses
import math
import os
import stat

import cv2
import numpy as np

from lightcnn.faces import check_face_size

STORED_SIZE = 144  # the recipe packs 144x144 faces and crops the model's 128x128 input from them
CROP_SIZE = 128  # lightcnn.model.INPUT_SHAPE[1] (not imported: that would import MXNet; a test checks they agree)

# How a face that is not square becomes square. "crop" keeps the proportions and the face's centre (what a user of
# Resize + CenterCrop expects); "pad" keeps the whole image, with black bars; "stretch" distorts it (what every
# release before the choice did, so a record without "fit" means "stretch").
FITS = ("crop", "pad", "stretch")
DEFAULT_FIT = "crop"
LEGACY_FIT = "stretch"
# The rules by which the dataset builder made the stored faces: facts of a dataset, which training takes from its
# summary.json. The other rules of a Preprocess are the network input's settings (a training run's flags).
FACE_RULES = ("fit", "align")
# Where the aligner's five points come from (lightcnn.align.Aligner explains them); the recorded default is "iris".
LANDMARK_SOURCES = ("iris", "eye-contour", "mesh", "detector")


@dataclasses.dataclass(frozen=True)
class Template:
    """Where an aligned face sits, and which landmarks put it there: the authors' ``face_db_align.m`` geometry.

    Rotate so the two eyes are level, scale so the vertical distance from the eyes' midpoint to the mouth corners'
    midpoint is ``eye_mouth_y``, put the eyes' midpoint at column ``size // 2`` and row ``eye_y``. Coordinates are
    OpenCV pixel indices (the centre of the top-left pixel is (0, 0)); the authors' MATLAB crop starts
    ``floor(size / 2)`` columns left of the eyes' midpoint and ``eye_y`` rows above it (1-based), so the midpoint
    lands on 0-based column ``size // 2`` and row ``eye_y``.

    Parameters
    ----------
    size : int
        Side of the square output (144 for training, as the authors store their faces).
    eye_y : float
        Row of the eyes' midpoint (``ec_y``: 48 in the 144 image, 40 in the 128 test crop).
    eye_mouth_y : float
        Vertical distance from the eyes' midpoint to the mouth corners' midpoint (``ec_mc_y`` = 48).
    landmarks : str
        Where the five points come from (one of :data:`LANDMARK_SOURCES`; see ``lightcnn.align.Aligner``).
    """

    size: int = STORED_SIZE
    eye_y: float = 48.0
    eye_mouth_y: float = 48.0
    landmarks: str = "iris"

    def __post_init__(self):
        if int(self.size) != self.size or self.size < 8:
            raise ValueError(f"template size must be an integer >= 8, got {self.size}")
        if not (0 < self.eye_y < self.size and 0 < self.eye_mouth_y and self.eye_y + self.eye_mouth_y < self.size):
            raise ValueError(f"template eyes at row {self.eye_y} and mouth {self.eye_mouth_y} px below must lie "
                             f"inside the {self.size} px square")
        if self.landmarks not in LANDMARK_SOURCES:
            raise ValueError(f"template landmarks must be one of {', '.join(LANDMARK_SOURCES)}, "
                             f"got {self.landmarks!r}")

    @property
    def eye_centre(self):
        """``(x, y)`` of the eyes' midpoint in the output."""
        return (float(self.size // 2), float(self.eye_y))

    @property
    def mouth_y(self):
        """Row of the mouth corners' midpoint in the output."""
        return float(self.eye_y + self.eye_mouth_y)

    def center_crop(self, size):
        """The template of the centre ``size`` crop of this one (offsets ``(self.size - size) // 2``, as
        :func:`center_crop` takes them)."""
        offset = (self.size - size) // 2
        return dataclasses.replace(self, size=size, eye_y=self.eye_y - offset)

    def to_dict(self):
        return {"size": int(self.size), "eye_y": float(self.eye_y), "eye_mouth_y": float(self.eye_mouth_y),
                "landmarks": self.landmarks}

    @classmethod
    def from_dict(cls, d):
        return cls(**_known_fields(cls, d, "template"))

    def describe(self):
        return (f"{self.size}x{self.size}, eyes' midpoint at ({self.size // 2}, {self.eye_y:g}), mouth "
                f"{self.eye_mouth_y:g} px below, {self.landmarks} landmarks")


TEMPLATE = Template()  # 144x144, eyes' midpoint at (72, 48), mouth 48 px below: the training faces
TEST_TEMPLATE = TEMPLATE.center_crop(CROP_SIZE)  # 128x128, eyes' midpoint at (64, 40): what the network sees


def _known_fields(cls, d, what):
    if not isinstance(d, dict):
        raise ValueError(f"{what} record must be a JSON object, got {d!r}")
    known = [f.name for f in dataclasses.fields(cls)]
    unknown = set(d) - set(known)
    if unknown:
        raise ValueError(f"unknown {what} fields {sorted(unknown)} (known: {', '.join(known)})")
    return d


@dataclasses.dataclass(frozen=True)
class FaceBox:
    """Where the face detector's box sits in a network's training faces (not aligned ones): medians over a sample
    of the stored squares, measured by the dataset builder (``lightcnn.prepare``). ``verify-pair`` crops a photo
    whose face is much smaller to this frame, so the network sees a face of the size it learned from.

    Parameters
    ----------
    share : float
        The box's width over the square's side.
    x, y : float
        The box's centre over the side (the box spans brows to chin, so it sits low; README gives LFW's).
    images : int
        How many faces were measured.
    """

    share: float
    x: float
    y: float
    images: int = 0

    def __post_init__(self):
        if not (0 < self.share <= 4 and math.isfinite(self.x) and math.isfinite(self.y)):
            raise ValueError(f"face box share must be in (0, 4] and its centre finite, got {self}")

    def to_dict(self):
        return {"share": float(self.share), "x": float(self.x), "y": float(self.y), "images": int(self.images)}

    @classmethod
    def from_dict(cls, d):
        return cls(**_known_fields(cls, d, "face box"))

    def describe(self):
        return f"face box {self.share:.2f} of the side, centred at ({self.x:.2f}, {self.y:.2f})"


@dataclasses.dataclass(frozen=True)
class Preprocess:
    """How a stored image becomes network input; recorded in checkpoints so extraction repeats it exactly.

    Parameters
    ----------
    image_size : int
        Side of the stored square gray images.
    crop_size : int
        Side of the network input crop: random in training, centred in evaluation.
    scale : float
        Multiplier applied after subtracting ``mean``.
    mean : float
        Pixel mean (0..255 units) subtracted before scaling.
    fit : str
        How a face that is not square becomes square before the resize: its centre square ("crop", the default),
        padded with black to a square ("pad") or stretched ("stretch"). A record without it (sidecars and
        datasets of earlier releases) means "stretch", what those releases did.
    align : Template or None
        The template the faces were aligned to (``lightcnn.align``); None: faces are used as given. A record
        without it means None.
    face_box : FaceBox or None
        Where the face detector's box sits in the training faces (faces used as given); None: not measured (a
        record of an earlier release, aligned faces, or no MediaPipe when the dataset was built). Recorded only
        when measured, so a sidecar without it is the same as before.
    """

    image_size: int = STORED_SIZE
    crop_size: int = CROP_SIZE
    scale: float = 1.0 / 255.0
    mean: float = 0.0
    fit: str = DEFAULT_FIT
    align: Template = None
    face_box: FaceBox = None

    def __post_init__(self):
        if int(self.image_size) != self.image_size or int(self.crop_size) != self.crop_size:
            raise ValueError(f"image_size and crop_size must be integers, got {self.image_size}, {self.crop_size}")
        if not 0 < self.crop_size <= self.image_size:
            raise ValueError(f"crop_size {self.crop_size} must be in (0, image_size={self.image_size}]")
        if not (math.isfinite(self.scale) and self.scale != 0 and math.isfinite(self.mean)):
            raise ValueError(f"scale must be finite and non-zero and mean finite, got scale={self.scale}, "
                             f"mean={self.mean}")
        if self.fit not in FITS:
            raise ValueError(f"fit must be one of {', '.join(FITS)}, got {self.fit!r}")
        if self.align is not None:
            if not isinstance(self.align, Template):
                raise ValueError(f"align must be a Template or None, got {self.align!r}")
            if self.align.size != self.image_size:
                raise ValueError(f"faces aligned to a {self.align.size} px template cannot be stored at "
                                 f"image_size {self.image_size}")
        if self.face_box is not None and not isinstance(self.face_box, FaceBox):
            raise ValueError(f"face_box must be a FaceBox or None, got {self.face_box!r}")

    @property
    def data_shape(self):
        """Network input shape of one image, ``(1, crop_size, crop_size)``."""
        return (1, self.crop_size, self.crop_size)

    def to_dict(self):
        record = {"image_size": int(self.image_size), "crop_size": int(self.crop_size),
                  "scale": float(self.scale), "mean": float(self.mean), "fit": self.fit,
                  "align": self.align.to_dict() if self.align else None}
        if self.face_box is not None:  # only when measured: earlier releases read the other records unchanged
            record["face_box"] = self.face_box.to_dict()
        return record

    @classmethod
    def from_dict(cls, d):
        """Read a record; one written before ``fit`` and ``align`` existed means ``stretch`` and not aligned."""
        d = dict(_known_fields(cls, d, "preprocessing"))
        d.setdefault("fit", LEGACY_FIT)
        if d.get("align") is not None:
            d["align"] = Template.from_dict(d["align"])
        if d.get("face_box") is not None:
            d["face_box"] = FaceBox.from_dict(d["face_box"])
        return cls(**d)

    def mismatches(self, other):
        """``[(field, this value, other's value)]`` for each rule on which ``other`` differs, in field order: what
        a resume, fine-tuning, validation data and the extractor check. ``face_box`` is a measurement, not a rule
        (two datasets made alike measure slightly different boxes), so it is not compared."""
        return [(f.name, getattr(self, f.name), getattr(other, f.name)) for f in dataclasses.fields(self)
                if f.name != "face_box" and getattr(self, f.name) != getattr(other, f.name)]

    def face_rules(self):
        """``{rule: value}`` of :data:`FACE_RULES`: how the faces were made."""
        return {name: getattr(self, name) for name in FACE_RULES}

    def describe(self):
        """One line for logs: what a face goes through."""
        aligned = f"aligned to {self.align.describe()}" if self.align else "not aligned"
        return (f"{aligned}; non-square faces {FIT_WORDS[self.fit]}; {self.image_size}x{self.image_size}, centre "
                f"{self.crop_size}; (x - {self.mean:g}) * {self.scale:g}"
                + (f"; {self.face_box.describe()}" if self.face_box else ""))

    def normalize(self, pixels):
        """uint8 pixels -> float32 ``(pixels - mean) * scale``, in the same float32 arithmetic as ImageRecordIter."""
        return (np.asarray(pixels).astype(np.float32) - np.float32(self.mean)) * np.float32(self.scale)


def decode_gray(buf):
    """Encoded image bytes -> ``(uint8 (H, W) gray image, was_colour)``; ``None`` image when undecodable.

    The gray image is OpenCV's own gray decode (``IMREAD_GRAYSCALE``; for a colour JPEG that is its luma plane),
    with EXIF orientation applied. A gray 8-bit file is decoded once; a colour or 16-bit one a second time, in gray.
    """
    arr = np.frombuffer(buf, dtype=np.uint8)
    if arr.size == 0:
        return None, False
    img = cv2.imdecode(arr, cv2.IMREAD_ANYCOLOR | cv2.IMREAD_ANYDEPTH)
    if img is None or img.size == 0:
        return None, False
    colour = img.ndim == 3 and img.shape[2] > 1
    if img.ndim == 3 or img.dtype != np.uint8:
        img = cv2.imdecode(arr, cv2.IMREAD_GRAYSCALE)
        if img is None or img.size == 0:
            return None, False
    return np.ascontiguousarray(img), colour


FIT_WORDS = {"crop": "centre-cropped to a square", "pad": "padded with black to a square",
             "stretch": "stretched to a square"}


def make_square(img, fit=DEFAULT_FIT):
    """A gray image made square as ``fit`` says (see :data:`FITS`); a square image is returned as it is.

    "crop" keeps the centre ``min(h, w)`` square (offsets ``(h - side) // 2``, ``(w - side) // 2``, as
    :func:`center_crop`); "pad" adds black rows or columns, split evenly (the extra one after), to ``max(h, w)``;
    "stretch" leaves the image for the resize to stretch.
    """
    if fit not in FITS:
        raise ValueError(f"fit must be one of {', '.join(FITS)}, got {fit!r}")
    h, w = img.shape[:2]
    if h == w or fit == "stretch":
        return img
    if fit == "crop":
        return center_crop(img, min(h, w))
    side = max(h, w)
    top, left = (side - h) // 2, (side - w) // 2
    return cv2.copyMakeBorder(img, top, side - h - top, left, side - w - left, cv2.BORDER_CONSTANT, value=0)


def resize_square(img, size, fit=DEFAULT_FIT):
    """A gray image made square (``fit``) and resized to exactly ``size`` x ``size``.

    Shrinking uses area averaging, enlarging bilinear interpolation. The dataset builder and the extractor report
    how many images were not square.
    """
    img = make_square(img, fit)
    h, w = img.shape[:2]
    if (h, w) == (size, size):
        return img
    interp = cv2.INTER_AREA if h * w >= size * size else cv2.INTER_LINEAR
    return cv2.resize(img, (size, size), interpolation=interp)


def center_crop(img, crop):
    """The centre ``crop`` x ``crop`` window, with ImageRecordIter's offsets ``(side - crop) // 2``."""
    h, w = img.shape[:2]
    y, x = (h - crop) // 2, (w - crop) // 2
    return img[y:y + crop, x:x + crop]


def read_image_file(path):
    """The bytes of an image file; only a regular file is read (a FIFO or a device named x.jpg would block or never
    end). OSError (FileNotFoundError when it does not exist) says what is wrong."""
    path = os.fspath(path)
    mode = os.stat(path).st_mode  # follows symlinks: a link to a regular file is read
    if not stat.S_ISREG(mode):
        kind = "a folder" if stat.S_ISDIR(mode) else "not a regular file (a pipe, socket or device)"
        raise OSError(f"{path} is {kind}")
    with open(path, "rb") as f:
        return f.read()


def load_gray(path_or_bytes):
    """An image file (path or encoded bytes) -> its uint8 gray ``(H, W)``; ValueError when it does not decode,
    :class:`lightcnn.faces.ImageTooSmallError` when it is too small to be a face."""
    if isinstance(path_or_bytes, (bytes, bytearray, memoryview)):
        buf, name = bytes(path_or_bytes), "<bytes>"
    else:
        name = os.fspath(path_or_bytes)
        buf = read_image_file(name)
    img, _ = decode_gray(buf)
    if img is None:
        raise ValueError(f"cannot decode image {name} (empty, corrupt or not an image)")
    return check_face_size(img, name)


def eval_input(img, preprocess=Preprocess()):
    """A gray face (already aligned when ``preprocess.align`` says so) -> ``(1, crop, crop)`` float32: made square
    and resized to ``image_size`` (``fit``), centre crop, ``(x - mean) * scale``."""
    img = resize_square(img, preprocess.image_size, preprocess.fit)
    crop = center_crop(img, preprocess.crop_size)
    return preprocess.normalize(crop)[None]  # (1, crop, crop)


def load_eval_image(path_or_bytes, preprocess=Preprocess()):
    """One image file (path or encoded bytes) -> ``(1, crop, crop)`` float32, exactly as ``eval_iter`` gives it.

    Decode gray, make it an ``image_size`` square if it is not already, centre crop, ``(x - mean) * scale``.
    For a stored ``image_size`` gray JPEG the result equals ``eval_iter``'s bit for bit (same JPEG decoder output,
    same crop, same float32 arithmetic). No alignment here: aligned input comes from ``lightcnn.align``.
    """
    return eval_input(load_gray(path_or_bytes), preprocess)
