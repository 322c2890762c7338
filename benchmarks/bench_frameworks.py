"""One configuration of the side-by-side benchmark, timed in a process of its own: this project's LightCNN in MXNet
or the authors' in PyTorch, in float32, bfloat16 or int8, inference or training. ``bench_model --compare`` runs
this module once per configuration and mode, interleaved, and reads the JSON line it prints.

A process per configuration, because AMP's ``amp.init`` rewrites MXNet for the whole process, and because the peak
resident memory of a process (``ru_maxrss``) is then that configuration's alone: the framework, the network, its
graphs and buffers, its allocator's pools.

    python -m benchmarks.bench_frameworks --framework mxnet --dtype bfloat16 --mode train [--network lightcnn9]
    python -m benchmarks.bench_frameworks --framework mxnet --dtype int8 --mode infer --profile 10

``--profile N`` (MXNet) runs N steps under MXNet's profiler after the warm-up and prints its per-operator table
(total and mean milliseconds, calls): where the time of a configuration goes.

Inference is the 256-d feature (the embedding network: what extraction runs); training is forward + softmax loss +
backward + Adam step of the whole classifier network, as in ``bench_model``.

``--check-images DIR`` (real face crops, ``<DIR>/<Name>/<image>``): a low-precision inference configuration is
calibrated on the first of those crops (int8) and its features compared with the same network's float32 features
on them: the worst per-image relative L2 error and cosine, and whether they are within :data:`ACCURACY_BOUNDS`.
A rate is worth nothing if the features are wrong.
"""
import argparse
import json
import os
import resource
import sys
import time

FRAMEWORKS = ("mxnet", "pytorch")
# *-sumrelu: MXNet only, the network built from quantize.sum_relu_form (every MFM as b + relu(a - b)); float32
# extraction runs that form
DTYPES = ("float32", "bfloat16", "int8", "float32-sumrelu", "bfloat16-sumrelu", "int8-sumrelu")
MODES = ("infer", "train")
NUM_CLASSES = 1000
CALIB_IMAGES = 64
CHECK_IMAGES = 64
# (worst relative L2, worst cosine) per image against float32 features, the bounds of tests/test_low_precision_extract
ACCURACY_BOUNDS = {"bfloat16": (0.02, 0.999), "int8": (0.035, 0.999)}


def peak_rss_mb():
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux: KiB


def timed(step, seconds, warmup=3, min_iters=3):
    """Iterations per second of ``step`` (which waits for its own result), after ``warmup`` calls."""
    for _ in range(warmup):
        step()
    iters, start = 0, time.perf_counter()
    while iters < min_iters or time.perf_counter() - start < seconds:
        step()
        iters += 1
    return iters / (time.perf_counter() - start)


# ----------------------------------------------------------------------------------------------------------------
# MXNet: this project's network

def mxnet_step(network, dtype, mode, batch_size, crops=None):
    """The timed step, and (inference with ``crops``) the float32 and this configuration's features of the crops."""
    import mxnet as mx

    from lightcnn import init, precision, quantize
    from lightcnn.model import get_model
    if mode == "train" and dtype == "bfloat16":
        precision.init_amp("bfloat16")  # before the network is built, as the training loop does
    net = get_model(network, NUM_CLASSES)
    net.initialize(init.xavier())
    net.hybridize(static_alloc=True, static_shape=True)
    data = mx.nd.random.uniform(-1, 1, shape=(batch_size,) + net.input_shape)
    if mode == "train":
        from benchmarks.bench_model import training_step
        return training_step(net, data, mx.nd.array([i % NUM_CLASSES for i in range(batch_size)])), None
    embedding = net.embedding
    embedding(data)
    real = None if crops is None else mx.nd.array(crops)
    reference = None if real is None else embedding(real).asnumpy()
    if dtype in ("float32-sumrelu", "bfloat16-sumrelu"):  # int8's sum-relu form is quantize's own (below)
        embedding = quantize.sum_relu_form(embedding)
        embedding(data)
    if dtype.startswith("bfloat16"):
        embedding = precision.convert_for_inference(embedding, "bfloat16", mx.cpu())
    elif dtype.startswith("int8"):
        calib = mx.nd.random.uniform(-1, 1, shape=(CALIB_IMAGES,) + net.input_shape) if real is None else real
        embedding = quantize.quantize(embedding, calib, mfm_form="sum-relu" if dtype.endswith("-sumrelu") else "max")
    features = None if real is None else (reference, embedding(real).astype("float32").asnumpy())
    return (lambda: embedding(data).wait_to_read()), features


# ----------------------------------------------------------------------------------------------------------------
# PyTorch: the authors' network, with the CPU settings that matter (channels_last, all threads)

def pytorch_step(network, dtype, mode, batch_size, threads, crops=None):
    """The timed step, and (inference with ``crops``) the float32 and this configuration's features of the crops."""
    import contextlib

    from benchmarks import authors_pytorch as authors
    torch = authors.torch
    torch.set_num_threads(threads)
    torch.manual_seed(0)
    model = _pool_first(authors.AUTHORS_NETWORKS[network](NUM_CLASSES), torch)
    data = torch.rand(batch_size, 1, 128, 128).mul_(2).sub_(1).contiguous(memory_format=torch.channels_last)
    model = model.to(memory_format=torch.channels_last)
    autocast = (lambda: torch.autocast("cpu", dtype=torch.bfloat16)) if dtype == "bfloat16" else \
        contextlib.nullcontext
    if mode == "infer":
        features = _features_of(model, torch).eval()
        real = None if crops is None else torch.from_numpy(crops).contiguous(memory_format=torch.channels_last)
        with torch.inference_mode():
            reference = None if real is None else features(real).float().numpy()
        if dtype == "int8":
            features = _fx_int8(features, torch, data.shape, real)

        def infer():
            with torch.inference_mode(), autocast():
                return features(data)
        if real is None:
            return infer, None
        with torch.inference_mode(), autocast():
            return infer, (reference, features(real).float().numpy())
    model.train()
    label = torch.arange(batch_size) % NUM_CLASSES
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-5)
    loss_fn = torch.nn.CrossEntropyLoss()

    def train():
        optimizer.zero_grad(set_to_none=True)
        with autocast():
            logits, _ = model(data)
            loss = loss_fn(logits.float(), label)
        loss.backward()
        optimizer.step()
    return train, None


def _pool_first(model, torch):
    """LightCNN-9 with each 2x2 max pool moved before the MFM it follows, as this project's network runs it (the
    same function, since max commutes with max; half the MFM work): the comparison is of the same computation."""
    if not isinstance(getattr(model, "features", None), torch.nn.Sequential):
        return model
    from benchmarks import authors_pytorch as authors

    class PoolFirstMFM(torch.nn.Module):
        def __init__(self, mfm, pool):
            super().__init__()
            self.filter, self.pool = mfm.filter, pool

        def forward(self, x):
            first, second = torch.chunk(self.pool(self.filter(x)), 2, dim=1)
            return torch.maximum(first, second)

    layers, modules = [], list(model.features)
    for i, module in enumerate(modules):
        if isinstance(module, torch.nn.MaxPool2d):
            continue
        pooled = i + 1 < len(modules) and isinstance(modules[i + 1], torch.nn.MaxPool2d)
        if pooled and isinstance(module, authors.MFM):
            layers.append(PoolFirstMFM(module, modules[i + 1]))
        elif pooled and isinstance(module, authors.Group):
            layers += [module.conv_a, PoolFirstMFM(module.conv, modules[i + 1])]
        else:
            layers.append(module)
    model.features = torch.nn.Sequential(*layers)
    return model


def _features_of(model, torch):
    """The authors' network up to the 256-d feature (what extraction computes)."""
    class Features(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.model = model

        def forward(self, x):
            trunk = self.model.features(x) if hasattr(self.model, "features") else self.model.trunk(x)
            head = self.model.fc1 if hasattr(self.model, "fc1") else self.model.fc
            return head(torch.flatten(trunk, 1))
    return Features()


def _fx_int8(module, torch, shape, calib=None):
    """PyTorch's FX static quantization with the x86 backend, calibrated on ``calib`` (random images if None)."""
    import warnings

    from torch.ao.quantization import get_default_qconfig_mapping
    from torch.ao.quantization.quantize_fx import convert_fx, prepare_fx
    torch.backends.quantized.engine = "x86"
    example = torch.rand(*shape).contiguous(memory_format=torch.channels_last)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        prepared = prepare_fx(module, get_default_qconfig_mapping("x86"), example_inputs=(example,))
        if calib is None:
            calib = torch.rand(CALIB_IMAGES, *shape[1:]).mul_(2).sub_(1).contiguous(memory_format=torch.channels_last)
        with torch.inference_mode():
            prepared(calib)
        return convert_fx(prepared)


# ----------------------------------------------------------------------------------------------------------------

def profile_mxnet(step, steps, warmup=3):
    """MXNet's aggregate per-operator profile of ``steps`` calls of ``step`` (after ``warmup``), as its table."""
    import tempfile

    import mxnet as mx
    for _ in range(warmup):
        step()
    mx.nd.waitall()
    with tempfile.TemporaryDirectory() as folder:
        mx.profiler.set_config(profile_all=True, aggregate_stats=True, continuous_dump=False,
                               filename=os.path.join(folder, "profile.json"))
        mx.profiler.set_state("run")
        for _ in range(steps):
            step()
        mx.nd.waitall()
        mx.profiler.set_state("stop")
        return mx.profiler.dumps(reset=True, format="table", sort_by="total", ascending=False)


def load_crops(root, count=CHECK_IMAGES):
    """The network inputs (float32, (N, 1, 128, 128)) of the first ``count`` crops under ``root``, two per person, made
    as extraction makes them (the centre crop, mean 127.5: LightCNN-9 as make lfw trains it)."""
    import numpy as np

    from lightcnn.faces import is_image_file
    from lightcnn.images import Preprocess, load_eval_image
    preprocess, paths = Preprocess(mean=127.5), []
    for name in sorted(os.listdir(root)):
        folder = os.path.join(root, name)
        if os.path.isdir(folder):
            paths += [os.path.join(folder, f) for f in sorted(os.listdir(folder)) if is_image_file(f)][:2]
        if len(paths) >= count:
            break
    if not paths:
        raise ValueError(f"no face crops found under {root}")
    return np.stack([load_eval_image(path, preprocess) for path in paths[:count]]).astype(np.float32)


def accuracy(dtype, features):
    """The worst per-image relative L2 error and cosine of ``features`` = (float32, low precision), and whether they
    are within the bounds of ``dtype``'s kind."""
    import numpy as np
    reference, low = features
    error = np.linalg.norm(low - reference, axis=1) / np.linalg.norm(reference, axis=1)
    cosine = (low * reference).sum(1) / np.linalg.norm(low, axis=1) / np.linalg.norm(reference, axis=1)
    max_error, min_cosine = ACCURACY_BOUNDS[dtype.split("-")[0]]
    return {"images": len(reference), "rel_l2_max": float(error.max()), "cosine_min": float(cosine.min()),
            "within_bounds": bool(error.max() <= max_error and cosine.min() >= min_cosine)}


def measure(framework, dtype, mode, network="lightcnn9", batch_size=64, seconds=10.0, profile_steps=0,
            check_images=None):
    """Time one configuration in this process; returns the record ``bench_model --compare`` reads."""
    threads = int(os.environ.get("OMP_NUM_THREADS") or os.cpu_count() or 1)
    if mode == "train" and (dtype.startswith("int8") or dtype.endswith("-sumrelu")):
        raise ValueError(f"{dtype} is for inference only")
    if framework == "pytorch" and dtype.endswith("-sumrelu"):
        raise ValueError("int8-sumrelu is a form of this project's MXNet network")
    start_rss = peak_rss_mb()
    checked = mode == "infer" and not dtype.startswith("float32") and check_images
    crops = load_crops(check_images) if checked else None
    if framework == "mxnet":
        step, features = mxnet_step(network, dtype, mode, batch_size, crops)
    else:
        step, features = pytorch_step(network, dtype, mode, batch_size, threads, crops)
    if profile_steps:
        if framework != "mxnet":
            raise ValueError("--profile is MXNet's profiler")
        return {"profile": profile_mxnet(step, profile_steps), "steps": profile_steps, "batch_size": batch_size}
    rate = batch_size * timed(step, seconds)
    return {"framework": framework, "dtype": dtype, "mode": mode, "network": network, "batch_size": batch_size,
            "threads": threads, "images_per_s": rate, "peak_rss_mb": peak_rss_mb(),
            "rss_before_framework_mb": start_rss, "ld_preload": os.environ.get("LD_PRELOAD", ""),
            "accuracy": accuracy(dtype, features) if features else None}


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--framework", choices=FRAMEWORKS, required=True)
    parser.add_argument("--dtype", choices=DTYPES, required=True)
    parser.add_argument("--mode", choices=MODES, required=True)
    parser.add_argument("--network", default="lightcnn9")
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--check-images", metavar="DIR", help="real face crops: check low-precision features on them")
    parser.add_argument("--profile", type=int, default=0, metavar="N",
                        help="MXNet: profile N steps and print the per-operator table instead of timing")
    args = parser.parse_args(argv)
    if args.profile:  # one entry per operator: MXNet otherwise runs (and profiles) a graph's operators in bulk
        os.environ["MXNET_EXEC_BULK_EXEC_INFERENCE"] = os.environ["MXNET_EXEC_BULK_EXEC_TRAIN"] = "0"
    record = measure(args.framework, args.dtype, args.mode, args.network, args.batch_size, args.seconds,
                     args.profile, args.check_images)
    if args.profile:
        print(f"MXNet profile of {args.profile} {args.mode} steps, {args.dtype}, batch {args.batch_size}:")
        print(record["profile"])
        return 0
    print("RESULT " + json.dumps(record), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
