"""``python -m lightcnn evaluate``: the LFW protocol on an extractor's features, the same figures as
``lfw_verification-matlab/lfw_eval.m`` (:mod:`lightcnn.protocols.lfw_eval`).

    python -m lightcnn evaluate --features LFW_features.mat --pairs pairs.txt [--out-dir DIR]
                                [--pca DIM] [--exclude-missing] [--exclude-zero-rows]

It prints the table, writes ``lfw_results.json`` and ``lfw_roc.png`` into ``--out-dir`` and, when the features name
their checkpoint, saves the best threshold beside it for ``verify-pair``
(:mod:`lightcnn.protocols.thresholds`). Exit status 2 for bad input or pairs without features.
"""
import argparse

from lightcnn import cli
from lightcnn.protocols import lfw_eval


def _evaluate(argv):
    parser = argparse.ArgumentParser(prog="python -m lightcnn evaluate",
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
    lfw_eval.run(args.features, args.pairs, args.out_dir, pca=args.pca, exclude_missing=args.exclude_missing,
                 exclude_zero_rows=args.exclude_zero_rows)
    return 0


def main(argv=None):
    """The evaluator's command line; returns the exit status (2: bad input or pairs without features)."""
    return cli.run(_evaluate, argv)


if __name__ == "__main__":
    raise SystemExit(main())
