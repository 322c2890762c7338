"""``python -m lightcnn blufr``: the BLUFR benchmark on LFW features (see :mod:`lightcnn.protocols.blufr`)."""
import argparse

from lightcnn import cli
from lightcnn.protocols import blufr_eval


def _blufr(argv):
    parser = argparse.ArgumentParser(prog="python -m lightcnn blufr",
                                     description="BLUFR on LFW (Liao et al., IJCB 2014): VR@FAR=0.1% and open-set "
                                                 "DIR@rank1,FAR=1% over 10 trials, as mean, std and mean - std "
                                                 "(the same figures as lfw_verification-matlab/blufr_eval.m).")
    parser.add_argument("--features", required=True,
                        help="extractor output over BLUFR's image list: data (N x D), label (Name/Name_NNNN.jpg)")
    parser.add_argument("--config", required=True,
                        help="blufr_lfw_config.mat, or the folder of BLUFR's text lists (image_list.txt, ...)")
    parser.add_argument("--out-dir", default=".", help="where blufr_results.json and the PNGs go")
    parser.add_argument("--pca", type=int, default=0, metavar="N",
                        help="PCA to N dims fitted on each trial's training images only (default: none)")
    parser.add_argument("--exclude-missing", action="store_true",
                        help="drop images without a feature from every trial's sets (counted per set) instead of "
                             "failing")
    cli.add_debug_flag(parser)
    args = parser.parse_args(argv)
    blufr_eval.run(args.features, args.config, args.out_dir, pca=args.pca, exclude_missing=args.exclude_missing)
    return 0


def main(argv=None):
    """The command line; returns the exit status (2: bad input, or images without features)."""
    return cli.run(_blufr, argv)


if __name__ == "__main__":
    raise SystemExit(main())
