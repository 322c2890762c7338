"""Named training recipes: complete :class:`~lightcnn.training.config.TrainConfig` values a run starts from
(``--recipe``), every flag given on top of one overriding its value.

``SEED`` is the paper's recipe, the defaults of :class:`TrainConfig`. ``SMALL_DATA`` is the recipe the demo, the ORL
test and the benchmarks train with on a few thousand faces, where the seed recipe leaves the loss at the class prior
for the whole run (README, "Small datasets"): Caffe's xavier (fan in) instead of Glorot, so that the features of
different images differ from the start; inputs centred at 127.5; Adam at 3e-4 without the seed's step at epoch 0;
batch 16, for more updates per epoch at the same images per second on a CPU.
"""
import dataclasses

from lightcnn import init
from lightcnn.training.config import TrainConfig

SEED = TrainConfig()
SMALL_DATA = dataclasses.replace(SEED, xavier_factor_type=init.SMALL_DATA_FACTOR_TYPE, mean=127.5, optimizer="adam",
                                 lr=3e-4, lr_step_epochs=(), batch_size=16)

RECIPES = {"seed": SEED, "small-data": SMALL_DATA}
