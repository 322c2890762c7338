"""LightCNN networks as Gluon HybridBlocks, in build order: MFM -> group -> resblock -> networks -> registry.

Every network maps a gray ``(N, 1, 128, 128)`` batch to ``(logits, embedding)``; ``features(x)`` gives the
256-d embedding alone (the fc output before dropout), so extraction never picks outputs apart.
Architectures follow the paper and the authors' PyTorch ``light_cnn.py``; each network's facts (sizes, dropout,
which trunk and head) are in :mod:`lightcnn.networks`.

Every layer starts its bias at the recipe's 0.1 itself (``bias_initializer``), so the weight initializer is the
caller's choice: ``net.initialize(mx.init.Xavier())`` works, and ``lightcnn.init.xavier`` gives the recipe's.
"""
from __future__ import annotations

import dataclasses

import mxnet as mx
from mxnet.gluon import nn
from mxnet.ndarray import NDArray

from lightcnn.networks import (EMBEDDING_SIZE, INPUT_SHAPE, canonical_name, default_dropout,  # noqa: F401 (API)
                               model_names, network_config)

MFM_TYPES = ("2/1", "3/2")
BIAS = 0.1  # the seed recipe's constant for every bias


def _bias():
    return mx.init.Constant(BIAS)


def _conv_channels(out_channels, mfm_type):
    """Channels the linear layer must produce so the MFM leaves ``out_channels``."""
    if mfm_type == "2/1":
        return 2 * out_channels
    if mfm_type == "3/2":
        if out_channels % 2:
            raise ValueError(f"MFM 3/2 needs an even number of output channels, got {out_channels}")
        return 3 * out_channels // 2
    raise ValueError(f"unknown MFM type {mfm_type!r}; valid: {', '.join(MFM_TYPES)}")


def max_feature_map(F, x, mfm_type):
    """MFM 2/1: element-wise max of the two channel halves. MFM 3/2: max and median of three slices."""
    if mfm_type == "2/1":
        a, b = F.split(x, num_outputs=2, axis=1)
        return F.maximum(a, b)
    a, b, c = F.split(x, num_outputs=3, axis=1)
    lo, hi = F.minimum(a, b), F.maximum(a, b)
    # median(a, b, c) = max(min(a, b), min(max(a, b), c)): exact, no arithmetic rounding
    return F.concat(F.maximum(hi, c), F.maximum(lo, F.minimum(hi, c)), dim=1)


def pool2x2(F, x, kind):
    """2x2 stride-2 pool in Caffe's ceil mode ('full' convention); 'maxavg' is 29v2's max + average."""
    pooled = F.Pooling(x, kernel=(2, 2), stride=(2, 2), pool_type="max", pooling_convention="full")
    if kind == "maxavg":
        pooled = pooled + F.Pooling(x, kernel=(2, 2), stride=(2, 2), pool_type="avg",
                                    pooling_convention="full")
    return pooled


class MFMConv(nn.HybridBlock):
    """Convolution to 2C (or 3C/2) channels, optional 2x2 pool, then MFM -> C channels.

    A max-pool commutes with MFM 2/1's element-wise max, so with ``pool_first`` the pool runs on the conv output
    before the MFM: identical result (tests/test_model.py proves it), and the MFM reads a quarter of the values. MFM
    3/2's median and 29v2's average pool do not commute, so those pool after the MFM.
    """

    def __init__(self, out_channels, kernel_size, padding=0, pool=None, mfm_type="2/1", pool_first=True,
                 **kwargs):
        super().__init__(**kwargs)
        self._mfm_type = mfm_type
        self._pool = pool
        self._pool_first = pool_first and pool == "max" and mfm_type == "2/1"
        with self.name_scope():
            self.conv = nn.Conv2D(_conv_channels(out_channels, mfm_type), kernel_size, padding=padding,
                                  bias_initializer=_bias())

    @property
    def mfm_type(self):
        return self._mfm_type

    @property
    def pool(self):
        """The pool after the convolution: None, "max" or "maxavg"."""
        return self._pool

    @property
    def max_of_halves(self):
        """Whether the output is ``max(conv half a, conv half b)``, then at most a max pool (MFM 2/1, no average
        pool): what :func:`lightcnn.quantize.sum_relu_form` can write as ``b + relu(a - b)``."""
        return self._mfm_type == "2/1" and self._pool in (None, "max")

    def hybrid_forward(self, F, x):
        x = self.conv(x)
        if self._pool and self._pool_first:
            return max_feature_map(F, pool2x2(F, x, self._pool), self._mfm_type)
        x = max_feature_map(F, x, self._mfm_type)
        return pool2x2(F, x, self._pool) if self._pool else x


class MFMDense(nn.HybridBlock):
    """Fully connected layer to 2C (or 3C/2) units, then MFM -> C (flattens its input)."""

    def __init__(self, units, mfm_type="2/1", **kwargs):
        super().__init__(**kwargs)
        self._mfm_type = mfm_type
        with self.name_scope():
            self.fc = nn.Dense(_conv_channels(units, mfm_type), bias_initializer=_bias())

    def hybrid_forward(self, F, x):
        return max_feature_map(F, self.fc(x), self._mfm_type)


class Group(nn.HybridBlock):
    """LightCNN's group(in, out): MFM 1x1 in->in, then MFM 3x3 (pad 1) in->out, optionally pooled."""

    def __init__(self, in_channels, out_channels, pool=None, mfm_type="2/1", pool_first=True, **kwargs):
        super().__init__(**kwargs)
        with self.name_scope():
            self.conv_a = MFMConv(in_channels, 1, mfm_type=mfm_type)
            self.conv = MFMConv(out_channels, 3, padding=1, pool=pool, mfm_type=mfm_type, pool_first=pool_first)

    def hybrid_forward(self, F, x):
        return self.conv(self.conv_a(x))


class ResBlock(nn.HybridBlock):
    """Two MFM 3x3 convs plus the identity; no batch norm anywhere (as in the paper)."""

    def __init__(self, channels, mfm_type="2/1", **kwargs):
        super().__init__(**kwargs)
        with self.name_scope():
            self.conv1 = MFMConv(channels, 3, padding=1, mfm_type=mfm_type)
            self.conv2 = MFMConv(channels, 3, padding=1, mfm_type=mfm_type)

    def hybrid_forward(self, F, x):
        return x + self.conv2(self.conv1(x))


class Embedding(nn.HybridBlock):
    """Trunk + 256-d fc: the face feature. Checks its input so a wrong shape fails with a clear message."""

    def __init__(self, trunk, head, input_shape, **kwargs):
        super().__init__(**kwargs)
        self.input_shape = tuple(input_shape)
        with self.name_scope():
            self.trunk = trunk
            self.head = head

    def forward(self, x, *args):
        if isinstance(x, NDArray):
            check_input_shape(x.shape, self.input_shape)
        return super().forward(x, *args)

    def blocks(self):
        """The trunk's blocks, then the head, in forward order."""
        return [self.trunk[i] for i in range(len(self.trunk))] + [self.head]

    def hybrid_forward(self, F, x):
        return self.head(self.trunk(x))


def check_input_shape(shape, expected):
    """Raise ValueError naming the problem when a batch is not (N, C, H, W) with the expected C, H, W."""
    if len(shape) != 4:
        raise ValueError(f"LightCNN expects a 4-d batch (N, C, H, W), got shape {tuple(shape)}")
    channels, height, width = shape[1:]
    if channels != expected[0]:
        raise ValueError(f"LightCNN expects {expected[0]} input channel(s) (gray), got {channels} "
                         f"in shape {tuple(shape)}")
    if (height, width) != tuple(expected[1:]):
        raise ValueError(f"LightCNN expects {expected[1]}x{expected[2]} inputs, got {height}x{width} "
                         f"in shape {tuple(shape)}")


class LightCNN(nn.HybridBlock):
    """A LightCNN: ``forward(x) -> (logits, embedding)``; ``features(x) -> embedding``.

    Parameters
    ----------
    config : lightcnn.networks.NetworkConfig
        Which network (its trunk, pools, head and classifier).
    num_classes : int
        Training identities.
    mfm_type, pool_first :
        See :func:`get_model`.
    dropout : float
        The dropout rate before the classifier (training only); :func:`get_model` gives the network's own.
    """

    def __init__(self, config, num_classes, mfm_type="2/1", pool_first=True, dropout=0.5, **kwargs):
        super().__init__(**kwargs)
        self.num_classes = num_classes
        with self.name_scope():
            # created in this order (trunk, head, classifier): MXNet numbers the parameter names so
            trunk = _TRUNKS[config.trunk](mfm_type, pool_first, config.pool)
            head = (MFMDense(config.embedding_size, mfm_type=mfm_type) if config.mfm_head
                    else nn.Dense(config.embedding_size, bias_initializer=_bias()))
            self.embedding = Embedding(trunk, head, config.input_shape, prefix="embedding_")
            self.dropout = nn.Dropout(dropout)
            self.classifier = nn.Dense(num_classes, use_bias=config.classifier_bias, bias_initializer=_bias())

    @property
    def input_shape(self):
        return self.embedding.input_shape

    def features(self, x):
        """The 256-d face feature, (N, 256)."""
        return self.embedding(x)

    def forward(self, x, *args):
        if isinstance(x, NDArray):
            check_input_shape(x.shape, self.input_shape)
        return super().forward(x, *args)

    def hybrid_forward(self, F, x):
        emb = self.embedding(x)                         # (N, 256)
        return self.classifier(self.dropout(emb)), emb  # (N, num_classes), (N, 256)


# ---------------------------------------------------------------------------------------------------------------
# The trunks of the four networks (lightcnn.networks says which is whose). Shapes are for the 128x128 input.

def _plain4_trunk(mfm_type, pool_first, pool_kind):
    """Caffe model A: 9x9, 5x5, 5x5, 4x4 convs without padding, each pooled (before the MFM)."""
    trunk = nn.HybridSequential(prefix="")
    with trunk.name_scope():
        trunk.add(MFMConv(48, 9, pool=pool_kind, mfm_type=mfm_type, pool_first=pool_first),    # (N, 48, 60, 60)
                  MFMConv(96, 5, pool=pool_kind, mfm_type=mfm_type, pool_first=pool_first),    # (N, 96, 28, 28)
                  MFMConv(128, 5, pool=pool_kind, mfm_type=mfm_type, pool_first=pool_first),   # (N, 128, 12, 12)
                  MFMConv(192, 4, pool=pool_kind, mfm_type=mfm_type, pool_first=pool_first))   # (N, 192, 5, 5)
    return trunk


def _groups9_trunk(mfm_type, pool_first, pool_kind):
    trunk = nn.HybridSequential(prefix="")
    with trunk.name_scope():
        trunk.add(MFMConv(48, 5, padding=2, pool=pool_kind, mfm_type=mfm_type, pool_first=pool_first),  # 48x64x64
                  Group(48, 96, pool=pool_kind, mfm_type=mfm_type, pool_first=pool_first),              # 96x32x32
                  Group(96, 192, pool=pool_kind, mfm_type=mfm_type, pool_first=pool_first),             # 192x16x16
                  Group(192, 128, mfm_type=mfm_type),                                                   # 128x16x16
                  Group(128, 128, pool=pool_kind, mfm_type=mfm_type, pool_first=pool_first))            # 128x8x8
    return trunk


def _resnet29_trunk(mfm_type, pool_first, pool_kind):
    """LightCNN-29's trunk: 1, 2, 3, 4 resblocks between the groups. The pools sit after conv1 and after
    groups 1, 2 and 4, where (for plain max pooling) they can run before the MFM."""
    trunk = nn.HybridSequential(prefix="")
    with trunk.name_scope():
        trunk.add(MFMConv(48, 5, padding=2, pool=pool_kind, mfm_type=mfm_type, pool_first=pool_first))  # 48x64x64
        trunk.add(ResBlock(48, mfm_type=mfm_type))
        trunk.add(Group(48, 96, pool=pool_kind, mfm_type=mfm_type, pool_first=pool_first))              # 96x32x32
        for _ in range(2):
            trunk.add(ResBlock(96, mfm_type=mfm_type))
        trunk.add(Group(96, 192, pool=pool_kind, mfm_type=mfm_type, pool_first=pool_first))             # 192x16x16
        for _ in range(3):
            trunk.add(ResBlock(192, mfm_type=mfm_type))
        trunk.add(Group(192, 128, mfm_type=mfm_type))                                                   # 128x16x16
        for _ in range(4):
            trunk.add(ResBlock(128, mfm_type=mfm_type))
        trunk.add(Group(128, 128, pool=pool_kind, mfm_type=mfm_type, pool_first=pool_first))            # 128x8x8
    return trunk


_TRUNKS = {"plain4": _plain4_trunk, "groups9": _groups9_trunk, "resnet29": _resnet29_trunk}


def _check_options(num_classes, mfm_type, dropout):
    if not isinstance(num_classes, int) or isinstance(num_classes, bool) or num_classes <= 0:
        raise ValueError(f"num_classes must be a positive integer, got {num_classes!r}")
    if mfm_type not in MFM_TYPES:
        raise ValueError(f"unknown MFM type {mfm_type!r}; valid: {', '.join(MFM_TYPES)}")
    if dropout is not None and not 0 <= dropout < 1:
        raise ValueError(f"dropout must be in [0, 1), got {dropout}")


def get_model(name: str, num_classes: int, mfm_type: str = "2/1", pool_first: bool = True,
              dropout: float | None = None, **kwargs) -> LightCNN:
    """Build a registered LightCNN.

    Parameters
    ----------
    name : str
        One of :func:`model_names` (``lightcnn4``, ``lightcnn9``, ``lightcnn29``, ``lightcnn29v2``).
    num_classes : int
        Training identities (size of the classifier).
    mfm_type : str
        ``"2/1"`` (paper default) or ``"3/2"``.
    pool_first : bool
        Pool the conv output before MFM 2/1 (identical result, less work). False pools after the MFM.
    dropout : float, optional
        Overrides the network's dropout rate (0.7 for LightCNN-4, 0.5 otherwise).

    The parameter names are fixed by ``name`` (prefix ``<name>_``), so weights saved by one process load by name
    in another.
    """
    config = network_config(name)
    _check_options(num_classes, mfm_type, dropout)
    prefix = kwargs.pop("prefix", config.name + "_")
    return LightCNN(config, num_classes, mfm_type=mfm_type, pool_first=pool_first,
                    dropout=config.dropout if dropout is None else dropout, prefix=prefix, **kwargs)


@dataclasses.dataclass(frozen=True)
class ModelSpec:
    """What rebuilds a network (and what a checkpoint records of it): its name, classes and options.

    ``dropout`` None means the network's own rate. Pooling order is not part of it: both orders are the same
    function (see :class:`MFMConv`).
    """

    network: str
    num_classes: int
    mfm_type: str = "2/1"
    dropout: float = None

    def __post_init__(self):
        object.__setattr__(self, "network", canonical_name(self.network))
        _check_options(self.num_classes, self.mfm_type, self.dropout)

    @property
    def effective_dropout(self):
        """The rate the network trains with: ``dropout``, or the network's own when that is None."""
        return default_dropout(self.network) if self.dropout is None else self.dropout

    def build(self, **kwargs):
        """The network (uninitialised); ``kwargs`` go to :func:`get_model` (e.g. ``pool_first``)."""
        return get_model(self.network, self.num_classes, mfm_type=self.mfm_type, dropout=self.dropout, **kwargs)

    def to_dict(self):
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d):
        return cls(**d)
