"""Training runs in their own processes (so a resume really is a new process), for the tests."""
import os
import pathlib
import subprocess
import sys

import mxnet as mx

ROOT = pathlib.Path(__file__).resolve().parents[2]
WORKER = ROOT / "tests" / "helpers" / "fit_worker.py"


def worker_env(threads=None):
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    if threads:
        env["OMP_NUM_THREADS"] = str(threads)
    return env


def run_worker(out_dir, epochs, *extra, check=True, env=None, timeout=300):
    """``fit_worker.py OUT_DIR EPOCHS EXTRA...``; its CompletedProcess (an AssertionError with its output if it
    failed and ``check``)."""
    proc = subprocess.run([sys.executable, str(WORKER), str(out_dir), str(epochs), *map(str, extra)],
                          env=env or worker_env(), capture_output=True, text=True, timeout=timeout)
    if check and proc.returncode != 0:
        raise AssertionError(f"worker failed ({proc.returncode}):\n{proc.stdout}\n{proc.stderr}")
    return proc


def load_params(path):
    """{parameter name: array} of a .params file, without the export format's ``arg:``/``aux:``."""
    return {k.split(":", 1)[-1]: v.asnumpy() for k, v in mx.nd.load(str(path)).items()}
