"""Checkpoints in MXNet's own format, written atomically, with a JSON sidecar that rebuilds the model.

For epoch N under ``prefix`` (MXNet's conventions, so ``SymbolBlock.imports`` and Module users can load them):

    prefix-symbol.json     the network graph (outputs: logits, 256-d embedding)
    prefix-NNNN.params     weights (``arg:``/``aux:`` names, as HybridBlock.export writes them)
    prefix-NNNN.states     the trainer's optimizer states (Adam moments, update counts)
    prefix-NNNN.json       the sidecar: network, options, num_classes, input shape, preprocessing, epoch,
                           class list, learning-rate state; written last, so it marks a complete checkpoint

Every file goes to a temporary name in the same folder and is renamed into place, so a process killed mid-save
leaves the previous checkpoint intact.
"""
import glob
import json
import os
import re
import tempfile

import mxnet as mx

from lightcnn.model import get_model

SIDECAR_VERSION = 1


def params_path(prefix, epoch):
    return f"{prefix}-{epoch:04d}.params"


def states_path(prefix, epoch):
    return f"{prefix}-{epoch:04d}.states"


def sidecar_path(prefix, epoch):
    return f"{prefix}-{epoch:04d}.json"


def symbol_path(prefix):
    return f"{prefix}-symbol.json"


def _temp_name(final):
    folder, name = os.path.split(os.path.abspath(final))
    handle, path = tempfile.mkstemp(prefix=f".{name}.", suffix=".tmp", dir=folder)
    os.close(handle)
    return path


def _replace(temp, final):
    with open(temp, "rb") as f:
        os.fsync(f.fileno())
    os.replace(temp, final)


def atomic_write_text(path, text):
    temp = _temp_name(path)
    try:
        with open(temp, "w") as f:
            f.write(text)
        _replace(temp, path)
    except BaseException:
        _remove_quietly(temp)
        raise


def _remove_quietly(*paths):
    for path in paths:
        try:
            os.remove(path)
        except OSError:
            pass


def save_checkpoint(net, trainer, prefix, epoch, sidecar):
    """Export ``net`` (hybridized, run at least once) and save ``trainer`` states and ``sidecar`` for ``epoch``.

    Each file is renamed into place only after all of them were written; the sidecar goes last.
    """
    folder = os.path.dirname(os.path.abspath(prefix))
    os.makedirs(folder, exist_ok=True)
    temp_prefix = tempfile.mkdtemp(prefix=".ckpt-", dir=folder)
    export_prefix = os.path.join(temp_prefix, "net")
    temp_states = os.path.join(temp_prefix, "trainer.states")
    try:
        net.export(export_prefix, epoch=epoch)
        if trainer is not None:
            trainer.save_states(temp_states)
        record = dict(sidecar, epoch=epoch, format_version=SIDECAR_VERSION)
        with open(os.path.join(temp_prefix, "sidecar.json"), "w") as f:
            json.dump(record, f, indent=2, sort_keys=True)
        moves = [(f"{export_prefix}-symbol.json", symbol_path(prefix)),
                 (params_path(export_prefix, epoch), params_path(prefix, epoch))]
        if trainer is not None:
            moves.append((temp_states, states_path(prefix, epoch)))
        moves.append((os.path.join(temp_prefix, "sidecar.json"), sidecar_path(prefix, epoch)))
        for temp, final in moves:
            _replace(temp, final)
    finally:
        for leftover in glob.glob(os.path.join(temp_prefix, "*")):
            _remove_quietly(leftover)
        os.rmdir(temp_prefix)


def read_sidecar(prefix, epoch):
    path = sidecar_path(prefix, epoch)
    if not os.path.exists(path):
        found = saved_epochs(prefix)
        hint = f"saved epochs under this prefix: {found}" if found else "no checkpoint has this prefix"
        raise FileNotFoundError(f"no checkpoint for epoch {epoch}: {path} is missing ({hint})")
    with open(path) as f:
        return json.load(f)


def saved_epochs(prefix):
    """Epochs with a complete checkpoint (a sidecar and its params) under ``prefix``, ascending."""
    pattern = re.compile(re.escape(os.path.basename(prefix)) + r"-(\d{4,})\.json$")
    epochs = []
    for path in glob.glob(glob.escape(prefix) + "-*.json"):
        match = pattern.search(os.path.basename(path))
        if match and os.path.exists(params_path(prefix, int(match.group(1)))):
            epochs.append(int(match.group(1)))
    return sorted(epochs)


def prune(prefix, keep, newest):
    """Delete the checkpoints under ``prefix`` older than the ``keep`` newest up to epoch ``newest`` (just saved);
    later epochs, left by another run, are not touched. The sidecar goes first, so a half-deleted checkpoint is never
    taken for complete. Returns the epochs removed."""
    epochs = [e for e in saved_epochs(prefix) if e <= newest]
    removed = epochs[:-keep] if keep > 0 else []
    for epoch in removed:
        _remove_quietly(sidecar_path(prefix, epoch), params_path(prefix, epoch), states_path(prefix, epoch))
    return removed


def last_epoch(prefix):
    epochs = saved_epochs(prefix)
    if not epochs:
        raise FileNotFoundError(f"no complete checkpoint (prefix-NNNN.json + .params) found for prefix {prefix!r}")
    return epochs[-1]


def build_network(sidecar):
    """Rebuild the network a sidecar describes (uninitialised)."""
    return get_model(sidecar["network"], int(sidecar["num_classes"]), **sidecar.get("model_options", {}))


def load_weights(net, prefix, epoch, ctx):
    """Load ``prefix-NNNN.params`` (export format) into a network built by :func:`build_network`."""
    path = params_path(prefix, epoch)
    if not os.path.exists(path):
        raise FileNotFoundError(f"checkpoint weights {path} are missing")
    net.collect_params().load(path, ctx=ctx)


def load_model(prefix, epoch=None, ctx=None):
    """(net, sidecar) for a checkpoint: the network rebuilt from its sidecar alone, weights loaded."""
    epoch = last_epoch(prefix) if epoch is None else epoch
    sidecar = read_sidecar(prefix, epoch)
    net = build_network(sidecar)
    load_weights(net, prefix, epoch, ctx or mx.cpu())
    return net, sidecar
