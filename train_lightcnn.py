#!/usr/bin/env python
"""Train a LightCNN on im2rec RecordIO (gray faces, 144x144 stored, random 128x128 crops).

    python train_lightcnn.py --data-train train.rec --data-val val.rec --gpus 0,1,2,3

Defaults are the original recipe (LightCNN-29, Xavier + 0.1 biases, Adam, lr 1e-4 with steps '0,100' = 1e-5 from
epoch 0 and 1e-6 from epoch 100, batch 64, 35 epochs). The same code runs on the CPU when --gpus is empty, on several
GPUs (one global batch split over them), and on several machines with a dist_* kvstore (see lightcnn/launch.py).
"""
import argparse
import os
import sys

import lightcnn  # noqa: F401  (sets the OpenMP thread count before mxnet loads)
from lightcnn import data as lc_data
from lightcnn import fit as lc_fit
from lightcnn.devices import contexts_from_gpus
from lightcnn.model import MFM_TYPES, model_names


def build_parser():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    net = parser.add_argument_group("Network")
    net.add_argument("--network", default="lightcnn29", choices=model_names(), help="the network to train")
    net.add_argument("--num-classes", type=int, default=None,
                     help="training identities; read from classes.txt / the labels when not given")
    net.add_argument("--mfm-type", default="2/1", choices=MFM_TYPES, help="Max-Feature-Map variant")
    net.add_argument("--dropout", type=float, default=None,
                     help="dropout before the classifier (default: the network's own, 0.5; 0.7 for lightcnn4)")
    net.add_argument("--xavier-factor-type", default="avg", choices=("avg", "in", "out"),
                     help="Xavier fan ('avg' = Glorot as in the TF port; Caffe's xavier is 'in')")
    net.add_argument("--xavier-magnitude", type=float, default=3.0, help="Xavier magnitude")

    data = parser.add_argument_group("Data")
    data.add_argument("--data-train", help="training .rec (with its .idx and classes.txt beside it)")
    data.add_argument("--data-val", help="validation .rec (optional)")
    data.add_argument("--data-nthreads", type=int, default=os.cpu_count() or 1, help="decoding threads")
    data.add_argument("--image-shape", default="1,128,128", help="network input C,H,W (gray 128x128 crops)")
    data.add_argument("--image-size", type=int, default=144, help="side of the stored square images")
    data.add_argument("--scale", type=float, default=1 / 255.0, help="pixel scale (after mean subtraction)")
    data.add_argument("--mean", type=float, default=0.0, help="pixel mean subtracted before scaling")
    data.add_argument("--no-mirror", action="store_true", help="turn off random horizontal mirroring")
    data.add_argument("--benchmark", type=int, default=0, help="1: train on synthetic data, to measure speed")
    data.add_argument("--benchmark-batches", type=int, default=20, help="batches per synthetic epoch")

    train = parser.add_argument_group("Training")
    train.add_argument("--gpus", default="", help="GPUs to train on, e.g. '0,1,2,3'; empty means the CPU")
    train.add_argument("--kv-store", default="device",
                       choices=("local", "device", "dist_sync", "dist_device_sync", "dist_async", "horovod"),
                       help="key-value store for several devices or machines")
    train.add_argument("--batch-size", type=int, default=64, help="global batch (all devices and workers)")
    train.add_argument("--num-epochs", type=int, default=35, help="epochs to train (in total, across resumes)")
    train.add_argument("--optimizer", default="adam", help="any MXNet optimizer")
    train.add_argument("--lr", type=float, default=1e-4, help="base learning rate")
    train.add_argument("--lr-factor", type=float, default=0.1, help="rate multiplier at each step")
    train.add_argument("--lr-step-epochs", default="0,100",
                       help="epochs where the rate is multiplied by --lr-factor (once epoch >= step)")
    train.add_argument("--lr-plateau-patience", type=int, default=0,
                       help="also drop the rate when validation loss has not improved for this many epochs (0: off)")
    train.add_argument("--wd", type=float, default=0.0, help="weight decay")
    train.add_argument("--mom", type=float, default=0.9, help="momentum (sgd/nag)")
    train.add_argument("--seed", type=int, default=0, help="seed for initialisation, shuffling, crops and dropout")

    ckpt = parser.add_argument_group("Checkpoints and logging")
    ckpt.add_argument("--model-prefix", default="output/lightcnn",
                      help="checkpoints go to PREFIX-symbol.json, PREFIX-NNNN.params/.states/.json")
    ckpt.add_argument("--load-epoch", type=int, default=None, help="resume from the checkpoint of this epoch")
    ckpt.add_argument("--keep-checkpoints", type=int, default=0,
                      help="keep only the newest N epochs' checkpoints (older ones are deleted once the new one is "
                           "saved); 0 keeps every epoch")
    ckpt.add_argument("--disp-batches", type=int, default=20, help="show speed and metrics every N batches")

    verify = parser.add_argument_group("Verification during training")
    verify.add_argument("--verify-pairs", help="an LFW pairs.txt (or pair.label) to verify after every epoch")
    verify.add_argument("--verify-root", help="the image folder the pairs refer to")
    return parser


def check_args(args):
    """Errors about the command line, before anything is loaded."""
    shape = tuple(int(v) for v in args.image_shape.split(","))
    if shape != (1, 128, 128):
        raise SystemExit(f"--image-shape {args.image_shape}: LightCNN takes gray 128x128 inputs (1,128,128)")
    if not args.benchmark and not args.data_train:
        raise SystemExit("--data-train is required (or --benchmark 1 for synthetic data)")
    if args.batch_size <= 0 or args.num_epochs <= 0:
        raise SystemExit("--batch-size and --num-epochs must be positive")
    if args.keep_checkpoints < 0:
        raise SystemExit(f"--keep-checkpoints {args.keep_checkpoints}: give a count of epochs, or 0 to keep all")
    if args.load_epoch is not None and args.load_epoch >= args.num_epochs:
        raise SystemExit(f"--load-epoch {args.load_epoch} leaves nothing to train with --num-epochs {args.num_epochs}")
    if bool(args.verify_pairs) != bool(args.verify_root):
        raise SystemExit("--verify-pairs and --verify-root go together")
    for path in (args.data_train, args.data_val, args.verify_pairs, args.verify_root):
        if path and not os.path.exists(path):
            raise SystemExit(f"not found: {path}")
    lc_fit.parse_steps(args.lr_step_epochs)
    try:
        contexts_from_gpus(args.gpus)  # a GPU that does not exist: a message, not a traceback
    except ValueError as error:
        raise SystemExit(str(error)) from None


def main(argv=None):
    args = build_parser().parse_args(argv)
    check_args(args)
    logger = lc_fit.setup_logging(f"{args.model_prefix}-train.log" if args.model_prefix else None)
    logger.info("arguments: %s", " ".join(f"{k}={v}" for k, v in sorted(vars(args).items())))
    preprocess = lc_data.Preprocess(image_size=args.image_size, crop_size=128, scale=args.scale, mean=args.mean)

    if args.benchmark:
        num_classes = args.num_classes or 1000

        def make_train_iter(epoch, batch_size, num_parts, part_index):
            return lc_data.SyntheticIter(batch_size, num_classes=num_classes, num_batches=args.benchmark_batches,
                                         seed=args.seed + epoch)
        val_iter, classes_path = None, None
    else:
        lc_data.check_record_file(args.data_train, preprocess)
        num_classes = lc_data.check_num_classes(args.num_classes, args.data_train)
        classes_path = lc_data.classes_file_of(args.data_train)

        def make_train_iter(epoch, batch_size, num_parts, part_index):
            # a new iterator per epoch, seeded by the epoch, so a resumed run sees the very same batches
            return lc_data.train_iter(args.data_train, batch_size, preprocess, seed=args.seed + epoch,
                                      num_parts=num_parts, part_index=part_index, nthreads=args.data_nthreads,
                                      mirror=not args.no_mirror)
        val_iter = None
        if args.data_val:
            lc_data.check_record_file(args.data_val, preprocess)
            lc_data.check_num_classes(num_classes, args.data_val)
            val_iter = lc_data.eval_iter(args.data_val, args.batch_size, preprocess, nthreads=args.data_nthreads)

    verify = None
    if args.verify_pairs:
        from lightcnn.extract import make_pair_verifier
        verify = make_pair_verifier(args.verify_pairs, args.verify_root, preprocess, logger=logger)

    sidecar = {"preprocess": preprocess.to_dict(), "classes": os.path.abspath(classes_path) if classes_path else None,
               "args": vars(args)}
    try:
        lc_fit.fit(args, make_train_iter, val_iter, num_classes, sidecar_extra=sidecar, verify=verify, logger=logger)
    except lc_fit.TrainingError as error:
        logger.error("%s", error)
        return 1
    except KeyboardInterrupt:
        logger.error("interrupted")
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
