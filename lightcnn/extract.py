"""Face features of image files: checkpoint + image list -> (N, 256) float32 rows -> ``LFW_features.mat``.

The extractor repeats the evaluation preprocessing of :mod:`lightcnn.images` exactly (gray; aligned to the
template when the network was trained on aligned faces; made square as it was in training (``fit``) and resized
to the stored size if needed; centre crop; ``(x - mean) * scale``), with the network and preprocessing rebuilt from
a checkpoint's sidecar alone (:mod:`lightcnn.embedding`). Its command line is :mod:`lightcnn.cli.extract`, run as
``python extract_features/extract_features.py`` or ``python -m lightcnn extract``; :mod:`lightcnn.feature_files`
writes the ``.mat``.

Alignment. A checkpoint trained on aligned faces (its sidecar's ``preprocess.align``) gets aligned faces without
being asked: images under a folder written by ``python -m lightcnn align`` with the same template are used as they
are (its ``summary.json`` says so); any other image is aligned first, with MediaPipe (``lightcnn.align``; its
install line when it is absent), and an image without a usable face is listed with the reason like an unreadable
one. A folder aligned to another template is refused.

Throughput. MXNet runs a forward pass asynchronously, and OpenCV releases the GIL while it decodes and resizes, so
a small thread pool decodes the next batches while the current one computes: the main thread pushes batch k+1 to
the engine before it waits for the result of batch k, and the engine never waits for JPEG decoding.

Images that are missing, cannot be decoded or are too small to be a face (``lightcnn.images.MIN_FACE_SIZE`` on
the short side) are an error that lists every one of them (all images are still decoded to find them all,
without running the network once one is known). With ``skip_missing`` they are listed in the log, returned as
``missing`` and stored in the ``.mat`` as the cell ``missing`` (with no row in ``data``), which ``lfw_eval.m`` and
``python -m lightcnn evaluate`` read.

Precision (the command line's ``--dtype bfloat16`` and ``--quantize int8``, :func:`~lightcnn.embedding.
low_precision_embedding`): the float32 checkpoint is converted on loading, to bfloat16 arithmetic (CPUs with
avx512_bf16/amx_bf16) or to an int8 network calibrated on ``--calib-images`` of the listed images and cached beside
the weights (:mod:`lightcnn.quantize`). Features are written as float32 either way.

``flip``: the feature of an image is ``features(image) + features(mirror image)`` (the mirror is left-right). This
is a common test-time option for face embeddings; it doubles the compute. Scoring is by cosine, so the sum and
the mean give the same scores.
"""
from __future__ import annotations

import collections
import concurrent.futures
import contextlib
import logging
import os
import time
from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np

import cv2
import mxnet as mx
from mxnet import gluon

from lightcnn import align as aligning, precision, progress, quantize
from lightcnn.devices import as_context_list
from lightcnn.faces import IMAGE_EXTENSIONS, ImageTooSmallError, is_image_file
from lightcnn.images import FIT_WORDS, Preprocess, eval_input, load_gray
from lightcnn.networks import EMBEDDING_SIZE
from lightcnn.protocols import lfw_pairs as lfw

logger = logging.getLogger(__name__)

DEFAULT_BATCH_SIZE = 64


class MissingImagesError(RuntimeError):
    """Images that are missing, unreadable or (when aligning) without a usable face; ``problems`` lists
    ``(path, reason)`` for every one."""

    def __init__(self, problems, total):
        self.problems = list(problems)
        listing = "\n".join(f"  {path}: {reason}" for path, reason in self.problems)
        super().__init__(f"{len(self.problems)} of {total} images are missing or unreadable (skip them with "
                         f"--skip-missing / skip_missing=True, which stores them as 'missing'):\n{listing}")


class Extracted(collections.namedtuple("Extracted", ["features", "keys", "missing"])):
    """Features (N, D) float32, a row per key of ``keys`` (in list order); ``missing``: the keys that had no
    readable image (skipped). Not part of the tuple: ``not_square``, how many images were made square (``fit``),
    and ``notes``, ``(key, note)`` of aligned images with something to say (several faces: the largest was
    taken)."""

    not_square = 0
    notes = ()


# ----------------------------------------------------------------------------------------------------------------
# Which images

def list_images(image_root, image_list=None):
    """``(keys, paths)`` of the images to extract.

    With ``image_list`` (one path per line, any leading prefix, CRLF tolerated: the ``lfw_patch_part.txt`` role),
    keys are its ``Name/Name_NNNN.jpg`` entries in file order and paths are ``image_root/Name/Name_NNNN.jpg``.
    Without it, every image file under ``image_root`` (any depth, through symbolic links to folders as the dataset
    builder does; a folder reached twice is listed once), keyed by its path relative to the root with ``/``
    separators, sorted. The evaluators match keys by their last two components.
    """
    if not os.path.isdir(image_root):
        raise FileNotFoundError(f"image root {image_root!r} is not a folder")
    if image_list is not None:
        keys = lfw.read_image_list(image_list)
        if not keys:
            raise ValueError(f"image list {image_list} names no image")
    else:
        keys, seen = [], set()
        for folder, dirs, names in os.walk(image_root, followlinks=True):
            real = os.path.realpath(folder)
            if real in seen:  # a link loop, or a second link to one folder
                dirs[:] = []
                continue
            seen.add(real)
            dirs.sort()
            rel = os.path.relpath(folder, image_root)
            for name in names:
                if is_image_file(name):
                    keys.append(name if rel == "." else "/".join(rel.split(os.sep) + [name]))
        keys.sort()
        if not keys:
            raise ValueError(f"no image files ({', '.join(IMAGE_EXTENSIONS)}) under {image_root!r}")
    return keys, [os.path.join(image_root, *key.split("/")) for key in keys]


# ----------------------------------------------------------------------------------------------------------------
# The pipeline

def _decode_batch(paths, indices, preprocess, aligners=None):
    """Decode (and align, with ``aligners``) images ``indices``: (decoded indices, (n, 1, c, c) float32, {index:
    reason} for the failures, how many were not square, {index: note} of aligned images)."""
    good, rows, failed, notes = [], [], {}, {}
    not_square = 0
    for i in indices:
        try:
            if aligners is None:
                img = load_gray(paths[i])
            else:
                result = aligners.align_file(paths[i])
                if not result.ok:
                    failed[i] = result.reason
                    continue
                img = result.image
                if result.note:
                    notes[i] = result.note
            not_square += img.shape[0] != img.shape[1]
            rows.append(eval_input(img, preprocess))
            good.append(i)
        except FileNotFoundError:
            failed[i] = "not found"
        except ImageTooSmallError as e:
            failed[i] = f"unreadable ({e.reason})"
        except (OSError, ValueError, cv2.error) as e:
            failed[i] = f"unreadable ({str(e).strip()})"
    data = np.stack(rows) if rows else np.empty((0,) + preprocess.data_shape, np.float32)
    return np.asarray(good, dtype=np.int64), data, failed, not_square, notes


def _forward(embed, data, ctxs, flip):
    """Push one batch to the engine (asynchronous); returns the per-context output NDArrays."""
    ctxs = ctxs[:len(data)]  # never give a context an empty slice
    outputs = []
    # staged on the host and sliced there, so each device receives only its own slice
    for x in gluon.utils.split_and_load(mx.nd.array(data, ctx=mx.cpu()), ctxs, even_split=False):
        feature = embed(x)
        if flip:
            feature = feature + embed(mx.nd.flip(x, axis=3))  # NCHW: axis 3 mirrors left-right
        outputs.append(feature)
    return outputs


def extract_features(net: Any, paths: Iterable[str | os.PathLike], preprocess: Preprocess = Preprocess(),
                     ctx: mx.Context | Sequence[mx.Context] | None = None, batch_size: int = DEFAULT_BATCH_SIZE,
                     flip: bool = False, skip_missing: bool = False, keys: Iterable[str] | None = None,
                     workers: int | None = None, log_interval: float | None = 5.0, log: logging.Logger | None = None,
                     aligned: bool = False, align_policy: dict | None = None) -> Extracted:
    """Features of image files, batched, decoding in a thread pool while the network computes.

    Parameters
    ----------
    net : LightCNN, SymbolEmbedding or callable
        Anything with ``features(x) -> (n, D)`` (or a callable doing that) whose parameters are on ``ctx``.
    paths : list of str
        Image files.
    preprocess : Preprocess
        The evaluation preprocessing (a checkpoint's sidecar records it).
    ctx : Context or list of Context
        Each batch is split over these (``split_and_load``); default CPU.
    batch_size : int
        Images per batch (over all contexts).
    flip : bool
        Feature = features(image) + features(left-right mirror).
    skip_missing : bool
        Skip (and list) missing or unreadable images instead of raising :class:`MissingImagesError`.
    keys : list of str, optional
        Names of the images (default: the paths), returned in ``keys`` and ``missing``.
    workers : int, optional
        Decoding threads (default: the core count, at most 4).
    log_interval : float or None
        Seconds between progress lines (``Speed: ... images/sec``); None logs only the summary.
    log : logging.Logger, optional
        Where progress goes (default: this module's logger).
    aligned : bool
        The images are already aligned to ``preprocess.align`` (a folder written by ``lightcnn.align``; see
        :func:`input_is_aligned`). Otherwise, when ``preprocess.align`` is set, every image is aligned first, and
        one without a usable face is a problem like an unreadable one (its reason says why).
    align_policy : dict, optional
        ``min_size``, ``max_outside``, ``pad``, ``min_confidence`` of the aligner (its defaults otherwise).

    Returns
    -------
    Extracted
        ``features`` (N, D) float32 in the order of ``paths`` (skipped images have no row), ``keys`` of those
        rows, ``missing`` keys of the skipped images, the count of images that were not square, the alignment
        notes.
    """
    log = log or logger
    paths = [os.fspath(p) for p in paths]
    keys = list(paths if keys is None else keys)
    if len(keys) != len(paths):
        raise ValueError(f"{len(keys)} keys for {len(paths)} paths")
    if batch_size < 1:
        raise ValueError(f"batch size must be positive, got {batch_size}")
    run = _Extraction(getattr(net, "features", net), paths, preprocess, as_context_list(ctx), flip, skip_missing)
    aligners = _aligners(preprocess, aligned, align_policy)
    if aligners is not None:
        log.info("aligning every image to the template the network was trained on (%s)", preprocess.align.describe())
    speed = _SpeedLog(log, len(paths), log_interval)
    with aligners or contextlib.nullcontext():
        run.run(batch_size, workers or max(1, min(4, os.cpu_count() or 1)), aligners, speed)
    return run.result(keys, log, speed.start)


def _aligners(preprocess, aligned, policy):
    """Aligners for the decoding threads when the network wants aligned faces and these are not yet (None
    otherwise); MediaPipe's install line when it is absent."""
    if preprocess.align is None or aligned:
        return None
    return aligning.ThreadAligners(preprocess.align, **(policy or {}))


class _SpeedLog:
    """``Extract [done/total]  Speed: ... images/sec  ETA ...`` every ``interval`` seconds (None: never)."""

    def __init__(self, log, total, interval):
        self.log, self.total, self.interval = log, total, interval
        self.start = self.last_time = time.perf_counter()
        self.last_count = 0

    def tick(self, finished):
        now = time.perf_counter()
        if self.interval is None or now - self.last_time < self.interval:
            return
        speed = (finished - self.last_count) / (now - self.last_time)
        self.log.info("Extract [%d/%d]  Speed: %.2f images/sec  ETA %s", finished, self.total, speed,
                      progress.format_seconds((self.total - finished) / speed) if speed > 0 else "?")
        self.last_time, self.last_count = now, finished


class _Extraction:
    """One call of :func:`extract_features`: a thread pool decodes batches while the engine computes earlier ones.

    Batches pushed to the engine wait in ``pending`` until they are read back: the main thread pushes batch k+1
    before it waits for the result of batch k. Once an image is known to be bad (without ``skip_missing``) the
    network stops, and the decoding goes on so that every bad image is listed.
    """

    def __init__(self, embed, paths, preprocess, ctxs, flip, skip_missing):
        self.embed, self.paths, self.preprocess, self.ctxs = embed, paths, preprocess, ctxs
        self.flip, self.skip_missing = flip, skip_missing
        # known before any work: a missing file stops the network (not the decoding)
        self.problems = {i: "not found" for i, p in enumerate(paths) if not os.path.isfile(p)}
        self.compute = skip_missing or not self.problems
        self.rows, self.done, self.finished = None, np.zeros(len(paths), dtype=bool), 0
        self.pending = collections.deque()  # (indices, outputs) pushed to the engine, not yet read back
        self.not_square, self.notes = 0, {}

    def run(self, batch_size, workers, aligners, speed):
        n = len(self.paths)
        batches = [range(start, min(start + batch_size, n)) for start in range(0, n, batch_size)]
        with concurrent.futures.ThreadPoolExecutor(max_workers=workers, thread_name_prefix="decode") as pool:
            # Keep a few batches decoding ahead; each is one task, so workers decode different batches in parallel.
            queue = collections.deque(pool.submit(_decode_batch, self.paths, b, self.preprocess, aligners)
                                      for b in batches[:workers + 1])
            submitted = len(queue)
            try:
                while queue:
                    decoded = queue.popleft().result()
                    if submitted < len(batches):
                        queue.append(pool.submit(_decode_batch, self.paths, batches[submitted], self.preprocess,
                                                 aligners))
                        submitted += 1
                    self._take(*decoded)
                    if self.compute:
                        speed.tick(self.finished)
                while self.compute and self.pending:
                    self._collect()
            finally:
                for future in queue:
                    future.cancel()

    def _take(self, indices, data, failed, not_square, notes):
        """One decoded batch: its problems noted, its images pushed to the engine."""
        self.problems.update(failed)
        self.not_square += not_square
        self.notes.update(notes)
        if failed and not self.skip_missing:
            self.compute = False
            self.pending.clear()
        if self.compute and len(indices):
            self.pending.append((indices, _forward(self.embed, data, self.ctxs, self.flip)))
            if len(self.pending) > 1:  # batch k+1 is queued in the engine: now wait for batch k
                self._collect()

    def _collect(self):
        indices, outputs = self.pending.popleft()
        # features are float32 whatever precision the network computed in
        values = np.concatenate([precision.to_float32(o).asnumpy() for o in outputs])
        if self.rows is None:
            self.rows = np.empty((len(self.paths), values.shape[1]), dtype=np.float32)
        self.rows[indices] = values
        self.done[indices] = True
        self.finished += len(indices)

    def result(self, keys, log, start):
        """The :class:`Extracted` rows, or :class:`MissingImagesError`; the summary in the log."""
        paths, problems, notes, n = self.paths, self.problems, self.notes, len(self.paths)
        ordered = sorted(problems)
        if ordered and not self.skip_missing:
            raise MissingImagesError([(paths[i], problems[i]) for i in ordered], n)
        if ordered:
            log.warning("skipped %d of %d images, missing or unreadable (stored as 'missing'):\n%s", len(ordered), n,
                        "\n".join(f"  {paths[i]}: {problems[i]}" for i in ordered))
        if self.not_square:
            log.info("%d of %d images were not square: %s, as the network's training faces were (fit %s)",
                     self.not_square, n, FIT_WORDS[self.preprocess.fit], self.preprocess.fit)
        if notes:
            log.info("%d aligned images with a note:\n%s", len(notes),
                     "\n".join(f"  {paths[i]}: {notes[i]}" for i in sorted(notes)))
        seconds = time.perf_counter() - start
        log.info("extracted %d images%s in %.1fs: %.2f images/sec%s", self.finished,
                 f" ({len(ordered)} skipped)" if ordered else "", seconds, self.finished / max(seconds, 1e-9),
                 " (image + mirror)" if self.flip else "")
        rows = np.empty((n, EMBEDDING_SIZE), dtype=np.float32) if self.rows is None else self.rows
        result = Extracted(rows[self.done], [k for k, ok in zip(keys, self.done) if ok], [keys[i] for i in ordered])
        result.not_square, result.notes = self.not_square, tuple((keys[i], notes[i]) for i in sorted(notes))
        return result


def input_is_aligned(image_root, preprocess, log=None):
    """Whether the images under ``image_root`` are already what the network wants: True for a folder written by
    ``python -m lightcnn align`` with the network's template (its summary.json says), False when they must be
    aligned first, or need none. A folder aligned to another template is a ValueError; an aligned folder given to a
    network trained on faces used as given is used as it is, with a warning."""
    log = log or logger
    template, _ = aligning.aligned_tree_template(image_root)
    if template is None:
        return False
    if preprocess.align is None:
        log.warning("%s holds faces aligned by lightcnn.align, but the checkpoint does not record that its network "
                    "was trained on aligned faces; they are used as they are", image_root)
        return False
    if template != preprocess.align:
        raise ValueError(f"{image_root} was aligned to {template.describe()}; the network was trained on faces "
                         f"aligned to {preprocess.align.describe()}: give the photos themselves (they are aligned "
                         f"on the way) or align them again")
    log.info("%s was aligned by lightcnn.align to the network's template: its faces are used as they are",
             image_root)
    return True


def calibration_data(paths, count, preprocess, log, aligned=False, policy=None):
    """The network inputs of ``count`` images spread over ``paths`` (unreadable ones, or without a usable face when
    aligning, left out), for int8 calibration: made as extraction makes them (aligned when the network wants it)."""
    aligners = _aligners(preprocess, aligned, policy)
    with aligners or contextlib.nullcontext():
        _, data, _, _, _ = _decode_batch(paths, quantize.calibration_sample(paths, count), preprocess, aligners)
    rows = list(data)
    if not rows:
        raise quantize.QuantizationError(f"none of the {count} calibration images sampled from the list could be "
                                         f"read")
    log.info("int8 calibration: %d images sampled from the %d listed", len(rows), len(paths))
    return np.stack(rows)
