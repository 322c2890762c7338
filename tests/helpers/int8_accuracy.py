"""int8 features against float32 ones of the same checkpoints, in a process of its own (so DNNL_MAX_CPU_ISA, which
oneDNN reads once when MXNet loads, can hold it to another CPU's kernels):

    python int8_accuracy.py OUT.json IMAGES.txt PREFIX [PREFIX ...] [--force-recipe vnni]

For each checkpoint and MFM form, through the extractor's own int8 path (calibrated on 16 of the images with naive
min/max ranges, the quicker mode; cached beside the checkpoint): the worst per-image relative L2 error and cosine
against float32 features. With
--force-recipe, the graph of that CPU recipe instead of this CPU's (to show what the wrong one does).
"""
import argparse
import json
import logging

import numpy as np

import mxnet as mx

from lightcnn import checkpoint, extract, quantize
from lightcnn.embedding import load_checkpoint_embedding, low_precision_embedding

CALIB_IMAGES = 16
CALIB_MODE = "naive"


def compare(reference, features):
    error = np.linalg.norm(features - reference, axis=1) / np.linalg.norm(reference, axis=1)
    cosine = (features * reference).sum(1) / np.linalg.norm(features, axis=1) / np.linalg.norm(reference, axis=1)
    return {"rel_l2_max": float(error.max()), "rel_l2_median": float(np.median(error)),
            "cosine_min": float(cosine.min()), "identical": bool(np.array_equal(features, reference))}


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("out")
    parser.add_argument("images")
    parser.add_argument("prefixes", nargs="+")
    parser.add_argument("--force-recipe", choices=sorted(quantize.CPU_RECIPES))
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO)
    log = logging.getLogger("int8_accuracy")
    with open(args.images, encoding="utf-8") as f:
        paths = f.read().split()
    recipe, reason = quantize.int8_recipe()
    result = {"recipe": recipe, "reason": reason, "models": {}}
    for prefix in args.prefixes:
        net, preprocess, sidecar = load_checkpoint_embedding(prefix)
        reference = extract.extract_features(net, paths, preprocess, log_interval=None).features
        calib = extract.calibration_data(paths, CALIB_IMAGES, preprocess, log)
        rows = result["models"][prefix] = {}
        for form in quantize.MFM_FORMS:
            if args.force_recipe:
                block = net.embedding
                block(mx.nd.array(calib[:1]))
                features = quantize.QuantizedEmbedding(quantize.quantize(
                    block, mx.nd.array(calib), CALIB_MODE, mfm_form=form, cpu_recipe=args.force_recipe), "forced")
            else:
                features = low_precision_embedding(
                    net, [mx.cpu()], preprocess.data_shape, quantize_int8=True,
                    params_file=checkpoint.params_path(prefix, sidecar.epoch),
                    identity={"model": sidecar.model.to_dict()}, calib_data=calib, calib_mode=CALIB_MODE,
                    mfm_form=form, log=log)
            rows[form] = compare(reference, extract.extract_features(features, paths, preprocess,
                                                                     log_interval=None).features)
    with open(args.out, "w", encoding="utf-8") as f:
        json.dump(result, f, indent=1)


if __name__ == "__main__":
    main()
