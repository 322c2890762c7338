"""A training process for the tests: LightCNN-9 on a small fixed synthetic set, through lightcnn.training.fit.

    python fit_worker.py OUT_DIR EPOCHS [--load-epoch N] [--kv-store dist_sync] [--part I] [--nan-at-batch B]
        [--dtype bfloat16]

Writes the final weights to OUT_DIR/final-rank<R>.params (every worker, for comparing them).
Each part of the data is different, so workers of a dist job see different shards.
"""
import argparse
import os
import sys

import numpy as np

import mxnet as mx

from lightcnn import cli
from lightcnn.training import TrainConfig, TrainingData, fit
from lightcnn.training.distributed import DistributedStore

NUM_CLASSES = 4
IMAGES = 16


def shard(part_index):
    rs = np.random.RandomState(100 + part_index)
    data = rs.uniform(size=(IMAGES, 1, 128, 128)).astype(np.float32)
    labels = (np.arange(IMAGES) % NUM_CLASSES).astype(np.float32)
    data += labels[:, None, None, None] * 0.2  # learnable: brightness tells the class
    return data, labels


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("out_dir")
    parser.add_argument("epochs", type=int)
    parser.add_argument("--load-epoch", type=int)
    parser.add_argument("--kv-store", default="device")
    parser.add_argument("--part", type=int, default=None, help="read this shard instead of the kvstore rank's")
    parser.add_argument("--nan-at-batch", type=int, default=None, help="put NaN into the data of this batch")
    parser.add_argument("--nan-rank", type=int, default=None, help="only this worker's data gets the NaN")
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--keep-checkpoints", type=int, default=0)
    parser.add_argument("--dtype", default="float32")
    parser.add_argument("--cpus", type=int, default=1, help="train on this many CPU contexts")
    parser.add_argument("--desync-rank", type=int, default=None,
                        help="this worker nudges one weight after each epoch's training (a simulated divergence)")
    opts = parser.parse_args()
    config = TrainConfig(network="lightcnn9", benchmark=True, batch_size=opts.batch_size, num_epochs=opts.epochs,
                         lr=1e-3, lr_step_epochs=(1,), seed=7, kv_store=opts.kv_store,
                         model_prefix=os.path.join(opts.out_dir, "m"), disp_batches=1,
                         keep_checkpoints=opts.keep_checkpoints, load_epoch=opts.load_epoch,
                         dtype=opts.dtype)
    logger = cli.setup_logging(os.path.join(opts.out_dir, "worker.log"))

    def make_train_iter(epoch, batch_size, num_parts, part_index):
        data, labels = shard(part_index if opts.part is None else opts.part)
        order = np.random.RandomState(epoch).permutation(IMAGES)
        data = data[order]
        if opts.nan_at_batch is not None and opts.nan_rank in (None, part_index):
            data[opts.nan_at_batch * batch_size] = np.nan
        return mx.io.NDArrayIter(data, labels[order], batch_size)

    if opts.desync_rank is not None:
        check_in_sync = DistributedStore.check_in_sync

        def nudge_then_check(store, net, epoch):
            if store.rank == opts.desync_rank:
                weight = max(net.collect_params().values(), key=lambda p: p.data().size)  # the fc weight
                weight.set_data(weight.data() * 1.0001)
            return check_in_sync(store, net, epoch)

        DistributedStore.check_in_sync = nudge_then_check

    def body(_):
        result = fit(config, TrainingData(make_train_iter, NUM_CLASSES), logger=logger,
                     ctxs=[mx.cpu(i) for i in range(opts.cpus)])
        result.net.collect_params().save(os.path.join(opts.out_dir, f"final-rank{result.rank}.params"))

    from lightcnn.training import TrainingError
    from lightcnn.training.distributed import DistributedError
    return cli.run(body, [], failures=(TrainingError, DistributedError))


if __name__ == "__main__":
    sys.exit(main())
