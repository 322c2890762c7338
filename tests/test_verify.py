"""python -m lightcnn verify-pair on real LFW photos, with a checkpoint the suite trains itself: LightCNN-9 on the
aligned faces of ten LFW people (python -m lightcnn prepare --align, 10 photos each), evaluated on two more photos of
each (which saves its threshold beside the checkpoint), then asked about two further photos of one person and of two
people: photos it has never seen.

Honestly: a network trained for a minute on 120 photos separates new photos of LFW people poorly (of the ten new
same-person pairs only a few score above the threshold its evaluation saved). So the fixture picks the pairs asked about
from their scores, computed independently (the extractor's features, cosine), with a margin on each side of the
threshold: the new same-person pair that scores highest, and the two-person pair that scores lowest. The picks differ
from one kind of CPU to another (oneDNN's kernels sum in other orders), which is why they are not written here. These
tests check the command (alignment, features, the saved threshold, the verdict and its exit status, the messages),
not the network; README's "Measured figures" has what a network trained on 6,500 LFW faces does."""
import os
import pathlib
import shutil
import subprocess
import sys

import cv2
import numpy as np
import pytest

from lightcnn.protocols import lfw_pairs, thresholds
from lightcnn.protocols.features import load_features
from lightcnn.protocols.lfw_pairs import Pair
from lightcnn.protocols.similarity import cosine_scores

ROOT = pathlib.Path(__file__).resolve().parents[1]
pytestmark = [pytest.mark.slow, pytest.mark.filterwarnings("ignore:SymbolDatabase.GetPrototype:UserWarning")]

# The people: the first PEOPLE (by name) of LFW with at least TRAIN + 4 photos. Their first TRAIN photos train the
# network (no dropout: it learns them faster); of the next four, two make the evaluation pairs (which choose the
# threshold) and two are the photos verify is asked about.
# 10 photos for 10 epochs at 1e-3: the least training that still gave clear pairs both natively and with oneDNN held to
# AVX2 (8 photos for 12 epochs did not: its threshold 0.997, its best same-person pair 0.999)
PEOPLE, TRAIN, EPOCHS, LR = 10, 10, 10, "1e-3"
MARGIN = 0.005  # between a picked pair's cosine and the threshold (verify and the extractor agree to 1e-6)


def run(*args, timeout=600):
    return subprocess.run([sys.executable, *map(str, args)], capture_output=True, text=True, timeout=timeout)


@pytest.fixture(scope="module")
def lfw_model(shared_data, tmp_path_factory):
    pytest.importorskip("mediapipe", reason="mediapipe not installed: pip install --no-deps -r "
                                            "requirements-align.txt")
    from lightcnn.prepare import prepare_dataset
    lfw_root = shared_data / "lfw_gray144"
    work = tmp_path_factory.mktemp("verify")
    names = sorted(n for n in os.listdir(lfw_root) if len(os.listdir(lfw_root / n)) >= TRAIN + 4)[:PEOPLE]
    held = {}
    for name in names:
        photos = sorted(os.listdir(lfw_root / name))
        (work / "photos" / name).mkdir(parents=True)
        for photo in photos[:TRAIN]:
            os.symlink(lfw_root / name / photo, work / "photos" / name / photo)
        held[name] = photos[TRAIN:TRAIN + 4]
    prepare_dataset(work / "photos", work / "rec", align=True, val_fraction=0.0, verbose=False)
    prefix = work / "lightcnn9"
    done = run(ROOT / "train_lightcnn.py", "--recipe", "small-data", "--network", "lightcnn9", "--data-train",
               work / "rec" / "train.rec", "--num-epochs", EPOCHS, "--lr", LR, "--dropout", 0, "--seed", 0,
               "--model-prefix", prefix, "--disp-batches", 0, "--keep-checkpoints", 1)
    assert done.returncode == 0, done.stderr[-3000:]

    # the LFW evaluation of this checkpoint: photos 1 and 2 of the held-out four, every same and different pair
    keys = [f"{name}/{held[name][i]}" for name in names for i in (0, 1)]
    pairs = [Pair(f"{n}/{held[n][0]}", f"{n}/{held[n][1]}", True, k % 2) for k, n in enumerate(names)]
    pairs += [Pair(f"{a}/{held[a][0]}", f"{b}/{held[b][1]}", False, k % 2)
              for k, (a, b) in enumerate(zip(names, names[1:] + names[:1]))]
    lfw_pairs.write_pairs_txt(pairs, work / "pairs.txt")
    (work / "eval.txt").write_text("".join(k + "\n" for k in keys))
    done = run(ROOT / "extract_features" / "extract_features.py", "--model-prefix", prefix, "--image-list",
               work / "eval.txt", "--image-root", lfw_root, "--out", work / "eval.mat")
    assert done.returncode == 0, done.stderr[-3000:]
    done = run("-m", "lightcnn", "evaluate", "--features", work / "eval.mat", "--pairs", work / "pairs.txt",
               "--out-dir", work / "eval")
    assert done.returncode == 0, done.stderr
    assert "saved the threshold" in done.stdout
    threshold = thresholds.load_model_threshold(prefix, EPOCHS)[0]["threshold"]

    # the photos verify is asked about (photos 3 and 4 of the held-out four), scored the extractor's way
    (work / "asked.txt").write_text("".join(f"{n}/{held[n][i]}\n" for n in names for i in (2, 3)))
    done = run(ROOT / "extract_features" / "extract_features.py", "--model-prefix", prefix, "--image-list",
               work / "asked.txt", "--image-root", lfw_root, "--out", work / "asked.mat")
    assert done.returncode == 0, done.stderr[-3000:]
    asked = load_features(work / "asked.mat")
    row = {key: i for i, key in enumerate(asked.keys)}

    def score(a, i, b, j):
        x = asked.data[[row[f"{a}/{held[a][i]}"], row[f"{b}/{held[b][j]}"]]]
        return float(cosine_scores(x[:1], x[1:])[0])
    same = max(names, key=lambda n: score(n, 2, n, 3))
    two = min(zip(names, names[1:] + names[:1]), key=lambda ab: score(ab[0], 2, ab[1], 3))
    if score(same, 2, same, 3) < threshold + MARGIN or score(*two[:1], 2, two[1], 3) > threshold - MARGIN:
        pytest.fail(f"no new pair is clear of the threshold {threshold:.3f} by {MARGIN}: the best same-person pair "
                    f"scores {score(same, 2, same, 3):.3f}, the worst two-person pair "
                    f"{score(two[0], 2, two[1], 3):.3f}")
    return {"work": work, "prefix": prefix, "names": names, "held": held, "lfw": lfw_root, "epoch": EPOCHS,
            "same_person": same, "two_people": two, "threshold": threshold}


def photo(model, name, index):
    return model["lfw"] / name / model["held"][name][index]


def verify(model, a, b, *extra):
    return run("-m", "lightcnn", "verify-pair", a, b, "--model-prefix", model["prefix"], *extra)


def score_of(done):
    return float(next(line for line in done.stdout.splitlines() if line.startswith("cosine similarity")).split()[-1])


def test_two_photos_of_one_person_are_the_same(lfw_model, tmp_path):
    name = lfw_model["same_person"]
    done = verify(lfw_model, photo(lfw_model, name, 2), photo(lfw_model, name, 3), "--save-pair", tmp_path / "p.png")
    assert done.returncode == 0, done.stdout + done.stderr
    lines = done.stdout.splitlines()
    assert lines[-1] == "same"
    assert lines[0].endswith(": face aligned to the template")
    assert "(saved by the LFW evaluation of" in done.stdout and "on pairs.txt: best on its 20 pairs" in done.stdout
    pair = cv2.imread(str(tmp_path / "p.png"), cv2.IMREAD_UNCHANGED)
    assert pair.shape == (144 + 28, 2 * 144 + 8) and pair.dtype == np.uint8
    print(done.stdout)


def test_photos_of_two_people_are_different(lfw_model):
    a, b = lfw_model["two_people"]
    done = verify(lfw_model, photo(lfw_model, a, 2), photo(lfw_model, b, 3))
    assert done.returncode == 1, done.stdout + done.stderr
    assert done.stdout.splitlines()[-1] == "different"
    print(done.stdout)


def test_the_threshold_can_be_given_and_is_needed(lfw_model, tmp_path):
    name = lfw_model["same_person"]
    a, b = photo(lfw_model, name, 2), photo(lfw_model, name, 3)
    given = verify(lfw_model, a, b, "--threshold", "1.0")
    assert given.returncode == 1 and "threshold 1.0000 (given with --threshold)" in given.stdout
    assert score_of(given) < 1.0
    # the checkpoint elsewhere, without the evaluation's threshold beside it
    prefix = lfw_model["prefix"]
    for suffix in ("-symbol.json", f"-{lfw_model['epoch']:04d}.params", f"-{lfw_model['epoch']:04d}.json"):
        shutil.copy(f"{prefix}{suffix}", tmp_path / f"copy{suffix}")
    done = run("-m", "lightcnn", "verify-pair", a, b, "--model-prefix", tmp_path / "copy")
    assert done.returncode == 2
    assert done.stderr.strip().startswith("error: no threshold: no LFW evaluation of this checkpoint has saved a "
                                          "threshold")
    assert "Pass --threshold T, or evaluate this checkpoint on LFW pairs first" in done.stderr


def test_a_photo_without_a_face_says_so(lfw_model, tmp_path):
    wall = tmp_path / "wall.jpg"
    cv2.imwrite(str(wall), np.full((200, 160, 3), 120, np.uint8))
    done = verify(lfw_model, photo(lfw_model, lfw_model["names"][0], 2), wall)
    assert done.returncode == 2
    assert done.stderr.strip() == (f"error: {wall}: no face found (the network was trained on aligned faces: it "
                                   f"needs one)")
    missing = verify(lfw_model, wall, tmp_path / "nobody.jpg")
    assert missing.returncode == 2 and missing.stderr.strip() == f"error: {tmp_path / 'nobody.jpg'}: no such file"



def test_photos_of_two_sizes_for_a_network_of_unaligned_faces(shared_data, tmp_path):
    """A network trained on faces used as given: an ORL face (92x112) and an LFW crop (144x144) are made square as in
    training (the sidecar's fit), and --save-pair shows both squares; a --save-pair that is not a PNG is refused
    before any work."""
    import mxnet as mx
    from lightcnn import checkpoint, init
    from lightcnn.images import Preprocess
    from lightcnn.model import ModelSpec
    spec = ModelSpec("lightcnn9", 10)
    net = spec.build()
    net.initialize(init.xavier())
    net.hybridize()
    net(mx.nd.zeros((1,) + net.input_shape))
    prefix = tmp_path / "plain"
    checkpoint.save(net, None, str(prefix), checkpoint.Sidecar(spec, Preprocess(), epoch=1))
    orl = shared_data / "orl_faces" / "s1" / "1.pgm"
    crop = next((shared_data / "lfw_gray144" / "Colin_Powell").iterdir())
    pair = tmp_path / "pair.png"
    done = run("-m", "lightcnn", "verify-pair", orl, crop, "--model-prefix", prefix, "--threshold", "0.5",
               "--save-pair", pair)
    assert done.returncode in (0, 1), done.stderr
    assert f"{orl}: used as given (not square: centre-cropped to a square, as in training)" in done.stdout
    assert cv2.imread(str(pair), cv2.IMREAD_GRAYSCALE).shape == (144 + 28, 2 * 144 + 8)
    refused = run("-m", "lightcnn", "verify-pair", orl, crop, "--model-prefix", prefix, "--save-pair",
                  tmp_path / "p.jpg")
    assert refused.returncode == 2 and refused.stderr.strip() == (
        f"error: --save-pair writes a PNG; give a name ending in .png, got {tmp_path / 'p.jpg'}")
