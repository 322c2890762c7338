"""--kv-store horovod: two processes under horovodrun --gloo on 127.0.0.1.

Horovod is optional (it is built from source against the installed MXNet: `make horovod`); without it these tests
skip and say so. Every run has a timeout, and a run that overstays it is killed with all its processes.
"""
import os
import pathlib
import re
import shutil
import subprocess
import sys

import numpy as np
import pytest

from lightcnn import checkpoint

from helpers.runs import WORKER, load_params, run_worker, worker_env


def _horovod_missing():
    """Why Horovod with MXNet cannot be used, or None. Asked in a child process: horovod.mxnet loaded into the test
    process makes a later `import torch` there crash (a segmentation fault, measured), and the workers are children
    anyway."""
    done = subprocess.run([sys.executable, "-c", "import horovod.mxnet"], capture_output=True, text=True)
    if done.returncode == 0:
        return None
    lines = done.stderr.strip().splitlines() or [f"exit status {done.returncode}"]
    return f"Horovod with MXNet support is not installed ({lines[-1]}); `make horovod` builds it into .venv"


HOROVOD_MISSING = _horovod_missing()

requires_horovod = pytest.mark.skipif(HOROVOD_MISSING is not None, reason=HOROVOD_MISSING or "")

ROOT = pathlib.Path(__file__).resolve().parents[1]
TIMEOUT = 240
# one epoch = 16 images per worker / 4 per worker and batch = 4 steps; SGD and no dropout, so that a run can be
# compared with one process training on the same global batches
SAME_AS_ONE_PROCESS = ["--optimizer", "sgd", "--dropout", "0"]


def horovodrun(command, log_path, num_proc=2):
    """``horovodrun -np N -H localhost:N --gloo COMMAND``: its exit code, the exit codes horovodrun reports (it
    reports only the ranks that failed, or were stopped after another failed) and the output."""
    env = dict(os.environ, PYTHONPATH=str(ROOT), OMP_NUM_THREADS="1")
    launcher = [sys.executable, "-m", "horovod.runner.launch", "-np", str(num_proc), "-H", f"localhost:{num_proc}",
                "--gloo", "--start-timeout", "60", "--gloo-timeout-seconds", "60"]
    with open(log_path, "w") as log:
        proc = subprocess.Popen(launcher + [str(c) for c in command], env=env, stdout=log,
                                stderr=subprocess.STDOUT, start_new_session=True)
        try:
            proc.wait(timeout=TIMEOUT)
        except subprocess.TimeoutExpired:
            _kill_tree(proc)
            raise AssertionError(f"horovodrun still running after {TIMEOUT} s:\n"
                                 + pathlib.Path(log_path).read_text()[-3000:]) from None
    text = pathlib.Path(log_path).read_text()
    ranks = {int(r): int(c) for r, c in re.findall(r"^Process (\d+) exit with status code (-?\d+)", text, re.M)}
    return proc.returncode, ranks, text


def _summary(text):
    """A failed run's errors and exits, then the end of its output."""
    wanted = [line for line in text.splitlines() if re.search(r"Error|exit with status|Terminat|shut down", line)]
    return "\n".join(wanted[-30:]) + "\n...\n" + text[-2000:]


def _kill_tree(proc):
    import psutil  # a dependency of Horovod
    try:
        children = psutil.Process(proc.pid).children(recursive=True)
    except psutil.NoSuchProcess:
        children = []
    for child in children:
        try:
            child.kill()
        except psutil.NoSuchProcess:
            pass
    proc.kill()
    proc.wait()


@pytest.fixture(scope="module")
def two_epochs(tmp_path_factory):
    """Two Horovod workers, each on its own shard and initialised from its own seed, two epochs (the rate drops
    10x at the second)."""
    out = tmp_path_factory.mktemp("horovod")
    code, ranks, text = horovodrun([sys.executable, WORKER, out, 2, "--kv-store", "horovod", "--seed-by-rank",
                                    "--save-initial", *SAME_AS_ONE_PROCESS], out / "horovodrun.log")
    assert code == 0 and not ranks, _summary(text)
    return out


@pytest.mark.dist
@requires_horovod
def test_two_workers_end_identical_and_train_like_one_process_on_the_global_batch(two_epochs, tmp_path):
    own0, own1 = load_params(two_epochs / "own-init-rank0.params"), load_params(two_epochs / "own-init-rank1.params")
    assert any(not np.array_equal(own0[k], own1[k]) for k in own0)  # different seeds, different weights...
    initial0 = load_params(two_epochs / "initial-rank0.params")
    initial1 = load_params(two_epochs / "initial-rank1.params")
    for name in initial0:  # ...until rank 0's are broadcast
        np.testing.assert_array_equal(initial1[name], initial0[name], err_msg=name)
        np.testing.assert_array_equal(initial0[name], own0[name], err_msg=name)
    final0, final1 = load_params(two_epochs / "final-rank0.params"), load_params(two_epochs / "final-rank1.params")
    for name in final0:
        np.testing.assert_array_equal(final1[name], final0[name], err_msg=name)
    assert sorted(p.name for p in two_epochs.glob("m-*.params")) == ["m-0001.params", "m-0002.params"]
    assert checkpoint.read_sidecar(str(two_epochs / "m"), 2).training.lr == pytest.approx(1e-4)

    # control: one process, no Horovod, same seed, every batch = rank 0's share then rank 1's (batch 8 = 2 x 4)
    run_worker(tmp_path, 2, "--merge-parts", "2", "--batch-size", "8", "--save-initial", *SAME_AS_ONE_PROCESS,
               env=worker_env(threads=1))
    control_initial = load_params(tmp_path / "initial-rank0.params")
    control = load_params(tmp_path / "final-rank0.params")
    for name in final0:
        np.testing.assert_array_equal(control_initial[name], initial0[name], err_msg=name)
        ours, theirs = final0[name] - initial0[name], control[name] - control_initial[name]
        assert np.linalg.norm(theirs) > 0, name
        # the same update up to summation order (measured: within 2%); summed instead of averaged gradients, or
        # averaged twice, would be 2x off (measured 0.3-0.4x with the step size of the global batch)
        assert np.linalg.norm(ours - theirs) < 0.05 * np.linalg.norm(theirs), \
            f"{name}: |update| {np.linalg.norm(ours):.4g} vs one process {np.linalg.norm(theirs):.4g}"


@pytest.mark.dist
@requires_horovod
def test_resume_continues_exactly(two_epochs, tmp_path):
    """Resumed from epoch 1 (weights and SGD momentum from the checkpoint) in new processes, both workers end bit
    for bit where the uninterrupted run did."""
    for path in list(two_epochs.glob("m-0001.*")) + [two_epochs / "m-symbol.json"]:
        shutil.copy(path, tmp_path)
    code, ranks, text = horovodrun([sys.executable, WORKER, tmp_path, 2, "--kv-store", "horovod", "--seed-by-rank",
                                    "--load-epoch", 1, *SAME_AS_ONE_PROCESS], tmp_path / "horovodrun.log")
    assert code == 0 and not ranks, _summary(text)
    assert text.count("resumed from") == 2
    straight = load_params(two_epochs / "final-rank0.params")
    for rank in (0, 1):
        resumed = load_params(tmp_path / f"final-rank{rank}.params")
        for name in straight:
            np.testing.assert_array_equal(resumed[name], straight[name], err_msg=f"rank {rank}: {name}")


@pytest.mark.dist
@requires_horovod
def test_nan_on_one_worker_stops_both_at_that_batch(tmp_path):
    code, ranks, text = horovodrun([sys.executable, WORKER, tmp_path, 1, "--kv-store", "horovod", "--nan-at-batch", 1,
                                    "--nan-rank", 1], tmp_path / "horovodrun.log")
    assert code != 0 and any(ranks.values()), _summary(text)
    # each rank stopped on the guard with its message (horovodrun stops the other ranks once one has exited, and
    # reports the exit codes only of those that ended before that)
    assert "[1]<stderr>:error: non-finite loss (nan) at epoch 0, batch 1" in text, _summary(text)
    assert "[0]<stderr>:error: non-finite loss on another worker at epoch 0, batch 1" in text, _summary(text)
    assert checkpoint.saved_epochs(str(tmp_path / "m")) == [] and not list(tmp_path.glob("m-0001*"))


@pytest.mark.dist
@requires_horovod
def test_workers_that_drift_apart_stop_before_the_checkpoint(tmp_path):
    """Rank 1 nudges its fc weight after the epoch's training: the comparison with rank 0's weights stops both."""
    code, ranks, text = horovodrun([sys.executable, WORKER, tmp_path, 1, "--kv-store", "horovod", "--desync-rank", 1],
                                   tmp_path / "horovodrun.log")
    assert code != 0 and any(ranks.values()), _summary(text)
    for rank in (0, 1):
        assert re.search(rf"\[{rank}\]<stderr>:error: epoch 0: the horovod workers' weights are out of sync "
                         rf"\(1 parameter\(s\) differ", text), _summary(text)
    assert "on rank 1: lightcnn9" in text and "dense0_weight" in text
    assert not list(tmp_path.glob("m-0001*"))


@pytest.mark.dist
@requires_horovod
def test_training_cli_under_horovodrun(tmp_path):
    """The command line itself. horovodrun parses the whole command for abbreviations of its own options and
    refuses --network (--network-interface), so the network is given as --network-name."""
    code, ranks, text = horovodrun(
        [sys.executable, ROOT / "train_lightcnn.py", "--kv-store", "horovod", "--benchmark", 1, "--network-name",
         "lightcnn9", "--batch-size", 8, "--num-epochs", 1, "--benchmark-batches", 3, "--disp-batches", 1,
         "--model-prefix", tmp_path / "m"], tmp_path / "horovodrun.log")
    assert code == 0 and not ranks, _summary(text)
    for rank in (0, 1):
        assert f"[{rank}]<stderr>:" in text and re.search(rf"\[{rank}\]<stderr>:.*Epoch\[0\] Train-accuracy=", text)
    assert checkpoint.saved_epochs(str(tmp_path / "m")) == [1]
    assert text.count("Saved checkpoint") == 1  # rank 0 only


@requires_horovod
def test_several_devices_per_process_are_refused(tmp_path):
    proc = run_worker(tmp_path, 1, "--kv-store", "horovod", "--cpus", 2, check=False)
    assert proc.returncode == 2, proc.stderr[-2000:]
    assert proc.stderr.strip().splitlines()[-1] == ("error: --kv-store: horovod trains on one device per process (2 "
                                                    "given): start a process per GPU with horovodrun instead")


def test_network_name_is_the_network_flag():
    from lightcnn.cli.train import build_parser
    assert build_parser().parse_args(["--network-name", "lightcnn9"]).network == "lightcnn9"
