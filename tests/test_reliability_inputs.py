"""What a user's files can be, and what each command says about them (issue 19, items 2, 5 and 6): images too small
to be faces, weights holding NaN or infinities, files of another kind where weights or a graph were expected, a
folder given as a photo, and a disk that fills under every writer. Each ends in one line naming the file; nothing
is packed, extracted, compared or converted from it without a word."""
import dataclasses
import json
import os
import pathlib
import shutil
import subprocess

import cv2
import numpy as np
import pytest
import scipy.io

import mxnet as mx

from lightcnn import align, checkpoint, convert, export, extract, files, images, init, prepare, verify
from lightcnn.images import MIN_FACE_SIZE, Preprocess
from lightcnn.model import ModelSpec
from lightcnn.training import cli as train_cli

pytestmark = pytest.mark.filterwarnings("ignore:SymbolDatabase.GetPrototype:UserWarning")  # MediaPipe's protobuf


def write_image(path, img):
    path = pathlib.Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    assert cv2.imwrite(str(path), img)
    return path


def noise(h, w, seed=0):
    return np.random.RandomState(seed).randint(0, 256, (h, w)).astype(np.uint8)


def save_random(prefix, preprocess=Preprocess(), epoch=1, network="lightcnn9", num_classes=10, trainer=False):
    spec = ModelSpec(network, num_classes)
    net = spec.build()
    net.initialize(init.xavier())
    net.hybridize()
    net(mx.nd.zeros((1,) + net.input_shape))
    states = mx.gluon.Trainer(net.collect_params(), "adam") if trainer else None
    checkpoint.save(net, states, str(prefix), checkpoint.Sidecar(spec, preprocess, epoch=epoch))
    return str(prefix)


@pytest.fixture(scope="module")
def model(tmp_path_factory):
    """A random LightCNN-9 checkpoint (epoch 2, with its optimizer states) on faces used as given."""
    return save_random(tmp_path_factory.mktemp("model") / "m", epoch=2, trainer=True)


@pytest.fixture(scope="module")
def face(shared_data):
    """A real 144x144 LFW face."""
    root = shared_data / "lfw_gray144"
    name = sorted(os.listdir(root))[0]
    return root / name / sorted(os.listdir(root / name))[0]


def command(main, capsys, *argv):
    """``(exit status, stderr)`` of a command's ``main`` run in this process."""
    code = main([str(a) for a in argv])
    return code, capsys.readouterr().err


def last_line(err):
    return err.strip().splitlines()[-1]


# ----------------------------------------------------------------------------------------------------------------
# 2. Faces that can be faces: nothing below MIN_FACE_SIZE on its short side

def test_the_minimum_is_32_px_on_the_short_side(tmp_path):
    assert MIN_FACE_SIZE == 32
    assert images.load_gray(write_image(tmp_path / "ok.png", noise(32, 200))).shape == (32, 200)
    with pytest.raises(images.ImageTooSmallError, match=r"too small to be a face: 200x31 px \(the short side must "
                                                        r"be at least 32 px\)"):
        images.load_gray(write_image(tmp_path / "thin.png", noise(31, 200)))


def test_prepare_skips_images_too_small_and_lists_them(tmp_path, capsys):
    root = tmp_path / "faces"
    for person in ("a", "b"):
        for i in range(3):
            write_image(root / person / f"{i}.png", noise(144, 144, seed=i))
    write_image(root / "a" / "tiny.png", noise(10, 10))
    write_image(root / "a" / "dot.png", noise(1, 1))
    write_image(root / "b" / "strip.png", noise(31, 200))
    write_image(root / "b" / "small.png", noise(32, 32))  # the smallest face there is: packed

    summary = prepare.prepare_dataset(root, tmp_path / "out", val_fraction=0.0)

    out = capsys.readouterr().out
    reasons = {s["path"]: s["reason"] for s in summary["skipped"]}
    assert reasons == {"a/tiny.png": "too small to be a face: 10x10 px (the short side must be at least 32 px)",
                       "a/dot.png": "too small to be a face: 1x1 px (the short side must be at least 32 px)",
                       "b/strip.png": "too small to be a face: 200x31 px (the short side must be at least 32 px)"}
    assert summary["num_images"] == 7  # 3 + 3 + the 32x32
    saved = json.loads((tmp_path / "out" / "summary.json").read_text())
    assert saved["skipped"] == summary["skipped"]
    for path, reason in reasons.items():
        assert f"{path}: {reason}" in out


def test_the_extractor_refuses_images_too_small_or_lists_them_with_skip_missing(model, face, tmp_path, capsys,
                                                                                 caplog):
    root = tmp_path / "faces"
    (root / "p").mkdir(parents=True)
    shutil.copy(face, root / "p" / "face.jpg")
    write_image(root / "p" / "tiny.png", noise(10, 10))
    write_image(root / "p" / "dot.png", noise(1, 1))
    mat = tmp_path / "f.mat"

    code, err = command(extract.main, capsys, "--model-prefix", model, "--image-root", root, "--out", mat)

    assert code == 1 and not mat.exists()
    assert "2 of 3 images are missing or unreadable" in err
    assert f"{root / 'p' / 'tiny.png'}: unreadable (too small to be a face: 10x10 px (the short side must be at " \
           f"least 32 px))" in err
    assert f"{root / 'p' / 'dot.png'}: unreadable (too small to be a face: 1x1 px" in err

    code, err = command(extract.main, capsys, "--model-prefix", model, "--image-root", root, "--out", mat,
                        "--skip-missing")
    assert code == 0, err
    saved = scipy.io.loadmat(mat)
    assert saved["data"].shape == (1, 256)
    assert sorted(str(m[0][0]) for m in saved["missing"]) == ["p/dot.png", "p/tiny.png"]
    assert "p/tiny.png: unreadable (too small to be a face: 10x10 px" in caplog.text  # the log lists them


@pytest.mark.parametrize("aligned", [False, True], ids=["as-given", "aligned"])
def test_verify_refuses_a_photo_too_small_in_one_line(face, tmp_path, capsys, aligned):
    if aligned:
        pytest.importorskip("mediapipe", reason=f"mediapipe not installed: pip install {align.INSTALL}")
    prefix = save_random(tmp_path / "m", Preprocess(align=images.TEMPLATE) if aligned else Preprocess())
    tiny = write_image(tmp_path / "tiny.png", noise(10, 10))

    code, err = command(verify.main, capsys, face, tiny, "--model-prefix", prefix, "--threshold", 0.5)

    assert code == 2 and "Traceback" not in err, err
    assert last_line(err) == f"error: {tiny}: too small to be a face: 10x10 px (the short side must be at least 32 px)"
