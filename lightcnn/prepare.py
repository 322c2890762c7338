"""Build a LightCNN training set from a folder of faces (aligned, or raw photos with ``align``).

``FACES/<identity>/<image>`` (jpg/jpeg/png/pgm/bmp, gray or colour) becomes, in ``DIR``:

- ``train.lst``, ``val.lst``: im2rec's list format, ``index<TAB>label<TAB>relative/path``;
- ``classes.txt``: one identity per line, line i = label i (labels are contiguous, 0..C-1);
- ``train.rec`` + ``train.idx``, ``val.rec`` + ``val.idx``: gray ``image_size`` x ``image_size`` JPEGs
  (quality 95), what ``lightcnn.data`` and ``train_lightcnn.py`` read;
- ``summary.json`` (``lightcnn.dataset_summary``): counts, the chosen options, every skipped file with its reason,
  and ``preprocess``: the whole preprocessing of the stored faces (size, ``fit``, ``align``, the face box measured
  on them), which training records in its checkpoints so that extraction repeats it.

This is im2rec's logic (``--color 0 --quality 95``, shuffled lists, unique record ids) done in-process with a
thread pool, because im2rec skips an undecodable image with a printed line and keeps its entry in the ``.lst``,
and its ``--resize`` only fixes the shorter side. Here every image is decoded, checked and encoded *before*
it enters a list (``lightcnn.packing``); a file that fails is listed in the summary with the reason and never
packed. Each image is decoded once: its encoded JPEG waits in a spool file until the lists are known.

Rules, decided once:
- the folder rules are :func:`lightcnn.faces.scan_root`'s;
- images are converted to gray, made square as ``fit`` says (default: the centre square; ``pad``: black bars;
  ``stretch``: what earlier releases did) and resized to exactly ``image_size`` (``lightcnn.images.resize_square``,
  the feature extractor's function too); the summary counts the images that were not square;
- an image smaller than ``lightcnn.faces.MIN_FACE_SIZE`` on its short side is no face: skipped, with the reason;
- ``align``: each photo's largest face is aligned to the LightCNN template first (``lightcnn.align``, the same
  code as ``python -m lightcnn align``); a photo without a usable face is skipped with the reason;
- identities: those in ``identity_list`` (labels in list order), or the ``num_identities`` identities with the
  most readable images among those with at least ``min_images`` (ties broken by name; labels in name order),
  or every identity with at least ``min_images`` readable images;
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

import dataclasses
import json
import math
import os
import random
import sys
import time

from lightcnn import align as aligning, files, packing
from lightcnn.dataset_summary import SUMMARY_FILE, make_summary
from lightcnn.faces import scan_root
from lightcnn.images import DEFAULT_FIT, FITS, STORED_SIZE, TEMPLATE, Preprocess
from lightcnn.packing import (SPOOL, FaceValidator, PrepareError, cleanup, measure_face_box, pack_records,
                              quiet_opencv, restore_opencv, write_errors)
from lightcnn.progress import Progress

CLASSES_FILE = "classes.txt"  # lightcnn.data.CLASSES_FILE (not imported: MXNet is imported only to pack records)
OUTPUT_FILES = ("train.lst", "val.lst", "train.rec", "train.idx", "val.rec", "val.idx", CLASSES_FILE,
                SUMMARY_FILE)
# The face box is measured on this many stored faces, the first of the shuffled training list (a random sample):
# enough for its medians to settle (README), few enough to keep the detector's time small.
FACE_BOX_SAMPLE = 100


# ----------------------------------------------------------------------------------------------------------------
# Choosing identities and splits

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
        while pos < len(candidates) and (count < packing.GROUP_IMAGES or not group):
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


def _choose_identities(validator, listing, requested, num_identities, min_images, root):
    """``(chosen names in label order, selection mode)``; the images of the candidates are validated on the way."""
    if requested is not None:
        validator.validate(requested, listing)
        unreadable = [n for n in requested if not validator.valid[n]]
        if unreadable:
            raise PrepareError(f"{len(unreadable)} requested identities have no readable image: "
                               f"{_sample(unreadable)} (reasons: "
                               f"{_sample(s['path'] + ': ' + s['reason'] for s in validator.skipped)})")
        return requested, "list"
    chosen = sorted(_select_top(listing, validator, num_identities, min_images or 1))
    if not chosen:
        raise PrepareError(f"no identity under {root} has at least {min_images or 1} readable images")
    return chosen, "top" if num_identities is not None else "all"


def split_identity(paths, val_fraction, seed, name):
    """``(train, val)`` of one identity's readable images: ``round(n * f)`` to val, at least one to train."""
    order = sorted(paths)
    random.Random(f"{seed}/{name}").shuffle(order)
    n_val = min(int(math.floor(len(order) * val_fraction + 0.5)), len(order) - 1)
    return sorted(order[n_val:]), sorted(order[:n_val])


def assign_splits(chosen, valid, val_fraction, seed):
    """``{"train": [...], "val": [...]}`` of ``(record id, label, rel, spool offset, length)``: ids in (label, path)
    order; the lines shuffled like im2rec's so that ``num_parts`` shards mix identities."""
    splits = {"train": [], "val": []}
    next_id = 0
    for label, name in enumerate(chosen):
        entries = {rel: (off, length) for rel, off, length in valid[name]}
        _, val = split_identity(list(entries), val_fraction, seed, name)
        val = set(val)
        for rel in sorted(entries):
            split = "val" if rel in val else "train"
            splits[split].append((next_id, label, rel) + entries[rel])
            next_id += 1
    for split in ("train", "val"):
        random.Random(f"{seed}/{split}").shuffle(splits[split])
    return splits


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
        Replace existing outputs; print progress.
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
    _check_options(root, identity_list, num_identities, min_images, val_fraction, image_size, quality, fit, align,
                   align_policy)
    num_threads = int(num_threads or os.cpu_count() or 1)
    stored, align = _stored_preprocess(root, image_size, fit, align, verbose)
    if os.path.exists(out_dir) and not os.path.isdir(out_dir):
        raise PrepareError(f"--out {out_dir} exists and is not a folder")
    existing = [name for name in OUTPUT_FILES if os.path.exists(os.path.join(out_dir, name))]
    if existing and not force:
        raise PrepareError(f"{out_dir} already holds {', '.join(existing)}; pass --force to replace them")
    list_source, requested = _requested_identities(identity_list)
    # MediaPipe is loaded only here, for align (its install line if missing)
    aligners = aligning.ThreadAligners(TEMPLATE, **(align_policy or {})) if align else None
    folders = scan_root(root, exclude=out_dir)
    if requested is not None:
        _check_requested(requested, folders, root)
    options = dict(identity_list=list_source, num_identities=num_identities, min_images=min_images,
                   val_fraction=val_fraction, seed=seed, quality=quality, num_threads=num_threads,
                   align_policy=dict(aligners.policy) if aligners else None)
    return _build(root, out_dir, folders, requested, stored, aligners, options, verbose, started)


def _check_options(root, identity_list, num_identities, min_images, val_fraction, image_size, quality, fit, align,
                   align_policy):
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


def _stored_preprocess(root, image_size, fit, align, verbose):
    """``(how the stored faces are made, whether this build aligns)``: a tree written by ``python -m lightcnn
    align`` holds aligned faces, recorded as such and never aligned twice."""
    tree_template, _ = aligning.aligned_tree_template(root)
    if tree_template is not None:
        if verbose:
            print(f"[prepare] {root} holds faces aligned by lightcnn.align ({tree_template.describe()}): packed as "
                  f"they are{' (not aligned again)' if align else ''}, recorded as aligned", file=sys.stderr)
        align = False
    if tree_template is not None and image_size != tree_template.size:
        raise PrepareError(f"{root} holds {tree_template.size}x{tree_template.size} aligned faces; --image-size "
                           f"must be {tree_template.size}, got {image_size}")
    return Preprocess(image_size=image_size, fit=fit, align=TEMPLATE if align else tree_template), align


def _requested_identities(identity_list):
    """``(the list file or None, the requested names or None)``."""
    if isinstance(identity_list, (str, os.PathLike)):
        list_source = os.fspath(identity_list)
        requested = read_identity_list(list_source)
    else:
        list_source = None
        requested = list(identity_list) if identity_list is not None else None
    if requested is not None and not requested:
        raise PrepareError("the identity list is empty")
    return list_source, requested


def _check_requested(requested, folders, root):
    listing, empty, _, _ = folders
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


def _build(root, out_dir, folders, requested, stored, aligners, options, verbose, started):
    """Validate, choose, split, pack and publish; nothing is written before here. A failure removes what this build
    wrote (and the folder, if this build made it), and a failed write is one line naming the file."""
    listing = folders[0]
    created = not os.path.isdir(out_dir)
    try:
        os.makedirs(out_dir, exist_ok=True)
    except OSError as error:
        raise PrepareError(f"cannot create the output folder {out_dir}: {error.strerror or error}") from None
    spool_path = os.path.join(out_dir, SPOOL)
    tmp = {name: os.path.join(out_dir, name + ".tmp") for name in OUTPUT_FILES}
    cv_level = quiet_opencv()
    validator = spool = None
    try:
        with write_errors(spool_path):
            spool = open(spool_path, "w+b")
        progress_total = sum(len(listing[n]) for n in requested) if requested is not None else None
        progress = Progress("[prepare] aligned and checked: " if aligners else "[prepare] decoded and checked: ",
                            progress_total, enabled=verbose)
        validator = FaceValidator(root, spool, stored.image_size, options["quality"], stored.fit, aligners,
                                  options["num_threads"], progress)
        chosen, mode = _choose_identities(validator, listing, requested, options["num_identities"],
                                          options["min_images"], root)
        progress.finish(f", {len(validator.skipped)} skipped")
        splits = assign_splits(chosen, validator.valid, options["val_fraction"], options["seed"])
        _write_lists_and_records(tmp, chosen, splits, validator, verbose)
        face_box, face_box_note = _measure_stored_faces(stored, splits, validator, options["num_threads"])
        stored = dataclasses.replace(stored, face_box=face_box)
        summary = make_summary(root, out_dir, chosen, splits, validator, folders, stored, mode=mode,
                               seconds=time.time() - started, **options)
        # also beside "preprocess", where the readers of earlier releases look for it
        summary["face_box"] = face_box.to_dict() if face_box else None
        summary["face_box_note"] = face_box_note
        _publish(tmp, summary, out_dir)
    except BaseException:
        cleanup(validator, spool, aligners, list(tmp.values()) + [spool_path])
        if created:
            try:
                os.rmdir(out_dir)  # empty now, unless someone else put files there
            except OSError:
                pass
        raise
    finally:
        restore_opencv(cv_level)
    cleanup(validator, spool, aligners, [spool_path])
    return summary


def _write_lists_and_records(tmp, chosen, splits, validator, verbose):
    with write_errors(tmp[CLASSES_FILE]), open(tmp[CLASSES_FILE], "w", encoding="utf-8") as f:
        f.writelines(name + "\n" for name in chosen)
    for split, items in splits.items():
        with write_errors(tmp[f"{split}.lst"]), open(tmp[f"{split}.lst"], "w", encoding="utf-8") as f:
            f.writelines(f"{idx}\t{float(label):f}\t{rel}\n" for idx, label, rel, _, _ in items)
        with write_errors(tmp[f"{split}.rec"]):
            pack_records(tmp[f"{split}.idx"], tmp[f"{split}.rec"], items, validator,
                         Progress(f"[prepare] packed {split}.rec: ", len(items), enabled=verbose))


def _measure_stored_faces(stored, splits, validator, num_threads):
    """``(FaceBox or None, note)``: how large the face is in faces used as given, for verify-pair."""
    if stored.align is not None:
        return None, "aligned faces: verify-pair aligns photos instead"
    sample = [validator.read(off, length) for *_, off, length in splits["train"][:FACE_BOX_SAMPLE]]
    return measure_face_box(sample, num_threads)


def _publish(tmp, summary, out_dir):
    """All outputs appear together, only once everything is written."""
    with write_errors(tmp[SUMMARY_FILE]), open(tmp[SUMMARY_FILE], "w", encoding="utf-8") as f:
        json.dump(summary, f, indent=1)
        f.write("\n")
    with write_errors(out_dir):
        # an earlier build's summary goes first: a half-replaced output never passes for a complete one
        files.remove_quietly(os.path.join(out_dir, SUMMARY_FILE))
        for name in OUTPUT_FILES:
            files.publish(tmp[name], os.path.join(out_dir, name))
