"""The whole LightCNN pipeline in a few minutes on a CPU: ``make demo``.

    python -m benchmarks.demo [--out demo_output] [--epochs 8] [--batch-size 16] [--lr 3e-4]
    python -m benchmarks.demo --data FACES --pairs pairs.txt [--out DIR] ...

Steps, each with the project's own tool (the exact command is printed and its output saved under ``OUT/logs``):

1. data       ``benchmarks.synthetic_faces`` (built-in data), or the user's ``--data`` root and ``--pairs`` file;
2. prepare    ``python -m lightcnn prepare``: the training identities (every identity that no pair uses, with
              at least ``--min-images`` images) packed into gray 144x144 RecordIO;
3. untrained  a checkpoint (epoch 0) of LightCNN-9 initialised exactly as ``train_lightcnn.py`` initialises it
              (same seed, same Xavier variant): the baseline is the trained network's own starting point;
4. train      ``train_lightcnn.py --network lightcnn9`` for ``--epochs`` epochs on the CPU;
5. extract    ``extract_features/extract_features.py`` on the images the pairs use, once per checkpoint;
6. evaluate   ``python -m lightcnn evaluate`` (10-fold accuracy, AUC, EER, ROC PNG) on raw pixels, the
              untrained and the trained features;
7. octave     ``lfw_eval.m`` in GNU Octave on the same files, when ``octave-cli`` is installed; its figures
              are checked against Python's.

It ends with a table (raw pixels / untrained / trained: 10-fold accuracy, AUC, EER, TPR@FAR=1%), the time of
every step and where every output is; ``OUT/demo_summary.json`` holds the same.

Why the demo's training recipe differs from the seed's (Adam 1e-5, batch 64, dropout 0.5, Glorot "avg" Xavier,
[0, 1] inputs, 35 epochs on millions of faces): on a hundred identities the seed recipe leaves the loss at the class
prior for the whole run, because Glorot's weights make the features of different images almost identical at the
start. The small-data recipe (``--recipe small-data``, :mod:`lightcnn.training.recipes`: Caffe's "xavier", centred
inputs, Adam 3e-4, batch 16) with no dropout learns within the first epoch. The measurements behind each choice are
in the README ("Small datasets", "Measured figures"). Every one of these is a flag of ``train_lightcnn.py`` (the demo
prints the command); nothing is patched.
"""
from __future__ import annotations

import argparse
import dataclasses
import os
import shutil
import sys
import time

from lightcnn import cli, files, init, precision
from lightcnn.protocols import lfw_pairs as lfw
from lightcnn.images import Preprocess
from lightcnn.training.recipes import SMALL_DATA
from lightcnn.training.schedule import parse_steps
from benchmarks import synthetic_faces
from benchmarks.pipeline import (EXTRACT_SCRIPT, MATLAB_DIR, NETWORK, PipelineError, Steps, claim_output, pct,
                                     pack_identities, pair_identities, pair_images, train_command,
                                     training_identities, write_pixel_features)

SUMMARY = "demo_summary.json"
# the sub-folders a run rewrites; the generated faces are kept (regenerated only when their options change)
RUN_FOLDERS = ("data", "untrained", "model", "features", "eval", "logs")


# ----------------------------------------------------------------------------------------------------------------
# The untrained baseline

def save_untrained_checkpoint(prefix, num_classes, classes_path, preprocess, seed, xavier_factor_type,
                              xavier_magnitude, dropout):
    """Epoch 0 of LightCNN-9: the weights ``train_lightcnn.py`` starts from with the same options (the training
    loop's own :func:`~lightcnn.training.loop.initial_network`)."""
    import mxnet as mx
    from lightcnn import checkpoint
    from lightcnn.model import ModelSpec
    from lightcnn.training.loop import initial_network

    spec = ModelSpec(NETWORK, num_classes, dropout=dropout)
    net = initial_network(spec, seed, xavier_factor_type, xavier_magnitude, [mx.cpu()])
    origin = {"kind": "initialised", "seed": seed,
              "init": {"xavier_factor_type": xavier_factor_type, "xavier_magnitude": xavier_magnitude}}
    checkpoint.save(net, None, prefix, checkpoint.Sidecar(
        model=spec, preprocess=preprocess, epoch=0, origin=origin,
        classes=os.path.abspath(classes_path) if classes_path else None))


# ----------------------------------------------------------------------------------------------------------------
# The table

MODELS = (("pixels", "raw pixels (cosine)"), ("untrained", "LightCNN-9 untrained"), ("trained", "LightCNN-9 trained"))


def format_table(results, epochs):
    """The closing comparison: one row per feature set."""
    lines = ["%-34s %18s %8s %8s %12s" % ("features", "10-fold accuracy", "AUC", "EER", "TPR@FAR=1%")]
    for name, label in MODELS:
        r = results.get(name)
        if r is None:
            continue
        if name == "untrained":
            label += " (epoch 0)"
        elif name == "trained":
            label += f" (epoch {epochs})"
        accuracy = f"{pct(r['accuracy_mean'])} +- {100 * r['accuracy_std']:.2f}"
        lines.append("%-34s %18s %8.4f %8s %12s" % (label, accuracy, r["auc"], pct(r["eer"]),
                                                    pct(r["tpr_at_far_1pct"])))
    return "\n".join(lines)


def _octave_agrees(python, octave, tol=1e-6):
    keys = ("accuracy_mean", "accuracy_std", "best_accuracy", "auc", "eer")
    return all(abs(python[k] - octave[k]) <= tol for k in keys)


# ----------------------------------------------------------------------------------------------------------------
# The pipeline

@dataclasses.dataclass
class _PairData:
    """What the data step decided: the faces, the pairs over them and the identities left for training."""

    root: str
    pairs_path: str
    pairs: list
    keys: list  # the images the pairs use
    image_list: str  # those keys, one a line: the extractor's input
    n_missing_images: int
    train_names: list


def run_demo(args):
    out = os.path.abspath(args.out)
    claim_output(out, RUN_FOLDERS)
    steps = Steps(out, quiet=args.quiet)
    started_all = time.time()
    paths = {}

    data = _data_step(args, out, steps, paths)
    # 2. prepare: the training identities packed into RecordIO
    data_dir, paths["train_identities"], summary = pack_identities(steps, data.root, out, data.train_names,
                                                                   args.val_fraction, args.seed)
    n_train, n_val = summary["train"]["images"], summary["val"]["images"]
    num_classes = summary["num_classes"]
    paths["data"] = data_dir

    # 3. untrained checkpoint, the trained network's own starting point
    preprocess = Preprocess(mean=args.mean)
    untrained_prefix = os.path.join(out, "untrained", NETWORK)
    t = steps.begin("untrained", "save LightCNN-9 as initialised, as epoch 0")
    save_untrained_checkpoint(untrained_prefix, num_classes, os.path.join(data_dir, "classes.txt"), preprocess,
                              args.seed, args.xavier_factor_type, args.xavier_magnitude, args.dropout)
    steps.say(f"wrote {untrained_prefix}-0000.params (+ .json sidecar, -symbol.json)")
    steps.end("untrained", t)

    prefix = _train_step(args, out, steps, data_dir, n_train, n_val, num_classes)
    paths.update(checkpoints=f"{prefix}-{args.epochs:04d}.params/.states/.json (the last epoch's), "
                             f"{prefix}-symbol.json",
                 untrained=f"{untrained_prefix}-0000.params", training_log=f"{prefix}-train.log",
                 training_curve=f"{prefix}-curve.png", training_metrics=f"{prefix}-metrics.csv")
    mats = _extract_step(args, out, steps, paths, data, preprocess, untrained_prefix, prefix)
    results = _evaluate_step(out, steps, paths, data, mats)
    octave_note = _octave_step(args, out, steps, paths, data, mats, results)
    total = time.time() - started_all

    # the report
    record = {"results": {k: {f: v for f, v in r.items() if not f.startswith("roc_")} for k, r in results.items()},
              "seconds": {k: round(v, 1) for k, v in steps.times.items()}, "total_seconds": round(total, 1),
              "epochs": args.epochs, "dtype": args.dtype, "num_classes": num_classes, "train_images": n_train,
              "val_images": n_val,
              "pairs": len(data.pairs), "paths": paths, "octave": octave_note, "args": vars(args)}
    files.write_json(os.path.join(out, SUMMARY), record)
    report = format_report(record, results)
    steps.say("\n" + report)
    return record


def _data_step(args, out, steps, paths):
    """1. The faces and pairs (generated, or the user's), and the identities no pair uses: the training ones."""
    if args.data:
        root, pairs_path = os.path.abspath(args.data), os.path.abspath(args.pairs)
        t = steps.begin("data", f"your faces under {root}, pairs {pairs_path}")
        if not os.path.isdir(root):
            raise PipelineError(f"--data {root}: not a folder")
    else:
        root = os.path.join(out, "faces")
        options = synthetic_faces.Options(train_identities=args.train_identities,
                                          verify_identities=args.verify_identities,
                                          images_per_identity=args.images_per_identity,
                                          pairs_per_fold=args.pairs_per_fold, seed=args.seed,
                                          difficulty=args.difficulty)
        t = steps.begin("data", "synthetic faces (benchmarks.synthetic_faces)")
        manifest = synthetic_faces.generate(root, options, force=True, log=steps.say)
        steps.say(f"{manifest['num_images']} images of {len(manifest['train_identities'])} training + "
                  f"{len(manifest['verify_identities'])} verification identities under {root}")
        pairs_path = os.path.join(root, synthetic_faces.PAIRS_FILE)
    pairs, pair_format = lfw.read_pairs_with_format(pairs_path)
    held_out = pair_identities(pairs)
    keys = pair_images(pairs)
    train_names, too_small = training_identities(root, held_out, args.min_images)
    image_list = os.path.join(out, "verify_images.txt")
    files.write_lines(image_list, keys)
    n_missing_images = sum(not os.path.isfile(os.path.join(root, *k.split("/"))) for k in keys)
    steps.say(f"pairs: {len(pairs)} ({pair_format}, {max(p.fold for p in pairs) + 1} folds) over {len(keys)} images "
              f"of {len(held_out)} identities, held out from training"
              + (f"; {n_missing_images} of those images are missing (their pairs are excluded and listed)"
                 if n_missing_images else ""))
    steps.say(f"training identities: {len(train_names)} (every other identity with >= {args.min_images} images"
              + (f"; {too_small} with fewer left out)" if too_small else ")"))
    if len(train_names) < 2:
        raise PipelineError(f"only {len(train_names)} identities under {root} are not used by the pairs and have at "
                        f">= {args.min_images} images: training needs at least 2")
    if n_missing_images == len(keys):
        raise PipelineError(f"none of the {len(keys)} images the pairs use exists under {root}")
    paths.update(faces=root, pairs=pairs_path, verify_images=image_list)
    steps.end("data", t)
    return _PairData(root, pairs_path, pairs, keys, image_list, n_missing_images, train_names)


def _train_step(args, out, steps, data_dir, n_train, n_val, num_classes):
    """4. ``train_lightcnn.py`` on the packed identities; returns the checkpoints' prefix."""
    batch_size = min(args.batch_size, n_train)
    prefix = os.path.join(out, "model", NETWORK)
    os.makedirs(os.path.dirname(prefix), exist_ok=True)
    t = steps.begin("train", f"LightCNN-9, {args.epochs} epoch{'s' * (args.epochs != 1)} on {n_train} images of "
                             f"{num_classes} identities (batch {batch_size}, Adam lr {args.lr:g}), on the CPU in "
                             f"{args.dtype}")
    command = train_command(data_dir, prefix, n_val > 0, num_epochs=args.epochs, batch_size=batch_size, lr=args.lr,
                            lr_step_epochs=parse_steps(args.lr_step_epochs), mean=args.mean,
                            xavier_factor_type=args.xavier_factor_type, seed=args.seed,
                            disp_batches=args.disp_batches, dropout=args.dropout,
                            xavier_magnitude=args.xavier_magnitude, dtype=args.dtype)
    steps.run("train", command)
    steps.end("train", t)
    return prefix


def _extract_step(args, out, steps, paths, data, preprocess, untrained_prefix, prefix):
    """5. The features of the pair images: raw pixels, the untrained and the trained network. Returns the .mat files
    by feature set."""
    features_dir = os.path.join(out, "features")
    os.makedirs(features_dir, exist_ok=True)
    mats = {name: os.path.join(features_dir, f"{name}.mat") for name, _ in MODELS}
    t = steps.begin("extract", f"features of the {len(data.keys)} pair images: raw pixels, untrained, trained")
    n_found, missing = write_pixel_features(data.root, data.keys, mats["pixels"], preprocess)
    steps.say(f"wrote {mats['pixels']}: {n_found} x {preprocess.crop_size ** 2} raw pixels"
              + (f", {len(missing)} missing" if missing else ""))
    for name, model_prefix, epoch in (("untrained", untrained_prefix, 0), ("trained", prefix, args.epochs)):
        command = [sys.executable, EXTRACT_SCRIPT, "--model-prefix", model_prefix, "--epoch", str(epoch),
                   "--image-list", data.image_list, "--image-root", data.root, "--out", mats[name],
                   "--dtype", args.dtype]
        if data.n_missing_images:
            command.append("--skip-missing")
        steps.run("extract", command, log_name=f"extract_{name}")
    paths["features"] = ", ".join(mats.values())
    steps.end("extract", t)
    return mats


def _evaluate_step(out, steps, paths, data, mats):
    """6. ``python -m lightcnn evaluate`` on each feature set; returns its results by feature set."""
    results = {}
    t = steps.begin("evaluate", "LFW protocol in Python (python -m lightcnn evaluate)")
    for name, _ in MODELS:
        eval_dir = os.path.join(out, "eval", name)
        command = [sys.executable, "-m", "lightcnn", "evaluate", "--features", mats[name], "--pairs", data.pairs_path,
                   "--out-dir", eval_dir]
        if data.n_missing_images:
            command.append("--exclude-missing")
        steps.run("evaluate", command, log_name=f"verify_{name}", echo=name == "trained")
        results[name] = _read_results(os.path.join(eval_dir, "lfw_results.json"))
        paths[f"roc_{name}"] = os.path.join(eval_dir, "lfw_roc.png")
    steps.end("evaluate", t)
    return results


def _octave_step(args, out, steps, paths, data, mats, results):
    """7. ``lfw_eval.m`` in GNU Octave on the same files, when it is installed; returns the report's line on it."""
    octave = shutil.which("octave-cli") if not args.no_octave else None
    if not octave:
        return ("octave-cli not found: lfw_eval.m was not run (install GNU Octave, e.g. "
                "`apt-get install octave`, to check the MATLAB evaluator too)" if not args.no_octave
                else "lfw_eval.m skipped (--no-octave)")
    t = steps.begin("octave", "the same files through lfw_eval.m in GNU Octave")
    agree = []
    try:
        for name, _ in MODELS:
            eval_dir = os.path.join(out, "eval", name, "octave")
            os.makedirs(eval_dir, exist_ok=True)
            call = "lfw_eval(%s, %s, %s%s);" % (_m(mats[name]), _m(data.pairs_path), _m(eval_dir),
                                               ", 'exclude_missing', true" if data.n_missing_images else "")
            steps.run("octave", [octave, "--no-gui", "--no-init-file", "--no-history", "--eval",
                                 f"addpath({_m(MATLAB_DIR)}); {call}"], log_name=f"octave_{name}", echo=False)
            octave_results = _read_results(os.path.join(eval_dir, "lfw_results.json"))
            agree.append(_octave_agrees(results[name], octave_results))
        paths["octave_results"] = os.path.join(out, "eval", "<features>", "octave")
        octave_note = ("lfw_eval.m (Octave) gives the same accuracy, AUC and EER for all three (to 1e-6)"
                       if all(agree) else "WARNING: lfw_eval.m (Octave) and lightcnn evaluate DISAGREE: "
                                          "compare eval/*/lfw_results.json with eval/*/octave/lfw_results.json")
    except PipelineError as error:  # the Python figures stand; say loudly that the MATLAB twin failed
        octave_note = f"WARNING: lfw_eval.m failed in Octave, see above; {error}".split("\n")[0]
        steps.say(str(error))
    steps.end("octave", t)
    return octave_note


def format_report(record, results):
    times = record["seconds"]
    p = record["paths"]
    trained = results["trained"]
    excluded = trained.get("n_excluded", 0)
    lines = [
        "=" * 100,
        "LightCNN demo: verification of %d pairs of identities never seen in training (%d folds); trained and "
        "extracted in %s" % (trained["n_pairs"], trained["n_folds"], record.get("dtype", "float32")),
    ]
    if excluded:
        lines.append("(%d of the %d listed pairs excluded: an image is missing; they are listed in "
                     "logs/verify_*.log and eval/*/lfw_results.json)" % (excluded, record["pairs"]))
    lines += [
        "",
        format_table(results, record["epochs"]),
        "",
        record["octave"],
        "",
        "time per step: " + ", ".join(f"{k} {v:.1f} s" for k, v in times.items())
        + f"; total {record['total_seconds']:.1f} s ({record['total_seconds'] / 60:.1f} min)",
        "",
        "outputs:",
        f"  ROC curves        {p['roc_trained']}",
        f"                    {p['roc_untrained']}",
        f"                    {p['roc_pixels']}",
        f"  training curve    {p['training_curve']}  (metrics: {os.path.basename(p['training_metrics'])})",
        f"  training log      {p['training_log']}",
        f"  checkpoints       {p['checkpoints']}",
        f"  untrained         {p['untrained']}",
        f"  features (.mat)   {p['features']}",
        f"  results (JSON)    {os.path.join(os.path.dirname(p['roc_trained']), 'lfw_results.json')} (and the others)",
    ]
    if "octave_results" in p:
        lines.append(f"  Octave results    {p['octave_results']}")
    lines += [
        f"  training data     {p['data']} (train/val .rec/.idx, classes.txt, summary.json)",
        f"  faces, pairs      {p['faces']}, {p['pairs']}",
        f"  image list        {p['verify_images']}",
        f"  step logs         {os.path.join(os.path.dirname(p['verify_images']), 'logs')}",
        f"  this summary      {os.path.join(os.path.dirname(p['verify_images']), SUMMARY)}",
        "=" * 100,
    ]
    return "\n".join(lines)


def _m(text):
    """A MATLAB string literal."""
    return "'" + str(text).replace("'", "''") + "'"


def _read_results(path):
    from lightcnn.protocols.report import read_results_json
    return read_results_json(path)


# ----------------------------------------------------------------------------------------------------------------
# CLI

def build_parser():
    parser = argparse.ArgumentParser(prog="python -m benchmarks.demo",
                                     description="Generate (or take) faces, train LightCNN-9 on the CPU, extract "
                                                 "features, verify pairs of unseen identities.",
                                     formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    data = parser.add_argument_group("Data (default: the built-in synthetic faces)")
    data.add_argument("--data", help="your aligned faces, <root>/<identity>/<image> (needs --pairs)")
    data.add_argument("--pairs", help="pairs.txt (LFW View 1/2) or pair.label over images under --data; "
                                      "its identities are held out from training")
    data.add_argument("--min-images", type=int, default=2, help="training identities need this many images")
    data.add_argument("--val-fraction", type=float, default=0.125, help="share of each identity's images for "
                                                                         "validation")
    synth = parser.add_argument_group("Synthetic faces")
    defaults = synthetic_faces.Options()
    synth.add_argument("--train-identities", type=int, default=defaults.train_identities)
    synth.add_argument("--verify-identities", type=int, default=defaults.verify_identities)
    synth.add_argument("--images-per-identity", type=int, default=defaults.images_per_identity)
    synth.add_argument("--pairs-per-fold", type=int, default=defaults.pairs_per_fold)
    synth.add_argument("--difficulty", type=float, default=defaults.difficulty, help="scale of per-image variation")

    train = parser.add_argument_group("Training (see the module docstring for why these differ from the seed "
                                      "recipe)")
    train.add_argument("--epochs", type=int, default=8)
    train.add_argument("--batch-size", type=int, default=SMALL_DATA.batch_size)
    train.add_argument("--lr", type=float, default=SMALL_DATA.lr, help="Adam learning rate")
    train.add_argument("--lr-step-epochs", default="6", help="epochs where the rate drops 10x")
    train.add_argument("--dropout", type=float, default=0.0)
    train.add_argument("--mean", type=float, default=SMALL_DATA.mean,
                       help="pixel mean subtracted before scaling by 1/255")
    train.add_argument("--xavier-factor-type", default=SMALL_DATA.xavier_factor_type, choices=init.FACTOR_TYPES)
    train.add_argument("--xavier-magnitude", type=float, default=init.MAGNITUDE)
    train.add_argument("--disp-batches", type=int, default=20)
    train.add_argument("--seed", type=int, default=0, help="seed of the faces, the split and the training")
    train.add_argument("--dtype", default=precision.fastest_cpu_dtype(), choices=("float32", "bfloat16"),
                       help="arithmetic of training and extraction: bfloat16 where this CPU has it (faster; "
                            "float32 gives the table measured before bfloat16)")

    run = parser.add_argument_group("Run")
    run.add_argument("--out", default="demo_output", help="output folder (its previous demo results are replaced)")
    run.add_argument("--no-octave", action="store_true", help="skip lfw_eval.m even if octave-cli is installed")
    run.add_argument("--quiet", action="store_true", help="do not echo the steps' output (it is still logged)")
    return parser


def _demo(argv):
    parser = build_parser()
    args = parser.parse_args(argv)
    if bool(args.data) != bool(args.pairs):
        parser.error("--data and --pairs go together")
    if args.epochs < 1 or args.batch_size < 1:
        parser.error("--epochs and --batch-size must be positive")
    run_demo(args)
    return 0


def main(argv=None):
    """``make demo``; returns the exit status (1: a step failed, 2: bad input)."""
    return cli.run(_demo, argv, failures=(PipelineError,))


if __name__ == "__main__":
    raise SystemExit(main())
