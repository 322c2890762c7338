"""Two photos, one question: the same person? Cosine similarity of their LightCNN features against a threshold.

    python -m lightcnn.verify a.jpg b.jpg --model-prefix M [--epoch N] [--threshold T] [--save-pair pair.png]
        [--gpus 0] [--min-size 40 ...]

Each photo goes through the checkpoint's own preprocessing (its sidecar): a network trained on aligned faces gets
the largest face of each photo aligned to its template (a photo without a usable face is an error saying why); one
trained on faces used as given gets the photos as they are. It prints the cosine similarity, the threshold and where
it comes from, and "same" or "different"; the exit status is 0 for same, 1 for different, 2 for an error.

The threshold is ``--threshold`` when given, else the one the Python LFW evaluator saved beside this checkpoint
(``PREFIX-NNNN-threshold.json``): the extractor records in its ``.mat`` which checkpoint made the features, and
``python -m lightcnn.verification`` then saves the best threshold on all the pairs it evaluated, with the pairs and
the accuracy, beside that checkpoint. A threshold saved for weights that have been replaced since is not used.
``--save-pair`` writes the two faces the network saw (before the centre crop) side by side, with the verdict.
"""
import argparse
import os
import sys

import numpy as np

from lightcnn import align as aligning, cli, files, verification
from lightcnn.images import FIT_WORDS, eval_input, load_gray, read_image_file, resize_square

SAME, DIFFERENT = 0, 1


def face_of(path, preprocess, aligner):
    """``(stored-size gray face, note)`` of one photo as the network's training faces were made: aligned to its
    template (``aligner``) or used as given. ValueError naming the photo when it has no usable face."""
    if aligner is None:
        return load_gray(path), None
    try:
        data = read_image_file(path)
    except FileNotFoundError:
        raise FileNotFoundError(f"{path}: no such file") from None
    result = aligning.align_bytes(aligner, data)
    if not result.ok:
        raise ValueError(f"{path}: {result.reason}" + (" (the network was trained on aligned faces: it needs one)"
                                                       if result.reason == "no face found" else ""))
    return result.image, result.note


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
    aligning.add_policy_flags(parser)
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
    aligner = aligning.Aligner(preprocess.align, **aligning.given_policy(args)) if preprocess.align else None
    try:
        faces = [face_of(path, preprocess, aligner) for path in args.photos]
    finally:
        if aligner is not None:
            aligner.close()
    for path, (face, note) in zip(args.photos, faces):
        if preprocess.align is not None:
            how = "face aligned to the template" + (f" ({note})" if note else "")
        elif face.shape[0] != face.shape[1]:
            how = f"used as given (not square: {FIT_WORDS[preprocess.fit]}, as in training)"
        else:
            how = "used as given (the network was trained on faces that were not aligned)"
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
