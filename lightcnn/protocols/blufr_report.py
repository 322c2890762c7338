"""BLUFR's printed table, ``blufr_results.json`` and its three pictures (blufr_eval.m prints and draws the same).

Pictures (matplotlib, Agg canvas, no pyplot state), mean over the trials:
``blufr_roc.png`` VR against FAR on a logarithmic axis from 1e-8 (FAR 0 drawn on that edge);
``blufr_open_set_roc.png`` DIR at rank 1 against FAR, logarithmic from 1e-4; ``blufr_cmc.png`` the CMC on a
logarithmic rank axis 1..100 (a decade per grid line, as the Octave raster draws it).
"""
import os

import numpy as np

from lightcnn import files
from lightcnn.protocols.blufr import DIR_FAR, DIR_RANK, RESULTS_JSON, VR_FAR

PICTURES = ("blufr_roc.png", "blufr_open_set_roc.png", "blufr_cmc.png")
ROWS = (("vr_at_far_0.001", "VR@FAR=0.1%"), ("dir_at_rank1_far_0.01", "DIR@rank1,FAR=1%"))


def _pct(x):
    return "%8.4f%%" % (100 * x) if np.isfinite(x) else "%9s" % "nan"


def format_table(r):
    """The table, line for line what blufr_eval.m prints."""
    ex = r["excluded"]
    lines = ["BLUFR on LFW: %d trials" % r["n_trials"],
             "  features  %s" % r.get("features", "-"),
             "  config    %s" % r.get("config", "-"),
             "  score     " + ("cosine after PCA to %d dims fitted on each trial's training images" % r["pca_dim"]
                               if r["pca_dim"] else "cosine similarity")]
    if ex["images"]:
        lines.append("  excluded  %d images without a feature; summed over trials: train %d, test %d, gallery %d, "
                     "probe %d" % (ex["images"], sum(ex["train"]), sum(ex["test"]), sum(ex["gallery"]),
                                   sum(ex["probe"])))
    lines.append("trial   test   genuine   impostor  VR@FAR=0.1%  gallery  gen.probes  imp.probes  DIR@1,FAR=1%")
    vr, di = r["vr_at_far_0.001"]["trials"], r["dir_at_rank1_far_0.01"]["trials"]
    for t in range(r["n_trials"]):
        lines.append("%5d  %5d  %8d  %9d    %s  %7d  %10d  %10d     %s"
                     % (t + 1, r["n_test"][t], r["n_genuine_pairs"][t], r["n_impostor_pairs"][t], _pct(vr[t]),
                        r["n_gallery"][t], r["n_genuine_probes"][t], r["n_impostor_probes"][t], _pct(di[t])))
    lines.append("%-18s %9s  %9s  %9s" % ("", "mean", "std", "mean-std"))
    for key, label in ROWS:
        s = r[key]
        lines.append("%-18s %s  %s  %s" % (label, _pct(s["mean"]), _pct(s["std"]), _pct(s["mean_minus_std"])))
    return "\n".join(lines)


def _axes(title, xlabel, ylabel):
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure
    fig = Figure(figsize=(6, 6), dpi=100)
    FigureCanvasAgg(fig)
    ax = fig.add_subplot(1, 1, 1)
    ax.set_xscale("log")
    ax.set_ylim(0, 1)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    ax.grid(True, which="major", linewidth=0.3)
    ax.grid(True, which="minor", linewidth=0.15)
    return fig, ax


def _curve(path, x, y, lo, hi, mark, title, xlabel, ylabel):
    fig, ax = _axes(title, xlabel, ylabel)
    ax.plot(np.maximum(x, lo), y, color="b", linewidth=1.5)
    if mark is not None:
        ax.plot([mark[0]], [mark[1]], "o", markersize=4, label=mark[2])
        ax.legend(loc="lower right", fontsize=8)
    ax.set_xlim(lo, hi)
    with files.atomic_path(path) as temp:
        fig.savefig(temp, format="png")


def plot_all(r, out_dir):
    """The three PNGs (paths returned)."""
    paths = [os.path.join(out_dir, name) for name in PICTURES]
    fars, vr = np.array(r["far_grid"]), np.array(r["vr_mean"])
    at = int(np.argmin(np.abs(fars - VR_FAR)))
    vr_s = r["vr_at_far_0.001"]
    _curve(paths[0], fars, vr, 1e-8, 1, (fars[at], vr[at], "VR@FAR=0.1%%: %.2f%%" % (100 * vr[at])),
           "BLUFR verification: VR@FAR=0.1%% %.2f%% (mean - std %.2f%%)" % (100 * vr_s["mean"],
                                                                           100 * vr_s["mean_minus_std"]),
           "false accept rate (FAR, log scale)", "verification rate (mean over trials)")
    open_fars = np.array(r["open_set_far_grid"])
    rank = r["ranks"].index(DIR_RANK)
    di = np.array(r["dir_mean"])[rank]
    at = int(np.argmin(np.abs(open_fars - DIR_FAR)))
    di_s = r["dir_at_rank1_far_0.01"]
    _curve(paths[1], open_fars, di, 1e-4, 1, (open_fars[at], di[at], "DIR@FAR=1%%: %.2f%%" % (100 * di[at])),
           "BLUFR open-set, rank 1: DIR@FAR=1%% %.2f%% (mean - std %.2f%%)" % (100 * di_s["mean"],
                                                                              100 * di_s["mean_minus_std"]),
           "false accept rate of impostor probes (log scale)", "detection and identification rate")
    _curve(paths[2], np.array(r["ranks"]), np.array(r["cmc_mean"]), 1, 100, None,
           "BLUFR open-set CMC (genuine probes)", "rank (log scale)", "identification rate (mean over trials)")
    return paths


def write_results(results, out_dir):
    """``blufr_results.json`` and the three PNGs into ``out_dir``; returns their paths."""
    os.makedirs(out_dir, exist_ok=True)
    json_path = os.path.join(out_dir, RESULTS_JSON)
    files.write_json(json_path, results)
    return [json_path] + plot_all(results, out_dir)
