"""Each LightCNN's facts in one frozen record, importable without MXNet: what it takes and gives, how
:mod:`lightcnn.model` assembles it, its dropout, and where the authors' PyTorch release keeps its weights
(:mod:`lightcnn.interop.convert`). As timm keeps a default config beside each architecture.
"""
import dataclasses

from lightcnn.images import CROP_SIZE, STORED_SIZE, Preprocess

EMBEDDING_SIZE = 256
INPUT_SIZE = CROP_SIZE  # the network's gray square input: the centre (evaluation) or random (training) crop
INPUT_SHAPE = (1, INPUT_SIZE, INPUT_SIZE)
TRUNKS = ("plain4", "groups9", "resnet29")
POOLS = ("max", "maxavg")


@dataclasses.dataclass(frozen=True)
class AuthorsLayout:
    """Where the authors' ``light_cnn.py`` keeps a network's parameters.

    ``trunk``: ``(their module name, our block class name)`` for every block of our trunk that has parameters, in
    our order; ``head``: the same for the embedding fc; ``classifier``: their classifier's name. Our MFM blocks keep
    their ``conv_a``/``conv``/``conv1``/``conv2`` structure; their ``filter`` is our ``conv``/``fc``.
    """

    trunk: tuple
    head: tuple
    classifier: str = "fc2"


# LightCNN-9's ``features`` is a Sequential of conv, pool, group, pool, group, pool, group, group, pool: its
# parameterised entries are 0, 2, 4, 6, 7.
_AUTHORS_TRUNK_9 = (("features.0", "MFMConv"), ("features.2", "Group"), ("features.4", "Group"),
                    ("features.6", "Group"), ("features.7", "Group"))
# conv1, then for stage k = 1..4: k resblocks ``blockk.i`` and ``groupk`` (the paper's 1, 2, 3, 4 blocks)
_AUTHORS_TRUNK_29 = (("conv1", "MFMConv"),) + tuple(
    entry for stage in (1, 2, 3, 4)
    for entry in tuple((f"block{stage}.{i}", "ResBlock") for i in range(stage)) + ((f"group{stage}", "Group"),))


@dataclasses.dataclass(frozen=True)
class NetworkConfig:
    """One LightCNN.

    Parameters
    ----------
    name : str
        The registered name (``lightcnn9``).
    trunk : str
        The trunk's layout in :mod:`lightcnn.model`: ``plain4`` (Caffe model A's four pooled convs), ``groups9``
        (conv + four groups) or ``resnet29`` (conv + groups with 1, 2, 3, 4 resblocks between them).
    pool : str
        Every 2x2 pool: ``max``, or ``maxavg`` (29v2's max + average).
    mfm_head : bool
        The embedding fc ends in an MFM; False: a plain fc (29v2).
    classifier_bias : bool
        The classifier over the training identities has a bias (29v2's has none).
    dropout : float
        The dropout rate before the classifier in training: Caffe model A's 0.7, the authors' 0.5 for the others.
    authors : AuthorsLayout or None
        The authors' PyTorch module tree; None: they released no such network.
    input_size, stored_size, embedding_size : int
        The network's input side, the side of the stored faces it is cropped from, and the feature's length.
    """

    name: str
    trunk: str
    pool: str
    mfm_head: bool
    classifier_bias: bool
    dropout: float
    authors: AuthorsLayout = None
    input_size: int = INPUT_SIZE
    stored_size: int = STORED_SIZE
    embedding_size: int = EMBEDDING_SIZE

    @property
    def input_shape(self):
        """One gray input, ``(1, input_size, input_size)``."""
        return (1, self.input_size, self.input_size)

    @property
    def preprocess(self):
        """The default preprocessing: the stored faces, centre-cropped to the input (the same for all four)."""
        return Preprocess(image_size=self.stored_size, crop_size=self.input_size)


CONFIGS = {config.name: config for config in (
    NetworkConfig("lightcnn4", trunk="plain4", pool="max", mfm_head=True, classifier_bias=True, dropout=0.7),
    NetworkConfig("lightcnn9", trunk="groups9", pool="max", mfm_head=True, classifier_bias=True, dropout=0.5,
                  authors=AuthorsLayout(_AUTHORS_TRUNK_9, ("fc1", "MFMDense"))),
    NetworkConfig("lightcnn29", trunk="resnet29", pool="max", mfm_head=True, classifier_bias=True, dropout=0.5,
                  authors=AuthorsLayout(_AUTHORS_TRUNK_29, ("fc", "MFMDense"))),
    # every pool is max + average; the embedding is a plain fc (no MFM) and the classifier has no bias
    NetworkConfig("lightcnn29v2", trunk="resnet29", pool="maxavg", mfm_head=False, classifier_bias=False,
                  dropout=0.5, authors=AuthorsLayout(_AUTHORS_TRUNK_29, ("fc", "Dense"))),
)}


def model_names():
    return list(CONFIGS)


def canonical_name(name):
    """'LightCNN-9' -> 'lightcnn9'; an unknown name is an error listing the valid ones."""
    key = str(name).lower().replace("-", "").replace("_", "")
    if key not in CONFIGS:
        raise ValueError(f"unknown network {name!r}; valid names: {', '.join(model_names())}")
    return key


def network_config(name):
    """The :class:`NetworkConfig` of a network (any spelling :func:`canonical_name` takes)."""
    return CONFIGS[canonical_name(name)]


def default_dropout(name):
    """The network's own dropout rate (what ``dropout=None`` means)."""
    return network_config(name).dropout
