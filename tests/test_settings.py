"""Training settings: numbers that cannot be meant (not finite) are refused, and a resume compares the values a run
trains with (the network's own dropout when none is given), not the flags as typed."""
import os
import pathlib
import subprocess
import sys

import pytest

from lightcnn import align, checkpoint
from lightcnn.checkpoint import Sidecar
from lightcnn.images import Preprocess
from lightcnn.model import ModelSpec, default_dropout
from lightcnn.cli import train as train_cli
from lightcnn.training.config import ConfigError, TrainConfig
from lightcnn.training.loop import _check_resume

ROOT = pathlib.Path(__file__).resolve().parents[1]

# small enough that a run the check let through would end in seconds (and fail the test), not train for hours
SMALL_RUN = ["--benchmark", "1", "--network", "lightcnn4", "--num-classes", "2", "--batch-size", "2",
             "--benchmark-batches", "1", "--num-epochs", "1"]


def train(capsys, *argv):
    code = train_cli.main([str(a) for a in argv])
    return code, capsys.readouterr().err


@pytest.mark.parametrize("flag, value", [
    ("--lr", "inf"), ("--lr", "nan"), ("--wd", "inf"), ("--wd", "nan"), ("--mom", "nan"), ("--lr-factor", "nan"),
    ("--dropout", "nan"), ("--xavier-magnitude", "inf"), ("--pretrained-lr-mult", "inf"), ("--mean", "nan"),
    ("--scale", "inf"),
])
def test_numbers_that_are_not_finite_are_refused_in_one_line(capsys, tmp_path, flag, value):
    code, err = train(capsys, *SMALL_RUN, "--model-prefix", tmp_path / "m", flag, value)
    assert code == 2 and err == f"error: {flag}: must be a finite number; got {float(value)!r}\n", err
    assert not list(tmp_path.iterdir())  # refused before the prefix is taken or anything is written


def test_every_float_setting_is_checked_for_finiteness():
    """A float setting added later is covered too: the check goes over the fields, not a list."""
    for field in ("lr", "lr_factor", "wd", "mom", "dropout", "xavier_magnitude", "pretrained_lr_mult", "mean",
                  "scale"):
        with pytest.raises(ConfigError, match="must be a finite number") as refused:
            TrainConfig(benchmark=True, **{field: float("-inf")}).check()
        assert refused.value.field == field


@pytest.mark.parametrize("name", ["min_size", "max_outside", "pad", "min_confidence"])
def test_face_policy_numbers_that_are_not_finite_are_refused(name):
    with pytest.raises(align.AlignError, match=r"is out of range \(finite"):
        align.check_policy(**{name: float("inf")})


# --- the dropout a resume compares ----------------------------------------------------------------------------------

def test_each_network_trains_with_its_own_dropout_when_none_is_given():
    assert default_dropout("LightCNN-4") == 0.7 and default_dropout("lightcnn9") == 0.5
    assert ModelSpec("lightcnn4", 2).effective_dropout == 0.7
    assert ModelSpec("lightcnn4", 2, dropout=0.0).effective_dropout == 0.0
    assert ModelSpec("lightcnn4", 2).build().dropout._rate == 0.7
    assert ModelSpec("lightcnn9", 2, dropout=0.2).build().dropout._rate == 0.2


@pytest.mark.parametrize("saved, asked", [(None, 0.7), (0.7, None), (0.7, 0.7), (None, None)])
def test_a_resume_with_the_networks_own_dropout_said_or_not_is_the_same_run(saved, asked):
    checkpoint_of = Sidecar(ModelSpec("lightcnn4", 2, dropout=saved), Preprocess(), epoch=1)
    config = TrainConfig(network="lightcnn4", benchmark=True, dropout=asked, load_epoch=1)
    _check_resume(checkpoint_of, config.model_spec(2), config.preprocess, config)  # no ConfigError


@pytest.mark.parametrize("saved, asked", [(None, 0.5), (0.5, None), (0.0, None)])
def test_a_resume_with_another_dropout_names_both_rates(saved, asked):
    checkpoint_of = Sidecar(ModelSpec("lightcnn4", 2, dropout=saved), Preprocess(), epoch=1)
    config = TrainConfig(network="lightcnn4", benchmark=True, dropout=asked, load_epoch=1)
    with pytest.raises(ConfigError, match=f"was trained with dropout={0.7 if saved is None else saved!r}, this run "
                                          f"asks for {0.7 if asked is None else asked!r}"):
        _check_resume(checkpoint_of, config.model_spec(2), config.preprocess, config)


@pytest.mark.slow
def test_resuming_lightcnn4_with_dropout_0_7_continues_and_records_no_change(capsys, tmp_path):
    """The issue's case: trained without --dropout, resumed with --dropout 0.7 (LightCNN-4's own)."""
    prefix = tmp_path / "m"
    code, err = train(capsys, *SMALL_RUN, "--model-prefix", prefix)
    assert code == 0, err[-2000:]
    code, err = train(capsys, *SMALL_RUN, "--model-prefix", prefix, "--load-epoch", 1, "--num-epochs", 2,
                      "--dropout", "0.7")
    assert code == 0, err[-2000:]
    assert "resuming at epoch 1 with settings changed since that checkpoint: num_epochs 1 -> 2\n" in err
    (entry,) = checkpoint.read_sidecar(str(prefix), 2).training.history
    assert entry["changed"] == {"num_epochs": [1, 2]}


# --- named recipes --------------------------------------------------------------------------------------------------

def test_a_recipe_is_where_the_flags_start_and_a_flag_given_overrides_it():
    import dataclasses

    from lightcnn.training.recipes import SEED, SMALL_DATA
    assert SEED == TrainConfig()
    assert (SMALL_DATA.mean, SMALL_DATA.optimizer, SMALL_DATA.lr, SMALL_DATA.batch_size,
            SMALL_DATA.xavier_factor_type) == (127.5, "adam", 3e-4, 16, "in")
    config = train_cli.parse_config(["--recipe", "small-data", "--benchmark", "1", "--lr", "1e-3"])
    assert config == dataclasses.replace(SMALL_DATA, benchmark=True, lr=1e-3)
    assert train_cli.parse_config(["--benchmark", "1"]) == dataclasses.replace(SEED, benchmark=True)
    # what the tools hand to train_lightcnn.py: the flags that make a config from a recipe give it back
    config = dataclasses.replace(config, network="lightcnn9", mirror=False, lr_step_epochs=(6,), dropout=0.0)
    for recipe in ("seed", "small-data"):
        assert train_cli.parse_config(train_cli.command_flags(config, recipe)) == config


def test_the_training_command_sets_one_temporary_workspace_before_mxnet_loads():
    """MXNet reads MXNET_CPU_TEMP_COPY once, when it loads: the training command (train_lightcnn.py and ``python -m
    lightcnn train`` alike) must set it before any of its imports loads MXNet, and leave a value the user set."""
    spy = ("import builtins, os\n"
           "real, seen = builtins.__import__, []\n"
           "def spy(name, *args, **kwargs):\n"
           "    if name.split('.')[0] == 'mxnet' and not seen:\n"
           "        seen.append(os.environ.get('MXNET_CPU_TEMP_COPY'))\n"
           "    return real(name, *args, **kwargs)\n"
           "builtins.__import__ = spy\n"
           "import lightcnn.cli.train\n"
           "print(seen)\n")
    env = {k: v for k, v in os.environ.items() if k != "MXNET_CPU_TEMP_COPY"}
    env["PYTHONPATH"] = str(ROOT)
    done = subprocess.run([sys.executable, "-c", spy], capture_output=True, text=True, env=env, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["['1']"]
    done = subprocess.run([sys.executable, "-c", spy], capture_output=True, text=True, timeout=120,
                          env=dict(env, MXNET_CPU_TEMP_COPY="4"))
    assert done.stdout.split() == ["['4']"], done.stderr
