"""A training process for the tests: LightCNN-9 on a small fixed synthetic set, through lightcnn.fit.

    python fit_worker.py OUT_DIR EPOCHS [--load-epoch N] [--kv-store dist_sync] [--parts P --part I]

Writes the final weights to OUT_DIR/final-rank<R>.params (every worker, for comparing them).
Each part of the data is different, so workers of a dist job see different shards.
"""
import argparse
import os
import sys

import numpy as np

import lightcnn  # noqa: F401
import mxnet as mx

from lightcnn import fit as lc_fit
import train_lightcnn

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
    parser.add_argument("--keep-checkpoints", default="0")
    parser.add_argument("--desync-rank", type=int, default=None,
                        help="this worker nudges one weight after each epoch's training (a simulated divergence)")
    opts = parser.parse_args()
    args = train_lightcnn.build_parser().parse_args([
        "--network", "lightcnn9", "--benchmark", "1", "--batch-size", str(opts.batch_size),
        "--num-epochs", str(opts.epochs), "--lr", "1e-3", "--lr-step-epochs", "1", "--seed", "7",
        "--kv-store", opts.kv_store, "--model-prefix", os.path.join(opts.out_dir, "m"), "--disp-batches", "1",
        "--keep-checkpoints", opts.keep_checkpoints]
        + (["--load-epoch", str(opts.load_epoch)] if opts.load_epoch else []))
    logger = lc_fit.setup_logging(os.path.join(opts.out_dir, "worker.log"))

    def make_train_iter(epoch, batch_size, num_parts, part_index):
        data, labels = shard(part_index if opts.part is None else opts.part)
        order = np.random.RandomState(epoch).permutation(IMAGES)
        data = data[order]
        if opts.nan_at_batch is not None and opts.nan_rank in (None, part_index):
            data[opts.nan_at_batch * batch_size] = np.nan
        return mx.io.NDArrayIter(data, labels[order], batch_size)

    if opts.desync_rank is not None:
        check_in_sync = lc_fit.DistributedStore.check_in_sync

        def nudge_then_check(store, net, epoch):
            if store.rank == opts.desync_rank:
                weight = max(net.collect_params().values(), key=lambda p: p.data().size)  # the fc weight
                weight.set_data(weight.data() * 1.0001)
            return check_in_sync(store, net, epoch)

        lc_fit.DistributedStore.check_in_sync = nudge_then_check

    result = lc_fit.fit(args, make_train_iter, None, NUM_CLASSES, logger=logger)
    result.net.collect_params().save(os.path.join(opts.out_dir, f"final-rank{result.rank}.params"))
    return 0


if __name__ == "__main__":
    sys.exit(main())
