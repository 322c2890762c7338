"""The LFW protocol in Python against hand-computed cases (definitions in lightcnn/protocols/tenfold.py)."""
import json
import math
import os

import numpy as np
import pytest
import scipy.io

from lightcnn.cli import evaluate
from lightcnn.protocols import lfw_pairs, report, tenfold, thresholds
from lightcnn.protocols.features import Features, load_features
from lightcnn.protocols.lfw_pairs import Pair
from lightcnn.protocols.similarity import cosine_scores

from helpers.lfw_files import write_pair_label, write_v73_mat


def ten_folds(pos_scores, neg_scores):
    """Scores, labels and folds: fold k holds pos_scores[k] (a list) and neg_scores[k]."""
    scores, same, folds = [], [], []
    for k in range(10):
        for s in pos_scores[k]:
            scores.append(s), same.append(True), folds.append(k)
        for s in neg_scores[k]:
            scores.append(s), same.append(False), folds.append(k)
    return np.array(scores), np.array(same), np.array(folds)


def test_perfectly_separable():
    scores, same, folds = ten_folds([[0.9 - 0.01 * k] for k in range(10)], [[0.1 + 0.01 * k] for k in range(10)])
    r = tenfold.evaluate(scores, same, folds)
    assert r["fold_accuracy"] == [1.0] * 10
    assert r["accuracy_mean"] == 1 and r["accuracy_std"] == 0
    assert r["best_accuracy"] == 1 and r["best_threshold"] == pytest.approx((0.19 + 0.81) / 2)
    assert r["auc"] == 1 and r["eer"] == 0 and r["one_minus_eer"] == 1
    assert r["tpr_at_far_0"] == r["tpr_at_far_0_1pct"] == r["tpr_at_far_1pct"] == 1
    assert (r["n_pairs"], r["n_matched"], r["n_mismatched"], r["n_folds"]) == (20, 10, 10, 10)
    assert r["fold_n_pairs"] == [2] * 10
    # ROC: +inf first, then the 20 distinct scores in descending order
    assert r["roc_threshold"][0] == math.inf and len(r["roc_fpr"]) == 21
    assert r["roc_fpr"][:11] == [0.0] * 11 and r["roc_tpr"][10] == 1


def test_reversed_labels():
    scores, same, folds = ten_folds([[0.1 + 0.01 * k] for k in range(10)], [[0.9 - 0.01 * k] for k in range(10)])
    r = tenfold.evaluate(scores, same, folds)
    assert r["auc"] == 0
    assert r["eer"] == 1  # FNR = FPR = 1 exactly where every mismatched pair is accepted
    assert r["tpr_at_far_0"] == 0 and r["tpr_at_far_1pct"] == 0
    # no threshold beats "all same" (1/2); among equals the lowest threshold wins
    assert r["best_accuracy"] == 0.5 and r["best_threshold"] == -math.inf


def test_all_scores_tied():
    same = np.array([True] * 6 + [False] * 4)
    r = tenfold.evaluate(np.full(10, 0.3), same, np.arange(10))
    assert r["auc"] == 0.5  # Mann-Whitney with ties counted half
    assert r["eer"] == 0.5  # interpolated along the single diagonal segment
    assert r["roc_fpr"] == [0, 1] and r["roc_tpr"] == [0, 1]
    assert r["tpr_at_far_0"] == 0 and r["tpr_at_far_1pct"] == 0
    assert r["best_accuracy"] == 0.6 and r["best_threshold"] == -math.inf


def test_hand_worked_ties():
    # matched 0.9, 0.5, 0.5; mismatched 0.5, 0.1. ROC points (FPR, TPR): (0,0) (0,1/3) (1/2,1) (1,1).
    scores = [0.9, 0.5, 0.5, 0.5, 0.1]
    same = [True, True, True, False, False]
    roc = tenfold.roc_curve(scores, same)
    assert roc["threshold"].tolist() == [math.inf, 0.9, 0.5, 0.1]
    assert roc["tp"].tolist() == [0, 1, 3, 3] and roc["fp"].tolist() == [0, 0, 1, 2]
    figures = tenfold.roc_figures(roc)
    # pairs (pos, neg): 0.9 beats both, each 0.5 beats 0.1 and ties 0.5 -> (2 + 2 * 1.5) / 6
    assert figures["auc"] == pytest.approx(5 / 6, abs=1e-15)
    # d = (P - TP) N - FP P = 6, 4, -3, -6: between points 1 and 2, at 4/7 of the way: 0 + 4/7 * 1/2
    assert figures["eer"] == pytest.approx(2 / 7, abs=1e-15)
    assert figures["tpr_at_far_0"] == pytest.approx(1 / 3)
    # candidates: j=0 (all same) 3 correct, j=1 (0.1 different) 4, j=2 3, j=3 2 -> midpoint of 0.1 and 0.5
    assert tenfold.best_threshold(scores, same) == (pytest.approx(0.3), 0.8)


def test_accuracy_tie_takes_lowest_threshold():
    # matched 0.2, 0.8; mismatched 0.5: "same from 0.2" and "same from 0.8" both get 2 of 3 right
    assert tenfold.best_threshold([0.2, 0.8, 0.5], [True, True, False]) == (-math.inf, pytest.approx(2 / 3))
    assert tenfold.best_threshold([0.2, 0.8, 0.5, 0.1], [True, True, False, False]) == (pytest.approx(0.15), 0.75)
    # everything "different" is a candidate too (+inf)
    assert tenfold.best_threshold([0.9, 0.1], [False, False]) == (math.inf, 1.0)


def test_threshold_comes_from_the_other_nine_folds():
    # fold 0 alone: matched 0.4, mismatched 0.1 (separable on its own, at 0.25); elsewhere matched 0.8,
    # mismatched 0.2. Fold 0's threshold is learnt on the others (0.5), so its matched pairs are rejected.
    scores, same, folds = ten_folds([[0.4, 0.4]] + [[0.8]] * 9, [[0.1, 0.1]] + [[0.2]] * 9)
    r = tenfold.evaluate(scores, same, folds)
    assert r["fold_threshold"][0] == pytest.approx(0.5)
    assert r["fold_accuracy"][0] == 0.5
    # the other folds see fold 0's scores: 0.1 and 0.2 below, 0.4 and 0.8 above -> midpoint 0.3
    assert r["fold_threshold"][1:] == pytest.approx([0.3] * 9)
    assert r["fold_accuracy"][1:] == [1.0] * 9
    assert r["accuracy_mean"] == pytest.approx(0.95)
    assert r["accuracy_std"] == pytest.approx(np.std([0.5] + [1] * 9, ddof=1))  # sample std, N-1
    assert r["best_accuracy"] == 1.0  # one threshold on all pairs: optimistic


def test_degenerate_fold_of_equal_scores():
    # fold 0: one matched and one mismatched pair, both 0.5; elsewhere matched 0.8, mismatched 0.2
    scores, same, folds = ten_folds([[0.5]] + [[0.8]] * 9, [[0.5]] + [[0.2]] * 9)
    r = tenfold.evaluate(scores, same, folds)
    assert r["fold_threshold"][0] == pytest.approx(0.5)  # the scores 0.5 are "same"
    assert r["fold_accuracy"][0] == 0.5
    # with fold 0 in training, 0.35 and 0.65 both give 17 of 18: the lower one is taken
    assert r["fold_threshold"][1:] == pytest.approx([0.35] * 9)
    assert r["accuracy_mean"] == pytest.approx(0.95)
    assert r["accuracy_std"] == pytest.approx(math.sqrt(0.025))


def test_tpr_at_far_targets():
    # 1000 mismatched pairs: one scores 0.95 (FPR 0.1% from there on), one 0.9, the rest below every match
    neg = np.concatenate([[0.95, 0.9], np.linspace(0.0, 0.1, 998)])
    pos = np.concatenate([np.linspace(0.99, 0.96, 10), [0.92] * 10, np.linspace(0.5, 0.3, 80)])
    scores, same = np.concatenate([pos, neg]), np.array([True] * 100 + [False] * 1000)
    r = tenfold.evaluate(scores, same, np.arange(1100) % 10)
    assert r["tpr_at_far_0"] == 0.10  # the 10 matches above 0.95
    assert r["tpr_at_far_0_1pct"] == 0.20  # FPR 1/1000 <= 0.1% is allowed (<=), gaining the ten 0.92s
    assert r["tpr_at_far_1pct"] == 1.0  # 2/1000 <= 1%
    # a target below 1/N: only FPR = 0 qualifies
    few = tenfold.evaluate(scores[:102], same[:102], np.arange(102) % 10)  # 100 matched, 2 mismatched
    assert few["tpr_at_far_1pct"] == few["tpr_at_far_0_1pct"] == few["tpr_at_far_0"] == 0.10


def test_single_class_gives_nan_roc():
    r = tenfold.evaluate(np.linspace(0, 1, 20), np.ones(20, bool), np.arange(20) % 10)
    assert math.isnan(r["auc"]) and math.isnan(r["eer"]) and math.isnan(r["tpr_at_far_0"])
    assert r["accuracy_mean"] == 1


def test_evaluate_rejects_bad_folds():
    with pytest.raises(ValueError, match="fold.s. 3 hold no pairs"):
        tenfold.evaluate([0.1, 0.2, 0.3, 0.4], [True, False, True, False], [0, 0, 1, 1], n_folds=3)
    with pytest.raises(ValueError, match="at least 2 folds"):
        tenfold.evaluate([0.1, 0.2], [True, False], [0, 0])


# ---------------------------------------------------------------------------------------------------------------
# features, missing pairs, PCA

def make_features(n_people=12, per_person=4, dim=16, seed=0):
    rng = np.random.default_rng(seed)
    keys, rows = [], []
    for p in range(n_people):
        centre = rng.normal(size=dim)
        for i in range(per_person):
            keys.append(lfw_pairs.lfw_key("Person_%02d" % p, i + 1))
            rows.append(centre + rng.normal(scale=0.8, size=dim))
    return Features(np.array(rows, np.float32), keys)


def make_pairs(n_people=12, per_person=4, n=3, seed=1):
    rng = np.random.default_rng(seed)
    pairs = []
    for k in range(10):
        for _ in range(n):
            p = rng.integers(n_people)
            i, j = rng.choice(per_person, 2, replace=False) + 1
            pairs.append(Pair(lfw_pairs.lfw_key("Person_%02d" % p, i), lfw_pairs.lfw_key("Person_%02d" % p, j), True,
                              k))
        for _ in range(n):
            p, q = rng.choice(n_people, 2, replace=False)
            pairs.append(Pair(lfw_pairs.lfw_key("Person_%02d" % p, rng.integers(1, per_person + 1)),
                              lfw_pairs.lfw_key("Person_%02d" % q, rng.integers(1, per_person + 1)), False, k))
    return pairs


def test_cosine_scores():
    a = np.array([[1.0, 0.0], [1.0, 1.0], [0.0, 0.0], [3.0, 4.0]])
    b = np.array([[0.0, 2.0], [2.0, 2.0], [1.0, 0.0], [-3.0, -4.0]])
    assert cosine_scores(a, b).tolist() == [0.0, pytest.approx(1.0), 0.0, -1.0]


def test_missing_pairs_error_lists_every_pair():
    features = make_features()
    features.missing = frozenset({"Person_03/Person_03_0002.jpg"})
    pairs = make_pairs()
    pairs[4] = Pair("Nobody/Nobody_0001.jpg", pairs[4].key2, False, 0)
    pairs[40] = Pair("Person_03/Person_03_0002.jpg", "Person_03/Person_03_0001.jpg", True, 6)
    lost = [p for p in pairs if "Nobody" in p.key1 or "Person_03/Person_03_0002.jpg" in (p.key1, p.key2)]
    with pytest.raises(tenfold.MissingFeaturesError) as info:
        tenfold.verify(features, pairs)
    message = str(info.value)
    assert message.startswith("%d of 60 pairs have an image without a feature" % len(lost))
    assert info.value.pairs == lost
    for p in lost:
        assert "fold %2d  %-4s  %s  %s" % (p.fold + 1, "same" if p.is_same else "diff", p.key1, p.key2) in message


def test_exclude_missing_reports_count_and_names():
    features = make_features()
    pairs = make_pairs()
    pairs[4] = Pair("Nobody/Nobody_0001.jpg", pairs[4].key2, False, 0)
    pairs[40] = Pair("Person_03/Person_03_0009.jpg", "Person_03/Person_03_0001.jpg", True, 6)
    printed = []
    r = tenfold.verify(features, pairs, exclude_missing=True, log=printed.append)
    assert printed[0].splitlines()[0] == "excluded 2 of 60 pairs with an image that has no feature:"
    assert "Nobody/Nobody_0001.jpg" in printed[0] and "Person_03/Person_03_0009.jpg" in printed[0]
    assert (r["n_listed"], r["n_pairs"], r["n_excluded"]) == (60, 58, 2)
    assert r["excluded"] == [[pairs[4].key1, pairs[4].key2], [pairs[40].key1, pairs[40].key2]]
    # the remaining pairs keep their folds
    assert r["fold_n_pairs"] == [5, 6, 6, 6, 6, 6, 5, 6, 6, 6]
    kept = [p for i, p in enumerate(pairs) if i not in (4, 40)]
    index = features.index()
    scores = cosine_scores(features.data[[index[p.key1] for p in kept]], features.data[[index[p.key2] for p in kept]])
    expected = tenfold.evaluate(scores, [p.is_same for p in kept], [p.fold for p in kept])
    assert {k: r[k] for k in expected} == expected


def test_pca_is_fitted_on_the_training_folds_only():
    features, pairs = make_features(n_people=14), make_pairs(n_people=12)
    # Person_12 and Person_13 appear in fold 3 only
    pairs[18] = Pair("Person_12/Person_12_0001.jpg", "Person_12/Person_12_0002.jpg", True, 3)
    pairs[21] = Pair("Person_12/Person_12_0003.jpg", "Person_13/Person_13_0001.jpg", False, 3)
    rows1, rows2, _ = tenfold.pair_rows(features, pairs)
    folds = np.array([p.fold for p in pairs])
    scores = tenfold.pca_fold_scores(features.data, rows1, rows2, folds, 5, 10)
    assert scores.shape == (10, 60)

    # explicit fit for fold 3 on the other folds' images
    k = 3
    train = folds != k
    rows = np.unique(np.concatenate([rows1[train], rows2[train]]))
    x = features.data.astype(np.float64)
    mean = x[rows].mean(axis=0)
    w = np.linalg.svd(x[rows] - mean)[2][:5].T
    expected = cosine_scores((x[rows1] - mean) @ w, (x[rows2] - mean) @ w)
    np.testing.assert_allclose(scores[k], expected, atol=1e-12)

    # changing the images that only fold 3 uses changes no training score of fold 3's PCA
    only_test = np.setdiff1d(np.concatenate([rows1[~train], rows2[~train]]), rows)
    assert only_test.size
    moved = features.data.copy()
    moved[only_test] += 5.0
    again = tenfold.pca_fold_scores(moved, rows1, rows2, folds, 5, 10)
    np.testing.assert_allclose(again[k, train], scores[k, train], atol=1e-12)
    # ...but it changes the PCA of the folds that train on them
    assert not np.allclose(again[(k + 1) % 10, train], scores[(k + 1) % 10, train])

    r = tenfold.verify(features, pairs, pca=5)
    assert r["pca_dim"] == 5
    direct = tenfold.evaluate(scores, [p.is_same for p in pairs], folds)
    assert {key: r[key] for key in direct} == direct
    with pytest.raises(ValueError, match="PCA dimension 17 must be in 1..16"):
        tenfold.verify(features, pairs, pca=17)


# ---------------------------------------------------------------------------------------------------------------
# files and the CLI

def save_mat(path, features, missing=()):
    label = np.empty((len(features.keys), 1), dtype=object)
    label[:, 0] = features.keys
    content = {"data": features.data.astype(np.float32), "label": label}
    if missing:
        cell = np.empty((len(missing), 1), dtype=object)
        cell[:, 0] = list(missing)
        content["missing"] = cell
    scipy.io.savemat(path, content)


def test_load_features_mat_and_npz(tmp_path):
    features = make_features()
    features.keys[0] = "/lfw_patch/" + features.keys[0]
    save_mat(tmp_path / "f.mat", features, missing=["Person_05/Person_05_0001.jpg"])
    loaded = load_features(tmp_path / "f.mat")
    assert loaded.keys[0] == "Person_00/Person_00_0001.jpg" and loaded.keys[1:] == features.keys[1:]
    assert loaded.data.dtype == np.float32 and np.array_equal(loaded.data, features.data)
    assert loaded.missing == {"Person_05/Person_05_0001.jpg"}

    np.savez(tmp_path / "f.npz", data=features.data, label=np.array(features.keys))
    loaded = load_features(str(tmp_path / "f.npz"))
    assert loaded.keys[0] == "Person_00/Person_00_0001.jpg" and loaded.missing == frozenset()

    features.keys[1] = features.keys[2]
    save_mat(tmp_path / "dup.mat", features)
    with pytest.raises(ValueError, match="appears twice .rows 2 and 3."):
        load_features(tmp_path / "dup.mat")


def test_cli_writes_png_json_and_table(tmp_path, capsys):
    features, pairs = make_features(), make_pairs()
    save_mat(tmp_path / "LFW_features.mat", features)
    lfw_pairs.write_pairs_txt(pairs, tmp_path / "pairs.txt")
    out = tmp_path / "out"
    # pairs.txt found beside the features
    assert evaluate.main(["--features", str(tmp_path / "LFW_features.mat"), "--out-dir", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "[pairs.txt (View 2)]: 60 listed, 60 used (30 matched, 30 mismatched), 0 excluded, 10 folds" in printed
    assert "(optimistic: one threshold" in printed and "sample std (N-1)" in printed
    assert (out / "lfw_roc.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    saved = json.loads((out / "lfw_results.json").read_text())  # strict JSON
    expected = tenfold.verify(features, pairs)
    for key in ("accuracy_mean", "accuracy_std", "auc", "eer", "fold_accuracy", "roc_fpr", "n_pairs"):
        assert saved[key] == expected[key]
    assert saved["roc_threshold"][0] == "Infinity"
    assert report.read_results_json(out / "lfw_results.json")["roc_threshold"][0] == math.inf


def test_cli_missing_and_exclude(tmp_path, capsys):
    features, pairs = make_features(), make_pairs()
    save_mat(tmp_path / "f.mat", features, missing=["Person_01/Person_01_0001.jpg"])
    write_pair_label(pairs, tmp_path / "pair.label")
    args = ["--features", str(tmp_path / "f.mat"), "--pairs", str(tmp_path / "pair.label"),
            "--out-dir", str(tmp_path / "out")]
    n_lost = sum("Person_01/Person_01_0001.jpg" in (p.key1, p.key2) for p in pairs)
    assert n_lost > 0
    assert evaluate.main(args) == 2
    captured = capsys.readouterr()
    assert "%d of 60 pairs have an image without a feature" % n_lost in captured.err
    assert not (tmp_path / "out").exists()
    assert evaluate.main(args + ["--exclude-missing", "--pca", "4"]) == 0
    captured = capsys.readouterr()
    assert "excluded %d of 60 pairs with an image that has no feature:" % n_lost in captured.out
    assert captured.out.count("Person_01/Person_01_0001.jpg") == n_lost
    assert "PCA to 4 dims" in captured.out
    saved = report.read_results_json(tmp_path / "out" / "lfw_results.json")
    assert saved["n_excluded"] == n_lost and saved["pca_dim"] == 4 and saved["pair_format"] == "pair.label"


# ---------------------------------------------------------------------------------------------------------------
# features that are not features, zero rows, files that cannot be read, thresholds that are not numbers

ZERO_KEYS = ["Person_02/Person_02_0003.jpg", "Person_05/Person_05_0001.jpg", "Person_09/Person_09_0004.jpg"]


def with_zero_rows(features):
    index = features.index()
    for k in ZERO_KEYS:
        features.data[index[k]] = 0
    return features


def test_all_zero_or_constant_features_are_refused(tmp_path, capsys):
    features, pairs = make_features(), make_pairs()
    lfw_pairs.write_pairs_txt(pairs, tmp_path / "pairs.txt")
    for name, data in (("zero.mat", np.zeros((48, 16))), ("same.mat", np.tile(features.data[:1], (48, 1)))):
        save_mat(tmp_path / name, Features(data.astype(np.float32), features.keys))
        out = tmp_path / ("out_" + name)
        assert evaluate.main(["--features", str(tmp_path / name), "--out-dir", str(out)]) == 2
        err = capsys.readouterr().err
        what = "zero" if name == "zero.mat" else "the same"
        assert err == f"error: {tmp_path / name}: all 48 rows of 'data' are {what}: these are not features " \
                      f"(every pair would score the same)\n"
        assert not out.exists()  # no table, no 50% / AUC 0.5 / threshold -inf
    # one row that differs is enough to be features (its pairs can be told apart)
    data = np.zeros((48, 16), np.float32)
    data[7, 0] = 1
    save_mat(tmp_path / "one.mat", Features(data, features.keys))
    assert load_features(tmp_path / "one.mat").data.shape == (48, 16)


def test_zero_rows_are_reported_and_their_pairs_scored_as_before():
    features, pairs = with_zero_rows(make_features()), make_pairs()
    features.missing = frozenset({"Person_11/Person_11_0001.jpg"})
    features.data[features.index()["Person_11/Person_11_0001.jpg"]] = 0  # missing, not a zero row
    pairs = [p for p in pairs if "Person_11/Person_11_0001.jpg" not in (p.key1, p.key2)]
    on_zero = [p for p in pairs if {p.key1, p.key2} & set(ZERO_KEYS)]
    assert len(on_zero) >= 3
    printed = []
    r = tenfold.verify(features, pairs, log=printed.append)
    assert printed == [f"3 of 48 feature rows have norm 0, used by {len(on_zero)} pairs, scored as cosine 0 (leave "
                       "those pairs out with --exclude-zero-rows, or 'exclude_zero_rows', true in lfw_eval):\n"
                       + "\n".join("  " + k for k in ZERO_KEYS)]
    assert r["zero_rows"] == {"count": 3, "names": ZERO_KEYS, "n_pairs": len(on_zero), "n_excluded": 0}
    assert r["n_excluded"] == 0 and r["n_pairs"] == len(pairs)
    index = features.index()
    scores = cosine_scores(features.data[[index[p.key1] for p in pairs]], features.data[[index[p.key2] for p in pairs]])
    expected = tenfold.evaluate(scores, [p.is_same for p in pairs], [p.fold for p in pairs])
    assert {k: r[k] for k in expected} == expected  # the figures as before: those pairs score 0
    assert ("  zero rows 3 (feature rows of norm 0), used by %d pairs: kept, scored as cosine 0" % len(on_zero)
            in report.format_table(r).splitlines())


def test_exclude_zero_rows_drops_their_pairs_like_missing_ones():
    features, pairs = with_zero_rows(make_features()), make_pairs()
    pairs[4] = Pair("Nobody/Nobody_0001.jpg", pairs[4].key2, False, 0)  # a missing image too
    on_zero = [p for p in pairs if {p.key1, p.key2} & set(ZERO_KEYS)]
    printed = []
    r = tenfold.verify(features, pairs, exclude_missing=True, exclude_zero_rows=True, log=printed.append)
    assert printed[1].splitlines() == [
        "excluded %d of 60 pairs with an image whose feature is zero (3 of 48 feature rows have norm 0):"
        % len(on_zero)] + ["  fold %2d  %-4s  %s  %s" % (p.fold + 1, "same" if p.is_same else "diff", p.key1, p.key2)
                           for p in on_zero]
    dropped = [p for p in pairs if p in on_zero or p is pairs[4]]
    assert r["zero_rows"] == {"count": 3, "names": ZERO_KEYS, "n_pairs": len(on_zero), "n_excluded": len(on_zero)}
    assert (r["n_listed"], r["n_excluded"], r["n_pairs"]) == (60, len(dropped), 60 - len(dropped))
    assert r["excluded"] == [[p.key1, p.key2] for p in dropped]  # in the pair file's order
    kept = [p for p in pairs if p not in dropped]
    assert r["fold_n_pairs"] == [sum(p.fold == k for p in kept) for k in range(10)]  # they keep their folds
    index = features.index()
    scores = cosine_scores(features.data[[index[p.key1] for p in kept]], features.data[[index[p.key2] for p in kept]])
    expected = tenfold.evaluate(scores, [p.is_same for p in kept], [p.fold for p in kept])
    assert {k: r[k] for k in expected} == expected
    table = report.format_table(r)
    assert "%d excluded" % len(dropped) in table
    assert "  zero rows 3 (feature rows of norm 0), used by %d pairs: excluded" % len(on_zero) in table.splitlines()


def test_cli_zero_rows_in_the_json_and_the_option(tmp_path, capsys):
    features = make_features()
    features.data[:12] = 0  # more than are printed
    pairs = make_pairs()
    save_mat(tmp_path / "f.mat", features)
    lfw_pairs.write_pairs_txt(pairs, tmp_path / "pairs.txt")
    assert evaluate.main(["--features", str(tmp_path / "f.mat"), "--out-dir", str(tmp_path / "a")]) == 0
    out = capsys.readouterr().out
    assert out.startswith("12 of 48 feature rows have norm 0")
    assert "\n  Person_02/Person_02_0002.jpg\n  ... and 2 more\nLFW verification\n" in out  # 10 shown
    saved = json.loads((tmp_path / "a" / "lfw_results.json").read_text())
    assert saved["zero_rows"]["names"] == features.keys[:12] and saved["zero_rows"]["n_excluded"] == 0
    n_zero = saved["zero_rows"]["n_pairs"]
    assert n_zero > 0 and saved["n_pairs"] == 60
    assert evaluate.main(["--features", str(tmp_path / "f.mat"), "--out-dir", str(tmp_path / "b"),
                   "--exclude-zero-rows"]) == 0
    assert "excluded %d of 60 pairs with an image whose feature is zero" % n_zero in capsys.readouterr().out
    saved = report.read_results_json(tmp_path / "b" / "lfw_results.json")
    assert saved["n_pairs"] == 60 - n_zero and saved["n_excluded"] == n_zero
    assert saved["zero_rows"]["n_excluded"] == n_zero


def test_unreadable_feature_files_are_named_in_one_line(tmp_path, capsys):
    lfw_pairs.write_pairs_txt(make_pairs(), tmp_path / "pairs.txt")
    write_v73_mat(tmp_path / "v73.mat")
    (tmp_path / "garbage.mat").write_bytes(np.random.default_rng(5).bytes(4096))
    save_mat(tmp_path / "whole.mat", make_features())
    (tmp_path / "cut.mat").write_bytes((tmp_path / "whole.mat").read_bytes()[:300])
    (tmp_path / "empty.mat").write_bytes(b"")
    (tmp_path / "garbage.npz").write_bytes(b"not a zip file at all")
    expected = {"v73.mat": "a MATLAB -v7.3 (HDF5) file, which this evaluator cannot read: save it as -v7 (in MATLAB: "
                           "s = load(FILE); save(FILE, '-struct', 's', '-v7'))",
                "garbage.mat": "not a readable MATLAB .mat file (ValueError: Unknown mat file type, version ",
                "cut.mat": "not a readable MATLAB .mat file (",
                "empty.mat": "not a readable MATLAB .mat file (MatReadError: ",
                "garbage.npz": "not a readable .npz file ("}
    for name, message in expected.items():
        path = tmp_path / name
        assert evaluate.main(["--features", str(path), "--pairs", str(tmp_path / "pairs.txt"),
                       "--out-dir", str(tmp_path / "out")]) == 2, name
        err = capsys.readouterr().err
        assert err.startswith(f"error: {path}: {message}") and err.count("\n") == 1, err
    assert not (tmp_path / "out").exists()


def test_a_non_finite_threshold_is_never_saved(tmp_path, monkeypatch):
    import types
    from lightcnn import checkpoint
    # the checkpoint's sidecar as save_model_threshold reads it (only its weights' checksum)
    monkeypatch.setattr(checkpoint, "read_sidecar",
                        lambda prefix, epoch: types.SimpleNamespace(checksums={"params": "a" * 64}))
    model = {"prefix": str(tmp_path / "m"), "epoch": 3, "params_sha256": "a" * 64}
    saved = thresholds.threshold_path(model["prefix"], 3)
    results = tenfold.verify(make_features(), make_pairs())
    assert thresholds.save_model_threshold(model, results, log=lambda text: None) == saved  # a finite one is saved
    assert thresholds.load_model_threshold(model["prefix"], 3)[0]["threshold"] == results["best_threshold"]
    os.remove(saved)
    # -inf: every pair "same" is as good as any cut (what all-zero features gave); +inf: every pair "different"
    for threshold, spelled in ((-math.inf, "-inf"), (math.inf, "inf")):
        printed = []
        assert thresholds.save_model_threshold(model, dict(results, best_threshold=threshold),
                                               log=printed.append) is None
        assert printed == [f"threshold not saved beside {model['prefix']} epoch 3: the best threshold on all pairs "
                           f"is {spelled} (no threshold separates these pairs better than none)"]
        assert not os.path.exists(saved)


@pytest.mark.parametrize("text", ['"NaN"', '"Infinity"', '"-Infinity"', "NaN", "1e999", '"0.5"', "true", "null"])
def test_a_saved_threshold_that_is_not_a_finite_number_is_not_used(tmp_path, text):
    path = tmp_path / "m-0003-threshold.json"
    path.write_text('{"threshold": %s, "n_pairs": 10, "best_accuracy": 0.9, "accuracy_mean": 0.9}' % text)
    record, why = thresholds.load_model_threshold(str(tmp_path / "m"), 3)
    assert record is None and why.startswith(f"{path} holds no usable threshold (") and "not a finite number" in why


@pytest.mark.parametrize("flag", ["nan", "inf", "=-inf", "1e999"])
def test_verify_refuses_a_non_finite_threshold(tmp_path, capsys, flag):
    from lightcnn.cli import verify_pair
    argv = ["a.jpg", "b.jpg", "--model-prefix", str(tmp_path / "m")]
    argv += ["--threshold" + flag] if flag.startswith("=") else ["--threshold", flag]
    assert verify_pair.main(argv) == 2  # before the photos or the checkpoint are looked at
    value = {"nan": "nan", "=-inf": "-inf"}.get(flag, "inf")
    assert capsys.readouterr().err == f"error: --threshold: must be a finite number, got {value}\n"
    with pytest.raises(ValueError, match="--threshold: must be a finite number"):
        thresholds.resolve_threshold(float(flag.lstrip("=")), None, None)
