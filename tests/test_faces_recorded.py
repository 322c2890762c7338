"""How the faces were made (fit, align) travels from the dataset builder through training into the checkpoint's
sidecar, and the extractor repeats it without being told."""
import json
import pathlib
import subprocess
import sys

import cv2
import numpy as np
import pytest

from lightcnn import checkpoint
from lightcnn.prepare import prepare_dataset

ROOT = pathlib.Path(__file__).resolve().parents[1]


def portraits(root, people=3, per_person=4):
    """Non-square noise faces (92 wide x 112 high, like ORL's), a brightness per person."""
    for p in range(people):
        for i in range(per_person):
            rng = np.random.RandomState(10 * p + i)
            img = np.clip(rng.normal(60 + 50 * p, 30, (112, 92)), 0, 255).astype(np.uint8)
            path = root / f"person{p}" / f"{i}.png"
            path.parent.mkdir(parents=True, exist_ok=True)
            cv2.imwrite(str(path), img)
    return root


def train(rec, prefix, epochs, *extra):
    return subprocess.run([sys.executable, str(ROOT / "train_lightcnn.py"), "--network", "lightcnn9",
                           "--data-train", str(rec), "--num-epochs", str(epochs), "--batch-size", "4",
                           "--lr-step-epochs", "", "--model-prefix", str(prefix), "--disp-batches", "0", *extra],
                          capture_output=True, text=True, timeout=600)


@pytest.fixture(scope="module")
def padded_model(tmp_path_factory):
    work = tmp_path_factory.mktemp("padded")
    faces = portraits(work / "faces")
    prepare_dataset(faces, work / "pad", fit="pad", val_fraction=0.0, verbose=False)
    prepare_dataset(faces, work / "crop", val_fraction=0.0, verbose=False)
    done = train(work / "pad" / "train.rec", work / "m", 1)
    assert done.returncode == 0, done.stderr[-3000:]
    return {"work": work, "faces": faces, "prefix": work / "m", "log": done.stderr}


def test_training_records_how_the_dataset_made_its_faces(padded_model):
    sidecar = checkpoint.read_sidecar(str(padded_model["prefix"]), 1)
    assert sidecar.preprocess.fit == "pad" and sidecar.preprocess.align is None
    record = json.loads((padded_model["work"] / "m-0001.json").read_text())["preprocess"]
    assert record["fit"] == "pad" and record["align"] is None
    assert "faces: not aligned; non-square faces padded with black to a square" in padded_model["log"]


def test_a_resume_on_faces_made_otherwise_is_refused(padded_model):
    done = train(padded_model["work"] / "crop" / "train.rec", padded_model["prefix"], 2, "--load-epoch", "1")
    assert done.returncode == 2
    assert done.stderr.strip().splitlines()[-1] == (
        f"error: --data-train: the checkpoint of epoch 1 under {padded_model['prefix']} was trained on faces with "
        f"fit='pad'; {padded_model['work'] / 'crop' / 'train.rec'} holds faces with fit='crop' (see its "
        f"summary.json)")


def test_validation_faces_made_otherwise_are_refused(padded_model, tmp_path):
    work = padded_model["work"]
    done = train(work / "pad" / "train.rec", tmp_path / "m", 1, "--data-val", str(work / "crop" / "train.rec"))
    assert done.returncode == 2 and "error: --data-val: its faces were made with" in done.stderr


def test_the_extractor_repeats_the_recorded_fit_and_says_so(padded_model, tmp_path):
    from lightcnn.embedding import load_checkpoint_embedding
    from lightcnn.images import Preprocess, eval_input, load_gray
    faces = padded_model["faces"]
    done = subprocess.run([sys.executable, str(ROOT / "extract_features" / "extract_features.py"), "--model-prefix",
                           str(padded_model["prefix"]), "--image-root", str(faces), "--out", str(tmp_path / "f.mat")],
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert ("12 of 12 images were not square: padded with black to a square, as the network's training faces were "
            "(fit pad)") in done.stderr
    import scipy.io
    import mxnet as mx
    stored = scipy.io.loadmat(tmp_path / "f.mat")["data"]
    net, preprocess, _ = load_checkpoint_embedding(str(padded_model["prefix"]))
    assert preprocess == Preprocess(fit="pad")
    first = eval_input(load_gray(faces / "person0" / "0.png"), preprocess)[None]
    np.testing.assert_allclose(stored[0], net.features(mx.nd.array(first)).asnumpy()[0], rtol=1e-4, atol=1e-5)


def test_a_checkpoint_of_an_earlier_release_stretches(padded_model, tmp_path):
    """A sidecar without the fields (as earlier releases wrote them) extracts as those releases did."""
    from lightcnn.embedding import load_checkpoint_embedding
    from lightcnn.images import Preprocess
    for name in ("m-symbol.json", "m-0001.params", "m-0001.json"):
        (tmp_path / name).write_bytes((padded_model["work"] / name).read_bytes())
    record = json.loads((tmp_path / "m-0001.json").read_text())
    del record["preprocess"]["fit"], record["preprocess"]["align"]
    (tmp_path / "m-0001.json").write_text(json.dumps(record))
    _, preprocess, _ = load_checkpoint_embedding(str(tmp_path / "m"))
    assert preprocess == Preprocess(fit="stretch")
