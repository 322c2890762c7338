"""The LFW verification protocol, number for number the same as ``lfw_verification-matlab/lfw_eval.m``.

Usage::

    python -m lightcnn.verification --features LFW_features.mat --pairs pairs.txt [--out-dir DIR]
                                    [--pca DIM] [--exclude-missing] [--exclude-zero-rows]

Inputs
------
The features file is what the extractor writes (scipy ``savemat`` v5, or ``.npz`` with the same keys): ``data``
(N x D, a row per image), ``label`` (N x 1 cell of ``Name/Name_NNNN.jpg``; any leading path prefix is dropped)
and optionally ``missing`` (cell of keys that had no image). A file whose rows are all zero, or all the same, is
refused: those are not features (every pair would score the same). A MATLAB ``-v7.3`` (HDF5) ``.mat`` is refused
with how to save it as ``-v7``; a damaged file is one line naming it. The pair file is any format
:func:`lightcnn.lfw.read_pairs` detects; its folds are used as they are. Without ``--pairs``, ``pairs.txt`` and
then ``pair.label`` are looked for beside the features file.

A pair is *missing* when one of its keys is not in ``label`` or is listed in ``missing``. By default missing
pairs are an error that lists every one; with ``exclude_missing`` they are left out, and their count and names
are printed. The remaining pairs keep their folds.

A *zero row* is a feature of norm 0 (not of a missing key): it scores cosine 0 with anything. Zero rows are
reported (their count and first names before the table, a line in it, all names in ``zero_rows`` of the results)
and their pairs kept with the figures computed as usual; with ``exclude_zero_rows`` the pairs that use one are left
out like missing pairs, listed, and counted in ``n_excluded``.

Definitions (lfw_eval.m implements exactly these)
-------------------------------------------------
Features are cast to double. Let P be the number of matched and N of mismatched pairs considered.

* Score: cosine similarity ``sum(a.*b) / (|a| |b|)``, summed along each row; 0 if either norm is 0. Ties are
  exact equality of scores (identical feature rows give bit-identical scores in both languages). Python and
  Octave scores may differ in the last bits, so two *different* scores within ~1e-15 of each other could be
  ordered differently; nothing else in the figures depends on rounding.
* Decision: "same" when ``score >= t``.
* Threshold choice on a set of pairs (``best_threshold``): let u_1 < ... < u_m be the distinct scores. Candidate j
  (j = 0..m) predicts "different" for the j lowest distinct scores and "same" for the rest; its threshold is
  -inf for j = 0, +inf for j = m, else the midpoint ``(u_j + u_{j+1}) / 2``. The candidate with the most
  correct decisions wins; among equals the smallest j (the lowest threshold). Accuracies are computed from the
  counts, not by comparing against the midpoint.
* 10-fold accuracy: for each fold k the threshold is chosen (as above) on the pairs of all other folds, and the
  fold's accuracy is the fraction of its own pairs decided correctly with ``score >= t``. Reported: the per-fold
  accuracies and thresholds, their mean, and their *sample* standard deviation (N-1, like MATLAB's ``std``).
  Every fold must hold at least one pair, and there must be at least 2 folds.
* Best-threshold accuracy: one threshold chosen on all pairs and applied to all pairs. It is optimistic (what
  the original MATLAB evaluator printed as ACC) and is printed labelled as such.
* ROC over all pairs: the distinct scores in descending order v_1 > ... > v_m give points k = 0..m with
  TP_k, FP_k = matched / mismatched pairs with score >= v_k (point 0: threshold +inf, TP = FP = 0; point m is
  (1, 1)); TPR = TP/P, FPR = FP/N. Tied scores move together, so a tie makes a diagonal segment.
* AUC: trapezoid rule over those points, ``sum (FP_k - FP_{k-1}) (TP_k + TP_{k-1}) / (2 P N)``; equal to the
  Mann-Whitney statistic with ties counted half.
* EER: with ``d_k = (P - TP_k) N - FP_k P`` (that is, (FNR - FPR) P N, exact in integers), take the first k
  with d_k <= 0 (d_0 = P N > 0 and d_m = -P N < 0). If d_k = 0, EER = FPR_k; else interpolate linearly between
  points k-1 and k: ``EER = FPR_{k-1} + d_{k-1} / (d_{k-1} - d_k) (FPR_k - FPR_{k-1})``, where FNR = FPR.
  ``one_minus_eer`` is 1 - EER (the papers' "100%-EER").
* TPR@FAR=x: the highest TPR_k over the points with FPR_k <= x (point 0 always qualifies, so a target below
  1/N gives the TPR at FPR = 0). Reported for x = 1%, 0.1% and 0.
* With P = 0 or N = 0 the ROC figures (AUC, EER, TPR@FAR) are NaN.
* PCA (optional, DIM components): for fold k, the images of the pairs of the other folds are mean-centred and
  their top DIM right singular vectors form W; every feature is mapped to ``(x - mean) W`` and scored by cosine.
  The fold's threshold is chosen on the other folds' pairs under that mapping and applied to the fold's pairs.
  ROC, AUC, EER, TPR@FAR and the best-threshold accuracy then use each pair's *out-of-fold* score (the score
  under the PCA fitted without the pair's fold), so no figure sees a PCA fitted on its own pairs. DIM may not
  exceed D nor (training images - 1) of any fold (beyond that the basis is not unique; so is a basis that cuts
  through repeated singular values, e.g. of duplicated images, where the two languages may then disagree).

Outputs
-------
Accuracies, rates, AUC and EER are fractions in the returned dict and percentages in the printed table, which
is character for character the table lfw_eval.m prints. ``lfw_results.json`` (the dict; lfw_eval.m writes the
same keys) and ``lfw_roc.png`` go to the output folder. JSON has no infinities, so non-finite numbers are written
as the strings "Infinity", "-Infinity" and "NaN" (:func:`read_results_json` reads them back).

The ROC picture has a logarithmic FAR axis, the face-verification convention (TPR at FAR = 0.1% cannot be read on a
linear one): from :func:`far_floor` (the decade at or below 1/N, the smallest non-zero FAR N mismatched pairs can
show; points at FAR 0 are drawn on that edge) to 1. lfw_eval.m draws the same axis.

When the features file names the checkpoint that made it (the extractor writes ``model_prefix``, ``model_epoch``
and ``model_params_sha256``), the best threshold on all pairs is also saved beside that checkpoint
(``PREFIX-NNNN-threshold.json``, :func:`save_model_threshold`): ``python -m lightcnn.verify`` uses it when no
threshold is given. Only the Python evaluator saves it, and not for PCA scores (verify compares plain cosines),
nor when it is not finite (+-inf: no threshold separates the pairs better than calling them all the same).
"""
import argparse
import dataclasses
import os
import time

import numpy as np

from lightcnn import cli, files, lfw

FAR_TARGETS = (("tpr_at_far_1pct", "TPR@FAR=1%", 0.01),
               ("tpr_at_far_0_1pct", "TPR@FAR=0.1%", 0.001),
               ("tpr_at_far_0", "TPR@FAR=0", 0.0))
RESULTS_JSON = "lfw_results.json"
ZERO_ROWS_SHOWN = 10  # names of zero rows printed; lfw_results.json has them all
ROC_PNG = "lfw_roc.png"


# ---------------------------------------------------------------------------------------------------------------
# features

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


def zero_norm(data):
    """Rows whose norm is 0, computed as :func:`cosine_scores` computes it (they score cosine 0)."""
    x = np.asarray(data, dtype=np.float64)
    return np.sum(x * x, axis=1) == 0


def load_features(path):
    """Read an extractor's ``.mat`` (or ``.npz``): ``data`` N x D, ``label`` N keys, optional ``missing``."""
    if str(path).endswith(".npz"):
        try:
            with np.load(path, allow_pickle=False) as f:
                content = {k: f[k] for k in f.files}
        except OSError as error:
            if error.errno is not None:
                raise
            raise ValueError(f"{path}: not a readable .npz file ({error})") from None
        except Exception as error:  # not a zip (numpy then tries a pickle), a damaged zip, a damaged array
            raise ValueError(f"{path}: not a readable .npz file ({type(error).__name__}: {error})") from None
    else:
        content = _load_mat(path)
    for name in ("data", "label"):
        if name not in content:
            raise ValueError(f"{path}: no '{name}' variable (expected 'data' N x D and 'label' N x 1 cell)")
    data = np.asarray(content["data"])
    if data.ndim != 2:
        raise ValueError(f"{path}: 'data' must be N x D, got shape {data.shape}")
    keys = [lfw.image_key(k) for k in _strings(content["label"])]
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
    missing = frozenset(lfw.image_key(k) for k in _strings(content.get("missing")))
    model = None
    if "model_prefix" in content and "model_epoch" in content:
        model = {"prefix": "".join(_strings(content["model_prefix"])),
                 "epoch": int(np.asarray(content["model_epoch"]).ravel()[0]),
                 "params_sha256": "".join(_strings(content.get("model_params_sha256"))) or None}
    return Features(data, keys, missing, model)


class MissingFeaturesError(ValueError):
    """Pairs with an image that has no feature; ``.pairs`` lists them."""

    def __init__(self, message, pairs):
        super().__init__(message)
        self.pairs = pairs


def _pair_line(p):
    return "  fold %2d  %-4s  %s  %s" % (p.fold + 1, "same" if p.is_same else "diff", p.key1, p.key2)


def pair_rows(features, pairs):
    """Row of each pair's two images in ``features.data`` (-1 where missing), and a mask of complete pairs."""
    index = features.index()
    for k in features.missing:
        index.pop(k, None)
    rows1 = np.array([index.get(p.key1, -1) for p in pairs], dtype=np.int64)
    rows2 = np.array([index.get(p.key2, -1) for p in pairs], dtype=np.int64)
    return rows1, rows2, (rows1 >= 0) & (rows2 >= 0)


# ---------------------------------------------------------------------------------------------------------------
# scores

def cosine_scores(x1, x2):
    """Row-wise cosine similarity of two (n, D) arrays, in double; 0 where a norm is 0."""
    x1 = np.asarray(x1, dtype=np.float64)
    x2 = np.asarray(x2, dtype=np.float64)
    # Row sums of elementwise products, so identical rows give bit-identical scores (exact ties).
    dot = np.sum(x1 * x2, axis=1)
    norms = np.sqrt(np.sum(x1 * x1, axis=1)) * np.sqrt(np.sum(x2 * x2, axis=1))
    zero = norms == 0
    return np.where(zero, 0.0, dot / np.where(zero, 1.0, norms))


def pca_fold_scores(data, rows1, rows2, folds, dim, n_folds):
    """(n_folds, n_pairs) scores: row k scores every pair after a PCA fitted on the pairs not in fold k."""
    data = np.asarray(data, dtype=np.float64)
    rows1, rows2, folds = np.asarray(rows1), np.asarray(rows2), np.asarray(folds)
    used = np.unique(np.concatenate([rows1, rows2]))
    scores = np.empty((n_folds, len(rows1)))
    for k in range(n_folds):
        train = folds != k
        rows = np.unique(np.concatenate([rows1[train], rows2[train]]))
        limit = min(data.shape[1], len(rows) - 1)
        if not 1 <= dim <= limit:
            raise ValueError(f"PCA dimension {dim} must be in 1..{limit} for fold {k + 1} "
                             f"({len(rows)} training images of dimension {data.shape[1]})")
        mean = data[rows].mean(axis=0)
        _, _, vt = np.linalg.svd(data[rows] - mean, full_matrices=False)
        projected = np.zeros((data.shape[0], dim))
        projected[used] = (data[used] - mean) @ vt[:dim].T
        scores[k] = cosine_scores(projected[rows1], projected[rows2])
    return scores


# ---------------------------------------------------------------------------------------------------------------
# figures

def best_threshold(scores, is_same):
    """(threshold, accuracy) maximising accuracy of ``score >= threshold`` (definition in the module doc)."""
    scores = np.asarray(scores, dtype=np.float64)
    is_same = np.asarray(is_same, dtype=bool)
    if scores.size == 0:
        raise ValueError("no pairs to choose a threshold on")
    u, inverse = np.unique(scores, return_inverse=True)  # ascending distinct scores
    m = len(u)
    pos = np.bincount(inverse, weights=is_same, minlength=m)
    neg = np.bincount(inverse, weights=~is_same, minlength=m)
    # candidate j: the j lowest distinct scores are called "different"
    correct = np.concatenate([[0.0], np.cumsum(neg)]) + (pos.sum() - np.concatenate([[0.0], np.cumsum(pos)]))
    j = int(np.argmax(correct))  # first maximum: the lowest threshold
    if j == 0:
        threshold = -np.inf
    elif j == m:
        threshold = np.inf
    else:
        threshold = (u[j - 1] + u[j]) / 2
    return float(threshold), float(correct[j] / scores.size)


def roc_curve(scores, is_same):
    """ROC points over distinct thresholds: dict of ``threshold`` (+inf first), ``tp``, ``fp``, ``tpr``, ``fpr``."""
    scores = np.asarray(scores, dtype=np.float64)
    is_same = np.asarray(is_same, dtype=bool)
    u, inverse = np.unique(scores, return_inverse=True)
    m = len(u)
    pos = np.bincount(inverse, weights=is_same, minlength=m)[::-1]  # descending thresholds
    neg = np.bincount(inverse, weights=~is_same, minlength=m)[::-1]
    tp = np.concatenate([[0.0], np.cumsum(pos)])
    fp = np.concatenate([[0.0], np.cumsum(neg)])
    n_pos, n_neg = tp[-1], fp[-1]
    with np.errstate(invalid="ignore", divide="ignore"):
        tpr, fpr = tp / n_pos, fp / n_neg
    return {"threshold": np.concatenate([[np.inf], u[::-1]]), "tp": tp, "fp": fp, "tpr": tpr, "fpr": fpr}


def roc_figures(roc):
    """AUC, EER and TPR@FAR of a :func:`roc_curve` (definitions in the module doc)."""
    tp, fp, tpr, fpr = roc["tp"], roc["fp"], roc["tpr"], roc["fpr"]
    n_pos, n_neg = tp[-1], fp[-1]
    out = {"auc": np.nan, "eer": np.nan, "one_minus_eer": np.nan}
    out.update({key: np.nan for key, _, _ in FAR_TARGETS})
    if n_pos == 0 or n_neg == 0:
        return out
    out["auc"] = float(np.sum((fp[1:] - fp[:-1]) * (tp[1:] + tp[:-1])) / (2 * n_pos * n_neg))
    d = (n_pos - tp) * n_neg - fp * n_pos
    k = int(np.argmax(d <= 0))
    if d[k] == 0:
        eer = fpr[k]
    else:
        eer = fpr[k - 1] + d[k - 1] / (d[k - 1] - d[k]) * (fpr[k] - fpr[k - 1])
    out["eer"] = float(eer)
    out["one_minus_eer"] = float(1 - eer)
    for key, _, far in FAR_TARGETS:
        out[key] = float(np.max(tpr[fpr <= far]))
    return out


def evaluate(scores, is_same, folds, n_folds=None):
    """All protocol figures for pairs with scores, labels and folds (0-based).

    ``scores`` is (n_pairs,), or (n_folds, n_pairs) where row k holds the scores under a model fitted without
    fold k (PCA). Returns a dict: n_pairs, n_matched, n_mismatched, n_folds, fold_n_pairs, fold_accuracy,
    fold_threshold, accuracy_mean, accuracy_std (sample std, N-1), best_accuracy, best_threshold, auc, eer,
    one_minus_eer, tpr_at_far_1pct, tpr_at_far_0_1pct, tpr_at_far_0, roc_fpr, roc_tpr, roc_threshold.
    """
    is_same = np.asarray(is_same, dtype=bool)
    folds = np.asarray(folds, dtype=np.int64)
    scores = np.asarray(scores, dtype=np.float64)
    n = len(is_same)
    if n_folds is None:
        n_folds = int(folds.max()) + 1 if n else 0
    if folds.shape != (n,) or (n and (folds.min() < 0 or folds.max() >= n_folds)):
        raise ValueError(f"folds must be {n} integers in 0..{n_folds - 1}")
    if scores.ndim == 1:
        scores = np.broadcast_to(scores, (n_folds, n))
    if scores.shape != (n_folds, n):
        raise ValueError(f"scores must have shape ({n},) or ({n_folds}, {n}), got {scores.shape}")
    if not np.all(np.isfinite(scores)):
        raise ValueError("scores must be finite")
    if n_folds < 2:
        raise ValueError(f"need at least 2 folds, got {n_folds}")
    fold_n = np.bincount(folds, minlength=n_folds)
    if np.any(fold_n == 0):
        raise ValueError("fold(s) %s hold no pairs" % ", ".join(str(k + 1) for k in np.flatnonzero(fold_n == 0)))

    fold_accuracy, fold_threshold = np.empty(n_folds), np.empty(n_folds)
    for k in range(n_folds):
        test = folds == k
        t, _ = best_threshold(scores[k, ~test], is_same[~test])
        fold_threshold[k] = t
        fold_accuracy[k] = np.count_nonzero((scores[k, test] >= t) == is_same[test]) / fold_n[k]

    out_of_fold = scores[folds, np.arange(n)]
    best_t, best_acc = best_threshold(out_of_fold, is_same)
    roc = roc_curve(out_of_fold, is_same)
    results = {
        "n_pairs": int(n),
        "n_matched": int(is_same.sum()),
        "n_mismatched": int(n - is_same.sum()),
        "n_folds": int(n_folds),
        "fold_n_pairs": fold_n.tolist(),
        "fold_accuracy": fold_accuracy.tolist(),
        "fold_threshold": fold_threshold.tolist(),
        "accuracy_mean": float(np.mean(fold_accuracy)),
        "accuracy_std": float(np.std(fold_accuracy, ddof=1)),
        "best_accuracy": best_acc,
        "best_threshold": best_t,
    }
    results.update(roc_figures(roc))
    results.update(roc_fpr=roc["fpr"].tolist(), roc_tpr=roc["tpr"].tolist(), roc_threshold=roc["threshold"].tolist())
    return results


# ---------------------------------------------------------------------------------------------------------------
# the whole protocol

def verify(features, pairs, pca=0, exclude_missing=False, exclude_zero_rows=False, log=print):
    """Score ``pairs`` (from :func:`lightcnn.lfw.read_pairs`) with ``features`` and :func:`evaluate` them.

    Adds to the dict: n_listed (pairs in the file), n_excluded, excluded (list of [key1, key2], missing images and,
    with ``exclude_zero_rows``, zero rows), pca_dim (0 for none), zero_rows (``count`` and ``names`` of the feature
    rows of norm 0, ``n_pairs`` that use one, ``n_excluded`` of those). Raises :class:`MissingFeaturesError`
    listing every pair with a missing image unless ``exclude_missing``, in which case the excluded pairs are
    reported through ``log``. Zero rows are reported through ``log`` too; their pairs score cosine 0 unless
    ``exclude_zero_rows`` leaves them out the same way.
    """
    pairs = list(pairs)
    if not pairs:
        raise ValueError("no pairs")
    n_folds = max(p.fold for p in pairs) + 1
    rows1, rows2, complete = pair_rows(features, pairs)
    lost = [p for p, ok in zip(pairs, complete) if not ok]
    if lost:
        listing = "\n".join(_pair_line(p) for p in lost)
        if not exclude_missing:
            raise MissingFeaturesError(
                "%d of %d pairs have an image without a feature (exclude them with --exclude-missing, or "
                "'exclude_missing', true in lfw_eval):\n%s" % (len(lost), len(pairs), listing), lost)
        log("excluded %d of %d pairs with an image that has no feature:\n%s" % (len(lost), len(pairs), listing))

    # Zero rows (an image the network mapped to nothing) score cosine 0 with anything: said, and optionally left out.
    zero = zero_norm(features.data) & np.array([k not in features.missing for k in features.keys], dtype=bool)
    zero_names = [k for k, z in zip(features.keys, zero) if z]
    on_zero = complete & (np.isin(rows1, np.flatnonzero(zero)) | np.isin(rows2, np.flatnonzero(zero)))
    keep = complete & ~on_zero if exclude_zero_rows else complete
    if zero_names:
        if exclude_zero_rows:
            log("excluded %d of %d pairs with an image whose feature is zero (%d of %d feature rows have norm 0)%s"
                % (on_zero.sum(), len(pairs), len(zero_names), len(features.keys),
                   ":\n" + "\n".join(_pair_line(p) for p, z in zip(pairs, on_zero) if z) if on_zero.any() else ""))
        else:
            shown = zero_names[:ZERO_ROWS_SHOWN]
            more = len(zero_names) - len(shown)
            log("%d of %d feature rows have norm 0, used by %d pairs, %s (leave those pairs out with "
                "--exclude-zero-rows, or 'exclude_zero_rows', true in lfw_eval):\n%s"
                % (len(zero_names), len(features.keys), on_zero.sum(), _zero_scoring(pca),
                   "\n".join("  " + k for k in shown) + ("\n  ... and %d more" % more if more else "")))

    used = [p for p, ok in zip(pairs, keep) if ok]
    rows1, rows2 = rows1[keep], rows2[keep]
    folds = np.array([p.fold for p in used], dtype=np.int64)
    is_same = np.array([p.is_same for p in used], dtype=bool)
    if pca:
        scores = pca_fold_scores(features.data, rows1, rows2, folds, int(pca), n_folds)
    else:
        scores = cosine_scores(features.data[rows1], features.data[rows2])
    results = evaluate(scores, is_same, folds, n_folds)
    excluded = [p for p, ok in zip(pairs, keep) if not ok]
    results.update(n_listed=len(pairs), n_excluded=len(excluded), excluded=[[p.key1, p.key2] for p in excluded],
                   pca_dim=int(pca or 0),
                   zero_rows={"count": len(zero_names), "names": zero_names, "n_pairs": int(on_zero.sum()),
                              "n_excluded": int(on_zero.sum()) if exclude_zero_rows else 0})
    return results


def _zero_scoring(pca):
    """What becomes of the pairs of a zero row that are kept."""
    return "scored after PCA" if pca else "scored as cosine 0"


def _num(x, spec):
    """``spec % x``, but inf/-inf/nan spelled the same way as lfw_eval.m prints them."""
    if np.isfinite(x):
        return spec % x
    return "nan" if np.isnan(x) else ("inf" if x > 0 else "-inf")


def format_table(results):
    """The result table, line for line what lfw_eval.m prints."""
    r = results
    lines = [
        "LFW verification",
        "  features  %s" % r.get("features", "-"),
        "  pairs     %s [%s]: %d listed, %d used (%d matched, %d mismatched), %d excluded, %d folds"
        % (r.get("pairs", "-"), r.get("pair_format", "-"), r.get("n_listed", r["n_pairs"]), r["n_pairs"],
           r["n_matched"], r["n_mismatched"], r.get("n_excluded", 0), r["n_folds"]),
    ]
    zero = r.get("zero_rows") or {"count": 0}
    if zero["count"]:
        fate = "excluded" if zero["n_excluded"] else "kept, " + _zero_scoring(r.get("pca_dim", 0))
        lines.append("  zero rows %d (feature rows of norm 0), used by %d pairs%s"
                     % (zero["count"], zero["n_pairs"], ": " + fate if zero["n_pairs"] else ""))
    if r.get("pca_dim", 0):
        lines += ["  score     cosine after PCA to %d dims, fitted on the other folds' images for each fold"
                  % r["pca_dim"],
                  "            (ROC, AUC, EER, TPR and best-threshold use each pair's out-of-fold score)"]
    else:
        lines.append("  score     cosine similarity")
    lines.append("fold  pairs   threshold   accuracy")
    for k in range(r["n_folds"]):
        lines.append("%4d  %5d  %10s  %8s%%" % (k + 1, r["fold_n_pairs"][k], _num(r["fold_threshold"][k], "%10.6f"),
                                               _num(100 * r["fold_accuracy"][k], "%8.4f")))
    lines += [
        "%-24s %s%% +- %s   (mean +- sample std (N-1) over folds; threshold from the other folds)"
        % ("%d-fold accuracy" % r["n_folds"], _num(100 * r["accuracy_mean"], "%8.4f"),
           _num(100 * r["accuracy_std"], "%.4f")),
        "%-24s %s%%   (optimistic: one threshold, %s, chosen on all pairs)"
        % ("best-threshold accuracy", _num(100 * r["best_accuracy"], "%8.4f"), _num(r["best_threshold"], "%.6f")),
        "%-24s %s" % ("AUC", _num(r["auc"], "%8.6f")),
        "%-24s %s%%" % ("EER", _num(100 * r["eer"], "%8.4f")),
        "%-24s %s%%" % ("100%-EER", _num(100 * r["one_minus_eer"], "%8.4f")),
    ]
    for key, label, _ in FAR_TARGETS:
        lines.append("%-24s %s%%" % (label, _num(100 * r[key], "%8.4f")))
    return "\n".join(lines)


def read_results_json(path):
    """Load a results JSON (ours or lfw_eval.m's), turning "Infinity"/"-Infinity"/"NaN" back into floats."""
    return files.read_json(path)


def far_floor(n_mismatched):
    """The left end of the logarithmic FAR axis: the decade at or below 1/N, the smallest non-zero FAR that N
    mismatched pairs can show (10^-4 without any); lfw_plot_roc.m computes the same."""
    if not n_mismatched:
        return 1e-4
    return float(10.0 ** np.floor(np.log10(1.0 / n_mismatched) + 1e-9))


def roc_figure(results):
    """The ROC curve as a matplotlib Figure on the Agg canvas (no display, no pyplot state): logarithmic FAR axis
    from :func:`far_floor` to 1 (FAR 0 drawn on its left edge), TPR 0 to 1, the chance line, and the TPR at
    FAR = 1% and 0.1% marked."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    lo = far_floor(results["n_mismatched"])
    fig = Figure(figsize=(6, 6), dpi=100)
    FigureCanvasAgg(fig)
    ax = fig.add_subplot(1, 1, 1)
    chance = np.logspace(np.log10(lo), 0, 200)
    ax.plot(chance, chance, color="0.7", linewidth=0.8, label="chance")
    ax.plot(np.maximum(results["roc_fpr"], lo), results["roc_tpr"], color="b", linewidth=1.5, label="ROC")
    for key, label, far in FAR_TARGETS:
        if far >= lo and np.isfinite(results[key]):
            ax.plot([far], [results[key]], "o", markersize=4, label="%s: %s%%" % (label, _num(100 * results[key],
                                                                                                  "%.2f")))
    ax.set_xscale("log")
    ax.set_xlim(lo, 1)
    ax.set_ylim(0, 1)
    ax.set_xlabel("false accept rate (FAR, log scale)")
    ax.set_ylabel("true positive rate")
    ax.set_title("LFW ROC: AUC %s, EER %s%%" % (_num(results["auc"], "%.4f"), _num(100 * results["eer"], "%.2f")))
    ax.grid(True, which="major", linewidth=0.3)
    ax.grid(True, which="minor", linewidth=0.15)
    ax.legend(loc="lower right", fontsize=8)
    return fig


def plot_roc(results, path):
    """Save :func:`roc_figure` as a PNG, written atomically."""
    with files.atomic_path(path) as temp:
        roc_figure(results).savefig(temp, format="png")


def write_results(results, out_dir):
    """Write ``lfw_results.json`` and ``lfw_roc.png`` into ``out_dir``; returns their paths."""
    os.makedirs(out_dir, exist_ok=True)
    json_path, png_path = os.path.join(out_dir, RESULTS_JSON), os.path.join(out_dir, ROC_PNG)
    files.write_json(json_path, results)
    plot_roc(results, png_path)
    return json_path, png_path


def threshold_path(prefix, epoch):
    """Where the evaluator saves a checkpoint's threshold: ``PREFIX-NNNN-threshold.json``, beside its sidecar."""
    return f"{prefix}-{int(epoch):04d}-threshold.json"


def save_model_threshold(model, results, log=print):
    """Save the best threshold on all pairs beside the checkpoint ``model`` names (``{"prefix", "epoch",
    "params_sha256"}``, from the features file), for ``python -m lightcnn.verify``. Says why when it does not: no
    model named, PCA scores, a checkpoint that is not here or has been saved again since. Returns the path or None.
    """
    if not model:
        return None
    where = f"{model['prefix']} epoch {model['epoch']}"
    if not np.isfinite(results["best_threshold"]):  # +-inf: no cut beats calling every pair the same
        log(f"threshold not saved beside {where}: the best threshold on all pairs is "
            f"{_num(results['best_threshold'], '%.6f')} (no threshold separates these pairs better than none)")
        return None
    if results.get("pca_dim"):
        log(f"threshold not saved beside {where}: PCA scores are not the plain cosine lightcnn.verify compares")
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
        % (_num(record["threshold"], "%.6f"), results["n_pairs"], path))
    return path


def load_model_threshold(prefix, epoch, params_sha256=None):
    """``(record, None)`` of the threshold saved for a checkpoint, or ``(None, why not)``: none saved, or saved
    for weights that have been replaced since (their sha256 differs from ``params_sha256``)."""
    path = threshold_path(prefix, epoch)
    if not os.path.isfile(path):
        return None, f"no LFW evaluation of this checkpoint has saved a threshold ({path} does not exist)"
    try:
        record = read_results_json(path)
        threshold = record["threshold"]
    except (OSError, ValueError, KeyError, TypeError) as error:
        return None, f"{path} cannot be read ({error})"
    # NaN says "different" to every pair and +-inf one answer to all: not a threshold, whoever wrote it
    if isinstance(threshold, bool) or not isinstance(threshold, (int, float)) or not np.isfinite(threshold):
        return None, f"{path} holds no usable threshold ({threshold!r} is not a finite number)"
    if params_sha256 and record.get("params_sha256") and record["params_sha256"] != params_sha256:
        return None, f"{path} was saved for weights that have been replaced since (sha256 differs)"
    return record, None


def default_pairs_path(features_path):
    """``pairs.txt``, else ``pair.label``, beside the features file."""
    folder = os.path.dirname(features_path)
    for name in ("pairs.txt", "pair.label"):
        path = os.path.join(folder, name)
        if os.path.isfile(path):
            return path
    raise FileNotFoundError(f"neither pairs.txt nor pair.label beside {features_path!r}; pass the pair file")


def run(features_path="LFW_features.mat", pairs_path=None, out_dir=".", pca=0, exclude_missing=False,
        exclude_zero_rows=False, log=print):
    """Load, verify, print the table, write JSON + ROC PNG into ``out_dir``: what ``lfw_eval.m`` does."""
    if not pairs_path:
        pairs_path = default_pairs_path(features_path)
    features = load_features(features_path)
    pairs, pair_format = lfw.read_pairs_with_format(pairs_path)
    results = {"features": features_path, "pairs": pairs_path, "pair_format": pair_format}
    results.update(verify(features, pairs, pca=pca, exclude_missing=exclude_missing,
                          exclude_zero_rows=exclude_zero_rows, log=log))
    log(format_table(results))
    json_path, png_path = write_results(results, out_dir)
    save_model_threshold(features.model, results, log)
    log("wrote %s and %s" % (json_path, png_path))
    return results


def _verification(argv):
    parser = argparse.ArgumentParser(prog="python -m lightcnn.verification",
                                     description="LFW verification: 10-fold accuracy, ROC, AUC, EER, TPR@FAR "
                                                 "(the same figures as lfw_verification-matlab/lfw_eval.m).")
    parser.add_argument("--features", default="LFW_features.mat",
                        help="extractor output: data (N x D), label (N x 1 cell), optional missing")
    parser.add_argument("--pairs", default=None,
                        help="pairs.txt (View 1 or 2) or pair.label; default: pairs.txt, else pair.label, "
                             "beside the features file")
    parser.add_argument("--out-dir", default=".", help="where lfw_results.json and lfw_roc.png go")
    parser.add_argument("--pca", type=int, default=0, metavar="DIM",
                        help="PCA to DIM dims fitted on the training folds of each fold (default: none)")
    parser.add_argument("--exclude-missing", action="store_true",
                        help="leave out (and list) pairs with an image that has no feature instead of failing")
    parser.add_argument("--exclude-zero-rows", action="store_true",
                        help="leave out (and list) pairs with an image whose feature is all zero (norm 0) instead "
                             "of scoring them as cosine 0")
    cli.add_debug_flag(parser)
    args = parser.parse_args(argv)
    run(args.features, args.pairs, args.out_dir, pca=args.pca, exclude_missing=args.exclude_missing,
        exclude_zero_rows=args.exclude_zero_rows)
    return 0


def main(argv=None):
    """The evaluator's command line; returns the exit status (2: bad input or pairs without features)."""
    return cli.run(_verification, argv)


if __name__ == "__main__":
    raise SystemExit(main())
