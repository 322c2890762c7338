#!/usr/bin/env python
"""Train a LightCNN on im2rec RecordIO (gray faces, 144x144 stored, random 128x128 crops).

    python train_lightcnn.py --data-train train.rec --data-val val.rec --gpus 0,1,2,3

The command is lightcnn.training's; `python train_lightcnn.py --help` lists its flags and the recipe's defaults.
"""
import sys

from lightcnn.training.cli import main

if __name__ == "__main__":
    sys.exit(main())
