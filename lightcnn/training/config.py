"""What a training run is asked to do: its settings as one plain object, and the command-line flags that fill it.

The flags are MXNet's image-classification conventions (``--network --gpus --kv-store --batch-size --lr
--lr-step-epochs --load-epoch --model-prefix ...``). :func:`add_args` declares them in groups with the recipe's
defaults; :func:`from_args` turns parsed flags into a :class:`TrainConfig`, whose :meth:`~TrainConfig.check` refuses
values that cannot be meant. Errors are :class:`ConfigError`, naming the setting; the command line shows it as its
flag.
"""
import dataclasses
import math
import os

import mxnet as mx

from lightcnn import init, precision
from lightcnn.images import Preprocess
from lightcnn.model import INPUT_SHAPE, MFM_TYPES, ModelSpec, model_names
from lightcnn.training.distributed import KV_STORES
from lightcnn.training.schedule import parse_steps


class ConfigError(ValueError):
    """A setting that cannot work; ``field`` names it (a TrainConfig field)."""

    def __init__(self, field, message):
        super().__init__(message)
        self.field = field


@dataclasses.dataclass
class TrainConfig:
    """The settings of one training run; the defaults are the original recipe (LightCNN-29, Xavier weights and 0.1
    biases, Adam, lr 1e-4 with steps 0,100 = 1e-5 from epoch 0 and 1e-6 from epoch 100, batch 64, 35 epochs)."""

    # network
    network: str = "lightcnn29"
    num_classes: int = None  # None: read from classes.txt / the labels
    mfm_type: str = "2/1"
    dropout: float = None  # None: the network's own rate
    xavier_factor_type: str = init.RECIPE_FACTOR_TYPE
    xavier_magnitude: float = init.MAGNITUDE
    # fine-tuning: start from another checkpoint's trunk and embedding, with a fresh classifier
    pretrained: str = None  # PREFIX or PREFIX:EPOCH
    freeze_trunk: bool = False
    pretrained_lr_mult: float = 1.0
    # data
    data_train: str = None
    data_val: str = None
    data_nthreads: int = os.cpu_count() or 1
    image_size: int = Preprocess().image_size
    scale: float = Preprocess().scale
    mean: float = Preprocess().mean
    mirror: bool = True
    benchmark: bool = False
    benchmark_batches: int = 20
    # optimisation
    batch_size: int = 64
    num_epochs: int = 35
    optimizer: str = "adam"
    lr: float = 1e-4
    lr_factor: float = 0.1
    lr_step_epochs: tuple = (0, 100)
    lr_plateau_patience: int = 0
    wd: float = 0.0
    mom: float = 0.9
    seed: int = 0
    # devices
    gpus: str = ""
    kv_store: str = "device"
    dtype: str = "float32"  # arithmetic of forward and backward; weights and optimizer states stay float32
    # checkpoints and logging
    model_prefix: str = "output/lightcnn"
    load_epoch: int = None
    keep_checkpoints: int = 0
    disp_batches: int = 20
    # verification during training
    verify_pairs: str = None
    verify_root: str = None

    @property
    def preprocess(self):
        return Preprocess(image_size=self.image_size, scale=self.scale, mean=self.mean)

    def model_spec(self, num_classes):
        return ModelSpec(self.network, num_classes, mfm_type=self.mfm_type, dropout=self.dropout)

    def to_dict(self):
        return dataclasses.asdict(self)

    def check(self):
        """Raise ConfigError for settings that cannot work or cannot be meant, before anything is loaded."""
        if not self.benchmark and not self.data_train:
            raise ConfigError("data_train", "a training .rec is required (or the synthetic benchmark data)")
        for field in dataclasses.fields(self):  # inf passes "positive" and nan fails every rule with a wrong reason
            value = getattr(self, field.name)
            if field.type in (float, "float") and value is not None and not math.isfinite(value):
                raise ConfigError(field.name, f"must be a finite number; got {value!r}")
        rules = [
            ("lr", self.lr > 0, "must be positive (a negative rate climbs the loss)"),
            ("lr_factor", 0 < self.lr_factor <= 1, "must be in (0, 1]: each step multiplies the rate by it"),
            ("wd", self.wd >= 0, "must be >= 0"),
            ("mom", 0 <= self.mom < 1, "must be in [0, 1)"),
            ("batch_size", self.batch_size > 0, "must be positive"),
            ("num_epochs", self.num_epochs > 0, "must be positive"),
            ("num_classes", self.num_classes is None or self.num_classes > 0, "must be positive"),
            ("dropout", self.dropout is None or 0 <= self.dropout < 1, "must be in [0, 1)"),
            ("xavier_magnitude", self.xavier_magnitude > 0, "must be positive"),
            ("data_nthreads", self.data_nthreads >= 1, "must be at least 1"),
            ("benchmark_batches", self.benchmark_batches >= 1, "must be at least 1"),
            ("lr_plateau_patience", self.lr_plateau_patience >= 0, "give a number of epochs, or 0 for off"),
            ("disp_batches", self.disp_batches >= 0, "give a number of batches, or 0 for no batch lines"),
            ("keep_checkpoints", self.keep_checkpoints >= 0, "give a count of epochs, or 0 to keep all"),
            ("seed", self.seed >= 0, "must be >= 0"),
            ("load_epoch", self.load_epoch is None or self.load_epoch >= 1,
             "names a saved epoch (1 or more); leave it out to start afresh"),
            ("lr_step_epochs", all(step >= 0 for step in self.lr_step_epochs), "epochs are >= 0"),
            ("pretrained_lr_mult", self.pretrained_lr_mult >= 0, "must be >= 0 (0 freezes like --freeze-trunk)"),
            ("freeze_trunk", self.pretrained or not self.freeze_trunk, "needs a pretrained checkpoint to freeze"),
            ("optimizer", self.optimizer.lower() in mx.optimizer.Optimizer.opt_registry,
             f"unknown optimizer; MXNet has {', '.join(sorted(mx.optimizer.Optimizer.opt_registry))}"),
        ]
        for field, ok, rule in rules:
            if not ok:
                raise ConfigError(field, f"{rule}; got {getattr(self, field)!r}")
        if self.load_epoch is not None and self.load_epoch >= self.num_epochs:
            raise ConfigError("load_epoch", f"epoch {self.load_epoch} leaves nothing to train with "
                                            f"{self.num_epochs} epochs in all")
        if self.dtype not in precision.DTYPES:
            raise ConfigError("dtype", f"unknown dtype {self.dtype!r}; valid: {', '.join(precision.DTYPES)}")
        if self.dtype == "float16" and self.kv_store == "dist_async":
            raise ConfigError("dtype", "float16 needs its loss scaler to skip overflowing steps, and with dist_async "
                                       "the servers apply every update: use dist_sync")
        try:
            self.preprocess
        except ValueError as error:
            raise ConfigError("image_size" if "crop_size" in str(error) else "scale", str(error)) from None
        if bool(self.verify_pairs) != bool(self.verify_root):
            raise ConfigError("verify_pairs" if self.verify_root else "verify_root",
                              "the pair file and the image folder of verification go together")
        for field in ("data_train", "data_val", "verify_pairs", "verify_root"):
            path = getattr(self, field)
            if path and not os.path.exists(path):
                raise ConfigError(field, f"not found: {path}")


def add_args(parser):
    """Declare the training flags on ``parser`` (an argparse.ArgumentParser), in groups, with the recipe's defaults."""
    d = TrainConfig()
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
                           "lightcnn convert; its last epoch unless :EPOCH) with a fresh classifier for this data")
    tune.add_argument("--freeze-trunk", action="store_true",
                      help="keep the pretrained convolutional trunk fixed; train the embedding and the classifier")
    tune.add_argument("--pretrained-lr-mult", type=float, default=d.pretrained_lr_mult,
                      help="learning-rate multiplier of the pretrained layers (the classifier keeps 1)")

    data = parser.add_argument_group("Data")
    data.add_argument("--data-train", help="training .rec (with its .idx and classes.txt beside it)")
    data.add_argument("--data-val", help="validation .rec (optional)")
    data.add_argument("--data-nthreads", type=int, default=d.data_nthreads, help="decoding threads")
    data.add_argument("--image-shape", default=",".join(map(str, INPUT_SHAPE)),
                      help="network input C,H,W (MXNet's flag; LightCNN takes gray 128x128 crops)")
    data.add_argument("--image-size", type=int, default=d.image_size, help="side of the stored square images")
    data.add_argument("--scale", type=float, default=d.scale, help="pixel scale (after mean subtraction)")
    data.add_argument("--mean", type=float, default=d.mean, help="pixel mean subtracted before scaling")
    data.add_argument("--no-mirror", action="store_true", help="turn off random horizontal mirroring")
    data.add_argument("--benchmark", type=int, default=0, help="1: train on synthetic data, to measure speed")
    data.add_argument("--benchmark-batches", type=int, default=d.benchmark_batches,
                      help="batches per synthetic epoch")

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
    verify.add_argument("--verify-pairs", help="an LFW pairs.txt (or pair.label) to verify after every epoch")
    verify.add_argument("--verify-root", help="the image folder the pairs refer to")
    return parser


def from_args(args):
    """A TrainConfig from parsed flags (checked)."""
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
    values.update(lr_step_epochs=steps, mirror=not args.no_mirror, benchmark=bool(args.benchmark))
    config = TrainConfig(**values)
    config.check()
    return config
