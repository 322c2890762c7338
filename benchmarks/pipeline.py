"""What the demo and the LFW benchmark share: the project's own commands run as logged, timed steps; the split of a
face tree into training identities and the identities the verification pairs use; the raw-pixel baseline; and the
output folder a run may rewrite.
"""
import dataclasses
import math
import os
import shlex
import shutil
import subprocess
import sys
import time

import numpy as np

from lightcnn import cli, files
from lightcnn.cli.train import command_flags
from lightcnn.feature_files import save_features_mat
from lightcnn.images import load_eval_image
from lightcnn.training.recipes import SMALL_DATA

from benchmarks.paths import PROJECT_ROOT, SHARED_DATA  # noqa: F401 (SHARED_DATA: the benchmarks' default)

TRAIN_SCRIPT = os.path.join(PROJECT_ROOT, "train_lightcnn.py")
EXTRACT_SCRIPT = os.path.join(PROJECT_ROOT, "extract_features", "extract_features.py")
MATLAB_DIR = os.path.join(PROJECT_ROOT, "lfw_verification-matlab")
NETWORK = "lightcnn9"
ESTIMATE = "Estimate: "  # the line the training loop logs after its first batches
MARKER = ".lightcnn-run"  # an output folder one of these tools made, so it may clear its own sub-folders
OLD_MARKERS = (".lightcnn-demo",)  # what earlier releases' demo left


class PipelineError(RuntimeError):
    """A step failed or the inputs cannot work; the message says which and where its log is."""


class Steps:
    """Runs the steps as subprocesses, echoes their output, keeps their logs and times each step."""

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
                # the training's estimate of its own time is shown even when quiet: it is what a user waits on
                if echo and (not self.quiet or ESTIMATE in line):
                    sys.stdout.write("   " + line)
                    sys.stdout.flush()
            code = proc.wait()
        if code != 0:
            with open(log_path, encoding="utf-8", errors="replace") as f:
                tail = "".join(f.readlines()[-15:])
            raise PipelineError(f"step '{name}' failed (exit status {code}); its log is {log_path}:\n{tail}")
        return log_path


def tool_main(build_parser, run, argv=None):
    """A tool's command line: ``run(parsed arguments)``; a failed step exits 1, bad input 2 (``lightcnn.cli``)."""
    def body(args):
        run(build_parser().parse_args(args))
        return 0
    return cli.run(body, argv, failures=(PipelineError,))


def claim_output(out, run_folders):
    """Use ``out`` only if it is new, empty or made by one of these tools; then clear the sub-folders a run
    rewrites."""
    marker = os.path.join(out, MARKER)
    ours = any(os.path.exists(os.path.join(out, name)) for name in (MARKER,) + OLD_MARKERS)
    if os.path.isdir(out) and os.listdir(out) and not ours:
        raise PipelineError(f"--out {out} exists and was not made by this tool; choose a new or empty folder")
    os.makedirs(out, exist_ok=True)
    files.write_text(marker, "made by a lightcnn tool (demo, lfw_benchmark); its sub-folders are rewritten by the "
                             "next run\n")
    for name in run_folders:
        shutil.rmtree(os.path.join(out, name), ignore_errors=True)


def train_command(data_dir, prefix, has_val, **settings):
    """``train_lightcnn.py --recipe small-data`` training LightCNN-9 on ``data_dir``'s RecordIO and keeping the last
    epoch's checkpoint only; ``settings`` are the TrainConfig fields that differ from the recipe (``num_epochs=8``,
    ``lr_step_epochs=(6,)``, ``freeze_trunk=True``; None keeps the recipe's value)."""
    config = dataclasses.replace(
        SMALL_DATA, network=NETWORK, data_train=os.path.join(data_dir, "train.rec"),
        data_val=os.path.join(data_dir, "val.rec") if has_val else None, model_prefix=prefix,
        keep_checkpoints=1,  # the last epoch is the one evaluated; every LightCNN-9 epoch's checkpoint adds up
        **{name: value for name, value in settings.items() if value is not None})
    return [sys.executable, TRAIN_SCRIPT] + command_flags(config, "small-data")


def pack_identities(steps, root, out, names, val_fraction, seed):
    """Pack the identities ``names`` under ``root`` into ``OUT/data`` with ``python -m lightcnn prepare`` (the list
    goes to ``OUT/data/train_identities.txt``), as one timed step. Returns ``(data_dir, identity_list, summary)``."""
    started = steps.begin("prepare", "pack the training identities into RecordIO (lightcnn.prepare)")
    data_dir = os.path.join(out, "data")
    identity_list = os.path.join(data_dir, "train_identities.txt")
    files.write_lines(identity_list, names)
    steps.run("prepare", [sys.executable, "-m", "lightcnn", "prepare", "--root", root, "--out", data_dir,
                          "--identity-list", identity_list, "--val-fraction", str(val_fraction), "--seed", str(seed),
                          "--force"])
    summary = files.read_json(os.path.join(data_dir, "summary.json"))
    steps.end("prepare", started)
    return data_dir, identity_list, summary


def pct(x, digits=2):
    return "nan" if x is None or not math.isfinite(x) else f"{100 * x:.{digits}f}%"


# ----------------------------------------------------------------------------------------------------------------
# Which identities train, which images are verified

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
    from lightcnn.faces import scan_root
    found, _, _, _ = scan_root(root)
    held_out = set(held_out)
    names, too_small = [], 0
    for name in sorted(found):
        if name in held_out:
            continue
        if len(found[name]) >= min_images:
            names.append(name)
        else:
            too_small += 1
    return names, too_small


def write_pixel_features(root, keys, path, preprocess, side=None):
    """The raw-pixel baseline: each image's network input (centre crop, same scaling), flattened, to a ``.mat``
    with the extractor's keys (``data``, ``label``, and ``missing`` for images that cannot be read).

    ``side`` shrinks the crop first (area averaging) to keep the file small for thousands of images; cosine
    similarity of pixels hardly depends on it (it is dominated by low frequencies). Returns ``(found, missing)``.
    """
    import cv2
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
    save_features_mat(path, data, found, missing)
    return len(found), missing
