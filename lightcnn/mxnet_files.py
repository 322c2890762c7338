"""Readers of the files MXNet exports (``X-symbol.json``, ``X-NNNN.params``), for the embedding and the ONNX export.

A file of another kind is a :class:`~lightcnn.checkpoint.CheckpointError` naming it: MXNet would give a C++
traceback, or a UnicodeDecodeError for binary bytes.
"""
import json
import os

from lightcnn import files
from lightcnn.checkpoint import CheckpointError, check_finite


def _existing_file(path, what):
    """``path`` if it is a regular file; FileNotFoundError / CheckpointError naming it and ``what`` it should be."""
    path = os.fspath(path)
    if os.path.isdir(path):
        raise CheckpointError(f"{what} {path} is a folder, not a file")
    if not os.path.isfile(path):
        raise FileNotFoundError(f"{what} {path} not found")
    return path


def read_symbol(path):
    """An exported network graph (``X-symbol.json``) as an MXNet Symbol."""
    import mxnet as mx
    path = _existing_file(path, "symbol file")
    kind = f"{path} is not an MXNet symbol file (a network graph, X-symbol.json)"
    try:
        with open(path, encoding="utf-8") as f:
            graph = json.load(f)
    except UnicodeDecodeError:
        raise CheckpointError(f"{kind}: it is not text") from None
    except ValueError as error:
        raise CheckpointError(f"{kind}: it is not JSON ({error})") from None
    if not isinstance(graph, dict) or not {"nodes", "arg_nodes", "heads"} <= set(graph):
        raise CheckpointError(f"{kind}: its JSON has no graph ('nodes', 'arg_nodes', 'heads')")
    try:
        return mx.sym.load(path)
    except (mx.base.MXNetError, UnicodeDecodeError) as error:
        detail = f": {files.mxnet_message(error)}" if isinstance(error, mx.base.MXNetError) else ""
        raise CheckpointError(f"cannot load the symbol file {path} (damaged or written by another MXNet)"
                              f"{detail}") from None


def read_params(path):
    """The weights of an exported ``X-NNNN.params``: {name without ``arg:``/``aux:``: NDArray}, all finite. Another
    kind of file (a trainer's ``.states``, a symbol, anything) is a CheckpointError naming it."""
    import mxnet as mx
    path = _existing_file(path, "weights file")
    try:
        loaded = mx.nd.load(path)
    except (mx.base.MXNetError, UnicodeDecodeError):
        hint = (": a .states file holds a trainer's optimizer states; the weights of that epoch are its .params"
                if path.endswith(".states") else "")
        raise CheckpointError(f"{path} is not an MXNet weights file (X-NNNN.params){hint}") from None
    if not isinstance(loaded, dict) or not loaded:
        raise CheckpointError(f"{path} holds no named weights (an MXNet .params file maps parameter names to "
                              f"arrays)")
    weights = {name.split(":", 1)[-1]: value for name, value in loaded.items()}
    check_finite(weights, path)
    return weights
