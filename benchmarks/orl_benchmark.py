"""ORL (AT&T faces) the way tests/test_orl.py trains and verifies it, with a choice of how faces are made: the
measured effect of ``--fit`` and ``--align``.

    python -m benchmarks.orl_benchmark [--orl-root ../shared/data/orl_faces] [--fit crop|pad|stretch] [--align]
        [--epochs 6] [--seed 0] [--out orl_output] [--quiet]

1. ``python -m lightcnn prepare`` packs people s1-s30 (8 images each for training, 2 for validation; ORL's faces are
   92x112, so ``--fit`` decides how they become square; ``--align`` aligns them to the LightCNN template first);
2. ``train_lightcnn.py`` trains LightCNN-9 with test_orl.py's settings (``--recipe small-data``, 6 epochs, seed 0,
   or ``--seed``'s for the split and the training);
3. ``extract_features.py`` extracts the 100 images of the unseen people s31-s40 with that checkpoint (which repeats
   the fit and the alignment by itself), and a raw-pixel baseline takes the same network inputs as features;
4. the Python evaluator scores all 4,950 same/different pairs of s31-s40 (450 matched, dealt round-robin into 10
   folds of each kind, as tests/test_orl.py does).

A few minutes on 2 CPU cores. Prints one table; ``OUT/results.json`` keeps the figures.
"""
from __future__ import annotations

import argparse
import os
import sys
import time

from lightcnn import cli, files
from lightcnn.protocols import tenfold
from lightcnn.protocols.features import Features, load_features
from lightcnn.checkpoint import read_sidecar
from lightcnn.images import DEFAULT_FIT, FITS
from lightcnn.protocols.orl import TRAIN_PEOPLE, unseen_pairs  # the ORL protocol of tests/test_orl.py
from benchmarks.pipeline import EXTRACT_SCRIPT, SHARED_DATA, Steps, claim_output, pct, tool_main, train_command

RUN_FOLDERS = ("faces", "data", "model", "features", "logs")


def pixel_features(prefix, root, keys):
    """The network inputs themselves (after the checkpoint's alignment, fit, crop and centring), flattened: the
    raw-pixel baseline, made by the extractor's own code."""
    import mxnet as mx
    from lightcnn import extract
    from lightcnn.embedding import load_checkpoint_embedding
    _, preprocess, _ = load_checkpoint_embedding(prefix)
    result = extract.extract_features(lambda x: mx.nd.reshape(x, (0, -1)), [os.path.join(root, k) for k in keys],
                                      preprocess, keys=keys, log_interval=None)
    return Features(result.features, result.keys)


def run(args):
    started = time.time()
    out = os.path.abspath(args.out)
    claim_output(out, RUN_FOLDERS)
    steps = Steps(out, quiet=args.quiet)
    faces = os.path.join(out, "faces")
    os.makedirs(faces)
    for person in TRAIN_PEOPLE:  # the builder reads a folder tree: link the people to train on, copy nothing
        os.symlink(os.path.join(args.orl_root, person), os.path.join(faces, person))

    t = steps.begin("prepare", f"pack s1-s30 (--fit {args.fit}{', --align' if args.align else ''})")
    data_dir = os.path.join(out, "data")
    steps.run("prepare", [sys.executable, "-m", "lightcnn", "prepare", "--root", faces, "--out", data_dir,
                          "--val-fraction", "0.2", "--seed", str(args.seed), "--fit", args.fit]
              + (["--align"] if args.align else []))
    steps.end("prepare", t)

    t = steps.begin("train", f"LightCNN-9, {args.epochs} epochs (tests/test_orl.py's settings)")
    prefix = os.path.join(out, "model", "lightcnn9")
    steps.run("train", train_command(data_dir, prefix, True, num_epochs=args.epochs, seed=args.seed, disp_batches=5))
    steps.end("train", t)
    sidecar = read_sidecar(prefix, args.epochs)

    t = steps.begin("extract", "the 100 images of the unseen people s31-s40")
    keys, pairs = unseen_pairs()
    image_list = os.path.join(out, "features", "unseen.txt")
    files.write_lines(image_list, keys)
    mat = os.path.join(out, "features", "unseen.mat")
    steps.run("extract", [sys.executable, EXTRACT_SCRIPT, "--model-prefix", prefix, "--image-list", image_list,
                          "--image-root", args.orl_root, "--out", mat])
    steps.end("extract", t)

    quiet = lambda text: None  # noqa: E731
    network = tenfold.verify(load_features(mat), pairs, log=quiet)
    pixels = tenfold.verify(pixel_features(prefix, args.orl_root, keys), pairs, log=quiet)
    results = {"fit": args.fit, "align": args.align, "epochs": args.epochs, "seed": args.seed,
               "val_accuracy": sidecar.training.metrics.get("val_accuracy"),
               "network": {k: network[k] for k in ("accuracy_mean", "accuracy_std", "auc", "eer", "n_pairs")},
               "pixels": {k: pixels[k] for k in ("accuracy_mean", "accuracy_std", "auc", "eer", "n_pairs")},
               "seconds": round(time.time() - started, 1)}
    files.write_json(os.path.join(out, "results.json"), results)
    how = f"--fit {args.fit}" + (", --align" if args.align else "")
    steps.say("\n" + "=" * 100)
    steps.say(f"ORL s31-s40, all {network['n_pairs']} pairs; LightCNN-9 trained {args.epochs} epochs on s1-s30 "
              f"({how}, seed {args.seed}); validation accuracy {results['val_accuracy']:.3f}; "
              f"{results['seconds']:.0f} s")
    steps.say("| faces | features | 10-fold accuracy | AUC | EER |")
    steps.say("| --- | --- | --- | --- | --- |")
    for name, r in (("LightCNN-9", network), ("raw pixels (the network's inputs)", pixels)):
        steps.say(f"| {how} | {name} | {pct(r['accuracy_mean'], 1)} +- {100 * r['accuracy_std']:.1f} | "
                  f"{r['auc']:.3f} | {pct(r['eer'], 1)} |")
    return results


def build_parser():
    parser = argparse.ArgumentParser(prog="python -m benchmarks.orl_benchmark",
                                     description=__doc__.split("\n\n")[0].replace("\n", " "))
    parser.add_argument("--orl-root", default=os.path.join(SHARED_DATA, "orl_faces"))
    parser.add_argument("--fit", choices=FITS, default=DEFAULT_FIT, help="how the 92x112 faces become square")
    parser.add_argument("--align", action="store_true", help="align the faces to the LightCNN template first")
    parser.add_argument("--epochs", type=int, default=6)
    parser.add_argument("--seed", type=int, default=0, help="seed of the split and of training (the test's: 0)")
    parser.add_argument("--out", default="orl_output", help="output folder (a previous run's is replaced)")
    parser.add_argument("--quiet", action="store_true", help="do not echo the steps' output (still logged)")
    cli.add_debug_flag(parser)
    return parser


def main(argv=None):
    return tool_main(build_parser, run, argv)


if __name__ == "__main__":
    raise SystemExit(main())
