"""The dataset builder measures where the face detector's box sits in the training faces (real LFW crops and ORL faces
here), and training records it in the checkpoint, for python -m lightcnn.verify."""
import os

import cv2
import numpy as np
import pytest

from lightcnn.images import FaceBox, Preprocess

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
    from lightcnn.training.config import TrainConfig
    from lightcnn.training.inputs import stored_faces
    root = tmp_path / "faces"
    for name in people:  # 40 faces
        (root / name).mkdir(parents=True)
        for image in sorted(os.listdir(shared_data / folder / name))[:40 // len(people)]:
            os.symlink(shared_data / folder / name / image, root / name / image)
    summary = prepare.prepare_dataset(root, tmp_path / "rec", val_fraction=0.0, num_threads=2)
    box = FaceBox.from_dict(summary["face_box"])
    # the whole of lfw_gray144 gives 0.86 at (0.50, 0.60), ORL 0.85 at (0.49, 0.66) (README)
    assert box.images == 40 and 0.80 < box.share < 0.92 and 0.45 < box.x < 0.55 and 0.55 < box.y < 0.70, box
    assert summary["preprocess"] == {"image_size": 144, "fit": "crop", "align": None}  # the rules, unchanged
    assert f"[prepare] face size (for lightcnn.verify): the detector's face box {box.share:.2f} of the side" in \
        capsys.readouterr().out
    # the training run's preprocessing carries it into every sidecar; a sidecar without it reads as before
    preprocess = stored_faces(TrainConfig(data_train=str(tmp_path / "rec" / "train.rec")))
    assert preprocess.face_box == box and Preprocess.from_dict(preprocess.to_dict()) == preprocess
    assert "face_box" not in Preprocess().to_dict() and Preprocess.from_dict(Preprocess().to_dict()).face_box is None


def test_prepare_without_mediapipe_or_faces_records_why_nothing_was_measured(monkeypatch):
    from lightcnn import align, prepare
    noise = [cv2.imencode(".jpg", np.random.RandomState(i).randint(0, 256, (144, 144), np.uint8))[1].tobytes()
             for i in range(4)]
    if align.mediapipe_available():
        assert prepare.measure_face_box(noise) == (None, "not measured: the face detector found a face in 0 of 4 "
                                                         "sampled stored faces")
    monkeypatch.setattr(align, "mediapipe_available", lambda: False)
    box, note = prepare.measure_face_box(noise)
    assert box is None and note.startswith("not measured: mediapipe is not installed (pip install")
