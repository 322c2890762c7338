"""The 10-fold LFW verification protocol, number for number the same as ``lfw_verification-matlab/lfw_eval.m``.

Pairs come from :mod:`lightcnn.protocols.lfw_pairs` (their folds are used as they are), features from
:mod:`lightcnn.protocols.features`. A pair is *missing* when one of its keys is not in ``label`` or is listed in
``missing``. By default missing pairs are an error that lists every one; with ``exclude_missing`` they are left
out, and their count and names are reported. The remaining pairs keep their folds.

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

Accuracies, rates, AUC and EER are fractions in the returned dict (percentages in the printed table of
:mod:`lightcnn.protocols.report`).
"""
from collections.abc import Callable, Iterable

import numpy as np

from lightcnn.protocols.features import Features
from lightcnn.protocols.lfw_pairs import Pair
from lightcnn.protocols.similarity import cosine_scores, zero_norm

FAR_TARGETS = (("tpr_at_far_1pct", "TPR@FAR=1%", 0.01),
               ("tpr_at_far_0_1pct", "TPR@FAR=0.1%", 0.001),
               ("tpr_at_far_0", "TPR@FAR=0", 0.0))
ZERO_ROWS_SHOWN = 10  # names of zero rows printed; lfw_results.json has them all


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
# scores and figures

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


def evaluate(scores: np.ndarray, is_same: np.ndarray, folds: np.ndarray, n_folds: int | None = None) -> dict:
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

def verify(features: Features, pairs: Iterable[Pair], pca: int = 0, exclude_missing: bool = False,
           exclude_zero_rows: bool = False, log: Callable[[str], None] = print) -> dict:
    """Score ``pairs`` (from :func:`lightcnn.protocols.lfw_pairs.read_pairs`) with ``features`` and
    :func:`evaluate` them.

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
                % (len(zero_names), len(features.keys), on_zero.sum(), zero_scoring(pca),
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


def zero_scoring(pca):
    """What becomes of the pairs of a zero row that are kept."""
    return "scored after PCA" if pca else "scored as cosine 0"
