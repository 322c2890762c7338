"""The network that turns faces into features: a training checkpoint (rebuilt from its sidecar), or an exported
MXNet graph (``X-symbol.json`` + ``X-NNNN.params``) with the preprocessing stated by the caller.

Both give an object with ``features(x) -> (N, 256)`` whose parameters are on the requested contexts, hybridized for
inference.
"""
import os
import warnings

import mxnet as mx
from mxnet import gluon

from lightcnn import checkpoint
from lightcnn.devices import as_context_list


def load_checkpoint_embedding(prefix, epoch=None, ctx=None):
    """``(net, preprocess, sidecar)`` of a checkpoint, rebuilt from its sidecar alone.

    ``epoch`` defaults to the last complete checkpoint under ``prefix``; ``ctx`` is a context or a list.
    """
    net, sidecar = checkpoint.load_model(prefix, epoch, ctx=as_context_list(ctx))
    if sidecar.preprocess is None:
        raise checkpoint.CheckpointError(
            f"{checkpoint.sidecar_path(prefix, sidecar.epoch)} records no preprocessing, so the training input cannot "
            f"be repeated; use the exported graph (symbol + params) with the preprocessing stated explicitly")
    net.hybridize(static_alloc=True, static_shape=True)
    return net, sidecar.preprocess, sidecar


class SymbolEmbedding:
    """An exported graph (``X-symbol.json`` + ``X-NNNN.params``) used as an embedding network.

    A LightCNN graph has two outputs, (logits, embedding): ``features`` returns output 1. A graph with a single
    output (an embedding exported alone) returns that output.
    """

    def __init__(self, symbol_file, params_file, ctx=None):
        ctxs = as_context_list(ctx)
        for path in (symbol_file, params_file):
            if not os.path.isfile(path):
                raise FileNotFoundError(f"{path} not found")
        sym = mx.sym.load(symbol_file)
        self.param_shapes = {name.split(":", 1)[-1]: value.shape for name, value in mx.nd.load(params_file).items()}
        saved = set(self.param_shapes)
        inputs = [name for name in sym.list_inputs() if name not in saved]
        if len(inputs) != 1:
            raise ValueError(f"{symbol_file}: expected one data input besides the saved parameters, found "
                             f"{inputs or 'none'}")
        self.num_outputs = len(sym.list_outputs())
        if self.num_outputs not in (1, 2):
            raise ValueError(f"{symbol_file} has {self.num_outputs} outputs; expected (logits, embedding) or the "
                             f"embedding alone")
        self.input_name = inputs[0]
        self.symbol = sym
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # "cannot decide type for data": it is float32, decided at run time
            self.block = gluon.SymbolBlock.imports(symbol_file, [self.input_name], params_file, ctx=ctxs)
        self.block.hybridize(static_alloc=True, static_shape=True)

    def check_input(self, data_shape):
        """Raise ValueError if the saved weights do not fit inputs of ``(1,) + data_shape``; else the output shapes.

        The graph records no parameter shapes, so they are inferred from the input and compared with the saved ones.
        """
        shape = (1,) + tuple(data_shape)
        problem = None
        try:
            arg_shapes, out_shapes, aux_shapes = self.symbol.infer_shape(**{self.input_name: shape})
        except mx.base.MXNetError as e:
            problem = str(e).strip().splitlines()[0]
        else:
            inferred = dict(zip(self.symbol.list_arguments(), arg_shapes))
            inferred.update(zip(self.symbol.list_auxiliary_states(), aux_shapes))
            wrong = [f"{name} {inferred[name]} vs saved {saved}" for name, saved in self.param_shapes.items()
                     if name in inferred and tuple(inferred[name]) != tuple(saved)]
            if wrong:
                problem = "parameter shapes differ: " + "; ".join(wrong)
        if problem:
            raise ValueError(f"the exported graph does not take inputs of shape {shape} (check the image and crop "
                             f"sizes): {problem}")
        return out_shapes

    def features(self, x):
        out = self.block(x)
        return out[1] if self.num_outputs == 2 else out
