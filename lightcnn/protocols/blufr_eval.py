"""BLUFR on a features file, the whole way: the configuration and the features read, every trial evaluated
(:mod:`lightcnn.protocols.blufr`), the table printed, blufr_results.json and the PNGs written
(:mod:`lightcnn.protocols.blufr_report`); what ``python -m lightcnn blufr`` runs, as :mod:`lightcnn.protocols.lfw_eval`
is for the 10-fold protocol."""
from lightcnn.protocols import blufr_report
from lightcnn.protocols.blufr import evaluate
from lightcnn.protocols.blufr_config import load_config
from lightcnn.protocols.features import load_features


def run(features_path, config_path, out_dir, pca=0, exclude_missing=False, log=print):
    """Load, evaluate every trial, print the table, write blufr_results.json and the PNGs into ``out_dir``."""
    config = load_config(config_path)
    features = load_features(features_path)
    results = {"features": str(features_path), "config": str(config_path)}
    results.update(evaluate(config, features, pca=pca, exclude_missing=exclude_missing, log=log))
    log(blufr_report.format_table(results))
    paths = blufr_report.write_results(results, out_dir)
    log("wrote " + ", ".join(paths))
    return results
