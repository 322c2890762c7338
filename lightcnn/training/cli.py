"""The training command (``train_lightcnn.py``): flags -> TrainConfig -> data -> fit, errors as one line.

Defaults are the original recipe (see :class:`~lightcnn.training.config.TrainConfig`). The same code runs on the CPU
when --gpus is empty, on several GPUs (one global batch split over them), and on several machines with a dist_*
kvstore (``python -m lightcnn.training.launch``).
"""
import argparse

from lightcnn import cli
from lightcnn.checkpoint import CheckpointWriteError
from lightcnn.devices import contexts_from_gpus
from lightcnn.networks import INPUT_SIZE, STORED_SIZE
from lightcnn.training import config as train_config
from lightcnn.training.distributed import DistributedError
from lightcnn.training.inputs import training_data
from lightcnn.training.loop import TrainingError, fit, open_store, writing_under


# what stops a started run on the way (exit status 1), as opposed to bad input (2)
FAILURES = (TrainingError, DistributedError, CheckpointWriteError)


def build_parser():
    parser = argparse.ArgumentParser(prog="train_lightcnn.py",
                                     description=f"Train a LightCNN on im2rec RecordIO (gray {STORED_SIZE}x{STORED_SIZE} faces, "
                                                 f"random {INPUT_SIZE}x{INPUT_SIZE} crops).",
                                     formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    train_config.add_args(parser)
    cli.add_debug_flag(parser)
    return parser


def _train(argv):
    config = train_config.from_args(build_parser().parse_args(argv))
    ctxs = contexts_from_gpus(config.gpus)  # a GPU that does not exist: said before anything is loaded
    store = open_store(config, len(ctxs))
    # the prefix is this run's before its log file is opened there: a second run on it stops without a line in it
    with writing_under(config.model_prefix, store):
        log = cli.setup_logging(f"{config.model_prefix}-train.log" if config.model_prefix else None)
        log.info("settings: %s", " ".join(f"{k}={v}" for k, v in sorted(config.to_dict().items())))
        data = training_data(config)
        if data.preprocess is not None:
            log.info("faces: %s", data.preprocess.describe())
        verify = None
        if config.verify_pairs:
            from lightcnn.training.lfw_check import make_pair_verifier
            verify = make_pair_verifier(config.verify_pairs, config.verify_root,
                                        data.preprocess or config.preprocess, logger=log)
        fit(config, data, verify=verify, logger=log, ctxs=ctxs, store=store)
    return 0


def main(argv=None):
    """``train_lightcnn.py``'s entry point; returns the exit status (1: training stopped on the way, 2: bad input,
    128 + N: stopped by signal N)."""
    return cli.run(_train, argv, failures=FAILURES)
