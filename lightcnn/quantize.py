"""INT8 feature networks: a float32 embedding quantized by oneDNN (``mxnet.contrib.quantization``), calibrated on the
user's own images, and cached beside the weights it came from.

Calibration runs the float32 network on a fixed sample of the images being extracted and records the range of every
layer's output; the quantized graph then computes convolutions and fully connected layers in int8 with those ranges
(``calib_mode='naive'``: min/max; ``'entropy'``: KL-optimal thresholds, slower to calibrate). Features leave the
network in float32.

The cache: ``X-NNNN.int8-<key>-symbol.json`` and ``-0000.params`` beside ``X-NNNN.params``, and a manifest
``X-NNNN.int8-<key>.json`` written last (it marks the cache complete and says what it was made from). The key is the
sha256 of everything the quantized model depends on: the weights file's content, the network (the sidecar's model
and preprocessing, or the exported graph's content), the calibration images' pixels as the network sees them, the
calibration mode, the MFM form, the quantization recipe of this module, the MXNet version and MXNet's environment
switches of its oneDNN graph passes. A different checkpoint, image sample, mode or form gives another key, so a stale
model is never reused.
"""
import hashlib
import json
import logging
import os
import random
import shutil
import tempfile
import warnings

import numpy as np

import mxnet as mx
from mxnet import gluon

from lightcnn import files

CALIB_MODES = ("naive", "entropy")
# entropy: on the LFW model of make lfw, naive min/max ranges lost 0.32 points of DevTest accuracy and entropy's
# thresholds none (README, "LFW in low precision")
DEFAULT_CALIB_MODE = "entropy"
# how each MFM 2/1 enters the int8 graph: "max" keeps split + maximum (in float32 between a dequantize and a
# quantize); "sum-relu" rewrites it as b + relu(a - b) (sum_relu_form: all int8, 1.8x faster, but MXNet's fused
# int8 convolution + sum lost 5.4 points of LFW accuracy: experimental)
MFM_FORMS = ("max", "sum-relu")
DEFAULT_CALIB_IMAGES = 256
# what this module does to a graph; change it when the recipe changes, so caches of the old one are not reused
RECIPE = {"version": 1, "quantized_dtype": "auto", "quantize_mode": "full", "granularity": "tensor-wise",
          "subgraph_backend": "MKLDNN_QUANTIZE"}

GRAPH_SWITCHES = ("MXNET_DISABLE_MKLDNN", "MXNET_SUBGRAPH", "MXNET_MKLDNN")

logger = logging.getLogger(__name__)


class QuantizationError(ValueError):
    """Quantization cannot be done as asked (no usable calibration image, a GPU); the message says why."""


def calibration_sample(paths, count, seed=0):
    """Indices of ``count`` images spread over ``paths`` (a fixed random sample, in list order)."""
    if count < 1:
        raise QuantizationError(f"--calib-images must be positive, got {count}")
    indices = list(range(len(paths)))
    return sorted(random.Random(seed).sample(indices, min(count, len(indices))))


def cache_key(weights_sha256, network_identity, calib_data, calib_mode, mfm_form="max"):
    """The sha256 of everything the quantized model depends on (see the module doc)."""
    digest = hashlib.sha256()
    record = {"weights": weights_sha256, "network": network_identity, "calib_mode": calib_mode,
              "mfm_form": mfm_form, "calib_shape": list(calib_data.shape), "recipe": RECIPE, "mxnet": mx.__version__,
              # MXNet's switches of the oneDNN graph passes change the quantized graph that is cached
              "env": {k: v for k, v in sorted(os.environ.items()) if k.startswith(GRAPH_SWITCHES)}}
    digest.update(json.dumps(record, sort_keys=True).encode())
    digest.update(np.ascontiguousarray(calib_data, dtype=np.float32).tobytes())
    return digest.hexdigest()


def cache_base(params_file, key):
    """``X-NNNN.params`` -> ``X-NNNN.int8-<first 16 hex of key>`` (the cache's files add their suffixes)."""
    stem = params_file[:-len(".params")] if params_file.endswith(".params") else params_file
    return f"{stem}.int8-{key[:16]}"


class QuantizedEmbedding:
    """An int8 embedding network (a SymbolBlock with one output, the 256-d feature, in float32)."""

    def __init__(self, block, source):
        self.block = block
        self.source = source  # where it was read from, or "calibrated now"

    def features(self, x):
        return self.block(x)


def quantize(embedding, calib_data, calib_mode=DEFAULT_CALIB_MODE, ctx=None, batch_size=64, mfm_form="max"):
    """``embedding`` (a float32 HybridBlock mapping ``data`` to the feature; a LightCNN Embedding for
    ``mfm_form="sum-relu"``) quantized to int8 and calibrated on ``calib_data`` (N, C, H, W) float32."""
    from mxnet.contrib import quantization
    ctx = ctx or mx.cpu()
    if ctx.device_type != "cpu":
        raise QuantizationError("INT8 extraction runs on the CPU (oneDNN); MXNet 1.9.1 has no int8 GPU path for "
                                "these layers")
    if calib_mode not in CALIB_MODES:
        raise QuantizationError(f"unknown calibration mode {calib_mode!r}; valid: {', '.join(CALIB_MODES)}")
    if mfm_form not in MFM_FORMS:
        raise QuantizationError(f"unknown MFM form {mfm_form!r}; valid: {', '.join(MFM_FORMS)}")
    if mfm_form == "sum-relu":
        embedding = sum_relu_form(embedding, ctx)
        embedding(calib_data[:1].as_in_context(ctx))
    calib_iter = mx.io.NDArrayIter(data={"data": calib_data}, batch_size=min(batch_size, len(calib_data)))
    quiet = logging.getLogger("lightcnn.quantize.mxnet")
    quiet.setLevel(logging.WARNING)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        block = quantization.quantize_net_v2(
            embedding, quantized_dtype=RECIPE["quantized_dtype"], quantize_mode=RECIPE["quantize_mode"],
            quantize_granularity=RECIPE["granularity"], calib_data=calib_iter, calib_mode=calib_mode,
            num_calib_examples=len(calib_data), ctx=ctx, logger=quiet)
    block.hybridize(static_alloc=True, static_shape=True)
    return block


def load_or_quantize(embedding, params_file, network_identity, calib_data, calib_mode=DEFAULT_CALIB_MODE, ctx=None,
                     log=None, mfm_form="max"):
    """The cached int8 model of this (weights, network, calibration) when there is one, else a new one, calibrated
    and cached. Returns a :class:`QuantizedEmbedding`."""
    log = log or logger
    ctx = ctx or mx.cpu()
    key = cache_key(files.sha256(params_file), network_identity, calib_data, calib_mode, mfm_form)
    base = cache_base(params_file, key)
    symbol_file, weights_file, manifest = f"{base}-symbol.json", f"{base}-0000.params", f"{base}.json"
    if os.path.exists(manifest) and _manifest_key(manifest) == key and os.path.exists(symbol_file) \
            and os.path.exists(weights_file):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            block = gluon.SymbolBlock.imports(symbol_file, ["data"], weights_file, ctx=ctx)
        block.hybridize(static_alloc=True, static_shape=True)
        log.info("int8 model reused from %s (same weights, network and calibration images)", manifest)
        return QuantizedEmbedding(block, manifest)
    log.info("calibrating the int8 model on %d images (%s mode, MFM as %s)", len(calib_data), calib_mode, mfm_form)
    block = quantize(embedding, mx.nd.array(calib_data), calib_mode, ctx, mfm_form=mfm_form)
    block(mx.nd.array(calib_data[:1], ctx=ctx))  # builds the graph export needs
    _save(block, base, {"key": key, "weights": os.path.basename(params_file), "network": network_identity,
                        "calib_images": len(calib_data), "calib_mode": calib_mode, "mfm_form": mfm_form,
                        "recipe": RECIPE,
                        "mxnet": mx.__version__})
    log.info("int8 model cached as %s", manifest)
    return QuantizedEmbedding(block, "calibrated now")


def _manifest_key(path):
    try:
        with open(path, encoding="utf-8") as f:
            return json.load(f).get("key")
    except (OSError, ValueError, AttributeError):
        return None


def _save(block, base, manifest):
    """Export into a hidden folder beside the cache and rename into place, the manifest last."""
    folder = os.path.dirname(os.path.abspath(base))
    staging = tempfile.mkdtemp(prefix=f".{os.path.basename(base)}-", dir=folder)
    try:
        block.export(os.path.join(staging, "q"), epoch=0)
        with open(os.path.join(staging, "manifest.json"), "w", encoding="utf-8") as f:
            json.dump(manifest, f, indent=1, sort_keys=True)
        for temp, final in ((os.path.join(staging, "q-symbol.json"), f"{base}-symbol.json"),
                            (os.path.join(staging, "q-0000.params"), f"{base}-0000.params"),
                            (os.path.join(staging, "manifest.json"), f"{base}.json")):
            files.publish(temp, final)
    finally:
        shutil.rmtree(staging, ignore_errors=True)



# ----------------------------------------------------------------------------------------------------------------
# The int8-friendly form of MFM 2/1

def sum_relu_form(embedding, ctx=None):
    """The same function as ``embedding`` (a float32 LightCNN Embedding), with every MFM 2/1 written as
    ``max(a, b) = b + relu(a - b)``: the halves' difference is one linear layer of its own (weights W_a - W_b,
    bias b_a - b_b), so each MFM becomes a layer with ReLU and a layer whose output is summed with it. oneDNN fuses
    both into its convolutions (ReLU and sum post-ops) and quantizes them, where ``split`` and ``maximum`` have no
    int8 kernels and make the graph dequantize and requantize around every MFM. Max pooling moves after the MFM (it
    commutes with the maximum, not with the sum). MFM 3/2 and the max+average pools of 29v2 keep their own form.

    Returns a SymbolBlock (input ``data``, output the feature) with its parameters loaded on ``ctx``."""
    from lightcnn import model
    ctx = ctx or mx.cpu()
    values = {}
    data = mx.sym.var("data")

    def linear(layer, x, name, rows, shift=None):
        """``layer``'s linear part restricted to output ``rows`` (minus rows ``shift``), as a new symbol."""
        weight, bias = layer.weight.data(ctx).copy(), layer.bias.data(ctx).copy()
        w, b = weight[rows[0]:rows[1]], bias[rows[0]:rows[1]]
        if shift is not None:
            w, b = w - weight[shift[0]:shift[1]], b - bias[shift[0]:shift[1]]
        values[f"{name}_weight"], values[f"{name}_bias"] = w, b
        w_var, b_var = mx.sym.var(f"{name}_weight"), mx.sym.var(f"{name}_bias")
        if isinstance(layer, gluon.nn.Conv2D):
            kwargs = layer._kwargs
            return mx.sym.Convolution(x, w_var, b_var, kernel=kwargs["kernel"], stride=kwargs["stride"],
                                      pad=kwargs["pad"], num_filter=rows[1] - rows[0], name=name)
        return mx.sym.FullyConnected(x, w_var, b_var, num_hidden=rows[1] - rows[0], name=name)

    def mfm(layer, x, name):
        half = layer.weight.shape[0] // 2
        diff = mx.sym.Activation(linear(layer, x, f"{name}_d", (0, half), shift=(half, 2 * half)), act_type="relu")
        return mx.sym.elemwise_add(linear(layer, x, f"{name}_e", (half, 2 * half)), diff, name=f"{name}_max")

    def build(block, x):
        if isinstance(block, model.MFMConv) and block._mfm_type == "2/1" and block._pool in (None, "max"):
            x = mfm(block.conv, x, block.name)
            if block._pool:  # 2x2 stride 2, Caffe's ceil mode, as model._pool
                x = mx.sym.Pooling(x, kernel=(2, 2), stride=(2, 2), pool_type="max", pooling_convention="full")
            return x
        if isinstance(block, model.MFMDense) and block._mfm_type == "2/1":
            return mfm(block.fc, x, block.name)
        if isinstance(block, model.Group):
            return build(block.conv, build(block.conv_a, x))
        if isinstance(block, model.ResBlock):
            return mx.sym.elemwise_add(x, build(block.conv2, build(block.conv1, x)))
        if isinstance(block, (gluon.nn.HybridSequential, model.Embedding)):
            for child in block._children.values():
                x = build(child, x)
            return x
        # anything else (MFM 3/2, 29v2's pools, its plain fc head): the block itself, with its own parameters
        for name, param in block.collect_params().items():
            values[name] = param.data(ctx)
        return block(x)

    output = build(embedding, data)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        block = gluon.SymbolBlock(output, data)
    block.collect_params().load_dict({f"arg:{k}": v for k, v in values.items()}, ctx=ctx)
    block.hybridize(static_alloc=True, static_shape=True)
    return block
