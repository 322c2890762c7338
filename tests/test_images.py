"""One image -> network input: the square-making choices, the alignment record, and their place in the sidecar."""
import json
import os
import pathlib
import subprocess
import sys

import numpy as np
import pytest

from lightcnn import checkpoint, images
from lightcnn.images import TEMPLATE, Preprocess, Template

ROOT = pathlib.Path(__file__).resolve().parents[1]


def test_images_imports_neither_mxnet_nor_mediapipe_and_agrees_with_the_model():
    code = "import sys, lightcnn.images; print('mxnet' in sys.modules, 'mediapipe' in sys.modules)"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["False", "False"]
    from lightcnn.model import INPUT_SHAPE
    assert (1, images.CROP_SIZE, images.CROP_SIZE) == INPUT_SHAPE == Preprocess().data_shape


def portrait():
    """92 wide x 112 high, like an ORL face: every row holds its own index, every column too (in another plane)."""
    rows, cols = np.indices((112, 92))
    return rows.astype(np.uint8) + 100, cols.astype(np.uint8)


def test_crop_keeps_the_centre_square():
    by_row, by_col = portrait()
    out = images.make_square(by_row, "crop")
    assert out.shape == (92, 92)
    assert out[0, 0] == 100 + 10 and out[-1, 0] == 100 + 101  # rows 10..101 of 112: 10 cut at the top and bottom
    assert np.array_equal(images.make_square(by_col.T, "crop"), by_col.T[:, 10:102])  # landscape: columns cut


def test_pad_keeps_everything_with_black_bars():
    by_row, by_col = portrait()
    out = images.make_square(by_col + 1, "pad")
    assert out.shape == (112, 112)
    assert (out[:, :10] == 0).all() and (out[:, 102:] == 0).all()  # 20 columns split evenly
    assert np.array_equal(out[:, 10:102], by_col + 1)
    odd = images.make_square(np.ones((5, 2), np.uint8), "pad")
    assert odd.shape == (5, 5) and odd[:, 0].sum() == 0 and odd[:, 1:3].all() and odd[:, 3:].sum() == 0


def test_stretch_and_square_images_are_left_to_the_resize():
    by_row, _ = portrait()
    assert images.make_square(by_row, "stretch") is by_row
    square = np.zeros((50, 50), np.uint8)
    assert all(images.make_square(square, fit) is square for fit in images.FITS)
    for fit in images.FITS:
        assert images.resize_square(by_row, 144, fit).shape == (144, 144)
    with pytest.raises(ValueError, match="fit must be one of crop, pad, stretch"):
        images.make_square(by_row, "squash")


def test_the_fit_reaches_the_network_input():
    by_row, _ = portrait()
    x = {fit: images.eval_input(by_row, Preprocess(fit=fit, mean=0, scale=1.0)) for fit in images.FITS}
    assert all(v.shape == (1, 128, 128) for v in x.values())
    # the crop shows rows 10..101 of 112 (enlarged), the stretch all 112 rows: its top row is darker
    assert x["stretch"][0, 0, 0] < x["crop"][0, 0, 0]
    assert x["pad"][0, 64, 0] == 0  # the black bar, inside the 128 centre crop


def test_preprocess_records_round_trip_with_fit_and_alignment():
    p = Preprocess(mean=127.5, fit="pad", align=TEMPLATE)
    record = json.loads(json.dumps(p.to_dict()))
    assert record["fit"] == "pad"
    assert record["align"] == {"size": 144, "eye_y": 48.0, "eye_mouth_y": 48.0, "landmarks": "iris"}
    assert Preprocess.from_dict(record) == p
    assert Preprocess().fit == "crop" and Preprocess().align is None


def test_mismatches_name_each_rule_and_both_values_but_not_the_measured_face_box():
    trained = Preprocess(mean=127.5, fit="pad", align=TEMPLATE)
    assert trained.mismatches(trained) == []
    assert trained.mismatches(Preprocess()) == [("mean", 127.5, 0.0), ("fit", "pad", "crop"), ("align", TEMPLATE, None)]
    assert Preprocess().mismatches(Preprocess(face_box=images.FaceBox(0.86, 0.5, 0.6))) == []
    assert trained.face_rules() == {"fit": "pad", "align": TEMPLATE}


def test_records_of_earlier_releases_mean_stretch_and_not_aligned():
    old = {"image_size": 144, "crop_size": 128, "scale": 1 / 255.0, "mean": 127.5}
    assert Preprocess.from_dict(old) == Preprocess(mean=127.5, fit="stretch", align=None)


def test_bad_records_are_refused_naming_the_field():
    with pytest.raises(ValueError, match="fit must be one of"):
        Preprocess(fit="squash")
    with pytest.raises(ValueError, match="unknown template fields"):
        Preprocess.from_dict(dict(Preprocess().to_dict(), align={"size": 144, "eyes": 40}))
    with pytest.raises(ValueError, match="cannot be stored at image_size 160"):
        Preprocess(image_size=160, align=TEMPLATE)
    with pytest.raises(ValueError, match="landmarks must be one of"):
        Template(landmarks="guess")
    with pytest.raises(ValueError, match="inside the 144 px square"):
        Template(eye_y=120)


def test_template_geometry():
    assert TEMPLATE == Template(144, 48.0, 48.0, "iris")
    assert TEMPLATE.eye_centre == (72.0, 48.0) and TEMPLATE.mouth_y == 96.0
    # the authors' test faces: 128x128 with the eyes at row 40 = the centre crop (offset 8) of the training faces
    assert images.TEST_TEMPLATE == Template(128, 40.0, 48.0) and images.TEST_TEMPLATE.eye_centre == (64.0, 40.0)


@pytest.mark.parametrize("record", ["format 1", "format 2 before fit"])
def test_sidecars_without_the_fields_load_as_stretch_and_not_aligned(tmp_path, record):
    """Both earlier sidecar formats still load; their faces were stretched and not aligned, and that is what
    extraction repeats. No format bump: the fields are optional with the old behaviour as their default."""
    v1 = json.loads((ROOT / "tests" / "data" / "sidecar_v1_trained.json").read_text())
    if record == "format 1":
        content = v1
    else:
        content = {"format_version": 2, "epoch": 8, "model": {"network": "lightcnn9", "num_classes": 100},
                   "preprocess": v1["preprocess"], "origin": {"kind": "trained"}}
    assert "fit" not in json.dumps(content)
    (tmp_path / "m-0008.json").write_text(json.dumps(content))
    sidecar = checkpoint.read_sidecar(str(tmp_path / "m"), 8)
    assert sidecar.preprocess.fit == "stretch" and sidecar.preprocess.align is None
    assert checkpoint.SIDECAR_VERSION == 2  # nothing bumped


def test_only_regular_files_are_read(tmp_path):
    fifo = tmp_path / "face.jpg"
    os.mkfifo(fifo)  # opening a FIFO for reading would wait for a writer forever
    with pytest.raises(OSError, match="not a regular file"):
        images.read_image_file(fifo)
    with pytest.raises(FileNotFoundError):
        images.read_image_file(tmp_path / "absent.jpg")
