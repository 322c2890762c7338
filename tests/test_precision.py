"""Mixed precision: which hardware runs which dtype (one-line errors otherwise), bfloat16 training through MXNet's
AMP with float32 checkpoints and an exact resume, and a resume that changes the dtype. AMP is process-wide, so every
AMP run here is a subprocess."""
import collections
import json
import os
import pathlib
import shutil
import subprocess
import sys

import numpy as np
import pytest

import mxnet as mx

from lightcnn import checkpoint, cpu, precision

ROOT = pathlib.Path(__file__).resolve().parents[1]
WORKER = ROOT / "tests" / "helpers" / "fit_worker.py"
HAS_BF16 = precision.cpu_has_bf16()
NO_BF16 = ("this CPU has no bfloat16 arithmetic (avx512_bf16/amx_bf16 not in /proc/cpuinfo, or oneDNN held below it "
           "by DNNL_MAX_CPU_ISA)")
needs_bf16 = pytest.mark.skipif(not HAS_BF16, reason=NO_BF16)


def _env():
    return dict(os.environ, PYTHONPATH=str(ROOT))


def run_worker(out_dir, epochs, *extra):
    proc = subprocess.run([sys.executable, str(WORKER), str(out_dir), str(epochs), *extra], env=_env(),
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, f"worker failed ({proc.returncode}):\n{proc.stdout}\n{proc.stderr}"
    return proc


def load_params(path):
    return {k: v.asnumpy() for k, v in mx.nd.load(str(path)).items()}


# --- which hardware runs which dtype -------------------------------------------------------------------------------

def test_cpu_flags_decide_bfloat16(tmp_path, monkeypatch):
    monkeypatch.delenv(cpu.ISA_ENV, raising=False)  # the flags given below are the whole story
    cpuinfo = tmp_path / "cpuinfo"
    cpuinfo.write_text("processor\t: 0\nflags\t\t: fpu avx512f avx512_bf16 avx512_vnni\n")
    assert "avx512_bf16" in cpu.cpu_flags(str(cpuinfo))
    assert cpu.cpu_flags(str(tmp_path / "absent")) == set()
    assert precision.fastest_cpu_dtype({"avx512f", "amx_bf16"}) == "bfloat16"
    assert precision.fastest_cpu_dtype({"avx512f", "avx512_vnni"}) == "float32"
    # oneDNN held below bfloat16 (DNNL_MAX_CPU_ISA): the flag is there, the kernels are not
    monkeypatch.setenv(cpu.ISA_ENV, "AVX512_CORE_VNNI")
    assert precision.fastest_cpu_dtype({"avx512f", "avx512_vnni", "avx512_bf16"}) == "float32"
    with pytest.raises(precision.PrecisionError, match="held off by DNNL_MAX_CPU_ISA=AVX512_CORE_VNNI"):
        precision.check_dtype("bfloat16", [mx.cpu()], flags={"avx512_bf16"})


def test_unsupported_hardware_is_a_one_line_error_naming_the_flag(monkeypatch):
    monkeypatch.delenv(cpu.ISA_ENV, raising=False)
    ctxs = [mx.cpu()]
    precision.check_dtype("float32", ctxs, flags=set())
    precision.check_dtype("bfloat16", ctxs, flags={"avx512_bf16"})
    with pytest.raises(precision.PrecisionError) as error:
        precision.check_dtype("bfloat16", ctxs, flags={"avx512f", "avx2"})
    message = str(error.value)
    assert "avx512_bf16 or amx_bf16" in message and "use float32" in message and "\n" not in message
    with pytest.raises(precision.PrecisionError, match="float16 needs a GPU"):
        precision.check_dtype("float16", ctxs, flags=set())
    with pytest.raises(precision.PrecisionError, match="on GPUs use float16"):
        precision.check_dtype("bfloat16", [mx.gpu(0)], flags={"avx512_bf16"})
    with pytest.raises(precision.PrecisionError, match="unknown dtype 'int8'"):
        precision.check_dtype("int8", ctxs)


def test_float16_on_the_cpu_fails_in_one_line_through_the_command(tmp_path):
    proc = subprocess.run([sys.executable, str(ROOT / "train_lightcnn.py"), "--benchmark", "1", "--dtype", "float16",
                           "--model-prefix", str(tmp_path / "m")], env=_env(), capture_output=True, text=True,
                          timeout=120)
    assert proc.returncode == 2, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert lines[-1].startswith("error: --dtype: float16 needs a GPU (--gpus)"), proc.stderr
    assert "Traceback" not in proc.stderr and not list(tmp_path.glob("m-0*"))


def test_float16_with_dist_async_is_refused():
    from lightcnn.training import ConfigError, TrainConfig
    with pytest.raises(ConfigError, match="loss scaler") as error:
        TrainConfig(benchmark=True, dtype="float16", kv_store="dist_async").check()
    assert error.value.field == "dtype"


# --- bfloat16 training ---------------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def bf16_run(worker_run):
    if not HAS_BF16:
        pytest.skip(NO_BF16)
    return worker_run(2, "--dtype", "bfloat16")


@needs_bf16
def test_bfloat16_training_resumes_bit_identically(bf16_run, tmp_path):
    run_worker(tmp_path, 1, "--dtype", "bfloat16")
    run_worker(tmp_path, 2, "--dtype", "bfloat16", "--load-epoch", "1")
    straight, resumed = load_params(bf16_run / "final-rank0.params"), load_params(tmp_path / "final-rank0.params")
    assert straight.keys() == resumed.keys()
    for name in straight:
        np.testing.assert_array_equal(resumed[name], straight[name], err_msg=name)


@needs_bf16
def test_bfloat16_computes_in_bfloat16_and_checkpoints_in_float32(bf16_run, worker_run, tmp_path):
    float32_run = worker_run(2)  # the same run in float32 (shared with the other tests of it)
    bf16, fp32 = load_params(bf16_run / "final-rank0.params"), load_params(float32_run / "final-rank0.params")
    # the same seed and data: only the arithmetic differs, and it did change the result
    assert any(not np.array_equal(bf16[k], fp32[k]) for k in bf16)
    assert all(v.dtype == np.float32 for v in load_params(bf16_run / "m-0002.params").values())
    ops = collections.Counter(node["op"] for node in json.loads((bf16_run / "m-symbol.json").read_text())["nodes"])
    assert ops["Convolution"] == 9 and not any(op.startswith("amp_") for op in ops), ops
    sidecar = checkpoint.read_sidecar(str(bf16_run / "m"), 2)
    assert sidecar.training.config["dtype"] == "bfloat16"
    # the checkpoint loads in this (float32) process as a float32 network
    net, _ = checkpoint.load_model(str(bf16_run / "m"))
    feature = net.features(mx.nd.ones((2, 1, 128, 128)))
    assert feature.dtype == np.float32 and np.isfinite(feature.asnumpy()).all()


@needs_bf16
def test_a_resume_may_change_the_dtype_and_says_so(bf16_run, tmp_path):
    for name in ("m-symbol.json", "m-0001.params", "m-0001.states", "m-0001.json"):
        shutil.copy(bf16_run / name, tmp_path / name)
    run_worker(tmp_path, 2, "--load-epoch", "1")  # float32
    log = (tmp_path / "worker.log").read_text()
    assert "settings changed since that checkpoint: dtype bfloat16 -> float32" in log
    assert checkpoint.read_sidecar(str(tmp_path / "m"), 2).training.config["dtype"] == "float32"
