"""``python -m lightcnn extract`` (and ``python extract_features/extract_features.py``): a checkpoint or an exported
graph + images -> their features in ``LFW_features.mat`` (:mod:`lightcnn.extract`)."""
import argparse
import logging
import os

from lightcnn import checkpoint, cli, extract, feature_files, files, locks, precision, quantize
from lightcnn.cli.align import add_policy_flags, given_policy
from lightcnn.devices import contexts_from_gpus
from lightcnn.embedding import SymbolEmbedding, load_checkpoint_embedding, low_precision_embedding
from lightcnn.images import FITS, TEMPLATE, Preprocess

USAGE = """Extract LightCNN face features of a list of images into LFW_features.mat (what lfw_eval.m loads).

    python extract_features.py --model-prefix ../output/lightcnn --image-list lfw_patch_part.txt \\
        --image-root /data/lfw [--epoch N] [--out LFW_features.mat] [--batch-size 64] [--gpus 0] [--flip] \\
        [--skip-missing] [--npy] [--dtype bfloat16 | --quantize int8 [--calib-images 256]]
    python extract_features.py --symbol X-symbol.json --params X-0001.params --image-size 144 --scale 0.00392157 \\
        --mean 0 [--fit crop] [--align] --image-root /data/lfw

A training checkpoint (--model-prefix, last epoch unless --epoch) rebuilds the network and the preprocessing
from its sidecar alone, alignment included: a network trained on aligned faces gets its images aligned (unless
--image-root was written by python -m lightcnn align with the same template). An exported graph (--symbol +
--params) needs the preprocessing flags; its embedding is output 1 of (logits, embedding). The .mat holds 'data'
(N x 256 single, a row per image), 'label' (N x 1 cell of Name/Name_NNNN.jpg), when images were skipped 'missing',
and which checkpoint made them. Then:
    octave-cli --eval "addpath('lfw_verification-matlab'); lfw_eval('LFW_features.mat', 'pairs.txt');"
or  python -m lightcnn evaluate --features LFW_features.mat --pairs pairs.txt
"""
_DEFAULT_PREPROCESS = Preprocess()


def build_parser():
    parser = argparse.ArgumentParser(description=USAGE.split("\n\n")[0].strip(),
                                     formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    model = parser.add_argument_group("Model (a checkpoint, or an exported symbol + params)")
    model.add_argument("--model-prefix", help="training checkpoint prefix (prefix-NNNN.params + prefix-NNNN.json)")
    model.add_argument("--epoch", type=int, default=None, help="checkpoint epoch (None: the last one saved)")
    model.add_argument("--symbol", help="an exported X-symbol.json (instead of --model-prefix)")
    model.add_argument("--params", help="its X-NNNN.params")

    prep = parser.add_argument_group("Preprocessing (only with --symbol/--params; a checkpoint records its own)")
    prep.add_argument("--image-size", type=int, default=_DEFAULT_PREPROCESS.image_size,
                      help="side the images are resized to before the centre crop (the stored training size)")
    prep.add_argument("--crop-size", type=int, default=_DEFAULT_PREPROCESS.crop_size, help="centre crop side")
    prep.add_argument("--scale", type=float, default=_DEFAULT_PREPROCESS.scale, help="input = (pixel - mean) * scale")
    prep.add_argument("--mean", type=float, default=_DEFAULT_PREPROCESS.mean, help="pixel mean (0..255 units)")
    prep.add_argument("--fit", choices=FITS, default=_DEFAULT_PREPROCESS.fit,
                      help="a face that is not square: its centre square (crop), black bars (pad) or stretched")
    prep.add_argument("--align", action="store_true",
                      help="align every image to the LightCNN template first (with --model-prefix the checkpoint "
                           "says whether it was trained on aligned faces; this flag only confirms it)")
    add_policy_flags(parser, unset=True)  # only when aligning

    images = parser.add_argument_group("Images")
    images.add_argument("--image-list", help="one image path per line (any leading prefix, e.g. lfw_patch_part.txt); "
                                             "None: every image under --image-root")
    images.add_argument("--image-root", required=True, help="folder the list's Name/Name_NNNN.jpg are under")
    images.add_argument("--skip-missing", action="store_true",
                        help="skip missing or unreadable images (listed, and stored as 'missing') instead of failing")

    out = parser.add_argument_group("Output")
    out.add_argument("--out", default=feature_files.DEFAULT_MAT, help="the .mat file (data, label, missing)")
    out.add_argument("--npy", action="store_true",
                     help="also write X.npy (features) and X_label.txt (one key per line) beside the .mat")

    low = parser.add_argument_group("Precision (features are float32 in the .mat whatever the network computes in)")
    low.add_argument("--dtype", default="float32", choices=("float32", "bfloat16", "float16"),
                     help="arithmetic of the network: bfloat16 on CPUs with avx512_bf16/amx_bf16, float16 on GPUs")
    low.add_argument("--quantize", choices=("int8",), default=None,
                     help="int8 network (oneDNN, CPU), calibrated on --calib-images of the listed images; the "
                          "calibrated model is cached beside the weights and reused for the same weights and images")
    low.add_argument("--calib-images", type=int, default=quantize.DEFAULT_CALIB_IMAGES,
                     help="images of the list (a fixed sample spread over it) the int8 ranges are calibrated on")
    low.add_argument("--calib-mode", default=quantize.DEFAULT_CALIB_MODE, choices=quantize.CALIB_MODES,
                     help="entropy: KL-optimal thresholds; naive: each layer's min/max (accuracy: README)")
    low.add_argument("--mfm-form", default="max", choices=quantize.MFM_FORMS,
                     help="max: MFM as split + maximum; sum-relu: as b + relu(a - b), which oneDNN fuses into the "
                          "convolutions: in float32 the same features to rounding; with --quantize int8 "
                          "every convolution's MFM in int8 (speed and accuracy: README, 'Measured figures')")

    run = parser.add_argument_group("Computation")
    run.add_argument("--batch-size", type=int, default=extract.DEFAULT_BATCH_SIZE, help="images per batch")
    run.add_argument("--gpus", default="", help="GPUs to split each batch over, e.g. '0,1'; empty: CPU")
    run.add_argument("--flip", action="store_true",
                     help="feature = feature(image) + feature(left-right mirror); doubles the compute")
    run.add_argument("--workers", type=int, default=None, help="decoding threads (None: the core count, at most 4)")
    run.add_argument("--log-interval", type=float, default=5.0, help="seconds between progress lines")
    cli.add_debug_flag(parser)
    return parser


def _check_args(parser, args):
    if bool(args.model_prefix) == bool(args.symbol or args.params):
        parser.error("give either --model-prefix (a checkpoint) or --symbol and --params (an exported graph)")
    if args.symbol and not args.params or args.params and not args.symbol:
        parser.error("--symbol and --params go together")
    if args.model_prefix:
        if args.epoch is not None and args.epoch < 0:
            parser.error("--epoch must be non-negative")
        try:  # --align is no restatement: it is checked against the sidecar
            stated = _stated_preprocess(args, align=None)
        except ValueError as error:
            parser.error(str(error))
        restated = [cli.flag_of(name) for name, _, _ in _DEFAULT_PREPROCESS.mismatches(stated)]
        if restated:
            parser.error(f"{', '.join(restated)}: a checkpoint's sidecar fixes the preprocessing; these flags are "
                         f"for --symbol/--params only")
    elif args.epoch is not None:
        parser.error("--epoch selects a checkpoint of --model-prefix; with --symbol pass the .params file")
    if args.batch_size < 1:
        parser.error("--batch-size must be positive")
    if args.quantize and args.dtype != "float32":
        parser.error("--quantize int8 and --dtype go separately: an int8 network takes float32 in and gives float32 "
                     "out")
    if args.calib_images < 1:
        parser.error("--calib-images must be positive")
    if given_policy(args) and not args.align and not args.model_prefix:
        parser.error("--min-size, --max-outside, --pad and --min-confidence are alignment settings: add --align")


def _extract(argv):
    parser = build_parser()
    args = parser.parse_args(argv)
    _check_args(parser, args)
    with locks.hold(args.out, field="out", under=False):  # one extraction per output (its .npy too), from the start
        return _extract_to(args)


def _stated_preprocess(args, align):
    """The preprocessing the flags state (an exported graph's), aligned to ``align`` (a Template or None)."""
    return Preprocess(image_size=args.image_size, crop_size=args.crop_size, scale=args.scale, mean=args.mean,
                      fit=args.fit, align=align)


def _load_network(args, ctxs, log):
    """``(net, preprocess, params_file, identity, model)``: a checkpoint rebuilt from its sidecar, or an exported
    graph with the preprocessing flags; ``identity`` keys the int8 cache, ``model`` says which checkpoint it is."""
    if args.model_prefix:
        net, preprocess, sidecar = load_checkpoint_embedding(args.model_prefix, args.epoch, ctxs)
        if args.align and preprocess.align is None:
            raise ValueError(f"--align: the checkpoint {args.model_prefix} epoch {sidecar.epoch} was trained on faces "
                             f"used as given (not aligned); aligned faces would not be what it learned on")
        log.info("checkpoint %s epoch %d: %s; faces %s", args.model_prefix, sidecar.epoch, sidecar.model.to_dict(),
                 preprocess.describe())
        identity = {"model": sidecar.model.to_dict(), "preprocess": preprocess.to_dict()}
        model = {"prefix": os.path.abspath(args.model_prefix), "epoch": sidecar.epoch,
                 "params_sha256": sidecar.checksums.get("params")}
        return net, preprocess, checkpoint.params_path(args.model_prefix, sidecar.epoch), identity, model
    preprocess = _stated_preprocess(args, TEMPLATE if args.align else None)
    net = SymbolEmbedding(args.symbol, args.params, ctxs)
    net.check_input(preprocess.data_shape)
    log.info("graph %s + %s (%d output(s)); faces %s", args.symbol, args.params, net.num_outputs,
             preprocess.describe())
    identity = {"symbol_sha256": files.sha256(args.symbol), "preprocess": preprocess.to_dict()}
    return net, preprocess, args.params, identity, None


def _extract_to(args):
    logging.basicConfig(level=logging.INFO, format=cli.LOG_FORMAT)
    log = logging.getLogger("extract_features")
    ctxs = contexts_from_gpus(args.gpus)
    precision.check_dtype(args.dtype, ctxs)  # before any work: this hardware may not run it
    keys, paths = extract.list_images(args.image_root, args.image_list)
    net, preprocess, params_file, identity, model = _load_network(args, ctxs, log)
    aligned = extract.input_is_aligned(args.image_root, preprocess, log)
    if args.quantize:
        calib = extract.calibration_data(paths, args.calib_images, preprocess, log, aligned,
                                         given_policy(args))
        net = low_precision_embedding(net, ctxs, preprocess.data_shape, quantize_int8=True, params_file=params_file,
                                      identity=identity, calib_data=calib, calib_mode=args.calib_mode,
                                      mfm_form=args.mfm_form, log=log)
    elif args.dtype != "float32" or args.mfm_form != "max":
        net = low_precision_embedding(net, ctxs, preprocess.data_shape, dtype=args.dtype, mfm_form=args.mfm_form)
        log.info("the network computes in %s with MFM as %s (features are written as float32)", args.dtype,
                 args.mfm_form)
    if args.quantize or args.dtype != "float32" or args.mfm_form != "max" or args.flip:
        model = None  # not the features verify-pair computes: no threshold of these should stand for the checkpoint
    log.info("%d images from %s under %s, batch %d on %s%s", len(keys), args.image_list or "the folder",
             args.image_root, args.batch_size, ", ".join(map(str, ctxs)),
             ", with mirror (--flip)" if args.flip else "")
    result = extract.extract_features(net, paths, preprocess, ctxs, args.batch_size, flip=args.flip,
                                      skip_missing=args.skip_missing, keys=keys, workers=args.workers,
                                      log_interval=args.log_interval, log=log, aligned=aligned,
                                      align_policy=given_policy(args))
    feature_files.save_features_mat(args.out, result.features, result.keys, result.missing, model=model)
    log.info("wrote %s: data %d x %d single, label %d x 1%s", args.out, *result.features.shape, len(result.keys),
             f", missing {len(result.missing)} x 1" if result.missing else "")
    if args.npy:
        written = feature_files.save_features_npy(args.out, result.features, result.keys, result.missing)
        log.info("wrote %s", ", ".join(written))
    return 0


def main(argv=None):
    """The extractor's command line; returns the exit status (1: images missing, 2: bad input)."""
    return cli.run(_extract, argv, failures=(extract.MissingImagesError,))


if __name__ == "__main__":
    raise SystemExit(main())
