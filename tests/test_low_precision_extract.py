"""Low-precision extraction on real LFW crops: bfloat16 and int8 features against float32 ones of the same network
(within stated tolerances), the int8 model's cache (reused for the same weights and calibration, never for others),
and the one-line errors. The networks are randomly initialised LightCNN-9s (the accuracy cost of a trained one on
LFW pairs is measured by make lfw and reported in the README).

int8 runs on every ISA path this machine can take: its own CPU's, and oneDNN held to AVX2 by DNNL_MAX_CPU_ISA (a
child process: oneDNN reads it once), which is what a CPU without VNNI runs; its verbose log proves the kernels."""
import json
import logging
import os
import pathlib
import shutil
import subprocess
import sys

import numpy as np
import pytest

import mxnet as mx

from lightcnn import checkpoint, cpu, extract, init, precision, quantize
from lightcnn.embedding import SymbolEmbedding, load_checkpoint_embedding, low_precision_embedding
from lightcnn.images import Preprocess
from lightcnn.model import ModelSpec

ROOT = pathlib.Path(__file__).resolve().parents[1]
CLI = ROOT / "extract_features" / "extract_features.py"
HELPER = ROOT / "tests" / "helpers" / "int8_accuracy.py"
N_IMAGES = 48
# Stated tolerances (per image, against float32 features of the same network). bfloat16, measured on 195 LFW crops
# with a random LightCNN-9: worst relative L2 error 0.004, cosine 0.99999.
BF16_REL_L2, MIN_COSINE = 0.02, 0.999
# int8 (worst relative L2, worst cosine) per model, both MFM forms, both ISA paths. Measured worst on these 48 crops
# (a Xeon with AMX, native and held to AVX2; naive calibration; unseeded draws of the weights): the suite's model
# 0.026 (max form), 0.032 (sum-relu form without VNNI), cosine 0.9995; with its weights doubled (its 0.1 biases count
# for less) 0.060-0.067, cosine 0.9980-0.9984: int8 rounding in a random network, as large with VNNI as without.
# Saturation, the fault these tests catch, gave 0.27-0.32.
INT8_BOUNDS = {"suite": (0.035, 0.999), "doubled": (0.08, 0.997)}


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


def _random_checkpoint(folder, weight_scale=1.0):
    mx.random.seed(7)  # the same weights every run: the bounds below were measured on them
    spec = ModelSpec("lightcnn9", 10)
    net = spec.build()
    net.initialize(init.xavier("in"))
    net.hybridize()
    net(mx.nd.zeros((1, 1, 128, 128)))
    for name, param in net.collect_params().items():
        if name.endswith("weight"):
            param.set_data(param.data() * weight_scale)
    prefix = str(folder / "net")
    checkpoint.save(net, None, prefix, checkpoint.Sidecar(spec, Preprocess(mean=127.5), epoch=1,
                                                          origin={"kind": "initialised"}))
    return prefix


@pytest.fixture(scope="module")
def model_prefix(tmp_path_factory):
    return _random_checkpoint(tmp_path_factory.mktemp("model"))


@pytest.fixture(scope="module")
def doubled_prefix(tmp_path_factory):
    return _random_checkpoint(tmp_path_factory.mktemp("doubled"), weight_scale=2.0)


def _extract(net, paths, preprocess):
    return extract.extract_features(net, paths, preprocess, log_interval=None).features


def _int8(prefix, paths, preprocess, calib_count=16, log=None):
    net, _, sidecar = load_checkpoint_embedding(prefix)
    calib = extract.calibration_data(paths, calib_count, preprocess, log or logging.getLogger("test"))
    return low_precision_embedding(net, [mx.cpu()], preprocess.data_shape, quantize_int8=True,
                                   params_file=checkpoint.params_path(prefix, 1),
                                   identity={"model": sidecar.model.to_dict()}, calib_data=calib, log=log)


def _int8_accuracy(tmp_path, paths, prefixes, isa=None, *extra):
    """The helper's result in a child process (held to ``isa`` when given, with oneDNN's verbose log; else in this
    process's environment, a cap included) and its stdout."""
    images = tmp_path / "images.txt"
    images.write_text("\n".join(paths))
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    if isa:
        env.update({cpu.ISA_ENV: isa, "DNNL_VERBOSE": "1"})
    out = tmp_path / "result.json"
    proc = subprocess.run([sys.executable, str(HELPER), str(out), str(images), *prefixes, *extra], env=env,
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return json.loads(out.read_text()), proc.stdout


# the oneDNN paths without VNNI: a plain AVX2 CPU, and AVX-512 without VNNI (Skylake-SP); a CPU without AVX-512 held
# to AVX512_CORE runs its AVX2 kernels, which the test then expects
NO_VNNI_CAPS = {"AVX2": ("isa:Intel AVX2", ":avx2,"), "AVX512_CORE": ("isa:Intel AVX-512", ":avx512_core,")}


@pytest.mark.slow
@pytest.mark.parametrize("isa", [None, "AVX2", "AVX512_CORE"],
                         ids=["this-cpu", "held-to-avx2", "held-to-avx512-without-vnni"])
def test_int8_features_are_close_to_float32_on_every_isa_path(isa, model_prefix, doubled_prefix, lfw_paths,
                                                               tmp_path):
    result, log = _int8_accuracy(tmp_path, lfw_paths, [model_prefix, doubled_prefix], isa)
    if isa:  # oneDNN took the cap: its info line, and every int8 convolution ran that ISA's kernel
        info, kernel = NO_VNNI_CAPS[isa if "avx512f" in cpu.cpu_flags() else "AVX2"]
        assert info in log, log[:2000]
        int8_convolutions = [line for line in log.splitlines()
                             if line.startswith("dnnl_verbose,exec,cpu,convolution") and "src_s8" in line]
        assert int8_convolutions and all(kernel in line for line in int8_convolutions), int8_convolutions[:3]
        # the no-VNNI recipe: no unsigned source into a convolution, no int8 inner product
        assert not any("src_u8" in line for line in log.splitlines() if ",convolution," in line)
        assert not any(",inner_product," in line and "wei_s8" in line for line in log.splitlines())
        assert result["recipe"] == "no-vnni"
    else:
        assert result["recipe"] == quantize.int8_recipe()[0]
    for prefix, name in ((model_prefix, "suite"), (doubled_prefix, "doubled")):
        max_error, min_cosine = INT8_BOUNDS[name]
        for form, row in result["models"][prefix].items():
            assert row["rel_l2_max"] <= max_error and row["cosine_min"] >= min_cosine, (name, form, row)
            assert not row["identical"]  # it did compute in int8


@pytest.mark.slow
def test_the_vnni_graph_on_avx2_kernels_saturates(model_prefix, lfw_paths, tmp_path):
    """The cause the no-VNNI recipe answers, kept as a fact of this MXNet: MXNet's own graph, run by AVX2 kernels."""
    result, _ = _int8_accuracy(tmp_path, lfw_paths[:16], [model_prefix], "AVX2", "--force-recipe", "vnni")
    assert result["models"][model_prefix]["max"]["rel_l2_max"] > 0.1


@pytest.mark.slow
def test_bfloat16_features_are_close_to_float32_and_sum_relu_is_exact(model_prefix, lfw_paths):
    net, preprocess, _ = load_checkpoint_embedding(model_prefix)
    reference = _extract(net, lfw_paths, preprocess)
    # --mfm-form sum-relu in float32: the same function, to rounding
    sum_relu = _extract(low_precision_embedding(net, [mx.cpu()], preprocess.data_shape, mfm_form="sum-relu"),
                        lfw_paths, preprocess)
    assert np.abs(sum_relu - reference).max() <= 1e-5 * np.abs(reference).max()
    if not precision.cpu_has_bf16():
        pytest.skip("this CPU has no bfloat16 arithmetic (or oneDNN is held below it)")
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
                quantize.cache_key("w", {"model": 1}, data, "naive", "sum-relu"),
                quantize.cache_key("w", {"model": 1}, data, "naive", cpu_recipe="no-vnni")):
        assert key != base
    assert quantize.cache_base("/x/m-0003.params", base) == f"/x/m-0003.int8-{base[:16]}"


def test_int8_recipe_follows_the_cpu_as_onednn_will_use_it():
    vnni512, plain = {"sse4_1", "avx2", "avx512f", "avx512_vnni"}, {"sse4_1", "avx2", "avx512f"}
    assert quantize.int8_recipe(vnni512, {})[0] == "vnni"
    assert quantize.int8_recipe({"sse4_1", "avx2", "avx_vnni"}, {})[0] == "vnni"
    assert quantize.int8_recipe(plain, {})[0] == "no-vnni"
    name, reason = quantize.int8_recipe(vnni512, {cpu.ISA_ENV: "AVX2"})
    assert name == "no-vnni" and f"{cpu.ISA_ENV}=AVX2" in reason
    assert quantize.int8_recipe(vnni512, {cpu.ISA_ENV: "AVX512_CORE_VNNI"})[0] == "vnni"
    assert quantize.int8_recipe(vnni512, {cpu.ISA_ENV: "avx2"})[0] == "vnni"  # oneDNN ignores what it cannot parse
    assert quantize.int8_recipe(set(), {})[0] == "no-vnni"  # flags unreadable: the recipe that is right everywhere
    with pytest.raises(quantize.QuantizationError, match="needs an x86 CPU with SSE4.1.*use float32"):
        quantize.int8_recipe({"fp", "asimd"}, {})
    assert cpu.usable_flags(vnni512 | {"avx512_bf16"}, {cpu.ISA_ENV: "AVX2"}) == {"sse4_1", "avx2"}
    assert "held to AVX2" in cpu.describe(vnni512, {cpu.ISA_ENV: "AVX2"})


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
