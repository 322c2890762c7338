"""INT8 feature networks: a float32 embedding quantized by oneDNN (``mxnet.contrib.quantization``), calibrated on the
user's own images, and cached beside the weights it came from.

Calibration runs the float32 network on a fixed sample of the images being extracted and records the range of every
layer's output; the quantized graph then computes convolutions and fully connected layers in int8 with those ranges
(``calib_mode='naive'``: min/max; ``'entropy'``: KL-optimal thresholds, slower to calibrate). Features leave the
network in float32.

What the graph may do depends on the CPU (:func:`int8_recipe`). oneDNN multiplies uint8 activations by int8 weights.
With VNNI (AVX-512 VNNI, AVX-VNNI, AMX) each product is summed straight into int32. Without it (AVX2, AVX-512
without VNNI, SSE4.1) oneDNN uses ``vpmaddubsw``, which adds two products into int16 and saturates at 32767
(255 x 127 x 2 = 64770): oneDNN protects only convolutions with a *signed* source (it shifts the source to uint8 and
halves the weights to 7 bits: ``sa0.5`` in its verbose log); a convolution with an unsigned source and its inner
product (``gemm_s8s8s32``) saturate (README, "int8 on every x86 CPU", has the measurements). So without VNNI every
activation is quantized signed and fully connected layers stay float32 (a small part of LightCNN-9's arithmetic);
with VNNI the graph is as MXNet makes it.

The cache: ``X-NNNN.int8-<key>-symbol.json`` and ``-0000.params`` beside ``X-NNNN.params``, and a manifest
``X-NNNN.int8-<key>.json`` written last (it marks the cache complete and says what it was made from). The key is the
sha256 of everything the quantized model depends on: the weights file's content, the network (the sidecar's model
and preprocessing, or the exported graph's content), the calibration images' pixels as the network sees them, the
calibration mode, the MFM form, the quantization recipe of this module and the CPU's, the MXNet version and MXNet's
environment switches of its oneDNN graph passes. A different checkpoint, image sample, mode, form or kind of CPU gives
another key, so a stale model is never reused.
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

from lightcnn import cpu, files, model

CALIB_MODES = ("naive", "entropy")
# entropy: measured no worse than naive min/max ranges on real faces (README, "LFW in low precision")
DEFAULT_CALIB_MODE = "entropy"
# how each MFM 2/1 enters the int8 graph: "max" keeps split + maximum (in float32 between a dequantize and a
# quantize); "sum-relu" rewrites it as b + relu(a - b) (sum_relu_form: the convolutions' MFMs all in int8)
MFM_FORMS = ("max", "sum-relu")
DEFAULT_CALIB_IMAGES = 256
# what this module does to a graph; change it when the recipe changes, so caches of the old one are not reused
RECIPE = {"version": 2, "quantize_mode": "full", "granularity": "tensor-wise", "subgraph_backend": "MKLDNN_QUANTIZE"}
# what the CPU allows (module doc): "vnni" as MXNet makes the graph; "no-vnni" signed activations, float32 fc layers
CPU_RECIPES = {"vnni": {"quantized_dtype": "auto", "float_fully_connected": False},
               "no-vnni": {"quantized_dtype": "int8", "float_fully_connected": True}}
VNNI_FLAGS = ("avx512_vnni", "avx_vnni", "amx_int8")
FULLY_CONNECTED_OPS = ("FullyConnected", "_sg_mkldnn_fully_connected")
INT8_RELU_SLOPE = 1e-6  # sum_relu_form(for_int8=True): why a slope

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


def int8_recipe(flags=None, environ=None):
    """``(name, reason)``: the entry of :data:`CPU_RECIPES` that is right on this CPU as oneDNN will use it (its flags,
    less what ``DNNL_MAX_CPU_ISA`` holds off). Raises QuantizationError where none is: a CPU without SSE4.1."""
    flags = cpu.cpu_flags() if flags is None else set(flags)
    usable = cpu.usable_flags(flags, environ)
    held = f" (held off by {cpu.ISA_ENV}={cpu.isa_cap(environ)})" if cpu.isa_cap(environ) else ""
    vnni = [flag for flag in VNNI_FLAGS if flag in usable]
    if vnni:
        return "vnni", f"{vnni[0]}: int8 products summed in int32"
    if not flags:
        return "no-vnni", "the CPU's flags cannot be read (no /proc/cpuinfo): the recipe that is right on every ISA"
    if "sse4_1" not in usable:
        raise QuantizationError(f"int8 extraction needs an x86 CPU with SSE4.1 (oneDNN's int8 kernels); this CPU "
                                f"has no sse4_1{held}: use float32")
    return "no-vnni", (f"no {'/'.join(VNNI_FLAGS)}{held}: signed activations (oneDNN keeps their products within "
                       f"int16), fully connected layers in float32")


def cache_key(weights_sha256, network_identity, calib_data, calib_mode, mfm_form="max", cpu_recipe="vnni"):
    """The sha256 of everything the quantized model depends on (see the module doc)."""
    digest = hashlib.sha256()
    record = {"weights": weights_sha256, "network": network_identity, "calib_mode": calib_mode,
              "mfm_form": mfm_form, "calib_shape": list(calib_data.shape), "recipe": RECIPE,
              "cpu_recipe": {cpu_recipe: CPU_RECIPES[cpu_recipe]}, "mxnet": mx.__version__,
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


def quantize(embedding, calib_data, calib_mode=DEFAULT_CALIB_MODE, ctx=None, batch_size=64, mfm_form="max",
             cpu_recipe=None):
    """``embedding`` (a float32 HybridBlock mapping ``data`` to the feature, hybridized and run once; a LightCNN
    Embedding for ``mfm_form="sum-relu"``) quantized to int8 and calibrated on ``calib_data`` (N, C, H, W) float32,
    with the graph ``cpu_recipe`` allows (default: this CPU's, :func:`int8_recipe`)."""
    from mxnet.contrib import quantization
    ctx = ctx or mx.cpu()
    if ctx.device_type != "cpu":
        raise QuantizationError("INT8 extraction runs on the CPU (oneDNN); MXNet 1.9.1 has no int8 GPU path for "
                                "these layers")
    if calib_mode not in CALIB_MODES:
        raise QuantizationError(f"unknown calibration mode {calib_mode!r}; valid: {', '.join(CALIB_MODES)}")
    if mfm_form not in MFM_FORMS:
        raise QuantizationError(f"unknown MFM form {mfm_form!r}; valid: {', '.join(MFM_FORMS)}")
    settings = CPU_RECIPES[cpu_recipe or int8_recipe()[0]]
    if mfm_form == "sum-relu":
        embedding = sum_relu_form(embedding, ctx, for_int8=True)
        embedding(calib_data[:1].as_in_context(ctx))
    exclude = _graph_nodes(embedding, FULLY_CONNECTED_OPS) if settings["float_fully_connected"] else []
    calib_iter = mx.io.NDArrayIter(data={"data": calib_data}, batch_size=min(batch_size, len(calib_data)))
    quiet = logging.getLogger("lightcnn.quantize.mxnet")
    quiet.setLevel(logging.WARNING)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        block = quantization.quantize_net_v2(
            embedding, quantized_dtype=settings["quantized_dtype"], quantize_mode=RECIPE["quantize_mode"],
            quantize_granularity=RECIPE["granularity"], calib_data=calib_iter, calib_mode=calib_mode,
            num_calib_examples=len(calib_data), ctx=ctx, logger=quiet, exclude_layers=exclude)
    block.hybridize(static_alloc=True, static_shape=True)
    if exclude:
        block(calib_data[:1].as_in_context(ctx))
        # the names are MXNet's own, given by the same graph pass quantize_net_v2 runs: check they still matched
        left = [name for name, attrs in _graph_nodes(block, FULLY_CONNECTED_OPS, with_attrs=True)
                if attrs.get("quantized", "").lower() == "true"]
        if left:
            raise QuantizationError(f"fully connected layers {left} were quantized, which this CPU cannot do right "
                                    f"(no VNNI); this MXNet build names its graph nodes otherwise")
    return block


def _graph_nodes(block, ops, with_attrs=False):
    """Names (and attributes) of the nodes of ``block``'s graph, after MXNet's oneDNN quantization pass fused it, whose
    operator is one of ``ops``: the names ``quantize_net_v2`` matches ``exclude_layers`` against."""
    with tempfile.TemporaryDirectory() as folder:
        block.export(os.path.join(folder, "g"), epoch=0)
        symbol = mx.sym.load(os.path.join(folder, "g-symbol.json"))
    if not any(node["op"].startswith("_sg_mkldnn") for node in json.loads(symbol.tojson())["nodes"]):
        symbol = symbol.get_backend_symbol(RECIPE["subgraph_backend"])
    nodes = [n for n in json.loads(symbol.tojson())["nodes"] if n["op"] in ops]
    return [(n["name"], n.get("attrs", {})) for n in nodes] if with_attrs else [n["name"] for n in nodes]


def load_or_quantize(embedding, params_file, network_identity, calib_data, calib_mode=DEFAULT_CALIB_MODE, ctx=None,
                     log=None, mfm_form="max"):
    """The cached int8 model of this (weights, network, calibration, CPU recipe) when there is one, else a new one,
    calibrated and cached. Returns a :class:`QuantizedEmbedding`."""
    log = log or logger
    ctx = ctx or mx.cpu()
    cpu_recipe, reason = int8_recipe()
    log.info("int8 recipe for this CPU: %s (%s); CPU: %s", cpu_recipe, reason, cpu.describe())
    key = cache_key(files.sha256(params_file), network_identity, calib_data, calib_mode, mfm_form, cpu_recipe)
    base = cache_base(params_file, key)
    symbol_file, weights_file, manifest = f"{base}-symbol.json", f"{base}-0000.params", f"{base}.json"
    if os.path.exists(manifest) and _manifest_key(manifest) == key and os.path.exists(symbol_file) \
            and os.path.exists(weights_file):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            block = gluon.SymbolBlock.imports(symbol_file, ["data"], weights_file, ctx=ctx)
        block.hybridize(static_alloc=True, static_shape=True)
        log.info("int8 model reused from %s (same weights, network, calibration images and CPU recipe)", manifest)
        return QuantizedEmbedding(block, manifest)
    log.info("calibrating the int8 model on %d images (%s mode, MFM as %s)", len(calib_data), calib_mode, mfm_form)
    block = quantize(embedding, mx.nd.array(calib_data), calib_mode, ctx, mfm_form=mfm_form, cpu_recipe=cpu_recipe)
    block(mx.nd.array(calib_data[:1], ctx=ctx))  # builds the graph export needs
    _save(block, base, {"key": key, "weights": os.path.basename(params_file), "network": network_identity,
                        "calib_images": len(calib_data), "calib_mode": calib_mode, "mfm_form": mfm_form,
                        "recipe": RECIPE, "cpu_recipe": cpu_recipe, "cpu": cpu.summary(),
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

def sum_relu_form(embedding, ctx=None, for_int8=False):
    """The same function as ``embedding`` (a float32 LightCNN Embedding), with every convolution's MFM 2/1 written as
    ``max(a, b) = b + relu(a - b)``: the halves' difference is one convolution of its own (weights W_a - W_b, bias
    b_a - b_b), so each MFM becomes a convolution with ReLU and a convolution whose output is summed with it. oneDNN
    fuses both (ReLU and sum post-ops) and quantizes them, where ``split`` and ``maximum`` have no int8 kernels and
    make the graph dequantize and requantize around every MFM. Max pooling moves after the MFM (it commutes with the
    maximum, not with the sum). The fully connected head keeps its max (its output is the feature, which stays
    float32); MFM 3/2 and the max+average pools of 29v2 keep their own form.

    ``for_int8``: the ReLU gets a negative slope of :data:`INT8_RELU_SLOPE`. MXNet 1.9.1 gives a convolution fused
    with ReLU an unsigned int8 output, and the convolution whose sum post-op adds into that buffer writes the sum in
    the buffer's type, so every negative MFM output became 0 (``dst_u8`` with ``post-ops:sum`` in oneDNN's verbose log,
    where the calibrated range of those sums is partly negative): the LFW accuracy this form used to lose. With a slope
    the branch is signed, and its negative side, 1e-6 of its range, rounds to 0 in int8: ReLU at int8 resolution.

    Returns a SymbolBlock (input ``data``, output the feature) with its parameters loaded on ``ctx``."""
    ctx = ctx or mx.cpu()
    values = {}
    data = mx.sym.var("data")

    def convolution(layer, x, name, rows, shift=None):
        """``layer``'s convolution restricted to output ``rows`` (minus rows ``shift``), as a new symbol."""
        weight, bias = layer.weight.data(ctx).copy(), layer.bias.data(ctx).copy()
        w, b = weight[rows[0]:rows[1]], bias[rows[0]:rows[1]]
        if shift is not None:
            w, b = w - weight[shift[0]:shift[1]], b - bias[shift[0]:shift[1]]
        values[f"{name}_weight"], values[f"{name}_bias"] = w, b
        kwargs = layer._kwargs
        return mx.sym.Convolution(x, mx.sym.var(f"{name}_weight"), mx.sym.var(f"{name}_bias"), kernel=kwargs["kernel"],
                                  stride=kwargs["stride"], pad=kwargs["pad"], num_filter=rows[1] - rows[0], name=name)

    def mfm(layer, x, name):
        half = layer.weight.shape[0] // 2
        diff = convolution(layer, x, f"{name}_d", (0, half), shift=(half, 2 * half))
        diff = (mx.sym.LeakyReLU(diff, act_type="leaky", slope=INT8_RELU_SLOPE) if for_int8
                else mx.sym.Activation(diff, act_type="relu"))
        return mx.sym.elemwise_add(convolution(layer, x, f"{name}_e", (half, 2 * half)), diff, name=f"{name}_max")

    def build(block, x):
        if isinstance(block, model.MFMConv) and block.max_of_halves:
            x = mfm(block.conv, x, block.name)
            return model.pool2x2(mx.sym, x, block.pool) if block.pool else x
        if isinstance(block, model.Group):
            return build(block.conv, build(block.conv_a, x))
        if isinstance(block, model.ResBlock):
            return mx.sym.elemwise_add(x, build(block.conv2, build(block.conv1, x)))
        if isinstance(block, model.Embedding):
            for child in block.blocks():
                x = build(child, x)
            return x
        # anything else (the fc head, MFM 3/2, 29v2's pools): the block itself, with its own parameters
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
