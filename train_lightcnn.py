#!/usr/bin/env python
"""Train a LightCNN on im2rec RecordIO (gray faces, 144x144 stored, random 128x128 crops).

    python train_lightcnn.py --data-train train.rec --data-val val.rec --gpus 0,1,2,3

The command is lightcnn.cli.train's (also `python -m lightcnn train`); `python train_lightcnn.py --help` lists its
flags and the recipe's defaults (`--recipe small-data --help`: that recipe's).
"""
import os
import sys

# One temporary workspace for MXNet's CPU operators instead of four: each grows to twice the largest oneDNN scratch
# buffer any operator has needed, so four of them are a large share of the training's peak memory; the training is
# bit-identical and as fast (README, "Where the memory goes"). Read when MXNet loads, so set first.
os.environ.setdefault("MXNET_CPU_TEMP_COPY", "1")

from lightcnn.cli.train import main  # noqa: E402 (after the setting above)

if __name__ == "__main__":
    sys.exit(main())
