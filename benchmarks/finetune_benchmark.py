"""Fine-tuning against training from scratch, on real faces no one here made: the AT&T/ORL database, people s1-s30
to train on, all 4,950 same/different pairs of the ten unseen people s31-s40 to verify.

    python -m benchmarks.finetune_benchmark --pretrained PREFIX[:EPOCH] [--orl ../shared/data/orl_faces]
        [--epochs 6] [--out finetune_output]

Every run is ``train_lightcnn.py`` LightCNN-9 on the same packed data, for the same epochs, with the same seed and the
ORL test's recipe, ``--recipe small-data`` (:mod:`lightcnn.training.recipes`; Caffe's xavier for what is
initialised):

    scratch        from the network's own initialisation
    fine-tuned     --pretrained, every layer trained (the pretrained ones at --pretrained-lr-mult of the rate)
    frozen trunk   --pretrained --freeze-trunk: the embedding and a new classifier trained on the fixed trunk

and the pairs are verified with each, with the pretrained network as it is (no ORL training at all) and with raw
pixels, through the same evaluator. The pretrained checkpoint must be a LightCNN-9 trained on centred inputs
(``--mean 127.5``, as ``make lfw`` trains).
"""
import argparse
import os
import sys

import numpy as np

from lightcnn.protocols import tenfold
from lightcnn.protocols.features import Features
from lightcnn.protocols.orl import TRAIN_PEOPLE, unseen_pairs
from lightcnn.embedding import load_checkpoint_embedding
from lightcnn.extract import extract_features
from lightcnn.images import load_eval_image
from lightcnn.training.recipes import SMALL_DATA
from benchmarks.pipeline import (NETWORK, SHARED_DATA, PipelineError, Steps, claim_output, pack_identities, pct,
                                     tool_main, train_command)

RUN_FOLDERS = ("data", "scratch", "fine-tuned", "frozen_trunk", "logs")


def verify_checkpoint(prefix, root, keys, pairs):
    net, preprocess, sidecar = load_checkpoint_embedding(prefix)
    found = extract_features(net, [os.path.join(root, *k.split("/")) for k in keys], preprocess, keys=keys,
                             log_interval=None)
    return tenfold.verify(Features(found.features, found.keys), pairs, log=lambda *_: None), \
        preprocess


def run(args):
    out = os.path.abspath(args.out)
    claim_output(out, RUN_FOLDERS)
    steps = Steps(out, quiet=args.quiet)
    root = os.path.abspath(args.orl)
    if not os.path.isdir(root):
        raise PipelineError(f"--orl {root}: not a folder")
    data_dir, _, summary = pack_identities(steps, root, out, TRAIN_PEOPLE, args.val_fraction, args.seed)
    runs = {"scratch": {}, "fine-tuned": {"pretrained": args.pretrained,
                                          "pretrained_lr_mult": args.pretrained_lr_mult},
            "frozen trunk": {"pretrained": args.pretrained, "freeze_trunk": True}}
    keys, pairs = unseen_pairs()
    results = {}
    for name, extra in runs.items():
        prefix = os.path.join(out, name.replace(" ", "_"), NETWORK)
        started = steps.begin(name, f"LightCNN-9 on ORL s1-s30, {args.epochs} epochs, {name}")
        steps.run(name, train_command(data_dir, prefix, summary["val"]["images"] > 0, num_epochs=args.epochs,
                                      batch_size=args.batch_size, lr=args.lr, mean=args.mean,
                                      xavier_factor_type=args.xavier_factor_type, seed=args.seed,
                                      disp_batches=args.disp_batches, **extra),
                  log_name=name.replace(" ", "_"))
        results[name], preprocess = verify_checkpoint(prefix, root, keys, pairs)
        steps.end(name, started)
    pretrained_prefix, _, epoch = args.pretrained.rpartition(":")
    if not (pretrained_prefix and epoch.isdigit()):
        pretrained_prefix = args.pretrained
    results["pretrained as it is"], _ = verify_checkpoint(pretrained_prefix, root, keys, pairs)
    pixels = np.stack([load_eval_image(os.path.join(root, *k.split("/")), preprocess).ravel() for k in keys])
    results["raw pixels"] = tenfold.verify(Features(pixels, keys), pairs, log=lambda *_: None)
    lines = ["", f"ORL: trained on s1-s30 ({summary['train']['images']} images), verified on all {len(pairs)} pairs "
                 f"of the unseen s31-s40 ({args.epochs} epochs each; pretrained: {args.pretrained})",
             "%-22s %18s %8s %8s %12s" % ("features", "10-fold accuracy", "AUC", "EER", "TPR@FAR=1%")]
    for name, r in results.items():
        lines.append("%-22s %18s %8.4f %8s %12s" % (name, f"{pct(r['accuracy_mean'])} +- "
                                                         f"{100 * r['accuracy_std']:.2f}", r["auc"], pct(r["eer"]),
                                                   pct(r["tpr_at_far_1pct"])))
    lines.append("time per step: " + ", ".join(f"{k} {v:.0f} s" for k, v in steps.times.items()))
    steps.say("\n".join(lines))
    return results


def build_parser():
    parser = argparse.ArgumentParser(prog="python -m benchmarks.finetune_benchmark",
                                     description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    parser.add_argument("--pretrained", required=True, help="a LightCNN-9 checkpoint, PREFIX[:EPOCH]")
    parser.add_argument("--orl", default=os.path.join(SHARED_DATA, "orl_faces"), help="the ORL faces, sN/i.pgm")
    parser.add_argument("--epochs", type=int, default=6)
    parser.add_argument("--batch-size", type=int, default=SMALL_DATA.batch_size)
    parser.add_argument("--lr", type=float, default=SMALL_DATA.lr)
    parser.add_argument("--pretrained-lr-mult", type=float, default=1.0)
    parser.add_argument("--mean", type=float, default=SMALL_DATA.mean)
    parser.add_argument("--xavier-factor-type", default=SMALL_DATA.xavier_factor_type)
    parser.add_argument("--val-fraction", type=float, default=0.2)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--disp-batches", type=int, default=0)
    parser.add_argument("--out", default="finetune_output")
    parser.add_argument("--quiet", action="store_true")
    return parser


def main(argv=None):
    """Returns the exit status (1: a step failed, 2: bad input)."""
    return tool_main(build_parser, run, argv)


if __name__ == "__main__":
    sys.exit(main())
