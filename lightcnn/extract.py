"""Face features of image files: checkpoint + image list -> (N, 256) float32 rows -> ``LFW_features.mat``.

The extractor repeats the evaluation preprocessing of :mod:`lightcnn.data` exactly (``load_eval_image``: gray,
resize to the stored size if needed, centre crop, ``(x - mean) * scale``), with the network and preprocessing
rebuilt from a checkpoint's sidecar alone. ``extract_features/extract_features.py`` is its command line.

Throughput. MXNet runs a forward pass asynchronously, and OpenCV releases the GIL while it decodes and resizes, so
a small thread pool decodes the next batches while the current one computes: the main thread pushes batch k+1 to
the engine before it waits for the result of batch k, and the engine never waits for JPEG decoding.

Images that are missing or cannot be decoded are an error that lists every one of them (all images are still
decoded to find them all, without running the network once one is known). With ``skip_missing`` they are listed
in the log, returned as ``missing`` and stored in the ``.mat`` as the cell ``missing`` (with no row in ``data``),
which ``lfw_eval.m`` and ``lightcnn.verification`` read.

``flip``: the feature of an image is ``features(image) + features(mirror image)`` (the mirror is left-right). This
is a common test-time option for face embeddings; it doubles the compute. Scoring is by cosine, so the sum and
the mean give the same scores.
"""
import collections
import concurrent.futures
import logging
import os
import tempfile
import time
import warnings

import numpy as np

import lightcnn  # noqa: F401  (sets the OpenMP thread count before mxnet is imported)
import cv2
import mxnet as mx
from mxnet import gluon

from lightcnn import checkpoint, lfw
from lightcnn.data import Preprocess, load_eval_image
from lightcnn.model import EMBEDDING_SIZE

logger = logging.getLogger(__name__)

DEFAULT_BATCH_SIZE = 64
DEFAULT_MAT = "LFW_features.mat"


class MissingImagesError(RuntimeError):
    """Images that are missing or unreadable; ``problems`` lists ``(path, reason)`` for every one."""

    def __init__(self, problems, total):
        self.problems = list(problems)
        listing = "\n".join(f"  {path}: {reason}" for path, reason in self.problems)
        super().__init__(f"{len(self.problems)} of {total} images are missing or unreadable (skip them with "
                         f"--skip-missing / skip_missing=True, which stores them as 'missing'):\n{listing}")


Extracted = collections.namedtuple("Extracted", ["features", "keys", "missing"])
Extracted.__doc__ = """Features (N, D) float32, a row per key of ``keys`` (in list order); ``missing``: the keys
that had no readable image (skipped)."""


# ----------------------------------------------------------------------------------------------------------------
# Which images

def list_images(image_root, image_list=None):
    """``(keys, paths)`` of the images to extract.

    With ``image_list`` (one path per line, any leading prefix, CRLF tolerated: the ``lfw_patch_part.txt`` role),
    keys are its ``Name/Name_NNNN.jpg`` entries in file order and paths are ``image_root/Name/Name_NNNN.jpg``.
    Without it, every image file under ``image_root`` (any depth), keyed by its path relative to the root with
    ``/`` separators, sorted. The evaluators match keys by their last two components.
    """
    if not os.path.isdir(image_root):
        raise FileNotFoundError(f"image root {image_root!r} is not a folder")
    if image_list is not None:
        keys = lfw.read_image_list(image_list)
        if not keys:
            raise ValueError(f"image list {image_list} names no image")
    else:
        keys = []
        for folder, dirs, files in os.walk(image_root):
            dirs.sort()
            rel = os.path.relpath(folder, image_root)
            for name in files:
                if name.lower().endswith(lfw.IMAGE_EXTENSIONS):
                    keys.append(name if rel == "." else "/".join(rel.split(os.sep) + [name]))
        keys.sort()
        if not keys:
            raise ValueError(f"no image files ({', '.join(lfw.IMAGE_EXTENSIONS)}) under {image_root!r}")
    return keys, [os.path.join(image_root, *key.split("/")) for key in keys]


# ----------------------------------------------------------------------------------------------------------------
# Which network

def as_context_list(ctx):
    if ctx is None:
        return [mx.cpu()]
    return list(ctx) if isinstance(ctx, (list, tuple)) else [ctx]


def load_checkpoint_embedding(prefix, epoch=None, ctx=None):
    """``(net, preprocess, sidecar)`` of a training checkpoint, rebuilt from its sidecar alone.

    ``epoch`` defaults to the last complete checkpoint under ``prefix``. The network is hybridized and its
    parameters are on every context of ``ctx``.
    """
    ctxs = as_context_list(ctx)
    epoch = checkpoint.last_epoch(prefix) if epoch is None else int(epoch)
    net, sidecar = checkpoint.load_model(prefix, epoch, ctx=ctxs)
    if "preprocess" not in sidecar:
        raise ValueError(f"{checkpoint.sidecar_path(prefix, epoch)} records no 'preprocess'; cannot repeat the "
                         f"training preprocessing (use --symbol/--params with explicit preprocessing flags)")
    preprocess = Preprocess.from_dict(sidecar["preprocess"])
    if preprocess.data_shape != tuple(net.input_shape):
        raise ValueError(f"checkpoint preprocessing gives inputs {preprocess.data_shape}, the network takes "
                         f"{tuple(net.input_shape)}")
    net.hybridize(static_alloc=True, static_shape=True)
    return net, preprocess, sidecar


class SymbolEmbedding:
    """An exported graph (``X-symbol.json`` + ``X-NNNN.params``) used as an embedding network.

    A LightCNN graph has two outputs, (logits, embedding): ``features`` returns output 1. A graph with a single
    output (an embedding exported alone) returns that output.
    """

    def __init__(self, symbol_file, params_file, ctx=None):
        ctxs = as_context_list(ctx)
        for path in (symbol_file, params_file):
            if not os.path.isfile(path):
                raise FileNotFoundError(f"{path} not found")
        sym = mx.sym.load(symbol_file)
        self.param_shapes = {name.split(":", 1)[-1]: value.shape for name, value in mx.nd.load(params_file).items()}
        saved = set(self.param_shapes)
        inputs = [name for name in sym.list_inputs() if name not in saved]
        if len(inputs) != 1:
            raise ValueError(f"{symbol_file}: expected one data input besides the saved parameters, found "
                             f"{inputs or 'none'}")
        self.num_outputs = len(sym.list_outputs())
        if self.num_outputs not in (1, 2):
            raise ValueError(f"{symbol_file} has {self.num_outputs} outputs; expected (logits, embedding) or the "
                             f"embedding alone")
        self.input_name = inputs[0]
        self.symbol = sym
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # "cannot decide type for data": it is float32, decided at run time
            self.block = gluon.SymbolBlock.imports(symbol_file, [self.input_name], params_file, ctx=ctxs)
        self.block.hybridize(static_alloc=True, static_shape=True)

    def check_input(self, data_shape):
        """Raise ValueError if the saved weights do not fit inputs of ``(1,) + data_shape``; else the output shapes.

        The graph records no parameter shapes, so they are inferred from the input and compared with the saved ones.
        """
        shape = (1,) + tuple(data_shape)
        problem = None
        try:
            arg_shapes, out_shapes, aux_shapes = self.symbol.infer_shape(**{self.input_name: shape})
        except mx.base.MXNetError as e:
            problem = str(e).strip().splitlines()[0]
        else:
            inferred = dict(zip(self.symbol.list_arguments(), arg_shapes))
            inferred.update(zip(self.symbol.list_auxiliary_states(), aux_shapes))
            wrong = [f"{name} {inferred[name]} vs saved {saved}" for name, saved in self.param_shapes.items()
                     if name in inferred and tuple(inferred[name]) != tuple(saved)]
            if wrong:
                problem = "parameter shapes differ: " + "; ".join(wrong)
        if problem:
            raise ValueError(f"the exported graph does not take inputs of shape {shape} (check --image-size and "
                             f"--crop-size): {problem}")
        return out_shapes

    def features(self, x):
        out = self.block(x)
        return out[1] if self.num_outputs == 2 else out


# ----------------------------------------------------------------------------------------------------------------
# The pipeline

def _decode_batch(paths, indices, preprocess):
    """Decode images ``indices``: (decoded indices, (n, 1, c, c) float32, {index: reason} for the failures)."""
    good, rows, failed = [], [], {}
    for i in indices:
        try:
            rows.append(load_eval_image(paths[i], preprocess))
            good.append(i)
        except FileNotFoundError:
            failed[i] = "not found"
        except (OSError, ValueError, cv2.error) as e:
            failed[i] = f"unreadable ({str(e).strip()})"
    data = np.stack(rows) if rows else np.empty((0,) + preprocess.data_shape, np.float32)
    return np.asarray(good, dtype=np.int64), data, failed


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
                     skip_missing=False, keys=None, workers=None, log_interval=5.0, log=None):
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

    Returns
    -------
    Extracted
        ``features`` (N, D) float32 in the order of ``paths`` (skipped images have no row), ``keys`` of those
        rows, ``missing`` keys of the skipped images.
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

    rows, done = None, np.zeros(n, dtype=bool)
    start = last_time = time.perf_counter()
    last_count = finished = 0
    pending = collections.deque()  # (indices, outputs) pushed to the engine, not yet read back

    def collect():
        nonlocal rows, finished
        indices, outputs = pending.popleft()
        values = np.concatenate([o.asnumpy() for o in outputs]) if len(outputs) > 1 else outputs[0].asnumpy()
        if rows is None:
            rows = np.empty((n, values.shape[1]), dtype=np.float32)
        rows[indices] = values
        done[indices] = True
        finished += len(indices)

    with concurrent.futures.ThreadPoolExecutor(max_workers=workers, thread_name_prefix="decode") as pool:
        # Keep a few batches decoding ahead; each is one task, so workers decode different batches in parallel.
        queue = collections.deque(pool.submit(_decode_batch, paths, b, preprocess) for b in batches[:workers + 1])
        submitted = len(queue)
        try:
            while queue:
                indices, data, failed = queue.popleft().result()
                if submitted < len(batches):
                    queue.append(pool.submit(_decode_batch, paths, batches[submitted], preprocess))
                    submitted += 1
                problems.update(failed)
                if failed and not skip_missing:
                    compute = False
                    pending.clear()
                if compute and len(indices):
                    pending.append((indices, _forward(embed, data, ctxs, flip)))
                    if len(pending) > 1:  # batch k+1 is queued in the engine: now wait for batch k
                        collect()
                now = time.perf_counter()
                if compute and log_interval is not None and now - last_time >= log_interval:
                    log.info("Extract [%d/%d]  Speed: %.2f images/sec", finished, n,
                             (finished - last_count) / (now - last_time))
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
    seconds = time.perf_counter() - start
    log.info("extracted %d images%s in %.1fs: %.2f images/sec%s", finished,
             f" ({len(ordered)} skipped)" if ordered else "", seconds, finished / max(seconds, 1e-9),
             " (image + mirror)" if flip else "")
    if rows is None:
        rows = np.empty((n, EMBEDDING_SIZE), dtype=np.float32)
    return Extracted(rows[done], [k for k, ok in zip(keys, done) if ok], [keys[i] for i in ordered])


# ----------------------------------------------------------------------------------------------------------------
# Output

def _atomic(path, write):
    """Call ``write(temp_path)`` and rename the temporary file onto ``path``."""
    folder, name = os.path.split(os.path.abspath(path))
    os.makedirs(folder, exist_ok=True)
    handle, temp = tempfile.mkstemp(prefix=f".{name}.", suffix=os.path.splitext(name)[1], dir=folder)
    os.close(handle)
    try:
        write(temp)
        os.replace(temp, path)
    except BaseException:
        if os.path.exists(temp):
            os.remove(temp)
        raise


def _cell(strings):
    cell = np.empty((len(strings), 1), dtype=object)
    for i, s in enumerate(strings):
        cell[i, 0] = str(s)
    return cell


def save_features_mat(path, features, keys, missing=()):
    """Write what ``lfw_eval.m`` loads (scipy ``savemat``, MATLAB v5).

    ``data``: N x D single, a row per image; ``label``: N x 1 cell of keys (``Name/Name_NNNN.jpg``);
    ``missing``: M x 1 cell of keys that had no image, only when there are any.
    """
    import scipy.io

    data = np.asarray(features, dtype=np.float32)
    if data.ndim != 2 or data.shape[0] != len(keys):
        raise ValueError(f"features must be N x D with N = {len(keys)} keys, got shape {data.shape}")
    content = {"data": data, "label": _cell(keys)}
    if len(missing):
        content["missing"] = _cell(missing)
    _atomic(path, lambda temp: scipy.io.savemat(temp, content, format="5", oned_as="column"))


def npy_paths(mat_path):
    """Where ``--npy`` writes beside ``X.mat``: ``X.npy`` (features), ``X_label.txt``, ``X_missing.txt``."""
    stem = mat_path[:-4] if mat_path.lower().endswith(".mat") else mat_path
    return stem + ".npy", stem + "_label.txt", stem + "_missing.txt"


def save_features_npy(mat_path, features, keys, missing=()):
    """``X.npy`` (N x D float32, the rows of ``data``) and ``X_label.txt`` (a key per line, the same order);
    ``X_missing.txt`` when images were skipped. Returns the paths written."""
    npy, label, missing_txt = npy_paths(mat_path)
    _atomic(npy, lambda temp: np.save(temp, np.asarray(features, dtype=np.float32)))
    written = [npy]
    for path, names in ((label, keys), (missing_txt, missing)):
        if names or path == label:
            checkpoint.atomic_write_text(path, "".join(f"{k}\n" for k in names))
            written.append(path)
    return written


# ----------------------------------------------------------------------------------------------------------------
# Verification during training

def make_pair_verifier(pairs_path, image_root, preprocess=Preprocess(), batch_size=DEFAULT_BATCH_SIZE, flip=False,
                       logger=None, workers=None, log_interval=None):
    """``verify(net, ctx) -> float``: the 10-fold mean accuracy of ``net`` on an LFW pair file.

    Only the images the pairs use are extracted (``image_root/Name/Name_NNNN.jpg``). Pairs with an image that is
    missing are excluded and reported: the list once here, and the count with every result. Pairs with an image
    that exists but cannot be decoded are excluded the same way (and listed when first seen). The folds are the
    pair file's own (see :func:`lightcnn.lfw.read_pairs`); every fold must keep at least one pair.
    """
    from lightcnn import verification

    log = logger or globals()["logger"]
    pairs = lfw.read_pairs(pairs_path)
    keys = list(dict.fromkeys(k for p in pairs for k in (p.key1, p.key2)))
    paths = {k: os.path.join(image_root, *k.split("/")) for k in keys}
    absent = {k for k in keys if not os.path.isfile(paths[k])}
    lost = [p for p in pairs if p.key1 in absent or p.key2 in absent]
    if lost:
        log.warning("verification: %d of %d pairs of %s are excluded, an image is missing under %s:\n%s",
                    len(lost), len(pairs), pairs_path, image_root,
                    "\n".join(f"  fold {p.fold + 1} {'same' if p.is_same else 'diff'} {p.key1} {p.key2}"
                              for p in lost))
    n_folds = max(p.fold for p in pairs) + 1
    empty = sorted(set(range(n_folds)) - {p.fold for p in pairs if p.key1 not in absent and p.key2 not in absent})
    if n_folds < 2 or empty:
        raise ValueError(f"{pairs_path}: verification needs 2 or more folds, each with a pair whose images exist; "
                         f"found {n_folds} fold(s), without such a pair: {[k + 1 for k in empty]}")
    present = [k for k in keys if k not in absent]
    reported = {(p.key1, p.key2) for p in lost}

    def verify(net, ctx):
        result = extract_features(net, [paths[k] for k in present], preprocess, ctx, batch_size, flip,
                                  skip_missing=True, keys=present, workers=workers, log_interval=log_interval,
                                  log=log)
        features = verification.Features(result.features, result.keys, frozenset(result.missing))
        results = verification.verify(features, pairs, exclude_missing=True, log=lambda message: None)
        new = [tuple(pair) for pair in results["excluded"] if tuple(pair) not in reported]
        if new:
            log.warning("verification: %d more pairs excluded, an image cannot be read:\n%s", len(new),
                        "\n".join(f"  {a} {b}" for a, b in new))
            reported.update(new)
        log.info("verification on %s: %d-fold accuracy %.4f +- %.4f, AUC %.4f, over %d of %d pairs "
                 "(%d excluded: image missing or unreadable)", os.path.basename(pairs_path), results["n_folds"],
                 results["accuracy_mean"], results["accuracy_std"], results["auc"], results["n_pairs"],
                 results["n_listed"], results["n_excluded"])
        return float(results["accuracy_mean"])

    return verify
