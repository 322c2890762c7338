"""BLUFR (lightcnn.protocols.blufr, lightcnn blufr, blufr_eval.m): known answers, the threshold rule, missing
images, both config formats, and Python against Octave to 1e-6 on synthetic and on real (raw-pixel) features."""
import json
import os
import pathlib
import subprocess

import numpy as np
import pytest
import scipy.io

from lightcnn.cli import blufr as blufr_cli
from lightcnn.protocols import blufr, blufr_eval, blufr_report
from lightcnn.protocols.blufr_config import Config, MissingImagesError, load_config
from lightcnn.protocols.features import Features

MATLAB_DIR = pathlib.Path(__file__).resolve().parents[1] / "lfw_verification-matlab"
OCTAVE_ARGS = ("--no-gui", "--no-init-file", "--no-history")
EPS = float(np.sqrt(np.finfo(float).eps))
SETS = ("train", "test", "gallery", "probe")


# ---------------------------------------------------------------------------------------------------------------
# synthetic configurations

def synthetic(n_subjects=30, per=3, n_trials=2, seed=0, dim=None, noise=0.0):
    """A configuration of ``n_subjects`` x ``per`` images and features; a third of the subjects train, the rest
    test, half of those in the gallery (their first image). ``noise`` 0: one-hot features per subject (perfectly
    separated: genuine cosine 1, impostor 0, when ``dim`` >= ``n_subjects``; with fewer dims subjects share one)."""
    rng = np.random.default_rng(seed)
    labels = np.repeat(np.arange(1, n_subjects + 1), per)
    names = ["P%03d_%04d.jpg" % (s, j + 1) for s in range(n_subjects) for j in range(per)]
    trials = []
    for _ in range(n_trials):
        subjects = rng.permutation(n_subjects) + 1
        train_s, test_s = subjects[: n_subjects // 3], subjects[n_subjects // 3:]
        test = np.flatnonzero(np.isin(labels, test_s))
        gallery = np.array([np.flatnonzero(labels == s)[0] for s in test_s[: len(test_s) // 2]])
        trials.append({"train": np.flatnonzero(np.isin(labels, train_s)), "test": test, "gallery": gallery,
                       "probe": np.setdiff1d(test, gallery)})
    dim = dim or n_subjects
    data = np.eye(dim)[(labels - 1) % dim] + noise * rng.standard_normal((len(labels), dim))
    return Config(names, labels, trials), data.astype(np.float32)


def keys_of(config):
    return [blufr.image_key(n) for n in config.names]


def write_config_mat(path, config):
    cells = {}
    for s, mat_name in (("train", "trainIndex"), ("test", "testIndex"), ("gallery", "galIndex"),
                        ("probe", "probIndex")):
        cell = np.empty((len(config.trials), 1), dtype=object)
        for t, trial in enumerate(config.trials):
            cell[t, 0] = (np.asarray(trial[s]) + 1).reshape(-1, 1).astype(np.float64)
        cells[mat_name] = cell
    names = np.empty((len(config.names), 1), dtype=object)
    names[:, 0] = config.names
    scipy.io.savemat(path, {"imageList": names, "labels": np.asarray(config.labels).reshape(-1, 1).astype(np.float64),
                            **cells})


def write_config_lists(folder, config):
    os.makedirs(folder, exist_ok=True)
    pathlib.Path(folder, "image_list.txt").write_text("".join(n + "\n" for n in config.names))
    pathlib.Path(folder, "labels.txt").write_text("".join("%d\n" % x for x in config.labels))
    for s, file_name in (("train", "train_set.txt"), ("test", "test_set.txt"), ("gallery", "gallery_set.txt"),
                         ("probe", "probe_set.txt")):
        lines = [str(len(config.trials))]
        for trial in config.trials:
            lines.append(str(len(trial[s])))
            lines += ["%d, %s" % (i + 1, config.names[i]) for i in trial[s]]
        pathlib.Path(folder, file_name).write_text("\n".join(lines) + "\n")


def write_features(path, keys, data):
    label = np.empty((len(keys), 1), dtype=object)
    label[:, 0] = keys
    scipy.io.savemat(path, {"data": np.asarray(data, dtype=np.float32), "label": label})


def quiet(*_):
    pass


# ---------------------------------------------------------------------------------------------------------------
# known answers

def test_perfectly_separated_identities_give_vr_and_dir_of_one():
    config, data = synthetic()
    r = blufr.evaluate(config, Features(data, keys_of(config)), log=quiet)
    assert np.all(np.array(r["vr"]) == 1.0) and np.all(np.array(r["dir"]) == 1.0)
    assert np.all(np.array(r["cmc"]) == 1.0)
    for key in blufr.HEADLINES:
        assert r[key] == {"mean": 1.0, "std": 0.0, "mean_minus_std": 1.0, "trials": [1.0, 1.0]}
    # k = 0: halfway between the highest impostor (0) and the lowest genuine score above it (1)
    assert r["vr_threshold"][0][0] == pytest.approx(0.5)
    assert r["n_genuine_pairs"] == [20 * 3] * 2 and r["n_impostor_pairs"] == [60 * 59 // 2 - 60] * 2


def test_threshold_rule_and_ties_by_hand():
    impostor = np.array([0.1, 0.8, 0.5, 0.9, 0.8])  # descending: 0.9, 0.8, 0.8, 0.5, 0.1 (N = 5)
    genuine = np.array([0.95, 0.85, 0.8, 0.3])
    fars = np.array([0.0, 0.2, 0.3, 0.4, 0.5, 0.7, 1.0])
    ts = blufr.thresholds(impostor.copy(), genuine, fars)
    # k = round(5 f) halves up: 0, 1, 2 (1.5 up), 2, 3 (2.5 up), 4 (3.5 up), 5
    assert blufr.far_counts(fars, 5).tolist() == [0, 1, 2, 2, 3, 4, 5]
    np.testing.assert_array_equal(ts, [(0.9 + 0.95) / 2, 0.9, 0.8, 0.8, 0.8, 0.5, 0.1 - EPS])
    # a genuine score tied with the threshold is accepted (and so are the tied impostors: FAR reached 3/5 at k = 2)
    np.testing.assert_array_equal(blufr.accept_rates(genuine, ts), [0.25, 0.25, 0.75, 0.75, 0.75, 0.75, 1.0])
    # no genuine score above the highest impostor: k = 0 puts the threshold sqrt(eps) above it
    assert blufr.thresholds(np.array([0.9]), np.array([0.5]), np.array([0.0]))[0] == 0.9 + EPS


def test_open_set_ranks_ties_and_dir_by_hand():
    e = np.eye(4)
    gallery = e[:3]  # subjects 1, 2, 3
    probes = np.array([e[0], (e[1] + e[2]) / np.sqrt(2), 0.6 * e[0] + 0.8 * e[3], e[3]])
    r = blufr.open_set(gallery, np.array([1, 2, 3]), probes, np.array([1, 2, 9, 10]))
    assert (r["n_genuine"], r["n_impostor"]) == (2, 2)
    fars = blufr.OPEN_SET_FARS
    # impostor best scores 0.6 and 0; k = round(2 f): 0 (below f = 0.25): halfway between 0.6 and the genuine 0.7071;
    # 1: 0.6; 2 (from f = 0.75): the lowest score of all (0) less sqrt(eps)
    expected = np.array([(0.6 + 1 / np.sqrt(2)) / 2, 0.6, -EPS])[blufr.far_counts(fars, 2)]
    np.testing.assert_allclose(r["threshold"], expected, rtol=0, atol=1e-15)
    # probe 2 ties its own subject with subject 3: ranked 2 (the true subject last among equals)
    np.testing.assert_array_equal(r["dir"][0], np.full(len(fars), 0.5))
    np.testing.assert_array_equal(r["dir"][1:], 1.0)
    np.testing.assert_array_equal(r["cmc"], [0.5] + [1.0] * (len(blufr.RANKS) - 1))


def test_far_grids_and_ranks():
    assert len(blufr.VERIFY_FARS) == 74 and blufr.VERIFY_FARS[1] == 1e-8 and blufr.VERIFY_FARS[-2] == 0.9
    assert len(blufr.OPEN_SET_FARS) == 38 and blufr.OPEN_SET_FARS[1] == 1e-4
    assert blufr.RANKS.tolist() == list(range(1, 11)) + list(range(20, 101, 10))


def test_pair_scores_split_the_lower_triangle():
    rng = np.random.default_rng(3)
    x = blufr.normalise(rng.standard_normal((50, 8)))
    labels = rng.integers(0, 12, 50)
    genuine, impostor = blufr.pair_scores(x, labels, block_rows=7)
    s = x @ x.T
    i, j = np.tril_indices(50, -1)
    same = labels[i] == labels[j]
    np.testing.assert_allclose(np.sort(genuine), np.sort(s[i, j][same]), atol=1e-12)
    np.testing.assert_allclose(np.sort(impostor), np.sort(s[i, j][~same]), atol=1e-12)


# ---------------------------------------------------------------------------------------------------------------
# missing images, configuration formats, the command

def test_missing_images_refused_with_the_count_then_excluded_per_set():
    config, data = synthetic()
    keys = keys_of(config)
    gone = {0, 1, 2, 40, 41}
    features = Features(np.delete(data, sorted(gone), axis=0), [k for i, k in enumerate(keys) if i not in gone])
    with pytest.raises(MissingImagesError) as caught:
        blufr.evaluate(config, features, log=quiet)
    assert str(caught.value).startswith("5 of 90 BLUFR images have no feature")
    assert caught.value.names == [keys[i] for i in sorted(gone)]
    printed = []
    r = blufr.evaluate(config, features, exclude_missing=True, log=printed.append)
    ex = r["excluded"]
    assert ex["images"] == 5 and ex["names"] == [keys[i] for i in sorted(gone)]
    for s in SETS:
        assert ex[s] == [int(np.isin(trial[s], list(gone)).sum()) for trial in config.trials]
    assert r["n_test"] == [len(t["test"]) - ex["test"][i] for i, t in enumerate(config.trials)]
    assert printed[0].startswith("excluded 5 of 90 images without a feature")
    # a feature listed as 'missing' by the extractor counts as missing
    listed = Features(data, keys, missing=frozenset({keys[5]}))
    with pytest.raises(MissingImagesError, match="^1 of 90"):
        blufr.evaluate(config, listed, log=quiet)


def test_mat_config_and_text_lists_give_the_same_sets(tmp_path):
    config, _ = synthetic()
    write_config_mat(tmp_path / "c.mat", config)
    write_config_lists(tmp_path / "lists", config)
    for loaded in (load_config(str(tmp_path / "c.mat")), load_config(str(tmp_path / "lists"))):
        assert loaded.names == config.names and loaded.labels.tolist() == config.labels.tolist()
        for mine, theirs in zip(loaded.trials, config.trials):
            for s in SETS:
                assert mine[s].tolist() == theirs[s].tolist()


def test_shared_mat_config_and_text_lists_agree(shared_data):
    folder = shared_data / "lfw" / "blufr"
    a, b = load_config(str(folder / "blufr_lfw_config.mat")), load_config(str(folder))
    assert a.names == b.names and len(a.names) == 13233 and a.labels.tolist() == b.labels.tolist()
    assert len(a.trials) == 10
    for ta, tb in zip(a.trials, b.trials):
        for s in SETS:
            np.testing.assert_array_equal(ta[s], tb[s])
    assert len(a.trials[0]["gallery"]) == 1000 and a.trials[0]["test"].min() >= 0
    assert blufr.image_key(a.names[0]) == "Aaron_Eckhart/Aaron_Eckhart_0001.jpg"


def test_command_writes_the_json_and_refuses_missing_in_one_line(tmp_path, capsys):
    config, data = synthetic(noise=0.5)
    write_config_mat(tmp_path / "c.mat", config)
    write_features(tmp_path / "f.mat", keys_of(config)[1:], data[1:])
    args = ["--features", str(tmp_path / "f.mat"), "--config", str(tmp_path / "c.mat"), "--out-dir",
            str(tmp_path / "out")]
    assert blufr_cli.main(args) == 2
    assert "error: 1 of 90 BLUFR images have no feature" in capsys.readouterr().err
    assert blufr_cli.main(args + ["--exclude-missing", "--pca", "5"]) == 0
    r = json.loads((tmp_path / "out" / blufr.RESULTS_JSON).read_text())
    for key in blufr.HEADLINES:
        assert set(r[key]) == {"mean", "std", "mean_minus_std", "trials"} and len(r[key]["trials"]) == 2
        assert all(0 <= x <= 1 for x in r[key]["trials"])
    assert r["excluded"]["images"] == 1 and r["pca_dim"] == 5
    for name in ("blufr_roc.png", "blufr_open_set_roc.png", "blufr_cmc.png"):
        assert (tmp_path / "out" / name).stat().st_size > 1000
    assert "VR@FAR=0.1%" in capsys.readouterr().out


# ---------------------------------------------------------------------------------------------------------------
# Python against Octave

def assert_same_json(python_path, octave_path):
    a, b = json.loads(pathlib.Path(python_path).read_text()), json.loads(pathlib.Path(octave_path).read_text())
    assert list(a) == list(b)

    def same(x, y, where):
        if isinstance(x, dict):
            assert list(x) == list(y), where
            for k in x:
                same(x[k], y[k], where + "/" + k)
        elif isinstance(x, str) or (isinstance(x, list) and x and isinstance(x[0], str)):
            assert x == y, where
        else:
            xa, ya = np.asarray(x, dtype=float), np.asarray(y, dtype=float)
            assert xa.shape == ya.shape, where
            np.testing.assert_allclose(ya, xa, rtol=0, atol=1e-6, err_msg=where)

    same(a, b, "")
    return a


def octave_and_python(octave_cli, folder, runs):
    """Each (features, config, options) in Python and, in one octave-cli session, in blufr_eval; compares the
    JSONs and the printed tables. Returns the Python results."""
    calls, results = [], []
    for i, (features, config, options) in enumerate(runs):
        results.append(blufr_eval.run(str(features), str(config), str(folder / f"py{i}"), log=quiet, **options))
        extra = "".join(", '%s', %s" % (k, str(v).lower()) for k, v in options.items())
        calls.append("blufr_eval('%s', '%s', '%s'%s);" % (features, config, folder / f"oc{i}", extra))
    script = "addpath('%s'); %s" % (MATLAB_DIR, " ".join(calls))
    done = subprocess.run([octave_cli, *OCTAVE_ARGS, "--eval", script], cwd=folder, capture_output=True, text=True,
                          timeout=300)
    assert done.returncode == 0, done.stdout + done.stderr
    tables = done.stdout.split("\nwrote ")
    for i in range(len(runs)):
        assert_same_json(folder / f"py{i}" / blufr.RESULTS_JSON, folder / f"oc{i}" / blufr.RESULTS_JSON)
        assert blufr_report.format_table(results[i]) + "\n" in tables[i] + "\n", f"run {i}: the tables differ"
    return results


@pytest.mark.octave
def test_octave_equals_python_on_synthetic_features(octave_cli, tmp_path):
    separated, data = synthetic()
    write_config_mat(tmp_path / "sep.mat", separated)
    write_features(tmp_path / "sep_f.mat", keys_of(separated), data)
    noisy, data = synthetic(n_subjects=40, per=4, n_trials=3, seed=2, dim=12, noise=0.6)
    write_config_lists(tmp_path / "lists", noisy)
    write_features(tmp_path / "noisy_f.mat", keys_of(noisy)[2:], data[2:])
    r = octave_and_python(octave_cli, tmp_path, [
        (tmp_path / "sep_f.mat", tmp_path / "sep.mat", {}),
        (tmp_path / "noisy_f.mat", tmp_path / "lists", {"exclude_missing": True}),
        (tmp_path / "noisy_f.mat", tmp_path / "lists", {"exclude_missing": True, "pca": 6})])
    assert r[0]["vr_at_far_0.001"]["mean"] == 1.0 and r[0]["dir_at_rank1_far_0.01"]["mean"] == 1.0
    assert 0 < np.mean(r[1]["vr_mean"]) < 1 and r[1]["excluded"]["images"] == 2


def pixel_features(root, keys, side=16):
    """Raw pixels: the 128x128 centre crop of each 144x144 crop, shrunk to side x side; (rows, found keys)."""
    import cv2
    rows, found = [], []
    for key in keys:
        img = cv2.imread(str(root / key), cv2.IMREAD_GRAYSCALE)
        if img is None:
            continue
        h, w = img.shape
        crop = img[(h - 128) // 2:(h + 128) // 2, (w - 128) // 2:(w + 128) // 2].astype(np.float32)
        rows.append(cv2.resize(crop, (side, side), interpolation=cv2.INTER_AREA).ravel())
        found.append(key)
    return np.vstack(rows), found


@pytest.mark.slow
@pytest.mark.octave
def test_octave_equals_python_on_real_pixel_features(octave_cli, shared_data, tmp_path):
    """The real configuration cut to its first 2 trials and the images of names A-B (about 1,300), raw pixels of the
    crops present (the absent ones excluded): every figure of both languages within 1e-6."""
    full = load_config(str(shared_data / "lfw" / "blufr" / "blufr_lfw_config.mat"))
    kept = np.array([n[0] in "AB" for n in full.names])
    new_index = np.cumsum(kept) - 1
    trials = [{s: new_index[t[s][kept[t[s]]]] for s in SETS} for t in full.trials[:2]]
    cut = Config([n for n, k in zip(full.names, kept) if k], full.labels[kept], trials)
    write_config_mat(tmp_path / "cut.mat", cut)
    data, found = pixel_features(shared_data / "lfw_gray144", keys_of(cut))
    assert len(found) < len(cut.names)  # some crops are absent: the exclusion runs too
    write_features(tmp_path / "pixels.mat", found, data)
    r = octave_and_python(octave_cli, tmp_path, [(tmp_path / "pixels.mat", tmp_path / "cut.mat",
                                                 {"exclude_missing": True}),
                                                (tmp_path / "pixels.mat", tmp_path / "cut.mat",
                                                 {"exclude_missing": True, "pca": 40})])
    assert r[0]["n_impostor_pairs"][0] > 100000 and r[0]["excluded"]["images"] == len(cut.names) - len(found)
