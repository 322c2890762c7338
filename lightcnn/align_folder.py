"""A folder of photos -> the same tree of gray faces on the LightCNN template, aligned on threads.

``PHOTOS/<identity>/<image>`` becomes ``ALIGNED/<identity>/<image>``: the same relative path and format (JPEG
quality 95), gray 144x144, so image lists and LFW's ``pairs.txt`` resolve in the aligned tree as in the original.
``ALIGNED/summary.json`` lists every image that was not aligned with its reason (unreadable, no face found, face too
small, face cut off by the image border, no landmarks) and every aligned image with a note (several faces: the
largest was taken). Nothing is dropped silently; a non-empty output folder needs ``force``. The folder rules are
the dataset builder's (:func:`lightcnn.faces.scan_root`). The summary records the template, so the extractor knows
the tree is aligned (:func:`lightcnn.align.aligned_tree_template`) and does not align it again.
"""
import concurrent.futures
import os
import time

import cv2

from lightcnn import files
from lightcnn.align import ALIGNED_TREE_TOOL, AlignError, ThreadAligners
from lightcnn.dataset_summary import SUMMARY_FILE
from lightcnn.faces import scan_root
from lightcnn.images import TEMPLATE
from lightcnn.progress import Progress


def align_folder(root, out_dir, template=TEMPLATE, workers=None, quality=95, force=False, verbose=True, **policy):
    """Align every image of ``root/<identity>/<image>`` into ``out_dir/<identity>/<image>``.

    The output keeps each file's relative path and format (JPEG at ``quality``), so image lists and LFW's
    ``pairs.txt`` resolve in it as in ``root``. The folder rules are the dataset builder's
    (:func:`lightcnn.faces.scan_root`).

    Parameters
    ----------
    root, out_dir : str
        Input tree and output folder; ``out_dir`` must not hold files unless ``force``.
    template : Template
        Output geometry and landmark source.
    **policy
        ``min_size``, ``max_outside``, ``pad``, ``min_confidence`` (POLICY_DEFAULTS for those not given); see
        :class:`lightcnn.align.Aligner`.
    workers : int, optional
        Threads, each with its own :class:`lightcnn.align.Aligner` (default: the core count).
    quality : int
        JPEG quality of ``.jpg`` outputs.
    force, verbose : bool
        Write into a non-empty ``out_dir`` (replacing outputs); print progress.

    Returns
    -------
    dict
        The summary, also written to ``out_dir/summary.json``: the template, counts, options, every image not
        aligned with its reason, every aligned image with a note, and the folder problems the scan found.
    """
    started = time.time()
    root, out_dir = os.fspath(root), os.fspath(out_dir)
    _check_folders(root, out_dir, quality, force)
    workers = max(1, int(workers or os.cpu_count() or 1))
    aligners = ThreadAligners(template, **policy)  # checks the policy and says how to install MediaPipe
    listing, empty, non_image, ignored = scan_root(root, exclude=out_dir)
    rels = [f"{name}/{fname}" for name in sorted(listing) for fname in listing[name]]
    os.makedirs(out_dir, exist_ok=True)
    not_aligned, notes = _align_all(root, out_dir, rels, aligners, workers, quality, verbose)
    summary = {
        "tool": ALIGNED_TREE_TOOL,
        "template": template.to_dict(),
        "root": os.path.abspath(root), "out_dir": os.path.abspath(out_dir),
        "options": dict(aligners.policy, workers=workers, quality=quality),
        "images": len(rels), "aligned": len(rels) - len(not_aligned), "not_aligned_count": len(not_aligned),
        "identities": len(listing),
        "not_aligned": not_aligned, "notes": notes,
        "empty_identity_folders": empty, "non_image_files": non_image, "ignored": ignored,
        "seconds": round(time.time() - started, 2),
    }
    files.write_json(os.path.join(out_dir, SUMMARY_FILE), summary)
    return summary


def _check_folders(root, out_dir, quality, force):
    if not os.path.isdir(root):
        raise AlignError(f"root folder not found: {root}")
    if os.path.realpath(root) == os.path.realpath(out_dir):
        raise AlignError("--out must differ from --root")
    if os.path.exists(out_dir) and not os.path.isdir(out_dir):
        raise AlignError(f"--out {out_dir} exists and is not a folder")
    if os.path.isdir(out_dir) and any(os.scandir(out_dir)) and not force:
        raise AlignError(f"{out_dir} is not empty; pass --force to write into it (aligned images are replaced)")
    if not 1 <= quality <= 100:
        raise AlignError(f"--quality must be in [1, 100], got {quality}")


def _align_all(root, out_dir, rels, aligners, workers, quality, verbose):
    """Align and write the images ``rels`` on ``workers`` threads: ``(not aligned, notes)``."""
    progress = Progress("[align] ", len(rels), enabled=verbose)
    not_aligned, notes = [], []
    written = 0

    def one(rel):
        result = aligners.align_file(os.path.join(root, *rel.split("/")))
        encoded = _encode(result.image, os.path.splitext(rel)[1].lower(), quality) if result.ok else None
        return rel, result, encoded

    with aligners, concurrent.futures.ThreadPoolExecutor(workers, thread_name_prefix="align") as pool:
        for rel, result, encoded in pool.map(one, rels):
            dst = os.path.join(out_dir, *rel.split("/"))
            try:
                if result.ok:
                    _write(dst, encoded)
                    written += 1
                elif os.path.lexists(dst):
                    os.remove(dst)  # a stale output of an earlier run (--force) must not pass for this run's
            except OSError as error:
                pool.shutdown(wait=True, cancel_futures=True)
                raise AlignError(f"cannot write {dst}: {error.strerror or error} ({written} aligned images were "
                                 f"written under {out_dir} before it; run again with --force)") from None
            if not result.ok:
                not_aligned.append({"path": rel, "reason": result.reason})
            if result.note:
                notes.append({"path": rel, "note": result.note})
            progress.update(1, f", {len(not_aligned)} not aligned")
    progress.finish(f", {len(not_aligned)} not aligned")
    return not_aligned, notes


def _encode(image, ext, quality):
    params = [cv2.IMWRITE_JPEG_QUALITY, int(quality)] if ext in (".jpg", ".jpeg") else []
    ok, buf = cv2.imencode(ext, image, params)
    if not ok:
        raise ValueError(f"cannot encode {ext}")
    return buf.tobytes()


def _write(path, data):
    """Write through a temporary name (a killed run leaves no half image); the file gets the umask's mode."""
    os.makedirs(os.path.dirname(path), exist_ok=True)
    tmp = path + ".tmp"
    try:
        with open(tmp, "wb") as f:
            f.write(data)
        os.replace(tmp, path)
    except BaseException:
        files.remove_quietly(tmp)
        raise

