#!/usr/bin/env python
"""Extract LightCNN face features of a list of images into LFW_features.mat (what lfw_eval.m loads).

The command is lightcnn.cli.extract's (also `python -m lightcnn extract`); `python extract_features.py --help` lists
its flags.
"""
import sys

from lightcnn.cli.extract import main

if __name__ == "__main__":
    sys.exit(main())
