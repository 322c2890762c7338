"""The training loop: setting a run up (fresh or resumed), and the epochs (:mod:`~lightcnn.training.epoch`) with
their after-epoch hooks and checkpoints.

A plain loop: for each epoch, seed every source of randomness from (seed, epoch), build that epoch's training
iterator, train, then call the after-epoch hooks (a list of functions: the caller's, then the built-in check that
the workers agree, validation, verification, metrics, checkpoint). Nothing random carries over from one epoch to the
next except what the checkpoint stores (weights, Adam states, the plateau state), so a run resumed from epoch N
continues exactly as the uninterrupted run would have.
"""
import collections
import contextlib
import dataclasses
import json
import logging
import os
import random
import time
from collections.abc import Callable, Sequence

import numpy as np

import mxnet as mx
from mxnet import autograd, gluon

from lightcnn import checkpoint, init, locks, precision, progress
from lightcnn.checkpoint import Sidecar, TrainingState
from lightcnn.devices import contexts_from_gpus
from lightcnn.images import FACE_RULES
from lightcnn.model import default_dropout
from lightcnn.training.config import ConfigError, TrainConfig
from lightcnn.training.distributed import DistributedStore
from lightcnn.training.epoch import TrainingError, batches_in, evaluate_classifier, train_epoch
from lightcnn.training.metrics import MetricsLog, epoch_row
from lightcnn.training.schedule import Plateau, lr_at, parse_steps, server_lr_schedule
from lightcnn.training.stopping import StopSignals

FitResult = collections.namedtuple("FitResult", "net rows rank num_workers")
__all__ = ["EpochState", "FitResult", "TrainingData", "TrainingError", "fit", "initial_network", "open_store",
           "writing_under"]


@dataclasses.dataclass
class TrainingData:
    """What the loop trains on. ``make_train_iter(epoch, batch_size, num_parts, part_index)`` gives a fresh, seeded
    iterator per epoch over this worker's share; ``classes`` is the classes.txt the labels come from; ``preprocess``
    the complete input rules of these faces (the config's settings with how the dataset builder made them: fit,
    align; :func:`lightcnn.training.inputs.training_data` makes it), which the checks and the checkpoints use.
    None: batches not made from a dataset (a caller's own), the config's settings alone."""

    make_train_iter: object
    num_classes: int
    val_iter: object = None
    classes: str = None
    preprocess: object = None


def seed_everything(seed, epoch):
    """Seed MXNet (initial weights, dropout), numpy and Python for one epoch from (seed, epoch)."""
    value = seed * 1000 + epoch
    mx.random.seed(value)
    np.random.seed(value % 2 ** 32)
    random.seed(value)


@dataclasses.dataclass
class _Run:
    net: object
    trainer: object
    optimizer: object
    begin_epoch: int
    plateau: Plateau
    sidecar: Sidecar  # what every checkpoint of this run records, but for its epoch and training state
    history: list  # settings changed at each resume, carried from checkpoint to checkpoint


def initial_network(spec, seed, xavier_factor_type, xavier_magnitude, ctxs):
    """The network a fresh run starts from: built from ``spec``, Xavier weights (0.1 biases), hybridized, on
    ``ctxs``. Deferred initialisation draws the weights at the first forward pass: here, from epoch 0's seed. A
    train-mode pass, because an inference pass lets oneDNN reorder convolution weights in place into its own
    layout, which the key-value store cannot send."""
    net = spec.build()
    net.initialize(init.xavier(xavier_factor_type, xavier_magnitude), ctx=ctxs)
    net.hybridize(static_alloc=True, static_shape=True)
    seed_everything(seed, 0)
    with autograd.train_mode():
        net(mx.nd.zeros((1,) + tuple(net.input_shape), ctx=ctxs[0]))
    return net


def _start(config, data, ctxs, store, log):
    """The network, trainer and plateau state at the first epoch to train: fresh, or resumed from a checkpoint whose
    network and input must be this run's."""
    spec = config.model_spec(data.num_classes)
    begin_epoch = config.load_epoch or 0
    plateau = Plateau(config.lr_plateau_patience)
    saved, history = None, []
    if begin_epoch:
        saved = checkpoint.read_sidecar(config.model_prefix, begin_epoch)
        _check_resume(saved, spec, data.preprocess, config)
        history = list(saved.training.history) if saved.training else []
        changed = _changed_settings(saved, config)
        if changed:
            history.append({"epoch": begin_epoch, "changed": changed})
            log.info("resuming at epoch %d with settings changed since that checkpoint: %s", begin_epoch,
                     ", ".join(f"{name} {before} -> {after}" for name, (before, after) in changed.items()))
        net = spec.build()
        checkpoint.load_weights(net, config.model_prefix, saved, ctxs)
        net.hybridize(static_alloc=True, static_shape=True)
        if saved.training:
            plateau = Plateau(config.lr_plateau_patience, **saved.training.plateau)
        origin = saved.origin
        log.info("resumed from %s at epoch %d", checkpoint.params_path(config.model_prefix, begin_epoch),
                 begin_epoch)
    else:
        net = initial_network(spec, config.seed, config.xavier_factor_type, config.xavier_magnitude, ctxs)
        origin = {"kind": "trained", "seed": config.seed, "init": {"xavier_factor_type": config.xavier_factor_type,
                                                                   "xavier_magnitude": config.xavier_magnitude}}
        if config.pretrained:
            origin = dict(origin, kind="fine-tuned",
                          pretrained=_load_pretrained(net, spec, data.preprocess, config, ctxs, log))
    _set_trainable(net, config)

    optimizer_params = {"learning_rate": lr_at(begin_epoch, config.lr, config.lr_factor, config.lr_step_epochs,
                                               plateau.drops), "wd": config.wd}
    if config.optimizer in ("sgd", "nag"):
        optimizer_params["momentum"] = config.mom
    optimizer = mx.optimizer.create(config.optimizer, **optimizer_params)
    trainer = store.make_trainer(net.collect_params(), optimizer)
    precision.init_trainer(trainer, config.dtype)
    if saved is not None:
        if store.updates_on_servers:
            log.info("dist_async: the optimizer states start afresh on the servers (they are not checkpointed)")
        elif saved.training is None or saved.training.optimizer_states_saved:
            checkpoint.load_states(trainer, config.model_prefix, saved)
        else:
            log.info("the checkpoint of epoch %d has no optimizer states (a dist_async run): they start afresh",
                     begin_epoch)
    store.prepare(net)
    sidecar = Sidecar(model=spec, preprocess=data.preprocess, classes=data.classes, origin=origin)
    return _Run(net, trainer, optimizer, begin_epoch, plateau, sidecar, history)


def _pretrained_source(text):
    """'PREFIX[:EPOCH]' -> (prefix, sidecar of that epoch, or of the last one saved)."""
    prefix, _, epoch = text.rpartition(":")
    if not (prefix and epoch.isdigit()):
        prefix, epoch = text, None
    return prefix, checkpoint.read_sidecar(prefix, checkpoint.last_epoch(prefix) if epoch is None else int(epoch))


def _load_pretrained(net, spec, preprocess, config, ctxs, log):
    """Load another checkpoint's trunk and embedding into ``net`` (its classifier stays freshly initialised, sized
    for this data); the pretrained network and its input must be this run's. Returns what the sidecar records."""
    prefix, source = _pretrained_source(config.pretrained)
    where = f"the pretrained checkpoint {prefix} (epoch {source.epoch})"
    for name in ("network", "mfm_type"):
        if getattr(source.model, name) != getattr(spec, name):
            raise ConfigError(name, f"{where} is {name}={getattr(source.model, name)!r}, this run asks for "
                                    f"{getattr(spec, name)!r}")
    if source.preprocess is not None:
        for name, theirs, ours in source.preprocess.mismatches(preprocess):
            if name not in FACE_RULES:  # fine-tuning may take a network to faces made another way (fit, align)
                raise ConfigError(name, f"{where} was trained on inputs with {name}={theirs!r} (its sidecar), this "
                                        f"run prepares {ours!r}; fine-tuning must feed it the same input")
    checkpoint.load_embedding(net, prefix, source, ctxs)
    log.info("fine-tuning from %s: its trunk and embedding, a fresh classifier of %d classes%s", where,
             spec.num_classes, ", the trunk frozen" if config.freeze_trunk else "")
    return {"prefix": os.path.abspath(prefix), "epoch": source.epoch, "num_classes": source.model.num_classes,
            "params_sha256": source.checksums.get("params"), "origin": source.origin}


def _set_trainable(net, config):
    """Fine-tuning: the pretrained layers learn at ``pretrained_lr_mult`` of the rate, and the trunk not at all
    with ``freeze_trunk`` (set again on every resume, from the settings)."""
    if not config.pretrained:
        return
    trunk = set(net.embedding.trunk.collect_params().keys())
    for name, param in net.embedding.collect_params().items():
        if config.freeze_trunk and name in trunk:
            param.grad_req = "null"
        else:
            param.lr_mult = config.pretrained_lr_mult


def _check_resume(saved, spec, preprocess, config):
    """The settings that define the network or its input, and how the faces were made (aligned or not, the same
    fit), must be the checkpoint's (ConfigError naming both). Dropout is compared as the rate trained with: None
    stands for the network's own, on either side."""
    pairs = [(name, getattr(saved.model, name), getattr(spec, name)) for name in ("network", "num_classes",
                                                                                 "mfm_type")]
    pairs.append(("dropout", saved.model.effective_dropout, spec.effective_dropout))
    preprocess_differs = saved.preprocess.mismatches(preprocess) if saved.preprocess is not None else []
    pairs += [m for m in preprocess_differs if m[0] not in FACE_RULES]
    for name, theirs, ours in pairs:
        if theirs != ours:
            raise ConfigError(name, f"the checkpoint of epoch {saved.epoch} under {config.model_prefix} was trained "
                                    f"with {name}={theirs!r}, this run asks for {ours!r}; a resume must keep the "
                                    f"settings that define the network and its input")
    for name, theirs, ours in preprocess_differs:  # the faces' rules are left: the input's settings raised above
        raise ConfigError("data_train", f"the checkpoint of epoch {saved.epoch} under {config.model_prefix} was "
                                        f"trained on faces with {name}={theirs!r}; {config.data_train} holds "
                                        f"faces with {name}={ours!r} (see its summary.json)")


def _changed_settings(saved, config):
    """{setting: [checkpoint's, this run's]} for the settings a resume may change (the rate, the epochs, ...)."""
    if saved.training is None:
        return {}
    before = saved.training.config
    if isinstance(before.get("lr_step_epochs"), str):  # format 1 recorded the flag's text
        before = dict(before, lr_step_epochs=list(parse_steps(before["lr_step_epochs"])))
    after = json.loads(json.dumps(config.to_dict()))  # tuples as lists, as the sidecar holds them
    if "dropout" in before:  # the network's own rate, said or left to its default, is no change
        own = default_dropout(saved.model.network)
        before, after = ({**d, "dropout": own if d["dropout"] is None else d["dropout"]} for d in (before, after))
    return {name: [before[name], value] for name, value in after.items()
            if name in before and name != "load_epoch" and before[name] != value}


def open_store(config, num_devices):
    """The :class:`DistributedStore` of ``config.kv_store`` for this process's devices (a dist store connects to
    the job here, and learns this worker's rank)."""
    try:
        return DistributedStore(config.kv_store, num_devices)
    except ValueError as error:
        raise ConfigError("kv_store", str(error)) from None


@contextlib.contextmanager
def writing_under(prefix, store):
    """One run writes under a prefix at a time: the worker that writes checkpoints holds ``PREFIX.lock`` for the
    block, and when another run holds it every worker of this run stops (:class:`~lightcnn.locks.OutputBusy`, or
    ConfigError on the other workers) rather than wait for a rank 0 that has gone."""
    with contextlib.ExitStack() as held:
        busy, holder = None, 0
        if prefix and store.writes_checkpoints:
            try:
                held.enter_context(locks.hold(prefix, field="model_prefix"))
            except locks.OutputBusy as error:
                busy, holder = error, error.pid or -1
        holder = int(store.from_rank0(holder))  # every worker of a distributed run takes part
        if busy is not None:
            raise busy
        if holder:
            raise ConfigError("model_prefix", f"another run is writing under {prefix}"
                                              f"{f' (pid {holder}, as rank 0 found)' if holder > 0 else ''}; wait "
                                              f"for it or choose another prefix")
        yield


@dataclasses.dataclass
class EpochState:
    """What the after-epoch hooks are given, one object per epoch: the epoch just trained (from 0), its rate, the
    network, the devices, this worker's store (``rank``, ``num_workers``) and the training figures. The built-in
    hooks fill in the rest in turn: ``val``, ``verify_accuracy``, then ``row`` (the epoch's metrics)."""

    epoch: int
    lr: float
    net: object
    ctxs: list
    store: object
    train: dict
    started: float  # time.time() at the start of the epoch
    val: dict = dataclasses.field(default_factory=dict)
    verify_accuracy: float = None
    row: dict = None


def fit(config: TrainConfig, data: TrainingData, verify: Callable[[object, mx.Context], float] | None = None,
        logger: logging.Logger | None = None, ctxs: list[mx.Context] | None = None,
        store: DistributedStore | None = None, hooks: Sequence[Callable[[EpochState], None]] = ()) -> FitResult:
    """Train as ``config`` says on ``data`` (a :class:`TrainingData`). Returns a FitResult: the trained network,
    the per-epoch metric rows, this worker's rank and the number of workers.

    After each epoch's training, ``hooks`` (callables ``hook(state)``, ``state`` an :class:`EpochState`) are called
    in order, then the built-in ones: the check that the workers' weights agree, validation, verification
    (``verify(net, ctx) -> accuracy`` when given: verification during training), metrics (the epoch's log line and
    row) and the checkpoint. ``ctxs`` overrides the devices ``config.gpus`` names (tests use several CPU contexts).
    Ctrl-C or SIGTERM before the epoch's metrics saves the partial epoch under ``PREFIX-interrupted`` and raises
    :class:`~lightcnn.training.stopping.Interrupted`; one that arrives during a checkpoint save waits until the save
    is complete. Another run writing under the prefix is :class:`~lightcnn.locks.OutputBusy` before anything is
    written. ``store``: the caller's :func:`open_store`, inside the caller's :func:`writing_under` (the training
    command takes the prefix before it opens its log file there).
    """
    log = logger or logging.getLogger("lightcnn")
    ctxs = ctxs or contexts_from_gpus(config.gpus)
    precision.check_dtype(config.dtype, ctxs)
    precision.init_amp(config.dtype)  # before any network is built: AMP rewrites the operators process-wide
    if data.preprocess is None:
        data = dataclasses.replace(data, preprocess=config.preprocess)
    if store is not None:
        return _fit(config, data, verify, log, ctxs, store, hooks)
    store = open_store(config, len(ctxs))
    with writing_under(config.model_prefix, store):
        return _fit(config, data, verify, log, ctxs, store, hooks)


def _fit(config, data, verify, log, ctxs, store, hooks):
    try:
        worker_batch = store.worker_batch(config.batch_size, len(ctxs))
    except ValueError as error:
        raise ConfigError("batch_size", str(error)) from None
    if store.updates_on_servers and config.lr_plateau_patience:
        raise ConfigError("lr_plateau_patience", f"needs a synchronous store: with {config.kv_store} the servers "
                                                 f"own the learning rate")
    prefix = config.model_prefix
    if store.writes_checkpoints and prefix:
        for path in checkpoint.remove_leftovers(prefix) + checkpoint.remove_leftovers(f"{prefix}-interrupted"):
            log.info("removed %s, left by a run killed while saving", path)
    run = _start(config, data, ctxs, store, log)
    metrics = MetricsLog(prefix, run.begin_epoch if store.writes_checkpoints else 0)
    loss_fn = gluon.loss.SoftmaxCrossEntropyLoss()
    with StopSignals() as stop:
        after_epoch = list(hooks) + _builtin_hooks(run, config, data, loss_fn, metrics, stop, verify, log)
        for epoch in range(run.begin_epoch, config.num_epochs):
            lr = lr_at(epoch, config.lr, config.lr_factor, config.lr_step_epochs, run.plateau.drops)
            seed_everything(config.seed, epoch)
            train_iter = data.make_train_iter(epoch, worker_batch, store.num_workers, store.rank)
            if not store.updates_on_servers:
                run.trainer.set_learning_rate(lr)
            elif epoch == run.begin_epoch:  # before the first step sends the optimizer to the servers
                run.optimizer.lr_scheduler = server_lr_schedule(config.lr, config.lr_factor, config.lr_step_epochs,
                                                                epoch, batches_in(train_iter) * store.num_workers)
            start, state = time.time(), None
            try:
                estimate = config.num_epochs - epoch if epoch == run.begin_epoch else None
                train = train_epoch(run.net, run.trainer, train_iter, ctxs, loss_fn, store, config, epoch, lr, log,
                                    estimate)
                state = EpochState(epoch, lr, run.net, ctxs, store, train, start)
                for hook in after_epoch:
                    hook(state)
            except KeyboardInterrupt as interrupt:
                if state is None or state.row is None:  # the epoch's checkpoint was not begun: save what it has
                    _save_interrupted(run, store, config, epoch, lr, stop, interrupt, log)
                raise
    return FitResult(run.net, metrics.rows, store.rank, store.num_workers)


def _save_interrupted(run, store, config, epoch, lr, stop, interrupt, log):
    prefix = config.model_prefix
    if store.writes_checkpoints and prefix:
        with stop.deferred():
            _save(run, store, f"{prefix}-interrupted", epoch, _state(run, store, config, lr, partial_epoch=True))
        log.error("interrupted (%s) during epoch %d: its partial weights are saved under %s-interrupted; the last "
                  "complete checkpoint is epoch %d", getattr(interrupt, "signal_name", "SIGINT"), epoch, prefix,
                  epoch)


def _builtin_hooks(run, config, data, loss_fn, metrics, stop, verify, log):
    """The after-epoch hooks of every run, in order: the workers' weights agree (before anything is saved),
    validation, verification, metrics (the epoch's log line and row), the checkpoint."""
    epoch_times = []
    prefix = config.model_prefix

    def in_sync(state):
        state.store.check_in_sync(state.net, state.epoch)

    def validation(state):
        if data.val_iter is not None:
            state.val = evaluate_classifier(state.net, data.val_iter, state.ctxs, loss_fn)

    def verification(state):
        if verify is not None:
            state.verify_accuracy = verify(state.net, state.ctxs[0])

    def record_metrics(state):
        epoch, val, train = state.epoch, state.val, state.train
        if run.plateau.update(val.get("loss")):
            log.info("Epoch[%d] validation loss has not improved for %d epochs: learning rate x%g from the next "
                     "epoch on", epoch, config.lr_plateau_patience, config.lr_factor)
        epoch_times.append(time.time() - state.started)
        log.info("Epoch[%d] Train-accuracy=%f Train-loss=%f%s%s lr=%g Speed=%.2f samples/sec Time cost=%.1fs "
                 "ETA=%s", epoch, train["accuracy"], train["loss"],
                 f" Validation-accuracy={val['accuracy']:f} Validation-loss={val['loss']:f}" if val else "",
                 f" Verification-accuracy={state.verify_accuracy:f}" if state.verify_accuracy is not None else "",
                 state.lr, train["samples_per_sec"], epoch_times[-1],
                 progress.format_seconds((config.num_epochs - epoch - 1) * sum(epoch_times) / len(epoch_times)))
        state.row = epoch_row(epoch + 1, state.lr, train, val, epoch_times[-1], state.verify_accuracy)
        metrics.add(state.row)

    def save_checkpoint(state):
        if not (state.store.writes_checkpoints and prefix):
            return
        epoch = state.epoch + 1
        with stop.deferred():  # a stop signal now waits for the checkpoint, then ends the run
            _save(run, state.store, prefix, epoch, _state(run, state.store, config, state.lr, metrics=state.row))
            metrics.write()
            log.info("Saved checkpoint to \"%s\"", checkpoint.params_path(prefix, epoch))
            removed = checkpoint.prune(prefix, config.keep_checkpoints, epoch)
            if removed:
                log.info("Removed the checkpoints of epoch(s) %s (keeping the newest %d)",
                         ", ".join(map(str, removed)), config.keep_checkpoints)

    return [in_sync, validation, verification, record_metrics, save_checkpoint]


def _state(run, store, config, lr, metrics=None, partial_epoch=False):
    """The training state a checkpoint records (what a resume continues from)."""
    return TrainingState(config.to_dict(), lr, run.plateau.state(),
                         metrics={k: v for k, v in (metrics or {}).items() if k != "epoch"},
                         optimizer_states_saved=not store.updates_on_servers, partial_epoch=partial_epoch,
                         history=run.history)


def _save(run, store, prefix, epoch, state):
    # dist_async: the servers hold the optimizer states
    trainer = None if store.updates_on_servers else run.trainer
    checkpoint.save(run.net, trainer, prefix, dataclasses.replace(run.sidecar, epoch=epoch, training=state))
