#!/usr/bin/env python
"""Train a LightCNN on im2rec RecordIO (gray faces, 144x144 stored, random 128x128 crops).

    python train_lightcnn.py --data-train train.rec --data-val val.rec --gpus 0,1,2,3

The command is lightcnn.cli.train's (also `python -m lightcnn train`); `python train_lightcnn.py --help` lists its
flags and the recipe's defaults (`--recipe small-data --help`: that recipe's).
"""
import sys

from lightcnn.cli.train import main

if __name__ == "__main__":
    sys.exit(main())
