"""Checkpoints in MXNet's own format, with a versioned JSON sidecar that rebuilds the model and its input.

For epoch N under ``prefix`` (MXNet's conventions, so ``SymbolBlock.imports`` and Module users can load them):

    prefix-symbol.json     the network graph (outputs: logits, 256-d embedding)
    prefix-NNNN.params     weights (``arg:``/``aux:`` names, as HybridBlock.export writes them)
    prefix-NNNN.states     the trainer's optimizer states (Adam moments, update counts), when there is a trainer
    prefix-NNNN.json       the sidecar (:class:`Sidecar`): network, input preprocessing, epoch, where the weights
                           come from, the training state, and the sha256 of the .params and .states it belongs to

This module is the only reader and writer of the sidecar format. Every file of a save is written into a hidden
folder beside the checkpoint first and renamed into place only when all of them are complete, the sidecar last.
A process killed between two renames can leave one save's weights beside another save's sidecar; the checksums make
such a mix an error at load time instead of a silent resume.
"""
from __future__ import annotations

import contextlib
import dataclasses
import glob
import json
import os
import re
import shutil
import tempfile
from typing import TYPE_CHECKING

from lightcnn import files
from lightcnn.images import Preprocess
from lightcnn.model import INPUT_SHAPE, ModelSpec

if TYPE_CHECKING:
    from lightcnn.model import LightCNN

SIDECAR_VERSION = 2
READABLE_VERSIONS = (1, 2)


class CheckpointError(ValueError):
    """A checkpoint is missing, incomplete, mixed up or written by a newer release; the message says which file."""


class NonFiniteWeightsError(CheckpointError):
    """Weights hold NaN or infinities: a damaged file or a diverged training; nothing computed from them means
    anything (features of NaN, a cosine of NaN, a verdict of "different" for every pair)."""


DIVERGED = "the file is damaged or the training diverged"


def nonfinite_weights(named):
    """``[(name, count)]`` of the arrays among ``named`` (name -> NDArray or numpy array, or pairs) that hold
    NaN or infinities, with how many such values each holds."""
    import numpy as np
    bad = []
    for name, value in (named.items() if hasattr(named, "items") else named):
        value = value.asnumpy() if hasattr(value, "asnumpy") else np.asarray(value)
        finite = np.isfinite(value)
        if not finite.all():
            bad.append((name, int(finite.size - np.count_nonzero(finite))))
    return bad


def describe_nonfinite(bad):
    """``weight W holds 3 non-finite values (NaN/inf)``, or a list of them."""
    if len(bad) == 1:
        (name, count), = bad
        return f"weight {name} holds {count} non-finite value{'s' if count != 1 else ''} (NaN/inf)"
    listed = ", ".join(f"{name} ({count})" for name, count in bad[:5])
    return (f"{len(bad)} weights hold non-finite values (NaN/inf): {listed}"
            + (f" and {len(bad) - 5} more" if len(bad) > 5 else ""))


def check_finite(named, source, why=DIVERGED):
    """Raise :class:`NonFiniteWeightsError` (``SOURCE: weight W holds N non-finite values (NaN/inf): WHY``) when
    an array of ``named`` holds NaN or infinities."""
    bad = nonfinite_weights(named)
    if bad:
        raise NonFiniteWeightsError(f"{source}: {describe_nonfinite(bad)}: {why}")


def _loaded_values(params):
    """(name, first copy) of each initialised Parameter of a ParameterDict: what a load put there."""
    return [(name, p.list_data()[0]) for name, p in params.items()]


def params_path(prefix, epoch):
    return f"{prefix}-{epoch:04d}.params"


def states_path(prefix, epoch):
    return f"{prefix}-{epoch:04d}.states"


def sidecar_path(prefix, epoch):
    return f"{prefix}-{epoch:04d}.json"


def symbol_path(prefix):
    return f"{prefix}-symbol.json"


# ----------------------------------------------------------------------------------------------------------------
# The sidecar

@dataclasses.dataclass
class TrainingState:
    """Where a training run stood when it saved: what a resume continues from.

    ``config`` holds the run's settings (``lightcnn.training.TrainConfig``, as a dict); ``lr`` the rate of the epoch
    just trained; ``plateau`` the plateau rule's state; ``metrics`` the epoch's row of the metrics CSV;
    ``optimizer_states_saved`` is False for dist_async (the servers hold them); ``partial_epoch`` marks an
    interrupted epoch (``PREFIX-interrupted-*``); ``history`` lists the settings changed at each resume
    (``{"epoch": N, "changed": {setting: [before, after]}}``).
    """

    config: dict = dataclasses.field(default_factory=dict)
    lr: float | None = None
    plateau: dict = dataclasses.field(default_factory=dict)
    metrics: dict = dataclasses.field(default_factory=dict)
    optimizer_states_saved: bool = True
    partial_epoch: bool = False
    history: list = dataclasses.field(default_factory=list)


@dataclasses.dataclass
class Sidecar:
    """Everything that rebuilds a checkpoint's network and input, and tells where its weights come from.

    Parameters
    ----------
    model : ModelSpec
        Network, classes and options.
    preprocess : Preprocess
        How images become its input (``None`` only in old sidecars that did not record it).
    epoch : int
        Finished epochs (0: not trained).
    classes : str, optional
        The ``classes.txt`` the labels come from (line i = class i).
    origin : dict
        How the weights came to be: ``{"kind": "trained"}``, ``{"kind": "initialised", ...}``, ...
    training : TrainingState, optional
        The training run's state, for a resume.
    checksums : dict
        sha256 of the ``params`` and ``states`` files this sidecar belongs to (filled in by :func:`save`).
    """

    model: ModelSpec
    preprocess: Preprocess | None = None
    epoch: int = 0
    classes: str | None = None
    origin: dict = dataclasses.field(default_factory=lambda: {"kind": "trained"})
    training: TrainingState | None = None
    checksums: dict = dataclasses.field(default_factory=dict)

    def build_network(self, **kwargs) -> LightCNN:
        """The network this sidecar describes (uninitialised)."""
        return self.model.build(**kwargs)

    def to_dict(self) -> dict:
        return {"format_version": SIDECAR_VERSION, "epoch": self.epoch, "model": self.model.to_dict(),
                "input_shape": list(INPUT_SHAPE),
                "preprocess": self.preprocess.to_dict() if self.preprocess else None,
                "classes": self.classes, "origin": self.origin,
                "training": dataclasses.asdict(self.training) if self.training else None,
                "checksums": self.checksums}

    @classmethod
    def from_dict(cls, record: dict, source: str = "sidecar") -> Sidecar:
        """Read any version this release knows; a newer or unknown one is a :class:`CheckpointError`."""
        version = record.get("format_version")
        if version not in READABLE_VERSIONS:
            newer = isinstance(version, int) and version > SIDECAR_VERSION
            raise CheckpointError(
                f"{source}: sidecar format {version!r} " + ("was written by a newer release of lightcnn; upgrade it "
                                                            if newer else "is unknown; ")
                + f"(this release reads formats {', '.join(map(str, READABLE_VERSIONS))})")
        try:
            if version == 1:
                return cls._from_version_1(record)
            preprocess = record.get("preprocess")
            training = record.get("training")
            return cls(model=ModelSpec.from_dict(record["model"]),
                       preprocess=Preprocess.from_dict(preprocess) if preprocess else None,
                       epoch=int(record["epoch"]), classes=record.get("classes"),
                       origin=record.get("origin") or {}, training=TrainingState(**training) if training else None,
                       checksums=record.get("checksums") or {})
        except (KeyError, TypeError, ValueError) as error:
            raise CheckpointError(f"{source}: not a valid sidecar of format {version} ({error})") from None

    @classmethod
    def _from_version_1(cls, record: dict) -> Sidecar:
        """Format 1 (releases before the Sidecar class): a flat dict, the run's flags under 'args'."""
        training = None
        if any(key in record for key in ("args", "lr", "plateau", "metrics")):
            training = TrainingState(config=record.get("args") or {}, lr=record.get("lr"),
                                     plateau=record.get("plateau") or {}, metrics=record.get("metrics") or {},
                                     optimizer_states_saved=record.get("optimizer_states_saved", True),
                                     partial_epoch=record.get("partial_epoch", False))
        origin = {"kind": "trained"}
        if record.get("untrained"):
            origin = {"kind": "initialised", "seed": record.get("seed"), "init": record.get("init")}
        preprocess = record.get("preprocess")
        return cls(model=ModelSpec(record["network"], int(record["num_classes"]), **record.get("model_options", {})),
                   preprocess=Preprocess.from_dict(preprocess) if preprocess else None,
                   epoch=int(record["epoch"]), classes=record.get("classes"), origin=origin, training=training)


def read_sidecar(prefix: str, epoch: int) -> Sidecar:
    path = sidecar_path(prefix, epoch)
    if not os.path.exists(path):
        found = saved_epochs(prefix)
        hint = f"saved epochs under this prefix: {found}" if found else "no checkpoint has this prefix"
        raise CheckpointError(f"no checkpoint for epoch {epoch}: {path} is missing ({hint})")
    try:
        with open(path, encoding="utf-8") as f:
            record = json.load(f)
    except (OSError, ValueError) as error:
        raise CheckpointError(f"cannot read the sidecar {path}: {error}") from None
    if not isinstance(record, dict):
        raise CheckpointError(f"{path} is not a checkpoint sidecar (a JSON object is expected)")
    return Sidecar.from_dict(record, source=path)


# ----------------------------------------------------------------------------------------------------------------
# Saving

def _staging_prefix(prefix):
    return f".{os.path.basename(prefix)}-saving-"


class CheckpointWriteError(RuntimeError):
    """A checkpoint could not be written (a full or read-only disk); the message names the file and what was being
    written. The checkpoints saved before are intact and nothing of this save is left behind."""


def save(net, trainer, prefix, sidecar):
    """Export ``net`` (hybridized, run at least once), save ``trainer``'s states (when given) and ``sidecar`` as
    the checkpoint of ``sidecar.epoch``. Returns the sidecar as written (with its checksums).

    Everything is written into a hidden staging folder first. Then the epoch's old sidecar (if another run saved
    this epoch before) is removed, the new files are renamed into place and the new sidecar goes last: a kill at
    any moment leaves this epoch with the old save complete, or with no sidecar (not a checkpoint), or the new save
    complete; the checksums catch anything else.
    """
    bad = nonfinite_weights(_loaded_values(net.collect_params()))
    if bad:  # such weights would load as nonsense: refused here, before anything is written
        raise CheckpointWriteError(f"not saving epoch {sidecar.epoch} under {prefix}: {describe_nonfinite(bad)}; "
                                   f"the training diverged; the checkpoints saved before are intact")
    folder = os.path.dirname(os.path.abspath(prefix))
    os.makedirs(folder, exist_ok=True)
    staging = tempfile.mkdtemp(prefix=_staging_prefix(prefix) + f"{os.getpid()}-", dir=folder)
    epoch = sidecar.epoch
    export_prefix = os.path.join(staging, "net")
    moves = [(f"{export_prefix}-symbol.json", symbol_path(prefix)),
             (params_path(export_prefix, epoch), params_path(prefix, epoch))]
    try:
        with _writing("the network graph and weights", params_path(prefix, epoch)):
            net.export(export_prefix, epoch=epoch)
        checksums = {"params": files.sha256(moves[1][0])}
        if trainer is not None:
            with _writing("the optimizer states", states_path(prefix, epoch)):
                trainer.save_states(os.path.join(staging, "trainer.states"))
            moves.append((os.path.join(staging, "trainer.states"), states_path(prefix, epoch)))
            checksums["states"] = files.sha256(moves[-1][0])
        written = dataclasses.replace(sidecar, checksums=checksums)
        with _writing("the sidecar", sidecar_path(prefix, epoch)):
            with open(os.path.join(staging, "sidecar.json"), "w", encoding="utf-8") as f:
                json.dump(files.json_safe(written.to_dict()), f, indent=2, sort_keys=True, allow_nan=False)
        moves.append((os.path.join(staging, "sidecar.json"), sidecar_path(prefix, epoch)))
        with _writing("the files into place", params_path(prefix, epoch)):
            files.remove_quietly(sidecar_path(prefix, epoch))
            for temp, final in moves:
                files.publish(temp, final)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return written


@contextlib.contextmanager
def _writing(what, path):
    """Turn a failed write (Python's OSError, or MXNet's C++ 'FileStream.Write incomplete', whose cause the disk is
    asked for) into one clear error."""
    import mxnet as mx
    try:
        yield
    except (OSError, mx.base.MXNetError) as error:
        reason, _ = files.write_reason(path, error)
        free = shutil.disk_usage(os.path.dirname(os.path.abspath(path))).free
        raise CheckpointWriteError(f"cannot write {what} of {path}: {reason} ({free / 2 ** 20:.0f} MB free on its "
                                   f"device); the checkpoints saved before are intact") from None


def remove_leftovers(prefix):
    """Remove what killed runs under ``prefix`` left behind: staging folders of interrupted saves (not those of a
    live process) and temporary files of the metrics and curve. Returns the paths removed."""
    folder = os.path.dirname(os.path.abspath(prefix))
    base = re.escape(os.path.basename(prefix))
    staging = re.compile(rf"^\.{base}(-interrupted)?-saving-(\d+)-")
    temporary = re.compile(rf"^\.{base}-(metrics\.csv|curve\.png)\..+\.tmp")
    removed = []
    for name in sorted(os.listdir(folder)) if os.path.isdir(folder) else []:
        path = os.path.join(folder, name)
        match = staging.match(name)
        if match and os.path.isdir(path):
            pid = int(match.group(2))
            if pid != os.getpid() and _alive(pid):
                continue
            shutil.rmtree(path, ignore_errors=True)
        elif temporary.match(name) and os.path.isfile(path):
            files.remove_quietly(path)
        else:
            continue
        removed.append(path)
    return removed


def _alive(pid):
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def saved_epochs(prefix):
    """Epochs with a sidecar and its params under ``prefix``, ascending."""
    pattern = re.compile(re.escape(os.path.basename(prefix)) + r"-(\d{4,})\.json$")
    epochs = []
    for path in glob.glob(glob.escape(prefix) + "-*.json"):
        match = pattern.search(os.path.basename(path))
        if match and os.path.exists(params_path(prefix, int(match.group(1)))):
            epochs.append(int(match.group(1)))
    return sorted(epochs)


def last_epoch(prefix):
    epochs = saved_epochs(prefix)
    if not epochs:
        raise CheckpointError(f"no complete checkpoint (prefix-NNNN.json + .params) found for prefix {prefix!r}")
    return epochs[-1]


def prune(prefix, keep, newest):
    """Delete the checkpoints under ``prefix`` older than the ``keep`` newest up to epoch ``newest`` (just saved);
    later epochs, left by another run, are not touched. The sidecar goes first, so a half-deleted checkpoint is never
    taken for complete. Returns the epochs removed."""
    epochs = [e for e in saved_epochs(prefix) if e <= newest]
    removed = epochs[:-keep] if keep > 0 else []
    for epoch in removed:
        files.remove_quietly(sidecar_path(prefix, epoch), params_path(prefix, epoch), states_path(prefix, epoch))
    return removed


# ----------------------------------------------------------------------------------------------------------------
# Loading

def _verified(path, sidecar, kind, prefix):
    """``path``, after checking it is the file ``sidecar`` was saved with."""
    if not os.path.exists(path):
        raise CheckpointError(f"checkpoint file {path} is missing")
    expected = sidecar.checksums.get(kind)
    if expected and files.sha256(path) != expected:
        earlier = [e for e in saved_epochs(prefix) if e < sidecar.epoch]
        raise CheckpointError(
            f"{path} does not belong to its sidecar {sidecar_path(prefix, sidecar.epoch)} (sha256 differs): the "
            f"files of two saves are mixed, as when a save of epoch {sidecar.epoch} was interrupted. Use an "
            f"earlier checkpoint" + (f" (saved: {', '.join(map(str, earlier))})" if earlier else ""))
    return path


def load_weights(net, prefix, sidecar, ctx):
    """Load the checkpoint's verified ``.params`` into ``net`` (built from ``sidecar``)."""
    path = _verified(params_path(prefix, sidecar.epoch), sidecar, "params", prefix)
    _mxnet_read(path, lambda: net.collect_params().load(path, ctx=ctx))
    check_finite(_loaded_values(net.collect_params()), path)


def load_embedding(net, prefix, sidecar, ctx):
    """Load only the trunk and embedding of the checkpoint's verified ``.params`` into ``net`` (of the same network;
    its classifier may be of another size): the start of a fine-tuning."""
    path = _verified(params_path(prefix, sidecar.epoch), sidecar, "params", prefix)
    _mxnet_read(path, lambda: net.embedding.collect_params().load(path, ctx=ctx, ignore_extra=True))
    check_finite(_loaded_values(net.embedding.collect_params()), path)


def load_states(trainer, prefix, sidecar):
    """Load the checkpoint's verified optimizer states into ``trainer``."""
    path = _verified(states_path(prefix, sidecar.epoch), sidecar, "states", prefix)
    _mxnet_read(path, lambda: trainer.load_states(path))


def _mxnet_read(path, read):
    """MXNet's loaders fail on a damaged file with C++ text; say which file instead."""
    import mxnet as mx
    try:
        read()
    except (mx.base.MXNetError, UnicodeDecodeError) as error:  # the second: MXNet's message quoting binary bytes
        detail = f": {files.mxnet_message(error)}" if isinstance(error, mx.base.MXNetError) else ""
        raise CheckpointError(f"cannot load {path} (damaged, truncated or not an MXNet file){detail}") from None


def load_model(prefix, epoch=None, ctx=None):
    """(net, sidecar) of a checkpoint: the network rebuilt from its sidecar alone, its weights loaded on ``ctx``
    (a context or a list; default CPU). ``epoch`` defaults to the last complete checkpoint."""
    import mxnet as mx
    sidecar = read_sidecar(prefix, last_epoch(prefix) if epoch is None else int(epoch))
    net = sidecar.build_network()
    load_weights(net, prefix, sidecar, ctx or mx.cpu())
    return net, sidecar
