"""The training loop: devices, kvstore, the learning-rate rule, metrics, logging, checkpoints and resume.

A plain loop (no hooks): for each epoch, seed every source of randomness from (seed, epoch), build that epoch's
training iterator, train, validate, checkpoint. Because nothing random carries over from one epoch to the next
except what the checkpoint stores (weights, Adam states, the plateau state), a run resumed with --load-epoch N
continues exactly as the uninterrupted run would have.
"""
import collections
import csv
import logging
import math
import os
import random
import time

import numpy as np

import lightcnn  # noqa: F401
import mxnet as mx
from mxnet import autograd, gluon

from lightcnn import checkpoint
from lightcnn.devices import contexts_from_gpus
from lightcnn.init import LightCNNInit
from lightcnn.model import canonical_name, get_model

LOG_FORMAT = "%(asctime)s %(levelname)s %(message)s"


FitResult = collections.namedtuple("FitResult", "net rows rank num_workers")


class TrainingError(RuntimeError):
    """Training cannot go on (a non-finite loss, a bad resume); the message says where and why."""


def parse_steps(text):
    """'0,100' -> [0, 100]."""
    if text is None or str(text).strip() == "":
        return []
    try:
        return [int(s) for s in str(text).split(",") if s.strip()]
    except ValueError:
        raise ValueError(f"--lr-step-epochs takes comma-separated epochs such as '30,60', got {text!r}") from None


def lr_at(epoch, base_lr, factor, steps, plateau_drops=0):
    """MXNet fit.py's rule: the rate is multiplied by ``factor`` once for every step s with epoch >= s (so
    ``--lr 1e-4 --lr-step-epochs 0,100`` trains at 1e-5 from epoch 0 and 1e-6 from epoch 100), and once more for
    every plateau drop so far. A pure function of the epoch: a resumed run gets the same rate."""
    return base_lr * factor ** (sum(epoch >= s for s in steps) + plateau_drops)


def server_lr_schedule(base_lr, factor, steps, begin_epoch, updates_per_epoch):
    """``lr_at`` as a function of the servers' update count, for dist_async, where the servers apply the updates
    (each worker's push is one update, so an epoch is about ``updates_per_epoch`` = batches x workers). None when the
    rate no longer changes."""
    later = [s - begin_epoch for s in steps if s > begin_epoch]
    if not later:
        return None
    return mx.lr_scheduler.MultiFactorScheduler(step=[s * updates_per_epoch for s in sorted(later)], factor=factor,
                                                base_lr=lr_at(begin_epoch, base_lr, factor, steps))


def _batches_in(train_iter):
    try:
        return len(train_iter)
    except TypeError:  # mx.io.NDArrayIter
        return -(-train_iter.num_data // train_iter.batch_size)


class Plateau:
    """--lr-plateau-patience: drop the rate by the factor when validation loss has not improved for P epochs.
    Its state is saved in the checkpoint sidecar, so a resume keeps it."""

    def __init__(self, patience, best=None, bad_epochs=0, drops=0):
        self.patience, self.best, self.bad_epochs, self.drops = patience, best, bad_epochs, drops

    def update(self, val_loss):
        """Record an epoch's validation loss; True when the rate should drop now."""
        if not self.patience or val_loss is None:
            return False
        if self.best is None or val_loss < self.best:
            self.best, self.bad_epochs = val_loss, 0
            return False
        self.bad_epochs += 1
        if self.bad_epochs >= self.patience:
            self.bad_epochs, self.drops = 0, self.drops + 1
            return True
        return False

    def state(self):
        return {"best": self.best, "bad_epochs": self.bad_epochs, "drops": self.drops}


def seed_everything(seed, epoch):
    """Seed MXNet (dropout), numpy and Python for one epoch from (seed, epoch)."""
    value = seed * 1000 + epoch
    mx.random.seed(value)
    np.random.seed(value % 2 ** 32)
    random.seed(value)


def setup_logging(log_path=None, quiet=False):
    logger = logging.getLogger("lightcnn")
    logger.setLevel(logging.INFO)
    logger.handlers.clear()
    logger.propagate = False
    formatter = logging.Formatter(LOG_FORMAT)
    if not quiet:
        console = logging.StreamHandler()
        console.setFormatter(formatter)
        logger.addHandler(console)
    if log_path:
        os.makedirs(os.path.dirname(os.path.abspath(log_path)), exist_ok=True)
        handler = logging.FileHandler(log_path)
        handler.setFormatter(formatter)
        logger.addHandler(handler)
    return logger


# kvstore keys of the cross-worker checks: far above the Trainer's (0 .. number of parameters - 1)
WEIGHTS_KEY = 1 << 30
DIFFERING_COUNT_KEY = WEIGHTS_KEY + 1
NAN_CHECK_KEY = WEIGHTS_KEY + 2


class DistributedStore:
    """The kvstore facts the loop needs: rank, number of workers, and whether this worker writes checkpoints."""

    def __init__(self, kv_store, num_devices):
        self.name = kv_store
        self.is_dist = kv_store.startswith("dist")
        self.is_horovod = kv_store == "horovod"
        if self.is_horovod:
            try:
                import horovod.mxnet as hvd
            except ImportError:
                raise TrainingError("--kv-store horovod needs Horovod built with MXNet support "
                                    "(pip install horovod with HOROVOD_WITH_MXNET=1); it is not installed") from None
            hvd.init()
            self.hvd, self.kv = hvd, None
            self.rank, self.num_workers = hvd.rank(), hvd.size()
        elif self.is_dist:
            self.kv = mx.kv.create(kv_store)
            self.rank, self.num_workers = self.kv.rank, self.kv.num_workers
        else:
            # a single process: Gluon's Trainer makes its own local/device store when it has several devices
            self.kv = kv_store if num_devices > 1 else None
            self.rank, self.num_workers = 0, 1

    @property
    def writes_checkpoints(self):
        return self.rank == 0

    @property
    def updates_on_servers(self):
        """dist_async: Gluon can only apply the updates on the servers, so the optimizer (its learning-rate
        schedule and states) lives there."""
        return self.is_dist and "async" in self.name

    def samples_per_update(self, global_batch):
        """The batch one update averages over: a dist_async server applies each worker's push on its own."""
        return global_batch // self.num_workers if self.updates_on_servers else global_batch

    @property
    def keeps_workers_in_sync(self):
        """dist_sync workers apply the same update to the same weights; dist_async workers legitimately drift."""
        return self.is_dist and not self.updates_on_servers

    def broadcast_before_training(self, net, trainer, ctxs):
        """Gluon broadcasts rank 0's weights lazily, inside the first ``trainer.step``: rank 0 then pulls a weight
        into the parameter itself while the same step pushes that parameter's gradient, and MXNet orders those two
        requests only by the order its engine happens to dispatch them. Do the broadcast up front and wait for it.
        (dist_async keeps Gluon's own order: its first step also sends the optimizer, schedule included, to the
        servers, which is set once the epoch's length is known.)"""
        if not self.keeps_workers_in_sync:
            return
        # resolves the deferred parameter shapes; in train mode, because an inference pass lets oneDNN reorder the
        # convolution weights in place into its own layout, which the kvstore cannot push
        with autograd.train_mode():
            net(mx.nd.zeros((1,) + tuple(net.input_shape), ctx=ctxs[0]))
        if not trainer._kv_initialized:
            trainer._init_kvstore()
        if trainer._params_to_init:
            trainer._init_params()
        mx.nd.waitall()
        if self.keeps_workers_in_sync:
            size = sum(p.list_data()[0].size for p in net.collect_params().values())
            self.kv.init(WEIGHTS_KEY, mx.nd.zeros((size,)))
            self.kv.init(DIFFERING_COUNT_KEY, mx.nd.zeros((1,)))
            self.kv.init(NAN_CHECK_KEY, mx.nd.zeros((1,)))

    def all_finite(self, value):
        """Whether ``value`` is finite here and on every other dist_sync worker: a worker that stopped alone on a
        NaN would leave the others waiting for its gradients forever, so they agree on every batch."""
        finite = math.isfinite(value)
        if not self.keeps_workers_in_sync:
            return finite
        not_finite = mx.nd.zeros((1,))
        self.kv.pushpull(NAN_CHECK_KEY, mx.nd.array([0.0 if finite else 1.0]), out=not_finite)
        return not_finite.asscalar() == 0

    def check_in_sync(self, net, epoch):
        """Compare every dist_sync worker's weights with rank 0's, exactly, and stop every worker if one differs.

        Rank 0 pushes its weights and the others push zeros, so the sum each worker pulls back is rank 0's weights
        bit for bit; a second push sums the workers' counts of differing parameters, so all stop together.
        """
        if not self.keeps_workers_in_sync:
            return
        params = list(net.collect_params().values())
        # asnumpy, not reshape: after a validation pass oneDNN may hold a weight in its own layout
        mine = np.concatenate([p.list_data()[0].asnumpy().ravel() for p in params])
        rank0 = mx.nd.zeros(mine.shape)
        self.kv.pushpull(WEIGHTS_KEY, mx.nd.array(mine if self.rank == 0 else np.zeros_like(mine)), out=rank0)
        rank0 = rank0.asnumpy()
        differing, start = [], 0
        for p in params:
            size = p.list_data()[0].size
            if not np.array_equal(mine[start:start + size], rank0[start:start + size]):
                differing.append(p.name)
            start += size
        total = mx.nd.zeros((1,))
        self.kv.pushpull(DIFFERING_COUNT_KEY, mx.nd.array([len(differing)]), out=total)
        total = int(total.asscalar())
        if total:
            raise TrainingError(
                f"epoch {epoch}: the dist_sync workers' weights are out of sync ({total} parameter(s) differ from "
                f"rank 0's over all workers; on rank {self.rank}: {', '.join(differing) or 'none'}). Training "
                f"stopped before this epoch's checkpoint; the last complete checkpoint is epoch {epoch}.")


def _metrics_row(epoch, lr, train, val, seconds, verify=None):
    row = {"epoch": epoch, "lr": lr, "train_loss": train["loss"], "train_accuracy": train["accuracy"],
           "val_loss": val.get("loss"), "val_accuracy": val.get("accuracy"), "seconds": seconds,
           "samples_per_sec": train["samples_per_sec"]}
    if verify is not None:
        row["verify_accuracy"] = verify
    return row


def write_metrics(rows, csv_path, png_path):
    """The per-epoch metrics CSV and the training-curve PNG (loss and accuracy per epoch), rewritten each epoch."""
    fields = sorted({key for row in rows for key in row}, key=lambda k: list(rows[-1]).index(k)
                    if k in rows[-1] else 99)
    text_rows = [{k: ("" if row.get(k) is None else row.get(k)) for k in fields} for row in rows]
    temp = csv_path + ".tmp"
    with open(temp, "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=fields)
        writer.writeheader()
        writer.writerows(text_rows)
    os.replace(temp, csv_path)
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:  # the curve is a convenience; the CSV has the numbers
        return
    epochs = [r["epoch"] for r in rows]
    fig, (ax_loss, ax_acc) = plt.subplots(1, 2, figsize=(10, 4))
    ax_loss.plot(epochs, [r["train_loss"] for r in rows], "o-", label="train")
    if any(r.get("val_loss") is not None for r in rows):
        ax_loss.plot(epochs, [r.get("val_loss") for r in rows], "s-", label="validation")
    ax_loss.set(xlabel="epoch", ylabel="softmax cross-entropy", title="loss")
    ax_acc.plot(epochs, [r["train_accuracy"] for r in rows], "o-", label="train")
    if any(r.get("val_accuracy") is not None for r in rows):
        ax_acc.plot(epochs, [r.get("val_accuracy") for r in rows], "s-", label="validation")
    if any(r.get("verify_accuracy") is not None for r in rows):
        ax_acc.plot(epochs, [r.get("verify_accuracy") for r in rows], "^-", label="verification (10-fold)")
    ax_acc.set(xlabel="epoch", ylabel="accuracy", title="accuracy")
    for ax in (ax_loss, ax_acc):
        ax.grid(alpha=0.3)
        ax.legend()
    fig.tight_layout()
    fig.savefig(png_path + ".tmp.png", dpi=100)
    plt.close(fig)
    os.replace(png_path + ".tmp.png", png_path)


def _read_metrics(csv_path, up_to_epoch):
    """Rows of an existing metrics CSV up to a resumed epoch (so the curve continues across a resume)."""
    if not os.path.exists(csv_path):
        return []
    rows = []
    with open(csv_path) as f:
        for row in csv.DictReader(f):
            parsed = {k: (float(v) if v not in ("", None) else None) for k, v in row.items()}
            parsed["epoch"] = int(parsed["epoch"])
            if parsed["epoch"] <= up_to_epoch:
                rows.append(parsed)
    return rows


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
            correct += (logits.argmax(axis=1) == y.astype(logits.dtype)).sum().asscalar()
            total += x.shape[0]
    if total == 0:
        return {}
    return {"accuracy": correct / total, "loss": loss_sum / total}


def fit(args, make_train_iter, val_iter=None, num_classes=None, sidecar_extra=None, verify=None, logger=None):
    """Train ``args.network`` from ``make_train_iter(epoch, batch_size, num_parts, part_index)`` (a fresh, seeded
    iterator per epoch, giving this worker's share of the global batch). Returns a FitResult: the trained network,
    the per-epoch metric rows, this worker's rank and the number of workers.

    ``args`` carries the command-line options of train_lightcnn.py. ``verify(net, ctx) -> accuracy`` is called
    after each epoch when given (LFW-style verification during training).
    """
    logger = logger or logging.getLogger("lightcnn")
    ctxs = contexts_from_gpus(args.gpus)
    store = DistributedStore(args.kv_store, len(ctxs))
    if args.batch_size % store.num_workers:
        raise TrainingError(f"--batch-size {args.batch_size} (global) must divide evenly among "
                            f"{store.num_workers} workers")
    worker_batch = args.batch_size // store.num_workers
    if worker_batch < len(ctxs):
        raise TrainingError(f"--batch-size {args.batch_size} gives {worker_batch} images per worker, fewer than "
                            f"its {len(ctxs)} devices: every device needs at least one image per batch")
    steps = parse_steps(args.lr_step_epochs)
    if store.updates_on_servers and args.lr_plateau_patience:
        raise TrainingError(f"--lr-plateau-patience needs a synchronous store: with --kv-store {args.kv_store} the "
                            f"servers own the learning rate")
    model_options = {"mfm_type": args.mfm_type}
    if args.dropout is not None:
        model_options["dropout"] = args.dropout

    net = get_model(args.network, num_classes, **model_options)
    begin_epoch = args.load_epoch or 0
    plateau = Plateau(args.lr_plateau_patience)
    if begin_epoch:
        saved = checkpoint.read_sidecar(args.model_prefix, begin_epoch)
        for key, ours, theirs in (("network", canonical_name(args.network), canonical_name(saved["network"])),
                                  ("num_classes", num_classes, saved.get("num_classes"))):
            if theirs != ours:
                raise TrainingError(f"checkpoint {checkpoint.sidecar_path(args.model_prefix, begin_epoch)} is for "
                                    f"{key}={saved.get(key)!r}, but this run asks for {ours!r}")
        states_saved = saved.get("optimizer_states_saved", True)
        if states_saved and not os.path.exists(checkpoint.states_path(args.model_prefix, begin_epoch)):
            raise TrainingError(f"--load-epoch {begin_epoch}: trainer states "
                                f"{checkpoint.states_path(args.model_prefix, begin_epoch)} are missing")
        checkpoint.load_weights(net, args.model_prefix, begin_epoch, ctxs)
        plateau = Plateau(args.lr_plateau_patience, **saved.get("plateau", {}))
        logger.info("resumed from %s at epoch %d", checkpoint.params_path(args.model_prefix, begin_epoch),
                    begin_epoch)
    else:
        mx.random.seed(args.seed)
        net.initialize(LightCNNInit(factor_type=args.xavier_factor_type, magnitude=args.xavier_magnitude),
                       ctx=ctxs)
    net.hybridize(static_alloc=True, static_shape=True)

    optimizer_params = {"learning_rate": lr_at(begin_epoch, args.lr, args.lr_factor, steps, plateau.drops),
                        "wd": args.wd}
    if args.optimizer in ("sgd", "nag"):
        optimizer_params["momentum"] = args.mom
    if store.is_horovod:
        store.hvd.broadcast_parameters(net.collect_params(), root_rank=0)
        trainer = store.hvd.DistributedTrainer(net.collect_params(), args.optimizer, optimizer_params)
    else:
        # Updates run on the workers (update_on_kvstore=False): every worker applies the same update to the same
        # summed gradient, and the optimizer states stay local, so they can be checkpointed. dist_async is the
        # exception: Gluon applies its updates on the servers, and the states stay there.
        optimizer = mx.optimizer.create(args.optimizer, **optimizer_params)
        trainer = gluon.Trainer(net.collect_params(), optimizer, kvstore=store.kv,
                                update_on_kvstore=None if store.kv is None else store.updates_on_servers)
    if begin_epoch and store.updates_on_servers:
        logger.info("dist_async: the optimizer states start afresh on the servers (they are not checkpointed)")
    elif begin_epoch and states_saved:
        trainer.load_states(checkpoint.states_path(args.model_prefix, begin_epoch))
    elif begin_epoch:
        logger.info("the checkpoint of epoch %d has no optimizer states (a dist_async run): they start afresh",
                    begin_epoch)
    store.broadcast_before_training(net, trainer, ctxs)

    loss_fn = gluon.loss.SoftmaxCrossEntropyLoss()
    prefix = args.model_prefix
    csv_path, png_path = f"{prefix}-metrics.csv", f"{prefix}-curve.png"
    rows = _read_metrics(csv_path, begin_epoch) if begin_epoch and store.writes_checkpoints else []
    sidecar_base = dict(sidecar_extra or {}, network=args.network, num_classes=num_classes,
                        model_options=model_options, input_shape=list(net.input_shape),
                        optimizer_states_saved=not store.updates_on_servers)
    states_of = None if store.updates_on_servers else trainer  # dist_async: the servers hold them
    epoch_times = []
    for epoch in range(begin_epoch, args.num_epochs):
        lr = lr_at(epoch, args.lr, args.lr_factor, steps, plateau.drops)
        seed_everything(args.seed, epoch)
        train_iter = make_train_iter(epoch, worker_batch, store.num_workers, store.rank)
        if not store.updates_on_servers:
            trainer.set_learning_rate(lr)
        elif epoch == begin_epoch:  # before the first step sends the optimizer to the servers
            optimizer.lr_scheduler = server_lr_schedule(args.lr, args.lr_factor, steps, begin_epoch,
                                                        _batches_in(train_iter) * store.num_workers)
        start = time.time()
        try:
            train = _train_epoch(net, trainer, train_iter, ctxs, loss_fn, epoch, args, lr, logger, store)
        except KeyboardInterrupt:
            if store.writes_checkpoints:
                interrupted = f"{prefix}-interrupted"
                checkpoint.save_checkpoint(net, states_of, interrupted, epoch,
                                           dict(sidecar_base, partial_epoch=True, lr=lr, plateau=plateau.state()))
                logger.info("interrupted during epoch %d: partial weights saved under %s; the last complete "
                            "checkpoint is epoch %d", epoch, interrupted, epoch)
            raise
        store.check_in_sync(net, epoch)
        val = evaluate_classifier(net, val_iter, ctxs, loss_fn) if val_iter is not None else {}
        if plateau.update(val.get("loss")):
            logger.info("Epoch[%d] validation loss has not improved for %d epochs: learning rate x%g from the next "
                        "epoch on", epoch, args.lr_plateau_patience, args.lr_factor)
        verify_acc = verify(net, ctxs[0]) if verify is not None else None
        seconds = time.time() - start
        epoch_times.append(seconds)
        eta = (args.num_epochs - epoch - 1) * sum(epoch_times) / len(epoch_times)
        logger.info("Epoch[%d] Train-accuracy=%f Train-loss=%f%s%s lr=%g Speed=%.2f samples/sec Time cost=%.1fs "
                    "ETA=%s", epoch, train["accuracy"], train["loss"],
                    f" Validation-accuracy={val['accuracy']:f} Validation-loss={val['loss']:f}" if val else "",
                    f" Verification-accuracy={verify_acc:f}" if verify_acc is not None else "",
                    lr, train["samples_per_sec"], seconds, _format_seconds(eta))
        rows.append(_metrics_row(epoch + 1, lr, train, val, seconds, verify_acc))
        if store.writes_checkpoints and prefix:
            checkpoint.save_checkpoint(net, states_of, prefix, epoch + 1,
                                       dict(sidecar_base, lr=lr, plateau=plateau.state(),
                                            metrics={k: v for k, v in rows[-1].items() if k != "epoch"}))
            write_metrics(rows, csv_path, png_path)
            logger.info("Saved checkpoint to \"%s\"", checkpoint.params_path(prefix, epoch + 1))
            removed = checkpoint.prune(prefix, args.keep_checkpoints, epoch + 1)
            if removed:
                logger.info("Removed the checkpoints of epoch(s) %s (--keep-checkpoints %d)",
                            ", ".join(map(str, removed)), args.keep_checkpoints)
    return FitResult(net, rows, store.rank, store.num_workers)


def _format_seconds(seconds):
    seconds = int(round(seconds))
    return f"{seconds // 3600}:{seconds % 3600 // 60:02d}:{seconds % 60:02d}"


def _train_epoch(net, trainer, train_iter, ctxs, loss_fn, epoch, args, lr, logger, store):
    """One epoch; returns mean loss, accuracy and speed. A non-finite loss stops before the update is applied."""
    loss_total, correct_total, seen = 0.0, 0.0, 0
    window_loss, window_correct, window_seen, window_start = 0.0, 0.0, 0, time.time()
    epoch_start = time.time()
    for nbatch, batch in enumerate(train_iter):
        data = gluon.utils.split_and_load(batch.data[0], ctxs, even_split=False)
        label = gluon.utils.split_and_load(batch.label[0], ctxs, even_split=False)
        with autograd.record():
            outputs = [net(x) for x in data]
            losses = [loss_fn(logits, y) for (logits, _), y in zip(outputs, label)]
        autograd.backward(losses)
        # reading the loss waits only for the forward pass; the backward pass keeps running meanwhile
        batch_loss = sum(loss.sum().asscalar() for loss in losses)
        if not store.all_finite(batch_loss):
            what = f"non-finite loss ({batch_loss})" if not math.isfinite(batch_loss) else \
                "non-finite loss on another worker"
            raise TrainingError(f"{what} at epoch {epoch}, batch {nbatch}: training stopped "
                                f"before applying this update; the last complete checkpoint is epoch {epoch}. "
                                f"Try a lower --lr (now {lr:g}).")
        batch_size = batch.data[0].shape[0]
        trainer.step(store.samples_per_update(args.batch_size))
        batch_correct = sum((logits.argmax(axis=1) == y.astype(logits.dtype)).sum().asscalar()
                            for (logits, _), y in zip(outputs, label))
        loss_total += batch_loss
        correct_total += batch_correct
        seen += batch_size
        window_loss += batch_loss
        window_correct += batch_correct
        window_seen += batch_size
        if args.disp_batches and (nbatch + 1) % args.disp_batches == 0:
            speed = window_seen / max(time.time() - window_start, 1e-9)
            logger.info("Epoch[%d] Batch [%d-%d]\tSpeed: %.2f samples/sec\taccuracy=%f\tloss=%f\tlr=%g", epoch,
                        nbatch + 1 - args.disp_batches, nbatch + 1, speed, window_correct / window_seen,
                        window_loss / window_seen, lr)
            window_loss, window_correct, window_seen, window_start = 0.0, 0.0, 0, time.time()
    if seen == 0:
        raise TrainingError(f"epoch {epoch}: the training iterator gave no batch")
    mx.nd.waitall()
    return {"loss": loss_total / seen, "accuracy": correct_total / seen, "samples": seen,
            "samples_per_sec": seen / max(time.time() - epoch_start, 1e-9)}
