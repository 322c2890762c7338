"""The seed recipe's initialisation: Xavier for every weight, constant 0.1 for every bias.

A subclass in this package rather than a patched MXNet. The layers in lightcnn.model leave their bias initialiser
unset, so this initializer (passed to ``net.initialize``) decides every parameter.
"""
import math

import mxnet as mx

FACTOR_TYPES = ("avg", "in", "out")


@mx.init.register
class LightCNNInit(mx.init.Xavier):
    """Xavier weights (default Glorot: uniform, 'avg', magnitude 3, as the TF implementation) and 0.1 biases.

    Caffe's "xavier" is ``factor_type='in', magnitude=3``.
    """

    def __init__(self, rnd_type="uniform", factor_type="avg", magnitude=3, bias=0.1):
        if factor_type not in FACTOR_TYPES:
            raise ValueError(f"unknown Xavier factor type {factor_type!r}; valid: {', '.join(FACTOR_TYPES)}")
        if rnd_type not in ("uniform", "gaussian"):
            raise ValueError(f"unknown Xavier rnd_type {rnd_type!r}; valid: uniform, gaussian")
        if magnitude <= 0:
            raise ValueError(f"Xavier magnitude must be positive, got {magnitude}")
        super().__init__(rnd_type=rnd_type, factor_type=factor_type, magnitude=magnitude)
        self._kwargs["bias"] = bias
        self.bias = bias

    def _init_bias(self, _, arr):
        arr[:] = self.bias

    def _init_weight(self, name, arr):
        # Gluon routes every parameter through _init_weight (its InitDesc carries the initializer itself), so
        # biases are told apart here by name.
        if str(name).endswith("bias"):
            self._init_bias(name, arr)
        else:
            super()._init_weight(name, arr)


def xavier_bound(shape, factor_type="avg", magnitude=3):
    """The uniform Xavier limit sqrt(magnitude / factor) for a weight of this shape (for tests and docs)."""
    receptive_field = math.prod(shape[2:])
    fan_in, fan_out = shape[1] * receptive_field, shape[0] * receptive_field
    factor = {"avg": (fan_in + fan_out) / 2.0, "in": fan_in, "out": fan_out}[factor_type]
    return (magnitude / factor) ** 0.5
