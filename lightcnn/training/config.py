"""What a training run is asked to do: its settings as one plain object.

:class:`TrainConfig` holds every setting of a run (the command line, :mod:`lightcnn.cli.train`, fills it from flags
of the same names; :mod:`lightcnn.training.recipes` names whole configurations). :meth:`~TrainConfig.check` refuses
values that cannot be meant. Errors are :class:`ConfigError`, naming the setting; the command line shows it as its
flag.
"""
import dataclasses
import math
import os

import mxnet as mx

from lightcnn import init, precision
from lightcnn.images import Preprocess
from lightcnn.model import ModelSpec


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
            _ = self.preprocess
        except ValueError as error:
            raise ConfigError("image_size" if "crop_size" in str(error) else "scale", str(error)) from None
        if bool(self.verify_pairs) != bool(self.verify_root):
            raise ConfigError("verify_pairs" if self.verify_root else "verify_root",
                              "the pair file and the image folder of verification go together")
        for field in ("data_train", "data_val", "verify_pairs", "verify_root"):
            path = getattr(self, field)
            if path and not os.path.exists(path):
                raise ConfigError(field, f"not found: {path}")
