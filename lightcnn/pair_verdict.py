"""Two photos, one question: the same person? The faces a checkpoint's network should see in two photos, and the
cosine similarity of their features (the command is ``python -m lightcnn verify-pair``,
:mod:`lightcnn.cli.verify_pair`).

Each photo goes through the checkpoint's own preprocessing (its sidecar): a network trained on aligned faces gets
the largest face of each photo aligned to its template (a photo without a usable face is an error saying why); one
trained on faces used as given gets the photos as they are, once MediaPipe's face detector has found a face in each
(none is an error; without MediaPipe a note says that no face was checked). A face much smaller than in the training
faces (the detector's box under :data:`SMALL_FACE` of theirs, as the dataset builder measured it: the sidecar's
``face_box``) is not compared in its whole photo: the photo is cropped around it so that the box sits as it sat in
the training faces, and the network sees that crop. The score is :func:`lightcnn.protocols.similarity.cosine_scores`,
the one the LFW evaluator chose its threshold on (:mod:`lightcnn.protocols.thresholds`).
"""
import os

import numpy as np

from lightcnn import align as aligning, files
from lightcnn.images import (FIT_WORDS, FaceBox, Template, eval_input, load_gray, read_image_file,
                             resize_square)
from lightcnn.protocols.similarity import cosine_scores

# A face whose detector box is under this share of the training faces' (the median) is "much smaller": the photo is
# cropped around it. Training faces stay above it (their 1st percentile on LFW and ORL, in the README's face sizes).
SMALL_FACE = 0.8
# The face box assumed for a checkpoint that records none (its dataset was built before prepare measured it): the LFW
# crops' (prepare on lfw_gray144, the `make lfw` data; ORL's is close, see the README's face sizes).
CROP_FACE_BOX = FaceBox(0.86, 0.50, 0.60)


def face_of(path, preprocess, aligner, detector=None):
    """``(gray face, what was done)`` of one photo as the network's training faces were made: aligned to its
    template (``aligner``), or checked for a face by ``detector`` (an Aligner that only detects; None: no check)
    and used as given or cropped around it (:func:`plain_face`). ValueError naming the photo when it has no usable
    face."""
    if aligner is None:
        gray = load_gray(path)
        if detector is None:
            return gray, as_given(gray, preprocess.fit)
        return plain_face(path, gray, detector, preprocess)
    try:
        data = read_image_file(path)
    except FileNotFoundError:
        raise FileNotFoundError(f"{path}: no such file") from None
    result = aligning.align_bytes(aligner, data)
    if not result.ok:
        raise ValueError(f"{path}: {result.reason}" + (" (the network was trained on aligned faces: it needs one)"
                                                       if result.reason == "no face found" else ""))
    return result.image, "face aligned to the template" + (f" ({result.note})" if result.note else "")


def as_given(face, fit):
    if face.shape[0] != face.shape[1]:
        return f"used as given (not square: {FIT_WORDS[fit]}, as in training)"
    return "used as given (the network was trained on faces that were not aligned)"


def training_face_box(preprocess):
    """``(FaceBox, words)``: the one the checkpoint records, else :data:`CROP_FACE_BOX`, saying so."""
    if preprocess.face_box is not None:
        return preprocess.face_box, f"the training faces' {preprocess.face_box.share:.2f}"
    return CROP_FACE_BOX, f"LFW crops' {CROP_FACE_BOX.share:.2f}, assumed: the checkpoint records no face size"


def fit_region(height, width, fit):
    """``(left, top, width, height)`` in the photo of the square that ``fit`` makes of it
    (:func:`lightcnn.images.make_square`; "pad" reaches outside the photo, "stretch" is the photo)."""
    if fit == "crop":
        side = min(height, width)
        return (width - side) // 2, (height - side) // 2, side, side
    if fit == "pad":
        side = max(height, width)
        return -((side - width) // 2), -((side - height) // 2), side, side
    return 0, 0, width, height


def share_inside(box, left, top, width, height):
    """Share of the area of ``box`` (continuous ``x0, y0, x1, y1``) inside a rectangle."""
    x0, y0, x1, y1 = box
    ix = max(0.0, min(x1, left + width) - max(x0, left))
    iy = max(0.0, min(y1, top + height) - max(y0, top))
    area = (x1 - x0) * (y1 - y0)
    return ix * iy / area if area > 0 else 0.0


def crop_square(gray, left, top, side):
    """The ``side`` square at ``(left, top)`` of a gray image, black outside it."""
    h, w = gray.shape
    out = np.zeros((side, side), np.uint8)
    x0, y0, x1, y1 = max(left, 0), max(top, 0), min(left + side, w), min(top + side, h)
    if x1 > x0 and y1 > y0:
        out[y0 - top:y1 - top, x0 - left:x1 - left] = gray[y0:y1, x0:x1]
    return out


def frame_square(box, frame):
    """``(left, top, side)`` of the square in which ``box`` (continuous ``x0, y0, x1, y1``) has the width share and
    centre of the FaceBox ``frame``."""
    side = max(int(round((box[2] - box[0]) / frame.share)), 1)
    return (int(round((box[0] + box[2]) / 2 - frame.x * side)), int(round((box[1] + box[3]) / 2 - frame.y * side)),
            side)


def plain_face(path, gray, detector, preprocess):
    """``(gray face, what was done)`` of a photo for a network trained on faces used as given: the photo itself
    when its largest face is about as large as in the training faces and lies in the square the network's ``fit``
    takes; else the square around the face in which its box sits as in the training faces (black outside the
    photo). ValueError naming the photo: no face, a face under ``--min-size``, or a small face cut off by the
    border (a crop around it would not hold a whole face)."""
    faces = detector.detect(gray)
    if not faces:
        raise ValueError(f"{path}: no face found (verify compares faces: MediaPipe's face detector finds none in "
                         f"this photo)")
    face = faces[0]
    several = f"; {len(faces)} faces found, took the largest" if len(faces) > 1 else ""
    if face.width < detector.min_size:
        raise ValueError(f"{path}: face too small: {face.width:.0f} px wide < min-size {detector.min_size:g}")
    frame, frame_words = training_face_box(preprocess)
    h, w = gray.shape
    region = fit_region(h, w, preprocess.fit)
    share = face.width / region[2]
    box = tuple(c + 0.5 for c in face.box)  # pixel indices -> continuous coordinates
    in_photo = share_inside(box, 0, 0, w, h)
    small = share < SMALL_FACE * frame.share
    off_centre = in_photo - share_inside(box, *region) > detector.max_outside  # fit "crop" would cut the face
    if not (small or off_centre):
        return gray, f"{as_given(gray, preprocess.fit)}; face found, its box {share:.2f} of the side ({frame_words})" \
            + several
    why = f"its box {share:.2f} of the side, {frame_words}"
    if not small:
        why = f"the face lies outside the photo's centre square; {why}"
    outside = 1 - in_photo
    if outside > detector.max_outside:
        raise ValueError(f"{path}: face cut off by the image border ({outside:.0%} of its box outside the photo, "
                         f"max-outside {detector.max_outside:.0%}); the photo must be cropped around the face "
                         f"({why}) and the crop would not hold the whole face: give a photo that shows all of it")
    left, top, side = frame_square(box, frame)
    # The box's size depends on the detector model that found the face (a small face in a large photo is found by the
    # full-range model, a training face mostly by the short-range one), so it is measured again as training measured
    # it: on the crop, at the stored size.
    scale = side / preprocess.image_size
    again = detector.detect(resize_square(crop_square(gray, left, top, side), preprocess.image_size))
    if again:
        refound = tuple(c + (a + 0.5) * scale for c, a in zip((left, top, left, top), again[0].box))
        if refound[0] <= (box[0] + box[2]) / 2 <= refound[2] and refound[1] <= (box[1] + box[3]) / 2 <= refound[3]:
            left, top, side = frame_square(refound, frame)
    return crop_square(gray, left, top, side), (
        f"cropped around its face to the training faces' size ({why}): {side}x{side} px at ({left}, {top}) of the "
        f"{w}x{h} photo{several}")



def save_pair(path, faces, text):
    """The two faces side by side (gray), a band below with ``text``; written atomically as a PNG."""
    import cv2
    side = faces[0].shape[0]
    band = np.full((28, 2 * side + 8), 255, np.uint8)
    cv2.putText(band, text, (4, 19), cv2.FONT_HERSHEY_SIMPLEX, 0.42, 0, 1, cv2.LINE_AA)
    top = np.full((side, 2 * side + 8), 255, np.uint8)
    top[:, :side], top[:, side + 8:] = faces[0], faces[1]
    with files.atomic_path(path) as temp:
        if not cv2.imwrite(temp, np.vstack([top, band])):
            raise OSError(f"cannot write {path}")



def check_photos(paths):
    """FileNotFoundError or IsADirectoryError for a path that is not an image file, before anything loads."""
    for path in paths:
        if os.path.isdir(path):
            raise IsADirectoryError(f"{path} is a folder, not a photo: give an image file")
        if not os.path.isfile(path):
            raise FileNotFoundError(f"{path}: no such file")


def photo_faces(paths, preprocess, policy, note):
    """``[(gray face, what was done)]`` of each photo (:func:`face_of`): aligned when the network was trained on
    aligned faces, else checked for a face when MediaPipe is installed (``note`` says when it is not). ``policy``: the
    face-policy settings given (:func:`lightcnn.align.given_policy`)."""
    aligner = detector = None
    if preprocess.align:
        aligner = aligning.Aligner(preprocess.align, **policy)
    elif aligning.mediapipe_available():  # a face check for networks of faces used as given too
        detector = aligning.Aligner(Template(landmarks="detector"), **policy)
    else:
        note(f"note: no face check: mediapipe is not installed, so the photos are used as given; pip install "
             f"{aligning.INSTALL} adds the check")
    try:
        return [face_of(path, preprocess, aligner, detector) for path in paths]
    finally:
        for graphs in (aligner, detector):
            if graphs is not None:
                graphs.close()


def compare(net, preprocess, faces, ctx):
    """``(squares, cosine)``: the two faces as training stored them (square, ``image_size``; aligned faces already
    are) and the cosine similarity of the network's features of their centre crops."""
    import mxnet as mx

    squares = [resize_square(face, preprocess.image_size, preprocess.fit) for face in faces]
    batch = np.stack([eval_input(square, preprocess) for square in squares])  # (2, 1, crop, crop)
    features = net.features(mx.nd.array(batch, ctx=ctx)).asnumpy()  # (2, embedding)
    return squares, float(cosine_scores(features[:1], features[1:])[0])
