"""Build a LightCNN training set from a folder of aligned faces.

    python -m lightcnn.prepare --root FACES --out DIR [--identity-list FILE | --num-identities N --min-images K]
        [--val-fraction F] [--seed S] [--image-size 144] [--quality 95] [--num-threads T] [--force]

``FACES/<identity>/<image>`` (jpg/jpeg/png/pgm/bmp, gray or colour) becomes, in ``DIR``:

- ``train.lst``, ``val.lst``: im2rec's list format, ``index<TAB>label<TAB>relative/path``;
- ``classes.txt``: one identity per line, line i = label i (labels are contiguous, 0..C-1);
- ``train.rec`` + ``train.idx``, ``val.rec`` + ``val.idx``: gray ``image_size`` x ``image_size`` JPEGs
  (quality 95), what ``lightcnn.data`` and ``train_lightcnn.py`` read;
- ``summary.json``: counts, the chosen options, and every skipped file with its reason.

This is im2rec's logic (``--color 0 --quality 95``, shuffled lists, unique record ids) done in-process with a
thread pool, because im2rec skips an undecodable image with a printed line and keeps its entry in the ``.lst``,
and its ``--resize`` only fixes the shorter side. Here every image is decoded, checked and encoded *before*
it enters a list; a file that fails is listed in the summary with the reason and never packed. Each image is
decoded once: its encoded JPEG waits in a spool file until the lists are known.

Rules, decided once:
- images are converted to gray and resized to exactly ``image_size`` square (``lightcnn.images.resize_square``:
  aligned crops are used whole, a non-square face is stretched, never cropped); the feature extractor uses the
  same functions;
- identities: those in ``--identity-list`` (labels in list order), or the ``--num-identities`` identities with the
  most readable images among those with at least ``--min-images`` (ties broken by name; labels in name order),
  or every identity with at least ``--min-images`` readable images;
- split: per identity, with a RNG seeded by ``(seed, identity)``, ``round(n * val_fraction)`` images go to
  validation, but at least one always stays in training;
- record ids are unique over both splits (identity label order, then path order); the list lines (and records)
  are shuffled with ``seed``, as im2rec does, so ``num_parts`` shards of a ``.rec`` hold a mix of identities.
"""
from __future__ import annotations

import argparse
import concurrent.futures
import json
import math
import os
import random
import sys
import time

import cv2
import mxnet as mx

from lightcnn import cli, files
from lightcnn.data import CLASSES_FILE
from lightcnn.images import STORED_SIZE, decode_gray, is_image_file, resize_square

OUTPUT_FILES = ("train.lst", "val.lst", "train.rec", "train.idx", "val.rec", "val.idx", CLASSES_FILE,
                "summary.json")
_SPOOL = ".prepare-spool.tmp"
_GROUP_IMAGES = 2048  # images validated per thread-pool round (bounds the results held in memory)


class PrepareError(ValueError):
    """A problem with the input or the options; the CLI prints it and exits with status 2."""


# ----------------------------------------------------------------------------------------------------------------
# Scanning

def scan_root(root, exclude=None):
    """List ``root``'s identity folders and their candidate image files (by extension).

    Returns ``(identities, empty_folders, non_image_files, ignored)``: ``identities`` maps a folder name to its
    sorted image file names; ``empty_folders`` are identity folders without any image file; ``non_image_files``
    are files in identity folders whose extension is not an image's; ``ignored`` lists other entries (files
    directly under ``root``, sub-folders of identity folders, hidden folders, the output folder) with a reason.
    """
    exclude = os.path.realpath(exclude) if exclude else None
    identities, empty, non_image, ignored = {}, [], [], []
    try:
        entries = sorted(os.scandir(root), key=lambda e: e.name)
    except OSError as error:
        raise PrepareError(f"cannot list the root folder {root}: {error}") from None
    for entry in entries:
        if not entry.is_dir():
            ignored.append({"path": entry.name, "reason": "file outside any identity folder"})
            continue
        if exclude and os.path.realpath(entry.path) == exclude:
            ignored.append({"path": entry.name, "reason": "the output folder"})
            continue
        if entry.name.startswith("."):
            ignored.append({"path": entry.name, "reason": "hidden folder"})
            continue
        if any(c in entry.name for c in "\t\r\n"):
            ignored.append({"path": entry.name, "reason": "tab or line break in the folder name"})
            continue
        images = []
        for sub in sorted(os.scandir(entry.path), key=lambda e: e.name):
            rel = f"{entry.name}/{sub.name}"
            if sub.is_dir():
                ignored.append({"path": rel, "reason": "sub-folder inside an identity folder (not searched)"})
            elif is_image_file(sub.name):
                if any(c in sub.name for c in "\t\r\n"):
                    ignored.append({"path": rel, "reason": "tab or line break in the file name"})
                else:
                    images.append(sub.name)
            else:
                non_image.append(rel)
        if images:
            identities[entry.name] = images
        else:
            empty.append(entry.name)
    return identities, empty, non_image, ignored


def read_identity_list(path):
    """Identity names, one per line (blank lines and ``#`` comments skipped); duplicates are an error."""
    try:
        with open(path, encoding="utf-8") as f:
            lines = [line.strip() for line in f]
    except OSError as error:
        raise PrepareError(f"cannot read the identity list {path}: {error}") from None
    names = [line for line in lines if line and not line.startswith("#")]
    seen, dups = set(), []
    for name in names:
        if name in seen:
            dups.append(name)
        seen.add(name)
    if dups:
        raise PrepareError(f"identity list {path} names {len(dups)} identities twice: {_sample(dups)}")
    return names


def _sample(items, limit=10):
    items = list(items)
    text = ", ".join(items[:limit])
    return text + (f", ... ({len(items) - limit} more)" if len(items) > limit else "")


# ----------------------------------------------------------------------------------------------------------------
# Validating and encoding (one decode per image)

def encode_face(data, image_size=STORED_SIZE, quality=95):
    """Encoded image bytes -> ``(jpeg bytes, None, info)`` or ``(None, reason, {})`` when it cannot be used."""
    if not data:
        return None, "empty file (0 bytes)", {}
    img, colour = decode_gray(data)
    if img is None:
        return None, "cannot decode: corrupt, truncated or not a supported image", {}
    h, w = img.shape
    out = resize_square(img, image_size)
    ok, buf = cv2.imencode(".jpg", out, [cv2.IMWRITE_JPEG_QUALITY, int(quality)])
    if not ok:
        return None, "JPEG encoding failed", {}
    return buf.tobytes(), None, {"colour": colour, "width": w, "height": h}


def _encode_file(path, image_size, quality):
    try:
        with open(path, "rb") as f:
            data = f.read()
    except OSError as error:
        return None, f"cannot read: {error.strerror or error}", {}
    return encode_face(data, image_size, quality)


class _Progress:
    """Progress lines on stderr, at most every ``every`` seconds."""

    def __init__(self, what, total=None, every=2.0, enabled=True):
        self.what, self.total, self.every, self.enabled = what, total, every, enabled
        self.start = self.last = time.time()
        self.done = 0

    def update(self, n, extra=""):
        self.done += n
        now = time.time()
        if self.enabled and now - self.last >= self.every:
            self.last = now
            self._print(extra)

    def finish(self, extra=""):
        if self.enabled:
            self._print(extra)

    def _print(self, extra):
        rate = self.done / max(time.time() - self.start, 1e-9)
        of = f"/{self.total}" if self.total is not None else ""
        print(f"[prepare] {self.what}: {self.done}{of} images ({rate:.0f}/s){extra}", file=sys.stderr, flush=True)


class _Validator:
    """Decodes, checks and encodes the images of identities on a thread pool, spooling the JPEGs to disk."""

    def __init__(self, root, spool_path, image_size, quality, num_threads, progress):
        self.root, self.image_size, self.quality = root, image_size, quality
        self.pool = concurrent.futures.ThreadPoolExecutor(max_workers=num_threads)
        self.spool = open(spool_path, "w+b")
        self.progress = progress
        self.valid = {}  # identity -> [(relpath, offset, length)], in file-name order
        self.skipped = []  # {"path", "reason"}
        self.colour = self.resized = self.enlarged = 0

    def close(self):
        self.pool.shutdown()
        self.spool.close()

    def validate(self, names, listing):
        jobs = [(name, f"{name}/{fname}") for name in names for fname in listing[name]]
        for start in range(0, len(jobs), _GROUP_IMAGES):
            group = jobs[start:start + _GROUP_IMAGES]
            paths = [os.path.join(self.root, *rel.split("/")) for _, rel in group]
            results = self.pool.map(lambda p: _encode_file(p, self.image_size, self.quality), paths)
            for (name, rel), (jpeg, reason, info) in zip(group, results):
                valid = self.valid.setdefault(name, [])
                if jpeg is None:
                    self.skipped.append({"path": rel, "reason": reason})
                    continue
                offset = self.spool.seek(0, os.SEEK_END)
                self.spool.write(jpeg)
                valid.append((rel, offset, len(jpeg)))
                self.colour += info["colour"]
                if (info["width"], info["height"]) != (self.image_size, self.image_size):
                    self.resized += 1
                    self.enlarged += info["width"] * info["height"] < self.image_size ** 2
            self.progress.update(len(group), f", {len(self.skipped)} skipped")
        for name in names:
            self.valid.setdefault(name, [])

    def read(self, offset, length):
        self.spool.seek(offset)
        return self.spool.read(length)


# ----------------------------------------------------------------------------------------------------------------
# Choosing identities

def _select_top(listing, validator, num_identities, min_images):
    """The ``num_identities`` identities with the most readable images (>= ``min_images``), ties by name.

    Identities are validated in order of their file counts, best first; since an identity never has more readable
    images than files, validation stops once the chosen ones beat every identity not yet looked at.
    Returns the names in ranking order.
    """
    candidates = sorted((n for n in listing if len(listing[n]) >= min_images), key=lambda n: (-len(listing[n]), n))
    done = []
    pos = 0
    while pos < len(candidates):
        group, count = [], 0
        while pos < len(candidates) and (count < _GROUP_IMAGES or not group):
            group.append(candidates[pos])
            count += len(listing[candidates[pos]])
            pos += 1
        validator.validate(group, listing)
        done.extend(group)
        if num_identities is None or pos >= len(candidates):
            continue
        ranked = sorted((n for n in done if len(validator.valid[n]) >= min_images),
                        key=lambda n: (-len(validator.valid[n]), n))
        if len(ranked) >= num_identities:
            nth = ranked[num_identities - 1]
            bound = candidates[pos]  # the best an unvalidated identity can do: all its files readable
            if (-len(validator.valid[nth]), nth) < (-len(listing[bound]), bound):
                break
    ranked = sorted((n for n in done if len(validator.valid[n]) >= min_images),
                    key=lambda n: (-len(validator.valid[n]), n))
    return ranked if num_identities is None else ranked[:num_identities]


def split_identity(paths, val_fraction, seed, name):
    """``(train, val)`` of one identity's readable images: ``round(n * f)`` to val, at least one to train."""
    order = sorted(paths)
    random.Random(f"{seed}/{name}").shuffle(order)
    n_val = min(int(math.floor(len(order) * val_fraction + 0.5)), len(order) - 1)
    return sorted(order[n_val:]), sorted(order[:n_val])


# ----------------------------------------------------------------------------------------------------------------
# The builder

def prepare_dataset(root, out_dir, identity_list=None, num_identities=None, min_images=None, val_fraction=0.05,
                    seed=0, image_size=STORED_SIZE, quality=95, num_threads=None, force=False, verbose=True):
    """Build ``train``/``val`` ``.lst``, ``.rec``, ``.idx``, ``classes.txt`` and ``summary.json`` in ``out_dir``.

    Parameters
    ----------
    root : str
        Folder of ``<identity>/<image>`` faces.
    out_dir : str
        Output folder (created if needed). Existing outputs are only replaced with ``force=True``.
    identity_list : str or list of str, optional
        A file with one identity per line, or the names themselves; every one must exist and have a readable
        image. Labels follow the list order.
    num_identities : int, optional
        Keep the identities with the most readable images (ties by name); all qualifying ones when ``None``.
    min_images : int, optional
        Minimum readable images per identity (default 1); not allowed together with ``identity_list``.
    val_fraction, seed : float, int
        Per-identity validation share and the seed of split and list order.
    image_size, quality : int
        Side of the stored gray squares and their JPEG quality.
    num_threads : int, optional
        Decoding/encoding threads (default: all cores).
    force, verbose : bool
        Replace existing outputs; print progress and the summary.

    Returns
    -------
    dict
        The summary also written to ``summary.json``.
    """
    started = time.time()
    root, out_dir = os.fspath(root), os.fspath(out_dir)
    if not os.path.isdir(root):
        raise PrepareError(f"root folder not found: {root}")
    if identity_list is not None and (num_identities is not None or min_images is not None):
        raise PrepareError("choose identities either by --identity-list or by --num-identities/--min-images")
    if not 0.0 <= val_fraction < 1.0:
        raise PrepareError(f"--val-fraction must be in [0, 1), got {val_fraction}")
    if num_identities is not None and num_identities < 1:
        raise PrepareError(f"--num-identities must be >= 1, got {num_identities}")
    if min_images is not None and min_images < 1:
        raise PrepareError(f"--min-images must be >= 1, got {min_images}")
    if image_size < 1 or not 1 <= quality <= 100:
        raise PrepareError(f"--image-size must be >= 1 and --quality in [1, 100], got {image_size}, {quality}")
    num_threads = int(num_threads or os.cpu_count() or 1)

    existing = [name for name in OUTPUT_FILES if os.path.exists(os.path.join(out_dir, name))]
    if existing and not force:
        raise PrepareError(f"{out_dir} already holds {', '.join(existing)}; pass --force to replace them")
    os.makedirs(out_dir, exist_ok=True)

    if isinstance(identity_list, (str, os.PathLike)):
        list_source = os.fspath(identity_list)
        requested = read_identity_list(list_source)
    else:
        list_source = None
        requested = list(identity_list) if identity_list is not None else None
    if requested is not None and not requested:
        raise PrepareError("the identity list is empty")

    listing, empty, non_image, ignored = scan_root(root, exclude=out_dir)
    if requested is not None:
        missing = [name for name in requested if name not in listing]
        if missing:
            absent = [n for n in missing if n not in empty]
            no_images = [n for n in missing if n in empty]
            parts = []
            if absent:
                parts.append(f"{len(absent)} not found under {root}: {_sample(absent)}")
            if no_images:
                parts.append(f"{len(no_images)} with no image files: {_sample(no_images)}")
            raise PrepareError("requested identities missing: " + "; ".join(parts))

    cv_level = _quiet_opencv()
    spool_path = os.path.join(out_dir, _SPOOL)
    tmp = {name: os.path.join(out_dir, name + ".tmp") for name in OUTPUT_FILES}
    progress_total = sum(len(listing[n]) for n in requested) if requested is not None else None
    progress = _Progress("decoded and checked", progress_total, enabled=verbose)
    validator = _Validator(root, spool_path, image_size, quality, num_threads, progress)
    try:
        if requested is not None:
            validator.validate(requested, listing)
            unreadable = [n for n in requested if not validator.valid[n]]
            if unreadable:
                raise PrepareError(f"{len(unreadable)} requested identities have no readable image: "
                                   f"{_sample(unreadable)} (reasons: "
                                   f"{_sample(s['path'] + ': ' + s['reason'] for s in validator.skipped)})")
            chosen = requested
            mode = "list"
        else:
            chosen = sorted(_select_top(listing, validator, num_identities, min_images or 1))
            mode = "top" if num_identities is not None else "all"
            if not chosen:
                raise PrepareError(f"no identity under {root} has at least {min_images or 1} readable images")
        progress.finish(f", {len(validator.skipped)} skipped")

        # ids in (label, path) order; list lines shuffled like im2rec's so num_parts shards mix identities
        splits = {"train": [], "val": []}
        next_id = 0
        for label, name in enumerate(chosen):
            entries = {rel: (off, length) for rel, off, length in validator.valid[name]}
            _, val = split_identity(list(entries), val_fraction, seed, name)
            val = set(val)
            for rel in sorted(entries):
                split = "val" if rel in val else "train"
                splits[split].append((next_id, label, rel) + entries[rel])
                next_id += 1
        for split in ("train", "val"):
            random.Random(f"{seed}/{split}").shuffle(splits[split])

        with open(tmp[CLASSES_FILE], "w", encoding="utf-8") as f:
            f.writelines(name + "\n" for name in chosen)
        for split, items in splits.items():
            with open(tmp[f"{split}.lst"], "w", encoding="utf-8") as f:
                f.writelines(f"{idx}\t{float(label):f}\t{rel}\n" for idx, label, rel, _, _ in items)
            pack = _Progress(f"packed {split}.rec", len(items), enabled=verbose)
            writer = mx.recordio.MXIndexedRecordIO(tmp[f"{split}.idx"], tmp[f"{split}.rec"], "w")
            try:
                for idx, label, rel, off, length in items:
                    header = mx.recordio.IRHeader(0, float(label), idx, 0)
                    writer.write_idx(idx, mx.recordio.pack(header, validator.read(off, length)))
                    pack.update(1)
            finally:
                writer.close()
            pack.finish()

        summary = _summary(root, out_dir, chosen, splits, validator, empty, non_image, ignored, mode=mode,
                           identity_list=list_source, num_identities=num_identities, min_images=min_images,
                           val_fraction=val_fraction, seed=seed, image_size=image_size, quality=quality,
                           num_threads=num_threads, seconds=time.time() - started, scanned=len(listing) + len(empty))
        with open(tmp["summary.json"], "w", encoding="utf-8") as f:
            json.dump(summary, f, indent=1)
            f.write("\n")
        for name in OUTPUT_FILES:  # all outputs appear together, only once everything is written
            files.publish(tmp[name], os.path.join(out_dir, name))
    finally:
        validator.close()
        _restore_opencv(cv_level)
        for path in list(tmp.values()) + [spool_path]:
            if os.path.exists(path):
                os.remove(path)
    if verbose:
        print_summary(summary)
    return summary


def _summary(root, out_dir, chosen, splits, validator, empty, non_image, ignored, *, mode, identity_list,
             num_identities, min_images, val_fraction, seed, image_size, quality, num_threads, seconds, scanned):
    per_identity = [len(validator.valid[n]) for n in chosen]
    counts = {}
    for split, items in splits.items():
        counts[split] = {"images": len(items), "identities": len({label for _, label, _, _, _ in items}),
                         "rec": os.path.join(out_dir, f"{split}.rec")}
    return {
        "root": os.path.abspath(root), "out_dir": os.path.abspath(out_dir),
        "options": {"selection": mode, "identity_list": identity_list, "num_identities": num_identities,
                    "min_images": min_images, "val_fraction": val_fraction, "seed": seed,
                    "image_size": image_size, "quality": quality, "color": "gray", "num_threads": num_threads},
        "num_classes": len(chosen),
        "num_images": sum(per_identity),
        "images_per_identity": {"min": min(per_identity), "max": max(per_identity),
                                "mean": round(sum(per_identity) / len(per_identity), 3)},
        "identities_shortfall": (num_identities - len(chosen)
                                           if num_identities is not None and len(chosen) < num_identities else 0),
        "train": counts["train"], "val": counts["val"],
        "identity_folders_scanned": scanned,
        "identities_checked": len(validator.valid),
        "images_checked": sum(len(v) for v in validator.valid.values()) + len(validator.skipped),
        "converted_colour_to_gray": validator.colour,
        "resized": validator.resized, "enlarged": validator.enlarged,
        "skipped": validator.skipped,
        "empty_identity_folders": empty,
        "non_image_files": non_image,
        "ignored": ignored,
        "seconds": round(seconds, 2),
    }


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
    p(f"stored gray {opts['image_size']}x{opts['image_size']} JPEG q{opts['quality']}; "
      f"{summary['converted_colour_to_gray']} colour images converted to gray, {summary['resized']} resized "
      f"({summary['enlarged']} enlarged); {summary['images_checked']} images of "
      f"{summary['identities_checked']} identities checked in {summary['seconds']} s")
    sections = [
        ("skipped files (not packed)", [f"{s['path']}: {s['reason']}" for s in summary["skipped"]]),
        ("empty identity folders (no image files)", summary["empty_identity_folders"]),
        ("non-image files", summary["non_image_files"]),
        ("ignored entries", [f"{s['path']}: {s['reason']}" for s in summary["ignored"]]),
    ]
    for title, items in sections:
        if not items:
            continue
        p(f"{title}: {len(items)}")
        for item in items[:limit]:
            p(f"    {item}")
        if len(items) > limit:
            p(f"    ... {len(items) - limit} more in {os.path.join(summary['out_dir'], 'summary.json')}")


def _quiet_opencv():
    """OpenCV logs an error line for every corrupt file; we report those ourselves."""
    try:
        level = cv2.utils.logging.getLogLevel()
        cv2.utils.logging.setLogLevel(cv2.utils.logging.LOG_LEVEL_SILENT)
        return level
    except AttributeError:
        return None


def _restore_opencv(level):
    if level is not None:
        cv2.utils.logging.setLogLevel(level)


# ----------------------------------------------------------------------------------------------------------------
# CLI

def build_parser():
    parser = argparse.ArgumentParser(
        prog="python -m lightcnn.prepare",
        description="Pack <root>/<identity>/<image> faces into gray train/val RecordIO for LightCNN.")
    io = parser.add_argument_group("input and output")
    io.add_argument("--root", required=True, help="folder of aligned faces, one sub-folder per identity")
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
    pack.add_argument("--quality", type=int, default=95, help="JPEG quality")
    pack.add_argument("--num-threads", type=int, default=os.cpu_count() or 1, help="decoding/encoding threads")
    cli.add_debug_flag(parser)
    return parser


def _prepare(argv):
    args = build_parser().parse_args(argv)
    prepare_dataset(args.root, args.out, identity_list=args.identity_list, num_identities=args.num_identities,
                    min_images=args.min_images, val_fraction=args.val_fraction, seed=args.seed,
                    image_size=args.image_size, quality=args.quality, num_threads=args.num_threads, force=args.force)
    return 0


def main(argv=None):
    """The dataset builder's command line; returns the exit status (2: bad input)."""
    return cli.run(_prepare, argv)


if __name__ == "__main__":
    raise SystemExit(main())
