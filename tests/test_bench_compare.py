"""The side-by-side benchmark's parts, tiny (speed is measured by `bench_model --compare`, not by tests): each
configuration runs and reports its rate and peak memory, and the int8-friendly MFM form is the same function."""
import json
import os
import pathlib
import subprocess
import sys

import numpy as np
import pytest

import mxnet as mx

from lightcnn import init, quantize
from lightcnn.model import get_model
from benchmarks import bench_frameworks, bench_model

ROOT = pathlib.Path(__file__).resolve().parents[1]


@pytest.mark.parametrize("network", ["lightcnn9", "lightcnn29v2"])
def test_sum_relu_form_is_the_same_function(network):
    """max(a, b) = b + relu(a - b): the rewritten float32 network gives the same features (29v2 keeps its pools)."""
    net = get_model(network, 10)
    net.initialize(init.xavier("in"))
    net.hybridize()
    x = mx.nd.array(np.random.RandomState(0).uniform(-1, 1, size=(2, 1, 128, 128)))
    expected = net.features(x).asnumpy()
    actual = quantize.sum_relu_form(net.embedding)(x).asnumpy()
    assert np.abs(actual - expected).max() <= 1e-5 * np.abs(expected).max()


def test_configurations_pair_the_frameworks():
    configs = bench_model.configurations(has_bf16=False)
    assert ("mxnet", "bfloat16", "train") not in configs and ("pytorch", "int8", "train") not in configs
    for config in (("mxnet", "int8", "infer"), ("pytorch", "int8", "infer"), ("pytorch", "float32", "train")):
        assert config in configs


# the int8 rows run in the test below, which checks their rate too
@pytest.mark.parametrize("framework,dtype,mode", [("pytorch", "float32", "train")])
def test_each_configuration_reports_its_rate_and_peak_memory(framework, dtype, mode):
    pytest.importorskip("torch", reason="the PyTorch side needs torch (requirements-test.txt)")
    proc = subprocess.run([sys.executable, "-m", "benchmarks.bench_frameworks", "--framework", framework,
                           "--dtype", dtype, "--mode", mode, "--batch-size", "2", "--seconds", "0"],
                          env=dict(os.environ, PYTHONPATH=str(ROOT)), capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    record = json.loads([line for line in proc.stdout.splitlines() if line.startswith("RESULT ")][-1][7:])
    assert record["images_per_s"] > 0 and record["peak_rss_mb"] > 50 and record["batch_size"] == 2


@pytest.mark.parametrize("framework", ["mxnet", "pytorch"])
def test_a_low_precision_row_is_checked_on_real_crops(framework, shared_data):
    if framework == "pytorch":
        pytest.importorskip("torch", reason="the PyTorch side needs torch (requirements-test.txt)")
    proc = subprocess.run([sys.executable, "-m", "benchmarks.bench_frameworks", "--framework", framework,
                           "--dtype", "int8", "--mode", "infer", "--batch-size", "2", "--seconds", "0",
                           "--check-images", str(shared_data / "lfw_gray144")],
                          env=dict(os.environ, PYTHONPATH=str(ROOT)), capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    record = json.loads([line for line in proc.stdout.splitlines() if line.startswith("RESULT ")][-1][7:])
    assert record["images_per_s"] > 0 and record["peak_rss_mb"] > 50 and record["batch_size"] == 2
    check = record["accuracy"]
    assert check["images"] == bench_frameworks.CHECK_IMAGES and 0 < check["rel_l2_max"] < 1
    assert check["within_bounds"] == (check["rel_l2_max"] <= 0.035 and check["cosine_min"] >= 0.999)


def test_a_row_outside_the_bounds_is_marked():
    reference = np.random.RandomState(0).normal(size=(4, 256)).astype(np.float32)
    good = bench_frameworks.accuracy("int8", (reference, reference * 1.01))
    bad = bench_frameworks.accuracy("int8-sumrelu", (reference, reference + 0.3 * np.abs(reference)))
    assert good["within_bounds"] and not bad["within_bounds"] and bad["rel_l2_max"] > 0.1
    assert bench_model._accuracy_cell({"accuracy": bad}).endswith("FAIL")
    assert not bench_model._accuracy_cell({"accuracy": good}).endswith("FAIL")
