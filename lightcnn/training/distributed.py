"""Several devices, workers or machines: who this process is, how gradients are summed, and the guards that make a
distributed run stop rather than drift.

Gradients are summed here with the key-value store's public calls (the same ``pushpull`` Gluon's Trainer makes), and
the Trainer itself only applies updates. Owning the exchange lets the first one wait until rank 0's initial weights
have reached every worker: inside Gluon, that broadcast happens lazily in the first ``step``, on the same keys as the
first gradient push, ordered only by the engine's dispatch order. The exception is dist_async, whose updates Gluon can
only apply on the servers: there the Trainer talks to the store itself.

Guards (synchronous stores): rank 0's weights are broadcast and waited for before the first step; a non-finite loss
on any worker stops every worker at the same batch; after every epoch each worker compares its weights with rank 0's
bit for bit, and any difference stops all of them before the checkpoint.
"""
import math

import numpy as np

import mxnet as mx
from mxnet import gluon

from lightcnn.optional import require

KV_STORES = ("local", "device", "dist_sync", "dist_device_sync", "dist_async", "horovod")

# keys of the cross-worker exchanges, far above the gradients' (0 .. number of parameters - 1)
WEIGHTS_KEY = 1 << 30
COUNT_KEY = WEIGHTS_KEY + 1
NOT_FINITE_KEY = WEIGHTS_KEY + 2
FROM_RANK0_KEY = WEIGHTS_KEY + 3


class DistributedError(RuntimeError):
    """The workers disagree (weights out of sync) or the store cannot be used; the message says how."""


class _KVStore:
    """MXNet's key-value store: local (several devices) or a parameter server (dist_*)."""

    def __init__(self, name):
        self.kv = mx.kv.create(name)
        self.rank, self.num_workers = self.kv.rank, self.kv.num_workers

    def init(self, key, value):
        self.kv.init(key, value)

    def sum(self, key, values, priority=0):
        """Sum ``values`` (one array, or one per device) over devices and workers, in place."""
        self.kv.pushpull(key, values, priority=priority)

    def rank0(self, flat):
        """Rank 0's ``flat`` on every worker: rank 0 pushes its values, the others zeros, and x + 0 is exact."""
        out = mx.nd.zeros(flat.shape)
        self.kv.pushpull(WEIGHTS_KEY, mx.nd.array(flat if self.rank == 0 else np.zeros_like(flat)), out=out)
        return out.asnumpy()

    def total(self, key, number):
        out = mx.nd.zeros((1,))
        self.kv.pushpull(key, mx.nd.array([number]), out=out)
        return float(out.asscalar())

    def from_rank0(self, key, number):
        # init stores rank 0's value alone and waits for every worker; a pull then reads it (dist_async too, where
        # a push is not summed)
        self.kv.init(key, mx.nd.array([number]))
        out = mx.nd.zeros((1,))
        self.kv.pull(key, out=out)
        return float(out.asscalar())


class _Horovod:
    """Horovod's allreduce and broadcast, one device per process. The gradients are summed (not averaged) like the
    key-value store's, so the Trainer's step divides by the global batch in both."""

    def __init__(self):
        hvd = require("horovod.mxnet", "the horovod store", "horovod==0.28.1 built with MXNet support (make horovod)")
        hvd.init()
        self.hvd = hvd
        self.rank, self.num_workers = hvd.rank(), hvd.size()

    def init(self, key, value):
        pass

    def sum(self, key, values, priority=0):
        (value,) = values  # one device per process (checked by DistributedStore)
        self.hvd.allreduce_(value, op=self.hvd.Sum, name=f"lightcnn.gradient.{key}", priority=priority)

    def rank0(self, flat):
        return self.hvd.broadcast(mx.nd.array(flat), root_rank=0, name="lightcnn.check.weights").asnumpy()

    def total(self, key, number):
        return float(self.hvd.allreduce(mx.nd.array([number]), op=self.hvd.Sum, name=f"lightcnn.check.{key}")
                     .asscalar())

    def from_rank0(self, key, number):
        return float(self.hvd.broadcast(mx.nd.array([number]), root_rank=0, name=f"lightcnn.rank0.{key}")
                     .asscalar())


class DistributedStore:
    """The exchange between the devices of this process and between workers, for one training run.

    Parameters
    ----------
    kv_store : str
        One of ``KV_STORES``. With one device and no dist store nothing is exchanged.
    num_devices : int
        Devices (contexts) of this process.
    """

    def __init__(self, kv_store, num_devices):
        if kv_store not in KV_STORES:
            raise ValueError(f"unknown key-value store {kv_store!r}; valid: {', '.join(KV_STORES)}")
        self.name = kv_store
        self.is_dist = kv_store.startswith("dist") or kv_store == "horovod"
        if kv_store == "horovod":
            if num_devices > 1:
                raise ValueError(f"horovod trains on one device per process ({num_devices} given): start a process "
                                 f"per GPU with horovodrun instead")
            self._backend = _Horovod()
        elif self.is_dist or num_devices > 1:
            self._backend = _KVStore(kv_store)
        else:
            self._backend = None
        self.rank = self._backend.rank if self._backend else 0
        self.num_workers = self._backend.num_workers if self._backend else 1
        self._exchanged = []  # (key, parameter) pairs whose gradients are summed

    @property
    def writes_checkpoints(self):
        return self.rank == 0

    def from_rank0(self, number):
        """Rank 0's ``number`` on every worker (a float32: exact for integers below 2**24), once per run."""
        if not self.is_dist:
            return number
        return self._backend.from_rank0(FROM_RANK0_KEY, number)

    @property
    def updates_on_servers(self):
        """dist_async: Gluon can only apply its updates on the servers, so the optimizer (its learning-rate schedule
        and states) lives there."""
        return self.name == "dist_async"

    @property
    def keeps_workers_in_sync(self):
        """Synchronous workers apply the same update to the same weights; dist_async workers legitimately drift."""
        return self.is_dist and not self.updates_on_servers

    def samples_per_update(self, global_batch):
        """The batch one update averages over: a dist_async server applies each worker's push on its own."""
        return global_batch // self.num_workers if self.updates_on_servers else global_batch

    def worker_batch(self, global_batch, num_devices):
        """This worker's share of the global batch; an error when it cannot be split evenly or leaves a device
        without an image."""
        if global_batch % self.num_workers:
            raise ValueError(f"the global batch of {global_batch} does not divide evenly among {self.num_workers} "
                             f"workers")
        share = global_batch // self.num_workers
        if share < num_devices:
            raise ValueError(f"the global batch of {global_batch} gives {share} images per worker, fewer than its "
                             f"{num_devices} devices: every device needs at least one image per batch")
        return share

    def make_trainer(self, params, optimizer):
        if self.updates_on_servers:
            return gluon.Trainer(params, optimizer, kvstore=self._backend.kv, update_on_kvstore=True)
        return gluon.Trainer(params, optimizer, kvstore=None)

    def prepare(self, net):
        """Before the first step (the weights initialised, not yet run in inference mode): give every worker rank
        0's weights and set up the gradient exchange; returns once all of it is done."""
        params = list(net.collect_params().values())
        if self.keeps_workers_in_sync:
            self._backend.init(WEIGHTS_KEY, mx.nd.zeros((_flat_size(params),)))
            self._backend.init(COUNT_KEY, mx.nd.zeros((1,)))
            self._backend.init(NOT_FINITE_KEY, mx.nd.zeros((1,)))
            _set_flat(params, self._backend.rank0(_flat(params)))
        if self._backend is not None and not self.updates_on_servers:
            self._exchanged = list(enumerate(p for p in params if p.grad_req != "null"))
            for key, param in self._exchanged:
                self._backend.init(key, param.list_grad()[0])
        mx.nd.waitall()

    def sum_gradients(self):
        """Sum every gradient over this process's devices and all workers (in place), as Gluon's Trainer would."""
        for key, param in self._exchanged:
            self._backend.sum(key, param.list_grad(), priority=-key)

    def all_finite(self, value):
        """Whether ``value`` is finite here and on every other synchronous worker: a worker that stopped alone on a
        NaN would leave the others waiting for its gradients forever, so they agree on every batch."""
        finite = math.isfinite(value)
        if not self.keeps_workers_in_sync:
            return finite
        return self._backend.total(NOT_FINITE_KEY, 0.0 if finite else 1.0) == 0

    def check_in_sync(self, net, epoch):
        """Compare every synchronous worker's weights with rank 0's, exactly; stop every worker if one differs."""
        if not self.keeps_workers_in_sync:
            return
        params = list(net.collect_params().values())
        mine = _flat(params)
        rank0 = self._backend.rank0(mine)
        differing, start = [], 0
        for param in params:
            size = param.list_data()[0].size
            if not np.array_equal(mine[start:start + size], rank0[start:start + size]):
                differing.append(param.name)
            start += size
        total = int(self._backend.total(COUNT_KEY, len(differing)))
        if total:
            raise DistributedError(
                f"epoch {epoch}: the {self.name} workers' weights are out of sync ({total} parameter(s) differ from "
                f"rank 0's "
                f"over all workers; on rank {self.rank}: {', '.join(differing) or 'none'}). Training stopped "
                f"before this epoch's checkpoint; the last complete checkpoint is epoch {epoch}.")


def _flat_size(params):
    return sum(p.list_data()[0].size for p in params)


def _flat(params):
    # asnumpy, not reshape: after a validation pass oneDNN may hold a weight in its own layout
    return np.concatenate([p.list_data()[0].asnumpy().ravel() for p in params])


def _set_flat(params, flat):
    start = 0
    for param in params:
        shape = param.list_data()[0].shape
        size = int(np.prod(shape))
        param.set_data(mx.nd.array(flat[start:start + size].reshape(shape)))
        start += size
