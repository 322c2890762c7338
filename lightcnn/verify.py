"""Two photos, one question: the same person? Cosine similarity of their LightCNN features against a threshold.

    python -m lightcnn.verify a.jpg b.jpg --model-prefix M [--epoch N] [--threshold T] [--save-pair pair.png]
        [--gpus 0] [--min-size 40 ...]

Each photo goes through the checkpoint's own preprocessing (its sidecar): a network trained on aligned faces gets
the largest face of each photo aligned to its template (a photo without a usable face is an error saying why); one
trained on faces used as given gets the photos as they are, once MediaPipe's face detector has found a face in each
(none is an error; without MediaPipe a note says that no face was checked). A face much smaller than in the training
faces (the detector's box under :data:`SMALL_FACE` of theirs, as the dataset builder measured it: the sidecar's
``face_box``) is not compared in its whole photo: the photo is cropped around it so that the box sits as it sat in
the training faces, and the network sees that crop. It prints the cosine similarity, the threshold and where it
comes from, and "same" or "different"; the exit status is 0 for same, 1 for different, 2 for an error.

The threshold is ``--threshold`` when given, else the one the Python LFW evaluator saved beside this checkpoint
(``PREFIX-NNNN-threshold.json``): the extractor records in its ``.mat`` which checkpoint made the features, and
``python -m lightcnn.verification`` then saves the best threshold on all the pairs it evaluated, with the pairs and
the accuracy, beside that checkpoint. A threshold saved for weights that have been replaced since is not used.
``--save-pair`` writes the two faces the network saw (before the centre crop) side by side, with the verdict: the
crops, where a photo was cropped.
"""
import argparse
import os
import sys

import numpy as np

from lightcnn import align as aligning, cli, files, verification
from lightcnn.cli.align import add_policy_flags, given_policy
from lightcnn.images import (FIT_WORDS, FaceBox, Template, eval_input, load_gray, read_image_file,
                             resize_square)

SAME, DIFFERENT = 0, 1
# A face whose detector box is under this share of the training faces' (the median) is "much smaller": the photo is
# cropped around it. Training faces stay above it: the 1st percentile of their share is 0.83 of the median on 2,000
# LFW crops and on the 400 ORL faces, the smallest 0.76 and 0.79.
SMALL_FACE = 0.8
# The face box assumed for a checkpoint that records none (its dataset was built before prepare measured it): the LFW
# crops' (prepare on lfw_gray144, the `make lfw` data: 0.86 at (0.50, 0.60)); ORL's is close, 0.85 at (0.49, 0.66).
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
    # The box's size depends on the detector model that found the face (up to 20% either way: a small face in a large
    # photo is found by the full-range model, a training face mostly by the short-range one), so it is measured
    # again as training measured it: on the crop, at the stored size.
    scale = side / preprocess.image_size
    again = detector.detect(resize_square(crop_square(gray, left, top, side), preprocess.image_size))
    if again:
        refound = tuple(c + (a + 0.5) * scale for c, a in zip((left, top, left, top), again[0].box))
        if refound[0] <= (box[0] + box[2]) / 2 <= refound[2] and refound[1] <= (box[1] + box[3]) / 2 <= refound[3]:
            left, top, side = frame_square(refound, frame)
    return crop_square(gray, left, top, side), (
        f"cropped around its face to the training faces' size ({why}): {side}x{side} px at ({left}, {top}) of the "
        f"{w}x{h} photo{several}")


def cosine(a, b):
    a, b = np.asarray(a, np.float64).ravel(), np.asarray(b, np.float64).ravel()
    norm = np.linalg.norm(a) * np.linalg.norm(b)
    return float(a @ b / norm) if norm > 0 else 0.0


def given_threshold(value):
    """``--threshold`` as a float; ValueError unless finite (NaN says "different" to every pair, +-inf one answer
    to all)."""
    value = float(value)
    if not np.isfinite(value):
        raise ValueError(f"--threshold: must be a finite number, got {value}")
    return value


def resolve_threshold(given, prefix, sidecar):
    """``(threshold, where it comes from)``: the given one, or the one saved by the LFW evaluation of this
    checkpoint; ValueError saying what to do when there is neither."""
    if given is not None:
        return given_threshold(given), "given with --threshold"
    record, why = verification.load_model_threshold(prefix, sidecar.epoch, sidecar.checksums.get("params"))
    if record is None:
        raise ValueError(f"no threshold: {why}. Pass --threshold T, or evaluate this checkpoint on LFW pairs first "
                         f"(extract_features.py --model-prefix {prefix}, then python -m lightcnn.verification)")
    pairs = os.path.basename(record.get("pairs") or "?")
    return float(record["threshold"]), (
        f"saved by the LFW evaluation of {record.get('saved', '?')} on {pairs}: best on its {record['n_pairs']} "
        f"pairs, {100 * record['best_accuracy']:.1f}% of them right at it; 10-fold accuracy "
        f"{100 * record['accuracy_mean']:.1f}%")


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


def build_parser():
    parser = argparse.ArgumentParser(prog="python -m lightcnn.verify",
                                     description="Are two photos of the same person? Cosine similarity of LightCNN "
                                                 "features against a threshold; exit 0 for same, 1 for different.")
    parser.add_argument("photos", nargs=2, metavar="PHOTO", help="two image files (jpg, png, pgm, bmp)")
    parser.add_argument("--model-prefix", required=True, help="training checkpoint prefix")
    parser.add_argument("--epoch", type=int, default=None, help="checkpoint epoch (default: the last one saved)")
    parser.add_argument("--threshold", type=float, default=None,
                        help="same when cosine >= this (default: the one the last LFW evaluation of this checkpoint "
                             "saved beside it)")
    parser.add_argument("--save-pair", metavar="PNG", help="write the two faces side by side with the verdict")
    parser.add_argument("--gpus", default="", help="a GPU to run on, e.g. '0'; empty: the CPU")
    add_policy_flags(parser)
    cli.add_debug_flag(parser)
    return parser


def _verify(argv):
    args = build_parser().parse_args(argv)
    from lightcnn.devices import contexts_from_gpus
    from lightcnn.embedding import load_checkpoint_embedding
    import mxnet as mx

    if args.save_pair and not args.save_pair.lower().endswith(".png"):
        raise ValueError(f"--save-pair writes a PNG; give a name ending in .png, got {args.save_pair}")
    if args.threshold is not None:
        given_threshold(args.threshold)  # refused before the checkpoint loads
    ctx = contexts_from_gpus(args.gpus)[:1]
    for path in args.photos:
        if os.path.isdir(path):
            raise IsADirectoryError(f"{path} is a folder, not a photo: give an image file")
        if not os.path.isfile(path):
            raise FileNotFoundError(f"{path}: no such file")
    net, preprocess, sidecar = load_checkpoint_embedding(args.model_prefix, args.epoch, ctx)
    threshold, source = resolve_threshold(args.threshold, args.model_prefix, sidecar)
    aligner = detector = None
    if preprocess.align:
        aligner = aligning.Aligner(preprocess.align, **given_policy(args))
    elif aligning.mediapipe_available():  # a face check for networks of faces used as given too
        detector = aligning.Aligner(Template(landmarks="detector"), **given_policy(args))
    else:
        print(f"note: no face check: mediapipe is not installed, so the photos are used as given; pip install "
              f"{aligning.INSTALL} adds the check", file=sys.stderr)
    try:
        faces = [face_of(path, preprocess, aligner, detector) for path in args.photos]
    finally:
        for graphs in (aligner, detector):
            if graphs is not None:
                graphs.close()
    for path, (_, how) in zip(args.photos, faces):
        print(f"{path}: {how}")
    # as training stored them: square, image_size (aligned faces already are); the network sees their centre crop
    squares = [resize_square(face, preprocess.image_size, preprocess.fit) for face, _ in faces]
    batch = np.stack([eval_input(square, preprocess) for square in squares])  # (2, 1, crop, crop)
    features = net.features(mx.nd.array(batch, ctx=ctx[0])).asnumpy()
    score = cosine(features[0], features[1])
    same = score >= threshold
    verdict = "same" if same else "different"
    print(f"cosine similarity {score:.4f}")
    print(f"threshold {threshold:.4f} ({source})")
    print(verdict)
    if args.save_pair:
        save_pair(args.save_pair, squares,
                  f"cosine {score:.3f} {'>=' if same else '<'} {threshold:.3f}: {verdict}")
        print(f"wrote {args.save_pair}", file=sys.stderr)
    return SAME if same else DIFFERENT


def main(argv=None):
    """The command line; returns 0 (same), 1 (different) or 2 (an error, said in one line)."""
    return cli.run(_verify, argv)


if __name__ == "__main__":
    raise SystemExit(main())
