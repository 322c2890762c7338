"""BLUFR on the shared LFW crops for two fair baselines: raw pixels and the untrained LightCNN-9.

    python benchmarks/blufr_benchmark.py [--data ../shared/data] [--out output/blufr] [--octave]

Steps (each output is kept in ``--out`` and reused by a later run):

1. ``images.txt``: BLUFR's ``image_list.txt`` as ``Name/Name_NNNN.jpg``, only the images present under
   ``DATA/lfw_gray144`` (the extractor's ``--image-list``).
2. ``pixels.mat``: raw pixels, the 128x128 centre crop (the network's own input) shrunk to ``--pixel-side`` by area
   averaging and flattened (cheap, and cosine of pixels is dominated by low frequencies anyway).
3. ``untrained.mat``: LightCNN-9 as ``train_lightcnn.py`` initialises it (epoch 0, seed 0, Caffe xavier, mean 127.5),
   through the project's extractor::

       python extract_features/extract_features.py --model-prefix OUT/untrained/lightcnn9 --epoch 0 \\
           --image-list OUT/images.txt --image-root DATA/lfw_gray144 --out OUT/untrained.mat

4. ``python -m lightcnn blufr --exclude-missing`` on each (and ``blufr_eval.m`` in Octave with ``--octave``), timed,
   with the peak resident memory from ``/usr/bin/time -v``; then a table of the figures.

Neither baseline saw LFW in training, so both are fair BLUFR figures (a model trained on LFW identities is not).
"""
import argparse
import json
import os
import platform
import re
import shutil
import subprocess
import sys
import time

PROJECT_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, PROJECT_ROOT)

from lightcnn.protocols import blufr  # noqa: E402

EXTRACT_SCRIPT = os.path.join(PROJECT_ROOT, "extract_features", "extract_features.py")
MATLAB_DIR = os.path.join(PROJECT_ROOT, "lfw_verification-matlab")
NETWORK = "lightcnn9"


def default_data():
    from benchmarks.paths import SHARED_DATA
    return SHARED_DATA


def write_image_list(config, root, path):
    """The config's images that exist under ``root``, as ``Name/Name_NNNN.jpg``; returns (present, absent)."""
    keys = [blufr.image_key(name) for name in config.names]
    present = [k for k in keys if os.path.isfile(os.path.join(root, *k.split("/")))]
    with open(path, "w") as f:
        f.write("".join(k + "\n" for k in present))
    return present, len(keys) - len(present)


def make_pixels(root, keys, path, side):
    from lightcnn.images import Preprocess
    from benchmarks.pipeline import write_pixel_features
    write_pixel_features(root, keys, path, Preprocess(), side=side)


def make_untrained(out, image_list, root, path):
    from lightcnn.images import Preprocess
    from benchmarks.demo import save_untrained_checkpoint
    prefix = os.path.join(out, "untrained", NETWORK)
    if not os.path.isfile(prefix + "-0000.params"):
        os.makedirs(os.path.dirname(prefix), exist_ok=True)
        save_untrained_checkpoint(prefix, 10, None, Preprocess(mean=127.5), 0, "in", 3.0, 0.0)
    command = [sys.executable, EXTRACT_SCRIPT, "--model-prefix", prefix, "--epoch", "0", "--image-list",
               image_list, "--image-root", root, "--out", path]
    print("$ " + " ".join(command), flush=True)
    subprocess.run(command, check=True)


def timed(command, cwd=None):
    """Run ``command`` under /usr/bin/time -v: {"wall_s", "cpu_s" (user + system), "peak_mb", "load"} and its
    stdout. The load average before the run is kept: other jobs on the machine stretch the wall time, not the CPU
    time."""
    load = os.getloadavg()[0]
    started = time.time()
    done = subprocess.run(["/usr/bin/time", "-v"] + command, cwd=cwd, capture_output=True, text=True)
    seconds = time.time() - started
    if done.returncode != 0:
        raise SystemExit(f"failed: {' '.join(command)}\n{done.stdout}\n{done.stderr}")

    def field(name):
        m = re.search(name + r": ([\d.]+)", done.stderr)
        return float(m.group(1)) if m else float("nan")

    return {"wall_s": seconds, "cpu_s": field(r"User time \(seconds\)") + field(r"System time \(seconds\)"),
            "peak_mb": field(r"Maximum resident set size \(kbytes\)") / 1024, "load": load}, done.stdout


def cpu_name():
    with open("/proc/cpuinfo") as f:
        text = f.read()
    name = re.search(r"model name\s*:\s*(.*)", text)
    flags = sorted(set(re.findall(r"\b(avx2|avx512f|avx512_vnni|avx512_bf16|amx_bf16)\b", text)))
    return f"{name.group(1) if name else platform.processor()} ({' '.join(flags)}), {os.cpu_count()} cores"


def evaluate(name, mat, config, out, octave):
    """Python (and Octave) on one features file; returns a row of the table."""
    py_dir = os.path.join(out, "eval", name, "python")
    row = {"name": name}
    row["python"], printed = timed([sys.executable, "-m", "lightcnn", "blufr", "--features", mat, "--out-dir", py_dir,
                                    "--config", config, "--exclude-missing"], cwd=PROJECT_ROOT)
    print(printed)
    with open(os.path.join(py_dir, blufr.RESULTS_JSON)) as f:
        row["results"] = results = json.load(f)
    if octave:
        oct_dir = os.path.join(out, "eval", name, "octave")
        call = "addpath('%s'); blufr_eval('%s', '%s', '%s', 'exclude_missing', true);" % (MATLAB_DIR, mat, config,
                                                                                           oct_dir)
        row["octave"], _ = timed([octave, "--no-gui", "--no-init-file", "--no-history", "--eval", call])
        with open(os.path.join(oct_dir, blufr.RESULTS_JSON)) as f:
            theirs = json.load(f)
        row["octave_max_diff"] = max(abs(results[k][s] - theirs[k][s]) for k in blufr.HEADLINES
                                     for s in ("mean", "std", "mean_minus_std"))
    return row


def format_rows(rows):
    lines = ["%-22s %26s %26s" % ("features", "VR@FAR=0.1% mean+-std (m-s)", "DIR@1,FAR=1% mean+-std (m-s)")]
    for r in rows:
        vr, di = r["results"]["vr_at_far_0.001"], r["results"]["dir_at_rank1_far_0.01"]
        lines.append("%-22s %9.2f%% +- %5.2f (%5.2f) %9.2f%% +- %5.2f (%5.2f)"
                     % (r["name"], 100 * vr["mean"], 100 * vr["std"], 100 * vr["mean_minus_std"], 100 * di["mean"],
                        100 * di["std"], 100 * di["mean_minus_std"]))
    for r in rows:
        for language in ("python", "octave"):
            if language in r:
                m = r[language]
                lines.append("%s, %s: %.1f s wall, %.1f s CPU, peak %.0f MB resident (load average before: %.1f)"
                             % (r["name"], language, m["wall_s"], m["cpu_s"], m["peak_mb"], m["load"]))
        if "octave_max_diff" in r:
            lines.append("%s: largest Python - Octave difference of the headline figures: %.2g"
                         % (r["name"], r["octave_max_diff"]))
    return "\n".join(lines)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", default=default_data(), help="the shared data folder (env LIGHTCNN_DATA)")
    parser.add_argument("--out", default=os.path.join(PROJECT_ROOT, "output", "blufr"),
                        help="features, lists and results (kept and reused; output/ is git-ignored)")
    parser.add_argument("--pixel-side", type=int, default=16, help="raw pixels: side of the shrunk centre crop")
    parser.add_argument("--octave", action="store_true", help="also time blufr_eval.m in octave-cli")
    parser.add_argument("--features-only", action="store_true", help="make the features files and stop")
    args = parser.parse_args(argv)
    root = os.path.join(args.data, "lfw_gray144")
    config = os.path.join(args.data, "lfw", "blufr", "blufr_lfw_config.mat")
    os.makedirs(args.out, exist_ok=True)
    cfg = blufr.load_config(config)
    image_list = os.path.join(args.out, "images.txt")
    keys, absent = write_image_list(cfg, root, image_list)
    print(f"{len(keys)} of {len(cfg.names)} BLUFR images under {root} ({absent} absent) -> {image_list}")
    mats = {"raw pixels %dx%d" % (args.pixel_side, args.pixel_side): os.path.join(args.out, "pixels.mat"),
            "LightCNN-9 untrained": os.path.join(args.out, "untrained.mat")}
    pixels_mat, untrained_mat = mats.values()
    if not os.path.isfile(pixels_mat):
        make_pixels(root, keys, pixels_mat, args.pixel_side)
    if not os.path.isfile(untrained_mat):
        make_untrained(args.out, image_list, root, untrained_mat)
    if args.features_only:
        return 0
    octave = shutil.which("octave-cli") if args.octave else None
    rows = [evaluate(name, mat, config, args.out, octave) for name, mat in mats.items()]
    print("CPU: " + cpu_name())
    print(format_rows(rows))
    with open(os.path.join(args.out, "blufr_benchmark.json"), "w") as f:
        json.dump({"cpu": cpu_name(), "rows": [{k: v for k, v in r.items() if k != "results"} for r in rows]}, f,
                  indent=1)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
