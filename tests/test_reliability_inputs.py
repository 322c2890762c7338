"""What a user's files can be, and what each command says about them (issue 19, items 2, 5 and 6): images too small
to be faces, weights holding NaN or infinities, files of another kind where weights or a graph were expected, a
folder given as a photo, and a disk that fills under every writer. Each ends in one line naming the file; nothing
is packed, extracted, compared or converted from it without a word."""
import dataclasses
import json
import os
import pathlib
import shutil

import cv2
import numpy as np
import pytest
import scipy.io

import mxnet as mx

from lightcnn import align, align_folder, checkpoint, feature_files, files, images, init, packing, prepare
from lightcnn.cli import convert, export, extract, prepare as prepare_cli, verify_pair
from lightcnn.faces import MIN_FACE_SIZE, ImageTooSmallError
from lightcnn.images import Preprocess
from lightcnn.model import ModelSpec
from lightcnn.cli import train as train_cli

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
    with pytest.raises(ImageTooSmallError, match=r"too small to be a face: 200x31 px \(the short side must "
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
    prepare_cli.print_summary(summary)

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

    code, err = command(verify_pair.main, capsys, face, tiny, "--model-prefix", prefix, "--threshold", 0.5)

    assert code == 2 and "Traceback" not in err, err
    assert last_line(err) == f"error: {tiny}: too small to be a face: 10x10 px (the short side must be at least 32 px)"


# ----------------------------------------------------------------------------------------------------------------
# 5. Checked weights: NaN or infinities are refused, naming the tensor

@pytest.mark.parametrize("tensor", ["fc2.weight", "features.0.filter.weight"])
def test_convert_refuses_a_state_dict_with_nan_weights(tmp_path, capsys, tensor):
    torch = pytest.importorskip("torch", reason="torch is a test-only dependency of the PyTorch conversion")
    from benchmarks import authors_pytorch as authors
    state = authors.build("lightcnn9", 10, seed=1).state_dict()
    state[tensor].view(-1)[:3] = float("nan")
    path = tmp_path / "diverged.pth"
    torch.save(state, path)

    code, err = command(convert.main, capsys, "--pytorch", path, "--out", tmp_path / "out" / "m")

    assert code == 2 and err.count("\n") == 1, err
    assert err == (f"error: {path}: weight {tensor} holds 3 non-finite values (NaN/inf): the file is damaged or the "
                   f"training diverged\n")
    assert not (tmp_path / "out").exists()


def diverged_copy(model, folder):
    """A copy of ``model`` whose epoch-2 weights hold a NaN and an infinity in the first convolution, saved like a
    diverged training would have saved them: the sidecar's checksum is the damaged file's."""
    folder.mkdir()
    for path in pathlib.Path(model).parent.iterdir():
        shutil.copy(path, folder / path.name)
    prefix = str(folder / "m")
    params = checkpoint.params_path(prefix, 2)
    weights = mx.nd.load(params)
    name = "arg:lightcnn9_mfmconv0_conv0_weight"
    w = weights[name].asnumpy()
    w.flat[:2] = [np.nan, np.inf]
    weights[name] = mx.nd.array(w)
    mx.nd.save(params, weights)
    sidecar = checkpoint.sidecar_path(prefix, 2)
    record = json.loads(pathlib.Path(sidecar).read_text())
    record["checksums"]["params"] = files.sha256(params)
    pathlib.Path(sidecar).write_text(json.dumps(record))
    return prefix


NAN_MESSAGE = ("{params}: weight lightcnn9_mfmconv0_conv0_weight holds 2 non-finite values (NaN/inf): the file is "
               "damaged or the training diverged")


def test_every_load_of_a_checkpoint_refuses_non_finite_weights(model, face, tmp_path, capsys):
    prefix = diverged_copy(model, tmp_path / "run")
    params = checkpoint.params_path(prefix, 2)
    message = NAN_MESSAGE.format(params=params)
    sidecar = checkpoint.read_sidecar(prefix, 2)
    assert files.sha256(params) == sidecar.checksums["params"]  # the file is the one its sidecar names

    with pytest.raises(checkpoint.NonFiniteWeightsError) as error:
        checkpoint.load_model(prefix, 2)
    assert str(error.value) == message
    net = sidecar.build_network()
    with pytest.raises(checkpoint.NonFiniteWeightsError):
        checkpoint.load_embedding(net, prefix, sidecar, mx.cpu())  # what --pretrained loads

    for argv in (["--model-prefix", prefix], ["--symbol", checkpoint.symbol_path(prefix), "--params", params]):
        code, err = command(extract.main, capsys, *argv, "--image-root", face.parent, "--out", tmp_path / "f.mat")
        assert code == 2 and last_line(err) == f"error: {message}", err
    code, err = command(verify_pair.main, capsys, face, face, "--model-prefix", prefix, "--threshold", 0.5)
    assert code == 2 and last_line(err) == f"error: {message}", err
    assert not (tmp_path / "f.mat").exists()
    # fine-tuning from it, and resuming it
    train = ["--benchmark", 1, "--benchmark-batches", 1, "--batch-size", 2, "--network", "lightcnn9"]
    code, err = command(train_cli.main, capsys, *train, "--num-epochs", 1, "--num-classes", 3, "--pretrained",
                        prefix, "--model-prefix", tmp_path / "tuned" / "m")
    assert code == 2 and last_line(err) == f"error: {message}", err
    code, err = command(train_cli.main, capsys, *train, "--num-epochs", 3, "--num-classes", 10, "--load-epoch", 2,
                        "--model-prefix", prefix)
    assert code == 2 and last_line(err) == f"error: {message}", err


def test_onnx_export_refuses_non_finite_weights(model, tmp_path, capsys):
    pytest.importorskip("onnx", reason="ONNX export is optional (pip install onnx==1.14.1)")
    prefix = diverged_copy(model, tmp_path / "run")
    code, err = command(export.main, capsys, "--model-prefix", prefix, "--onnx", tmp_path / "m.onnx")
    assert code == 2 and err == f"error: {NAN_MESSAGE.format(params=checkpoint.params_path(prefix, 2))}\n"
    assert not (tmp_path / "m.onnx").exists()


def test_non_finite_weights_are_never_saved(model, tmp_path):
    """What a training whose last step of an epoch diverged would save (its loss check sees the next batch only)."""
    prefix = save_random(tmp_path / "m", epoch=1)
    net, sidecar = checkpoint.load_model(prefix, 1)
    weight = net.classifier.weight
    weight.set_data(weight.data() * np.float32("inf"))
    with pytest.raises(checkpoint.CheckpointWriteError) as error:
        checkpoint.save(net, None, prefix, dataclasses.replace(sidecar, epoch=2))
    assert str(error.value).startswith(f"not saving epoch 2 under {prefix}: weight {weight.name} holds ")
    assert "non-finite values (NaN/inf)" in str(error.value) and "saved before are intact" in str(error.value)
    assert checkpoint.saved_epochs(prefix) == [1]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m-0001.json", "m-0001.params", "m-symbol.json"]


# ----------------------------------------------------------------------------------------------------------------
# 6. Files of another kind, missing files, folders: one line naming the file

def test_a_states_file_given_as_weights_is_one_line(model, face, tmp_path, capsys):
    states = checkpoint.states_path(model, 2)
    code, err = command(extract.main, capsys, "--symbol", checkpoint.symbol_path(model), "--params", states,
                        "--image-root", face.parent, "--out", tmp_path / "f.mat")
    assert code == 2 and "Traceback" not in err
    assert last_line(err) == (f"error: {states} is not an MXNet weights file (X-NNNN.params): a .states file holds a "
                              f"trainer's optimizer states; the weights of that epoch are its .params")


@pytest.mark.parametrize("content, problem", [
    (np.random.RandomState(0).bytes(3000), "it is not text"),
    (b"hello", "it is not JSON"),
    (b'{"weights": []}', "its JSON has no graph ('nodes', 'arg_nodes', 'heads')"),
], ids=["random-bytes", "text", "other-json"])
def test_a_symbol_file_of_another_kind_is_one_line_naming_it(model, face, tmp_path, capsys, content, problem):
    symbol = tmp_path / "x-symbol.json"
    symbol.write_bytes(content)
    code, err = command(extract.main, capsys, "--symbol", symbol, "--params", checkpoint.params_path(model, 2),
                        "--image-root", face.parent, "--out", tmp_path / "f.mat")
    assert code == 2 and "Traceback" not in err
    assert last_line(err).startswith(f"error: {symbol} is not an MXNet symbol file (a network graph, "
                                     f"X-symbol.json): {problem}")


def test_export_without_its_symbol_file_is_one_line(model, tmp_path, capsys):
    pytest.importorskip("onnx", reason="ONNX export is optional (pip install onnx==1.14.1)")
    folder = tmp_path / "run"
    folder.mkdir()
    for path in pathlib.Path(model).parent.iterdir():
        if not path.name.endswith("-symbol.json"):
            shutil.copy(path, folder / path.name)
    prefix = folder / "m"
    code, err = command(export.main, capsys, "--model-prefix", prefix, "--onnx", tmp_path / "m.onnx")
    assert code == 2 and err == f"error: symbol file {prefix}-symbol.json not found\n"


def test_verify_says_a_folder_is_not_a_photo(model, face, tmp_path, capsys):
    folder = tmp_path / "photos"
    folder.mkdir()
    code, err = command(verify_pair.main, capsys, folder, face, "--model-prefix", model, "--threshold", 0.5)
    assert code == 2 and last_line(err) == f"error: {folder} is a folder, not a photo: give an image file", err


# ----------------------------------------------------------------------------------------------------------------
# 6. A full disk under every writer: "No space left on device" and the file

def left_on(disk):
    """What a failed write left on ``disk``: nothing but the writers' lock files (empty, kept by design)."""
    return [name for name in os.listdir(disk) if not name.endswith(".lock")]


def test_a_full_disk_under_the_weights_of_a_checkpoint_says_so(mounted):
    """MXNet writes the .params; its error says only "FileStream.Write incomplete" under a Python traceback
    header, which was the whole message."""
    disk = mounted("size=1m")  # room for the graph, not for LightCNN-9's 22 MB of weights
    with pytest.raises(checkpoint.CheckpointWriteError) as error:
        save_random(disk / "m")
    assert str(error.value).startswith(f"cannot write the network graph and weights of {disk / 'm-0001.params'}: "
                                       f"No space left on device (0 MB free on its device)")
    assert left_on(disk) == []


def test_a_full_disk_under_prepares_spool_names_it(tmp_path, mounted):
    """Small faces (JPEGs of a few KB) wait in the spool's buffer: the disk fills when it is written out."""
    root = tmp_path / "faces"
    for i in range(60):
        write_image(root / f"p{i % 3}" / f"{i}.png", cv2.resize(noise(8, 8, seed=i), (144, 144)))
    disk = mounted("size=64k")
    with pytest.raises(prepare.PrepareError) as error:
        prepare.prepare_dataset(root, disk / "out", verbose=False)
    assert str(error.value).startswith(f"cannot write {disk / 'out' / packing.SPOOL}: No space left on device")
    assert left_on(disk) == []


def test_a_full_disk_under_the_extractors_outputs_names_them(model, face, mounted, capsys):
    disk = mounted("size=8k")
    mat = disk / "features.mat"
    code, err = command(extract.main, capsys, "--model-prefix", model, "--image-root", face.parent.parent,
                        "--image-list", write_list(disk.parent / "list.txt", face.parent.parent, 40), "--out", mat)
    assert code == 2 and last_line(err).startswith(f"error: cannot write {mat}: No space left on device ("), err
    features, keys = np.zeros((1000, 256), np.float32), [f"p/{i}.jpg" for i in range(1000)]
    with pytest.raises(OSError) as error:
        feature_files.save_features_npy(str(mat), features, keys)
    assert str(error.value).startswith(f"cannot write {disk / 'features.npy'}: No space left on device (")
    assert left_on(disk) == []


def write_list(path, root, count):
    """An image list of the first ``count`` faces under ``root`` (their .mat is too big for a tiny disk)."""
    keys = []
    for name in sorted(os.listdir(root)):
        keys += [f"{name}/{image}" for image in sorted(os.listdir(root / name))]
        if len(keys) >= count:
            break
    path.write_text("".join(f"{key}\n" for key in keys[:count]))
    return path


def test_a_full_disk_under_the_onnx_export_names_it(model, mounted, capsys):
    pytest.importorskip("onnx", reason="ONNX export is optional (pip install onnx==1.14.1)")
    disk = mounted("size=1m")
    code, err = command(export.main, capsys, "--model-prefix", model, "--onnx", disk / "m.onnx")
    assert code == 2 and err.startswith(f"error: cannot write {disk / 'm.onnx'}: No space left on device (")
    assert left_on(disk) == []


def test_a_full_disk_under_the_aligners_summary_names_it(face, tmp_path, mounted):
    """The aligned images fill the disk exactly (measured on a first run); its summary.json finds no room."""
    pytest.importorskip("mediapipe", reason=f"mediapipe not installed: pip install {align.INSTALL}")
    root = tmp_path / "photos"
    (root / "p").mkdir(parents=True)
    for name in sorted(os.listdir(face.parent))[:2]:
        shutil.copy(face.parent / name, root / "p" / name)
    align_folder.align_folder(root, tmp_path / "first", workers=1, verbose=False)
    pages = sum(-(-p.stat().st_size // 4096) for p in (tmp_path / "first" / "p").iterdir())
    disk = mounted(f"size={pages * 4}k")
    with pytest.raises(OSError) as error:
        align_folder.align_folder(root, disk / "out", workers=1, verbose=False)
    assert str(error.value).startswith(f"cannot write {disk / 'out' / 'summary.json'}: No space left on device (")
