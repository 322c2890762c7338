"""The authors' LightCNN-9, -29 and -29v2 as PyTorch modules: what the conversion tests check against and what
``bench_model --compare`` times beside this project's networks. torch is optional (requirements-test.txt); importing
this module without it is a one-line error saying how to install it.

Written from the paper and ../shared/REFERENCE.md so that ``state_dict()`` has exactly the keys of the released
``LightCNN_9Layers_checkpoint.pth.tar``, ``LightCNN_29Layers_checkpoint.pth.tar`` and
``LightCNN_29Layers_V2_checkpoint.pth.tar`` (after their ``module.`` prefix):

- LightCNN-9: ``features`` is a Sequential of conv, pool, group, pool, group, pool, group, group, pool, so the
  parameterised entries are 0, 2, 4, 6 and 7 (``features.0.filter.weight``, ``features.2.conv_a.filter.weight``,
  ``features.2.conv.filter.weight``, ...); then ``fc1.filter`` (MFM fc) and ``fc2``.
- LightCNN-29: ``conv1``, ``block1.0``, ``group1``, ``block2.0-1``, ``group2``, ``block3.0-2``, ``group3``,
  ``block4.0-3``, ``group4``, ``fc.filter`` (MFM fc), ``fc2``. The pools are parameter-free modules.
- LightCNN-29v2: the same trunk with every pool max + average, a plain ``fc`` (no MFM) and ``fc2`` without bias.

Every MFM layer keeps its linear part under ``filter``; the MFM takes the element-wise max of the two channel
halves. ``forward(x) -> (logits, 256-d feature)``; the feature is taken before dropout.
"""
from lightcnn.optional import require

torch = require("torch", "the authors' PyTorch LightCNN", "torch==2.13.0")
F = torch.nn.functional
nn = torch.nn

FEATURE_SIZE = 256
FLAT = 128 * 8 * 8  # the trunk's (N, 128, 8, 8) output of a 128x128 input, flattened in NCHW order


class MFM(nn.Module):
    """A conv (or, with ``linear=True``, fully connected) layer to 2 * out units, then the max of the halves."""

    def __init__(self, in_units, out_units, kernel_size=3, padding=1, linear=False):
        super().__init__()
        if linear:
            self.filter = nn.Linear(in_units, 2 * out_units)
        else:
            self.filter = nn.Conv2d(in_units, 2 * out_units, kernel_size, stride=1, padding=padding)

    def forward(self, x):
        first, second = torch.chunk(self.filter(x), 2, dim=1)
        return torch.maximum(first, second)


class Group(nn.Module):
    """MFM 1x1 in -> in, then MFM 3x3 (pad 1) in -> out."""

    def __init__(self, in_channels, out_channels):
        super().__init__()
        self.conv_a = MFM(in_channels, in_channels, kernel_size=1, padding=0)
        self.conv = MFM(in_channels, out_channels, kernel_size=3, padding=1)

    def forward(self, x):
        return self.conv(self.conv_a(x))


class ResBlock(nn.Module):
    """Two MFM 3x3 convs and the identity shortcut."""

    def __init__(self, channels):
        super().__init__()
        self.conv1 = MFM(channels, channels)
        self.conv2 = MFM(channels, channels)

    def forward(self, x):
        return x + self.conv2(self.conv1(x))


def _max_pool():
    return nn.MaxPool2d(kernel_size=2, stride=2, ceil_mode=True)


def _blocks(count, channels):
    return nn.Sequential(*[ResBlock(channels) for _ in range(count)])


class LightCNN9(nn.Module):
    def __init__(self, num_classes=79077):
        super().__init__()
        self.features = nn.Sequential(
            MFM(1, 48, kernel_size=5, padding=2), _max_pool(),  # (N, 48, 64, 64)
            Group(48, 96), _max_pool(),                          # (N, 96, 32, 32)
            Group(96, 192), _max_pool(),                         # (N, 192, 16, 16)
            Group(192, 128),
            Group(128, 128), _max_pool(),                        # (N, 128, 8, 8)
        )
        self.fc1 = MFM(FLAT, FEATURE_SIZE, linear=True)
        self.fc2 = nn.Linear(FEATURE_SIZE, num_classes)

    def forward(self, x):
        feature = self.fc1(torch.flatten(self.features(x), 1))
        return self.fc2(F.dropout(feature, p=0.5, training=self.training)), feature


class LightCNN29(nn.Module):
    def __init__(self, num_classes=79077):
        super().__init__()
        self.conv1 = MFM(1, 48, kernel_size=5, padding=2)
        self.pool1 = _max_pool()                     # (N, 48, 64, 64)
        self.block1 = _blocks(1, 48)
        self.group1 = Group(48, 96)
        self.pool2 = _max_pool()                     # (N, 96, 32, 32)
        self.block2 = _blocks(2, 96)
        self.group2 = Group(96, 192)
        self.pool3 = _max_pool()                     # (N, 192, 16, 16)
        self.block3 = _blocks(3, 192)
        self.group3 = Group(192, 128)
        self.block4 = _blocks(4, 128)
        self.group4 = Group(128, 128)
        self.pool4 = _max_pool()                     # (N, 128, 8, 8)
        self.fc = MFM(FLAT, FEATURE_SIZE, linear=True)
        self.fc2 = nn.Linear(FEATURE_SIZE, num_classes)

    def trunk(self, x):
        x = self.pool1(self.conv1(x))
        x = self.pool2(self.group1(self.block1(x)))
        x = self.pool3(self.group2(self.block2(x)))
        return self.pool4(self.group4(self.block4(self.group3(self.block3(x)))))

    def forward(self, x):
        feature = self.fc(torch.flatten(self.trunk(x), 1))
        return self.fc2(F.dropout(feature, p=0.5, training=self.training)), feature


def _max_plus_avg(x):
    # light_cnn_v2.py pools with the functional default (floor mode); for a 128x128 input every pooled side
    # (128, 64, 32, 16) is even, so floor and ceil mode agree.
    return F.max_pool2d(x, 2) + F.avg_pool2d(x, 2)


class LightCNN29v2(nn.Module):
    def __init__(self, num_classes=80013):
        super().__init__()
        self.conv1 = MFM(1, 48, kernel_size=5, padding=2)
        self.block1 = _blocks(1, 48)
        self.group1 = Group(48, 96)
        self.block2 = _blocks(2, 96)
        self.group2 = Group(96, 192)
        self.block3 = _blocks(3, 192)
        self.group3 = Group(192, 128)
        self.block4 = _blocks(4, 128)
        self.group4 = Group(128, 128)
        self.fc = nn.Linear(FLAT, FEATURE_SIZE)
        self.fc2 = nn.Linear(FEATURE_SIZE, num_classes, bias=False)

    def trunk(self, x):
        x = _max_plus_avg(self.conv1(x))                             # (N, 48, 64, 64)
        x = _max_plus_avg(self.group1(self.block1(x)))               # (N, 96, 32, 32)
        x = _max_plus_avg(self.group2(self.block2(x)))               # (N, 192, 16, 16)
        x = self.group4(self.block4(self.group3(self.block3(x))))
        return _max_plus_avg(x)                                      # (N, 128, 8, 8)

    def forward(self, x):
        feature = self.fc(torch.flatten(self.trunk(x), 1))
        return self.fc2(F.dropout(feature, p=0.5, training=self.training)), feature


AUTHORS_NETWORKS = {"lightcnn9": LightCNN9, "lightcnn29": LightCNN29, "lightcnn29v2": LightCNN29v2}
AUTHORS_CLASSES = {"lightcnn9": 79077, "lightcnn29": 79077, "lightcnn29v2": 80013}


def build(network, num_classes=None, seed=0):
    """The authors' network with PyTorch's default (random) initialisation, fixed by ``seed``, in eval mode."""
    torch.manual_seed(seed)
    model = AUTHORS_NETWORKS[network](num_classes or AUTHORS_CLASSES[network])
    return model.eval()


def save_like_train_py(model, path, epoch=1, arch="LightCNN", prec1=0.0, legacy_format=False):
    """Save ``model`` the way the authors' train.py does: wrapped in ``torch.nn.DataParallel`` (so every key gains
    ``module.``) and ``torch.save({'epoch', 'arch', 'state_dict', 'prec1'}, path)``.

    DataParallel needs no GPU: on a CPU-only machine it keeps ``device_ids == []`` and only adds the prefix.
    ``legacy_format=True`` writes the pre-1.6 pickle format (no zip), as the 2017 release files were written.
    """
    wrapped = nn.DataParallel(model)
    record = {"epoch": epoch, "arch": arch, "state_dict": wrapped.state_dict(), "prec1": prec1}
    torch.save(record, path, _use_new_zipfile_serialization=not legacy_format)
    return path
