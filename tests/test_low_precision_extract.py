"""Low-precision extraction on real LFW crops: bfloat16 and int8 features against float32 ones of the same network
(within stated tolerances), the int8 model's cache (reused for the same weights and calibration, never for others),
and the one-line errors. The network is a randomly initialised LightCNN-9 (the accuracy cost of a trained one on
LFW pairs is measured by make lfw and reported in the README)."""
import logging
import os
import pathlib
import shutil
import subprocess
import sys

import numpy as np
import pytest

import mxnet as mx

from lightcnn import checkpoint, extract, init, precision, quantize
from lightcnn.embedding import SymbolEmbedding, load_checkpoint_embedding, low_precision_embedding
from lightcnn.images import Preprocess
from lightcnn.model import ModelSpec

ROOT = pathlib.Path(__file__).resolve().parents[1]
CLI = ROOT / "extract_features" / "extract_features.py"
N_IMAGES = 48
# Stated tolerances (per image, against float32 features of the same network). Measured on 195 LFW crops with a
# random LightCNN-9: worst relative L2 error 0.004 (bfloat16) and 0.010 (int8), worst cosine 0.99999 / 0.99995.
BF16_REL_L2, INT8_REL_L2, MIN_COSINE = 0.02, 0.03, 0.999


def relative_l2(actual, expected):
    return np.linalg.norm(actual - expected, axis=1) / np.linalg.norm(expected, axis=1)


def cosine(a, b):
    return (a * b).sum(1) / np.linalg.norm(a, axis=1) / np.linalg.norm(b, axis=1)


@pytest.fixture(scope="module")
def lfw_paths(shared_data):
    root = shared_data / "lfw_gray144"
    paths = []
    for name in sorted(os.listdir(root)):
        paths += sorted(str(root / name / f) for f in os.listdir(root / name))[:2]
        if len(paths) >= N_IMAGES:
            return paths[:N_IMAGES]


@pytest.fixture(scope="module")
def model_prefix(tmp_path_factory):
    spec = ModelSpec("lightcnn9", 10)
    net = spec.build()
    net.initialize(init.xavier("in"))
    net.hybridize()
    net(mx.nd.zeros((1, 1, 128, 128)))
    prefix = str(tmp_path_factory.mktemp("model") / "net")
    checkpoint.save(net, None, prefix, checkpoint.Sidecar(spec, Preprocess(mean=127.5), epoch=1,
                                                          origin={"kind": "initialised"}))
    return prefix


def _extract(net, paths, preprocess):
    return extract.extract_features(net, paths, preprocess, log_interval=None).features


def _int8(prefix, paths, preprocess, calib_count=16, log=None):
    net, _, sidecar = load_checkpoint_embedding(prefix)
    calib = extract.calibration_data(paths, calib_count, preprocess, log or logging.getLogger("test"))
    return low_precision_embedding(net, [mx.cpu()], preprocess.data_shape, quantize_int8=True,
                                   params_file=checkpoint.params_path(prefix, 1),
                                   identity={"model": sidecar.model.to_dict()}, calib_data=calib, log=log)


@pytest.mark.slow
def test_int8_and_bfloat16_features_are_close_to_float32_on_real_faces(model_prefix, lfw_paths):
    net, preprocess, _ = load_checkpoint_embedding(model_prefix)
    reference = _extract(net, lfw_paths, preprocess)
    int8 = _extract(_int8(model_prefix, lfw_paths, preprocess), lfw_paths, preprocess)
    assert int8.dtype == np.float32 and int8.shape == reference.shape
    assert relative_l2(int8, reference).max() <= INT8_REL_L2
    assert cosine(int8, reference).min() >= MIN_COSINE
    assert not np.array_equal(int8, reference)  # it did compute in int8
    # --mfm-form sum-relu in float32: the same function, to rounding
    sum_relu = _extract(low_precision_embedding(net, [mx.cpu()], preprocess.data_shape, mfm_form="sum-relu"),
                        lfw_paths, preprocess)
    assert np.abs(sum_relu - reference).max() <= 1e-5 * np.abs(reference).max()
    if precision.cpu_has_bf16():
        bf16_net = low_precision_embedding(net, [mx.cpu()], preprocess.data_shape, dtype="bfloat16")
        bf16 = _extract(bf16_net, lfw_paths, preprocess)
        assert bf16.dtype == np.float32 and relative_l2(bf16, reference).max() <= BF16_REL_L2
        assert cosine(bf16, reference).min() >= MIN_COSINE and not np.array_equal(bf16, reference)


@pytest.mark.slow
def test_int8_model_is_cached_and_reused_only_for_the_same_weights_and_images(model_prefix, lfw_paths, tmp_path,
                                                                              caplog):
    source = pathlib.Path(model_prefix)
    for name in ("net-symbol.json", "net-0001.params", "net-0001.json"):  # a cache of its own
        shutil.copy(source.parent / name, tmp_path / name)
    model_prefix = str(tmp_path / "net")
    preprocess = Preprocess(mean=127.5)
    caplog.set_level(logging.INFO)
    log = logging.getLogger("lightcnn.test")
    first = _int8(model_prefix, lfw_paths, preprocess, log=log)
    assert first.source == "calibrated now"
    again = _int8(model_prefix, lfw_paths, preprocess, log=log)
    assert again.source.endswith(".json") and "reused" in caplog.text
    x = mx.nd.array(extract.calibration_data(lfw_paths[:4], 4, preprocess, log))
    np.testing.assert_array_equal(again.features(x).asnumpy(), first.features(x).asnumpy())
    # another calibration sample is another model
    other = _int8(model_prefix, lfw_paths, preprocess, calib_count=12, log=log)
    assert other.source == "calibrated now"
    caches = sorted(p.name for p in pathlib.Path(model_prefix).parent.glob("net-0001.int8-" + "?" * 16 + ".json"))
    assert len(caches) == 2, caches


def test_cache_key_changes_with_weights_network_images_and_mode():
    data = np.zeros((2, 1, 4, 4), np.float32)
    base = quantize.cache_key("w", {"model": 1}, data, "naive")
    assert base == quantize.cache_key("w", {"model": 1}, data.copy(), "naive")
    changed = data.copy()
    changed[1, 0, 3, 3] = 1e-3
    for key in (quantize.cache_key("w2", {"model": 1}, data, "naive"),
                quantize.cache_key("w", {"model": 2}, data, "naive"),
                quantize.cache_key("w", {"model": 1}, changed, "naive"),
                quantize.cache_key("w", {"model": 1}, data, "entropy"),
                quantize.cache_key("w", {"model": 1}, data, "naive", "sum-relu")):
        assert key != base
    assert quantize.cache_base("/x/m-0003.params", base) == f"/x/m-0003.int8-{base[:16]}"


def test_exported_graph_gives_its_embedding_output_alone(model_prefix):
    graph = SymbolEmbedding(checkpoint.symbol_path(model_prefix), checkpoint.params_path(model_prefix, 1))
    x = mx.nd.random.uniform(shape=(2, 1, 128, 128))
    np.testing.assert_array_equal(graph.embedding_block()(x).asnumpy(), graph.features(x).asnumpy())


def _cli(*args):
    return subprocess.run([sys.executable, str(CLI), *map(str, args)], env=dict(os.environ, PYTHONPATH=str(ROOT)),
                          capture_output=True, text=True, timeout=120)


def test_unsupported_precision_is_a_one_line_error(model_prefix, tmp_path):
    (tmp_path / "faces").mkdir()
    common = ["--model-prefix", model_prefix, "--image-root", tmp_path / "faces", "--out", tmp_path / "f.mat"]
    proc = _cli(*common, "--dtype", "float16")
    assert proc.returncode == 2 and proc.stderr.strip().splitlines()[-1].startswith(
        "error: --dtype: float16 needs a GPU"), proc.stderr
    assert "Traceback" not in proc.stderr
    proc = _cli(*common, "--dtype", "bfloat16", "--quantize", "int8")
    assert proc.returncode == 2 and "--quantize int8 and --dtype go separately" in proc.stderr
    assert not (tmp_path / "f.mat").exists()
