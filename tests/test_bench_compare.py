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
from lightcnn.tools import bench_model

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


@pytest.mark.parametrize("framework,dtype,mode", [("mxnet", "int8", "infer"), ("pytorch", "int8", "infer"),
                                                  ("pytorch", "float32", "train")])
def test_each_configuration_reports_its_rate_and_peak_memory(framework, dtype, mode):
    pytest.importorskip("torch", reason="the PyTorch side needs torch (requirements-test.txt)")
    proc = subprocess.run([sys.executable, "-m", "lightcnn.tools.bench_frameworks", "--framework", framework,
                           "--dtype", dtype, "--mode", mode, "--batch-size", "2", "--seconds", "0"],
                          env=dict(os.environ, PYTHONPATH=str(ROOT)), capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    record = json.loads([line for line in proc.stdout.splitlines() if line.startswith("RESULT ")][-1][7:])
    assert record["images_per_s"] > 0 and record["peak_rss_mb"] > 50 and record["batch_size"] == 2
