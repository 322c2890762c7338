"""``python -m lightcnn prepare``: a folder of faces -> gray train/val RecordIO for LightCNN.

    python -m lightcnn prepare --root FACES --out DIR [--identity-list FILE | --num-identities N --min-images K]
        [--val-fraction F] [--seed S] [--image-size 144] [--fit crop|pad|stretch] [--align [--min-size 40 ...]]
        [--quality 95] [--num-threads T] [--force]

The builder and its rules are :mod:`lightcnn.prepare`'s; this reads the flags, runs it and prints its summary.
"""
import argparse
import os
import sys

from lightcnn import cli
from lightcnn.cli.align import add_policy_flags, given_policy
from lightcnn.images import DEFAULT_FIT, FIT_WORDS, FITS, STORED_SIZE, FaceBox, Template
from lightcnn.prepare import prepare_dataset


def print_summary(summary, out=None, limit=20):
    """The summary for a human: counts first, then every kind of problem (the first ``limit`` of each)."""
    out = out or sys.stdout

    def p(text=""):
        print(f"[prepare] {text}", file=out)

    opts = summary["options"]
    p(f"{summary['num_classes']} identities, {summary['num_images']} images "
      f"({opts['selection']} selection; per identity {summary['images_per_identity']['min']}.."
      f"{summary['images_per_identity']['max']})")
    for split in ("train", "val"):
        s = summary[split]
        p(f"{split}: {s['images']} images of {s['identities']} identities -> {s['rec']}")
    if summary["identities_shortfall"]:
        p(f"WARNING: asked for {opts['num_identities']} identities, only {summary['num_classes']} have at least "
          f"{opts['min_images'] or 1} readable images")
    if opts["align"]:
        made = f"aligned to the LightCNN template ({Template.from_dict(summary['preprocess']['align']).describe()})"
    else:
        made = (f"{summary['not_square']} not square, {FIT_WORDS[opts['fit']]} (--fit {opts['fit']}); "
                f"{summary['resized']} resized ({summary['enlarged']} enlarged)")
    p(f"stored gray {opts['image_size']}x{opts['image_size']} JPEG q{opts['quality']}; "
      f"{summary['converted_colour_to_gray']} colour images converted to gray; {made}; {summary['images_checked']} "
      f"images of {summary['identities_checked']} identities checked in {summary['seconds']} s")
    if summary.get("face_box"):
        box = FaceBox.from_dict(summary["face_box"])
        p(f"face size (for verify-pair): the detector's {box.describe()} (medians of {box.images} faces)")
    elif not opts["align"] and summary.get("face_box_note"):
        p(f"face size (for verify-pair): {summary['face_box_note']}")
    sections = [
        ("skipped files (not packed)", [f"{s['path']}: {s['reason']}" for s in summary["skipped"]]),
        ("aligned, with a note", [f"{s['path']}: {s['note']}" for s in summary["aligned_notes"]]),
        ("empty identity folders (no image files)", summary["empty_identity_folders"]),
        ("non-image files", summary["non_image_files"]),
        ("ignored entries", [f"{s['path']}: {s['reason']}" for s in summary["ignored"]]),
    ]
    cli.print_listed(p, sections, limit, os.path.join(summary['out_dir'], 'summary.json'))


def build_parser():
    parser = argparse.ArgumentParser(
        prog="python -m lightcnn prepare",
        description="Pack <root>/<identity>/<image> faces into gray train/val RecordIO for LightCNN.")
    io = parser.add_argument_group("input and output")
    io.add_argument("--root", required=True, help="folder of faces (or photos, with --align), one sub-folder per "
                                                  "identity")
    io.add_argument("--out", required=True, help="output folder for .lst/.rec/.idx, classes.txt, summary.json")
    io.add_argument("--force", action="store_true", help="replace existing outputs in --out")
    sel = parser.add_argument_group("which identities")
    sel.add_argument("--identity-list", help="file with one identity per line (labels follow its order)")
    sel.add_argument("--num-identities", type=int, help="keep the N identities with the most images "
                                                        "(ties by name); default: all")
    sel.add_argument("--min-images", type=int, help="only identities with at least K readable images (default 1)")
    split = parser.add_argument_group("split")
    split.add_argument("--val-fraction", type=float, default=0.05,
                       help="share of each identity's images for validation (at least one stays in train)")
    split.add_argument("--seed", type=int, default=0, help="seed of the split and of the list order")
    pack = parser.add_argument_group("packing")
    pack.add_argument("--image-size", type=int, default=STORED_SIZE, help="side of the stored gray squares")
    pack.add_argument("--fit", choices=FITS, default=DEFAULT_FIT,
                      help="a face that is not square: its centre square (crop), black bars (pad) or stretched "
                           "(stretch, what earlier releases did)")
    pack.add_argument("--align", action="store_true",
                      help="align each photo's largest face to the LightCNN template first (needs MediaPipe: "
                           "pip install --no-deps -r requirements-align.txt)")
    pack.add_argument("--quality", type=int, default=95, help="JPEG quality")
    pack.add_argument("--num-threads", type=int, default=os.cpu_count() or 1,
                      help="decoding/encoding (and aligning) threads")
    add_policy_flags(parser, unset=True)  # only with --align
    cli.add_debug_flag(parser)
    return parser


def _prepare(argv):
    args = build_parser().parse_args(argv)
    policy = given_policy(args)
    summary = prepare_dataset(args.root, args.out, identity_list=args.identity_list,
                              num_identities=args.num_identities, min_images=args.min_images,
                              val_fraction=args.val_fraction, seed=args.seed, image_size=args.image_size,
                              quality=args.quality, num_threads=args.num_threads, force=args.force, fit=args.fit,
                              align=args.align, align_policy=policy or None)
    print_summary(summary)
    return 0


def main(argv=None):
    """The dataset builder's command line; returns the exit status (2: bad input)."""
    return cli.run(_prepare, argv)


if __name__ == "__main__":
    raise SystemExit(main())
