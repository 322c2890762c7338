"""The network that turns faces into features: a training checkpoint (rebuilt from its sidecar), or an exported
MXNet graph (``X-symbol.json`` + ``X-NNNN.params``) with the preprocessing stated by the caller.

Both give an object with ``features(x) -> (N, 256)`` whose parameters are on the requested contexts, hybridized for
inference. :func:`low_precision_embedding` turns either into one computing in bfloat16/float16 or int8.
"""
import warnings

import mxnet as mx
from mxnet import gluon

from lightcnn import checkpoint, mxnet_files, precision, quantize
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
        sym = mxnet_files.read_symbol(symbol_file)  # files of another kind: one line naming them
        self.param_shapes = {name: value.shape for name, value in mxnet_files.read_params(params_file).items()}
        saved = set(self.param_shapes)
        inputs = [name for name in sym.list_inputs() if name not in saved]
        if len(inputs) != 1:
            shown = ", ".join(inputs[:4]) + (f", ... ({len(inputs) - 4} more)" if len(inputs) > 4 else "")
            raise ValueError(f"{symbol_file}: expected one data input besides the weights saved in {params_file}, "
                             f"found {shown or 'none'} (are they the graph and weights of one network?)")
        self.num_outputs = len(sym.list_outputs())
        if self.num_outputs not in (1, 2):
            raise ValueError(f"{symbol_file} has {self.num_outputs} outputs; expected (logits, embedding) or the "
                             f"embedding alone")
        self.input_name = inputs[0]
        self.symbol = sym
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # "cannot decide type for data": it is float32, decided at run time
            try:
                self.block = gluon.SymbolBlock.imports(symbol_file, [self.input_name], params_file, ctx=ctxs)
            except (AssertionError, mx.base.MXNetError) as error:  # e.g. weights the graph does not have
                first = str(error).strip().splitlines()[-1].split(", choices are")[0]
                raise ValueError(f"cannot load {params_file} into the graph {symbol_file}: {first}") from None
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

    def embedding_block(self):
        """The graph up to the embedding alone (one output), sharing this one's parameters."""
        if self.num_outputs == 1:
            return self.block
        block = gluon.SymbolBlock(self.symbol[1], mx.sym.var(self.input_name), params=self.block.collect_params())
        block.hybridize(static_alloc=True, static_shape=True)
        return block


class _Features:
    """A block whose output is the feature, as an embedding network (``features(x)``)."""

    def __init__(self, block):
        self.block = block

    def features(self, x):
        return self.block(x)


def low_precision_embedding(net, ctxs, data_shape, dtype="float32", quantize_int8=False, params_file=None,
                            identity=None, calib_data=None, calib_mode=None, mfm_form="max", log=None):
    """``net`` (a checkpoint's LightCNN or a :class:`SymbolEmbedding`, float32, taking ``(N,) + data_shape``) as an
    embedding network computing in ``dtype`` (AMP's casts around convolutions and fully connected layers), or in
    int8 (``quantize_int8``: calibrated on ``calib_data``, cached beside ``params_file`` under a key that includes
    ``identity``, see :mod:`lightcnn.quantize`); ``mfm_form="sum-relu"`` writes every MFM as ``b + relu(a - b)``
    first (:func:`lightcnn.quantize.sum_relu_form`). Features come out in float32 or the extractor casts them."""
    ctxs = as_context_list(ctxs)
    block = net.embedding if hasattr(net, "embedding") else net.embedding_block()
    block(mx.nd.zeros((1,) + tuple(data_shape), ctx=ctxs[0]))  # the conversions read the graph of a block that ran
    if quantize_int8:
        if len(ctxs) != 1 or ctxs[0].device_type != "cpu":
            raise quantize.QuantizationError("INT8 extraction runs on the CPU (oneDNN): leave --gpus empty")
        return quantize.load_or_quantize(block, params_file, identity, calib_data,
                                         calib_mode or quantize.DEFAULT_CALIB_MODE, ctxs[0], log=log,
                                         mfm_form=mfm_form)
    if len(ctxs) != 1:
        raise precision.PrecisionError(f"{dtype} extraction with MFM as {mfm_form} runs on one device; give one "
                                       f"GPU, or none for the CPU")
    if mfm_form == "sum-relu":
        # the same function with each MFM as b + relu(a - b), which oneDNN fuses into its convolutions
        block = quantize.sum_relu_form(block, ctxs[0])
        block(mx.nd.zeros((1,) + tuple(data_shape), ctx=ctxs[0]))
    return _Features(precision.convert_for_inference(block, dtype, ctxs[0]))
