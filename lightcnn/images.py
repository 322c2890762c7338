"""One face image -> network input: the decoding, sizing and normalisation rules, decided once.

The dataset builder (``lightcnn.prepare``), the RecordIO iterators (``lightcnn.data``) and the feature extractor
(``lightcnn.extract``) all follow these rules, so training and extraction see faces the same way:

- images are decoded to 8-bit gray (OpenCV's gray decode, what im2rec ``--color 0`` and ``ImageRecordIter`` with one
  channel use);
- stored faces are ``image_size`` x ``image_size`` (144 in the LightCNN recipe); the network takes the
  ``crop_size`` centre (evaluation) or a random ``crop_size`` window (training), ``crop_size`` being the model's input;
- values are ``(pixel - mean) * scale`` in float32, ``mean`` in pixel units; ``mean=0, scale=1/255`` gives [0, 1]
  inputs, as in the authors' PyTorch recipe.
"""
import dataclasses
import math
import os

import cv2
import numpy as np

from lightcnn.model import INPUT_SHAPE

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".pgm", ".bmp")
STORED_SIZE = 144  # the recipe packs 144x144 faces and crops the model's 128x128 input from them


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
    """

    image_size: int = STORED_SIZE
    crop_size: int = INPUT_SHAPE[1]
    scale: float = 1.0 / 255.0
    mean: float = 0.0

    def __post_init__(self):
        if int(self.image_size) != self.image_size or int(self.crop_size) != self.crop_size:
            raise ValueError(f"image_size and crop_size must be integers, got {self.image_size}, {self.crop_size}")
        if not 0 < self.crop_size <= self.image_size:
            raise ValueError(f"crop_size {self.crop_size} must be in (0, image_size={self.image_size}]")
        if not (math.isfinite(self.scale) and self.scale != 0 and math.isfinite(self.mean)):
            raise ValueError(f"scale must be finite and non-zero and mean finite, got scale={self.scale}, "
                             f"mean={self.mean}")

    @property
    def data_shape(self):
        """Network input shape of one image, ``(1, crop_size, crop_size)``."""
        return (1, self.crop_size, self.crop_size)

    def to_dict(self):
        return {"image_size": int(self.image_size), "crop_size": int(self.crop_size),
                "scale": float(self.scale), "mean": float(self.mean)}

    @classmethod
    def from_dict(cls, d):
        known = [f.name for f in dataclasses.fields(cls)]
        unknown = set(d) - set(known)
        if unknown:
            raise ValueError(f"unknown preprocessing fields {sorted(unknown)} (known: {', '.join(known)})")
        return cls(**d)

    def normalize(self, pixels):
        """uint8 pixels -> float32 ``(pixels - mean) * scale``, in the same float32 arithmetic as ImageRecordIter."""
        return (np.asarray(pixels).astype(np.float32) - np.float32(self.mean)) * np.float32(self.scale)


def is_image_file(name):
    return name.lower().endswith(IMAGE_EXTENSIONS) and not os.path.basename(name).startswith(".")


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


def resize_square(img, size):
    """Resize a gray image to exactly ``size`` x ``size`` (no crop: aligned face crops are used whole).

    Shrinking uses area averaging, enlarging bilinear interpolation. A non-square face is stretched; the dataset
    builder reports how many images it resized.
    """
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


def load_eval_image(path_or_bytes, preprocess=Preprocess()):
    """One image file (path or encoded bytes) -> ``(1, crop, crop)`` float32, exactly as ``eval_iter`` gives it.

    Decode gray, resize to ``image_size`` square if it is not already, centre crop, ``(x - mean) * scale``.
    For a stored ``image_size`` gray JPEG the result equals ``eval_iter``'s bit for bit (same JPEG decoder output,
    same crop, same float32 arithmetic).
    """
    if isinstance(path_or_bytes, (bytes, bytearray, memoryview)):
        buf, name = bytes(path_or_bytes), "<bytes>"
    else:
        name = os.fspath(path_or_bytes)
        with open(name, "rb") as f:
            buf = f.read()
    img, _ = decode_gray(buf)
    if img is None:
        raise ValueError(f"cannot decode image {name} (empty, corrupt or not an image)")
    img = resize_square(img, preprocess.image_size)
    crop = center_crop(img, preprocess.crop_size)
    return preprocess.normalize(crop)[None]  # (1, crop, crop)
