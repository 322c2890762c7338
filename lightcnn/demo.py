"""The whole LightCNN pipeline in a few minutes on a CPU: ``make demo``.

    python -m lightcnn.demo [--out demo_output] [--epochs 8] [--batch-size 16] [--lr 3e-4]
    python -m lightcnn.demo --data FACES --pairs pairs.txt [--out DIR] ...

Steps, each with the project's own tool (the exact command is printed and its output saved under ``OUT/logs``):

1. data       ``lightcnn.synthetic_faces`` (built-in data), or the user's ``--data`` root and ``--pairs`` file;
2. prepare    ``python -m lightcnn.prepare``: the training identities (every identity that no pair uses, with
              at least ``--min-images`` images) packed into gray 144x144 RecordIO;
3. untrained  a checkpoint (epoch 0) of LightCNN-9 initialised exactly as ``train_lightcnn.py`` initialises it
              (same seed, same Xavier variant): the baseline is the trained network's own starting point;
4. train      ``train_lightcnn.py --network lightcnn9`` for ``--epochs`` epochs on the CPU;
5. extract    ``extract_features/extract_features.py`` on the images the pairs use, once per checkpoint;
6. evaluate   ``python -m lightcnn.verification`` (10-fold accuracy, AUC, EER, ROC PNG) on raw pixels, the
              untrained and the trained features;
7. octave     ``lfw_eval.m`` in GNU Octave on the same files, when ``octave-cli`` is installed; its figures
              are checked against Python's.

It ends with a table (raw pixels / untrained / trained: 10-fold accuracy, AUC, EER, TPR@FAR=1%), the time of
every step and where every output is; ``OUT/demo_summary.json`` holds the same.

Why the demo's training recipe differs from the seed's (Adam 1e-5, batch 64, dropout 0.5, Glorot "avg" Xavier,
[0, 1] inputs, 35 epochs on millions of faces), all measured on the built-in data with LightCNN-9:

- The seed recipe (even at Adam 3e-4) leaves the loss at the class prior, ln(100) = 4.6, for 8 epochs: at
  initialisation Glorot's weights make the 256-d features of different images almost identical (their spread
  across images is ~1% of their mean; the 0.1 biases dominate nine layers deep). Caffe's "xavier"
  (``--xavier-factor-type in``, the filler of the original Caffe LightCNN) keeps ~20%.
- With that, centred inputs (``--mean 127.5``) and no dropout, the loss leaves the prior within ~100 updates;
  with dropout 0.5 and [0, 1] inputs it had not after 120.
- Batch 16: on a 2-core CPU it trains as many images per second as batch 64 (22/s both, here) and makes four
  times the updates: 84% 10-fold accuracy after 8 epochs, against 74% after 10 epochs of batch 64.
- Adam 3e-4 is the rate REFERENCE.md found to work on a few thousand real faces; 1e-3 diverged (loss 11), 5e-4
  and 6e-4 were no faster. The rate drops 10x for the last two epochs.

Every one of these is a flag of ``train_lightcnn.py`` (the demo prints the command); nothing is patched.
"""
from __future__ import annotations

import argparse
import json
import math
import os
import shlex
import shutil
import subprocess
import sys
import time

import numpy as np

import lightcnn  # noqa: F401  (sets OMP_NUM_THREADS for this process and, inherited, for every step)
from lightcnn import lfw
from lightcnn import synthetic_faces

PROJECT_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TRAIN_SCRIPT = os.path.join(PROJECT_ROOT, "train_lightcnn.py")
EXTRACT_SCRIPT = os.path.join(PROJECT_ROOT, "extract_features", "extract_features.py")
MATLAB_DIR = os.path.join(PROJECT_ROOT, "lfw_verification-matlab")
NETWORK = "lightcnn9"
MARKER = ".lightcnn-demo"  # an output folder the demo made, so it may clear its own sub-folders
SUMMARY = "demo_summary.json"
# the sub-folders a run rewrites; the generated faces are kept (regenerated only when their options change)
RUN_FOLDERS = ("data", "untrained", "model", "features", "eval", "logs")


class DemoError(RuntimeError):
    """A step failed or the inputs cannot work; the message says which and where its log is."""


# ----------------------------------------------------------------------------------------------------------------
# Running the steps

class Steps:
    """Runs the steps as subprocesses (or functions), echoes their output, keeps logs and times each step."""

    def __init__(self, out, quiet=False):
        self.logs = os.path.join(out, "logs")
        self.quiet = quiet
        self.times = {}
        os.makedirs(self.logs, exist_ok=True)

    def say(self, text=""):
        print(text, flush=True)

    def begin(self, name, what):
        self.say(f"\n== {name}: {what}")
        return time.time()

    def end(self, name, started):
        self.times[name] = self.times.get(name, 0.0) + time.time() - started

    def run(self, name, command, log_name=None, echo=True):
        """Run ``command``; its output goes to ``logs/<log_name>.log`` and, when ``echo``, to our stdout."""
        log_path = os.path.join(self.logs, (log_name or name) + ".log")
        self.say("$ " + shlex.join(str(c) for c in command))
        with open(log_path, "w", encoding="utf-8") as log:
            proc = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                                    bufsize=1, cwd=PROJECT_ROOT)
            for line in proc.stdout:
                log.write(line)
                if echo and not self.quiet:
                    sys.stdout.write("   " + line)
                    sys.stdout.flush()
            code = proc.wait()
        if code != 0:
            tail = _tail(log_path, 15)
            raise DemoError(f"step '{name}' failed (exit status {code}); its log is {log_path}:\n{tail}")
        return log_path


def _tail(path, n):
    with open(path, encoding="utf-8", errors="replace") as f:
        return "".join(f.readlines()[-n:])


# ----------------------------------------------------------------------------------------------------------------
# Data: which identities train, which images are verified

def pair_identities(pairs):
    """Identity folders the pairs use (the first component of every key)."""
    return sorted({key.split("/")[0] for p in pairs for key in (p.key1, p.key2)})


def pair_images(pairs):
    """Every image key the pairs use, sorted."""
    return sorted({key for p in pairs for key in (p.key1, p.key2)})


def training_identities(root, held_out, min_images):
    """Identity folders under ``root`` that no pair uses and that hold at least ``min_images`` image files.

    Returns ``(names, too_small)``: the names (sorted) and the number of other identities left out for having
    fewer images.
    """
    from lightcnn.prepare import scan_root
    files, _, _, _ = scan_root(root)
    held_out = set(held_out)
    names, too_small = [], 0
    for name in sorted(files):
        if name in held_out:
            continue
        if len(files[name]) >= min_images:
            names.append(name)
        else:
            too_small += 1
    return names, too_small


def write_lines(path, lines):
    with open(path, "w", encoding="utf-8", newline="\n") as f:
        f.writelines(line + "\n" for line in lines)


def write_pixel_features(root, keys, path, preprocess, side=None):
    """The raw-pixel baseline: each image's network input (centre crop, same scaling), flattened, to a ``.mat``
    with the extractor's keys (``data``, ``label``, and ``missing`` for images that cannot be read).

    ``side`` shrinks the crop first (area averaging) to keep the file small for thousands of images; cosine
    similarity of pixels hardly depends on it (it is dominated by low frequencies).
    """
    import cv2
    import scipy.io
    from lightcnn.data import load_eval_image
    rows, found, missing = [], [], []
    for key in keys:
        try:
            x = load_eval_image(os.path.join(root, *key.split("/")), preprocess)[0]  # (crop, crop)
        except (OSError, ValueError):
            missing.append(key)
            continue
        if side and side != x.shape[0]:
            x = cv2.resize(x, (side, side), interpolation=cv2.INTER_AREA)
        rows.append(x.ravel())
        found.append(key)
    data = np.vstack(rows) if rows else np.zeros((0, (side or preprocess.crop_size) ** 2), np.float32)
    content = {"data": data.astype(np.float32), "label": _cell(found)}
    if missing:
        content["missing"] = _cell(missing)
    scipy.io.savemat(path, content)
    return len(found), missing


def _cell(strings):
    cell = np.empty((len(strings), 1), dtype=object)
    for i, s in enumerate(strings):
        cell[i, 0] = s
    return cell


# ----------------------------------------------------------------------------------------------------------------
# The untrained baseline

def save_untrained_checkpoint(prefix, num_classes, classes_path, preprocess, seed, xavier_factor_type,
                              xavier_magnitude, dropout):
    """Epoch 0 of LightCNN-9: the weights ``train_lightcnn.py`` starts from with the same options.

    ``lightcnn.fit`` seeds MXNet with ``seed``, initialises (deferred: the shapes are known only at the first
    batch), then seeds ``(seed, epoch 0)`` before that first batch, which is when the weights are drawn. The
    same order here gives the same weights. The sidecar has what the extractor reads (network, num_classes,
    model_options, input_shape, preprocess).
    """
    import mxnet as mx
    from lightcnn import checkpoint
    from lightcnn.fit import seed_everything
    from lightcnn.init import LightCNNInit
    from lightcnn.model import get_model

    model_options = {"mfm_type": "2/1", "dropout": dropout}
    net = get_model(NETWORK, num_classes, **model_options)
    mx.random.seed(seed)
    net.initialize(LightCNNInit(factor_type=xavier_factor_type, magnitude=xavier_magnitude), ctx=[mx.cpu()])
    net.hybridize(static_alloc=True, static_shape=True)
    seed_everything(seed, 0)
    net(mx.nd.zeros((1,) + preprocess.data_shape))
    sidecar = {"network": NETWORK, "num_classes": num_classes, "model_options": model_options,
               "input_shape": list(net.input_shape), "preprocess": preprocess.to_dict(),
               "classes": os.path.abspath(classes_path) if classes_path else None,
               "untrained": True, "seed": seed,
               "init": {"xavier_factor_type": xavier_factor_type, "xavier_magnitude": xavier_magnitude}}
    checkpoint.save_checkpoint(net, None, prefix, 0, sidecar)


# ----------------------------------------------------------------------------------------------------------------
# The table

MODELS = (("pixels", "raw pixels (cosine)"), ("untrained", "LightCNN-9 untrained"), ("trained", "LightCNN-9 trained"))


def _pct(x, digits=2):
    return "nan" if x is None or not math.isfinite(x) else f"{100 * x:.{digits}f}%"


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
        accuracy = f"{_pct(r['accuracy_mean'])} +- {100 * r['accuracy_std']:.2f}"
        lines.append("%-34s %18s %8.4f %8s %12s" % (label, accuracy, r["auc"], _pct(r["eer"]),
                                                    _pct(r["tpr_at_far_1pct"])))
    return "\n".join(lines)


def _octave_agrees(python, octave, tol=1e-6):
    keys = ("accuracy_mean", "accuracy_std", "best_accuracy", "auc", "eer")
    return all(abs(python[k] - octave[k]) <= tol for k in keys)


# ----------------------------------------------------------------------------------------------------------------
# The pipeline

def run_demo(args):
    out = os.path.abspath(args.out)
    _claim_output(out)
    steps = Steps(out, quiet=args.quiet)
    started_all = time.time()
    paths = {}
    python = sys.executable

    # 1. data
    if args.data:
        root, pairs_path = os.path.abspath(args.data), os.path.abspath(args.pairs)
        t = steps.begin("data", f"your faces under {root}, pairs {pairs_path}")
        if not os.path.isdir(root):
            raise DemoError(f"--data {root}: not a folder")
    else:
        root = os.path.join(out, "faces")
        options = synthetic_faces.Options(train_identities=args.train_identities,
                                          verify_identities=args.verify_identities,
                                          images_per_identity=args.images_per_identity,
                                          pairs_per_fold=args.pairs_per_fold, seed=args.seed,
                                          difficulty=args.difficulty)
        t = steps.begin("data", "synthetic faces (lightcnn.synthetic_faces)")
        manifest = synthetic_faces.generate(root, options, force=True, log=steps.say)
        steps.say(f"{manifest['num_images']} images of {len(manifest['train_identities'])} training + "
                  f"{len(manifest['verify_identities'])} verification identities under {root}")
        pairs_path = os.path.join(root, synthetic_faces.PAIRS_FILE)
    pairs, pair_format = lfw.read_pairs_with_format(pairs_path)
    held_out = pair_identities(pairs)
    keys = pair_images(pairs)
    train_names, too_small = training_identities(root, held_out, args.min_images)
    data_dir = os.path.join(out, "data")
    os.makedirs(data_dir, exist_ok=True)
    identity_list = os.path.join(data_dir, "train_identities.txt")
    image_list = os.path.join(out, "verify_images.txt")
    write_lines(identity_list, train_names)
    write_lines(image_list, keys)
    n_missing_images = sum(not os.path.isfile(os.path.join(root, *k.split("/"))) for k in keys)
    steps.say(f"pairs: {len(pairs)} ({pair_format}, {max(p.fold for p in pairs) + 1} folds) over {len(keys)} images "
              f"of {len(held_out)} identities, held out from training"
              + (f"; {n_missing_images} of those images are missing (their pairs are excluded and listed)"
                 if n_missing_images else ""))
    steps.say(f"training identities: {len(train_names)} (every other identity with >= {args.min_images} images"
              + (f"; {too_small} with fewer left out)" if too_small else ")"))
    if len(train_names) < 2:
        raise DemoError(f"only {len(train_names)} identities under {root} are not used by the pairs and have at "
                        f">= {args.min_images} images: training needs at least 2")
    if n_missing_images == len(keys):
        raise DemoError(f"none of the {len(keys)} images the pairs use exists under {root}")
    paths.update(faces=root, pairs=pairs_path, train_identities=identity_list, verify_images=image_list)
    steps.end("data", t)

    # 2. prepare
    t = steps.begin("prepare", "pack the training identities into RecordIO (lightcnn.prepare)")
    steps.run("prepare", [python, "-m", "lightcnn.prepare", "--root", root, "--out", data_dir,
                          "--identity-list", identity_list, "--val-fraction", str(args.val_fraction),
                          "--seed", str(args.seed), "--force"])
    with open(os.path.join(data_dir, "summary.json"), encoding="utf-8") as f:
        summary = json.load(f)
    n_train, n_val = summary["train"]["images"], summary["val"]["images"]
    num_classes = summary["num_classes"]
    paths["data"] = data_dir
    steps.end("prepare", t)

    # 3. untrained checkpoint, the trained network's own starting point
    from lightcnn.data import Preprocess
    preprocess = Preprocess(mean=args.mean)
    batch_size = min(args.batch_size, n_train)
    untrained_prefix = os.path.join(out, "untrained", NETWORK)
    t = steps.begin("untrained", "save LightCNN-9 as initialised, as epoch 0")
    save_untrained_checkpoint(untrained_prefix, num_classes, os.path.join(data_dir, "classes.txt"), preprocess,
                              args.seed, args.xavier_factor_type, args.xavier_magnitude, args.dropout)
    steps.say(f"wrote {untrained_prefix}-0000.params (+ .json sidecar, -symbol.json)")
    steps.end("untrained", t)

    # 4. train
    prefix = os.path.join(out, "model", NETWORK)
    os.makedirs(os.path.dirname(prefix), exist_ok=True)
    t = steps.begin("train", f"LightCNN-9, {args.epochs} epoch{'s' * (args.epochs != 1)} on {n_train} images of "
                             f"{num_classes} identities (batch {batch_size}, Adam lr {args.lr:g}), on the CPU")
    command = [python, TRAIN_SCRIPT, "--network", NETWORK, "--data-train", os.path.join(data_dir, "train.rec"),
               "--num-epochs", str(args.epochs), "--batch-size", str(batch_size),
               "--optimizer", "adam", "--lr", f"{args.lr:g}", "--lr-step-epochs", args.lr_step_epochs,
               "--dropout", f"{args.dropout:g}", "--mean", f"{args.mean:g}",
               "--xavier-factor-type", args.xavier_factor_type, "--xavier-magnitude", f"{args.xavier_magnitude:g}",
               "--seed", str(args.seed), "--model-prefix", prefix, "--disp-batches", str(args.disp_batches),
               "--keep-checkpoints", "1"]  # the last epoch is the one evaluated; 66 MB per epoch add up
    if n_val:
        command[6:6] = ["--data-val", os.path.join(data_dir, "val.rec")]
    steps.run("train", command)
    paths.update(checkpoints=f"{prefix}-{args.epochs:04d}.params/.states/.json (the last epoch's), {prefix}-symbol.json",
                 untrained=f"{untrained_prefix}-0000.params", training_log=f"{prefix}-train.log",
                 training_curve=f"{prefix}-curve.png", training_metrics=f"{prefix}-metrics.csv")
    steps.end("train", t)

    # 5. extract
    features_dir = os.path.join(out, "features")
    os.makedirs(features_dir, exist_ok=True)
    mats = {name: os.path.join(features_dir, f"{name}.mat") for name, _ in MODELS}
    t = steps.begin("extract", f"features of the {len(keys)} pair images: raw pixels, untrained, trained")
    n_found, missing = write_pixel_features(root, keys, mats["pixels"], preprocess)
    steps.say(f"wrote {mats['pixels']}: {n_found} x {preprocess.crop_size ** 2} raw pixels"
              + (f", {len(missing)} missing" if missing else ""))
    for name, model_prefix, epoch in (("untrained", untrained_prefix, 0), ("trained", prefix, args.epochs)):
        command = [python, EXTRACT_SCRIPT, "--model-prefix", model_prefix, "--epoch", str(epoch),
                   "--image-list", image_list, "--image-root", root, "--out", mats[name]]
        if n_missing_images:
            command.append("--skip-missing")
        steps.run("extract", command, log_name=f"extract_{name}")
    paths["features"] = ", ".join(mats.values())
    steps.end("extract", t)

    # 6. evaluate (Python)
    results = {}
    t = steps.begin("evaluate", "LFW protocol in Python (lightcnn.verification)")
    for name, _ in MODELS:
        eval_dir = os.path.join(out, "eval", name)
        command = [python, "-m", "lightcnn.verification", "--features", mats[name], "--pairs", pairs_path,
                   "--out-dir", eval_dir]
        if n_missing_images:
            command.append("--exclude-missing")
        steps.run("evaluate", command, log_name=f"verify_{name}", echo=name == "trained")
        results[name] = _read_results(os.path.join(eval_dir, "lfw_results.json"))
        paths[f"roc_{name}"] = os.path.join(eval_dir, "lfw_roc.png")
    steps.end("evaluate", t)

    # 7. evaluate (Octave)
    octave = shutil.which("octave-cli") if not args.no_octave else None
    octave_note = None
    if octave:
        t = steps.begin("octave", "the same files through lfw_eval.m in GNU Octave")
        agree = []
        try:
            for name, _ in MODELS:
                eval_dir = os.path.join(out, "eval", name, "octave")
                os.makedirs(eval_dir, exist_ok=True)
                call = "lfw_eval(%s, %s, %s%s);" % (_m(mats[name]), _m(pairs_path), _m(eval_dir),
                                                   ", 'exclude_missing', true" if n_missing_images else "")
                steps.run("octave", [octave, "--no-gui", "--no-init-file", "--eval",
                                     f"addpath({_m(MATLAB_DIR)}); {call}"], log_name=f"octave_{name}", echo=False)
                octave_results = _read_results(os.path.join(eval_dir, "lfw_results.json"))
                agree.append(_octave_agrees(results[name], octave_results))
            paths["octave_results"] = os.path.join(out, "eval", "<features>", "octave")
            octave_note = ("lfw_eval.m (Octave) gives the same accuracy, AUC and EER for all three (to 1e-6)"
                           if all(agree) else "WARNING: lfw_eval.m (Octave) and lightcnn.verification DISAGREE: "
                                              "compare eval/*/lfw_results.json with eval/*/octave/lfw_results.json")
        except DemoError as error:  # the Python figures stand; say loudly that the MATLAB twin failed
            octave_note = f"WARNING: lfw_eval.m failed in Octave, see above; {error}".split("\n")[0]
            steps.say(str(error))
        steps.end("octave", t)
    else:
        octave_note = ("octave-cli not found: lfw_eval.m was not run (install GNU Octave, e.g. "
                       "`apt-get install octave`, to check the MATLAB evaluator too)" if not args.no_octave
                       else "lfw_eval.m skipped (--no-octave)")
    total = time.time() - started_all

    # the report
    record = {"results": {k: {f: v for f, v in r.items() if not f.startswith("roc_")} for k, r in results.items()},
              "seconds": {k: round(v, 1) for k, v in steps.times.items()}, "total_seconds": round(total, 1),
              "epochs": args.epochs, "num_classes": num_classes, "train_images": n_train, "val_images": n_val,
              "pairs": len(pairs), "paths": paths, "octave": octave_note, "args": vars(args)}
    with open(os.path.join(out, SUMMARY), "w", encoding="utf-8") as f:
        json.dump(_finite(record), f, indent=1, default=str, allow_nan=False)
    report = format_report(record, results)
    steps.say("\n" + report)
    return record


def format_report(record, results):
    times = record["seconds"]
    p = record["paths"]
    trained = results["trained"]
    excluded = trained.get("n_excluded", 0)
    lines = [
        "=" * 100,
        "LightCNN demo: verification of %d pairs of identities never seen in training (%d folds)"
        % (trained["n_pairs"], trained["n_folds"]),
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


def _finite(value):
    """NaN and infinities as the strings lfw_results.json uses, so the summary is strict JSON."""
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_finite(v) for v in value]
    if isinstance(value, float) and not math.isfinite(value):
        return "NaN" if math.isnan(value) else ("Infinity" if value > 0 else "-Infinity")
    return value


def _m(text):
    """A MATLAB string literal."""
    return "'" + str(text).replace("'", "''") + "'"


def _read_results(path):
    from lightcnn.verification import read_results_json
    return read_results_json(path)


def _claim_output(out):
    """Use ``out`` only if it is new, empty or a previous demo's; then clear that run's sub-folders."""
    marker = os.path.join(out, MARKER)
    if os.path.isdir(out) and os.listdir(out) and not os.path.exists(marker):
        raise DemoError(f"--out {out} exists and was not made by the demo; choose a new or empty folder")
    os.makedirs(out, exist_ok=True)
    with open(marker, "w", encoding="utf-8") as f:
        f.write("made by python -m lightcnn.demo; its sub-folders are rewritten by the next run\n")
    for name in RUN_FOLDERS:
        shutil.rmtree(os.path.join(out, name), ignore_errors=True)


# ----------------------------------------------------------------------------------------------------------------
# CLI

def build_parser():
    parser = argparse.ArgumentParser(prog="python -m lightcnn.demo",
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
    train.add_argument("--batch-size", type=int, default=16)
    train.add_argument("--lr", type=float, default=3e-4, help="Adam learning rate")
    train.add_argument("--lr-step-epochs", default="6", help="epochs where the rate drops 10x")
    train.add_argument("--dropout", type=float, default=0.0)
    train.add_argument("--mean", type=float, default=127.5, help="pixel mean subtracted before scaling by 1/255")
    train.add_argument("--xavier-factor-type", default="in", choices=("avg", "in", "out"))
    train.add_argument("--xavier-magnitude", type=float, default=3.0)
    train.add_argument("--disp-batches", type=int, default=20)
    train.add_argument("--seed", type=int, default=0, help="seed of the faces, the split and the training")

    run = parser.add_argument_group("Run")
    run.add_argument("--out", default="demo_output", help="output folder (its previous demo results are replaced)")
    run.add_argument("--no-octave", action="store_true", help="skip lfw_eval.m even if octave-cli is installed")
    run.add_argument("--quiet", action="store_true", help="do not echo the steps' output (it is still logged)")
    return parser


def main(argv=None):
    parser = build_parser()
    args = parser.parse_args(argv)
    if bool(args.data) != bool(args.pairs):
        parser.error("--data and --pairs go together")
    if args.epochs < 1 or args.batch_size < 1:
        parser.error("--epochs and --batch-size must be positive")
    try:
        run_demo(args)
    except (DemoError, ValueError, FileExistsError, FileNotFoundError) as error:
        print(f"\nerror: {error}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
