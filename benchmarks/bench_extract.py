"""Extraction benchmark: images/s of the extractor on real faces against the network's raw inference rate.

    python -m benchmarks.bench_extract [--network lightcnn9 lightcnn29] [--batch-size 64] [--num-images 512]
                                     [--data ../shared/data/lfw_gray144] [--gpus 0] [--json bench_extract.json]

For each network a randomly initialised checkpoint is saved and loaded the way extract_features.py loads it
(speed does not depend on the weights). In the same run, alternately ``--repeats`` times:

- raw inference: ``net.features`` on a resident random batch, ``num_images / batch`` times (no decoding, no copy);
- extraction: :func:`lightcnn.extract.extract_features` over ``num_images`` real LFW JPEG files (decode, resize,
  centre crop, normalise, copy in, forward, copy out), the decoding overlapped with the forward pass.

The best of the repeats is compared, and the median of the per-run ratios is shown too (the machine may be
shared; the order alternates, and every run is printed and saved). Decoding alone, one thread, is reported for
scale. The target is extraction within 10% of raw inference.
"""
import argparse
import logging
import os
import random
import tempfile
import time

import mxnet as mx

from lightcnn import checkpoint, extract, init
from lightcnn.devices import contexts_from_gpus
from lightcnn.embedding import load_checkpoint_embedding
from lightcnn.images import Preprocess, load_eval_image
from lightcnn.model import ModelSpec, model_names
from benchmarks.bench_model import write_json
from benchmarks.pipeline import SHARED_DATA

DEFAULT_DATA = os.path.join(SHARED_DATA, "lfw_gray144")


def sample_images(root, num_images, seed=0):
    """``num_images`` image files under ``root``, a fixed random sample (spread over identities)."""
    _, paths = extract.list_images(root)
    if len(paths) < num_images:
        raise ValueError(f"{root} holds {len(paths)} images, fewer than --num-images {num_images}")
    return sorted(random.Random(seed).sample(paths, num_images))


def random_checkpoint(network, folder, preprocess):
    """A randomly initialised checkpoint (speed does not depend on the weights)."""
    spec = ModelSpec(network, 1000)
    net = spec.build()
    net.initialize(init.xavier())
    net.hybridize()
    net(mx.nd.zeros((1,) + net.input_shape))
    prefix = os.path.join(folder, network)
    checkpoint.save(net, None, prefix, checkpoint.Sidecar(model=spec, preprocess=preprocess, epoch=1,
                                                          origin={"kind": "initialised"}))
    return prefix


def raw_rate(net, batch_size, num_batches, ctxs):
    """Images/s of ``net.features`` on resident data, the batch split over ``ctxs`` like the extractor does."""
    data = mx.nd.random.uniform(shape=(batch_size,) + tuple(net.input_shape), ctx=ctxs[0])
    parts = mx.gluon.utils.split_and_load(data, ctxs[:batch_size], even_split=False)
    start = time.perf_counter()
    for _ in range(num_batches):
        for output in [net.features(x) for x in parts]:
            output.wait_to_read()
    return batch_size * num_batches / (time.perf_counter() - start)


def extraction_rate(net, paths, preprocess, batch_size, ctxs):
    start = time.perf_counter()
    result = extract.extract_features(net, paths, preprocess, ctxs, batch_size, log_interval=None,
                                      log=logging.getLogger("bench_extract.quiet"))
    seconds = time.perf_counter() - start
    assert result.features.shape[0] == len(paths)
    return len(paths) / seconds


def decode_rate(paths, preprocess):
    """Images/s of the evaluation preprocessing alone, on one thread."""
    start = time.perf_counter()
    for path in paths:
        load_eval_image(path, preprocess)
    return len(paths) / (time.perf_counter() - start)


def benchmark(network, paths, batch_size=64, ctxs=None, repeats=2, folder=None):
    ctxs = ctxs or [mx.cpu()]
    preprocess = Preprocess()
    prefix = random_checkpoint(network, folder, preprocess)
    net, preprocess, _ = load_checkpoint_embedding(prefix, ctx=ctxs)
    num_batches = -(-len(paths) // batch_size)
    # warm-up: graph construction, memory planning, oneDNN kernel selection, page cache
    raw_rate(net, batch_size, 2, ctxs)
    extraction_rate(net, paths[:batch_size], preprocess, batch_size, ctxs)
    runs = []
    for repeat in range(repeats):
        # alternate which goes first, so a load change on a shared machine does not always favour one side
        order = ("raw", "extract") if repeat % 2 == 0 else ("extract", "raw")
        run = {}
        for kind in order:
            if kind == "raw":
                run["raw_images_per_s"] = raw_rate(net, batch_size, num_batches, ctxs)
            else:
                run["extract_images_per_s"] = extraction_rate(net, paths, preprocess, batch_size, ctxs)
        runs.append(run)
    raw = max(r["raw_images_per_s"] for r in runs)
    ext = max(r["extract_images_per_s"] for r in runs)
    ratios = sorted(r["extract_images_per_s"] / r["raw_images_per_s"] for r in runs)
    return {"network": network, "batch_size": batch_size, "num_images": len(paths),
            "contexts": [str(c) for c in ctxs], "omp_num_threads": int(os.environ.get("OMP_NUM_THREADS", "0")),
            "runs": runs, "raw_images_per_s": raw, "extract_images_per_s": ext,
            "extract_pct_of_raw": 100 * ext / raw, "median_pct_of_raw_per_run": 100 * ratios[len(ratios) // 2],
            "decode_only_images_per_s_1_thread": decode_rate(paths, preprocess)}


def print_table(results):
    print(f"{'network':<12}{'batch':>6}{'images':>8}{'raw img/s':>11}{'extract img/s':>15}{'% of raw':>10}"
          f"{'median %':>10}{'decode img/s (1 thread)':>25}   runs (raw/extract)")
    for r in results:
        runs = "  ".join(f"{x['raw_images_per_s']:.1f}/{x['extract_images_per_s']:.1f}" for x in r["runs"])
        print(f"{r['network']:<12}{r['batch_size']:>6}{r['num_images']:>8}{r['raw_images_per_s']:>11.1f}"
              f"{r['extract_images_per_s']:>15.1f}{r['extract_pct_of_raw']:>10.1f}"
              f"{r['median_pct_of_raw_per_run']:>10.1f}"
              f"{r['decode_only_images_per_s_1_thread']:>25.0f}   {runs}")


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--network", nargs="+", default=["lightcnn9", "lightcnn29"], choices=model_names())
    parser.add_argument("--batch-size", type=int, default=extract.DEFAULT_BATCH_SIZE)
    parser.add_argument("--num-images", type=int, default=512, help="real faces extracted per run")
    parser.add_argument("--repeats", type=int, default=3, help="alternating raw/extraction runs; the best counts")
    parser.add_argument("--data", default=DEFAULT_DATA, help="an LFW-style image folder")
    parser.add_argument("--gpus", default="", help="e.g. '0'; empty means CPU")
    parser.add_argument("--json", default="bench_extract.json", help="where to write the results")
    args = parser.parse_args(argv)
    ctxs = contexts_from_gpus(args.gpus)
    paths = sample_images(args.data, args.num_images)
    with tempfile.TemporaryDirectory(prefix="bench_extract-") as folder:
        results = [benchmark(name, paths, args.batch_size, ctxs, args.repeats, folder) for name in args.network]
    print_table(results)
    write_json(results, args.json)
    return results


if __name__ == "__main__":
    main()
