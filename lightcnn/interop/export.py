"""A checkpoint -> an ONNX model of the face embedding, through MXNet's own exporter (``mx.onnx.export_model``).

    python -m lightcnn export --model-prefix models/lightcnn29v2 [--epoch N] --onnx lightcnn29v2.onnx [--with-logits]

The ONNX graph takes ``data`` (batch, 1, 128, 128) float32, preprocessed as the checkpoint's sidecar says (recorded
in the model's metadata as ``preprocess``), with a dynamic batch axis named ``batch``. Its first output is
``embedding`` (batch, 256). By default that is the only output: the embedding is what a face-recognition user
deploys, and the classifier over the training identities is a training head: for the authors' 29v2 it is an
80,013 x 256 matrix, larger than the rest of the network, and the identities are not faces anyone
verifies against. ``--with-logits`` keeps it as a second output ``logits`` (batch, num_classes).

What is done to MXNet 1.9.1's export, and why:

- Opset. ``export_model`` has no opset argument: it stamps the installed onnx package's newest opset (19 with onnx
  1.14.1) while its converters only exist up to opset 13 (it falls back to the newest registered one). So the file
  claims opset 19 and holds opset-13 operators; the MFM ``Split`` without sizes is valid in opset 13 (equal parts)
  but opset 18 requires ``num_outputs``, and onnxruntime rejects it ("Neither 'split' input nor 'num_outputs'
  attribute has been given"). The operators are opset 13's, so the model is stamped 13, which is the truth;
  ``onnx.checker.check_model(full_check=True)`` then validates every node against the opset-13 schemas and runs
  shape inference.
- The weights are also listed as graph inputs (older IR style); onnxruntime then treats them as overridable and
  will not constant-fold them (it warns per tensor). They are removed from the inputs; they stay initializers.
- Unused initializers (the exporter leaves one constant per ``split`` axis) are dropped.
- The batch dimension is written as an anonymous dimension; it is named ``batch`` on the input and the outputs.
- The outputs are renamed from MXNet's internal names to ``embedding`` and ``logits``.

onnx (and onnxruntime, to run the model) are optional; without onnx the command says how to install it. The command
line is :mod:`lightcnn.cli.export`.
"""
import json
import os

import mxnet as mx
import numpy as np

from lightcnn import checkpoint, files, locks, mxnet_files
from lightcnn.networks import EMBEDDING_SIZE, INPUT_SHAPE
from lightcnn.optional import require

ONNX_OPSET = 13  # the newest opset mxnet 1.9.1's mx2onnx has converters for
ONNX_INSTALL = "onnx==1.14.1 (and onnxruntime==1.19.2 to run the model)"
INPUT_NAME = "data"
BATCH_AXIS = "batch"


def _load_graph(prefix, epoch, with_logits):
    """(symbol, params) of a checkpoint: outputs (embedding[, logits]), the params that symbol uses."""
    graph = mxnet_files.read_symbol(checkpoint.symbol_path(prefix))  # missing or of another kind: one line
    if len(graph.list_outputs()) != 2:
        raise ValueError(f"{checkpoint.symbol_path(prefix)} has outputs {graph.list_outputs()}; a LightCNN "
                         f"checkpoint has two (logits, embedding)")
    logits, embedding = graph[0], graph[1]
    sym = mx.sym.Group([embedding, logits]) if with_logits else embedding
    path = checkpoint.params_path(prefix, epoch)
    if not os.path.isfile(path):
        raise FileNotFoundError(f"checkpoint weights {path} are missing")
    saved = mxnet_files.read_params(path)
    needed = [n for n in sym.list_arguments() + sym.list_auxiliary_states() if n != INPUT_NAME]
    absent = [n for n in needed if n not in saved]
    if absent:
        raise ValueError(f"{path} lacks parameters the graph needs: {', '.join(absent)}")
    return sym, {n: saved[n] for n in needed}


def _set_batch_axis(value_info, rest):
    """Shape ``(batch,) + rest`` on a graph input or output."""
    shape = value_info.type.tensor_type.shape
    del shape.dim[:]
    shape.dim.add().dim_param = BATCH_AXIS
    for size in rest:
        shape.dim.add().dim_value = int(size)


def _tidy(model, output_names, output_sizes, input_shape, metadata):
    """The fixes of the module docstring, in place."""
    graph = model.graph
    del model.opset_import[:]
    model.opset_import.add(domain="", version=ONNX_OPSET)
    weights = {t.name for t in graph.initializer}
    data_inputs = [i for i in graph.input if i.name not in weights]
    del graph.input[:]
    graph.input.extend(data_inputs)
    used = {name for node in graph.node for name in node.input}
    kept = [t for t in graph.initializer if t.name in used]
    del graph.initializer[:]
    graph.initializer.extend(kept)
    renames = {out.name: new for out, new in zip(graph.output, output_names)}
    for node in graph.node:
        node.input[:] = [renames.get(n, n) for n in node.input]
        node.output[:] = [renames.get(n, n) for n in node.output]
    for out, new, size in zip(graph.output, output_names, output_sizes):
        out.name = new
        _set_batch_axis(out, (size,))
    (data,) = graph.input
    _set_batch_axis(data, input_shape)
    for key, value in metadata.items():
        model.metadata_props.add(key=key, value=value)


def export_onnx(prefix, onnx_path, epoch=None, with_logits=False):
    """Write checkpoint ``prefix`` (last epoch unless ``epoch``) to ``onnx_path``; returns the checked ModelProto."""
    onnx = require("onnx", "exporting to ONNX", ONNX_INSTALL)
    import mxnet.onnx  # noqa: F401  (mx.onnx imports onnx itself, so it loads only now)

    epoch = checkpoint.last_epoch(prefix) if epoch is None else int(epoch)
    sidecar = checkpoint.read_sidecar(prefix, epoch)
    sym, params = _load_graph(prefix, epoch, with_logits)
    names, sizes = ["embedding"], [EMBEDDING_SIZE]
    if with_logits:
        names.append("logits")
        sizes.append(sidecar.model.num_classes)
    metadata = {"network": sidecar.model.network, "num_classes": str(sidecar.model.num_classes),
                "checkpoint": os.path.abspath(prefix), "epoch": str(epoch), "outputs": ",".join(names),
                "preprocess": json.dumps(sidecar.preprocess.to_dict() if sidecar.preprocess else {}, sort_keys=True),
                "origin": json.dumps(sidecar.origin, sort_keys=True)}
    with locks.hold(onnx_path, field="onnx", under=False), files.atomic_path(onnx_path) as temp:
        mx.onnx.export_model(sym, params, in_shapes=[(1,) + INPUT_SHAPE], in_types=[np.float32],
                             onnx_file_path=temp, dynamic=True, dynamic_input_shapes=[(None,) + INPUT_SHAPE])
        model = onnx.load(temp)
        _tidy(model, names, sizes, INPUT_SHAPE, metadata)
        onnx.checker.check_model(model, full_check=True)
        onnx.save(model, temp)
    return model
