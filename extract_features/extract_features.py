#!/usr/bin/env python
"""Extract LightCNN face features of a list of images into LFW_features.mat (what lfw_eval.m loads).

    cd extract_features
    python extract_features.py --model-prefix ../output/lightcnn --image-list lfw_patch_part.txt \\
        --image-root /data/lfw [--epoch N] [--out LFW_features.mat] [--batch-size 64] [--gpus 0] [--flip] \\
        [--skip-missing] [--npy]
    python extract_features.py --symbol X-symbol.json --params X-0001.params --image-size 144 --scale 0.00392157 \\
        --mean 0 --image-root /data/lfw

A training checkpoint (--model-prefix, last epoch unless --epoch) rebuilds the network and the preprocessing
from its sidecar alone. An exported graph (--symbol + --params) needs the preprocessing flags; its embedding is
output 1 of (logits, embedding). The .mat holds 'data' (N x 256 single, a row per image), 'label' (N x 1 cell of
Name/Name_NNNN.jpg) and, when images were skipped, 'missing'. Then, in this folder:
    octave-cli --eval "addpath('../lfw_verification-matlab'); lfw_eval('LFW_features.mat', 'pairs.txt')"
or  python -m lightcnn.verification --features LFW_features.mat --pairs pairs.txt
"""
import argparse
import logging
import os
import sys

try:
    import lightcnn  # noqa: F401  (the installed package; sets OMP_NUM_THREADS before mxnet loads)
except ImportError:  # run from a checkout without `pip install -e .`
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    import lightcnn  # noqa: F401

from lightcnn import extract
from lightcnn.data import Preprocess
from lightcnn.devices import contexts_from_gpus

DEFAULT_PREPROCESS = Preprocess()


def build_parser():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0].strip(),
                                     formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    model = parser.add_argument_group("Model (a checkpoint, or an exported symbol + params)")
    model.add_argument("--model-prefix", help="training checkpoint prefix (prefix-NNNN.params + prefix-NNNN.json)")
    model.add_argument("--epoch", type=int, default=None, help="checkpoint epoch (None: the last one saved)")
    model.add_argument("--symbol", help="an exported X-symbol.json (instead of --model-prefix)")
    model.add_argument("--params", help="its X-NNNN.params")

    prep = parser.add_argument_group("Preprocessing (only with --symbol/--params; a checkpoint records its own)")
    prep.add_argument("--image-size", type=int, default=DEFAULT_PREPROCESS.image_size,
                      help="side the images are resized to before the centre crop (the stored training size)")
    prep.add_argument("--crop-size", type=int, default=DEFAULT_PREPROCESS.crop_size, help="centre crop side")
    prep.add_argument("--scale", type=float, default=DEFAULT_PREPROCESS.scale, help="input = (pixel - mean) * scale")
    prep.add_argument("--mean", type=float, default=DEFAULT_PREPROCESS.mean, help="pixel mean (0..255 units)")

    images = parser.add_argument_group("Images")
    images.add_argument("--image-list", help="one image path per line (any leading prefix, e.g. lfw_patch_part.txt); "
                                             "None: every image under --image-root")
    images.add_argument("--image-root", required=True, help="folder the list's Name/Name_NNNN.jpg are under")
    images.add_argument("--skip-missing", action="store_true",
                        help="skip missing or unreadable images (listed, and stored as 'missing') instead of failing")

    out = parser.add_argument_group("Output")
    out.add_argument("--out", default=extract.DEFAULT_MAT, help="the .mat file (data, label, missing)")
    out.add_argument("--npy", action="store_true",
                     help="also write X.npy (features) and X_label.txt (one key per line) beside the .mat")

    run = parser.add_argument_group("Computation")
    run.add_argument("--batch-size", type=int, default=extract.DEFAULT_BATCH_SIZE, help="images per batch")
    run.add_argument("--gpus", default="", help="GPUs to split each batch over, e.g. '0,1'; empty: CPU")
    run.add_argument("--flip", action="store_true",
                     help="feature = feature(image) + feature(left-right mirror); doubles the compute")
    run.add_argument("--workers", type=int, default=None, help="decoding threads (None: the core count, at most 4)")
    run.add_argument("--log-interval", type=float, default=5.0, help="seconds between progress lines")
    return parser


def check_args(parser, args):
    if bool(args.model_prefix) == bool(args.symbol or args.params):
        parser.error("give either --model-prefix (a checkpoint) or --symbol and --params (an exported graph)")
    if args.symbol and not args.params or args.params and not args.symbol:
        parser.error("--symbol and --params go together")
    if args.model_prefix:
        if args.epoch is not None and args.epoch < 0:
            parser.error("--epoch must be non-negative")
        restated = [flag for flag, value, default in (
            ("--image-size", args.image_size, DEFAULT_PREPROCESS.image_size),
            ("--crop-size", args.crop_size, DEFAULT_PREPROCESS.crop_size),
            ("--scale", args.scale, DEFAULT_PREPROCESS.scale),
            ("--mean", args.mean, DEFAULT_PREPROCESS.mean)) if value != default]
        if restated:
            parser.error(f"{', '.join(restated)}: a checkpoint's sidecar fixes the preprocessing; these flags are "
                         f"for --symbol/--params only")
    elif args.epoch is not None:
        parser.error("--epoch selects a checkpoint of --model-prefix; with --symbol pass the .params file")
    if args.batch_size < 1:
        parser.error("--batch-size must be positive")


def main(argv=None):
    parser = build_parser()
    args = parser.parse_args(argv)
    check_args(parser, args)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    log = logging.getLogger("extract_features")
    try:
        ctxs = contexts_from_gpus(args.gpus)
        keys, paths = extract.list_images(args.image_root, args.image_list)
        if args.model_prefix:
            net, preprocess, sidecar = extract.load_checkpoint_embedding(args.model_prefix, args.epoch, ctxs)
            log.info("checkpoint %s epoch %d: %s (%s), preprocessing %s", args.model_prefix, sidecar["epoch"],
                     sidecar["network"], sidecar.get("model_options", {}), preprocess.to_dict())
        else:
            preprocess = Preprocess(image_size=args.image_size, crop_size=args.crop_size, scale=args.scale,
                                    mean=args.mean)
            net = extract.SymbolEmbedding(args.symbol, args.params, ctxs)
            net.check_input(preprocess.data_shape)
            log.info("graph %s + %s (%d output(s)), preprocessing %s", args.symbol, args.params, net.num_outputs,
                     preprocess.to_dict())
        log.info("%d images from %s under %s, batch %d on %s%s", len(keys), args.image_list or "the folder",
                 args.image_root, args.batch_size, ", ".join(map(str, ctxs)), ", with mirror (--flip)" if args.flip
                 else "")
        result = extract.extract_features(net, paths, preprocess, ctxs, args.batch_size, flip=args.flip,
                                          skip_missing=args.skip_missing, keys=keys, workers=args.workers,
                                          log_interval=args.log_interval, log=log)
    except extract.MissingImagesError as e:
        log.error("%s", e)
        return 1
    except (FileNotFoundError, ValueError) as e:
        log.error("%s", e)
        return 2
    extract.save_features_mat(args.out, result.features, result.keys, result.missing)
    log.info("wrote %s: data %d x %d single, label %d x 1%s", args.out, *result.features.shape, len(result.keys),
             f", missing {len(result.missing)} x 1" if result.missing else "")
    if args.npy:
        log.info("wrote %s", ", ".join(extract.save_features_npy(args.out, result.features, result.keys,
                                                                  result.missing)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
