"""lightcnn.interop.convert against the authors' networks in PyTorch (benchmarks/authors_pytorch.py): random weights
saved the way their train.py saves them, converted, and both networks run on the same real LFW crops. Also the file
forms (bare state_dict, the pre-1.6 pickle format), the errors (wrong network, wrong shape, unknown file, objects
that weights_only refuses, no torch), and the command line through extract_features.py."""
import os
import pathlib
import subprocess
import sys

import numpy as np
import pytest

torch = pytest.importorskip("torch", reason="torch is a test-only dependency of the PyTorch conversion "
                                            "(pip install torch==2.13.0)")

from benchmarks import authors_pytorch as authors  # noqa: E402  (needs torch)
import mxnet as mx  # noqa: E402
import scipy.io  # noqa: E402

from lightcnn import checkpoint, files  # noqa: E402
from lightcnn.cli import convert as convert_cli  # noqa: E402
from lightcnn.interop import convert  # noqa: E402
from lightcnn.images import load_eval_image  # noqa: E402
from lightcnn.optional import MissingDependencyError  # noqa: E402

ROOT = pathlib.Path(__file__).resolve().parents[1]
EXTRACT_CLI = ROOT / "extract_features" / "extract_features.py"
NUM_CLASSES = 10
TOLERANCE = 1e-5  # max |difference| / max |value|


def relative_difference(actual, expected):
    return float(np.abs(actual - expected).max() / np.abs(expected).max())


def torch_outputs(model, batch):
    model.eval()
    with torch.no_grad():
        logits, feature = model(torch.from_numpy(batch))
    return logits.numpy(), feature.numpy()


def mxnet_outputs(net, batch):
    logits, feature = net(mx.nd.array(batch))
    return logits.asnumpy(), feature.asnumpy()


@pytest.fixture(scope="module")
def faces(shared_data):
    """(root, keys, batch): the first image of 8 LFW people, (8, 1, 128, 128) as this project preprocesses them
    for a converted checkpoint."""
    root = shared_data / "lfw_gray144"
    keys = []
    for name in sorted(os.listdir(root)):
        first = sorted(os.listdir(root / name))[0]
        keys.append(f"{name}/{first}")
        if len(keys) == 8:
            break
    batch = np.stack([load_eval_image(root / k, convert.AUTHORS_PREPROCESS) for k in keys])
    return root, keys, batch


@pytest.fixture(scope="module")
def saved(tmp_path_factory):
    """network -> (model, path of its .pth.tar saved like train.py), made once per network."""
    folder = tmp_path_factory.mktemp("authors")
    made = {}

    def get(network):
        if network not in made:
            model = authors.build(network, NUM_CLASSES, seed=len(made) + 1)
            path = folder / f"{network}.pth.tar"
            authors.save_like_train_py(model, path, epoch=17, arch="LightCNN", prec1=12.5)
            made[network] = (model, path)
        return made[network]
    return get


@pytest.mark.parametrize("network", convert.NETWORKS)
def test_converted_network_gives_the_authors_outputs(network, saved, faces):
    model, path = saved(network)
    saved_keys = torch.load(path, weights_only=True)["state_dict"].keys()
    assert all(k.startswith("module.") for k in saved_keys)  # the DataParallel form of the release files

    net, source = convert.load_pytorch_checkpoint(str(path))

    assert source == {"format": "pytorch", "file": str(path), "sha256": files.sha256(path),
                      "network": network, "num_classes": NUM_CLASSES, "dataparallel_prefix": True,
                      "arch": "LightCNN", "epoch": 17, "prec1": 12.5}
    _, _, batch = faces
    theirs = torch_outputs(model, batch)
    ours = mxnet_outputs(net, batch)
    logits_diff, feature_diff = relative_difference(ours[0], theirs[0]), relative_difference(ours[1], theirs[1])
    print(f"{network}: logits {logits_diff:.2e}, features {feature_diff:.2e} (max relative difference)")
    assert logits_diff < TOLERANCE and feature_diff < TOLERANCE
    # the faces must give different features, or agreement would say little about the trunk
    spread = float(theirs[1].std(axis=0).max() / np.abs(theirs[1]).max())
    assert spread > 1000 * TOLERANCE


def test_bare_state_dict_without_prefix(saved, faces, tmp_path):
    model, _ = saved("lightcnn29")
    path = tmp_path / "bare.pth"
    torch.save(model.state_dict(), path)

    net, source = convert.load_pytorch_checkpoint(str(path))

    assert (source["network"], source["dataparallel_prefix"]) == ("lightcnn29", False)
    assert "epoch" not in source and "arch" not in source
    _, _, batch = faces
    assert relative_difference(mxnet_outputs(net, batch)[1], torch_outputs(model, batch)[1]) < TOLERANCE


def test_pre_1_6_file_format_with_tensor_precision(faces, tmp_path):
    """The 2017 files predate the zip format; a 0-d tensor prec1 is what train.py stores under torch >= 0.4."""
    model = authors.build("lightcnn9", NUM_CLASSES, seed=5)
    path = authors.save_like_train_py(model, tmp_path / "old.pth.tar", epoch=3, prec1=torch.tensor(98.25),
                                      legacy_format=True)

    net, source = convert.load_pytorch_checkpoint(str(path))

    assert (source["epoch"], source["prec1"]) == (3, 98.25)
    _, _, batch = faces
    assert relative_difference(mxnet_outputs(net, batch)[1], torch_outputs(model, batch)[1]) < TOLERANCE


def test_forced_wrong_network_names_the_tensors_and_their_shapes(saved):
    _, path = saved("lightcnn29")
    with pytest.raises(ValueError) as error:
        convert.load_pytorch_checkpoint(str(path), network="lightcnn29v2")
    message = str(error.value)
    assert "do not match lightcnn29v2 (its keys look like lightcnn29)" in message
    assert "missing 2: fc.weight (256, 8192), fc.bias (256,)" in message
    assert "unexpected 3: fc.filter.bias (512,), fc.filter.weight (512, 8192), fc2.bias (10,)" in message


def test_shape_mismatch_names_the_tensor_and_both_shapes(tmp_path):
    """A 3-channel fork of LightCNN-9 has the authors' keys, but not their first conv."""
    model = authors.build("lightcnn9", NUM_CLASSES)
    model.features[0] = authors.MFM(3, 48, kernel_size=5, padding=2)
    path = authors.save_like_train_py(model, tmp_path / "rgb.pth.tar")
    with pytest.raises(ValueError, match=r"features\.0\.filter\.weight: file \(96, 3, 5, 5\), lightcnn9 expects "
                                         r"\(96, 1, 5, 5\)"):
        convert.load_pytorch_checkpoint(str(path))


def test_unrecognised_and_unsafe_files_are_refused(tmp_path):
    other = tmp_path / "resnet.pth"
    torch.save({"conv.weight": torch.zeros(8, 3, 3, 3), "fc2.weight": torch.zeros(10, 8)}, other)
    with pytest.raises(ValueError, match=r"cannot tell which LightCNN this is .*keys: conv\.weight, fc2\.weight"):
        convert.load_pytorch_checkpoint(str(other))

    mixed = tmp_path / "mixed.pth"
    torch.save({"module.conv1.filter.weight": torch.zeros(1), "fc2.weight": torch.zeros(10, 256)}, mixed)
    with pytest.raises(ValueError, match="some keys start with 'module.' and some do not"):
        convert.load_pytorch_checkpoint(str(mixed))

    # weights_only=True is chosen deliberately: an object outside tensors/numbers/strings is not unpickled
    unsafe = tmp_path / "unsafe.pth.tar"
    torch.save({"state_dict": authors.build("lightcnn9", NUM_CLASSES).state_dict(), "prec1": np.float64(1.0)},
               unsafe)
    with pytest.raises(ValueError, match=r"weights_only=True\) refused it"):
        convert.load_pytorch_checkpoint(str(unsafe))


def test_without_torch_the_command_says_how_to_install_it(monkeypatch, capsys, tmp_path):
    monkeypatch.setitem(sys.modules, "torch", None)  # `import torch` now raises ImportError
    with pytest.raises(MissingDependencyError, match=r"pip install torch==2\.13\.0"):
        convert.load_pytorch_checkpoint(str(tmp_path / "any.pth.tar"))

    assert convert_cli.main(["--pytorch", str(tmp_path / "any.pth.tar"), "--out", str(tmp_path / "m")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "pip install torch==2.13.0" in err
    assert not list(tmp_path.iterdir())


@pytest.mark.slow
def test_command_line_then_extract_features(saved, faces, tmp_path):
    """python -m lightcnn convert, then extract_features.py --model-prefix on the result: the .mat holds the
    authors' network's features of the same faces."""
    model, path = saved("lightcnn29v2")
    root, keys, batch = faces
    prefix = tmp_path / "models" / "lightcnn29v2"
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    done = subprocess.run([sys.executable, "-m", "lightcnn", "convert", "--pytorch", str(path), "--out", str(prefix)],
                          cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert "lightcnn29v2 (detected), 10 classes" in done.stderr
    sidecar = checkpoint.read_sidecar(str(prefix), 0)
    # the authors' inputs: [0, 1], no mean; squares already (their extractor resizes nothing), not aligned by us
    assert sidecar.preprocess.to_dict() == {"image_size": 144, "crop_size": 128, "scale": 1 / 255, "mean": 0.0,
                                            "fit": "crop", "align": None}
    assert sidecar.origin["kind"] == "converted" and sidecar.origin["sha256"] == files.sha256(path)

    image_list = tmp_path / "faces.txt"
    image_list.write_text("".join(k + "\n" for k in keys))
    mat = tmp_path / "features.mat"
    done = subprocess.run([sys.executable, str(EXTRACT_CLI), "--model-prefix", str(prefix), "--image-list",
                           str(image_list), "--image-root", str(root), "--out", str(mat)],
                          cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    features = scipy.io.loadmat(mat)["data"]
    assert features.shape == (len(keys), 256)
    assert relative_difference(features, torch_outputs(model, batch)[1]) < TOLERANCE


@pytest.mark.slow
@pytest.mark.parametrize("network, num_classes", [("lightcnn9", 79077), ("lightcnn29v2", 80013)])
def test_the_authors_class_counts(network, num_classes, faces, tmp_path):
    """The release files' class counts (an 81-82 MB classifier each)."""
    model = authors.build(network, seed=7)
    path = authors.save_like_train_py(model, tmp_path / f"{network}_checkpoint.pth.tar")

    net, source = convert.load_pytorch_checkpoint(str(path))

    assert source["num_classes"] == net.num_classes == num_classes
    _, _, batch = faces
    theirs, ours = torch_outputs(model, batch), mxnet_outputs(net, batch)
    assert ours[0].shape == (len(batch), num_classes)
    assert relative_difference(ours[0], theirs[0]) < TOLERANCE
    assert relative_difference(ours[1], theirs[1]) < TOLERANCE


def test_fine_tuning_starts_from_a_converted_checkpoint(saved, tmp_path):
    """--pretrained takes the authors' trunk and embedding (converted) and sizes a fresh classifier for new data."""
    model, path = saved("lightcnn9")
    net, source = convert.load_pytorch_checkpoint(str(path))
    prefix = str(tmp_path / "authors" / "lightcnn9")
    convert.write_checkpoint(net, source, prefix)
    worker = ROOT / "tests" / "helpers" / "fit_worker.py"
    done = subprocess.run([sys.executable, str(worker), str(tmp_path / "tuned"), "1", "--classes", "3",
                           "--pretrained", prefix, "--freeze-trunk"], env=dict(os.environ, PYTHONPATH=str(ROOT)),
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    tuned = checkpoint.read_sidecar(str(tmp_path / "tuned" / "m"), 1)
    assert tuned.model.num_classes == 3 and tuned.origin["pretrained"]["origin"]["kind"] == "converted"
    weights = {k.split(":", 1)[-1]: v.asnumpy() for k, v in mx.nd.load(str(tmp_path / "tuned" / "m-0001.params"))
               .items()}
    first_conv = model.state_dict()["features.0.filter.weight"].numpy()
    np.testing.assert_array_equal(weights["lightcnn9_mfmconv0_conv0_weight"], first_conv)  # frozen: the authors'
