"""The evaluation of a features file on an LFW pair file, what ``lfw_verification-matlab/lfw_eval.m`` does: read both,
run the 10-fold protocol, print the table, write ``lfw_results.json`` and ``lfw_roc.png``, and save the best
threshold beside the checkpoint that made the features.

The features file is any :func:`lightcnn.protocols.features.load_features` reads; the pair file any format
:func:`lightcnn.protocols.lfw_pairs.read_pairs` detects, its folds used as they are. Without a pair file,
``pairs.txt`` and then ``pair.label`` are looked for beside the features file.
"""
import os
from collections.abc import Callable

from lightcnn.protocols import lfw_pairs, report, tenfold, thresholds
from lightcnn.protocols.features import load_features


def default_pairs_path(features_path):
    """``pairs.txt``, else ``pair.label``, beside the features file."""
    folder = os.path.dirname(features_path)
    for name in ("pairs.txt", "pair.label"):
        path = os.path.join(folder, name)
        if os.path.isfile(path):
            return path
    raise FileNotFoundError(f"neither pairs.txt nor pair.label beside {features_path!r}; pass the pair file")


def run(features_path: str = "LFW_features.mat", pairs_path: str | None = None, out_dir: str = ".", pca: int = 0,
        exclude_missing: bool = False, exclude_zero_rows: bool = False, log: Callable[[str], None] = print) -> dict:
    """Load, verify, print the table, write JSON + ROC PNG into ``out_dir``: what ``lfw_eval.m`` does."""
    if not pairs_path:
        pairs_path = default_pairs_path(features_path)
    features = load_features(features_path)
    pairs, pair_format = lfw_pairs.read_pairs_with_format(pairs_path)
    results = {"features": features_path, "pairs": pairs_path, "pair_format": pair_format}
    results.update(tenfold.verify(features, pairs, pca=pca, exclude_missing=exclude_missing,
                                  exclude_zero_rows=exclude_zero_rows, log=log))
    log(report.format_table(results))
    json_path, png_path = report.write_results(results, out_dir)
    thresholds.save_model_threshold(features.model, results, log)
    log("wrote %s and %s" % (json_path, png_path))
    return results
