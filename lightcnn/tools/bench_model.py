"""Model benchmark: inference and training images/s, GFLOP per image, and % of the machine's practical peak.

    python -m lightcnn.tools.bench_model --network lightcnn9 --batch-size 64 [--gpus 0] [--json bench.json]

The peak is measured in the same run, by the best of large float32 matrix products (MXNet's dot and its oneDNN
FullyConnected), so the percentages compare like with like on a noisy machine.
"""
import argparse
import os
import time

import mxnet as mx
from mxnet import autograd, gluon

from lightcnn import files, init
from lightcnn.devices import contexts_from_gpus
from lightcnn.model import get_model, model_names


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

    loss_fn = gluon.loss.SoftmaxCrossEntropyLoss()
    trainer = gluon.Trainer(net.collect_params(), "adam", {"learning_rate": 1e-5})

    def train():
        with autograd.record():
            logits, _ = net(data)
            loss = loss_fn(logits, label)
        loss.backward()
        trainer.step(batch_size)
        loss.wait_to_read()

    for _ in range(warmup):
        infer()
    infer_ips = batch_size * _timed(infer, seconds)
    for _ in range(warmup):
        train()
    train_ips = batch_size * _timed(train, seconds)
    peak, peaks = matmul_peak_gflops(ctx)
    return {
        "network": network, "batch_size": batch_size, "context": str(ctx),
        "omp_num_threads": int(os.environ.get("OMP_NUM_THREADS", "0")),
        "gflop_per_image": gflop,
        "inference_images_per_s": infer_ips, "training_images_per_s": train_ips,
        "peak_gflops": peak, "peak_by_kernel": peaks,
        # training does about 3x the forward work (forward, gradient w.r.t. inputs, gradient w.r.t. weights)
        "inference_pct_of_peak": 100 * gflop * infer_ips / peak,
        "training_pct_of_peak": 100 * 3 * gflop * train_ips / peak,
    }


def print_table(results):
    print(f"{'network':<14}{'batch':>6}{'GFLOP/img':>11}{'infer img/s':>13}{'% peak':>8}"
          f"{'train img/s':>13}{'% peak':>8}{'peak GFLOP/s':>14}")
    for r in results:
        print(f"{r['network']:<14}{r['batch_size']:>6}{r['gflop_per_image']:>11.3f}"
              f"{r['inference_images_per_s']:>13.1f}{r['inference_pct_of_peak']:>8.1f}"
              f"{r['training_images_per_s']:>13.1f}{r['training_pct_of_peak']:>8.1f}{r['peak_gflops']:>14.1f}")


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--network", nargs="+", default=["lightcnn9"], choices=model_names())
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--gpus", default="", help="e.g. '0'; empty means CPU")
    parser.add_argument("--seconds", type=float, default=10.0, help="timed seconds per measurement")
    parser.add_argument("--json", default="bench_model.json", help="where to write the results")
    args = parser.parse_args(argv)
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
