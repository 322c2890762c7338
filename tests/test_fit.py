"""The training loop: the learning-rate rule, checkpoints, exact resume, NaN handling, atomic saves, bad input,
and dist_sync on 127.0.0.1."""
import errno
import json
import os
import pathlib
import subprocess
import sys

import numpy as np
import pytest

import mxnet as mx

from lightcnn import checkpoint, files, init
from lightcnn.checkpoint import CheckpointError, Sidecar
from lightcnn.images import Preprocess
from lightcnn.model import ModelSpec
from lightcnn.training.schedule import Plateau, lr_at, parse_steps, server_lr_schedule

from helpers.runs import WORKER, load_params, run_worker, worker_env

ROOT = pathlib.Path(__file__).resolve().parents[1]








# --- the learning-rate rule ----------------------------------------------------------------------------------------

def test_lr_rule_of_the_seed_recipe():
    """--lr 1e-4 --lr-step-epochs 0,100: 1e-5 from the first epoch, 1e-6 from epoch 100."""
    steps = parse_steps("0,100")
    assert steps == (0, 100)
    assert lr_at(0, 1e-4, 0.1, steps) == pytest.approx(1e-5)
    assert lr_at(99, 1e-4, 0.1, steps) == pytest.approx(1e-5)
    assert lr_at(100, 1e-4, 0.1, steps) == pytest.approx(1e-6)
    assert lr_at(250, 1e-4, 0.1, steps) == pytest.approx(1e-6)
    assert lr_at(5, 1e-3, 0.5, []) == 1e-3
    assert lr_at(5, 1e-3, 0.1, [2], plateau_drops=1) == pytest.approx(1e-5)


def test_lr_steps_parse_errors():
    with pytest.raises(ValueError, match="comma-separated epochs"):
        parse_steps("10;20")
    assert parse_steps("") == () and parse_steps(" 3, 5") == (3, 5)


def test_plateau_drops_after_patience_and_survives_a_resume():
    plateau = Plateau(2)
    drops = [plateau.update(v) for v in (1.0, 0.9, 0.95, 0.97, 0.8, 0.85)]
    assert drops == [False, False, False, True, False, False]
    resumed = Plateau(2, **plateau.state())
    assert resumed.update(0.9) is True and resumed.drops == 2


# --- checkpoints --------------------------------------------------------------------------------------------------

SPEC = ModelSpec("lightcnn9", 3)


def _tiny_trained():
    net = SPEC.build()
    net.initialize(init.xavier())
    net.hybridize()
    net(mx.nd.zeros((1, 1, 128, 128)))
    trainer = mx.gluon.Trainer(net.collect_params(), "adam", {"learning_rate": 1e-3})
    return net, trainer


def test_atomic_save_interrupted_leaves_previous_checkpoint(tmp_path, monkeypatch):
    net, trainer = _tiny_trained()
    prefix = str(tmp_path / "m")
    checkpoint.save(net, trainer, prefix, Sidecar(SPEC, Preprocess(), epoch=1))
    before = {p: pathlib.Path(p).read_bytes() for p in (checkpoint.params_path(prefix, 1),
                                                        checkpoint.symbol_path(prefix))}
    # change the weights, then fail in the middle of the next save of the same epoch
    for param in net.collect_params().values():
        param.set_data(param.data() + 1)

    def broken(*_):
        raise OSError(errno.ENOSPC, "No space left on device (simulated)")
    monkeypatch.setattr(trainer, "save_states", broken)
    with pytest.raises(checkpoint.CheckpointWriteError, match="cannot write the optimizer states .*No space left"):
        checkpoint.save(net, trainer, prefix, Sidecar(SPEC, Preprocess(), epoch=1))
    for path, content in before.items():
        assert pathlib.Path(path).read_bytes() == content
    assert sorted(os.listdir(tmp_path)) == ["m-0001.json", "m-0001.params", "m-0001.states", "m-symbol.json"]
    loaded, sidecar = checkpoint.load_model(prefix)
    assert sidecar.epoch == 1 and sidecar.model == SPEC
    assert loaded.features(mx.nd.zeros((1, 1, 128, 128))).shape == (1, 256)


def test_missing_checkpoint_is_a_clear_error(tmp_path):
    with pytest.raises(CheckpointError, match="no checkpoint for epoch 3"):
        checkpoint.read_sidecar(str(tmp_path / "m"), 3)
    with pytest.raises(CheckpointError, match="no complete checkpoint"):
        checkpoint.last_epoch(str(tmp_path / "m"))


# --- the sidecar: one versioned format, old ones still load -------------------------------------------------------

FIXTURES = ROOT / "tests" / "data"


@pytest.mark.parametrize("name", ["sidecar_v1_trained.json", "sidecar_v1_untrained.json"])
def test_sidecars_of_the_first_release_still_load(tmp_path, name):
    """Format 1, written by the release before the Sidecar class (copied from its `make demo` output)."""
    (tmp_path / "m-0008.json").write_text((FIXTURES / name).read_text())
    sidecar = checkpoint.read_sidecar(str(tmp_path / "m"), 8)
    assert sidecar.model == ModelSpec("lightcnn9", 100, mfm_type="2/1", dropout=0.0)
    assert sidecar.preprocess == Preprocess(mean=127.5, fit="stretch", align=None)  # what that release did
    if "untrained" in name:
        assert sidecar.origin == {"kind": "initialised", "seed": 0,
                                  "init": {"xavier_factor_type": "in", "xavier_magnitude": 3.0}}
        assert sidecar.training is None
    else:
        assert sidecar.training.config["lr_step_epochs"] == "6" and sidecar.training.plateau["drops"] == 0
        assert sidecar.training.metrics["val_accuracy"] == 0.58 and sidecar.training.optimizer_states_saved
    assert sidecar.checksums == {}  # format 1 had none: its files load unverified


def test_a_newer_or_unknown_sidecar_format_is_refused(tmp_path):
    prefix = str(tmp_path / "m")
    record = json.loads((FIXTURES / "sidecar_v1_trained.json").read_text())
    for version, message in ((3, "written by a newer release of lightcnn"), ("2", "format '2' is unknown"),
                             (None, "format None is unknown")):
        (tmp_path / "m-0008.json").write_text(json.dumps(dict(record, format_version=version)))
        with pytest.raises(CheckpointError, match=message):
            checkpoint.read_sidecar(prefix, 8)
    (tmp_path / "m-0008.json").write_text(json.dumps({"format_version": 2, "epoch": 8}))
    with pytest.raises(CheckpointError, match="not a valid sidecar of format 2"):
        checkpoint.read_sidecar(prefix, 8)


def test_sidecar_round_trip_and_checksums(tmp_path):
    net, trainer = _tiny_trained()
    prefix = str(tmp_path / "m")
    sidecar = Sidecar(SPEC, Preprocess(mean=127.5), epoch=2, classes="/x/classes.txt", origin={"kind": "trained"})
    written = checkpoint.save(net, trainer, prefix, sidecar)
    read = checkpoint.read_sidecar(prefix, 2)
    assert read == written and set(read.checksums) == {"params", "states"}
    assert read.checksums["params"] == files.sha256(checkpoint.params_path(prefix, 2))


# --- the after-epoch hooks ----------------------------------------------------------------------------------------

def test_a_hook_sees_every_epoch_before_the_built_in_ones(tmp_path):
    """A caller's hook runs after each epoch's training, before validation, metrics and that epoch's checkpoint."""
    from lightcnn.training import TrainConfig, TrainingData, fit

    def batches(epoch, batch_size, num_parts, part_index):
        images = np.random.RandomState(epoch).uniform(size=(4, 1, 128, 128)).astype(np.float32)
        return mx.io.NDArrayIter(images, np.arange(4) % 2, batch_size)

    seen = []

    def hook(state):
        seen.append((state.epoch, state.lr, state.row, checkpoint.saved_epochs(str(tmp_path / "m"))))

    config = TrainConfig(network="lightcnn4", benchmark=True, batch_size=4, num_epochs=2, lr=1e-3,
                         lr_step_epochs=(1,), disp_batches=0, model_prefix=str(tmp_path / "m"))
    result = fit(config, TrainingData(batches, 2), ctxs=[mx.cpu()], hooks=[hook])
    assert seen == [(0, 1e-3, None, []), (1, pytest.approx(1e-4), None, [1])]
    assert [row["epoch"] for row in result.rows] == [1, 2] and checkpoint.saved_epochs(str(tmp_path / "m")) == [1, 2]


# --- whole runs (subprocesses, so a resume really is a new process) -----------------------------------------------

@pytest.fixture(scope="module")
def straight_run(worker_run):
    return worker_run(2)


def test_run_writes_every_checkpoint_file(straight_run):
    names = set(os.listdir(straight_run))
    for epoch in (1, 2):
        for suffix in ("params", "states", "json"):
            assert f"m-{epoch:04d}.{suffix}" in names
    assert {"m-symbol.json", "m-metrics.csv", "m-curve.png", "worker.log"} <= names
    sidecar = checkpoint.read_sidecar(str(straight_run / "m"), 2)
    assert sidecar.model == ModelSpec("lightcnn9", 4) and sidecar.epoch == 2
    assert json.loads((straight_run / "m-0002.json").read_text())["input_shape"] == [1, 128, 128]
    assert sidecar.training.lr == pytest.approx(1e-4)  # --lr 1e-3 --lr-step-epochs 1: epoch index 1 runs at 1e-4
    log = (straight_run / "worker.log").read_text()
    assert "Speed:" in log and "samples/sec" in log and "Epoch[1] Train-accuracy=" in log
    lines = (straight_run / "m-metrics.csv").read_text().splitlines()
    assert lines[0].startswith("epoch,lr,train_loss") and len(lines) == 3
    imported = mx.gluon.SymbolBlock.imports(str(straight_run / "m-symbol.json"), ["data"],
                                            str(straight_run / "m-0002.params"))
    logits, emb = imported(mx.nd.zeros((2, 1, 128, 128)))
    assert logits.shape == (2, 4) and emb.shape == (2, 256)


def test_resume_in_a_new_process_is_bit_identical(straight_run, tmp_path):
    run_worker(tmp_path, 1)
    run_worker(tmp_path, 2, "--load-epoch", "1")
    straight = load_params(straight_run / "final-rank0.params")
    resumed = load_params(tmp_path / "final-rank0.params")
    assert straight.keys() == resumed.keys()
    for name in straight:
        np.testing.assert_array_equal(resumed[name], straight[name], err_msg=name)
    # and training did move the weights
    first = load_params(tmp_path / "m-0001.params")
    assert any(not np.array_equal(first[k], straight[k]) for k in straight)


def test_nan_stops_with_epoch_and_batch_and_keeps_last_checkpoint(tmp_path):
    run_worker(tmp_path, 1)
    proc = run_worker(tmp_path, 2, "--load-epoch", "1", "--nan-at-batch", "1", check=False)
    assert proc.returncode != 0
    assert "non-finite loss" in proc.stderr + proc.stdout and "epoch 1, batch 1" in proc.stderr + proc.stdout
    assert checkpoint.saved_epochs(str(tmp_path / "m")) == [1]


def test_resume_of_another_network_or_missing_epoch_fails_before_training(tmp_path):
    run_worker(tmp_path, 1)
    sidecar = tmp_path / "m-0001.json"
    record = json.loads(sidecar.read_text())
    sidecar.write_text(json.dumps(dict(record, model=dict(record["model"], num_classes=7))))
    proc = run_worker(tmp_path, 2, "--load-epoch", "1", check=False)
    assert proc.returncode == 2 and "--num-classes: the checkpoint of epoch 1" in proc.stderr
    assert "num_classes=7, this run asks for 4" in proc.stderr
    proc = run_worker(tmp_path, 3, "--load-epoch", "2", check=False)
    assert proc.returncode != 0 and "no checkpoint for epoch 2" in proc.stderr


@pytest.mark.skipif(mx.context.num_gpus() > 0, reason="this machine has a GPU 0")
def test_missing_gpu_is_a_clear_error_before_training(tmp_path):
    from lightcnn.devices import contexts_from_gpus
    with pytest.raises(ValueError, match="GPU 0"):
        contexts_from_gpus("0")
    with pytest.raises(ValueError, match="comma-separated"):
        contexts_from_gpus("a,b")
    proc = subprocess.run([sys.executable, str(ROOT / "train_lightcnn.py"), "--benchmark", "1", "--gpus", "0",
                           "--model-prefix", str(tmp_path / "m")], env=worker_env(), capture_output=True, text=True,
                          timeout=120)
    assert proc.returncode == 2 and "--gpus: asks for GPU 0 but MXNet sees no GPU" in proc.stderr
    assert "Traceback" not in proc.stderr and not list(tmp_path.iterdir())


@pytest.mark.dist
def test_dist_sync_two_workers_on_loopback_end_identical(tmp_path):
    """One scheduler, one server, two workers on 127.0.0.1 (lightcnn.launch); each worker reads its own shard."""
    from lightcnn.training.launch import launch
    dist_dir = tmp_path / "dist"
    dist_dir.mkdir()
    command = [sys.executable, str(WORKER), str(dist_dir), "1", "--kv-store", "dist_sync"]
    with open(tmp_path / "launch.log", "w") as log:
        codes = launch(command, num_workers=2, num_servers=1, port=_free_port(), timeout=240,
                       env=worker_env(threads=1), stdout=log, stderr=subprocess.STDOUT)
    assert codes == [0, 0], (tmp_path / "launch.log").read_text()[-3000:]
    rank0 = load_params(dist_dir / "final-rank0.params")
    rank1 = load_params(dist_dir / "final-rank1.params")
    assert not _mismatches(rank0, rank1), _mismatches(rank0, rank1)
    assert sorted(p.name for p in dist_dir.glob("m-*.params")) == ["m-0001.params"]  # only rank 0 checkpoints
    # control: one process on shard 0 alone, without the store, ends elsewhere
    control_dir = tmp_path / "control"
    control_dir.mkdir()
    run_worker(control_dir, 1, "--part", "0", "--batch-size", "4")
    control = load_params(control_dir / "final-rank0.params")
    assert any(not np.array_equal(control[k], rank0[k]) for k in rank0)


def _mismatches(a, b):
    """Which parameters differ between two workers, and how (so a rare failure says what kind of race it was)."""
    found = []
    for name in a:
        differ = a[name] != b[name]
        if differ.any():
            found.append(f"{name}: {differ.mean():.2%} of {differ.size} elements differ, max |diff| "
                         f"{np.abs(a[name] - b[name]).max():.3g}, max |w| {np.abs(a[name]).max():.3g} vs "
                         f"{np.abs(b[name]).max():.3g}")
    return found


def _free_port():
    import socket
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.slow
def test_verification_during_training_on_real_lfw_pairs(shared_data, tmp_path):
    """--verify-pairs/--verify-root: the 10-fold accuracy of the current model after every epoch, in the log and
    the metrics CSV; a pair whose image is missing is reported, not silently dropped."""
    from lightcnn.protocols import lfw_pairs as lfw
    pairs = lfw.read_pairs(str(shared_data / "lfw" / "pairs.txt"))
    small = [p for k in range(10) for kind in (True, False)
             for p in [q for q in pairs if q.fold == k and q.is_same == kind][:3]]
    lfw.write_pairs_txt(small, str(tmp_path / "pairs.txt"))
    proc = subprocess.run(
        [sys.executable, str(ROOT / "train_lightcnn.py"), "--benchmark", "1", "--benchmark-batches", "2",
         "--num-epochs", "1", "--batch-size", "8", "--network", "lightcnn9", "--model-prefix", str(tmp_path / "m"),
         "--verify-pairs", str(tmp_path / "pairs.txt"), "--verify-root", str(shared_data / "lfw_gray144")],
        env=worker_env(), capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "Verification-accuracy=" in proc.stderr
    assert "1 of 60 pairs" in proc.stderr and "Aaron_Tippin/Aaron_Tippin_0001.jpg" in proc.stderr
    header, row = (tmp_path / "m-metrics.csv").read_text().splitlines()[:2]
    accuracy = float(row.split(",")[header.split(",").index("verify_accuracy")])
    assert 0.0 <= accuracy <= 1.0


@pytest.mark.dist
def test_dist_sync_workers_that_drift_apart_stop_before_the_checkpoint(tmp_path):
    """Every epoch the dist_sync workers compare their weights with rank 0's; rank 1 nudges its fc weight after
    training, so both workers stop with an error naming it, and no checkpoint of that epoch is written."""
    from lightcnn.training.launch import launch
    command = [sys.executable, str(WORKER), str(tmp_path), "1", "--kv-store", "dist_sync", "--desync-rank", "1"]
    with open(tmp_path / "launch.log", "w") as log:
        codes = launch(command, num_workers=2, num_servers=1, port=_free_port(), timeout=240,
                       env=worker_env(threads=1), stdout=log, stderr=subprocess.STDOUT)
    text = (tmp_path / "launch.log").read_text()
    assert codes[0] != 0 and codes[1] != 0, text[-3000:]
    assert text.count("weights are out of sync (1 parameter(s) differ") == 2, text[-3000:]
    assert "on rank 1: lightcnn9_" in text and "dense0_weight" in text
    assert not list(tmp_path.glob("m-0001*")), "a checkpoint of the diverged epoch was written"


@pytest.mark.dist
def test_dist_sync_nan_on_one_worker_stops_every_worker(tmp_path):
    """A NaN in rank 1's data alone: both workers stop at that batch with the message (rank 0 does not wait forever
    for gradients rank 1 will never send), and no checkpoint is written."""
    from lightcnn.training.launch import launch
    command = [sys.executable, str(WORKER), str(tmp_path), "1", "--kv-store", "dist_sync", "--nan-at-batch", "1",
               "--nan-rank", "1"]
    with open(tmp_path / "launch.log", "w") as log:
        codes = launch(command, num_workers=2, num_servers=1, port=_free_port(), timeout=240,
                       env=worker_env(threads=1), stdout=log, stderr=subprocess.STDOUT)
    text = (tmp_path / "launch.log").read_text()
    assert codes[0] != 0 and codes[1] != 0, text[-3000:]
    assert "non-finite loss (nan) at epoch 0, batch 1" in text, text[-3000:]
    assert "non-finite loss on another worker at epoch 0, batch 1" in text, text[-3000:]
    assert not list(tmp_path.glob("m-0001*"))


def test_prune_keeps_the_newest_checkpoints_up_to_the_one_just_saved(tmp_path):
    prefix = str(tmp_path / "m")
    for epoch in (1, 2, 3, 4, 9):  # 9: left by another run under the same prefix
        for path in (checkpoint.params_path(prefix, epoch), checkpoint.states_path(prefix, epoch),
                     checkpoint.sidecar_path(prefix, epoch)):
            pathlib.Path(path).write_text("x")
    assert checkpoint.prune(prefix, 0, 4) == []
    assert checkpoint.prune(prefix, 2, 4) == [1, 2]
    assert checkpoint.saved_epochs(prefix) == [3, 4, 9]
    assert not any(pathlib.Path(p).exists() for p in (checkpoint.params_path(prefix, 1),
                                                      checkpoint.states_path(prefix, 2)))


def test_keep_checkpoints_leaves_only_the_last_epoch(tmp_path):
    run_worker(tmp_path, 2, "--keep-checkpoints", "1")
    assert sorted(p.name for p in tmp_path.glob("m-0*")) == ["m-0002.json", "m-0002.params", "m-0002.states"]
    assert "Removed the checkpoints of epoch(s) 1 (keeping the newest 1)" in (tmp_path / "worker.log").read_text()


def test_server_schedule_follows_the_epoch_rule_in_server_updates():
    """dist_async: the servers see update counts, not epochs; 10 updates per epoch here."""
    schedule = server_lr_schedule(1e-4, 0.1, [0, 100], 0, 10)
    assert schedule(1) == pytest.approx(lr_at(0, 1e-4, 0.1, [0, 100]))  # 1e-5 from the start
    assert schedule(1000) == pytest.approx(1e-5)
    assert schedule(1001) == pytest.approx(1e-6)  # the first update of epoch 100
    resumed = server_lr_schedule(1e-4, 0.1, [0, 100], 60, 10)
    assert resumed(1) == pytest.approx(1e-5) and resumed(401) == pytest.approx(1e-6)
    assert server_lr_schedule(1e-4, 0.1, [0, 100], 100, 10) is None  # nothing left to change


@pytest.mark.dist
def test_dist_async_trains_checkpoints_without_states_and_resumes(tmp_path):
    """dist_async: Gluon updates on the servers; rank 0's checkpoint says the optimizer states stayed there, and a
    resume from it continues (states afresh, said in the log)."""
    from lightcnn.training.launch import launch
    for epochs, extra in (("1", []), ("2", ["--load-epoch", "1"])):
        command = [sys.executable, str(WORKER), str(tmp_path), epochs, "--kv-store", "dist_async", *extra]
        with open(tmp_path / "launch.log", "w") as log:
            codes = launch(command, num_workers=2, num_servers=1, port=_free_port(), timeout=240,
                           env=worker_env(threads=1), stdout=log, stderr=subprocess.STDOUT)
        assert codes == [0, 0], (tmp_path / "launch.log").read_text()[-3000:]
    assert sorted(p.name for p in tmp_path.glob("m-0*")) == ["m-0001.json", "m-0001.params", "m-0002.json",
                                                           "m-0002.params"]
    assert checkpoint.read_sidecar(str(tmp_path / "m"), 2).training.optimizer_states_saved is False
    assert "optimizer states start afresh on the servers" in (tmp_path / "launch.log").read_text()
