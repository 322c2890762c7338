"""``python -m lightcnn align``: photos -> gray faces on the LightCNN template.

    python -m lightcnn align --root PHOTOS --out ALIGNED [--min-size 40] [--max-outside 0.2] [--workers N] [--force]

The aligner is :mod:`lightcnn.align_folder`'s; this reads the flags, runs it and prints its summary. The face-policy
flags (:func:`add_policy_flags`) are also those of ``prepare --align``, the extractor and ``verify-pair``.
"""
import argparse
import os
import sys

from lightcnn import cli
from lightcnn.align import POLICY_DEFAULTS, POLICY_FLAGS
from lightcnn.align_folder import align_folder
from lightcnn.dataset_summary import SUMMARY_FILE
from lightcnn.images import Template


def add_policy_flags(parser, unset=False):
    """The face-policy flags (POLICY_FLAGS). With ``unset`` they default to None, so that a command where alignment is
    optional can tell which were given (:func:`given_policy`)."""
    faces = parser.add_argument_group("which faces (alignment; as python -m lightcnn align)")
    for (flag, text), default in zip(POLICY_FLAGS, POLICY_DEFAULTS.values()):
        faces.add_argument(flag, type=float, default=None if unset else default, help=f"{text} (default {default:g})")
    return faces


def given_policy(args):
    """The face-policy flags given on the command line (the defaults stand for the others)."""
    return {name: getattr(args, name) for name in POLICY_DEFAULTS if getattr(args, name) is not None}


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


def build_parser():
    parser = argparse.ArgumentParser(
        prog="python -m lightcnn align",
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
    summary = align_folder(args.root, args.out, workers=args.workers, quality=args.quality, force=args.force,
                           **given_policy(args))
    print_summary(summary)
    return 0


def main(argv=None):
    """The aligner's command line; returns the exit status (2: bad input or MediaPipe missing)."""
    return cli.run(_align, argv)


if __name__ == "__main__":
    raise SystemExit(main())
