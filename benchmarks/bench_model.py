"""Model benchmark: inference and training images/s, GFLOP per image, and % of the machine's practical peak; or,
with ``--compare``, this project against the authors' PyTorch network, side by side in one run.

    python -m benchmarks.bench_model --network lightcnn9 --batch-size 64 [--gpus 0] [--json bench.json]
    python -m benchmarks.bench_model --compare [--network lightcnn9] [--repeats 2] [--seconds 10]

The peak is measured in the same run, by the best of large float32 matrix products (MXNet's dot and its oneDNN
FullyConnected), so the percentages compare like with like on a noisy machine.

Both print the CPU (model, the flags that decide bfloat16 and the int8 recipe, and a ``DNNL_MAX_CPU_ISA`` cap) in
their header and JSON: a figure holds for a kind of CPU.

``--compare`` times MXNet (this project) and PyTorch (the authors' network, ``benchmarks.authors_pytorch``,
channels_last, pools moved before the MFM like ours) in float32, bfloat16 (MXNet AMP / PyTorch autocast; where the
CPU has it) and int8 (oneDNN quantization / PyTorch FX static quantization, x86 backend; inference), inference and
training, same batch and threads. Each configuration runs in a process of its own
(:mod:`benchmarks.bench_frameworks`), so its peak resident memory is its own; the configurations are interleaved
over ``--repeats`` rounds (the order reversed every other round) and the best rate of each is kept. PyTorch's
processes get tcmalloc (``LD_PRELOAD``) when the library is installed, as its CPU performance guide advises
(``apt-get install libtcmalloc-minimal4``); the table says whether they did. Every low-precision inference row is
checked on real face crops (``--check-images``, default the shared LFW crops; ``--check-images ''`` skips it): the
worst relative L2 and cosine of its features against float32 of the same network, ``FAIL`` where outside the
bounds (:data:`benchmarks.bench_frameworks.ACCURACY_BOUNDS`).
"""
import argparse
import os
import time

import mxnet as mx
from mxnet import autograd, gluon

from lightcnn import cpu, files, init
from lightcnn.devices import contexts_from_gpus
from lightcnn.model import get_model, model_names

from benchmarks.paths import SHARED_DATA


def forward_gflop(net, input_shape):
    """GFLOP of one image's forward pass: 2 x multiply-adds of every conv and dense layer (pools, MFM maxima and
    biases are left out, being under 1% of the total)."""
    flops = []

    def count(block, inputs, output):
        weight = block.weight.shape
        if isinstance(block, gluon.nn.Conv2D):
            flops.append(2 * output.size // output.shape[0] * weight[1] * weight[2] * weight[3])
        else:
            flops.append(2 * weight[0] * weight[1])

    handles = []
    for block in _leaves(net):
        if isinstance(block, (gluon.nn.Conv2D, gluon.nn.Dense)):
            handles.append(block.register_forward_hook(count))
    net.features(mx.nd.zeros((1,) + tuple(input_shape), ctx=mx.cpu()))
    for handle in handles:
        handle.detach()
    return sum(flops) / 1e9


def _leaves(block):
    children = list(block._children.values())
    if not children:
        yield block
    for child in children:
        yield from _leaves(child)


def _timed(step, seconds, min_iters=3):
    """Run ``step`` until ``seconds`` have passed (at least min_iters times); return iterations per second."""
    iters, start = 0, time.perf_counter()
    while iters < min_iters or time.perf_counter() - start < seconds:
        step()
        iters += 1
    mx.nd.waitall()
    return iters / (time.perf_counter() - start)


def matmul_peak_gflops(ctx, n=2048, seconds=3.0):
    """Practical float32 peak: the best of MXNet's dot and oneDNN's FullyConnected on n x n matrices."""
    a = mx.nd.random.uniform(shape=(n, n), ctx=ctx)
    b = mx.nd.random.uniform(shape=(n, n), ctx=ctx)
    candidates = {
        "dot": lambda: mx.nd.dot(a, b).wait_to_read(),
        "fully_connected": lambda: mx.nd.FullyConnected(a, b, num_hidden=n, no_bias=True).wait_to_read(),
    }
    best = {}
    for name, op in candidates.items():
        op()
        best[name] = 2 * n ** 3 * _timed(op, seconds) / 1e9
    return max(best.values()), best


def training_step(net, data, label):
    """One timed training step: forward, softmax loss, backward, an Adam step of the whole classifier network (it
    waits for its result)."""
    loss_fn = gluon.loss.SoftmaxCrossEntropyLoss()
    trainer = gluon.Trainer(net.collect_params(), "adam", {"learning_rate": 1e-5})

    def train():
        with autograd.record():
            logits, _ = net(data)
            loss = loss_fn(logits, label)
        loss.backward()
        trainer.step(data.shape[0])
        loss.wait_to_read()
    return train


def benchmark(network="lightcnn9", batch_size=64, ctx=None, seconds=10.0, num_classes=1000, warmup=3):
    ctx = ctx or mx.cpu()
    net = get_model(network, num_classes)
    net.initialize(init.xavier(), ctx=mx.cpu())
    gflop = forward_gflop(net, net.input_shape)
    net.collect_params().reset_ctx(ctx)
    net.hybridize(static_alloc=True, static_shape=True)
    data = mx.nd.random.uniform(shape=(batch_size,) + net.input_shape, ctx=ctx)
    label = mx.nd.array([i % num_classes for i in range(batch_size)], ctx=ctx)

    def infer():
        net(data)[1].wait_to_read()

    train = training_step(net, data, label)

    for _ in range(warmup):
        infer()
    infer_ips = batch_size * _timed(infer, seconds)
    for _ in range(warmup):
        train()
    train_ips = batch_size * _timed(train, seconds)
    peak, peaks = matmul_peak_gflops(ctx)
    return {
        "network": network, "batch_size": batch_size, "context": str(ctx), "cpu": cpu.summary(),
        "omp_num_threads": int(os.environ.get("OMP_NUM_THREADS", "0")),
        "gflop_per_image": gflop,
        "inference_images_per_s": infer_ips, "training_images_per_s": train_ips,
        "peak_gflops": peak, "peak_by_kernel": peaks,
        # training does about 3x the forward work (forward, gradient w.r.t. inputs, gradient w.r.t. weights)
        "inference_pct_of_peak": 100 * gflop * infer_ips / peak,
        "training_pct_of_peak": 100 * 3 * gflop * train_ips / peak,
    }


def print_table(results):
    print(f"CPU: {cpu.describe()}")
    print(f"{'network':<14}{'batch':>6}{'GFLOP/img':>11}{'infer img/s':>13}{'% peak':>8}"
          f"{'train img/s':>13}{'% peak':>8}{'peak GFLOP/s':>14}")
    for r in results:
        print(f"{r['network']:<14}{r['batch_size']:>6}{r['gflop_per_image']:>11.3f}"
              f"{r['inference_images_per_s']:>13.1f}{r['inference_pct_of_peak']:>8.1f}"
              f"{r['training_images_per_s']:>13.1f}{r['training_pct_of_peak']:>8.1f}{r['peak_gflops']:>14.1f}")


# ----------------------------------------------------------------------------------------------------------------
# --compare: MXNet and PyTorch side by side

DEFAULT_CHECK_IMAGES = os.path.join(SHARED_DATA, "lfw_gray144")
TCMALLOC = ("/usr/lib/x86_64-linux-gnu/libtcmalloc_minimal.so.4", "/usr/lib64/libtcmalloc_minimal.so.4",
            "/usr/lib/libtcmalloc_minimal.so.4")


def configurations(has_bf16):
    dtypes = ["float32"] + (["bfloat16"] if has_bf16 else []) + ["int8"]
    found = [(framework, dtype, mode) for mode in ("infer", "train") for dtype in dtypes
             for framework in ("mxnet", "pytorch") if not (dtype == "int8" and mode == "train")]
    # MXNet with every MFM rewritten as b + relu(a - b) (quantize.sum_relu_form): inference only
    extra = [("mxnet", f"{dtype}-sumrelu", "infer") for dtype in dtypes]
    cut = found.index(("pytorch", "int8", "infer")) + 1
    return found[:cut] + extra + found[cut:]


def run_configuration(framework, dtype, mode, network, batch_size, seconds, tcmalloc=None, check_images=None):
    """One configuration in a fresh process (benchmarks.bench_frameworks); returns its record."""
    import json
    import subprocess
    import sys
    env = dict(os.environ)
    if framework == "pytorch" and tcmalloc:
        env["LD_PRELOAD"] = tcmalloc
    command = [sys.executable, "-m", "benchmarks.bench_frameworks", "--framework", framework, "--dtype", dtype,
               "--mode", mode, "--network", network, "--batch-size", str(batch_size), "--seconds", str(seconds)]
    if check_images:
        command += ["--check-images", check_images]
    proc = subprocess.run(command, env=env, capture_output=True, text=True, timeout=1800)
    lines = [line for line in proc.stdout.splitlines() if line.startswith("RESULT ")]
    if proc.returncode != 0 or not lines:
        tail = (proc.stderr.strip().splitlines() or ["(no output)"])[-1]
        raise RuntimeError(f"{framework} {dtype} {mode} failed (exit {proc.returncode}): {tail}")
    return json.loads(lines[-1][len("RESULT "):])


def compare(network="lightcnn9", batch_size=64, seconds=10.0, repeats=2, has_bf16=None, tcmalloc=None, log=print,
            check_images=None):
    """Every configuration ``repeats`` times, interleaved; the best rate and the highest peak memory of each."""
    from lightcnn import precision
    has_bf16 = precision.cpu_has_bf16() if has_bf16 is None else has_bf16
    configs = configurations(has_bf16)
    runs = {config: [] for config in configs}
    for repeat in range(repeats):
        for config in configs if repeat % 2 == 0 else configs[::-1]:
            record = run_configuration(*config, network, batch_size, seconds, tcmalloc,
                                       check_images if repeat == 0 else None)
            runs[config].append(record)
            log(f"  round {repeat + 1}: {' '.join(config):<24} {record['images_per_s']:7.1f} img/s  peak "
                f"{record['peak_rss_mb']:6.0f} MB")
    results = []
    for records in runs.values():
        best = max(records, key=lambda r: r["images_per_s"])
        results.append(dict(best, runs=[r["images_per_s"] for r in records], cpu=cpu.summary(),
                            peak_rss_mb=max(r["peak_rss_mb"] for r in records),
                            accuracy=records[0].get("accuracy")))
    return results


def print_comparison(results, tcmalloc):
    by = {(r["framework"], r["dtype"], r["mode"]): r for r in results}
    print(f"\nCPU: {cpu.describe()}")
    print(f"{results[0]['network']}, batch {results[0]['batch_size']}, {results[0]['threads']} threads; "
          f"PyTorch with tcmalloc: {'yes' if tcmalloc else 'no'}; best of {len(results[0]['runs'])} interleaved runs; "
          f"features vs float32 on real crops: worst relative L2 / worst cosine, FAIL outside the bounds")
    print(f"{'mode':<7}{'dtype':<17}{'MXNet img/s':>12}{'PyTorch img/s':>15}{'MXNet/PyTorch':>15}"
          f"{'MXNet vs own fp32':>19}{'MXNet peak MB':>15}{'PyTorch peak MB':>17}{'MXNet features':>24}"
          f"{'PyTorch features':>24}")
    for mode in ("infer", "train"):
        for dtype in ("float32", "float32-sumrelu", "bfloat16", "bfloat16-sumrelu", "int8", "int8-sumrelu"):
            mx_r, pt_r = by.get(("mxnet", dtype, mode)), by.get(("pytorch", dtype, mode))
            pt_r = pt_r or by.get(("pytorch", dtype.split("-")[0], mode))  # int8-sumrelu against PyTorch int8
            if not mx_r or not pt_r:
                continue
            own = by[("mxnet", "float32", mode)]["images_per_s"]
            print(f"{mode:<7}{dtype:<17}{mx_r['images_per_s']:>12.1f}{pt_r['images_per_s']:>15.1f}"
                  f"{mx_r['images_per_s'] / pt_r['images_per_s']:>14.2f}x{mx_r['images_per_s'] / own:>18.2f}x"
                  f"{mx_r['peak_rss_mb']:>15.0f}{pt_r['peak_rss_mb']:>17.0f}"
                  f"{_accuracy_cell(mx_r):>24}{_accuracy_cell(pt_r):>24}")


def _accuracy_cell(record):
    check = record.get("accuracy")
    if not check:
        return "-"
    return f"{check['rel_l2_max']:.4f} / {check['cosine_min']:.5f}{'' if check['within_bounds'] else ' FAIL'}"


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--network", nargs="+", default=["lightcnn9"], choices=model_names())
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--gpus", default="", help="e.g. '0'; empty means CPU")
    parser.add_argument("--seconds", type=float, default=10.0, help="timed seconds per measurement")
    parser.add_argument("--json", default="bench_model.json", help="where to write the results")
    parser.add_argument("--compare", action="store_true",
                        help="MXNet (this project) against PyTorch (the authors' network) in float32, bfloat16 and "
                             "int8, each configuration in its own process (the authors' networks exist for "
                             "lightcnn9, lightcnn29, lightcnn29v2)")
    parser.add_argument("--repeats", type=int, default=2, help="--compare: interleaved rounds; the best counts")
    parser.add_argument("--check-images", default=DEFAULT_CHECK_IMAGES,
                        help="--compare: real face crops (<DIR>/<Name>/<image>) to check low-precision features on "
                             "(default: %(default)s; '' skips the check)")
    args = parser.parse_args(argv)
    if args.compare:
        tcmalloc = next((path for path in TCMALLOC if os.path.exists(path)), None)
        results = []
        for network in args.network:
            found = compare(network, args.batch_size, args.seconds, args.repeats, tcmalloc=tcmalloc,
                            check_images=args.check_images or None)
            print_comparison(found, tcmalloc)
            results += found
        write_json(results, args.json)
        return results
    ctx = contexts_from_gpus(args.gpus)[0]
    results = [benchmark(name, args.batch_size, ctx, args.seconds) for name in args.network]
    print_table(results)
    write_json(results, args.json)
    return results


def write_json(results, path):
    """The benchmarks' machine-readable output, beside the printed table."""
    files.write_json(path, results, indent=2)
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
