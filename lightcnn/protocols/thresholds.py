"""The one place of the threshold file: the best threshold the Python evaluator chose on all pairs, saved beside the
checkpoint that made the features (``PREFIX-NNNN-threshold.json``), and read back by ``verify-pair``.

When the features file names the checkpoint (the extractor writes ``model_prefix``, ``model_epoch`` and
``model_params_sha256``), :func:`save_model_threshold` writes it with the pairs and the accuracies. Not for PCA
scores (``verify-pair`` compares plain cosines), nor when it is not finite (+-inf: no threshold separates the pairs
better than calling them all the same); ``lfw_eval.m`` does not save it. A threshold saved for weights that have been
replaced since is not used, and neither is one that is not a finite number, whoever wrote it.
"""
import os
import time

import numpy as np

from lightcnn import files
from lightcnn.protocols.report import format_number

EVALUATE_COMMAND = "python -m lightcnn evaluate"


def threshold_path(prefix, epoch):
    """Where the evaluator saves a checkpoint's threshold: ``PREFIX-NNNN-threshold.json``, beside its sidecar."""
    return f"{prefix}-{int(epoch):04d}-threshold.json"


def save_model_threshold(model, results, log=print):
    """Save the best threshold on all pairs beside the checkpoint ``model`` names (``{"prefix", "epoch",
    "params_sha256"}``, from the features file), for ``verify-pair``. Says why when it does not: no model
    named, PCA scores, a checkpoint that is not here or has been saved again since. Returns the path or None.
    """
    if not model:
        return None
    where = f"{model['prefix']} epoch {model['epoch']}"
    if not np.isfinite(results["best_threshold"]):  # +-inf: no cut beats calling every pair the same
        log(f"threshold not saved beside {where}: the best threshold on all pairs is "
            f"{format_number(results['best_threshold'], '%.6f')} "
            f"(no threshold separates these pairs better than none)")
        return None
    if results.get("pca_dim"):
        log(f"threshold not saved beside {where}: PCA scores are not the plain cosine verify-pair compares")
        return None
    from lightcnn import checkpoint  # imports MXNet's model code: only when a model is named
    try:
        sidecar = checkpoint.read_sidecar(model["prefix"], model["epoch"])
    except checkpoint.CheckpointError as error:
        log(f"threshold not saved: the features name the checkpoint {where}, which cannot be read here ({error})")
        return None
    saved_with = sidecar.checksums.get("params")
    if model.get("params_sha256") and saved_with and model["params_sha256"] != saved_with:
        log(f"threshold not saved: the checkpoint {where} was saved again after these features were extracted "
            f"(its weights differ)")
        return None
    record = {"threshold": results["best_threshold"], "rule": "same person when cosine >= threshold",
              "chosen_on": "all pairs (the best-threshold accuracy's threshold)",
              "best_accuracy": results["best_accuracy"], "accuracy_mean": results["accuracy_mean"],
              "accuracy_std": results["accuracy_std"], "n_folds": results["n_folds"], "n_pairs": results["n_pairs"],
              "pairs": os.path.abspath(results["pairs"]) if results.get("pairs") else None,
              "features": os.path.abspath(results["features"]) if results.get("features") else None,
              "params_sha256": saved_with, "saved": time.strftime("%Y-%m-%d %H:%M:%S")}
    path = threshold_path(model["prefix"], model["epoch"])
    files.write_json(path, record)
    log("saved the threshold %s (best on all %d pairs) beside the checkpoint: %s"
        % (format_number(record["threshold"], "%.6f"), results["n_pairs"], path))
    return path


def load_model_threshold(prefix, epoch, params_sha256=None):
    """``(record, None)`` of the threshold saved for a checkpoint, or ``(None, why not)``: none saved, or saved
    for weights that have been replaced since (their sha256 differs from ``params_sha256``)."""
    path = threshold_path(prefix, epoch)
    if not os.path.isfile(path):
        return None, f"no LFW evaluation of this checkpoint has saved a threshold ({path} does not exist)"
    try:
        record = files.read_json(path)
        threshold = record["threshold"]
    except (OSError, ValueError, KeyError, TypeError) as error:
        return None, f"{path} cannot be read ({error})"
    # NaN says "different" to every pair and +-inf one answer to all: not a threshold, whoever wrote it
    if isinstance(threshold, bool) or not isinstance(threshold, (int, float)) or not np.isfinite(threshold):
        return None, f"{path} holds no usable threshold ({threshold!r} is not a finite number)"
    if params_sha256 and record.get("params_sha256") and record["params_sha256"] != params_sha256:
        return None, f"{path} was saved for weights that have been replaced since (sha256 differs)"
    return record, None



def given_threshold(value):
    """``--threshold`` as a float; ValueError unless finite (NaN says "different" to every pair, +-inf one answer
    to all)."""
    value = float(value)
    if not np.isfinite(value):
        raise ValueError(f"--threshold: must be a finite number, got {value}")
    return value


def resolve_threshold(given, prefix, sidecar):
    """``(threshold, where it comes from)``: the given one, or the one saved by the LFW evaluation of this
    checkpoint; ValueError saying what to do when there is neither."""
    if given is not None:
        return given_threshold(given), "given with --threshold"
    record, why = load_model_threshold(prefix, sidecar.epoch, sidecar.checksums.get("params"))
    if record is None:
        raise ValueError(f"no threshold: {why}. Pass --threshold T, or evaluate this checkpoint on LFW pairs first "
                         f"(extract_features.py --model-prefix {prefix}, then {EVALUATE_COMMAND})")
    pairs = os.path.basename(record.get("pairs") or "?")
    return float(record["threshold"]), (
        f"saved by the LFW evaluation of {record.get('saved', '?')} on {pairs}: best on its {record['n_pairs']} "
        f"pairs, {100 * record['best_accuracy']:.1f}% of them right at it; 10-fold accuracy "
        f"{100 * record['accuracy_mean']:.1f}%")
