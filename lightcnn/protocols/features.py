"""The features file the extractor writes, as the evaluators read it (no MXNet).

scipy ``savemat`` v5, or ``.npz`` with the same keys: ``data`` (N x D, a row per image), ``label`` (N x 1 cell of
``Name/Name_NNNN.jpg``; any leading path prefix is dropped) and optionally ``missing`` (cell of keys that had no
image) and the checkpoint that made them (``model_prefix``, ``model_epoch``, ``model_params_sha256``). A file whose
rows are all zero, or all the same, is refused: those are not features (every pair would score the same). A MATLAB
``-v7.3`` (HDF5) ``.mat`` is refused with how to save it as ``-v7``; a damaged file is one line naming it.
"""
import dataclasses
import os

import numpy as np

from lightcnn.protocols.lfw_pairs import image_key
from lightcnn.protocols.similarity import zero_norm


@dataclasses.dataclass
class Features:
    """Rows of ``data`` are the features of ``keys``; ``missing`` are keys the extractor had no image for;
    ``model`` the checkpoint that made them (``{"prefix", "epoch", "params_sha256"}``) when the file says so."""

    data: np.ndarray
    keys: list
    missing: frozenset = frozenset()
    model: dict = None

    def index(self):
        return {k: i for i, k in enumerate(self.keys)}


def _strings(value):
    """A loadmat cell / char matrix / numpy string array -> list of str."""
    if value is None:
        return []
    value = np.asarray(value)
    if value.size == 0:
        return []
    out = []
    for item in value.ravel(order="F"):
        if isinstance(item, np.ndarray):  # a cell element: array(['Name/Name_0001.jpg'])
            item = "".join(str(x) for x in item.ravel()) if item.size else ""
        out.append(str(item).strip())
    return out


def _load_mat(path):
    """scipy's loadmat, its errors made one line naming the file."""
    import scipy.io
    try:
        return scipy.io.loadmat(path)
    except NotImplementedError:  # scipy reads MAT versions 4 to 7.2; -v7.3 is HDF5
        raise ValueError(f"{path}: a MATLAB -v7.3 (HDF5) file, which this evaluator cannot read: save it as -v7 "
                         f"(in MATLAB: s = load(FILE); save(FILE, '-struct', 's', '-v7'))") from None
    except OSError as error:
        if error.errno is not None:  # no such file, permission, a folder: cli names the file already
            raise
        raise ValueError(f"{path}: not a readable MATLAB .mat file ({error})") from None
    except Exception as error:  # a damaged file raises many kinds: ValueError, TypeError, zlib.error, MatReadError
        raise ValueError(f"{path}: not a readable MATLAB .mat file ({type(error).__name__}: {error})") from None


def _load_npz(path):
    """numpy's load of an ``.npz`` as a dict, its errors made one line naming the file."""
    try:
        with np.load(path, allow_pickle=False) as f:
            return {k: f[k] for k in f.files}
    except OSError as error:
        if error.errno is not None:
            raise
        raise ValueError(f"{path}: not a readable .npz file ({error})") from None
    except Exception as error:  # not a zip (numpy then tries a pickle), a damaged zip, a damaged array
        raise ValueError(f"{path}: not a readable .npz file ({type(error).__name__}: {error})") from None


def load_features(path: str | os.PathLike) -> Features:
    """Read an extractor's ``.mat`` (or ``.npz``): ``data`` N x D, ``label`` N keys, optional ``missing``."""
    content = _load_npz(path) if str(path).endswith(".npz") else _load_mat(path)
    for name in ("data", "label"):
        if name not in content:
            raise ValueError(f"{path}: no '{name}' variable (expected 'data' N x D and 'label' N x 1 cell)")
    data = np.asarray(content["data"])
    if data.ndim != 2:
        raise ValueError(f"{path}: 'data' must be N x D, got shape {data.shape}")
    keys = [image_key(k) for k in _strings(content["label"])]
    if len(keys) != data.shape[0]:
        raise ValueError(f"{path}: {len(keys)} labels for {data.shape[0]} rows of data")
    seen = {}
    for i, k in enumerate(keys):
        if k in seen:
            raise ValueError(f"{path}: label {k!r} appears twice (rows {seen[k] + 1} and {i + 1})")
        seen[k] = i
    if not np.all(np.isfinite(data)):
        raise ValueError(f"{path}: 'data' holds non-finite values")
    # Every pair would get the same score: no figure would mean anything (all zero gave 50%, AUC 0.5, threshold -inf).
    if data.shape[0] and np.all(zero_norm(data)):
        raise ValueError(f"{path}: all {data.shape[0]} rows of 'data' are zero: these are not features (every pair "
                         f"would score the same)")
    if data.shape[0] > 1 and np.all(data == data[0]):
        raise ValueError(f"{path}: all {data.shape[0]} rows of 'data' are the same: these are not features (every "
                         f"pair would score the same)")
    missing = frozenset(image_key(k) for k in _strings(content.get("missing")))
    model = None
    if "model_prefix" in content and "model_epoch" in content:
        model = {"prefix": "".join(_strings(content["model_prefix"])),
                 "epoch": int(np.asarray(content["model_epoch"]).ravel()[0]),
                 "params_sha256": "".join(_strings(content.get("model_params_sha256"))) or None}
    return Features(data, keys, missing, model)
