"""One writer per output: two runs on one --model-prefix (or one .mat, one .onnx) never write together.

The holder is always another real process: flock is per open file, so a lock taken by the test process itself would
prove nothing about two runs.
"""
import os
import re
import signal
import subprocess
import sys
import time

import pytest

import mxnet as mx

from lightcnn import checkpoint, files, init, locks
from lightcnn.cli import extract
from lightcnn.interop import convert, export
from lightcnn.images import Preprocess
from lightcnn.model import ModelSpec
from lightcnn.cli import train as train_cli

from helpers.runs import ROOT, WORKER, worker_env

# a process that takes the lock of argv[1] as the commands do, says so, and keeps it until it is killed
HOLDER = ("import sys, time\n"
          "from lightcnn import locks\n"
          "locks.acquire(sys.argv[1], under=sys.argv[2] == 'under')\n"
          "print('held', flush=True)\n"
          "time.sleep(600)\n")


@pytest.fixture
def holder():
    """holder(target, under=True) -> a process holding target's lock (killed at the end of the test)."""
    procs = []

    def start(target, under=True):
        proc = subprocess.Popen([sys.executable, "-c", HOLDER, str(target), "under" if under else "file"],
                                env=worker_env(), stdout=subprocess.PIPE, text=True)
        procs.append(proc)
        assert proc.stdout.readline().strip() == "held"
        return proc
    yield start
    for proc in procs:
        proc.kill()
        proc.wait()


def busy_line(target, pid, under=True):
    """The pattern of the one line a refused command prints."""
    what, other = (f"under {target}", "prefix") if under else (str(target), "file name")
    return re.escape(f"another run is writing {what} (pid {pid}, started ") + r"[-0-9]+ [:0-9]+" + \
        re.escape(f"); wait for it or choose another {other}")


# --- the lock itself ------------------------------------------------------------------------------------------------

def test_a_held_prefix_is_refused_naming_the_holder_and_kill_9_leaves_no_stale_lock(holder, tmp_path):
    prefix = tmp_path / "out" / "m"
    proc = holder(prefix)
    with pytest.raises(locks.OutputBusy, match=busy_line(prefix, proc.pid)) as refused:
        locks.acquire(prefix, field="model_prefix")
    assert refused.value.pid == proc.pid and refused.value.field == "model_prefix"
    proc.send_signal(signal.SIGKILL)  # no cleanup: the kernel releases the lock, the file stays
    proc.wait()
    assert (tmp_path / "out" / "m.lock").exists()
    with locks.hold(prefix):
        assert (tmp_path / "out" / "m.lock").read_text().split()[0] == str(os.getpid())


def try_elsewhere(target):
    """'free' or 'busy': what another process finds when it tries to take ``target``."""
    code = ("import sys\nfrom lightcnn import locks\ntry:\n    locks.acquire(sys.argv[1])\n    print('free')\n"
            "except locks.OutputBusy:\n    print('busy')\n")
    return subprocess.run([sys.executable, "-c", code, str(target)], env=worker_env(), capture_output=True,
                          text=True, check=True).stdout.strip()


def test_a_nested_hold_shares_the_first_and_the_last_release_frees_it(tmp_path):
    """train_lightcnn.py holds the prefix and calls fit, which holds it too (for callers of fit alone)."""
    prefix = tmp_path / "m"
    with locks.hold(prefix):
        with locks.hold(prefix):
            assert try_elsewhere(prefix) == "busy"
        assert try_elsewhere(prefix) == "busy"  # the outer hold still has it
    assert try_elsewhere(prefix) == "free"


# --- the commands ---------------------------------------------------------------------------------------------------

def test_a_training_on_a_held_prefix_exits_2_at_once_without_touching_its_log(holder, capsys, tmp_path):
    prefix = tmp_path / "m"
    proc = holder(prefix)
    start = time.time()
    code = train_cli.main(["--benchmark", "1", "--network", "lightcnn4", "--model-prefix", str(prefix)])
    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1, err
    assert re.fullmatch("error: --model-prefix: " + busy_line(prefix, proc.pid) + "\n", err), err
    assert time.time() - start < 10
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m.lock"]  # no log, no checkpoint


def test_the_extractor_on_a_held_out_exits_2_before_extracting(holder, capsys, tmp_path):
    out = tmp_path / "features.mat"
    proc = holder(out, under=False)
    argv = ["--model-prefix", str(tmp_path / "none"), "--image-root", str(tmp_path), "--out", str(out)]
    assert extract.main(argv) == 2
    err = capsys.readouterr().err.strip().splitlines()[-1]
    assert re.fullmatch("error: --out: " + busy_line(out, proc.pid, under=False), err), err
    assert not out.exists()
    proc.kill()
    proc.wait()
    assert extract.main(argv) == 2  # free again: it goes on, to the next problem of this command
    assert "another run" not in capsys.readouterr().err


@pytest.fixture(scope="module")
def small_net():
    mx.random.seed(3)
    spec = ModelSpec("lightcnn4", 4)
    net = spec.build()
    net.initialize(init.xavier())
    net.hybridize()
    net(mx.nd.zeros((1,) + net.input_shape))
    return spec, net


def test_a_conversion_into_a_prefix_a_run_writes_under_is_refused(holder, small_net, tmp_path):
    spec, net = small_net
    prefix = tmp_path / "m"
    proc = holder(prefix)
    source = {"format": "pytorch", "network": spec.network, "num_classes": spec.num_classes}
    with pytest.raises(locks.OutputBusy, match=busy_line(prefix, proc.pid)) as refused:
        convert.write_checkpoint(net, source, str(prefix))
    assert refused.value.field == "out" and checkpoint.saved_epochs(str(prefix)) == []


def test_an_export_onto_an_onnx_another_run_writes_is_refused(holder, small_net, tmp_path):
    pytest.importorskip("onnx")
    spec, net = small_net
    prefix = str(tmp_path / "m")
    checkpoint.save(net, None, prefix, checkpoint.Sidecar(spec, Preprocess(), epoch=1))
    target = tmp_path / "m.onnx"
    proc = holder(target, under=False)
    with pytest.raises(locks.OutputBusy, match=busy_line(target, proc.pid, under=False)) as refused:
        export.export_onnx(prefix, str(target))
    assert refused.value.field == "onnx" and not target.exists()


# --- two real trainings ---------------------------------------------------------------------------------------------

SMALL_RUN = ["--benchmark", "1", "--network", "lightcnn4", "--num-classes", "2", "--batch-size", "2",
             "--benchmark-batches", "2", "--disp-batches", "1"]


def beside(prefix, suffix):
    """PREFIX + suffix, e.g. the training log beside a prefix."""
    return prefix.parent / (prefix.name + suffix)


def train_command(prefix, *extra):
    return [sys.executable, str(ROOT / "train_lightcnn.py"), *SMALL_RUN, "--model-prefix", str(prefix),
            *map(str, extra)]


def start_training(prefix, *extra):
    """A training process, returned once it has logged its first batch (it holds the prefix then)."""
    proc = subprocess.Popen(train_command(prefix, *extra), env=worker_env(threads=1), stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, text=True)
    log = beside(prefix, "-train.log")
    deadline = time.time() + 120
    while not (log.exists() and "Batch [" in log.read_text()):
        assert proc.poll() is None, proc.communicate()[1][-2000:]
        assert time.time() < deadline, "the first training never logged a batch"
        time.sleep(0.1)
    return proc


@pytest.mark.slow
def test_a_second_training_on_the_prefix_exits_2_and_the_first_completes_intact(tmp_path):
    """The issue's scenario: `--lr 3e-4` running, `--lr 1e-4 --seed 5` started on the same prefix. The first is
    paused (SIGSTOP) while the second tries, so the two surely overlap whatever the machine's speed."""
    prefix = tmp_path / "m"
    first = start_training(prefix, "--lr", "3e-4", "--num-epochs", 2)
    first.send_signal(signal.SIGSTOP)
    try:
        start = time.time()
        second = subprocess.run(train_command(prefix, "--lr", "1e-4", "--seed", 5, "--num-epochs", 2),
                                env=worker_env(threads=1), capture_output=True, text=True, timeout=120)
        seconds = time.time() - start
    finally:
        first.send_signal(signal.SIGCONT)
    assert second.returncode == 2, second.stderr[-2000:]
    assert re.fullmatch("error: --model-prefix: " + busy_line(prefix, first.pid) + "\n", second.stderr), \
        second.stderr
    assert seconds < 60  # at once: no data, no network (the time is Python and MXNet starting)
    _, err = first.communicate(timeout=300)
    assert first.returncode == 0, err[-2000:]
    assert checkpoint.saved_epochs(str(prefix)) == [1, 2]
    for epoch in (1, 2):
        sidecar = checkpoint.read_sidecar(str(prefix), epoch)  # every file is the first run's, whole
        assert files.sha256(checkpoint.params_path(str(prefix), epoch)) == sidecar.checksums["params"]
        assert files.sha256(checkpoint.states_path(str(prefix), epoch)) == sidecar.checksums["states"]
        assert sidecar.training.config["lr"] == 3e-4 and sidecar.training.config["seed"] == 0
    checkpoint.load_model(str(prefix), 2)
    log = beside(prefix, "-train.log").read_text()
    assert log.count("settings:") == 1 and "seed=5" not in log and "another run" not in log


@pytest.mark.slow
def test_after_kill_9_of_a_training_the_next_run_on_its_prefix_trains(tmp_path):
    prefix = tmp_path / "m"
    first = start_training(prefix, "--num-epochs", 1)
    first.kill()
    first.communicate()
    assert beside(prefix, ".lock").exists()  # the file stays; the lock went with the process
    again = subprocess.run(train_command(prefix, "--num-epochs", 1), env=worker_env(threads=1),
                           capture_output=True, text=True, timeout=300)
    assert again.returncode == 0, again.stderr[-2000:]
    assert checkpoint.saved_epochs(str(prefix)) == [1]


# --- distributed runs -----------------------------------------------------------------------------------------------

def _free_port():
    import socket
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.dist
@pytest.mark.slow
def test_every_dist_sync_worker_stops_when_rank_0_finds_the_prefix_held(holder, tmp_path):
    """Only rank 0 writes checkpoints, so only rank 0 takes the lock; the other worker must stop with it rather than
    wait for a rank 0 that has gone (the job would hang)."""
    from lightcnn.training.launch import launch
    proc = holder(tmp_path / "m")
    command = [sys.executable, str(WORKER), str(tmp_path), "1", "--kv-store", "dist_sync"]
    with open(tmp_path / "launch.log", "w") as log:
        codes = launch(command, num_workers=2, num_servers=1, port=_free_port(), timeout=120,
                       env=worker_env(threads=1), stdout=log, stderr=subprocess.STDOUT)
    text = (tmp_path / "launch.log").read_text()
    assert codes == [2, 2], text[-3000:]
    assert re.search("error: --model-prefix: " + busy_line(tmp_path / "m", proc.pid), text), text[-3000:]
    assert f"error: --model-prefix: another run is writing under {tmp_path / 'm'} (pid {proc.pid}, as rank 0 " \
           f"found); wait for it or choose another prefix" in text, text[-3000:]
    assert checkpoint.saved_epochs(str(tmp_path / "m")) == []


@pytest.mark.dist
@pytest.mark.slow
def test_every_horovod_worker_stops_when_rank_0_finds_the_prefix_held(holder, tmp_path):
    from test_horovod import HOROVOD_MISSING, _summary, horovodrun
    if HOROVOD_MISSING:
        pytest.skip(HOROVOD_MISSING)
    proc = holder(tmp_path / "m")
    code, ranks, text = horovodrun([sys.executable, WORKER, tmp_path, 1, "--kv-store", "horovod"],
                                   tmp_path / "horovodrun.log")
    assert code != 0, _summary(text)
    assert re.search(r"\[0\]<stderr>:error: --model-prefix: " + busy_line(tmp_path / "m", proc.pid), text), \
        _summary(text)
    assert f"[1]<stderr>:error: --model-prefix: another run is writing under {tmp_path / 'm'} (pid {proc.pid}, as " \
           f"rank 0 found)" in text, _summary(text)
    assert checkpoint.saved_epochs(str(tmp_path / "m")) == []
