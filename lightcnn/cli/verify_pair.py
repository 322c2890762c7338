"""``python -m lightcnn verify-pair``: are two photos of the same person? The cosine similarity of their LightCNN
features against a threshold (:mod:`lightcnn.pair_verdict`).

    python -m lightcnn verify-pair a.jpg b.jpg --model-prefix M [--epoch N] [--threshold T] [--save-pair pair.png]
        [--gpus 0] [--min-size 40 ...]

It prints what was done with each photo, the cosine similarity, the threshold and where it comes from, and "same" or
"different"; the exit status is 0 for same, 1 for different, 2 for an error.

The threshold is ``--threshold`` when given, else the one the Python LFW evaluator saved beside this checkpoint
(``PREFIX-NNNN-threshold.json``, :mod:`lightcnn.protocols.thresholds`): the extractor records in its ``.mat`` which
checkpoint made the features, and ``python -m lightcnn evaluate`` then saves the best threshold on all the pairs it
evaluated, with the pairs and the accuracy, beside that checkpoint. A threshold saved for weights that have been
replaced since is not used. ``--save-pair`` writes the two faces the network saw (before the centre crop) side by
side, with the verdict: the crops, where a photo was cropped.
"""
import argparse
import sys

from lightcnn import cli, pair_verdict
from lightcnn.cli.align import add_policy_flags, given_policy
from lightcnn.protocols.thresholds import given_threshold, resolve_threshold

SAME, DIFFERENT = 0, 1


def build_parser():
    parser = argparse.ArgumentParser(prog="python -m lightcnn verify-pair",
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


def _verify_pair(argv):
    args = build_parser().parse_args(argv)
    from lightcnn.devices import contexts_from_gpus
    from lightcnn.embedding import load_checkpoint_embedding

    if args.save_pair and not args.save_pair.lower().endswith(".png"):
        raise ValueError(f"--save-pair writes a PNG; give a name ending in .png, got {args.save_pair}")
    if args.threshold is not None:
        given_threshold(args.threshold)  # refused before the checkpoint loads
    ctx = contexts_from_gpus(args.gpus)[:1]
    pair_verdict.check_photos(args.photos)
    net, preprocess, sidecar = load_checkpoint_embedding(args.model_prefix, args.epoch, ctx)
    threshold, source = resolve_threshold(args.threshold, args.model_prefix, sidecar)
    faces = pair_verdict.photo_faces(args.photos, preprocess, given_policy(args),
                                     note=lambda text: print(text, file=sys.stderr))
    for path, (_, how) in zip(args.photos, faces):
        print(f"{path}: {how}")
    squares, score = pair_verdict.compare(net, preprocess, [face for face, _ in faces], ctx[0])
    same = score >= threshold
    verdict = "same" if same else "different"
    print(f"cosine similarity {score:.4f}")
    print(f"threshold {threshold:.4f} ({source})")
    print(verdict)
    if args.save_pair:
        pair_verdict.save_pair(args.save_pair, squares,
                               f"cosine {score:.3f} {'>=' if same else '<'} {threshold:.3f}: {verdict}")
        print(f"wrote {args.save_pair}", file=sys.stderr)
    return SAME if same else DIFFERENT


def main(argv=None):
    """The command line; returns 0 (same), 1 (different) or 2 (an error, said in one line)."""
    return cli.run(_verify_pair, argv)


if __name__ == "__main__":
    raise SystemExit(main())
