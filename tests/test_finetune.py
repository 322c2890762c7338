"""Fine-tuning (--pretrained PREFIX[:EPOCH]): another checkpoint's trunk and embedding with a fresh classifier for
this data, the trunk frozen or slowed on request, recorded in the sidecar, and a resume as exact as ever."""

import numpy as np
import pytest

from lightcnn import checkpoint

from helpers.runs import load_params, run_worker


@pytest.fixture(scope="module")
def pretrained(worker_run):
    """A 4-class model of one epoch: what the fine-tuning starts from."""
    return worker_run(1)


def trunk_and_head(names):
    return [n for n in names if not n.startswith("lightcnn9_dense0_")]  # all but the classifier


def test_fine_tuning_starts_from_the_trunk_and_embedding_with_a_fresh_classifier(pretrained, tmp_path):
    run_worker(tmp_path, 1, "--classes", 3, "--pretrained", f"{pretrained / 'm'}:1", "--freeze-trunk",
               "--lr", "1e-2")
    before, after = load_params(pretrained / "m-0001.params"), load_params(tmp_path / "m-0001.params")
    assert after["lightcnn9_dense0_weight"].shape == (3, 256) and before["lightcnn9_dense0_weight"].shape == (4, 256)
    trunk = [n for n in trunk_and_head(after) if not n.startswith("lightcnn9_mfmdense0_")]
    assert trunk and all(np.array_equal(after[n], before[n]) for n in trunk)  # frozen: bit for bit
    assert not np.array_equal(after["lightcnn9_mfmdense0_dense0_weight"],
                              before["lightcnn9_mfmdense0_dense0_weight"])  # the embedding learned
    sidecar = checkpoint.read_sidecar(str(tmp_path / "m"), 1)
    assert sidecar.model.num_classes == 3 and sidecar.origin["kind"] == "fine-tuned"
    source = sidecar.origin["pretrained"]
    assert source["prefix"] == str(pretrained / "m") and source["epoch"] == 1 and source["num_classes"] == 4
    assert source["params_sha256"] == checkpoint.read_sidecar(str(pretrained / "m"), 1).checksums["params"]
    assert sidecar.training.config["freeze_trunk"] is True
    assert "fine-tuning from the pretrained checkpoint" in (tmp_path / "worker.log").read_text()


def test_a_fine_tuning_resumes_exactly(pretrained, tmp_path):
    flags = ["--classes", 3, "--pretrained", pretrained / "m", "--pretrained-lr-mult", 0.1]
    run_worker(tmp_path / "straight", 2, *flags)
    run_worker(tmp_path / "resumed", 1, *flags)
    run_worker(tmp_path / "resumed", 2, "--load-epoch", 1, *flags)
    straight, resumed = load_params(tmp_path / "straight" / "final-rank0.params"), \
        load_params(tmp_path / "resumed" / "final-rank0.params")
    assert all(np.array_equal(straight[n], resumed[n]) for n in straight)


@pytest.mark.parametrize("flags, message", [
    (["--mfm-type", "3/2"], "--mfm-type: the pretrained checkpoint {prefix} (epoch 1) is mfm_type='2/1', this run "
                            "asks for '3/2'"),
    (["--mean", "127.5"], "--mean: the pretrained checkpoint {prefix} (epoch 1) was trained on inputs with mean=0.0 "
                          "(its sidecar), this run prepares 127.5"),
    (["--freeze-trunk"], "--freeze-trunk: needs a pretrained checkpoint to freeze"),
])
def test_a_pretrained_checkpoint_of_another_network_or_input_is_refused(pretrained, tmp_path, flags, message):
    if flags != ["--freeze-trunk"]:
        flags = flags + ["--pretrained", pretrained / "m"]
    proc = run_worker(tmp_path, 1, "--classes", 3, *flags, check=False)
    assert proc.returncode == 2, proc.stderr[-2000:]
    assert proc.stderr.strip().splitlines()[-1].startswith("error: " + message.format(prefix=pretrained / "m"))
