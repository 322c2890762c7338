"""Build a LightCNN training set from a folder of faces (aligned, or raw photos with ``--align``).

    python -m lightcnn.prepare --root FACES --out DIR [--identity-list FILE | --num-identities N --min-images K]
        [--val-fraction F] [--seed S] [--image-size 144] [--fit crop|pad|stretch] [--align [--min-size 40 ...]]
        [--quality 95] [--num-threads T] [--force]

``FACES/<identity>/<image>`` (jpg/jpeg/png/pgm/bmp, gray or colour) becomes, in ``DIR``:

- ``train.lst``, ``val.lst``: im2rec's list format, ``index<TAB>label<TAB>relative/path``;
- ``classes.txt``: one identity per line, line i = label i (labels are contiguous, 0..C-1);
- ``train.rec`` + ``train.idx``, ``val.rec`` + ``val.idx``: gray ``image_size`` x ``image_size`` JPEGs
  (quality 95), what ``lightcnn.data`` and ``train_lightcnn.py`` read;
- ``summary.json``: counts, the chosen options, every skipped file with its reason, and ``preprocess``: how the
  stored faces were made (size, ``fit``, ``align``), which training records in its checkpoints so that extraction
  repeats it.

This is im2rec's logic (``--color 0 --quality 95``, shuffled lists, unique record ids) done in-process with a
thread pool, because im2rec skips an undecodable image with a printed line and keeps its entry in the ``.lst``,
and its ``--resize`` only fixes the shorter side. Here every image is decoded, checked and encoded *before*
it enters a list; a file that fails is listed in the summary with the reason and never packed. Each image is
decoded once: its encoded JPEG waits in a spool file until the lists are known.

Rules, decided once:
- images are converted to gray, made square as ``--fit`` says (default: the centre square; ``pad``: black bars;
  ``stretch``: what earlier releases did) and resized to exactly ``image_size`` (``lightcnn.images.resize_square``,
  the feature extractor's function too); the summary counts the images that were not square;
- an image smaller than ``lightcnn.images.MIN_FACE_SIZE`` (32 px) on its short side is no face: skipped, with the
  reason;
- ``--align``: each photo's largest face is aligned to the LightCNN template first (``lightcnn.align``, the same
  code as ``python -m lightcnn.align``); a photo without a usable face is skipped with the reason;
- identities: those in ``--identity-list`` (labels in list order), or the ``--num-identities`` identities with the
  most readable images among those with at least ``--min-images`` (ties broken by name; labels in name order),
  or every identity with at least ``--min-images`` readable images;
- split: per identity, with a RNG seeded by ``(seed, identity)``, ``round(n * val_fraction)`` images go to
  validation, but at least one always stays in training;
- record ids are unique over both splits (identity label order, then path order); the list lines (and records)
  are shuffled with ``seed``, as im2rec does, so ``num_parts`` shards of a ``.rec`` hold a mix of identities.

Whatever the root holds, the builder neither crashes nor hangs: symbolic-link loops, broken links, pipes and
devices named like images, names that are not UTF-8 and a second link to the same identity folder are listed with
the reason and left out. A build that fails (a read-only output, a full disk) says why in one line and removes what
it wrote, including the output folder when it made it.
"""
from __future__ import annotations

import argparse
import concurrent.futures
import contextlib
import errno
import json
import math
import os
import random
import shutil
import stat
import statistics
import sys
import time

import cv2

from lightcnn import align as aligning, cli, files
from lightcnn.images import (DEFAULT_FIT, FIT_WORDS, FITS, LEGACY_FIT, STORED_SIZE, TEMPLATE, FaceBox, Preprocess,
                             Template, decode_gray, is_image_file, read_image_file, resize_square, too_small)
from lightcnn.progress import Progress

CLASSES_FILE = "classes.txt"  # lightcnn.data.CLASSES_FILE (not imported: MXNet is imported only to pack records)
OUTPUT_FILES = ("train.lst", "val.lst", "train.rec", "train.idx", "val.rec", "val.idx", CLASSES_FILE,
                "summary.json")
_SPOOL = ".prepare-spool.tmp"
_GROUP_IMAGES = 2048  # images validated per thread-pool round (bounds the results held in memory)
# The face box is measured on this many stored faces, the first of the shuffled training list (a random sample):
# on LFW crops the medians of 20 disjoint samples of 100 were within 0.01 of the median of 2,000; 100 take about 2 s
# on 2 busy cores.
FACE_BOX_SAMPLE = 100


class PrepareError(ValueError):
    """A problem with the input or the options; the CLI prints it and exits with status 2."""


# ----------------------------------------------------------------------------------------------------------------
# Scanning

def _kind(path):
    """``("dir" | "file" | "other", None)`` for what ``path`` is after following links, or ``(None, reason)`` when
    it cannot be told (a link loop, a broken link, no permission)."""
    try:
        mode = os.stat(path).st_mode
    except OSError as error:
        if error.errno == errno.ELOOP:
            return None, "symbolic link loop"
        if error.errno == errno.ENOENT and os.path.islink(path):
            return None, "broken symbolic link"
        return None, f"cannot inspect: {error.strerror or error}"
    if stat.S_ISDIR(mode):
        return "dir", None
    if stat.S_ISREG(mode):
        return "file", None
    return "other", "not a regular file (a pipe, socket or device)"


def _bad_name(name):
    """Why a file or folder name cannot go into a list file, or None."""
    if any(c in name for c in "\t\r\n"):
        return "tab or line break in the name"
    try:
        name.encode("utf-8")
    except UnicodeEncodeError:
        return "name is not valid UTF-8"
    return None


def _printable(name):
    """A name for messages and summary.json even when it is not valid UTF-8."""
    return os.fsencode(name).decode("utf-8", "backslashreplace")  # b"bad\xff.png" -> "bad\\xff.png"


def scan_root(root, exclude=None):
    """List ``root``'s identity folders and their candidate image files (by extension).

    Returns ``(identities, empty_folders, non_image_files, ignored)``: ``identities`` maps a folder name to its
    sorted image file names; ``empty_folders`` are identity folders without any image file; ``non_image_files``
    are files in identity folders whose extension is not an image's; ``ignored`` lists other entries (files
    directly under ``root``, sub-folders of identity folders, hidden folders, the output folder, link loops, broken
    links, pipes and devices, names that are not UTF-8, a second link to an identity folder already listed) with a
    reason. Identity folders and images reached through symbolic links are used like any other.
    """
    exclude = os.path.realpath(exclude) if exclude else None
    identities, empty, non_image, ignored = {}, [], [], []
    seen = {}  # real path of an identity folder -> its name (two names for one folder would be two labels)

    def ignore(path, reason):
        ignored.append({"path": _printable(path), "reason": reason})

    try:
        entries = sorted(os.scandir(root), key=lambda e: e.name)
    except OSError as error:
        raise PrepareError(f"cannot list the root folder {root}: {error.strerror or error}") from None
    for entry in entries:
        kind, problem = _kind(entry.path)
        if problem and kind is None:
            ignore(entry.name, problem)
            continue
        if kind != "dir":
            ignore(entry.name, "file outside any identity folder")
            continue
        real = os.path.realpath(entry.path)
        if exclude and real == exclude:
            ignore(entry.name, "the output folder")
            continue
        if entry.name.startswith("."):
            ignore(entry.name, "hidden folder")
            continue
        problem = _bad_name(entry.name)
        if problem:
            ignore(entry.name, problem)
            continue
        if real in seen:
            ignore(entry.name, f"the same folder as identity {seen[real]} (a symbolic link to it)")
            continue
        seen[real] = entry.name
        try:
            subs = sorted(os.scandir(entry.path), key=lambda e: e.name)
        except OSError as error:
            ignore(entry.name, f"cannot list the identity folder: {error.strerror or error}")
            continue
        images = []
        for sub in subs:
            rel = f"{entry.name}/{sub.name}"
            kind, problem = _kind(sub.path)
            if kind == "dir":
                ignore(rel, "sub-folder inside an identity folder (not searched)")
            elif not is_image_file(sub.name):
                if kind is None:
                    ignore(rel, problem)
                else:
                    non_image.append(_printable(rel))
            elif problem or _bad_name(sub.name):
                ignore(rel, problem or _bad_name(sub.name))
            else:
                images.append(sub.name)
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

def encode_face(data, image_size=STORED_SIZE, quality=95, fit=DEFAULT_FIT):
    """Encoded image bytes -> ``(jpeg bytes, None, info)`` or ``(None, reason, {})`` when it cannot be used."""
    if not data:
        return None, "empty file (0 bytes)", {}
    img, colour = decode_gray(data)
    if img is None:
        return None, "cannot decode: corrupt, truncated or not a supported image", {}
    small = too_small(img)  # under MIN_FACE_SIZE: skipped with the reason, not packed
    if small:
        return None, small, {}
    h, w = img.shape
    return _jpeg(resize_square(img, image_size, fit), quality, {"colour": colour, "width": w, "height": h})


def _jpeg(img, quality, info):
    ok, buf = cv2.imencode(".jpg", img, [cv2.IMWRITE_JPEG_QUALITY, int(quality)])
    if not ok:
        return None, "JPEG encoding failed", {}
    return buf.tobytes(), None, info


def _encode_file(path, image_size, quality, fit, aligners=None):
    """One image file -> what :func:`encode_face` returns; aligned first when ``aligners`` (a
    :class:`lightcnn.align.ThreadAligners`) is given."""
    if aligners is not None:
        result = aligners.align_file(path)
        if not result.ok:
            plain = result.reason.startswith(("not found", "cannot read", "cannot decode", "empty file", "too small"))
            return None, result.reason if plain else f"not aligned: {result.reason}", {}
        return _jpeg(result.image, quality, {"colour": result.colour, "note": result.note, "aligned": True})
    try:
        data = read_image_file(path)
    except OSError as error:
        return None, f"cannot read: {error.strerror or error}", {}
    return encode_face(data, image_size, quality, fit)


class _Validator:
    """Decodes, checks and encodes (aligning first with ``aligners``) the images of identities on a thread pool,
    spooling the JPEGs to disk."""

    def __init__(self, root, spool, image_size, quality, fit, aligners, num_threads, progress):
        self.root, self.image_size, self.quality, self.fit, self.aligners = root, image_size, quality, fit, aligners
        self.pool = concurrent.futures.ThreadPoolExecutor(max_workers=num_threads, thread_name_prefix="prepare")
        self.spool = spool
        self.progress = progress
        self.valid = {}  # identity -> [(relpath, offset, length)], in file-name order
        self.skipped = []  # {"path", "reason"}
        self.notes = []  # {"path", "note"}: aligned, with something to say (several faces)
        self.colour = self.resized = self.enlarged = self.not_square = 0

    def close(self):
        self.pool.shutdown(cancel_futures=True)

    def validate(self, names, listing):
        jobs = [(name, f"{name}/{fname}") for name in names for fname in listing[name]]
        encode = lambda path: _encode_file(path, self.image_size, self.quality, self.fit, self.aligners)  # noqa
        for start in range(0, len(jobs), _GROUP_IMAGES):
            group = jobs[start:start + _GROUP_IMAGES]
            paths = [os.path.join(self.root, *rel.split("/")) for _, rel in group]
            for (name, rel), (jpeg, reason, info) in zip(group, self.pool.map(encode, paths)):
                valid = self.valid.setdefault(name, [])
                if jpeg is None:
                    self.skipped.append({"path": rel, "reason": reason})
                    continue
                with _writing(self.spool.name):  # the seek too: it writes out what the buffer holds
                    offset = self.spool.seek(0, os.SEEK_END)
                    self.spool.write(jpeg)
                valid.append((rel, offset, len(jpeg)))
                self.colour += bool(info["colour"])
                if info.get("note"):
                    self.notes.append({"path": rel, "note": info["note"]})
                if info.get("aligned"):
                    continue
                if (info["width"], info["height"]) != (self.image_size, self.image_size):
                    self.resized += 1
                    self.enlarged += info["width"] * info["height"] < self.image_size ** 2
                    self.not_square += info["width"] != info["height"]
            self.progress.update(len(group), f", {len(self.skipped)} skipped")
        with _writing(self.spool.name):  # now, not at the first read, which would blame the records' file
            self.spool.flush()
        for name in names:
            self.valid.setdefault(name, [])

    def read(self, offset, length):
        self.spool.seek(offset)
        return self.spool.read(length)


@contextlib.contextmanager
def _writing(path):
    """A failed write (Python's OSError, or MXNet's C++ error from the record writer) as one PrepareError naming the
    file and the reason (with the space left on its device, when that may be the reason)."""
    try:
        yield
    except OSError as error:
        failed = error
    except Exception as error:  # noqa: BLE001 (MXNet's error class is only importable with MXNet)
        if type(error).__name__ != "MXNetError":
            raise
        failed = error
    else:
        return
    reason, code = files.write_reason(path, failed)  # MXNet's C++ text does not say why: the disk is asked
    full = code in (errno.ENOSPC, errno.EDQUOT) or code is None and not isinstance(failed, OSError)
    free = ""
    if full:
        try:
            free = f"; {shutil.disk_usage(os.path.dirname(os.path.abspath(path))).free / 2 ** 20:.1f} MB free there"
        except OSError:
            pass
    raise PrepareError(f"cannot write {path}: {reason}{free}") from None


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
                    seed=0, image_size=STORED_SIZE, quality=95, num_threads=None, force=False, verbose=True,
                    fit=DEFAULT_FIT, align=False, align_policy=None):
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
        Decoding/encoding (and aligning) threads (default: all cores).
    force, verbose : bool
        Replace existing outputs; print progress and the summary.
    fit : {"crop", "pad", "stretch"}
        How a face that is not square becomes square (:func:`lightcnn.images.make_square`).
    align : bool
        Align each photo's largest face to the LightCNN template first (:mod:`lightcnn.align`; needs MediaPipe).
    align_policy : dict, optional
        ``min_size``, ``max_outside``, ``pad``, ``min_confidence`` of :class:`lightcnn.align.Aligner`.

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
    if fit not in FITS:
        raise PrepareError(f"--fit must be one of {', '.join(FITS)}, got {fit!r}")
    if align and image_size != TEMPLATE.size:
        raise PrepareError(f"--align writes {TEMPLATE.size}x{TEMPLATE.size} faces (the LightCNN template); "
                           f"--image-size must be {TEMPLATE.size}, got {image_size}")
    if align_policy and not align:
        raise PrepareError("--min-size, --max-outside, --pad and --min-confidence are alignment settings: add --align")
    num_threads = int(num_threads or os.cpu_count() or 1)
    # a tree written by `python -m lightcnn.align` holds aligned faces: recorded as such, never aligned twice
    tree_template, _ = aligning.aligned_tree_template(root)
    if tree_template is not None:
        if verbose:
            print(f"[prepare] {root} holds faces aligned by lightcnn.align ({tree_template.describe()}): packed as "
                  f"they are{' (not aligned again)' if align else ''}, recorded as aligned", file=sys.stderr)
        align = False
    if tree_template is not None and image_size != tree_template.size:
        raise PrepareError(f"{root} holds {tree_template.size}x{tree_template.size} aligned faces; --image-size "
                           f"must be {tree_template.size}, got {image_size}")
    stored = Preprocess(image_size=image_size, fit=fit, align=TEMPLATE if align else tree_template)

    if os.path.exists(out_dir) and not os.path.isdir(out_dir):
        raise PrepareError(f"--out {out_dir} exists and is not a folder")
    existing = [name for name in OUTPUT_FILES if os.path.exists(os.path.join(out_dir, name))]
    if existing and not force:
        raise PrepareError(f"{out_dir} already holds {', '.join(existing)}; pass --force to replace them")

    if isinstance(identity_list, (str, os.PathLike)):
        list_source = os.fspath(identity_list)
        requested = read_identity_list(list_source)
    else:
        list_source = None
        requested = list(identity_list) if identity_list is not None else None
    if requested is not None and not requested:
        raise PrepareError("the identity list is empty")

    aligners = None
    if align:
        # MediaPipe is loaded only here, for --align (its install line if missing)
        aligners = aligning.ThreadAligners(TEMPLATE, **(align_policy or {}))

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

    # Nothing is written before here; from here on, a failure removes what this build wrote (and the folder, if
    # this build made it), and a failed write is one line naming the file.
    created = not os.path.isdir(out_dir)
    try:
        os.makedirs(out_dir, exist_ok=True)
    except OSError as error:
        raise PrepareError(f"cannot create the output folder {out_dir}: {error.strerror or error}") from None
    spool_path = os.path.join(out_dir, _SPOOL)
    tmp = {name: os.path.join(out_dir, name + ".tmp") for name in OUTPUT_FILES}
    cv_level = _quiet_opencv()
    validator = spool = None
    try:
        with _writing(spool_path):
            spool = open(spool_path, "w+b")
        progress_total = sum(len(listing[n]) for n in requested) if requested is not None else None
        progress = Progress("[prepare] aligned and checked: " if align else "[prepare] decoded and checked: ",
                                progress_total,
                             enabled=verbose)
        validator = _Validator(root, spool, image_size, quality, fit, aligners, num_threads, progress)
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

        with _writing(tmp[CLASSES_FILE]), open(tmp[CLASSES_FILE], "w", encoding="utf-8") as f:
            f.writelines(name + "\n" for name in chosen)
        for split, items in splits.items():
            with _writing(tmp[f"{split}.lst"]), open(tmp[f"{split}.lst"], "w", encoding="utf-8") as f:
                f.writelines(f"{idx}\t{float(label):f}\t{rel}\n" for idx, label, rel, _, _ in items)
            with _writing(tmp[f"{split}.rec"]):
                _pack(tmp[f"{split}.idx"], tmp[f"{split}.rec"], items, validator,
                      Progress(f"[prepare] packed {split}.rec: ", len(items), enabled=verbose))

        face_box, face_box_note = None, "aligned faces: lightcnn.verify aligns photos instead"
        if stored.align is None:  # faces used as given: how large the face is in them, for lightcnn.verify
            sample = [validator.read(off, length) for *_, off, length in splits["train"][:FACE_BOX_SAMPLE]]
            face_box, face_box_note = measure_face_box(sample, num_threads)
        summary = _summary(root, out_dir, chosen, splits, validator, empty, non_image, ignored, stored, mode=mode,
                           identity_list=list_source, num_identities=num_identities, min_images=min_images,
                           val_fraction=val_fraction, seed=seed, quality=quality, num_threads=num_threads,
                           align_policy=dict(aligners.policy) if aligners else None,
                           seconds=time.time() - started, scanned=len(listing) + len(empty))
        # a measurement, not a rule of how faces were made: beside "preprocess"; training records it (read_face_box)
        summary["face_box"] = face_box.to_dict() if face_box else None
        summary["face_box_note"] = face_box_note
        with _writing(tmp["summary.json"]), open(tmp["summary.json"], "w", encoding="utf-8") as f:
            json.dump(summary, f, indent=1)
            f.write("\n")
        with _writing(out_dir):
            # an earlier build's summary goes first: a half-replaced output never passes for a complete one
            files.remove_quietly(os.path.join(out_dir, "summary.json"))
            for name in OUTPUT_FILES:  # all outputs appear together, only once everything is written
                files.publish(tmp[name], os.path.join(out_dir, name))
    except BaseException:
        _cleanup(validator, spool, aligners, list(tmp.values()) + [spool_path])
        if created:
            try:
                os.rmdir(out_dir)  # empty now, unless someone else put files there
            except OSError:
                pass
        raise
    finally:
        _restore_opencv(cv_level)
    _cleanup(validator, spool, aligners, [spool_path])
    if verbose:
        print_summary(summary)
    return summary


def _pack(idx_path, rec_path, items, validator, progress):
    """Write the records of ``items`` (id, label, rel, spool offset, length) into an indexed RecordIO."""
    import mxnet as mx  # only here: scanning and aligning (lightcnn.align uses scan_root) never import MXNet

    writer = mx.recordio.MXIndexedRecordIO(idx_path, rec_path, "w")
    try:
        for idx, label, rel, off, length in items:
            header = mx.recordio.IRHeader(0, float(label), idx, 0)
            writer.write_idx(idx, mx.recordio.pack(header, validator.read(off, length)))
            progress.update(1)
    finally:
        writer.close()
    progress.finish()


def _cleanup(validator, spool, aligners, paths):
    """Stop the threads, close the spool and remove temporary files; every step is tried even when one fails, and
    none of them raises (cleanup must not hide the error being handled, nor leave a full disk full)."""
    for step in (validator.close if validator else None, spool.close if spool else None,
                 aligners.close if aligners else None):
        if step is None:
            continue
        try:
            step()
        except Exception:  # noqa: BLE001 (e.g. a full disk refusing the spool's last flush)
            pass
    files.remove_quietly(*[path for path in paths if os.path.lexists(path)])


def _summary(root, out_dir, chosen, splits, validator, empty, non_image, ignored, stored, *, mode, identity_list,
             num_identities, min_images, val_fraction, seed, quality, num_threads, align_policy, seconds, scanned):
    per_identity = [len(validator.valid[n]) for n in chosen]
    counts = {}
    for split, items in splits.items():
        counts[split] = {"images": len(items), "identities": len({label for _, label, _, _, _ in items}),
                         "rec": os.path.join(out_dir, f"{split}.rec")}
    return {
        "root": os.path.abspath(root), "out_dir": os.path.abspath(out_dir),
        "options": {"selection": mode, "identity_list": identity_list, "num_identities": num_identities,
                    "min_images": min_images, "val_fraction": val_fraction, "seed": seed,
                    "image_size": stored.image_size, "quality": quality, "color": "gray", "num_threads": num_threads,
                    "fit": stored.fit, "align": stored.align is not None, "align_policy": align_policy},
        # how the stored faces were made: training records it in its checkpoints (read_stored_preprocess)
        "preprocess": {"image_size": stored.image_size, "fit": stored.fit,
                       "align": stored.align.to_dict() if stored.align else None},
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
        "resized": validator.resized, "enlarged": validator.enlarged, "not_square": validator.not_square,
        "skipped": validator.skipped,
        "aligned_notes": validator.notes,
        "empty_identity_folders": empty,
        "non_image_files": non_image,
        "ignored": ignored,
        "seconds": round(seconds, 2),
    }


def measure_face_box(faces, num_threads=1):
    """Where MediaPipe's face detector puts its box in stored faces (encoded squares): ``(FaceBox or None, note)``.

    The medians, over the faces where it finds one, of the largest box's width over the side and of its centre over
    the side (:class:`lightcnn.images.FaceBox`). None, with the reason, without MediaPipe or when it finds a face in
    fewer than half of them (not faces, or drawn ones it does not know).
    """
    if not faces:
        return None, "not measured: no faces"
    if not aligning.mediapipe_available():
        return None, f"not measured: mediapipe is not installed (pip install {aligning.INSTALL})"
    detectors = aligning.ThreadAligners(Template(landmarks="detector"))  # detection only: no face mesh

    def box(data):
        gray, _ = decode_gray(data)
        found = detectors.get().detect(gray) if gray is not None else None
        if not found:
            return None
        side = gray.shape[1]
        x0, y0, x1, y1 = found[0].box  # corners are pixel indices: +0.5 makes the centre continuous
        return found[0].width / side, ((x0 + x1) / 2 + 0.5) / side, ((y0 + y1) / 2 + 0.5) / side

    with detectors, concurrent.futures.ThreadPoolExecutor(max(1, num_threads)) as pool:
        boxes = [b for b in pool.map(box, faces) if b is not None]
    if len(boxes) * 2 < len(faces):
        return None, (f"not measured: the face detector found a face in {len(boxes)} of {len(faces)} sampled "
                      f"stored faces")
    share, x, y = (round(statistics.median(b[i] for b in boxes), 4) for i in range(3))
    return FaceBox(share, x, y, images=len(boxes)), None


def read_face_box(rec_path):
    """The :class:`FaceBox` measured on a dataset's faces (the ``summary.json`` beside its ``.rec``), or None
    when nothing was measured (aligned faces, no MediaPipe, a summary of an earlier release, no summary)."""
    path = os.path.join(os.path.dirname(os.path.abspath(os.fspath(rec_path))), "summary.json")
    if not os.path.isfile(path):
        return None
    try:
        record = files.read_json(path).get("face_box")
        return FaceBox.from_dict(record) if record else None
    except (OSError, ValueError, AttributeError, TypeError) as error:
        raise PrepareError(f"{path}: its face_box cannot be read: {error}") from None


def read_stored_preprocess(rec_path):
    """How the faces of a dataset were made, from the ``summary.json`` beside its ``.rec``:
    ``({"fit": ..., "align": Template or None}, source)``.

    A summary of an earlier release (without ``preprocess``) means ``stretch`` and not aligned, what that builder
    did; a ``.rec`` without a summary (im2rec, another tool) gives ``None``: nothing is known.
    """
    path = os.path.join(os.path.dirname(os.path.abspath(os.fspath(rec_path))), "summary.json")
    if not os.path.isfile(path):
        return None, path
    try:
        summary = files.read_json(path)
        record = summary.get("preprocess") or {"fit": LEGACY_FIT, "align": None}
        align = record.get("align")
        stored = {"fit": record.get("fit", LEGACY_FIT), "align": Template.from_dict(align) if align else None}
        if stored["fit"] not in FITS:
            raise ValueError(f"unknown fit {stored['fit']!r}")
    except (OSError, ValueError, AttributeError, TypeError) as error:
        raise PrepareError(f"{path} cannot be read as the dataset builder's summary: {error}") from None
    return stored, path


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
        p(f"face size (for lightcnn.verify): the detector's {box.describe()} (medians of {box.images} faces)")
    elif not opts["align"] and summary.get("face_box_note"):
        p(f"face size (for lightcnn.verify): {summary['face_box_note']}")
    sections = [
        ("skipped files (not packed)", [f"{s['path']}: {s['reason']}" for s in summary["skipped"]]),
        ("aligned, with a note", [f"{s['path']}: {s['note']}" for s in summary["aligned_notes"]]),
        ("empty identity folders (no image files)", summary["empty_identity_folders"]),
        ("non-image files", summary["non_image_files"]),
        ("ignored entries", [f"{s['path']}: {s['reason']}" for s in summary["ignored"]]),
    ]
    cli.print_listed(p, sections, limit, os.path.join(summary['out_dir'], 'summary.json'))


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
    aligning.add_policy_flags(parser, unset=True)  # only with --align
    cli.add_debug_flag(parser)
    return parser


def _prepare(argv):
    args = build_parser().parse_args(argv)
    policy = aligning.given_policy(args)
    prepare_dataset(args.root, args.out, identity_list=args.identity_list, num_identities=args.num_identities,
                    min_images=args.min_images, val_fraction=args.val_fraction, seed=args.seed,
                    image_size=args.image_size, quality=args.quality, num_threads=args.num_threads, force=args.force,
                    fit=args.fit, align=args.align, align_policy=policy or None)
    return 0


def main(argv=None):
    """The dataset builder's command line; returns the exit status (2: bad input)."""
    return cli.run(_prepare, argv)


if __name__ == "__main__":
    raise SystemExit(main())
