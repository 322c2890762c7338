"""The dataset builder's packing half: each face decoded, checked and encoded once, spooled, then written as records.

Every image is decoded, checked (``lightcnn.faces.too_small``) and encoded as a gray JPEG on a thread pool
(:class:`FaceValidator`), aligned first when the build aligns; a file that fails is listed with the reason and never
packed. The encoded faces wait in a spool file until the identities and splits are chosen
(``lightcnn.prepare``), then :func:`pack_records` writes them into an indexed RecordIO. A failed write (a full disk,
a read-only folder) is one :class:`PrepareError` naming the file (:func:`write_errors`).
"""
from __future__ import annotations

import concurrent.futures
import contextlib
import errno
import os
import shutil
import statistics

import cv2

from lightcnn import align as aligning, files
from lightcnn.faces import too_small
from lightcnn.images import DEFAULT_FIT, STORED_SIZE, FaceBox, Template, decode_gray, read_image_file, resize_square

SPOOL = ".prepare-spool.tmp"
GROUP_IMAGES = 2048  # images validated per thread-pool round (bounds the results held in memory)


class PrepareError(ValueError):
    """A problem with the input, the options or the output of the dataset builder; the command prints it and exits
    with status 2."""


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


class FaceValidator:
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
        for start in range(0, len(jobs), GROUP_IMAGES):
            group = jobs[start:start + GROUP_IMAGES]
            paths = [os.path.join(self.root, *rel.split("/")) for _, rel in group]
            for (name, rel), (jpeg, reason, info) in zip(group, self.pool.map(encode, paths)):
                valid = self.valid.setdefault(name, [])
                if jpeg is None:
                    self.skipped.append({"path": rel, "reason": reason})
                    continue
                with write_errors(self.spool.name):  # the seek too: it writes out what the buffer holds
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
        with write_errors(self.spool.name):  # now, not at the first read, which would blame the records' file
            self.spool.flush()
        for name in names:
            self.valid.setdefault(name, [])

    def read(self, offset, length):
        self.spool.seek(offset)
        return self.spool.read(length)


@contextlib.contextmanager
def write_errors(path):
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


def pack_records(idx_path, rec_path, items, validator, progress):
    """Write the records of ``items`` (id, label, rel, spool offset, length) into an indexed RecordIO."""
    import mxnet as mx  # only here: scanning, checking and aligning never import MXNet

    writer = mx.recordio.MXIndexedRecordIO(idx_path, rec_path, "w")
    try:
        for idx, label, _rel, off, length in items:
            header = mx.recordio.IRHeader(0, float(label), idx, 0)
            writer.write_idx(idx, mx.recordio.pack(header, validator.read(off, length)))
            progress.update(1)
    finally:
        writer.close()
    progress.finish()


def cleanup(validator, spool, aligners, paths):
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


def quiet_opencv():
    """OpenCV logs an error line for every corrupt file; we report those ourselves."""
    try:
        level = cv2.utils.logging.getLogLevel()
        cv2.utils.logging.setLogLevel(cv2.utils.logging.LOG_LEVEL_SILENT)
        return level
    except AttributeError:
        return None


def restore_opencv(level):
    if level is not None:
        cv2.utils.logging.setLogLevel(level)
