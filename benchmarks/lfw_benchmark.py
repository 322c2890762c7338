"""LightCNN-9 trained on LFW itself, verified on people it never saw: the real-face benchmark (``make lfw``).

About an hour of training on a 2-core CPU (the README has the measured time and figures): a benchmark, not a test.

    python -m benchmarks.lfw_benchmark [--lfw-root ../shared/data/lfw_gray144] [--pairs-dir ../shared/data/lfw]
        [--out lfw_output] [--dtype bfloat16] [--epochs 40] [--lr-step-epochs 28,36] [--features float32,int8] ...

1. training identities: every LFW identity with at least 2 images that does not appear in View 1
   ``pairsDevTest.txt`` (the split of REFERENCE.md's calibration run);
2. ``python -m lightcnn prepare`` packs them; ``train_lightcnn.py`` trains LightCNN-9;
3. ``extract_features.py`` extracts the images of both evaluation sets (missing images skipped and recorded), once
   per precision of ``--features`` (float32, bfloat16, int8: the same network, to measure what low precision costs);
4. the Python evaluator scores, for the trained features and for a raw-pixel cosine baseline:
   - DevTest: View 1 ``pairsDevTest.txt`` (10 stratified folds, as ``lightcnn.protocols.lfw_pairs`` defines for View 1);
   - View 2 unseen: the ``pairs.txt`` pairs whose two identities were not trained on, in their own folds;
   pairs with a missing image are left out, counted and listed (``OUT/eval/<set>/<features>/missing_pairs.txt``);
   DevTest's best threshold is saved beside the checkpoint, for ``python -m lightcnn verify-pair``.

``--lfw-root`` may be a tree written by ``python -m lightcnn align``: the faces are then trained on and extracted as
aligned (the dataset builder records it, the extractor repeats it).

The defaults are REFERENCE.md's calibration recipe (batch 64, Adam 3e-4, wd 5e-4, dropout 0.5), fitted to about an
hour on 2 cores (README, "Measured figures"): in float32 12 epochs with the rate x0.1 at epochs 8 and 11; in bfloat16
(the default where the CPU has it, and faster there) 40 epochs with steps at 28 and 36; with Caffe's xavier and
centred inputs, which start learning in the first epoch where the calibration run's Glorot init and raw inputs learned
only the class prior for several.
REFERENCE.md's own run is ``--epochs 22 --lr-step-epochs 15,20 --xavier-factor-type avg --mean 0``.
"""
from __future__ import annotations

import argparse
import os
import sys
import time

from lightcnn import files, init, precision
from lightcnn.protocols import lfw_pairs as lfw, report, tenfold, thresholds
from lightcnn.protocols.features import load_features
from lightcnn.checkpoint import read_sidecar
from lightcnn.training.recipes import SMALL_DATA
from lightcnn.training.schedule import parse_steps
from benchmarks.pipeline import (EXTRACT_SCRIPT, NETWORK, SHARED_DATA, PipelineError, Steps, claim_output,
                                 pack_identities, pair_identities, pair_images, pct, tool_main, train_command,
                                 training_identities, write_pixel_features)

RUN_FOLDERS = ("data", "model", "features", "eval", "logs")
# Epochs (and the rate's x0.1 steps) that took about an hour on the 2-core development machines (README): bfloat16's
# saved time goes into epochs.
EPOCHS_IN_AN_HOUR = {"float32": (12, "8,11"), "bfloat16": (40, "28,36")}
# the extractor's flags for each precision of the trained features (--features)
FEATURE_FLAGS = {"float32": [], "bfloat16": ["--dtype", "bfloat16"], "int8": ["--quantize", "int8"]}


def default_features():
    """float32 features, and the low-precision ones this CPU runs fast: int8 (oneDNN) always, bfloat16 where the
    CPU has it."""
    return ["float32"] + (["bfloat16"] if precision.cpu_has_bf16() else []) + ["int8"]


def unseen_pairs(pairs, trained):
    """The pairs whose two identities are both outside ``trained``, keeping their folds."""
    trained = set(trained)
    return [p for p in pairs if p.key1.split("/")[0] not in trained and p.key2.split("/")[0] not in trained]


def evaluate_set(name, features_path, pairs, pairs_label, out_dir, log):
    """The Python evaluator on ``pairs`` (Pair objects, their own folds), missing pairs excluded and listed."""
    features = load_features(features_path)
    results = {"features": features_path, "pairs": pairs_label, "pair_format": name}
    results.update(tenfold.verify(features, pairs, exclude_missing=True, log=lambda text: None))
    os.makedirs(out_dir, exist_ok=True)
    with open(os.path.join(out_dir, "missing_pairs.txt"), "w", encoding="utf-8") as f:
        f.writelines(f"{k1}\t{k2}\n" for k1, k2 in results["excluded"])
    log(report.format_table(results))
    report.write_results(results, out_dir)
    return results


def format_table(results, n_identities):
    """The closing table: one row per (pair set, features); returns its lines."""
    lines = ["=" * 100, "LightCNN-9 trained on %d LFW identities, verified on people it never saw" % n_identities,
             "", "%-14s %-17s %-22s %18s %8s %8s %11s %12s" % (
                 "pairs", "features", "used (same+diff)/all", "10-fold accuracy", "AUC", "EER", "TPR@FAR=1%",
                 "TPR@FAR=0.1%")]
    for (set_name, feature_name), r in results.items():
        lines.append("%-14s %-17s %-22s %18s %8.4f %8s %11s %12s" % (
            set_name, feature_name, f"{r['n_pairs']} ({r['n_matched']}+{r['n_mismatched']})/{r['n_listed']}",
            f"{pct(r['accuracy_mean'])} +- {100 * r['accuracy_std']:.2f}", r["auc"], pct(r["eer"]),
            pct(r["tpr_at_far_1pct"]), pct(r["tpr_at_far_0_1pct"])))
    lines += ["", "pairs with a missing image were left out; they are listed in eval/*/*/missing_pairs.txt",
              "View 2 unseen keeps far more mismatched than matched pairs (a matched pair needs an identity with 2+",
              "images, and those were trained on unless in DevTest): read its AUC and EER before its accuracy",
              "=" * 100]
    return lines


def run(args):
    out = os.path.abspath(args.out)
    claim_output(out, RUN_FOLDERS)
    steps = Steps(out, quiet=args.quiet)
    started = time.time()
    root = os.path.abspath(args.lfw_root)
    dev_test_path = os.path.join(args.pairs_dir, "pairsDevTest.txt")
    view2_path = os.path.join(args.pairs_dir, "pairs.txt")
    for path in (root, dev_test_path, view2_path):
        if not os.path.exists(path):
            raise PipelineError(f"not found: {path}")

    t = steps.begin("data", f"LFW under {root}; held out: the identities of {dev_test_path}")
    dev_test = lfw.read_pairs(dev_test_path)
    view2 = lfw.read_pairs(view2_path)
    train_names, _ = training_identities(root, pair_identities(dev_test), args.min_images)
    view2_unseen = unseen_pairs(view2, train_names)
    keys = sorted(set(pair_images(dev_test)) | set(pair_images(view2_unseen)))
    image_list = os.path.join(out, "eval_images.txt")
    files.write_lines(image_list, keys)
    steps.say(f"{len(train_names)} training identities (>= {args.min_images} images, none in DevTest); DevTest "
              f"{len(dev_test)} pairs; View 2: {len(view2_unseen)} of {len(view2)} pairs have two untrained "
              f"identities; {len(keys)} images to extract")
    steps.end("data", t)

    if len(train_names) < 2:
        raise PipelineError(f"{len(train_names)} training identities under {root}: at least 2 are needed")
    data_dir, _, summary = pack_identities(steps, root, out, train_names, args.val_fraction, args.seed)
    n_train, n_val = summary["train"]["images"], summary["val"]["images"]

    prefix = os.path.join(out, "model", NETWORK)
    t = steps.begin("train", f"LightCNN-9, {args.epochs} epochs on {n_train} images in {args.dtype}")
    command = train_command(data_dir, prefix, n_val > 0, num_epochs=args.epochs,
                            batch_size=min(args.batch_size, n_train), lr=args.lr,
                            lr_step_epochs=parse_steps(args.lr_step_epochs), mean=args.mean,
                            xavier_factor_type=args.xavier_factor_type, seed=args.seed, disp_batches=args.disp_batches,
                            wd=args.wd, dropout=args.dropout, dtype=args.dtype)
    steps.run("train", command)
    steps.end("train", t)

    mats = _extract_step(args, out, steps, root, keys, image_list, prefix)

    t = steps.begin("evaluate", "the LFW protocol (lightcnn evaluate), missing pairs excluded and listed")
    results = {}
    for set_name, pairs, label in (("DevTest", dev_test, dev_test_path),
                                   ("View 2 unseen", view2_unseen, view2_path + " (pairs of untrained identities)")):
        for feature_name, mat in mats.items():
            eval_dir = os.path.join(out, "eval", set_name.lower().replace(" ", "_"), feature_name)
            steps.say(f"\n-- {set_name}, {feature_name}")
            results[(set_name, feature_name)] = evaluate_set(set_name, mat, pairs, label, eval_dir, steps.say)
    if "trained" in mats:  # DevTest's best threshold beside the checkpoint: `python -m lightcnn verify-pair` uses it
        thresholds.save_model_threshold(load_features(mats["trained"]).model, results[("DevTest", "trained")],
                                        steps.say)
    steps.end("evaluate", t)

    lines = format_table(results, len(train_names))
    lines[-1:-1] = ["time per step: " + ", ".join(f"{k} {s:.0f} s" for k, s in steps.times.items())
                    + f"; total {(time.time() - started) / 60:.1f} min"]
    steps.say("\n" + "\n".join(lines))
    summary = {f"{s} / {f}": {k: val for k, val in r.items() if not k.startswith("roc_")}
               for (s, f), r in results.items()}
    files.write_json(os.path.join(out, "lfw_benchmark.json"),
                     {"results": summary, "seconds": steps.times, "args": vars(args)})
    return results


def _extract_step(args, out, steps, root, keys, image_list, prefix):
    """The features of the evaluation images: the trained network's in each precision of ``--features``, and raw
    pixels. Returns the .mat files by feature set."""
    t = steps.begin("extract", f"features of {len(keys)} images: trained LightCNN-9 ({', '.join(args.features)}) "
                               f"and raw pixels")
    features_dir = os.path.join(out, "features")
    os.makedirs(features_dir, exist_ok=True)
    mats = {}
    for kind in args.features:  # the same trained network, its features computed in each precision
        name = "trained" if kind == "float32" else f"trained-{kind}"
        mats[name] = os.path.join(features_dir, f"{name}.mat")
        steps.run("extract", [sys.executable, EXTRACT_SCRIPT, "--model-prefix", prefix, "--epoch", str(args.epochs),
                              "--image-list", image_list, "--image-root", root, "--out", mats[name],
                              "--skip-missing"] + FEATURE_FLAGS[kind], log_name=f"extract_{name}")
    mats["pixels"] = os.path.join(features_dir, "pixels.mat")
    preprocess = read_sidecar(prefix, args.epochs).preprocess
    n_found, missing = write_pixel_features(root, keys, mats["pixels"], preprocess, side=args.pixel_side)
    steps.say(f"raw pixels ({args.pixel_side}x{args.pixel_side} of the centre crop) of {n_found} images; "
              f"{len(missing)} images missing under {root}")
    steps.end("extract", t)
    return mats


def build_parser():
    parser = argparse.ArgumentParser(prog="python -m benchmarks.lfw_benchmark", description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    data = parser.add_argument_group("Data")
    data.add_argument("--lfw-root", default=os.path.join(SHARED_DATA, "lfw_gray144"),
                      help="LFW faces, <root>/<Name>/<Name>_NNNN.jpg")
    data.add_argument("--pairs-dir", default=os.path.join(SHARED_DATA, "lfw"),
                      help="folder with pairsDevTest.txt (View 1) and pairs.txt (View 2)")
    data.add_argument("--min-images", type=int, default=2, help="training identities need this many images")
    data.add_argument("--val-fraction", type=float, default=0.05)
    train = parser.add_argument_group("Training (the measured recipe; see the module's docstring)")
    train.add_argument("--epochs", type=int, default=None,
                       help="default: as many as fit in about an hour, %s" % ", ".join(
                           f"{e} in {d}" for d, (e, _) in EPOCHS_IN_AN_HOUR.items()))
    train.add_argument("--batch-size", type=int, default=64)
    train.add_argument("--lr", type=float, default=SMALL_DATA.lr, help="Adam learning rate")
    train.add_argument("--lr-step-epochs", default=None,
                       help="default: %s" % ", ".join(f"{s} with {e} epochs" for e, s in EPOCHS_IN_AN_HOUR.values()))
    train.add_argument("--wd", type=float, default=5e-4)
    train.add_argument("--dropout", type=float, default=None, help="default: the network's own (0.5)")
    train.add_argument("--mean", type=float, default=SMALL_DATA.mean,
                       help="pixel mean subtracted before scaling by 1/255")
    train.add_argument("--xavier-factor-type", default=SMALL_DATA.xavier_factor_type, choices=init.FACTOR_TYPES)
    train.add_argument("--disp-batches", type=int, default=20)
    train.add_argument("--seed", type=int, default=0)
    train.add_argument("--dtype", default=precision.fastest_cpu_dtype(), choices=precision.DTYPES,
                       help="training arithmetic (default: bfloat16 where this CPU has it, else float32)")
    train.add_argument("--features", type=_feature_kinds, default=default_features(),
                       help="precisions the trained features are computed in, comma-separated (float32, bfloat16, "
                            "int8); each is evaluated")
    data.add_argument("--pixel-side", type=int, default=32,
                      help="the raw-pixel baseline shrinks the centre crop to this side (area averaging)")
    run_group = parser.add_argument_group("Run")
    run_group.add_argument("--out", default="lfw_output", help="output folder (a previous run's is replaced)")
    run_group.add_argument("--quiet", action="store_true", help="do not echo the steps' output (still logged)")
    return parser


def resolve_recipe(args):
    """The epochs and rate steps not given: about an hour of training on 2 cores in the chosen precision."""
    epochs, steps = EPOCHS_IN_AN_HOUR.get(args.dtype, EPOCHS_IN_AN_HOUR["float32"])
    if args.epochs is None:
        args.epochs = epochs
        args.lr_step_epochs = steps if args.lr_step_epochs is None else args.lr_step_epochs
    elif args.lr_step_epochs is None:
        args.lr_step_epochs = ",".join(str(round(args.epochs * f)) for f in (2 / 3, 11 / 12))
    return args


def _feature_kinds(text):
    kinds = [k.strip() for k in text.split(",") if k.strip()]
    unknown = [k for k in kinds if k not in FEATURE_FLAGS]
    if unknown or not kinds:
        raise argparse.ArgumentTypeError(f"give some of {', '.join(FEATURE_FLAGS)}, got {text!r}")
    return kinds


def main(argv=None):
    """Returns the exit status (1: a step failed, 2: bad input)."""
    return tool_main(build_parser, lambda args: run(resolve_recipe(args)), argv)


if __name__ == "__main__":
    raise SystemExit(main())
