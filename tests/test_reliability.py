"""What clusters and disks do to a training run: kills during a checkpoint save, SIGTERM, Ctrl-C during a save, a
full disk, resumes with other settings, and user mistakes that must end in one line rather than a traceback."""
import pathlib
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

import mxnet as mx

from lightcnn import checkpoint, files
from lightcnn.checkpoint import CheckpointError
from lightcnn.cli import train as train_cli

from helpers.runs import WORKER, load_params, run_worker, worker_env







def one_save(prefix, epoch):
    """The sidecar of ``epoch`` if its params and states are the files it was saved with (else an assertion)."""
    sidecar = checkpoint.read_sidecar(prefix, epoch)
    assert files.sha256(checkpoint.params_path(prefix, epoch)) == sidecar.checksums["params"]
    assert files.sha256(checkpoint.states_path(prefix, epoch)) == sidecar.checksums["states"]
    return sidecar


# --- a checkpoint is one unit ---------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def two_epochs(worker_run):
    """A run of 2 epochs (the reference); each test damages a copy of its folder."""
    return worker_run(2)


def copy_run(source, target):
    target.mkdir(exist_ok=True)
    for path in source.iterdir():
        if path.is_file():
            (target / path.name).write_bytes(path.read_bytes())
    return str(target / "m")


def test_files_of_two_saves_never_load_together(two_epochs, tmp_path):
    """The issue's scenario by hand: epoch 2's params replaced by another save's (as a kill between the renames of
    the old design left them), its old sidecar and states kept."""
    prefix = copy_run(two_epochs, tmp_path / "run")
    other = copy_run(two_epochs, tmp_path / "other")
    pathlib.Path(checkpoint.params_path(prefix, 2)).write_bytes(pathlib.Path(checkpoint.params_path(other, 1))
                                                                 .read_bytes())
    with pytest.raises(CheckpointError, match=r"m-0002\.params does not belong to its sidecar .*saved: 1"):
        checkpoint.load_model(prefix, 2)
    proc = run_worker(tmp_path / "run", 3, "--load-epoch", 2, check=False)
    assert proc.returncode == 2 and "m-0002.params does not belong to its sidecar" in proc.stderr
    assert "Traceback" not in proc.stderr


@pytest.mark.slow
@pytest.mark.parametrize("kill_at", [1, 2, 3, 4, 5])
def test_a_kill_at_any_moment_of_the_save_leaves_one_save_or_none(two_epochs, tmp_path, kill_at):
    """Epoch 2 is saved already; a resume from epoch 1 with another rate saves epoch 2 again and is killed (like
    kill -9: no cleanup) just before the k-th file is renamed into place (symbol, params, states, sidecar, then the
    metrics). Epoch 2 is then the old save, complete, or the new one, complete, or no checkpoint at all; never a mix.
    The next run removes what the killed one left, and resuming from epoch 1 ends bit-identical to the old run."""
    run = tmp_path / "run"
    prefix = copy_run(two_epochs, run)
    old = one_save(prefix, 2)
    proc = run_worker(run, 2, "--load-epoch", 1, "--lr", "3e-4", "--kill-at-publish", kill_at, check=False)
    assert proc.returncode == 137, proc.stderr[-2000:]
    left = [p.name for p in run.iterdir() if p.name.startswith(".m-")]
    assert left, "the killed save left its staging folder or a temporary file (what the next run must clean)"
    if 2 in checkpoint.saved_epochs(prefix):
        after = one_save(prefix, 2)
        assert after.training.lr != old.training.lr and kill_at == 5  # only the complete new save is there
    else:
        assert kill_at <= 4
        with pytest.raises(CheckpointError, match="no checkpoint for epoch 2"):
            checkpoint.read_sidecar(prefix, 2)
    # the same resume again, uninterrupted: the leftovers go, and training is exact
    proc = run_worker(run, 2, "--load-epoch", 1)
    log = (run / "worker.log").read_text()
    assert f"removed {run / left[0]}, left by a run killed while saving" in log
    assert not [p for p in run.iterdir() if p.name.startswith(".m-")]
    straight = load_params(two_epochs / "final-rank0.params")
    resumed = load_params(run / "final-rank0.params")
    assert all(np.array_equal(resumed[k], straight[k]) for k in straight)


# --- signals --------------------------------------------------------------------------------------------------------

def wait_for(path, text, proc, seconds=120):
    deadline = time.time() + seconds
    while time.time() < deadline:
        if path.exists() and text in path.read_text():
            return
        if proc.poll() is not None:
            raise AssertionError(f"the worker ended ({proc.returncode}) before logging {text!r}")
        time.sleep(0.2)
    raise AssertionError(f"{text!r} never appeared in {path}")


@pytest.mark.slow
def test_sigterm_saves_the_partial_epoch_and_exits_non_zero(tmp_path):
    proc = subprocess.Popen([sys.executable, str(WORKER), str(tmp_path), "1", "--images", "400"], env=worker_env(),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    wait_for(tmp_path / "worker.log", "Batch [1-2]", proc)
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 128 + signal.SIGTERM, err[-2000:]
    log = (tmp_path / "worker.log").read_text()
    assert "interrupted (SIGTERM) during epoch 0: its partial weights are saved under" in log
    assert "interrupted (SIGTERM)" in err.splitlines()[-1]
    partial = checkpoint.read_sidecar(str(tmp_path / "m-interrupted"), 0)
    assert partial.training.partial_epoch
    assert checkpoint.saved_epochs(str(tmp_path / "m")) == []


@pytest.mark.slow
def test_ctrl_c_during_the_end_of_epoch_save_finishes_the_save_then_stops(tmp_path):
    proc = run_worker(tmp_path, 2, "--signal-at-publish", "2:SIGINT", check=False)
    assert proc.returncode == 128 + signal.SIGINT, proc.stderr[-2000:]
    assert checkpoint.saved_epochs(str(tmp_path / "m")) == [1]
    one_save(str(tmp_path / "m"), 1)  # complete: the epoch was not thrown away
    assert not (tmp_path / "m-interrupted-0001.json").exists() and not (tmp_path / "m-0002.json").exists()
    assert "interrupted (SIGINT)" in proc.stderr.splitlines()[-1]


# --- a full disk ----------------------------------------------------------------------------------------------------

@pytest.fixture
def small_disk(tmp_path):
    """A 100 MB tmpfs: room for one checkpoint of the test network (about 66 MB with its Adam states), not two."""
    mount = tmp_path / "disk"
    mount.mkdir()
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=100m", "tmpfs", str(mount)], capture_output=True,
                          text=True)
    if done.returncode != 0:
        pytest.skip(f"cannot mount a small tmpfs to fill (needs root): {done.stderr.strip()}")
    yield mount
    subprocess.run(["umount", "-l", str(mount)], check=False)


@pytest.mark.slow
def test_a_full_disk_during_the_checkpoint_is_one_line_and_loses_nothing(small_disk):
    proc = run_worker(small_disk, 2, check=False)
    assert proc.returncode == 1, proc.stderr[-2000:]
    last = proc.stderr.strip().splitlines()[-1]
    assert last.startswith("error: cannot write the optimizer states of ") and "m-0002.states" in last
    assert "No space left on device" in last and "the checkpoints saved before are intact" in last
    assert "Traceback" not in proc.stderr
    assert "cannot write the optimizer states" in (small_disk / "worker.log").read_text()
    assert checkpoint.saved_epochs(str(small_disk / "m")) == [1]
    one_save(str(small_disk / "m"), 1)
    assert sorted(p.name for p in small_disk.iterdir() if "0002" in p.name or p.name.startswith(".")) == []


# --- settings on resume ---------------------------------------------------------------------------------------------

@pytest.mark.parametrize("flag, value, message", [
    ("--mean", "127.5", "--mean: the checkpoint of epoch 1 under {prefix} was trained with mean=0.0, this run asks "
                        "for 127.5"),
    ("--mfm-type", "3/2", "--mfm-type: the checkpoint of epoch 1 under {prefix} was trained with mfm_type='2/1', "
                          "this run asks for '3/2'"),
])
def test_a_resume_must_keep_what_defines_the_network_and_its_input(two_epochs, tmp_path, flag, value, message):
    prefix = copy_run(two_epochs, tmp_path / "run")
    proc = run_worker(tmp_path / "run", 2, "--load-epoch", 1, flag, value, check=False)
    last_line = proc.stderr.strip().splitlines()[-1]
    assert proc.returncode == 2 and last_line.startswith("error: " + message.format(prefix=prefix))
    assert one_save(prefix, 2)  # untouched


def test_settings_a_resume_may_change_are_logged_and_kept_in_the_history(two_epochs, tmp_path):
    run = tmp_path / "run"
    prefix = copy_run(two_epochs, run)
    run_worker(run, 3, "--load-epoch", 2, "--lr", "5e-4")
    log = (run / "worker.log").read_text()
    assert "resuming at epoch 2 with settings changed since that checkpoint: num_epochs 2 -> 3, lr 0.001 -> 0.0005, "\
           f"model_prefix {two_epochs / 'm'} -> {prefix}" in log  # the copy lives in another folder
    (entry,) = checkpoint.read_sidecar(prefix, 3).training.history
    assert entry["epoch"] == 2 and entry["changed"]["lr"] == [0.001, 0.0005]
    assert set(entry["changed"]) == {"num_epochs", "lr", "model_prefix"}


# --- one line for a user's mistake ----------------------------------------------------------------------------------

def train(capsys, *argv):
    code = train_cli.main([str(a) for a in argv])
    err = capsys.readouterr().err
    return code, err


@pytest.mark.parametrize("argv, message", [
    (["--lr", "-1"], "--lr: must be positive (a negative rate climbs the loss); got -1.0"),
    (["--wd", "-0.1"], "--wd: must be >= 0; got -0.1"),
    (["--mom", "1"], "--mom: must be in [0, 1); got 1.0"),
    (["--optimizer", "adamm"], "--optimizer: unknown optimizer; MXNet has adadelta, adagrad, adam"),
    (["--lr-step-epochs", "abc"], "--lr-step-epochs: takes comma-separated epochs such as '30,60', got 'abc'"),
    (["--load-epoch", "0"], "--load-epoch: names a saved epoch (1 or more)"),
    (["--image-size", "100"], "--image-size: crop_size 128 must be in (0, image_size=100]"),
    (["--dropout", "1"], "--dropout: must be in [0, 1); got 1.0"),
    (["--gpus", "0"], "--gpus: asks for GPU 0 but MXNet sees no GPU"),
])
def test_values_that_cannot_be_meant_are_refused_in_one_line(capsys, tmp_path, argv, message):
    if argv[0] == "--gpus" and mx.context.num_gpus():
        pytest.skip("this machine has a GPU 0")
    code, err = train(capsys, "--benchmark", "1", "--model-prefix", tmp_path / "m", *argv)
    assert code == 2 and err.startswith("error: " + message) and err.count("\n") == 1, err
    assert not list(tmp_path.iterdir())


def test_debug_shows_the_traceback(capsys, tmp_path):
    code, err = train(capsys, "--benchmark", "1", "--model-prefix", tmp_path / "m", "--lr", "0", "--debug")
    assert code == 2 and "Traceback" in err and err.strip().endswith("--lr: must be positive (a negative rate "
                                                                     "climbs the loss); got 0.0")


@pytest.fixture(scope="module")
def packed(tmp_path_factory):
    """A tiny packed dataset (two identities of ORL-like noise faces)."""
    from lightcnn.prepare import prepare_dataset
    import cv2
    root = tmp_path_factory.mktemp("faces")
    rs = np.random.RandomState(0)
    for person in range(2):
        (root / f"p{person}").mkdir()
        for i in range(6):
            cv2.imwrite(str(root / f"p{person}" / f"{i}.png"), rs.randint(0, 256, (144, 144)).astype(np.uint8))
    out = tmp_path_factory.mktemp("rec")
    prepare_dataset(str(root), str(out), val_fraction=0, verbose=False)
    return out


def damaged_copy(packed, tmp_path, damage):
    folder = tmp_path / "rec"
    folder.mkdir()
    for name in ("train.rec", "train.idx", "classes.txt"):
        (folder / name).write_bytes((packed / name).read_bytes())
    damage(folder)
    return folder / "train.rec"


@pytest.mark.parametrize("damage, message", [
    (lambda f: (f / "train.idx").unlink(), "index file (written beside the .rec by lightcnn.prepare / im2rec) not "
                                           "found: "),
    (lambda f: (f / "train.rec").write_bytes((f / "train.rec").read_bytes()[:-500]), "the .rec is truncated"),
    (lambda f: (f / "train.rec").write_bytes(b""), "lies beyond the end of the file (0 bytes)"),
    (lambda f: (f / "classes.txt").write_text("p0\n"), "has label 1, outside [0, 1)"),
])
def test_damaged_training_files_are_one_line(capsys, packed, tmp_path, damage, message):
    rec = damaged_copy(packed, tmp_path, damage)
    code, err = train(capsys, "--data-train", rec, "--network", "lightcnn9", "--batch-size", 4, "--num-epochs", 1,
                      "--model-prefix", tmp_path / "out" / "m")
    last = err.strip().splitlines()[-1]  # after the log's settings line
    assert code == 2 and last.startswith("error: ") and message in last and "Traceback" not in err, err


def test_a_missing_checkpoint_is_one_line(capsys, tmp_path):
    code, err = train(capsys, "--benchmark", "1", "--num-epochs", 3, "--load-epoch", 2, "--model-prefix",
                      tmp_path / "m")
    assert code == 2 and err.strip().splitlines()[-1] == f"error: no checkpoint for epoch 2: {tmp_path / 'm'}-0002" \
                                                         f".json is missing (no checkpoint has this prefix)"
