"""The authors' released PyTorch weights -> a checkpoint of this project (extract_features.py reads it unchanged).

    python -m lightcnn convert --pytorch LightCNN_29Layers_V2_checkpoint.pth.tar --out models/lightcnn29v2 \\
        [--network lightcnn29v2] [--image-size 144]

writes ``models/lightcnn29v2-symbol.json``, ``-0000.params`` and the sidecar ``-0000.json`` (epoch 0: no epoch was
trained here; the authors' own epoch is kept in the sidecar's ``source``). Then:

    python extract_features/extract_features.py --model-prefix models/lightcnn29v2 --image-root faces/

What is read. The release files are ``torch.save`` of ``{'epoch', 'arch', 'state_dict', 'prec1'}`` with the
state_dict of a ``torch.nn.DataParallel`` model (every key starts with ``module.``); a bare state_dict, with or
without the prefix, is accepted too. The network is told from the keys (``features.0.filter.weight``: LightCNN-9;
``conv1.filter.weight`` with an MFM ``fc.filter.weight``: LightCNN-29; with a plain ``fc.weight``: LightCNN-29v2)
and the class count from ``fc2.weight`` (79,077 for 9 and 29, 80,013 for 29v2 in the released files).
``--network`` overrides the detection. Every tensor is matched to a parameter of
``lightcnn.model.get_model(network, num_classes)`` by walking both module trees by name (the network's
:class:`~lightcnn.networks.AuthorsLayout`: our MFM blocks keep the authors' ``conv_a``/``conv``/``conv1``/``conv2``
structure, their ``filter`` is our ``conv``/``fc``) and then checked by shape; a missing or unexpected tensor, or a
shape that differs, is an error naming the tensors and shapes, and so is a tensor holding NaN or infinities (a
damaged file, or a training that diverged before it was saved).
No tensor needs transposing: conv weights are (out, in, kh, kw) and fc weights (out, in) in both frameworks, the
MFM halves are the first and second half of the channels in both, and the flatten before ``fc`` is NCHW in both.

The file is read with ``torch.load(weights_only=True, map_location='cpu')``. weights_only is the default since
torch 2.6 and is passed explicitly so older versions behave the same: the files come from cloud drives, and
weights_only unpickles only tensors, containers, numbers and strings (everything the authors' dict holds, in the
zip format and in the pre-1.6 format of the 2017 files) instead of running arbitrary pickled code. A file holding
other objects is refused with the reason. ``map_location='cpu'`` because the release tensors were saved from GPUs.

Preprocessing recorded in the sidecar: gray, ``scale = 1/255``, ``mean = 0`` (the authors' ``ToTensor()``: [0, 1],
no mean), a ``crop_size = 128`` centre crop, and ``image_size = 144`` by default. The authors trained on 144x144
faces aligned with the eyes at y = 48 and cropped 128 at random; their test faces are 128x128 aligned with the eyes
at y = 40, which is exactly the centre 128 crop of the 144 training face (48 - 8 = 40). Our pipeline resizes every
image to ``image_size`` and centre-crops ``crop_size``, so ``image_size = 144`` turns the 144x144 faces this
project stores (``lightcnn.prepare``, the shared LFW crops) into the authors' test geometry without any resampling.
If your faces are already the authors' 128x128 test crops, convert with ``--image-size 128`` (they then pass through
unchanged); with 144 they would be enlarged 12.5% and their border cut.

torch is needed only here, and only at run time; without it the command says how to install it. The command line
is :mod:`lightcnn.cli.convert`.
"""
import os
import pickle

import mxnet as mx
import numpy as np
from mxnet.gluon import nn

from lightcnn import checkpoint, files, locks
from lightcnn.images import Preprocess
from lightcnn.model import Group, MFMConv, MFMDense, ModelSpec, ResBlock
from lightcnn.networks import CONFIGS, EMBEDDING_SIZE, INPUT_SIZE, STORED_SIZE
from lightcnn.optional import require

# the networks the authors released, and how their files are laid out (lightcnn.networks)
NETWORKS = tuple(name for name, config in CONFIGS.items() if config.authors)
AUTHORS_PREPROCESS = Preprocess(image_size=STORED_SIZE, crop_size=INPUT_SIZE, scale=1.0 / 255.0, mean=0.0)
CONVERTED_EPOCH = 0  # no epoch of training happened here
DATAPARALLEL_PREFIX = "module."


# ---------------------------------------------------------------------------------------------------------------
# The authors' module tree against ours

def _leaves(path, block):
    """{authors' tensor name: our Parameter} below one block, following the authors' attribute names."""
    if isinstance(block, MFMConv):
        return _leaves(path + ".filter", block.conv)
    if isinstance(block, MFMDense):
        return _leaves(path + ".filter", block.fc)
    if isinstance(block, Group):
        return {**_leaves(path + ".conv_a", block.conv_a), **_leaves(path + ".conv", block.conv)}
    if isinstance(block, ResBlock):
        return {**_leaves(path + ".conv1", block.conv1), **_leaves(path + ".conv2", block.conv2)}
    if isinstance(block, (nn.Conv2D, nn.Dense)):
        found = {path + ".weight": block.weight}
        if block.bias is not None:
            found[path + ".bias"] = block.bias
        return found
    raise TypeError(f"no authors' counterpart for {type(block).__name__} at {path}")


def authors_parameter_map(net, network):
    """{authors' state_dict key (without ``module.``): Parameter of ``net``}, every parameter of ``net`` once."""
    layout = CONFIGS[network].authors
    trunk = net.embedding.trunk
    blocks = [trunk[i] for i in range(len(trunk)) if list(trunk[i].collect_params().keys())]
    if len(blocks) != len(layout.trunk):
        raise AssertionError(f"{network}: {len(blocks)} parameterised trunk blocks, the authors' layout has "
                             f"{len(layout.trunk)}")
    mapping = {}
    for (name, expected_type), block in zip(layout.trunk + (layout.head,), blocks + [net.embedding.head]):
        if type(block).__name__ != expected_type:
            raise AssertionError(f"{network}: authors' {name} is a {expected_type}, ours is {type(block).__name__}")
        mapping.update(_leaves(name, block))
    mapping.update(_leaves(layout.classifier, net.classifier))
    ours = {p.name for p in net.collect_params().values()}
    mapped = [p.name for p in mapping.values()]
    if sorted(mapped) != sorted(ours):
        raise AssertionError(f"{network}: the authors' layout does not cover every parameter exactly once")
    return mapping


# ---------------------------------------------------------------------------------------------------------------
# Reading the file (the only part that needs torch)

def _plain(value):
    """A JSON-able copy of a scalar entry of the authors' dict (a 0-d tensor becomes its number), else None."""
    if hasattr(value, "item") and getattr(value, "numel", lambda: 0)() == 1:
        value = value.item()
    return value if isinstance(value, (bool, int, float, str)) else None


def read_pytorch_file(path):
    """``(state, info)``: {key: float32 numpy array} as saved (prefix kept) and the scalar entries arch/epoch/prec1."""
    torch = require("torch", "reading a PyTorch checkpoint", "torch==2.13.0 (or any CPU build of torch)")
    if not os.path.isfile(path):
        raise FileNotFoundError(f"{path} not found")
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as e:
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise ValueError(f"{path}: torch.load(weights_only=True) refused it ({first}); the authors' files hold only "
                         f"tensors, numbers and strings. If you trust this file, load it yourself and "
                         f"torch.save its state_dict alone, then convert that") from e
    except RuntimeError as e:
        raise ValueError(f"{path} is not a readable PyTorch file: {str(e).strip().splitlines()[0]}") from e
    info = {}
    if isinstance(obj, dict) and isinstance(obj.get("state_dict"), dict):
        info = {k: _plain(obj[k]) for k in ("arch", "epoch", "prec1") if k in obj and _plain(obj[k]) is not None}
        obj = obj["state_dict"]
    if not isinstance(obj, dict) or not obj or not all(isinstance(v, torch.Tensor) for v in obj.values()):
        raise ValueError(f"{path} holds neither a state_dict (name -> tensor) nor a dict with one under "
                         f"'state_dict'")
    state = {k: v.detach().cpu().to(torch.float32).numpy() for k, v in obj.items()}
    return state, info


def strip_dataparallel_prefix(state):
    """Drop ``module.`` from every key when every key has it (a DataParallel state_dict)."""
    prefixed = [k for k in state if k.startswith(DATAPARALLEL_PREFIX)]
    if not prefixed:
        return state, False
    if len(prefixed) != len(state):
        bare = sorted(k for k in state if not k.startswith(DATAPARALLEL_PREFIX))
        raise ValueError(f"some keys start with {DATAPARALLEL_PREFIX!r} and some do not (e.g. {bare[:3]})")
    return {k[len(DATAPARALLEL_PREFIX):]: v for k, v in state.items()}, True


def detect_network(state):
    """The authors' network a state_dict (prefix removed) comes from, told by its keys and the fc's shape."""
    if "features.0.filter.weight" in state:
        return "lightcnn9"
    if "conv1.filter.weight" in state:
        mfm_fc, plain_fc = state.get("fc.filter.weight"), state.get("fc.weight")
        if mfm_fc is not None and plain_fc is None and mfm_fc.shape[0] == 2 * EMBEDDING_SIZE:
            return "lightcnn29"
        if plain_fc is not None and mfm_fc is None and plain_fc.shape[0] == EMBEDDING_SIZE:
            return "lightcnn29v2"
    keys = sorted(state)
    raise ValueError(f"cannot tell which LightCNN this is (expected 'features.0.filter.weight' for LightCNN-9, or "
                     f"'conv1.filter.weight' with an fc of 512 (29) or 256 (29v2) outputs); keys: "
                     f"{', '.join(keys[:6])}{', ...' if len(keys) > 6 else ''}; pass --network to choose")


def _shape(a):
    return tuple(int(n) for n in a.shape)


def load_state(net, network, state, detected=None):
    """Copy ``state`` (authors' keys, no prefix) into ``net`` (shapes resolved); errors name tensors and shapes."""
    params = authors_parameter_map(net, network)
    missing = [k for k in params if k not in state]
    unexpected = [k for k in sorted(state) if k not in params]
    if missing or unexpected:
        parts = []
        if missing:
            parts.append(f"missing {len(missing)}: " + ", ".join(f"{k} {_shape(params[k])}" for k in missing))
        if unexpected:
            parts.append(f"unexpected {len(unexpected)}: " + ", ".join(f"{k} {_shape(state[k])}" for k in unexpected))
        hint = f" (its keys look like {detected})" if detected and detected != network else ""
        raise ValueError(f"the file's tensors do not match {network}{hint}: " + "; ".join(parts))
    wrong = [f"{k}: file {_shape(state[k])}, {network} expects {_shape(p)}" for k, p in params.items()
             if _shape(state[k]) != _shape(p)]
    if wrong:
        raise ValueError(f"tensor shapes do not match {network}: " + "; ".join(wrong))
    for key, param in params.items():
        param.set_data(mx.nd.array(state[key], dtype=np.float32))


def load_pytorch_checkpoint(path, network=None):
    """``(net, source)``: this project's network holding the weights of an authors' PyTorch file.

    Parameters
    ----------
    path : str
        A ``.pth.tar`` as the authors' train.py writes it, or a bare state_dict (``module.`` prefix optional).
    network : str, optional
        ``lightcnn9``, ``lightcnn29`` or ``lightcnn29v2``; None detects it from the keys.

    Returns
    -------
    net : lightcnn.model.LightCNN
        Hybridized and run once (ready for ``net.export``); ``net(x) -> (logits, embedding)``.
    source : dict
        format, file (absolute), sha256, network, num_classes, and the file's arch / epoch / prec1 when present.
    """
    path = os.path.abspath(path)
    if network is not None and network not in NETWORKS:
        raise ValueError(f"unknown network {network!r}; the authors' networks are {', '.join(NETWORKS)}")
    state, info = read_pytorch_file(path)
    state, prefixed = strip_dataparallel_prefix(state)
    checkpoint.check_finite(state, path)  # NaN weights would convert, extract and export without a word
    try:
        detected = detect_network(state)
    except ValueError:
        if network is None:
            raise
        detected = None
    network = network or detected
    if "fc2.weight" not in state or len(state["fc2.weight"].shape) != 2:
        raise ValueError(f"{path}: no 2-d 'fc2.weight' (the classifier), so the class count is unknown")
    num_classes = int(state["fc2.weight"].shape[0])
    net = ModelSpec(network, num_classes).build()
    net.initialize(mx.init.Zero())  # every value is overwritten below; the pass resolves the deferred shapes
    net.hybridize()
    net(mx.nd.zeros((1,) + tuple(net.input_shape)))
    load_state(net, network, state, detected)
    source = {"format": "pytorch", "file": path, "sha256": files.sha256(path), "network": network,
              "num_classes": num_classes, "dataparallel_prefix": prefixed, **info}
    return net, source


# ---------------------------------------------------------------------------------------------------------------
# Writing the project checkpoint

def write_checkpoint(net, source, prefix, preprocess=AUTHORS_PREPROCESS):
    """Save ``net`` as this project's checkpoint ``prefix`` epoch 0; the sidecar's origin records ``source``."""
    sidecar = checkpoint.Sidecar(model=ModelSpec(source["network"], source["num_classes"]), preprocess=preprocess,
                                 epoch=CONVERTED_EPOCH, origin={"kind": "converted", **source})
    with locks.hold(prefix, field="out"):  # a checkpoint prefix: one writer under it, a training or a conversion
        return checkpoint.save(net, None, prefix, sidecar)
