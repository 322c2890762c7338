"""The evaluator's outputs: the table (character for character the one ``lfw_eval.m`` prints), ``lfw_results.json``
and the ROC picture ``lfw_roc.png``.

Accuracies, rates, AUC and EER are fractions in the results and percentages in the table. ``lfw_results.json`` is
the results dict (lfw_eval.m writes the same keys). JSON has no infinities, so non-finite numbers are written as the
strings "Infinity", "-Infinity" and "NaN" (:func:`read_results_json` reads them back).

The ROC picture has a logarithmic FAR axis, the face-verification convention (TPR at FAR = 0.1% cannot be read on a
linear one): from :func:`far_floor` (the decade at or below 1/N, the smallest non-zero FAR N mismatched pairs can
show; points at FAR 0 are drawn on that edge) to 1. lfw_eval.m draws the same axis.
"""
import os

import numpy as np

from lightcnn import files
from lightcnn.protocols.tenfold import FAR_TARGETS, zero_scoring

RESULTS_JSON = "lfw_results.json"
ROC_PNG = "lfw_roc.png"


def format_number(x, spec):
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
        fate = "excluded" if zero["n_excluded"] else "kept, " + zero_scoring(r.get("pca_dim", 0))
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
        lines.append("%4d  %5d  %10s  %8s%%" % (k + 1, r["fold_n_pairs"][k],
                                               format_number(r["fold_threshold"][k], "%10.6f"),
                                               format_number(100 * r["fold_accuracy"][k], "%8.4f")))
    lines += [
        "%-24s %s%% +- %s   (mean +- sample std (N-1) over folds; threshold from the other folds)"
        % ("%d-fold accuracy" % r["n_folds"], format_number(100 * r["accuracy_mean"], "%8.4f"),
           format_number(100 * r["accuracy_std"], "%.4f")),
        "%-24s %s%%   (optimistic: one threshold, %s, chosen on all pairs)"
        % ("best-threshold accuracy", format_number(100 * r["best_accuracy"], "%8.4f"),
           format_number(r["best_threshold"], "%.6f")),
        "%-24s %s" % ("AUC", format_number(r["auc"], "%8.6f")),
        "%-24s %s%%" % ("EER", format_number(100 * r["eer"], "%8.4f")),
        "%-24s %s%%" % ("100%-EER", format_number(100 * r["one_minus_eer"], "%8.4f")),
    ]
    for key, label, _ in FAR_TARGETS:
        lines.append("%-24s %s%%" % (label, format_number(100 * r[key], "%8.4f")))
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
            ax.plot([far], [results[key]], "o", markersize=4,
                    label="%s: %s%%" % (label, format_number(100 * results[key], "%.2f")))
    ax.set_xscale("log")
    ax.set_xlim(lo, 1)
    ax.set_ylim(0, 1)
    ax.set_xlabel("false accept rate (FAR, log scale)")
    ax.set_ylabel("true positive rate")
    ax.set_title("LFW ROC: AUC %s, EER %s%%" % (format_number(results["auc"], "%.4f"),
                                                format_number(100 * results["eer"], "%.2f")))
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
