"""The ROC picture a user looks at: a logarithmic FAR axis in Python and in lfw_eval.m (Octave's plain raster where
it has no graphics toolkit), the same axis in both."""
import pathlib
import subprocess

import cv2
import numpy as np
import pytest

from lightcnn.feature_files import save_features_mat
from lightcnn.protocols import lfw_eval, lfw_pairs, report
from lightcnn.protocols.lfw_pairs import Pair

MATLAB_DIR = pathlib.Path(__file__).resolve().parents[1] / "lfw_verification-matlab"
SIDE, MARGIN = 480, 40  # lfw_raster_roc.m's canvas


def test_far_floor_is_the_decade_below_one_over_n():
    assert [report.far_floor(n) for n in (0, 1, 9, 10, 471, 1000, 1001, 4500)] == \
        [1e-4, 1.0, 0.1, 0.1, 1e-3, 1e-3, 1e-4, 1e-4]


@pytest.fixture(scope="module")
def evaluated(tmp_path_factory):
    """Features of 30 people x 6 images and 10 folds of 20 + 20 pairs, evaluated by the Python twin."""
    rng = np.random.default_rng(5)
    folder = tmp_path_factory.mktemp("roc")
    keys, rows = [], []
    for p in range(30):
        centre = rng.normal(size=32)
        for i in range(1, 7):
            keys.append(lfw_pairs.lfw_key(f"P{p:02d}", i))
            rows.append(centre + rng.normal(scale=1.5, size=32))
    pairs = []
    for k in range(10):
        for j in range(20):
            p = (3 * k + j) % 30
            a, b = rng.choice(np.arange(1, 7), 2, replace=False)
            pairs.append(Pair(lfw_pairs.lfw_key(f"P{p:02d}", a), lfw_pairs.lfw_key(f"P{p:02d}", b), True, k))
        for _ in range(20):
            p, q = rng.choice(30, 2, replace=False)
            pairs.append(Pair(lfw_pairs.lfw_key(f"P{p:02d}", 1), lfw_pairs.lfw_key(f"P{q:02d}", 2), False, k))
    save_features_mat(str(folder / "f.mat"), np.array(rows, np.float32), keys)
    lfw_pairs.write_pairs_txt(pairs, folder / "pairs.txt")
    results = lfw_eval.run(str(folder / "f.mat"), str(folder / "pairs.txt"), str(folder / "py"), log=lambda text: None)
    return folder, results


def test_python_draws_far_on_a_log_axis(evaluated):
    folder, results = evaluated
    fig = report.roc_figure(results)
    ax = fig.axes[0]
    assert ax.get_xscale() == "log" and ax.get_yscale() == "linear"
    assert ax.get_xlim() == pytest.approx((1e-3, 1.0))  # 200 mismatched pairs: 1/200 -> the 10^-3 decade
    curve = ax.lines[1]
    assert min(curve.get_xdata()) == pytest.approx(1e-3)  # FAR 0 on the axis's left edge, not lost
    assert "TPR@FAR=1%" in " ".join(t.get_text() for t in ax.get_legend().get_texts())
    png = (folder / "py" / report.ROC_PNG).read_bytes()
    assert png[:8] == b"\x89PNG\r\n\x1a\n"


def pixel(x, y, lo):
    """lfw_raster_roc.m's mapping (MATLAB's round: half away from zero), as 0-based (row, column) indices."""
    decades = -np.log10(lo)
    col = MARGIN + (np.log10(max(x, lo)) + decades) / decades * (SIDE - 2 * MARGIN)
    row = SIDE - MARGIN - y * (SIDE - 2 * MARGIN)
    return int(np.floor(row + 0.5)) - 1, int(np.floor(col + 0.5)) - 1  # MATLAB indices start at 1


@pytest.mark.octave
def test_octave_raster_has_the_same_log_axis(octave_cli, evaluated):
    folder, results = evaluated
    script = (f"addpath('{MATLAB_DIR}'); lfw_eval('{folder / 'f.mat'}', '{folder / 'pairs.txt'}', "
              f"'{folder / 'oct'}');")
    done = subprocess.run([octave_cli, "--no-gui", "--no-init-file", "--no-history", "--eval", script],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    octave = report.read_results_json(folder / "oct" / report.RESULTS_JSON)
    np.testing.assert_allclose(octave["roc_fpr"], results["roc_fpr"], atol=1e-6)
    img = cv2.imread(str(folder / "oct" / report.ROC_PNG), cv2.IMREAD_COLOR)  # BGR
    assert img.shape == (SIDE, SIDE, 3)
    blue = (img[:, :, 0] == 255) & (img[:, :, 1] == 0) & (img[:, :, 2] == 0)
    lo = report.far_floor(results["n_mismatched"])
    moved = 0
    for x, y in zip(results["roc_fpr"], results["roc_tpr"]):
        row, col = pixel(x, y, lo)
        assert blue[row, col], (x, y, row, col)
        linear_col = int(np.floor(MARGIN + x * (SIDE - 2 * MARGIN) + 0.5)) - 1
        moved += linear_col != col
    assert moved > len(results["roc_fpr"]) // 2  # a linear axis would put most points elsewhere
    for decade in (1e-3, 1e-2, 1e-1):  # a grid line per decade
        _, col = pixel(decade, 0.05, lo)
        assert (img[MARGIN + 5:SIDE - MARGIN - 5, col] != 255).any(axis=1).mean() > 0.9
