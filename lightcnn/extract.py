"""Face features of image files: checkpoint + image list -> (N, 256) float32 rows -> ``LFW_features.mat``.

The extractor repeats the evaluation preprocessing of :mod:`lightcnn.images` exactly (gray; aligned to the
template when the network was trained on aligned faces; made square as it was in training (``fit``) and resized
to the stored size if needed; centre crop; ``(x - mean) * scale``), with the network and preprocessing rebuilt from
a checkpoint's sidecar alone (:mod:`lightcnn.embedding`). Its command line is :func:`main`, run as
``python extract_features/extract_features.py`` or ``python -m lightcnn.extract``.

Alignment. A checkpoint trained on aligned faces (its sidecar's ``preprocess.align``) gets aligned faces without
being asked: images under a folder written by ``python -m lightcnn.align`` with the same template are used as they
are (its ``summary.json`` says so); any other image is aligned first, with MediaPipe (``lightcnn.align``; its
install line when it is absent), and an image without a usable face is listed with the reason like an unreadable
one. A folder aligned to another template is refused.

Throughput. MXNet runs a forward pass asynchronously, and OpenCV releases the GIL while it decodes and resizes, so
a small thread pool decodes the next batches while the current one computes: the main thread pushes batch k+1 to
the engine before it waits for the result of batch k, and the engine never waits for JPEG decoding.

Images that are missing, cannot be decoded or are too small to be a face (``lightcnn.images.MIN_FACE_SIZE``, 32 px
on the short side) are an error that lists every one of them (all images are still decoded to find them all,
without running the network once one is known). With ``skip_missing`` they are listed in the log, returned as
``missing`` and stored in the ``.mat`` as the cell ``missing`` (with no row in ``data``), which ``lfw_eval.m`` and
``lightcnn.verification`` read.

Precision (the command line's ``--dtype bfloat16`` and ``--quantize int8``, :func:`~lightcnn.embedding.
low_precision_embedding`): the float32 checkpoint is converted on loading, to bfloat16 arithmetic (CPUs with
avx512_bf16/amx_bf16) or to an int8 network calibrated on ``--calib-images`` of the listed images and cached beside
the weights (:mod:`lightcnn.quantize`). Features are written as float32 either way.

``flip``: the feature of an image is ``features(image) + features(mirror image)`` (the mirror is left-right). This
is a common test-time option for face embeddings; it doubles the compute. Scoring is by cosine, so the sum and
the mean give the same scores.
"""
import argparse
import collections
import concurrent.futures
import contextlib
import logging
import os
import time

import numpy as np

import cv2
import mxnet as mx
from mxnet import gluon

from lightcnn import align as aligning, checkpoint, cli, files, locks, precision, progress, quantize
from lightcnn.protocols import lfw_pairs as lfw
from lightcnn.devices import as_context_list, contexts_from_gpus
from lightcnn.embedding import SymbolEmbedding, load_checkpoint_embedding, low_precision_embedding
from lightcnn.cli.align import add_policy_flags, given_policy
from lightcnn.faces import IMAGE_EXTENSIONS, ImageTooSmallError, is_image_file
from lightcnn.images import FIT_WORDS, FITS, TEMPLATE, Preprocess, eval_input, load_gray
from lightcnn.model import EMBEDDING_SIZE

logger = logging.getLogger(__name__)

DEFAULT_BATCH_SIZE = 64
DEFAULT_MAT = "LFW_features.mat"


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


def extract_features(net, paths, preprocess=Preprocess(), ctx=None, batch_size=DEFAULT_BATCH_SIZE, flip=False,
                     skip_missing=False, keys=None, workers=None, log_interval=5.0, log=None, aligned=False,
                     align_policy=None):
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
    ctxs = as_context_list(ctx)
    embed = getattr(net, "features", net)
    n = len(paths)
    # Known before any work: a missing file stops the network (not the decoding, so that every bad path is listed).
    problems = {i: "not found" for i, p in enumerate(paths) if not os.path.isfile(p)}
    compute = skip_missing or not problems
    batches = [range(start, min(start + batch_size, n)) for start in range(0, n, batch_size)]
    workers = workers or max(1, min(4, os.cpu_count() or 1))

    aligners = None
    if preprocess.align is not None and not aligned:
        aligners = aligning.ThreadAligners(preprocess.align, **(align_policy or {}))  # its install line if absent
        log.info("aligning every image to the template the network was trained on (%s)", preprocess.align.describe())
    rows, done = None, np.zeros(n, dtype=bool)
    start = last_time = time.perf_counter()
    last_count = finished = not_square = 0
    notes = {}
    pending = collections.deque()  # (indices, outputs) pushed to the engine, not yet read back

    def collect():
        nonlocal rows, finished
        indices, outputs = pending.popleft()
        # features are float32 whatever precision the network computed in
        values = np.concatenate([precision.to_float32(o).asnumpy() for o in outputs])
        if rows is None:
            rows = np.empty((n, values.shape[1]), dtype=np.float32)
        rows[indices] = values
        done[indices] = True
        finished += len(indices)

    with contextlib.ExitStack() as stack:
        if aligners is not None:
            stack.enter_context(aligners)
        pool = stack.enter_context(concurrent.futures.ThreadPoolExecutor(max_workers=workers,
                                                                         thread_name_prefix="decode"))
        # Keep a few batches decoding ahead; each is one task, so workers decode different batches in parallel.
        queue = collections.deque(pool.submit(_decode_batch, paths, b, preprocess, aligners)
                                  for b in batches[:workers + 1])
        submitted = len(queue)
        try:
            while queue:
                indices, data, failed, squared, noted = queue.popleft().result()
                if submitted < len(batches):
                    queue.append(pool.submit(_decode_batch, paths, batches[submitted], preprocess, aligners))
                    submitted += 1
                problems.update(failed)
                not_square += squared
                notes.update(noted)
                if failed and not skip_missing:
                    compute = False
                    pending.clear()
                if compute and len(indices):
                    pending.append((indices, _forward(embed, data, ctxs, flip)))
                    if len(pending) > 1:  # batch k+1 is queued in the engine: now wait for batch k
                        collect()
                now = time.perf_counter()
                if compute and log_interval is not None and now - last_time >= log_interval:
                    speed = (finished - last_count) / (now - last_time)
                    log.info("Extract [%d/%d]  Speed: %.2f images/sec  ETA %s", finished, n, speed,
                             progress.format_seconds((n - finished) / speed) if speed > 0 else "?")
                    last_time, last_count = now, finished
            while compute and pending:
                collect()
        finally:
            for future in queue:
                future.cancel()

    ordered = sorted(problems)
    if ordered and not skip_missing:
        raise MissingImagesError([(paths[i], problems[i]) for i in ordered], n)
    if ordered:
        log.warning("skipped %d of %d images, missing or unreadable (stored as 'missing'):\n%s", len(ordered), n,
                    "\n".join(f"  {paths[i]}: {problems[i]}" for i in ordered))
    if not_square:
        log.info("%d of %d images were not square: %s, as the network's training faces were (fit %s)", not_square,
                 n, FIT_WORDS[preprocess.fit], preprocess.fit)
    if notes:
        log.info("%d aligned images with a note:\n%s", len(notes),
                 "\n".join(f"  {paths[i]}: {notes[i]}" for i in sorted(notes)))
    seconds = time.perf_counter() - start
    log.info("extracted %d images%s in %.1fs: %.2f images/sec%s", finished,
             f" ({len(ordered)} skipped)" if ordered else "", seconds, finished / max(seconds, 1e-9),
             " (image + mirror)" if flip else "")
    if rows is None:
        rows = np.empty((n, EMBEDDING_SIZE), dtype=np.float32)
    result = Extracted(rows[done], [k for k, ok in zip(keys, done) if ok], [keys[i] for i in ordered])
    result.not_square, result.notes = not_square, tuple((keys[i], notes[i]) for i in sorted(notes))
    return result


def input_is_aligned(image_root, preprocess, log=None):
    """Whether the images under ``image_root`` are already what the network wants: True for a folder written by
    ``python -m lightcnn.align`` with the network's template (its summary.json says), False when they must be
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


# ----------------------------------------------------------------------------------------------------------------
# Output

def _cell(strings):
    """A MATLAB N x 1 cell of strings, as scipy.io.savemat writes one."""
    cell = np.empty((len(strings), 1), dtype=object)
    for i, text in enumerate(strings):
        cell[i, 0] = str(text)
    return cell


def save_features_mat(path, features, keys, missing=(), model=None):
    """Write what ``lfw_eval.m`` loads (scipy ``savemat``, MATLAB v5).

    ``data``: N x D single, a row per image; ``label``: N x 1 cell of keys (``Name/Name_NNNN.jpg``);
    ``missing``: M x 1 cell of keys that had no image, only when there are any; ``model_prefix``,
    ``model_epoch`` and ``model_params_sha256`` when ``model`` (a dict of those) says which checkpoint made the
    features: the Python evaluator then saves its threshold beside that checkpoint, for ``lightcnn.verify``.
    """
    import scipy.io

    data = np.asarray(features, dtype=np.float32)
    if data.ndim != 2 or data.shape[0] != len(keys):
        raise ValueError(f"features must be N x D with N = {len(keys)} keys, got shape {data.shape}")
    content = {"data": data, "label": _cell(keys)}
    if len(missing):
        content["missing"] = _cell(missing)
    if model:
        content.update({"model_prefix": str(model["prefix"]), "model_epoch": float(model["epoch"]),
                        "model_params_sha256": str(model.get("params_sha256") or "")})
    with files.atomic_path(path) as temp:
        scipy.io.savemat(temp, content, format="5", oned_as="column")


def npy_paths(mat_path):
    """Where ``--npy`` writes beside ``X.mat``: ``X.npy`` (features), ``X_label.txt``, ``X_missing.txt``."""
    stem = mat_path[:-4] if mat_path.lower().endswith(".mat") else mat_path
    return stem + ".npy", stem + "_label.txt", stem + "_missing.txt"


def save_features_npy(mat_path, features, keys, missing=()):
    """``X.npy`` (N x D float32, the rows of ``data``) and ``X_label.txt`` (a key per line, the same order);
    ``X_missing.txt`` when images were skipped. Returns the paths written."""
    npy, label, missing_txt = npy_paths(mat_path)
    with files.atomic_path(npy) as temp:
        np.save(temp, np.asarray(features, dtype=np.float32))
    written = [npy]
    for path, names in ((label, keys), (missing_txt, missing)):
        if names or path == label:
            files.write_lines(path, names)
            written.append(path)
    return written


# ----------------------------------------------------------------------------------------------------------------
# Command line

USAGE = """Extract LightCNN face features of a list of images into LFW_features.mat (what lfw_eval.m loads).

    python extract_features.py --model-prefix ../output/lightcnn --image-list lfw_patch_part.txt \\
        --image-root /data/lfw [--epoch N] [--out LFW_features.mat] [--batch-size 64] [--gpus 0] [--flip] \\
        [--skip-missing] [--npy] [--dtype bfloat16 | --quantize int8 [--calib-images 256]]
    python extract_features.py --symbol X-symbol.json --params X-0001.params --image-size 144 --scale 0.00392157 \\
        --mean 0 [--fit crop] [--align] --image-root /data/lfw

A training checkpoint (--model-prefix, last epoch unless --epoch) rebuilds the network and the preprocessing
from its sidecar alone, alignment included: a network trained on aligned faces gets its images aligned (unless
--image-root was written by python -m lightcnn.align with the same template). An exported graph (--symbol +
--params) needs the preprocessing flags; its embedding is output 1 of (logits, embedding). The .mat holds 'data'
(N x 256 single, a row per image), 'label' (N x 1 cell of Name/Name_NNNN.jpg), when images were skipped 'missing',
and which checkpoint made them. Then:
    octave-cli --eval "addpath('lfw_verification-matlab'); lfw_eval('LFW_features.mat', 'pairs.txt');"
or  python -m lightcnn.verification --features LFW_features.mat --pairs pairs.txt
"""
_DEFAULT_PREPROCESS = Preprocess()


def build_parser():
    parser = argparse.ArgumentParser(description=USAGE.split("\n\n")[0].strip(),
                                     formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    model = parser.add_argument_group("Model (a checkpoint, or an exported symbol + params)")
    model.add_argument("--model-prefix", help="training checkpoint prefix (prefix-NNNN.params + prefix-NNNN.json)")
    model.add_argument("--epoch", type=int, default=None, help="checkpoint epoch (None: the last one saved)")
    model.add_argument("--symbol", help="an exported X-symbol.json (instead of --model-prefix)")
    model.add_argument("--params", help="its X-NNNN.params")

    prep = parser.add_argument_group("Preprocessing (only with --symbol/--params; a checkpoint records its own)")
    prep.add_argument("--image-size", type=int, default=_DEFAULT_PREPROCESS.image_size,
                      help="side the images are resized to before the centre crop (the stored training size)")
    prep.add_argument("--crop-size", type=int, default=_DEFAULT_PREPROCESS.crop_size, help="centre crop side")
    prep.add_argument("--scale", type=float, default=_DEFAULT_PREPROCESS.scale, help="input = (pixel - mean) * scale")
    prep.add_argument("--mean", type=float, default=_DEFAULT_PREPROCESS.mean, help="pixel mean (0..255 units)")
    prep.add_argument("--fit", choices=FITS, default=_DEFAULT_PREPROCESS.fit,
                      help="a face that is not square: its centre square (crop), black bars (pad) or stretched")
    prep.add_argument("--align", action="store_true",
                      help="align every image to the LightCNN template first (with --model-prefix the checkpoint "
                           "says whether it was trained on aligned faces; this flag only confirms it)")
    add_policy_flags(parser, unset=True)  # only when aligning

    images = parser.add_argument_group("Images")
    images.add_argument("--image-list", help="one image path per line (any leading prefix, e.g. lfw_patch_part.txt); "
                                             "None: every image under --image-root")
    images.add_argument("--image-root", required=True, help="folder the list's Name/Name_NNNN.jpg are under")
    images.add_argument("--skip-missing", action="store_true",
                        help="skip missing or unreadable images (listed, and stored as 'missing') instead of failing")

    out = parser.add_argument_group("Output")
    out.add_argument("--out", default=DEFAULT_MAT, help="the .mat file (data, label, missing)")
    out.add_argument("--npy", action="store_true",
                     help="also write X.npy (features) and X_label.txt (one key per line) beside the .mat")

    low = parser.add_argument_group("Precision (features are float32 in the .mat whatever the network computes in)")
    low.add_argument("--dtype", default="float32", choices=("float32", "bfloat16", "float16"),
                     help="arithmetic of the network: bfloat16 on CPUs with avx512_bf16/amx_bf16, float16 on GPUs")
    low.add_argument("--quantize", choices=("int8",), default=None,
                     help="int8 network (oneDNN, CPU), calibrated on --calib-images of the listed images; the "
                          "calibrated model is cached beside the weights and reused for the same weights and images")
    low.add_argument("--calib-images", type=int, default=quantize.DEFAULT_CALIB_IMAGES,
                     help="images of the list (a fixed sample spread over it) the int8 ranges are calibrated on")
    low.add_argument("--calib-mode", default=quantize.DEFAULT_CALIB_MODE, choices=quantize.CALIB_MODES,
                     help="entropy: KL-optimal thresholds (measured the more accurate); naive: each layer's min/max")
    low.add_argument("--mfm-form", default="max", choices=quantize.MFM_FORMS,
                     help="max: MFM as split + maximum; sum-relu: as b + relu(a - b), which oneDNN fuses into the "
                          "convolutions: in float32 the same features to rounding, and faster; with --quantize int8 "
                          "every convolution's MFM in int8 (speed and accuracy: README, 'Measured figures')")

    run = parser.add_argument_group("Computation")
    run.add_argument("--batch-size", type=int, default=DEFAULT_BATCH_SIZE, help="images per batch")
    run.add_argument("--gpus", default="", help="GPUs to split each batch over, e.g. '0,1'; empty: CPU")
    run.add_argument("--flip", action="store_true",
                     help="feature = feature(image) + feature(left-right mirror); doubles the compute")
    run.add_argument("--workers", type=int, default=None, help="decoding threads (None: the core count, at most 4)")
    run.add_argument("--log-interval", type=float, default=5.0, help="seconds between progress lines")
    cli.add_debug_flag(parser)
    return parser


def _check_args(parser, args):
    if bool(args.model_prefix) == bool(args.symbol or args.params):
        parser.error("give either --model-prefix (a checkpoint) or --symbol and --params (an exported graph)")
    if args.symbol and not args.params or args.params and not args.symbol:
        parser.error("--symbol and --params go together")
    if args.model_prefix:
        if args.epoch is not None and args.epoch < 0:
            parser.error("--epoch must be non-negative")
        restated = [flag for flag, value, default in (
            ("--image-size", args.image_size, _DEFAULT_PREPROCESS.image_size),
            ("--crop-size", args.crop_size, _DEFAULT_PREPROCESS.crop_size),
            ("--scale", args.scale, _DEFAULT_PREPROCESS.scale),
            ("--mean", args.mean, _DEFAULT_PREPROCESS.mean),
            ("--fit", args.fit, _DEFAULT_PREPROCESS.fit)) if value != default]
        if restated:
            parser.error(f"{', '.join(restated)}: a checkpoint's sidecar fixes the preprocessing; these flags are "
                         f"for --symbol/--params only")
    elif args.epoch is not None:
        parser.error("--epoch selects a checkpoint of --model-prefix; with --symbol pass the .params file")
    if args.batch_size < 1:
        parser.error("--batch-size must be positive")
    if args.quantize and args.dtype != "float32":
        parser.error("--quantize int8 and --dtype go separately: an int8 network takes float32 in and gives float32 "
                     "out")
    if args.calib_images < 1:
        parser.error("--calib-images must be positive")
    if given_policy(args) and not args.align and not args.model_prefix:
        parser.error("--min-size, --max-outside, --pad and --min-confidence are alignment settings: add --align")


def calibration_data(paths, count, preprocess, log, aligned=False, policy=None):
    """The network inputs of ``count`` images spread over ``paths`` (unreadable ones, or without a usable face when
    aligning, left out), for int8 calibration: made as extraction makes them (aligned when the network wants it)."""
    aligners = None
    if preprocess.align is not None and not aligned:
        aligners = aligning.ThreadAligners(preprocess.align, **(policy or {}))
    with contextlib.ExitStack() as stack:
        if aligners is not None:
            stack.enter_context(aligners)
        _, data, _, _, _ = _decode_batch(paths, quantize.calibration_sample(paths, count), preprocess, aligners)
    rows = list(data)
    if not rows:
        raise quantize.QuantizationError(f"none of the {count} calibration images sampled from the list could be "
                                         f"read")
    log.info("int8 calibration: %d images sampled from the %d listed", len(rows), len(paths))
    return np.stack(rows)


def _extract(argv):
    parser = build_parser()
    args = parser.parse_args(argv)
    _check_args(parser, args)
    with locks.hold(args.out, field="out", under=False):  # one extraction per output (its .npy too), from the start
        return _extract_to(args)


def _extract_to(args):
    logging.basicConfig(level=logging.INFO, format=cli.LOG_FORMAT)
    log = logging.getLogger("extract_features")
    ctxs = contexts_from_gpus(args.gpus)
    precision.check_dtype(args.dtype, ctxs)  # before any work: this hardware may not run it
    keys, paths = list_images(args.image_root, args.image_list)
    model = None
    if args.model_prefix:
        net, preprocess, sidecar = load_checkpoint_embedding(args.model_prefix, args.epoch, ctxs)
        if args.align and preprocess.align is None:
            raise ValueError(f"--align: the checkpoint {args.model_prefix} epoch {sidecar.epoch} was trained on faces "
                             f"used as given (not aligned); aligned faces would not be what it learned on")
        log.info("checkpoint %s epoch %d: %s; faces %s", args.model_prefix, sidecar.epoch, sidecar.model.to_dict(),
                 preprocess.describe())
        params_file = checkpoint.params_path(args.model_prefix, sidecar.epoch)
        identity = {"model": sidecar.model.to_dict(), "preprocess": preprocess.to_dict()}
        model = {"prefix": os.path.abspath(args.model_prefix), "epoch": sidecar.epoch,
                 "params_sha256": sidecar.checksums.get("params")}
    else:
        preprocess = Preprocess(image_size=args.image_size, crop_size=args.crop_size, scale=args.scale,
                                mean=args.mean, fit=args.fit, align=TEMPLATE if args.align else None)
        net = SymbolEmbedding(args.symbol, args.params, ctxs)
        net.check_input(preprocess.data_shape)
        log.info("graph %s + %s (%d output(s)); faces %s", args.symbol, args.params, net.num_outputs,
                 preprocess.describe())
        params_file = args.params
        identity = {"symbol_sha256": files.sha256(args.symbol), "preprocess": preprocess.to_dict()}
    aligned = input_is_aligned(args.image_root, preprocess, log)
    if args.quantize:
        calib = calibration_data(paths, args.calib_images, preprocess, log, aligned, given_policy(args))
        net = low_precision_embedding(net, ctxs, preprocess.data_shape, quantize_int8=True, params_file=params_file,
                                      identity=identity, calib_data=calib, calib_mode=args.calib_mode,
                                      mfm_form=args.mfm_form, log=log)
    elif args.dtype != "float32" or args.mfm_form != "max":
        net = low_precision_embedding(net, ctxs, preprocess.data_shape, dtype=args.dtype, mfm_form=args.mfm_form)
        log.info("the network computes in %s with MFM as %s (features are written as float32)", args.dtype,
                 args.mfm_form)
    if args.quantize or args.dtype != "float32" or args.mfm_form != "max" or args.flip:
        model = None  # not the features lightcnn.verify computes: no threshold of these should stand for the checkpoint
    log.info("%d images from %s under %s, batch %d on %s%s", len(keys), args.image_list or "the folder",
             args.image_root, args.batch_size, ", ".join(map(str, ctxs)),
             ", with mirror (--flip)" if args.flip else "")
    result = extract_features(net, paths, preprocess, ctxs, args.batch_size, flip=args.flip,
                              skip_missing=args.skip_missing, keys=keys, workers=args.workers,
                              log_interval=args.log_interval, log=log, aligned=aligned,
                              align_policy=given_policy(args))
    save_features_mat(args.out, result.features, result.keys, result.missing, model=model)
    log.info("wrote %s: data %d x %d single, label %d x 1%s", args.out, *result.features.shape, len(result.keys),
             f", missing {len(result.missing)} x 1" if result.missing else "")
    if args.npy:
        log.info("wrote %s", ", ".join(save_features_npy(args.out, result.features, result.keys, result.missing)))
    return 0


def main(argv=None):
    """The extractor's command line; returns the exit status (1: images missing, 2: bad input)."""
    return cli.run(_extract, argv, failures=(MissingImagesError,))


if __name__ == "__main__":
    raise SystemExit(main())
