"""The training loop: setting a run up (fresh or resumed), one epoch, and the epochs with their checkpoints.

A plain loop (no hooks): for each epoch, seed every source of randomness from (seed, epoch), build that epoch's
training iterator, train, validate, checkpoint. Nothing random carries over from one epoch to the next except what
the checkpoint stores (weights, Adam states, the plateau state), so a run resumed from epoch N continues exactly as
the uninterrupted run would have.
"""
import collections
import contextlib
import dataclasses
import json
import logging
import math
import os
import random
import time

import numpy as np

import mxnet as mx
from mxnet import autograd, gluon

from lightcnn import checkpoint, cpu, init, locks, precision, progress
from lightcnn.checkpoint import Sidecar, TrainingState
from lightcnn.devices import contexts_from_gpus
from lightcnn.model import default_dropout
from lightcnn.training.config import ConfigError
from lightcnn.training.distributed import DistributedStore
from lightcnn.training.metrics import MetricsLog, epoch_row
from lightcnn.training.schedule import Plateau, lr_at, parse_steps, server_lr_schedule
from lightcnn.training.stopping import StopSignals

FitResult = collections.namedtuple("FitResult", "net rows rank num_workers")


class TrainingError(RuntimeError):
    """Training cannot go on (a non-finite loss, an empty epoch); the message says where and why."""


@dataclasses.dataclass
class TrainingData:
    """What the loop trains on. ``make_train_iter(epoch, batch_size, num_parts, part_index)`` gives a fresh, seeded
    iterator per epoch over this worker's share; ``classes`` is the classes.txt the labels come from; ``preprocess``
    the input rules of these faces (the config's, with how the dataset builder made them: fit, align), which the
    checkpoints record (None: the config's alone)."""

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
        _check_resume(saved, spec, config)
        _check_resume_faces(saved, data.preprocess, config)
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
            origin = dict(origin, kind="fine-tuned", pretrained=_load_pretrained(net, spec, config, ctxs, log))
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
    sidecar = Sidecar(model=spec, preprocess=data.preprocess or config.preprocess, classes=data.classes, origin=origin)
    return _Run(net, trainer, optimizer, begin_epoch, plateau, sidecar, history)


def _pretrained_source(text):
    """'PREFIX[:EPOCH]' -> (prefix, sidecar of that epoch, or of the last one saved)."""
    prefix, _, epoch = text.rpartition(":")
    if not (prefix and epoch.isdigit()):
        prefix, epoch = text, None
    return prefix, checkpoint.read_sidecar(prefix, checkpoint.last_epoch(prefix) if epoch is None else int(epoch))


def _load_pretrained(net, spec, config, ctxs, log):
    """Load another checkpoint's trunk and embedding into ``net`` (its classifier stays freshly initialised, sized
    for this data); the pretrained network and its input must be this run's. Returns what the sidecar records."""
    prefix, source = _pretrained_source(config.pretrained)
    where = f"the pretrained checkpoint {prefix} (epoch {source.epoch})"
    for name in ("network", "mfm_type"):
        if getattr(source.model, name) != getattr(spec, name):
            raise ConfigError(name, f"{where} is {name}={getattr(source.model, name)!r}, this run asks for "
                                    f"{getattr(spec, name)!r}")
    if source.preprocess is not None:
        for name in ("image_size", "scale", "mean"):
            theirs, ours = getattr(source.preprocess, name), getattr(config.preprocess, name)
            if theirs != ours:
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


def _check_resume(saved, spec, config):
    """The settings that define the network or its input must be the checkpoint's (ConfigError naming both).
    Dropout is compared as the rate trained with: None stands for the network's own, on either side."""
    pairs = [(name, getattr(saved.model, name), getattr(spec, name)) for name in ("network", "num_classes",
                                                                                 "mfm_type")]
    pairs.append(("dropout", saved.model.effective_dropout, spec.effective_dropout))
    if saved.preprocess is not None:
        pairs += [(name, getattr(saved.preprocess, name), getattr(config.preprocess, name))
                  for name in ("image_size", "scale", "mean")]
    for name, theirs, ours in pairs:
        if theirs != ours:
            raise ConfigError(name, f"the checkpoint of epoch {saved.epoch} under {config.model_prefix} was trained "
                                    f"with {name}={theirs!r}, this run asks for {ours!r}; a resume must keep the "
                                    f"settings that define the network and its input")


def _check_resume_faces(saved, preprocess, config):
    """A resume must train on faces made the same way (aligned or not, the same fit) as the checkpoint's."""
    if saved.preprocess is None or preprocess is None:
        return
    for name in ("align", "fit"):
        theirs, ours = getattr(saved.preprocess, name), getattr(preprocess, name)
        if theirs != ours:
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


def fit(config, data, verify=None, logger=None, ctxs=None, store=None):
    """Train as ``config`` says on ``data`` (a :class:`TrainingData`). Returns a FitResult: the trained network,
    the per-epoch metric rows, this worker's rank and the number of workers.

    ``verify(net, ctx) -> accuracy`` is called after each epoch when given (verification during training).
    ``ctxs`` overrides the devices ``config.gpus`` names (tests use several CPU contexts). Ctrl-C or SIGTERM saves
    the partial epoch under ``PREFIX-interrupted`` and raises :class:`~lightcnn.training.stopping.Interrupted`; one
    that arrives during a checkpoint save waits until the save is complete. Another run writing under the prefix
    is :class:`~lightcnn.locks.OutputBusy` before anything is written. ``store``: the caller's
    :func:`open_store`, inside the caller's :func:`writing_under` (train_lightcnn.py takes the prefix before it opens
    its log file there).
    """
    log = logger or logging.getLogger("lightcnn")
    ctxs = ctxs or contexts_from_gpus(config.gpus)
    precision.check_dtype(config.dtype, ctxs)
    precision.init_amp(config.dtype)  # before any network is built: AMP rewrites the operators process-wide
    if store is not None:
        return _fit(config, data, verify, log, ctxs, store)
    store = open_store(config, len(ctxs))
    with writing_under(config.model_prefix, store):
        return _fit(config, data, verify, log, ctxs, store)


def _fit(config, data, verify, log, ctxs, store):
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
    epoch_times = []
    with StopSignals() as stop:
        for epoch in range(run.begin_epoch, config.num_epochs):
            lr = lr_at(epoch, config.lr, config.lr_factor, config.lr_step_epochs, run.plateau.drops)
            seed_everything(config.seed, epoch)
            train_iter = data.make_train_iter(epoch, worker_batch, store.num_workers, store.rank)
            if not store.updates_on_servers:
                run.trainer.set_learning_rate(lr)
            elif epoch == run.begin_epoch:  # before the first step sends the optimizer to the servers
                run.optimizer.lr_scheduler = server_lr_schedule(config.lr, config.lr_factor, config.lr_step_epochs,
                                                                epoch, _batches_in(train_iter) * store.num_workers)
            start = time.time()
            try:
                estimate = config.num_epochs - epoch if epoch == run.begin_epoch else None
                train = train_epoch(run.net, run.trainer, train_iter, ctxs, loss_fn, store, config, epoch, lr, log,
                                    estimate)
                store.check_in_sync(run.net, epoch)
                val = evaluate_classifier(run.net, data.val_iter, ctxs, loss_fn) if data.val_iter is not None else {}
                verify_accuracy = verify(run.net, ctxs[0]) if verify is not None else None
            except KeyboardInterrupt as interrupt:
                if store.writes_checkpoints and prefix:
                    with stop.deferred():
                        _save(run, store, f"{prefix}-interrupted", epoch, _state(run, store, config, lr,
                                                                                 partial_epoch=True))
                    log.error("interrupted (%s) during epoch %d: its partial weights are saved under "
                              "%s-interrupted; the last complete checkpoint is epoch %d", getattr(
                                  interrupt, "signal_name", "SIGINT"), epoch, prefix, epoch)
                raise
            if run.plateau.update(val.get("loss")):
                log.info("Epoch[%d] validation loss has not improved for %d epochs: learning rate x%g from the next "
                         "epoch on", epoch, config.lr_plateau_patience, config.lr_factor)
            epoch_times.append(time.time() - start)
            log.info("Epoch[%d] Train-accuracy=%f Train-loss=%f%s%s lr=%g Speed=%.2f samples/sec Time cost=%.1fs "
                     "ETA=%s", epoch, train["accuracy"], train["loss"],
                     f" Validation-accuracy={val['accuracy']:f} Validation-loss={val['loss']:f}" if val else "",
                     f" Verification-accuracy={verify_accuracy:f}" if verify_accuracy is not None else "",
                     lr, train["samples_per_sec"], epoch_times[-1],
                     progress.format_seconds((config.num_epochs - epoch - 1) * sum(epoch_times) / len(epoch_times)))
            metrics.add(epoch_row(epoch + 1, lr, train, val, epoch_times[-1], verify_accuracy))
            if store.writes_checkpoints and prefix:
                with stop.deferred():  # a stop signal now waits for the checkpoint, then ends the run
                    _save(run, store, prefix, epoch + 1, _state(run, store, config, lr, metrics=metrics.rows[-1]))
                    metrics.write()
                    log.info("Saved checkpoint to \"%s\"", checkpoint.params_path(prefix, epoch + 1))
                    removed = checkpoint.prune(prefix, config.keep_checkpoints, epoch + 1)
                    if removed:
                        log.info("Removed the checkpoints of epoch(s) %s (keeping the newest %d)",
                                 ", ".join(map(str, removed)), config.keep_checkpoints)
    return FitResult(run.net, metrics.rows, store.rank, store.num_workers)


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


def train_epoch(net, trainer, train_iter, ctxs, loss_fn, store, config, epoch, lr, log, estimate_epochs=None):
    """One epoch; returns mean loss, accuracy and speed. A non-finite loss stops before the update is applied.
    ``estimate_epochs``: after the first displayed batches, log how long that many epochs take at their speed."""
    totals = np.zeros(3)  # loss, correct, samples: the epoch's
    window, window_start, epoch_start = np.zeros(3), time.time(), time.time()
    for nbatch, batch in enumerate(train_iter):
        data = gluon.utils.split_and_load(batch.data[0], ctxs, even_split=False)
        label = gluon.utils.split_and_load(batch.label[0], ctxs, even_split=False)
        with autograd.record():
            outputs = [net(x) for x in data]
            losses = [loss_fn(logits, y) for (logits, _), y in zip(outputs, label)]
            # float16: the loss scaled up; the Trainer scales the gradients back and skips a step that overflowed
            differentiated = precision.scaled(losses, trainer)
        autograd.backward(differentiated)
        # reading the loss waits only for the forward pass; the backward pass keeps running meanwhile
        batch_loss = sum(loss.sum().asscalar() for loss in losses)
        if not store.all_finite(batch_loss):
            what = f"non-finite loss ({batch_loss})" if not math.isfinite(batch_loss) else \
                "non-finite loss on another worker"
            raise TrainingError(f"{what} at epoch {epoch}, batch {nbatch}: training stopped before applying this "
                                f"update; the last complete checkpoint is epoch {epoch}. Try a lower learning rate "
                                f"(now {lr:g}).")
        store.sum_gradients()
        trainer.step(store.samples_per_update(config.batch_size))
        correct = sum(_correct(logits, y) for (logits, _), y in zip(outputs, label))
        counts = np.array([batch_loss, correct, batch.data[0].shape[0]])
        totals += counts
        window += counts
        if config.disp_batches and (nbatch + 1) % config.disp_batches == 0:
            seconds_per_batch = max(time.time() - window_start, 1e-9) / config.disp_batches
            log.info("Epoch[%d] Batch [%d-%d]\tSpeed: %.2f samples/sec\taccuracy=%f\tloss=%f\tlr=%g", epoch,
                     nbatch + 1 - config.disp_batches, nbatch + 1, window[2] / seconds_per_batch / config.disp_batches,
                     window[1] / window[2], window[0] / window[2], lr)
            if estimate_epochs and nbatch + 1 == config.disp_batches:
                batches = _batches_in(train_iter) * estimate_epochs
                log.info("Estimate: %d epoch(s) of %d batches take about %s of training on this machine at this "
                         "speed (%s; CPU: %s)", estimate_epochs, batches // estimate_epochs,
                         progress.format_seconds(batches * seconds_per_batch), config.dtype, cpu.describe())
            window, window_start = np.zeros(3), time.time()
    if totals[2] == 0:
        raise TrainingError(f"epoch {epoch}: the training iterator gave no batch")
    mx.nd.waitall()
    return {"loss": totals[0] / totals[2], "accuracy": totals[1] / totals[2], "samples": int(totals[2]),
            "samples_per_sec": totals[2] / max(time.time() - epoch_start, 1e-9)}


def evaluate_classifier(net, data_iter, ctxs, loss_fn):
    """Accuracy and mean loss over a validation iterator, counting every real sample once (pads excluded)."""
    data_iter.reset()
    correct, total, loss_sum = 0.0, 0, 0.0
    for batch in data_iter:
        real = batch.data[0].shape[0] - (batch.pad or 0)
        datas = gluon.utils.split_and_load(batch.data[0][:real], ctxs, even_split=False)
        labels = gluon.utils.split_and_load(batch.label[0][:real], ctxs, even_split=False)
        for x, y in zip(datas, labels):
            logits, _ = net(x)
            loss_sum += loss_fn(logits, y).sum().asscalar()
            correct += _correct(logits, y)
            total += x.shape[0]
    if total == 0:
        return {}
    return {"accuracy": correct / total, "loss": loss_sum / total}


def _correct(logits, labels):
    # compared in float32: bfloat16 holds integers exactly only up to 256, float16 up to 2048
    return (precision.to_float32(logits).argmax(axis=1) == labels.astype("float32")).sum().asscalar()


def _batches_in(train_iter):
    try:
        return len(train_iter)
    except TypeError:  # mx.io.NDArrayIter
        return -(-train_iter.num_data // train_iter.batch_size)


