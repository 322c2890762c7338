"""The training command (``train_lightcnn.py``, ``python -m lightcnn train``): flags -> TrainConfig -> data -> fit,
errors as one line.

The flags are MXNet's image-classification conventions (``--network --gpus --kv-store --batch-size --lr
--lr-step-epochs --load-epoch --model-prefix ...``), one per :class:`~lightcnn.training.config.TrainConfig` field.
``--recipe`` picks the configuration the other flags start from (:mod:`lightcnn.training.recipes`; the default is
the paper's). The same code runs on the CPU when --gpus is empty, on several GPUs (one global batch split over them),
and on several machines with a dist_* kvstore (``python -m lightcnn launch``).
"""
import argparse
import dataclasses
import os
import sys

# One temporary workspace for MXNet's CPU operators instead of four: each grows to twice the largest oneDNN scratch
# buffer any operator has needed, so four of them are a large share of the training's peak memory; the training is
# bit-identical and as fast (README, "Where the memory goes"). MXNet reads it when it loads, so it is set before the
# imports below load MXNet (the package lightcnn.cli, imported first, does not); a process setting, so the command
# sets it, not the library.
os.environ.setdefault("MXNET_CPU_TEMP_COPY", "1")

from lightcnn import cli, init, precision
from lightcnn.checkpoint import CheckpointWriteError
from lightcnn.devices import contexts_from_gpus
from lightcnn.model import INPUT_SHAPE, MFM_TYPES, model_names
from lightcnn.networks import INPUT_SIZE, STORED_SIZE
from lightcnn.training.config import ConfigError, TrainConfig
from lightcnn.training.distributed import KV_STORES, DistributedError
from lightcnn.training.inputs import training_data
from lightcnn.training.loop import TrainingError, fit, open_store, writing_under
from lightcnn.training.recipes import RECIPES
from lightcnn.training.schedule import parse_steps

# what stops a started run on the way (exit status 1), as opposed to bad input (2)
FAILURES = (TrainingError, DistributedError, CheckpointWriteError)
DEFAULT_RECIPE = "seed"


def build_parser(defaults=RECIPES[DEFAULT_RECIPE], recipe=DEFAULT_RECIPE):
    """The training flags in groups, their defaults ``defaults`` (a TrainConfig: the recipe named ``recipe``)."""
    parser = argparse.ArgumentParser(prog="train_lightcnn.py",
                                     description=f"Train a LightCNN on im2rec RecordIO (gray "
                                                 f"{STORED_SIZE}x{STORED_SIZE} faces, random "
                                                 f"{INPUT_SIZE}x{INPUT_SIZE} crops).",
                                     formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    parser.add_argument("--recipe", default=recipe, choices=RECIPES,
                        help="the settings every other flag starts from: 'seed' is the paper's recipe, 'small-data' "
                             "the one for a few thousand faces (lightcnn.training.recipes); a flag given overrides")
    _add_model_flags(parser, defaults)
    _add_run_flags(parser, defaults)
    cli.add_debug_flag(parser)
    return parser


def _add_model_flags(parser, d):
    net = parser.add_argument_group("Network")
    # --network-name: horovodrun reads the whole command line for abbreviations of its own options and refuses
    # --network as ambiguous (--network-interface); no other flag collides
    net.add_argument("--network", "--network-name", default=d.network, choices=model_names(),
                     help="the network to train (--network-name under horovodrun)")
    net.add_argument("--num-classes", type=int, default=d.num_classes,
                     help="training identities; read from classes.txt / the labels when not given")
    net.add_argument("--mfm-type", default=d.mfm_type, choices=MFM_TYPES, help="Max-Feature-Map variant")
    net.add_argument("--dropout", type=float, default=d.dropout,
                     help="dropout before the classifier (default: the network's own, 0.5; 0.7 for lightcnn4)")
    net.add_argument("--xavier-factor-type", default=d.xavier_factor_type, choices=init.FACTOR_TYPES,
                     help="Xavier fan ('avg' = Glorot as in the TF port; Caffe's xavier is 'in')")
    net.add_argument("--xavier-magnitude", type=float, default=d.xavier_magnitude, help="Xavier magnitude")

    tune = parser.add_argument_group("Fine-tuning")
    tune.add_argument("--pretrained", default=d.pretrained, metavar="PREFIX[:EPOCH]",
                      help="start from this checkpoint's trunk and embedding (trained here or converted with "
                           "python -m lightcnn convert; its last epoch unless :EPOCH) with a fresh classifier for "
                           "this data")
    tune.add_argument("--freeze-trunk", action="store_true", default=d.freeze_trunk,
                      help="keep the pretrained convolutional trunk fixed; train the embedding and the classifier")
    tune.add_argument("--pretrained-lr-mult", type=float, default=d.pretrained_lr_mult,
                      help="learning-rate multiplier of the pretrained layers (the classifier keeps 1)")

    data = parser.add_argument_group("Data")
    data.add_argument("--data-train", default=d.data_train,
                      help="training .rec (with its .idx and classes.txt beside it)")
    data.add_argument("--data-val", default=d.data_val, help="validation .rec (optional)")
    data.add_argument("--data-nthreads", type=int, default=d.data_nthreads, help="decoding threads")
    data.add_argument("--image-shape", default=",".join(map(str, INPUT_SHAPE)),
                      help="network input C,H,W (MXNet's flag; LightCNN takes gray 128x128 crops)")
    data.add_argument("--image-size", type=int, default=d.image_size, help="side of the stored square images")
    data.add_argument("--scale", type=float, default=d.scale, help="pixel scale (after mean subtraction)")
    data.add_argument("--mean", type=float, default=d.mean, help="pixel mean subtracted before scaling")
    data.add_argument("--no-mirror", action="store_true", default=not d.mirror,
                      help="turn off random horizontal mirroring")
    data.add_argument("--benchmark", type=int, default=int(d.benchmark),
                      help="1: train on synthetic data, to measure speed")
    data.add_argument("--benchmark-batches", type=int, default=d.benchmark_batches,
                      help="batches per synthetic epoch")


def _add_run_flags(parser, d):
    train = parser.add_argument_group("Training")
    train.add_argument("--gpus", default=d.gpus, help="GPUs to train on, e.g. '0,1,2,3'; empty means the CPU")
    train.add_argument("--kv-store", default=d.kv_store, choices=KV_STORES,
                       help="key-value store for several devices or machines")
    train.add_argument("--dtype", default=d.dtype, choices=precision.DTYPES,
                       help="arithmetic precision (MXNet AMP): bfloat16 on CPUs with avx512_bf16/amx_bf16, float16 "
                            "on GPUs (dynamic loss scaling); weights, optimizer states and checkpoints stay float32")
    train.add_argument("--batch-size", type=int, default=d.batch_size, help="global batch (all devices and workers)")
    train.add_argument("--num-epochs", type=int, default=d.num_epochs,
                       help="epochs to train (in total, across resumes)")
    train.add_argument("--optimizer", default=d.optimizer, help="any MXNet optimizer")
    train.add_argument("--lr", type=float, default=d.lr, help="base learning rate")
    train.add_argument("--lr-factor", type=float, default=d.lr_factor, help="rate multiplier at each step")
    train.add_argument("--lr-step-epochs", default=",".join(map(str, d.lr_step_epochs)),
                       help="epochs where the rate is multiplied by --lr-factor (once epoch >= step)")
    train.add_argument("--lr-plateau-patience", type=int, default=d.lr_plateau_patience,
                       help="also drop the rate when validation loss has not improved for this many epochs (0: off)")
    train.add_argument("--wd", type=float, default=d.wd, help="weight decay")
    train.add_argument("--mom", type=float, default=d.mom, help="momentum (sgd/nag)")
    train.add_argument("--seed", type=int, default=d.seed,
                       help="seed for initialisation, shuffling, crops and dropout")

    ckpt = parser.add_argument_group("Checkpoints and logging")
    ckpt.add_argument("--model-prefix", default=d.model_prefix,
                      help="checkpoints go to PREFIX-symbol.json, PREFIX-NNNN.params/.states/.json")
    ckpt.add_argument("--load-epoch", type=int, default=d.load_epoch, help="resume from the checkpoint of this epoch")
    ckpt.add_argument("--keep-checkpoints", type=int, default=d.keep_checkpoints,
                      help="keep only the newest N epochs' checkpoints (older ones are deleted once the new one is "
                           "saved); 0 keeps every epoch")
    ckpt.add_argument("--disp-batches", type=int, default=d.disp_batches, help="show speed and metrics every N batches")

    verify = parser.add_argument_group("Verification during training")
    verify.add_argument("--verify-pairs", default=d.verify_pairs,
                        help="an LFW pairs.txt (or pair.label) to verify after every epoch")
    verify.add_argument("--verify-root", default=d.verify_root, help="the image folder the pairs refer to")


def config_from_args(args, **overrides):
    """A TrainConfig from parsed flags, with ``overrides`` (TrainConfig fields) on top; checked."""
    try:
        shape = tuple(int(v) for v in args.image_shape.split(","))
    except ValueError:
        shape = None
    if shape != INPUT_SHAPE:
        raise ConfigError("image_shape", f"LightCNN takes gray 128x128 inputs ({','.join(map(str, INPUT_SHAPE))}), "
                                         f"got {args.image_shape}")
    try:
        steps = parse_steps(args.lr_step_epochs)
    except ValueError as error:
        raise ConfigError("lr_step_epochs", str(error)) from None
    values = {f.name: getattr(args, f.name) for f in dataclasses.fields(TrainConfig) if hasattr(args, f.name)}
    values.update(lr_step_epochs=steps, mirror=not args.no_mirror, benchmark=bool(args.benchmark), **overrides)
    config = TrainConfig(**values)
    config.check()
    return config


def recipe_of(argv):
    """The recipe ``argv`` asks for (read first: its values are the defaults of every other flag)."""
    first = argparse.ArgumentParser(add_help=False)
    first.add_argument("--recipe", default=DEFAULT_RECIPE, choices=RECIPES)
    return first.parse_known_args(argv)[0].recipe


def parse_config(argv):
    """The checked TrainConfig of a training command line: its recipe, then the flags given."""
    recipe = recipe_of(argv)
    return config_from_args(build_parser(RECIPES[recipe], recipe).parse_args(argv))


def command_flags(config, recipe=DEFAULT_RECIPE):
    """The flags that make ``config`` from ``--recipe recipe`` (the fields that differ from it), for programs that
    start a training process: ``parse_config(command_flags(config, r))`` gives ``config`` back."""
    base = RECIPES[recipe]
    argv = ["--recipe", recipe]
    for field in dataclasses.fields(TrainConfig):
        value, start = getattr(config, field.name), getattr(base, field.name)
        if value == start:
            continue
        flag = cli.flag_of(field.name)
        if field.name == "mirror":
            argv += [] if value else ["--no-mirror"]
        elif field.name == "freeze_trunk":
            argv += [flag] if value else []
        elif field.name == "lr_step_epochs":
            argv += [flag, ",".join(map(str, value))]
        elif value is None:
            raise ValueError(f"{flag}: None cannot be given on a command line over the {recipe} recipe")
        else:
            argv += [flag, str(int(value) if field.name == "benchmark" else value)]
    return argv


def _train(argv):
    config = parse_config(argv)
    ctxs = contexts_from_gpus(config.gpus)  # a GPU that does not exist: said before anything is loaded
    store = open_store(config, len(ctxs))
    # the prefix is this run's before its log file is opened there: a second run on it stops without a line in it
    with writing_under(config.model_prefix, store):
        log = cli.setup_logging(f"{config.model_prefix}-train.log" if config.model_prefix else None)
        log.info("settings: %s", " ".join(f"{k}={v}" for k, v in sorted(config.to_dict().items())))
        data = training_data(config)
        if not config.benchmark:  # synthetic batches are no faces
            log.info("faces: %s", data.preprocess.describe())
        verify = None
        if config.verify_pairs:
            from lightcnn.training.lfw_check import make_pair_verifier
            verify = make_pair_verifier(config.verify_pairs, config.verify_root, data.preprocess, logger=log)
        fit(config, data, verify=verify, logger=log, ctxs=ctxs, store=store)
    return 0


def main(argv=None):
    """``train_lightcnn.py``'s entry point; returns the exit status (1: training stopped on the way, 2: bad input,
    128 + N: stopped by signal N)."""
    return cli.run(_train, argv, failures=FAILURES)


if __name__ == "__main__":
    sys.exit(main())
