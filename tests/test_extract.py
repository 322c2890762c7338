"""The feature extractor (lightcnn.extract and extract_features/extract_features.py) on a randomly initialised
LightCNN-9 checkpoint over real LFW faces: the .mat layout lfw_eval.m reads, row order, features equal to the
network's on the evaluation preprocessing, --flip, several contexts, missing images, the exported-graph form,
the pair verifier used during training, and the evaluators reading the extractor's output."""
import importlib.util
import json
import logging
import os
import pathlib
import shutil
import subprocess
import sys

import numpy as np
import pytest
import scipy.io

import mxnet as mx

from lightcnn import checkpoint, extract, feature_files, init
from lightcnn.protocols import lfw_eval, lfw_pairs as lfw, report, thresholds
from lightcnn.protocols.features import load_features
from lightcnn.embedding import load_checkpoint_embedding
from lightcnn.images import Preprocess, load_eval_image
from lightcnn.protocols.lfw_pairs import Pair
from lightcnn.model import ModelSpec
from lightcnn.training.lfw_check import make_pair_verifier

from helpers.lfw_files import write_pair_label

ROOT = pathlib.Path(__file__).resolve().parents[1]
CLI = ROOT / "extract_features" / "extract_features.py"
MATLAB_DIR = ROOT / "lfw_verification-matlab"
N_PEOPLE, PER_PERSON = 6, 3


def assert_features_close(actual, expected):
    """Batched and single-image convolutions may round differently in the last bits (oneDNN picks kernels by
    shape); anything beyond that is a real difference."""
    scale = float(np.abs(expected).max())
    np.testing.assert_allclose(actual, expected, rtol=1e-4, atol=1e-5 * scale)


# ---------------------------------------------------------------------------------------------------------------
# fixtures: a few real faces, a list file in the original's format, a random checkpoint

@pytest.fixture(scope="module")
def faces(shared_data, tmp_path_factory):
    """(image root, list file, keys in list order): 6 people x 3 images, listed lfw_patch_part.txt style."""
    root = shared_data / "lfw_gray144"
    people = []
    for name in sorted(os.listdir(root)):
        if all((root / lfw.lfw_key(name, i)).is_file() for i in range(1, PER_PERSON + 1)):
            people.append(name)
            if len(people) == N_PEOPLE:
                break
    assert len(people) == N_PEOPLE
    keys = [lfw.lfw_key(name, i) for name in people for i in range(1, PER_PERSON + 1)]
    keys = keys[1::2] + keys[0::2][::-1]  # not sorted: the output must keep the list's order
    folder = tmp_path_factory.mktemp("faces")
    image_list = folder / "lfw_patch_part.txt"
    with open(image_list, "w", newline="") as f:
        f.write("".join(f"/lfw_patch/{k}\r\n" for k in keys))
    return root, image_list, keys


def random_checkpoint(folder, preprocess, epoch):
    """A random LightCNN-9 saved as a checkpoint whose sidecar records ``preprocess``: its prefix."""
    spec = ModelSpec("lightcnn9", 10)
    net = spec.build()
    net.initialize(init.xavier())
    net.hybridize()
    net(mx.nd.zeros((1,) + net.input_shape))
    prefix = str(folder / "lightcnn")
    checkpoint.save(net, None, prefix, checkpoint.Sidecar(spec, preprocess, epoch=epoch))
    return prefix


@pytest.fixture(scope="module")
def model_prefix(tmp_path_factory):
    return random_checkpoint(tmp_path_factory.mktemp("checkpoint"), Preprocess(), epoch=3)


@pytest.fixture(scope="module")
def loaded(model_prefix):
    net, preprocess, sidecar = load_checkpoint_embedding(model_prefix)
    assert sidecar.epoch == 3 and preprocess == Preprocess()
    return net, preprocess


@pytest.fixture(scope="module")
def extracted(faces, loaded):
    root, image_list, _ = faces
    net, preprocess = loaded
    keys, paths = extract.list_images(str(root), str(image_list))
    return extract.extract_features(net, paths, preprocess, batch_size=8, keys=keys), paths


@pytest.fixture(scope="module")
def pairs_file(faces, tmp_path_factory):
    """2 folds x (3 matched + 3 mismatched) over the listed faces; one pair uses an image that does not exist."""
    people = sorted({k.split("/")[0] for k in faces[2]})
    a, b, c, d, e, f = people
    key = lfw.lfw_key
    pairs = [Pair(key(p, 1), key(p, 2), True, 0) for p in (a, b, c)]
    pairs += [Pair(key(a, 3), key(b, 3), False, 0), Pair(key(c, 3), key(d, 3), False, 0),
              Pair(key(e, 3), key(f, 3), False, 0)]
    pairs += [Pair(key(p, 1), key(p, 3), True, 1) for p in (d, e, f)]
    pairs += [Pair(key(a, 1), key(c, 2), False, 1), Pair(key(b, 2), key(d, 1), False, 1),
              Pair(key(e, 2), key(f, 99), False, 1)]  # f_0099 does not exist
    path = tmp_path_factory.mktemp("pairs") / "pairs.txt"
    lfw.write_pairs_txt(pairs, path)
    return path


def run_cli(*args, cwd):
    return subprocess.run([sys.executable, str(CLI), *map(str, args)], cwd=cwd, capture_output=True, text=True,
                          timeout=180)


@pytest.fixture(scope="module")
def cli_run(faces, model_prefix, tmp_path_factory):
    """The CLI as users run it, from an unrelated folder, default output name, with --npy."""
    root, image_list, _ = faces
    cwd = tmp_path_factory.mktemp("elsewhere")
    proc = run_cli("--model-prefix", model_prefix, "--image-list", image_list, "--image-root", root, "--npy",
                   "--batch-size", 8, cwd=cwd)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return cwd, proc


def load_cli_module():
    spec = importlib.util.spec_from_file_location("extract_features_cli", CLI)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


# ---------------------------------------------------------------------------------------------------------------
# the .mat the evaluators read

def test_cli_writes_the_mat_lfw_eval_loads(cli_run, faces, extracted, model_prefix):
    cwd, proc = cli_run
    _, _, keys = faces
    mat = scipy.io.loadmat(cwd / feature_files.DEFAULT_MAT)
    assert {k for k in mat if not k.startswith("__")} == {"data", "label", "model_prefix", "model_epoch",
                                                           "model_params_sha256"}  # no 'missing' when none is
    # which checkpoint made them: the evaluator saves its threshold beside it
    assert (str(mat["model_prefix"][0]), float(mat["model_epoch"][0, 0])) == (model_prefix, 3.0)
    assert str(mat["model_params_sha256"][0]) == checkpoint.read_sidecar(model_prefix, 3).checksums["params"]
    assert mat["data"].shape == (len(keys), 256) and mat["data"].dtype == np.float32  # single
    assert mat["label"].shape == (len(keys), 1) and mat["label"].dtype == object  # a cell column
    assert [str(cell[0]) for cell in mat["label"][:, 0]] == keys  # list order, prefixes dropped
    result, _ = extracted
    assert result.keys == keys and result.missing == []
    assert_features_close(mat["data"], result.features)
    assert "images/sec" in proc.stderr
    # --npy: the same rows, and the labels one per line
    npy, label, missing = (cwd / os.path.basename(p) for p in feature_files.npy_paths(feature_files.DEFAULT_MAT))
    np.testing.assert_array_equal(np.load(npy), mat["data"])
    assert label.read_text().splitlines() == keys and not missing.exists()


def test_rows_are_the_network_features_of_the_evaluation_crop(extracted, loaded):
    result, paths = extracted
    net, preprocess = loaded
    for i in (0, 7, len(paths) - 1):
        single = net.features(mx.nd.array(load_eval_image(paths[i], preprocess)[None])).asnumpy()[0]
        assert_features_close(result.features[i], single)
    assert np.abs(result.features).max() > 0 and not np.allclose(result.features[0], result.features[1])


def test_flipped_features_do_not_name_their_checkpoint(faces, model_prefix, tmp_path):
    """--flip features are not what verify-pair computes: the .mat does not name the checkpoint, so the
    evaluator saves no threshold of theirs beside it."""
    root, image_list, _ = faces
    proc = run_cli("--model-prefix", model_prefix, "--image-list", image_list, "--image-root", root, "--flip",
                   "--out", tmp_path / "f.mat", cwd=tmp_path)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert not {"model_prefix", "model_epoch"} & set(scipy.io.loadmat(tmp_path / "f.mat"))


def test_flip_is_the_sum_of_image_and_mirror_features(extracted, loaded):
    result, paths = extracted
    net, preprocess = loaded
    flipped = extract.extract_features(net, paths[:8], preprocess, batch_size=8, flip=True)
    images = np.stack([load_eval_image(p, preprocess) for p in paths[:8]])  # (8, 1, 128, 128)
    both = net.features(mx.nd.array(np.concatenate([images, images[:, :, :, ::-1]]))).asnumpy()
    assert_features_close(flipped.features, both[:8] + both[8:])
    assert not np.allclose(flipped.features, 2 * result.features[:8])


def test_batches_split_over_several_contexts(model_prefix, extracted, loaded):
    result, paths = extracted
    net2, preprocess, _ = load_checkpoint_embedding(model_prefix, ctx=[mx.cpu(0), mx.cpu(1)])
    # 18 images in batches of 17: the last batch holds one image, fewer than the contexts
    split = extract.extract_features(net2, paths, preprocess, ctx=[mx.cpu(0), mx.cpu(1)], batch_size=17)
    assert_features_close(split.features, result.features)


# ---------------------------------------------------------------------------------------------------------------
# missing and unreadable images

@pytest.fixture
def broken_root(faces, tmp_path):
    """A root with 3 real faces and a corrupt JPEG, and a list naming those plus 2 images that do not exist."""
    root, _, keys = faces
    good = keys[:3]
    for key in good:
        (tmp_path / "root" / key).parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(root / key, tmp_path / "root" / key)
    corrupt = "Broken_Person/Broken_Person_0001.jpg"
    (tmp_path / "root" / corrupt).parent.mkdir(parents=True)
    (tmp_path / "root" / corrupt).write_bytes(b"\xff\xd8\xff not really a jpeg")
    absent = ["Nobody_Here/Nobody_Here_0001.jpg", "Nobody_Here/Nobody_Here_0002.jpg"]
    listed = [good[0], absent[0], good[1], corrupt, good[2], absent[1]]
    image_list = tmp_path / "list.txt"
    image_list.write_text("".join(f"lfw/{k}\r\n" for k in listed), newline="")
    return tmp_path / "root", image_list, good, [absent[0], corrupt, absent[1]]


def test_missing_images_are_an_error_listing_every_one(broken_root, loaded):
    root, image_list, _, bad = broken_root
    net, preprocess = loaded
    keys, paths = extract.list_images(str(root), str(image_list))
    with pytest.raises(extract.MissingImagesError) as info:
        extract.extract_features(net, paths, preprocess, keys=keys)
    message = str(info.value)
    assert "3 of 6 images" in message and "--skip-missing" in message
    for key in bad:
        assert os.path.join(str(root), *key.split("/")) in message
    assert [reason.split(" ")[0] for _, reason in info.value.problems] == ["not", "unreadable", "not"]


def test_skip_missing_lists_them_and_stores_missing(broken_root, loaded, extracted, faces, tmp_path, caplog):
    root, image_list, good, bad = broken_root
    net, preprocess = loaded
    keys, paths = extract.list_images(str(root), str(image_list))
    with caplog.at_level(logging.WARNING, logger="lightcnn.extract"):
        result = extract.extract_features(net, paths, preprocess, keys=keys, skip_missing=True)
    assert "skipped 3 of 6 images" in caplog.text and all(key.split("/")[1] in caplog.text for key in bad)
    assert result.keys == good and result.missing == bad
    full, _ = extracted
    assert_features_close(result.features, full.features[:3])  # copies of the first three listed faces

    out = tmp_path / "features.mat"
    feature_files.save_features_mat(str(out), *result)
    mat = scipy.io.loadmat(out)
    assert mat["data"].shape == (3, 256) and mat["missing"].shape == (3, 1)
    assert [str(c[0]) for c in mat["missing"][:, 0]] == bad
    loaded_back = load_features(str(out))
    assert loaded_back.keys == good and loaded_back.missing == frozenset(bad)


def test_cli_exit_codes_on_missing_images_and_bad_flags(broken_root, model_prefix, tmp_path, capsys):
    root, image_list, _, _ = broken_root
    cli = load_cli_module()
    out = tmp_path / "out.mat"
    common = ["--model-prefix", model_prefix, "--image-list", str(image_list), "--image-root", str(root),
              "--out", str(out)]
    assert cli.main(common) == 1 and not out.exists()
    assert cli.main(common + ["--skip-missing"]) == 0
    assert scipy.io.loadmat(out)["missing"].shape == (3, 1)
    for bad_flags in (["--scale", "1"],  # a checkpoint fixes its preprocessing
                      ["--symbol", "x-symbol.json"]):  # two model sources
        with pytest.raises(SystemExit) as info:
            cli.main(common + bad_flags)
        assert info.value.code == 2
    capsys.readouterr()
    assert cli.main(common[:2] + ["--epoch", "7"] + common[2:]) == 2  # no such checkpoint
    error = capsys.readouterr().err
    assert "saved epochs under this prefix: [3]" in error and "Traceback" not in error


def test_list_images_walks_the_root_when_there_is_no_list(broken_root):
    root, _, good, _ = broken_root
    keys, paths = extract.list_images(str(root))
    assert keys == sorted(good + ["Broken_Person/Broken_Person_0001.jpg"])
    assert paths == [os.path.join(str(root), *k.split("/")) for k in keys]
    with pytest.raises(FileNotFoundError):
        extract.list_images(str(root / "nowhere"))


# ---------------------------------------------------------------------------------------------------------------
# an exported graph: symbol.json + params with explicit preprocessing

def test_symbol_and_params_give_the_same_features(cli_run, faces, model_prefix, tmp_path, capsys):
    root, image_list, keys = faces
    cwd, _ = cli_run
    out = tmp_path / "symbol.mat"
    argv = ["--symbol", checkpoint.symbol_path(model_prefix), "--params", checkpoint.params_path(model_prefix, 3),
            "--image-size", 144, "--scale", 1 / 255, "--mean", 0, "--image-list", image_list, "--image-root", root,
            "--out", out, "--batch-size", 8]
    cli = load_cli_module()
    assert cli.main([str(a) for a in argv]) == 0  # in-process: one subprocess run is enough
    mat, reference = scipy.io.loadmat(out), scipy.io.loadmat(cwd / feature_files.DEFAULT_MAT)
    assert [str(c[0]) for c in mat["label"][:, 0]] == keys
    np.testing.assert_array_equal(mat["data"], reference["data"])
    # a crop the saved weights cannot take is refused before any image is read
    argv[argv.index("--out") + 1] = tmp_path / "never.mat"
    capsys.readouterr()
    assert cli.main([str(a) for a in argv + ["--image-size", 128, "--crop-size", 112]]) == 2
    assert "parameter shapes differ" in capsys.readouterr().err and not (tmp_path / "never.mat").exists()


# ---------------------------------------------------------------------------------------------------------------
# verification: during training, and the evaluators reading the extractor's .mat

@pytest.fixture(scope="module")
def verifier_result(pairs_file, faces, loaded):
    root, _, _ = faces
    net, preprocess = loaded
    records = []
    handler = logging.Handler()
    handler.emit = records.append
    log = logging.getLogger("test_extract.verifier")
    log.addHandler(handler)
    log.setLevel(logging.INFO)
    try:
        verify = make_pair_verifier(str(pairs_file), str(root), preprocess, batch_size=8, logger=log)
        accuracy = verify(net, mx.cpu())
    finally:
        log.removeHandler(handler)
    return accuracy, [r.getMessage() for r in records]


def test_pair_verifier_returns_the_mean_accuracy_and_reports_exclusions(verifier_result, faces):
    accuracy, messages = verifier_result
    assert isinstance(accuracy, float) and 0.0 <= accuracy <= 1.0
    name = sorted({k.split("/")[0] for k in faces[2]})[-1]
    assert any("1 of 12 pairs" in m and f"{name}_0099.jpg" in m for m in messages)  # listed when built
    assert any("over 11 of 12 pairs (1 excluded" in m for m in messages)  # counted with the result


def test_pair_verifier_rejects_a_fold_without_usable_pairs(faces, tmp_path):
    root, _, keys = faces
    pairs = [Pair(keys[0], keys[1], True, 0), Pair(keys[0], "Ghost/Ghost_0001.jpg", False, 1)]
    path = tmp_path / "pair.label"
    write_pair_label(pairs, path)
    with pytest.raises(ValueError, match="without such a pair"):
        make_pair_verifier(str(path), str(root), logger=logging.getLogger("test_extract.quiet"))


def test_python_evaluator_reads_the_extractor_mat(cli_run, pairs_file, verifier_result, tmp_path):
    cwd, _ = cli_run
    proc = subprocess.run([sys.executable, "-m", "lightcnn", "evaluate", "--features", feature_files.DEFAULT_MAT,
                           "--pairs", str(pairs_file), "--out-dir", str(tmp_path), "--exclude-missing"],
                          cwd=cwd, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "excluded 1 of 12 pairs" in proc.stdout and "2-fold accuracy" in proc.stdout
    results = report.read_results_json(tmp_path / report.RESULTS_JSON)
    assert results["n_pairs"] == 11 and results["n_excluded"] == 1
    assert results["accuracy_mean"] == pytest.approx(verifier_result[0], abs=1e-12)


def test_the_evaluator_saves_the_threshold_beside_the_checkpoint_that_made_the_features(cli_run, pairs_file,
                                                                                    model_prefix, tmp_path):
    cwd, _ = cli_run
    mat = str(cwd / feature_files.DEFAULT_MAT)
    saved = thresholds.threshold_path(model_prefix, 3)
    printed = []
    results = lfw_eval.run(mat, str(pairs_file), str(tmp_path / "a"), exclude_missing=True, log=printed.append)
    assert saved == model_prefix + "-0003-threshold.json" and os.path.isfile(saved)
    assert f"saved the threshold {results['best_threshold']:.6f} (best on all 11 pairs) beside the checkpoint: " \
           f"{saved}" in printed
    record, why = thresholds.load_model_threshold(model_prefix, 3, checkpoint.read_sidecar(model_prefix, 3)
                                                  .checksums["params"])
    assert why is None and record["threshold"] == results["best_threshold"] and record["n_pairs"] == 11
    assert thresholds.load_model_threshold(model_prefix, 3, "0" * 64) == (
        None, f"{saved} was saved for weights that have been replaced since (sha256 differs)")
    os.remove(saved)
    printed = []
    lfw_eval.run(mat, str(pairs_file), str(tmp_path / "b"), exclude_missing=True, pca=2, log=printed.append)
    assert not os.path.exists(saved) and any("PCA scores are not the plain cosine" in line for line in printed)
    content = scipy.io.loadmat(mat)
    content["model_params_sha256"] = "f" * 64  # features of an earlier save of that epoch
    scipy.io.savemat(str(tmp_path / "old.mat"), {k: val for k, val in content.items() if not k.startswith("__")})
    printed = []
    lfw_eval.run(str(tmp_path / "old.mat"), str(pairs_file), str(tmp_path / "c"), exclude_missing=True,
                 log=printed.append)
    assert not os.path.exists(saved) and any("was saved again after these features" in line for line in printed)
    assert thresholds.load_model_threshold(model_prefix, 3)[1].startswith("no LFW evaluation of this checkpoint")


@pytest.mark.octave
def test_lfw_eval_reads_the_extractor_mat(octave_cli, cli_run, pairs_file, tmp_path):
    cwd, _ = cli_run
    script = (f"addpath('{MATLAB_DIR}'); lfw_eval('{feature_files.DEFAULT_MAT}', '{pairs_file}', '{tmp_path}', "
              f"'exclude_missing', true);")
    proc = subprocess.run([octave_cli, "--no-gui", "--no-init-file", "--no-history", "--eval", script], cwd=cwd,
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    octave = report.read_results_json(tmp_path / report.RESULTS_JSON)
    python = lfw_eval.run(str(cwd / feature_files.DEFAULT_MAT), str(pairs_file), str(tmp_path / "py"),
                          exclude_missing=True, log=lambda message: None)
    assert octave["n_pairs"] == python["n_pairs"] == 11
    for key in ("accuracy_mean", "accuracy_std", "best_accuracy", "auc", "eer"):
        assert octave[key] == pytest.approx(python[key], abs=1e-6), key
    assert json.loads((tmp_path / report.RESULTS_JSON).read_text())["n_excluded"] == 1


# ---------------------------------------------------------------------------------------------------------------
# the same trees as the dataset builder, the user's file mode, the fit and the alignment the checkpoint records

def test_symlinked_identity_folders_are_found_as_the_dataset_builder_finds_them(faces, tmp_path):
    root, _, keys = faces
    people = sorted({k.split("/")[0] for k in keys})[:3]
    tree = tmp_path / "tree"
    tree.mkdir()
    for name in people:
        os.symlink(root / name, tree / name)
    os.symlink(tree, tree / "loop")  # a link back up: listed once, not followed forever
    os.symlink(root / people[0], tree / "again")  # a second name for one folder: its images once
    found, paths = extract.list_images(str(tree))
    from lightcnn.faces import scan_root
    listing, _, _, _ = scan_root(str(tree))
    assert found == sorted(f"{name}/{f}" for name in people for f in listing[name])
    assert all(os.path.isfile(p) for p in paths)


@pytest.mark.parametrize("umask, mode", [(0o022, 0o644), (0o027, 0o640)])
def test_the_mat_gets_the_users_umask_not_the_temporary_files(tmp_path, umask, mode):
    previous = os.umask(umask)
    try:
        feature_files.save_features_mat(str(tmp_path / "f.mat"), np.zeros((1, 4), np.float32), ["A/A_0001.jpg"])
    finally:
        os.umask(previous)
    assert (tmp_path / "f.mat").stat().st_mode & 0o777 == mode  # was 0600, the temporary file's


def test_preprocessing_flags_of_a_checkpoint_are_its_own(model_prefix, faces, tmp_path):
    root, image_list, _ = faces
    for flags, message in ((["--fit", "pad"], "--fit: a checkpoint's sidecar fixes the preprocessing"),
                           (["--align"], "was trained on faces used as given (not aligned)")):
        proc = run_cli("--model-prefix", model_prefix, "--image-list", image_list, "--image-root", root,
                       "--out", tmp_path / "x.mat", *flags, cwd=tmp_path)
        assert proc.returncode == 2 and message in proc.stderr, proc.stderr
    assert not (tmp_path / "x.mat").exists()


def needs_mediapipe():
    pytest.importorskip("mediapipe", reason="mediapipe not installed: pip install --no-deps -r requirements-align.txt")


@pytest.fixture(scope="module")
def aligned_prefix(tmp_path_factory):
    """A random LightCNN-9 whose sidecar says it was trained on faces aligned to the template."""
    from lightcnn.images import TEMPLATE
    return random_checkpoint(tmp_path_factory.mktemp("aligned_checkpoint"), Preprocess(align=TEMPLATE), epoch=1)


def test_a_network_trained_on_aligned_faces_gets_aligned_faces(aligned_prefix, faces, tmp_path):
    needs_mediapipe()
    from lightcnn import align
    root, _, keys = faces
    net, preprocess, _ = load_checkpoint_embedding(aligned_prefix)
    paths = [str(root / k) for k in keys[:4]]
    cv2 = pytest.importorskip("cv2")
    cv2.imwrite(str(tmp_path / "wall.png"), np.full((120, 100), 128, np.uint8))
    with pytest.raises(extract.MissingImagesError, match="wall.png: no face found"):
        extract.extract_features(net, paths + [str(tmp_path / "wall.png")], preprocess)
    result = extract.extract_features(net, paths, preprocess)
    with align.Aligner() as aligner:
        expected = np.stack([net.features(mx.nd.array(
            Preprocess().normalize(align.align_file(aligner, p).image[8:136, 8:136])[None, None])).asnumpy()[0]
            for p in paths])
    assert_features_close(result.features, expected)


def run_without_mediapipe(*args, cwd):
    """The extractor's CLI in a Python where importing mediapipe fails (as where it is not installed)."""
    code = (f"import sys; sys.modules['mediapipe'] = None; "
            f"sys.argv = ['extract_features.py'] + {list(map(str, args))!r}; "
            f"from lightcnn.cli.extract import main; sys.exit(main())")
    return subprocess.run([sys.executable, "-c", code], cwd=cwd, capture_output=True, text=True, timeout=180)


def test_an_aligned_tree_is_used_as_it_is_and_other_trees_need_mediapipe(aligned_prefix, faces, tmp_path):
    needs_mediapipe()
    from lightcnn import align, align_folder
    from lightcnn.images import TEMPLATE, Template
    root, _, keys = faces
    photos = tmp_path / "photos"
    for key in keys[:4]:
        (photos / key).parent.mkdir(parents=True, exist_ok=True)
        os.symlink(root / key, photos / key)
    align_folder.align_folder(photos, tmp_path / "aligned", workers=1, verbose=False)
    done = run_without_mediapipe("--model-prefix", aligned_prefix, "--image-root", tmp_path / "aligned",
                                 "--out", tmp_path / "a.mat", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert "was aligned by lightcnn.align to the network's template: its faces are used as they are" in done.stderr
    on_the_way = extract.extract_features(load_checkpoint_embedding(aligned_prefix)[0],
                                          [str(photos / k) for k in sorted(keys[:4])], Preprocess(align=TEMPLATE))
    stored = scipy.io.loadmat(tmp_path / "a.mat")["data"]
    cosine = (stored * on_the_way.features).sum(1) / np.linalg.norm(stored, axis=1) / np.linalg.norm(
        on_the_way.features, axis=1)
    assert cosine.min() > 0.99  # the same faces; the tree's are JPEG q95

    done = run_without_mediapipe("--model-prefix", aligned_prefix, "--image-root", photos, "--out",
                                 tmp_path / "b.mat", cwd=tmp_path)
    assert done.returncode == 2
    assert done.stderr.strip().splitlines()[-1] == ("error: face alignment needs mediapipe, which is not installed: "
                                                    f"pip install {align.INSTALL}")
    summary = json.loads((tmp_path / "aligned" / "summary.json").read_text())
    summary["template"] = Template(eye_y=40.0).to_dict()
    (tmp_path / "aligned" / "summary.json").write_text(json.dumps(summary))
    with pytest.raises(ValueError, match="was aligned to 144x144, eyes' midpoint at \\(72, 40\\)"):
        extract.input_is_aligned(str(tmp_path / "aligned"), Preprocess(align=TEMPLATE))
