"""The files features are written to: ``X.mat`` for ``lfw_eval.m`` and :mod:`lightcnn.protocols.tenfold`, and beside
it, on request, ``X.npy`` with a key per line in ``X_label.txt``."""
import numpy as np

from lightcnn import files

DEFAULT_MAT = "LFW_features.mat"  # the name lfw_eval.m and the README's commands use


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
    features: the Python evaluator then saves its threshold beside that checkpoint, for ``verify-pair``.
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
