"""Weight initialisation: Xavier, with the recipe's choice and the one measured to work on small data decided here.

Biases are not an initializer's business: every LightCNN layer starts its bias at the recipe's 0.1 itself
(``lightcnn.model.BIAS``), so any initializer can be used; these are the ones the project's runs use.
"""
import mxnet as mx

FACTOR_TYPES = ("avg", "in", "out")
MAGNITUDE = 3.0
# The seed recipe's "xavier": Glorot (uniform, fan average, magnitude 3), as in the TF implementation.
RECIPE_FACTOR_TYPE = "avg"
# Caffe's "xavier" (fan in), the filler of the original Caffe LightCNN. On a few thousand faces Glorot leaves the
# embedding nearly constant across images for hundreds of steps (README, "Small datasets"); the demo, the ORL test
# and the LFW benchmark use this one.
SMALL_DATA_FACTOR_TYPE = "in"


def xavier(factor_type=RECIPE_FACTOR_TYPE, magnitude=MAGNITUDE):
    """MXNet's uniform Xavier initializer with the given fan (``avg`` = Glorot, ``in`` = Caffe's xavier)."""
    if factor_type not in FACTOR_TYPES:
        raise ValueError(f"unknown Xavier factor type {factor_type!r}; valid: {', '.join(FACTOR_TYPES)}")
    if not magnitude > 0:
        raise ValueError(f"Xavier magnitude must be positive, got {magnitude}")
    return mx.init.Xavier(rnd_type="uniform", factor_type=factor_type, magnitude=magnitude)
