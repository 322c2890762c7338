"""How fast the training input pipeline decodes and augments, in images/s.

    python -m benchmarks.bench_data --rec X.rec [--batch-size 64] [--seconds 10] [--json OUT.json]
    python -m benchmarks.bench_data [--root FACES]      # packs FACES (default ../shared/data/orl_faces) first

Reads ``train_iter`` batches (random crop + mirror, shuffled; a new iterator per pass, seeded by the pass, as the
training loop does) for ``--seconds`` in each of MXNet's two iterator variants, and prints the rates and a JSON
line (also written to ``--json``). Compare with the network's training speed (``python -m benchmarks.bench_model``): the
pipeline must never be the bottleneck.
"""
from __future__ import annotations

import argparse
import json
import os
import pathlib
import platform
import sys
import tempfile
import time

import numpy as np

import cv2
import mxnet as mx

from lightcnn import data
from lightcnn.images import Preprocess
from lightcnn.networks import STORED_SIZE
from lightcnn.prepare import prepare_dataset
from benchmarks.pipeline import SHARED_DATA

DEFAULT_ROOT = pathlib.Path(SHARED_DATA) / "orl_faces"


def measure(rec, batch_size, seconds, preprocess, nthreads, prefetch, seed=0):
    """Images/s of ``train_iter`` over ``seconds`` (after one warm-up batch), counting every decoded image."""
    epoch, images, batches = 0, 0, 0
    it = data.train_iter(rec, batch_size, preprocess, seed=seed, nthreads=nthreads, prefetch=prefetch)
    it.next().data[0].wait_to_read()  # warm-up: thread start, first reads
    start = time.perf_counter()
    while time.perf_counter() - start < seconds:
        try:
            batch = it.next()
        except StopIteration:
            epoch += 1
            it = data.train_iter(rec, batch_size, preprocess, seed=seed + epoch, nthreads=nthreads,
                                 prefetch=prefetch)
            continue
        batch.data[0].wait_to_read()
        images += batch.data[0].shape[0]
        batches += 1
    elapsed = time.perf_counter() - start
    return {"prefetch": prefetch, "images": images, "batches": batches, "passes": epoch,
            "seconds": round(elapsed, 3), "images_per_sec": round(images / elapsed, 1)}


def synthetic_faces(root, identities=20, per_identity=20, size=STORED_SIZE, seed=0):
    """Smooth random gray 'faces' (noise compresses unlike faces; blurred noise is closer) for a machine
    without the shared data."""
    rs = np.random.RandomState(seed)
    for k in range(identities):
        os.makedirs(os.path.join(root, f"id{k:03d}"), exist_ok=True)
        for i in range(per_identity):
            img = cv2.GaussianBlur(rs.randint(0, 256, (size, size)).astype(np.uint8), (0, 0), 3)
            cv2.imwrite(os.path.join(root, f"id{k:03d}", f"{i}.png"), img)


def enlarge(rec, out_rec, min_records):
    """Copy ``rec``'s records, repeated, until there are ``min_records``: a tiny set (ORL: 400) would otherwise
    time the start of a new iterator every few batches rather than decoding."""
    index = data.read_index(data.idx_path_of(rec))
    reader = mx.recordio.MXIndexedRecordIO(data.idx_path_of(rec), rec, "r")
    writer = mx.recordio.MXIndexedRecordIO(data.idx_path_of(out_rec), out_rec, "w")
    key = 0
    while key < min_records:
        for k, _ in index:
            writer.write_idx(key, reader.read_idx(k))
            key += 1
    reader.close()
    writer.close()
    return key


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m benchmarks.bench_data", description=__doc__.split("\n")[0])
    parser.add_argument("--rec", help="training .rec (with .idx); default: pack --root into a temporary folder")
    parser.add_argument("--root", help=f"faces to pack when --rec is not given (default {DEFAULT_ROOT}, or "
                                       f"synthetic images where it is absent)")
    parser.add_argument("--min-records", type=int, default=4000,
                        help="repeat the packed --root images up to this many records")
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--seconds", type=float, default=10.0, help="measuring time per variant")
    parser.add_argument("--nthreads", type=int, default=None, help="decoding threads (default: all cores)")
    parser.add_argument("--variant", choices=["prefetch", "on-demand", "both"], default="both",
                        help="MXNet's prefetching iterator (the default of train_iter), its on-demand 'CPU' one, "
                             "or both")
    parser.add_argument("--json", help="also write the result to this file")
    args = parser.parse_args(argv)

    preprocess = Preprocess()
    with tempfile.TemporaryDirectory(prefix="bench_data_") as tmp:
        rec, source = args.rec, args.rec
        if rec is None:
            root = args.root or (str(DEFAULT_ROOT) if DEFAULT_ROOT.is_dir() else None)
            if root is None:
                root = os.path.join(tmp, "faces")
                synthetic_faces(root)
                source = f"synthetic: 20 identities x 20 blurred-noise {STORED_SIZE}x{STORED_SIZE} images"
            else:
                source = root
            packed = os.path.join(tmp, "packed", "train.rec")
            prepare_dataset(root, os.path.dirname(packed), val_fraction=0.0, verbose=False)
            rec = os.path.join(tmp, "bench.rec")
            copies = enlarge(packed, rec, args.min_records) // data.check_record_file(packed)["num_records"]
            source += f" (packed, each record x{copies})"
        info = data.check_record_file(rec, preprocess)
        variants = {"prefetch": [True], "on-demand": [False], "both": [True, False]}[args.variant]
        runs = [measure(rec, args.batch_size, args.seconds, preprocess, args.nthreads, prefetch)
                for prefetch in variants]

    result = {
        "what": "train_iter decode + random crop + mirror, images/s",
        "data": source, "records": info["num_records"], "batch_size": args.batch_size,
        "nthreads": args.nthreads or os.cpu_count(), "cpu_count": os.cpu_count(),
        "omp_num_threads": os.environ.get("OMP_NUM_THREADS"), "mxnet": mx.__version__,
        "machine": platform.machine(), "runs": runs,
    }
    for run in runs:
        name = "prefetch (default)" if run["prefetch"] else "on-demand (prefetch=False)"
        print(f"train_iter {name}: {run['images_per_sec']:.0f} images/s "
              f"({run['images']} images in {run['seconds']:.1f} s, batch {args.batch_size}, "
              f"{result['records']} records)")
    print(json.dumps(result))
    if args.json:
        with open(args.json, "w") as f:
            json.dump(result, f, indent=1)
            f.write("\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
