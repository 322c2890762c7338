"""The BLUFR benchmark on LFW (Liao, Lei, Yi, Li, "A Benchmark Study of Large-scale Unconstrained Face
Recognition", IJCB 2014), number for number the same as ``lfw_verification-matlab/blufr_eval.m``.

Inputs: a features file as the extractor writes it (``data`` N x D, ``label`` N keys ``Name/Name_NNNN.jpg``, optional
``missing``; read by :func:`lightcnn.protocols.features.load_features`) and BLUFR's configuration (the ``.mat`` or the
folder of its text lists, :mod:`lightcnn.protocols.blufr_config`). An image of the configuration without a feature row
is an error giving the count and the first names; with ``exclude_missing`` it is dropped from every set of every trial
(train, test, gallery, probe) and the number dropped per set and trial is printed and stored under ``excluded``. A
gallery image dropped takes its subject out of the gallery, so that subject's probes become impostor probes.

Definitions (blufr_eval.m implements exactly these)
---------------------------------------------------
Features are cast to double. Every figure is computed per trial t = 1..T (T = 10) and reported as the mean, the
standard deviation (N - 1 normalisation, 0 for a single trial, as MATLAB's ``std``) and mean - std over the trials.

* Score: cosine similarity, the dot product of L2-normalised rows (a row of norm 0 stays 0 and scores 0). With
  ``pca`` = P, each trial first fits a PCA on its own training images only (mean-centred, the top P right singular
  vectors W) and maps every test feature x to ``(x - mean) W``; P must lie in 1..min(D, training images - 1).
* Threshold at FAR f over N impostor scores (the same rule for verification and open-set identification): sort the
  impostor scores descending, s_1 >= s_2 >= ... >= s_N, and let k = round(f N) (halves rounded up).
  0 < k < N: the threshold is s_k, the k-th highest impostor score. k = 0: halfway between s_1 and the lowest genuine
  score above s_1, or s_1 + sqrt(eps) (eps = 2^-52) when no genuine score is above s_1. k = N: the lowest of all the
  impostor and genuine scores minus sqrt(eps). A score is accepted when ``score >= threshold``. Ties: every impostor
  tied with s_k is accepted too, so where the k-th score is tied the FAR actually reached exceeds f (BLUFR's rule,
  kept); at k = 0 no impostor is accepted and at k = N every score is.
* Verification: the test set's scores of all unordered pairs of distinct images (the strict lower triangle of the
  test x test matrix); genuine = same label. VR(f) = fraction of genuine scores >= threshold(f). FAR grid
  (``VERIFY_FARS``): 0, then 1..9 x 10^-8, ..., 1..9 x 10^-1, then 1. Reported: VR at f = 0.001.
* Open-set identification: the probe x gallery scores. A probe is genuine when its label is a gallery label (the
  gallery holds one image per subject), else an impostor. An impostor probe's score is its best gallery score; the
  thresholds come from those N scores by the rule above, with the genuine probes' scores as the genuine scores. A
  genuine probe's score is its score against its subject's gallery image, and its rank is the number of gallery
  images scoring >= that score (1 = best; a tie ranks the true subject last among equals). DIR(r, f) = fraction of
  genuine probes with score >= threshold(f) and rank <= r; CMC(r) = fraction with rank <= r (DIR at f = 1). FAR grid
  (``OPEN_SET_FARS``): 0, 1..9 x 10^-4, ..., 1..9 x 10^-1, 1; ranks (``RANKS``) 1..10, 20..100. Reported: DIR at
  rank 1, f = 0.01.

Memory: the verification scores are made in blocks of rows of the lower triangle (never the full matrix); the
impostor scores of a trial (about 47 million doubles, 376 MB) are held once and partitioned in place at the grid's
order statistics (``np.partition``), not sorted.
"""
import time

import numpy as np

from lightcnn.protocols.blufr_config import (MissingImagesError, apply_missing, feature_rows, image_key,  # noqa
                                             load_config)

RESULTS_JSON = "blufr_results.json"
HEADLINES = ("vr_at_far_0.001", "dir_at_rank1_far_0.01")
SQRT_EPS = float(np.sqrt(np.finfo(np.float64).eps))
BLOCK_ROWS = 1024  # rows of the test x test score matrix made at a time (1024 x 9,700 doubles: 80 MB)


def far_grid(first_exponent, last_exponent):
    """0, 1..9 x 10^first, ..., 1..9 x 10^last, 1 (each point computed as ``k * 10 ** e``, as blufr_eval.m does)."""
    points = [k * 10.0 ** e for e in range(first_exponent, last_exponent + 1) for k in range(1, 10)]
    return np.array([0.0] + points + [1.0])


VERIFY_FARS = far_grid(-8, -1)
OPEN_SET_FARS = far_grid(-4, -1)
RANKS = np.array(list(range(1, 11)) + list(range(20, 101, 10)))
VR_FAR, DIR_FAR, DIR_RANK = 1e-3, 1e-2, 1


def far_counts(fars, n):
    """k = round(f n), halves up (MATLAB's round for f n >= 0)."""
    return np.floor(np.asarray(fars) * n + 0.5).astype(np.int64)


def thresholds(impostors, genuine, fars):
    """Threshold at each FAR of ``fars`` (the rule in the module doc). ``impostors`` (float64) is partitioned in
    place: the caller's array is reordered, never copied."""
    n = impostors.size
    if n == 0:
        raise ValueError("no impostor scores: a FAR threshold needs at least one")
    ks = far_counts(fars, n)
    highest, lowest = impostors.max(), impostors.min()
    inner = np.unique(ks[(ks > 0) & (ks < n)])
    if inner.size:
        impostors.partition(n - inner)  # ascending: the k-th highest score lands at position n - k
    if genuine.size:
        lowest = min(lowest, genuine.min())
    above = genuine[genuine > highest]
    at_zero = (highest + above.min()) / 2 if above.size else highest + SQRT_EPS
    out = np.empty(len(ks))
    for i, k in enumerate(ks):
        out[i] = at_zero if k == 0 else (lowest - SQRT_EPS if k >= n else impostors[n - k])
    return out


def accept_rates(genuine, ts):
    """Fraction of ``genuine`` scores >= each threshold (NaN without genuine scores)."""
    if genuine.size == 0:
        return np.full(len(ts), np.nan)
    ordered = np.sort(genuine)
    return (genuine.size - np.searchsorted(ordered, ts, side="left")) / genuine.size


def normalise(x):
    """Rows scaled to unit L2 norm, in double; rows of norm 0 stay 0."""
    x = np.asarray(x, dtype=np.float64)
    norms = np.sqrt(np.sum(x * x, axis=1))
    return x / np.where(norms == 0, 1.0, norms)[:, None]


def pca_map(train, dim):
    """(mean, W): the top ``dim`` principal directions of the training rows."""
    train = np.asarray(train, dtype=np.float64)
    limit = min(train.shape[1], train.shape[0] - 1)
    if not 1 <= dim <= limit:
        raise ValueError(f"PCA dimension {dim} must be in 1..{limit} ({train.shape[0]} training images of dimension "
                         f"{train.shape[1]})")
    mean = train.mean(axis=0)
    _, _, vt = np.linalg.svd(train - mean, full_matrices=False)
    return mean, vt[:dim].T


def pair_scores(x, labels, block_rows=BLOCK_ROWS):
    """(genuine, impostor) cosine scores of all unordered pairs of rows of the normalised ``x``."""
    # Rows in label order: the earlier rows of row r's own label are then the columns first[r]..r-1, so each row of
    # the lower triangle is two contiguous slices, impostor [0, first[r]) and genuine [first[r], r): no masks.
    order = np.argsort(labels, kind="stable")
    labels, x = np.asarray(labels)[order], x[order]
    n = len(labels)
    first = np.searchsorted(labels, labels, side="left")
    n_genuine = int(np.sum(np.arange(n) - first))
    genuine = np.empty(n_genuine)
    impostor = np.empty(n * (n - 1) // 2 - n_genuine)
    g = i = 0
    for a in range(0, n, block_rows):
        b = min(a + block_rows, n)
        s = x[a:b] @ x[:b].T  # (b - a, b): rows a..b-1 against every earlier row and themselves
        for r in range(a, b):
            row, f = s[r - a], first[r]
            impostor[i:i + f] = row[:f]
            genuine[g:g + r - f] = row[f:r]
            i, g = i + f, g + r - f
    return genuine, impostor


def verification(x, labels, fars=VERIFY_FARS):
    """VR at each FAR, the thresholds and the pair counts of one test set (normalised rows ``x``)."""
    genuine, impostor = pair_scores(x, labels)
    ts = thresholds(impostor, genuine, fars)
    return {"vr": accept_rates(genuine, ts), "threshold": ts, "n_genuine": genuine.size, "n_impostor": impostor.size}


def open_set(gallery, gallery_labels, probes, probe_labels, fars=OPEN_SET_FARS, ranks=RANKS):
    """DIR (ranks x fars), CMC, thresholds and probe counts of one gallery and probe set (normalised rows)."""
    gallery_labels, probe_labels = np.asarray(gallery_labels), np.asarray(probe_labels)
    if len(np.unique(gallery_labels)) != len(gallery_labels):
        raise ValueError("the gallery holds two images of one subject (BLUFR's galleries hold one per subject)")
    scores = probes @ gallery.T  # (probes, gallery)
    column = {label: j for j, label in enumerate(gallery_labels)}
    is_genuine = np.array([label in column for label in probe_labels], dtype=bool)
    own = np.array([column[label] for label in probe_labels[is_genuine]], dtype=np.int64)
    genuine_scores = scores[is_genuine]
    genuine = genuine_scores[np.arange(own.size), own]
    rank = np.sum(genuine_scores >= genuine[:, None], axis=1)
    impostor = scores[~is_genuine].max(axis=1) if scores.shape[1] else np.empty(0)
    ts = thresholds(impostor, genuine, fars)
    n = genuine.size if genuine.size else np.nan  # no genuine probe: NaN rates
    accepted = genuine[None, :] >= ts[:, None]  # (fars, genuine probes)
    dir_ = np.array([np.sum(accepted & (rank <= r)[None, :], axis=1) / n for r in ranks])
    return {"dir": dir_, "cmc": np.array([np.sum(rank <= r) / n for r in ranks]), "threshold": ts,
            "n_genuine": int(genuine.size), "n_impostor": int(impostor.size)}


def evaluate_trial(data, labels, trial, pca=0):
    """Every figure of one trial; ``data`` rows and ``labels`` are per image of the configuration, ``trial`` the
    0-based image indexes of each set."""
    test = np.asarray(trial["test"])
    x = np.asarray(data[test], dtype=np.float64)
    if pca:
        mean, w = pca_map(data[trial["train"]], int(pca))
        x = (x - mean) @ w
    x = normalise(x)
    where = {image: i for i, image in enumerate(test)}
    for name in ("gallery", "probe"):
        if any(image not in where for image in trial[name]):
            raise ValueError(f"the {name} set holds images that are not in the test set")
    gal = np.array([where[i] for i in trial["gallery"]], dtype=np.int64)
    prb = np.array([where[i] for i in trial["probe"]], dtype=np.int64)
    verify = verification(x, labels[test])
    identify = open_set(x[gal], labels[trial["gallery"]], x[prb], labels[trial["probe"]])
    return {"n_test": len(test), "verify": verify, "identify": identify, "n_gallery": len(gal)}


def summary(values):
    """``{"mean", "std", "mean_minus_std", "trials"}`` (std with N - 1; 0 for one value, as MATLAB's std)."""
    values = np.asarray(values, dtype=np.float64)
    mean = float(np.mean(values))
    std = float(np.std(values, ddof=1)) if values.size > 1 else 0.0
    return {"mean": mean, "std": std, "mean_minus_std": mean - std, "trials": values.tolist()}


def _grid_index(grid, value):
    return int(np.argmin(np.abs(np.asarray(grid) - value)))


def evaluate(config, features, pca=0, exclude_missing=False, log=print):
    """All trials on a :class:`~lightcnn.protocols.features.Features`: the results dict (see the module doc)."""
    rows = feature_rows(config, features)
    trials, excluded = apply_missing(config, rows, exclude_missing, log)
    data = np.zeros((len(config.names), features.data.shape[1]))
    data[rows >= 0] = features.data[rows[rows >= 0]]
    per_trial = []
    for t, trial in enumerate(trials):
        started = time.time()
        r = evaluate_trial(data, config.labels, trial, pca)
        per_trial.append(r)
        log("trial %2d: %d test images, %d genuine / %d impostor pairs, %d genuine / %d impostor probes: "
            "VR@FAR=0.1%% %.2f%%, DIR@rank1,FAR=1%% %.2f%% (%.1f s)"
            % (t + 1, r["n_test"], r["verify"]["n_genuine"], r["verify"]["n_impostor"], r["identify"]["n_genuine"],
               r["identify"]["n_impostor"], 100 * r["verify"]["vr"][_grid_index(VERIFY_FARS, VR_FAR)],
               100 * r["identify"]["dir"][list(RANKS).index(DIR_RANK), _grid_index(OPEN_SET_FARS, DIR_FAR)],
               time.time() - started))
    return collect(per_trial, excluded, pca)


def collect(per_trial, excluded, pca=0):
    """The per-trial figures as the results dict (what blufr_results.json holds)."""
    vr = np.array([r["verify"]["vr"] for r in per_trial])
    dir_ = np.array([r["identify"]["dir"] for r in per_trial])  # (trials, ranks, fars)
    cmc = np.array([r["identify"]["cmc"] for r in per_trial])
    rank = list(RANKS).index(DIR_RANK)
    return {
        "pca_dim": int(pca or 0), "n_trials": len(per_trial),
        "vr_at_far_0.001": summary(vr[:, _grid_index(VERIFY_FARS, VR_FAR)]),
        "dir_at_rank1_far_0.01": summary(dir_[:, rank, _grid_index(OPEN_SET_FARS, DIR_FAR)]),
        "far_grid": VERIFY_FARS.tolist(), "vr": vr.tolist(), "vr_mean": vr.mean(axis=0).tolist(),
        "vr_threshold": [r["verify"]["threshold"].tolist() for r in per_trial],
        "open_set_far_grid": OPEN_SET_FARS.tolist(), "ranks": RANKS.tolist(), "dir": dir_.tolist(),
        "dir_mean": dir_.mean(axis=0).tolist(),
        "dir_threshold": [r["identify"]["threshold"].tolist() for r in per_trial],
        "cmc": cmc.tolist(), "cmc_mean": cmc.mean(axis=0).tolist(),
        "n_test": [r["n_test"] for r in per_trial],
        "n_genuine_pairs": [r["verify"]["n_genuine"] for r in per_trial],
        "n_impostor_pairs": [r["verify"]["n_impostor"] for r in per_trial],
        "n_gallery": [r["n_gallery"] for r in per_trial],
        "n_genuine_probes": [r["identify"]["n_genuine"] for r in per_trial],
        "n_impostor_probes": [r["identify"]["n_impostor"] for r in per_trial],
        "excluded": excluded,
    }

