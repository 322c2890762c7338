"""The ``summary.json`` the dataset builder (``lightcnn.prepare``) writes beside its ``.rec`` files, and its readers.

It holds the counts, the chosen options, every file left out with the reason and ``preprocess``: the whole
:class:`~lightcnn.images.Preprocess` dict of the stored faces (how they were made: size, ``fit``, ``align``, and the
``face_box`` measured on them). Training reads it (:func:`read_stored_preprocess`) to record it in its checkpoints,
so this module imports only the image rules, not the builder.
"""
import os

from lightcnn import files
from lightcnn.images import Preprocess

SUMMARY_FILE = "summary.json"


class SummaryError(ValueError):
    """A ``summary.json`` that cannot be read; the commands print it in one line and exit with status 2."""


def summary_path_of(rec_path):
    """The ``summary.json`` beside a ``.rec``."""
    return os.path.join(os.path.dirname(os.path.abspath(os.fspath(rec_path))), SUMMARY_FILE)


def make_summary(root, out_dir, chosen, splits, validator, folders, stored, *, mode, identity_list, num_identities,
                 min_images, val_fraction, seed, quality, num_threads, align_policy, seconds):
    """The summary of a build: ``chosen`` identities, ``splits`` (``{"train": [(id, label, rel, ...)], ...}``), what
    the validator (``lightcnn.packing.FaceValidator``) checked and skipped, ``folders`` (what
    ``lightcnn.faces.scan_root`` returned) and the :class:`~lightcnn.images.Preprocess` ``stored``."""
    listing, empty, non_image, ignored = folders
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
        # how the stored faces were made: training records it in its checkpoints (read_stored_preprocess); the
        # readers of earlier releases take image_size, fit and align from it and pass over the other fields
        "preprocess": stored.to_dict(),
        "num_classes": len(chosen),
        "num_images": sum(per_identity),
        "images_per_identity": {"min": min(per_identity), "max": max(per_identity),
                                "mean": round(sum(per_identity) / len(per_identity), 3)},
        "identities_shortfall": (num_identities - len(chosen)
                                 if num_identities is not None and len(chosen) < num_identities else 0),
        "train": counts["train"], "val": counts["val"],
        "identity_folders_scanned": len(listing) + len(empty),
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


def read_stored_preprocess(rec_path):
    """How the faces of a dataset were made, from the ``summary.json`` beside its ``.rec``:
    ``(Preprocess or None, source)``; ``None`` for a ``.rec`` without a summary (im2rec, another tool): nothing is
    known.

    Summaries of earlier releases hold part of the record, and the rest is what those builders did: the defaults,
    ``stretch`` when there is no ``fit`` (:meth:`Preprocess.from_dict`), no ``preprocess`` at all before ``fit`` and
    ``align`` existed, and the face box beside it rather than in it.
    """
    path = summary_path_of(rec_path)
    if not os.path.isfile(path):
        return None, path
    try:
        summary = files.read_json(path)
        record = dict(summary.get("preprocess") or {})
        if "face_box" not in record and summary.get("face_box"):
            record["face_box"] = summary["face_box"]
        stored = Preprocess.from_dict(record)
    except (OSError, ValueError, AttributeError, TypeError) as error:
        raise SummaryError(f"{path} cannot be read as the dataset builder's summary: {error}") from None
    return stored, path
