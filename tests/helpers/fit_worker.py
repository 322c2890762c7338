"""A training process for the tests: LightCNN-9 on a small fixed synthetic set, through lightcnn.training.fit.

    python fit_worker.py OUT_DIR EPOCHS [--load-epoch N] [--kv-store dist_sync] [--part I] [--nan-at-batch B]
        [--dtype bfloat16] [any other flag of train_lightcnn.py]
    horovodrun -np 2 -H localhost:2 --gloo python fit_worker.py OUT_DIR EPOCHS --kv-store horovod

Writes the final weights to OUT_DIR/final-rank<R>.params (every worker, for comparing them).
Each part of the data is different, so workers of a dist job see different shards.

For the reliability tests, --kill-at-publish K ends the process like kill -9 (os._exit, no cleanup) just before the
K-th file of this run is renamed into place, and --signal-at-publish K:SIGNAL sends itself that signal there.
"""
import os
import signal
import sys

import numpy as np

import mxnet as mx

from lightcnn import cli, files
from lightcnn.cli import train as train_cli
from lightcnn.training import TrainConfig, TrainingData, fit
from lightcnn.training.distributed import DistributedStore

NUM_CLASSES = 4


def shard(part_index, images=16, classes=NUM_CLASSES):
    rs = np.random.RandomState(100 + part_index)
    data = rs.uniform(size=(images, 1, 128, 128)).astype(np.float32)
    labels = (np.arange(images) % classes).astype(np.float32)
    data += labels[:, None, None, None] * 0.2  # learnable: brightness tells the class
    return data, labels


def shuffled_shard(part_index, epoch, images, classes):
    data, labels = shard(part_index, images, classes)
    order = np.random.RandomState(epoch).permutation(images)
    return data[order], labels[order]


def build_parser():
    """The training command's flags (their defaults this worker's small run), and the worker's own."""
    parser = train_cli.build_parser(TrainConfig(network="lightcnn9", benchmark=True, batch_size=8, lr=1e-3,
                                                lr_step_epochs=(1,), seed=7, disp_batches=1))
    parser.add_argument("out_dir")
    parser.add_argument("epochs", type=int)
    parser.add_argument("--part", type=int, default=None, help="read this shard instead of the kvstore rank's")
    parser.add_argument("--nan-at-batch", type=int, default=None, help="put NaN into the data of this batch")
    parser.add_argument("--nan-rank", type=int, default=None, help="only this worker's data gets the NaN")
    parser.add_argument("--cpus", type=int, default=1, help="train on this many CPU contexts")
    parser.add_argument("--desync-rank", type=int, default=None,
                        help="this worker nudges one weight after each epoch's training (a simulated divergence)")
    parser.add_argument("--images", type=int, default=16, help="images per shard")
    parser.add_argument("--classes", type=int, default=NUM_CLASSES)
    parser.add_argument("--seed-by-rank", action="store_true",
                        help="seed + Horovod rank: each worker initialises other weights (rank 0's must win)")
    parser.add_argument("--merge-parts", type=int, default=None,
                        help="one process reading parts 0..N-1, each batch made of every part's share in part "
                             "order: what N workers see in one step of the same global batch")
    parser.add_argument("--save-initial", action="store_true",
                        help="also write the weights before and after the initial broadcast: "
                             "own-init-rank<R>.params and initial-rank<R>.params")
    parser.add_argument("--kill-at-publish", type=int, default=None)
    parser.add_argument("--signal-at-publish", default=None, help="K:SIGNAL, e.g. 2:SIGINT")
    return parser


def main():
    opts = build_parser().parse_args()
    logger = cli.setup_logging(os.path.join(opts.out_dir, "worker.log"))

    def make_train_iter(epoch, batch_size, num_parts, part_index):
        if opts.merge_parts:
            parts = [shuffled_shard(part, epoch, opts.images, opts.classes) for part in range(opts.merge_parts)]
            share = batch_size // opts.merge_parts
            data, labels = (np.concatenate([part[k][start:start + share] for start in range(0, opts.images, share)
                                            for part in parts]) for k in (0, 1))
            return mx.io.NDArrayIter(data, labels, batch_size)
        data, labels = shuffled_shard(part_index if opts.part is None else opts.part, epoch, opts.images,
                                      opts.classes)
        if opts.nan_at_batch is not None and opts.nan_rank in (None, part_index):
            data[opts.nan_at_batch * batch_size] = np.nan
        return mx.io.NDArrayIter(data, labels, batch_size)

    if opts.save_initial:
        prepare = DistributedStore.prepare

        def save_around_broadcast(store, net):
            net.collect_params().save(os.path.join(opts.out_dir, f"own-init-rank{store.rank}.params"))
            prepare(store, net)
            net.collect_params().save(os.path.join(opts.out_dir, f"initial-rank{store.rank}.params"))

        DistributedStore.prepare = save_around_broadcast

    hooks = []
    if opts.desync_rank is not None:
        def nudge(state):  # before the built-in hooks compare the workers' weights
            if state.store.rank == opts.desync_rank:
                weight = max(state.net.collect_params().values(), key=lambda p: p.data().size)  # the fc weight
                weight.set_data(weight.data() * 1.0001)

        hooks.append(nudge)

    if opts.kill_at_publish is not None or opts.signal_at_publish is not None:
        publish, calls = files.publish, []
        at, name = (opts.signal_at_publish or f"{opts.kill_at_publish}:").split(":")

        def interrupted_publish(temp, path):
            calls.append(path)
            if len(calls) == int(at):
                logger.info("test: %s before publishing %s", name or "kill -9", os.path.basename(path))
                if not name:
                    os._exit(137)
                os.kill(os.getpid(), getattr(signal, name))
            return publish(temp, path)

        files.publish = interrupted_publish

    def body(_):
        seed = opts.seed + (int(os.environ.get("HOROVOD_RANK", "0")) if opts.seed_by_rank else 0)
        config = train_cli.config_from_args(opts, num_epochs=opts.epochs, seed=seed,
                                            model_prefix=os.path.join(opts.out_dir, "m"))
        result = fit(config, TrainingData(make_train_iter, opts.classes), logger=logger,
                     ctxs=[mx.cpu(i) for i in range(opts.cpus)], hooks=hooks)
        result.net.collect_params().save(os.path.join(opts.out_dir, f"final-rank{result.rank}.params"))

    return cli.run(body, [], failures=train_cli.FAILURES)


if __name__ == "__main__":
    sys.exit(main())
