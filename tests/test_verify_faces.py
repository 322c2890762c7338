"""python -m lightcnn verify-pair checks for a face whatever the network was trained on, and never compares a small face
in its whole photo: the dataset builder measures where the face detector's box sits in the training faces (real LFW
crops and ORL faces here), training records it in the checkpoint, and verify crops a photo with a much smaller face
around it to that frame. Photos are real LFW crops, alone or pasted into a large gray canvas (a small face in a
half-body-like photo); the networks are randomly initialised (the face check and the crop are the point, not the
verdict)."""
import os
import subprocess
import sys
import types

import cv2
import numpy as np
import pytest

from lightcnn import pair_verdict
from lightcnn.cli import verify_pair
from lightcnn.images import FaceBox, Preprocess, load_gray, resize_square

pytestmark = pytest.mark.filterwarnings("ignore:SymbolDatabase.GetPrototype:UserWarning")
LFW_FACE_BOX = FaceBox(0.86, 0.50, 0.60, images=100)  # what prepare measures on lfw_gray144


def needs_mediapipe():
    pytest.importorskip("mediapipe", reason="mediapipe not installed: pip install --no-deps -r requirements-align.txt")


# ---------------------------------------------------------------------------------------------------------------
# prepare measures the face box; training records it

@pytest.mark.slow
@pytest.mark.parametrize("folder, people", [("lfw_gray144", ("Colin_Powell", "George_W_Bush")),
                                            ("orl_faces", ("s1", "s2", "s3", "s4"))])
def test_prepare_measures_the_face_box_and_training_records_it(shared_data, tmp_path, capsys, folder, people):
    needs_mediapipe()
    from lightcnn import prepare
    from lightcnn.cli import prepare as prepare_cli
    from lightcnn.training.config import TrainConfig
    from lightcnn.training.inputs import stored_faces
    root = tmp_path / "faces"
    for name in people:  # 40 faces
        (root / name).mkdir(parents=True)
        for image in sorted(os.listdir(shared_data / folder / name))[:40 // len(people)]:
            os.symlink(shared_data / folder / name / image, root / name / image)
    summary = prepare.prepare_dataset(root, tmp_path / "rec", val_fraction=0.0, num_threads=2)
    prepare_cli.print_summary(summary)
    box = FaceBox.from_dict(summary["face_box"])
    # the whole of lfw_gray144 gives 0.86 at (0.50, 0.60), ORL 0.85 at (0.49, 0.66) (README)
    assert box.images == 40 and 0.80 < box.share < 0.92 and 0.45 < box.x < 0.55 and 0.55 < box.y < 0.70, box
    assert summary["preprocess"] == Preprocess(face_box=box).to_dict()  # the rules, and the box measured
    assert f"[prepare] face size (for verify-pair): the detector's face box {box.share:.2f} of the side" in \
        capsys.readouterr().out
    # the training run's preprocessing carries it into every sidecar; a sidecar without it reads as before
    preprocess = stored_faces(TrainConfig(data_train=str(tmp_path / "rec" / "train.rec")))
    assert preprocess.face_box == box and Preprocess.from_dict(preprocess.to_dict()) == preprocess
    assert "face_box" not in Preprocess().to_dict() and Preprocess.from_dict(Preprocess().to_dict()).face_box is None


def test_prepare_without_mediapipe_or_faces_records_why_nothing_was_measured(monkeypatch):
    from lightcnn import align, packing
    noise = [cv2.imencode(".jpg", np.random.RandomState(i).randint(0, 256, (144, 144), np.uint8))[1].tobytes()
             for i in range(4)]
    if align.mediapipe_available():
        assert packing.measure_face_box(noise) == (None, "not measured: the face detector found a face in 0 of 4 "
                                                         "sampled stored faces")
    monkeypatch.setattr(align, "mediapipe_available", lambda: False)
    box, note = packing.measure_face_box(noise)
    assert box is None and note.startswith("not measured: mediapipe is not installed (pip install")


# ---------------------------------------------------------------------------------------------------------------
# verify: a face in every photo

def random_checkpoint(prefix, preprocess):
    """A random LightCNN-4 saved with the project's checkpoint writer, its sidecar recording ``preprocess``."""
    import mxnet as mx
    from lightcnn import checkpoint, init
    from lightcnn.model import ModelSpec
    spec = ModelSpec("lightcnn4", 10)
    net = spec.build()
    net.initialize(init.xavier())
    net.hybridize()
    net(mx.nd.zeros((1,) + net.input_shape))
    checkpoint.save(net, None, str(prefix), checkpoint.Sidecar(spec, preprocess, epoch=1))
    return str(prefix)


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    """Two random checkpoints of faces used as given: one recording the LFW crops' face box, one recording none (a
    dataset built before prepare measured it)."""
    folder = tmp_path_factory.mktemp("verify_faces")
    return {"measured": random_checkpoint(folder / "measured", Preprocess(face_box=LFW_FACE_BOX)),
            "old": random_checkpoint(folder / "old", Preprocess())}


@pytest.fixture(scope="module")
def photos(shared_data, tmp_path_factory):
    """A real LFW crop; the same crop pasted at its size into a 1000x1200 gray canvas (a face a tenth of the photo,
    as in a half-body shot); pasted at the left of a 400x144 strip (off the centre square); random noise."""
    folder = tmp_path_factory.mktemp("photos")
    crop = shared_data / "lfw_gray144" / "Colin_Powell" / "Colin_Powell_0001.jpg"
    face = load_gray(crop)
    canvas = np.full((1200, 1000), 110, np.uint8)
    canvas[200:344, 430:574] = face
    strip = np.full((144, 400), 110, np.uint8)
    strip[:, :144] = face
    made = {"crop": str(crop), "face": face}
    for name, image in (("half_body", canvas), ("strip", strip),
                        ("noise", np.random.RandomState(0).randint(0, 256, (300, 300), np.uint8))):
        made[name] = str(folder / f"{name}.png")
        cv2.imwrite(made[name], image)
    return made


def run_verify(capsys, *args):
    """``(exit status, stdout, stderr)`` of ``python -m lightcnn verify-pair ARGS``, run in this process."""
    status = verify_pair.main([str(a) for a in args])
    out, err = capsys.readouterr()
    return status, out, err


def line_of(out, path):
    return next(line for line in out.splitlines() if line.startswith(f"{path}: "))


def correlation(a, b):
    return float(np.corrcoef(a.ravel().astype(np.float64), b.ravel().astype(np.float64))[0, 1])


def test_a_photo_without_a_face_is_refused_for_every_network(models, photos, capsys):
    needs_mediapipe()
    status, out, err = run_verify(capsys, photos["crop"], photos["noise"], "--model-prefix", models["measured"],
                                  "--threshold", "0.5")
    assert status == 2 and out == ""
    assert err.strip() == (f"error: {photos['noise']}: no face found (verify compares faces: MediaPipe's face "
                           f"detector finds none in this photo)")


def test_a_photo_like_the_training_faces_is_used_as_given(models, photos, capsys):
    """An LFW crop to a network of LFW crops: checked, and then exactly what the extractor gives it."""
    needs_mediapipe()
    status, out, err = run_verify(capsys, photos["crop"], photos["crop"], "--model-prefix", models["measured"],
                                  "--threshold", "0.5", "--save-pair", photos["noise"] + ".pair.png")
    assert status == 0, err
    assert line_of(out, photos["crop"]).startswith(
        f"{photos['crop']}: used as given (the network was trained on faces that were not aligned); face found, its "
        f"box 0.8")
    assert line_of(out, photos["crop"]).endswith("of the side (the training faces' 0.86)")
    pair = cv2.imread(photos["noise"] + ".pair.png", cv2.IMREAD_GRAYSCALE)
    assert np.array_equal(pair[:144, :144], photos["face"])


def test_a_small_face_in_a_large_photo_is_cropped_around_it(models, photos, capsys, tmp_path):
    """The half-body-like photo: its face, a tenth of the photo, is cropped to the training faces' share (not the
    whole photo's centre square, where the face is 20 px); --save-pair shows that crop. A checkpoint that records no
    face box assumes the LFW crops' and says so."""
    needs_mediapipe()
    for model, words in (("measured", "the training faces' 0.86"),
                         ("old", "LFW crops' 0.86, assumed: the checkpoint records no face size")):
        pair = tmp_path / f"{model}.png"
        status, out, err = run_verify(capsys, photos["crop"], photos["half_body"], "--model-prefix", models[model],
                                      "--threshold", "0.5", "--save-pair", pair)
        assert status in (0, 1), err
        line = line_of(out, photos["half_body"])
        assert line.startswith(f"{photos['half_body']}: cropped around its face to the training faces' size (its box "
                               f"0.1"), line
        assert f"of the side, {words}): " in line and line.endswith(" of the 1000x1200 photo"), line
        seen = cv2.imread(str(pair), cv2.IMREAD_GRAYSCALE)[:144, 152:]  # what the network saw of the canvas
        assert correlation(seen, photos["face"]) > 0.5  # the face again (the whole photo's square: < 0.2)
        assert seen.std() > 25


def test_the_crop_puts_the_face_where_the_training_faces_have_it(shared_data):
    """LFW crops pasted at three sizes into a large canvas: the detector's box in each crop verify makes is the
    training faces' share (measured again on the crop: the detector model that finds a small face in a large photo
    draws boxes up to 20% larger or smaller), and a face off the centre square is cropped too."""
    needs_mediapipe()
    from lightcnn import align
    from lightcnn.images import Template
    root = shared_data / "lfw_gray144"
    faces = [load_gray(root / name / sorted(os.listdir(root / name))[0])
             for name in ("Colin_Powell", "George_W_Bush", "Serena_Williams", "Tony_Blair", "Hugo_Chavez")]
    preprocess = Preprocess(face_box=LFW_FACE_BOX)
    with align.Aligner(Template(landmarks="detector")) as detector:
        shares = []
        for scale in (0.7, 1.0, 2.5):
            for face in faces:
                canvas = np.full((1200, 1000), 110, np.uint8)
                big = cv2.resize(face, None, fx=scale, fy=scale, interpolation=cv2.INTER_CUBIC)
                canvas[150:150 + big.shape[0], 300:300 + big.shape[1]] = big
                crop, how = pair_verdict.plain_face("p", canvas, detector, preprocess)
                assert how.startswith("cropped around its face") and crop.shape[0] == crop.shape[1]
                found = detector.detect(resize_square(crop, 144))
                shares.append(found[0].width / 144)
        assert abs(np.median(shares) - LFW_FACE_BOX.share) < 0.02 and min(shares) > 0.78, shares
        strip = np.full((144, 400), 110, np.uint8)
        strip[:, :144] = faces[0]
        crop, how = pair_verdict.plain_face("strip", strip, detector, preprocess)
        assert "(the face lies outside the photo's centre square; its box 0." in how
        box = detector.detect(resize_square(crop, 144))[0].box  # the face now where the training faces have it
        x, y = ((box[0] + box[2]) / 2 + 0.5) / 144, ((box[1] + box[3]) / 2 + 0.5) / 144
        assert abs(x - LFW_FACE_BOX.x) < 0.08 and abs(y - LFW_FACE_BOX.y) < 0.08, (x, y)


def test_a_small_face_cut_off_by_the_border_is_refused():
    """A face box mostly outside the photo cannot be cropped to a whole face: refused, saying why and what to do."""
    from lightcnn.detection import Face
    gray = np.full((1200, 1000), 110, np.uint8)
    face = Face((-80.0, 300.0, 40.0, 420.0), 0.9, np.zeros((6, 2)))  # 120 px wide, 79.5 px of it outside
    detector = types.SimpleNamespace(detect=lambda image: [face], min_size=40.0, max_outside=0.2)
    with pytest.raises(ValueError) as error:
        pair_verdict.plain_face("p.jpg", gray, detector, Preprocess(face_box=LFW_FACE_BOX))
    assert str(error.value).startswith("p.jpg: face cut off by the image border (66% of its box outside the photo, "
                                       "max-outside 20%); the photo must be cropped around the face (its box 0.12 "
                                       "of the side")
    assert str(error.value).endswith("the crop would not hold the whole face: give a photo that shows all of it")
    small = Face((500.0, 300.0, 530.0, 330.0), 0.9, np.zeros((6, 2)))
    detector.detect = lambda image: [small]
    with pytest.raises(ValueError, match=r"^p.jpg: face too small: 30 px wide < min-size 40$"):
        pair_verdict.plain_face("p.jpg", gray, detector, Preprocess(face_box=LFW_FACE_BOX))


def test_without_mediapipe_one_line_says_no_face_was_checked(models, photos):
    args = [photos["noise"], photos["half_body"], "--model-prefix", models["measured"], "--threshold", "0.5"]
    code = (f"import sys; sys.modules['mediapipe'] = None; from lightcnn.cli.verify_pair import main; "
            f"sys.exit(main({args!r}))")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert done.returncode in (0, 1), done.stderr
    notes = [line for line in done.stderr.splitlines() if line.startswith("note:")]
    assert notes == ["note: no face check: mediapipe is not installed, so the photos are used as given; pip install "
                     "--no-deps -r requirements-align.txt (mediapipe 0.10.14, whose wheel carries the face models) "
                     "adds the check"]
    assert f"{photos['noise']}: used as given (the network was trained on faces that were not aligned)" in done.stdout
