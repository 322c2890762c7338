"""One epoch: training over this worker's batches (with the guard against a non-finite loss and the Speedometer
lines) and the classifier's accuracy on validation data."""
import math
import time

import numpy as np

import mxnet as mx
from mxnet import autograd, gluon

from lightcnn import cpu, precision, progress


class TrainingError(RuntimeError):
    """Training cannot go on (a non-finite loss, an empty epoch); the message says where and why."""


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
                batches = batches_in(train_iter) * estimate_epochs
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


def batches_in(train_iter):
    try:
        return len(train_iter)
    except TypeError:  # mx.io.NDArrayIter
        return -(-train_iter.num_data // train_iter.batch_size)


