"""Training a LightCNN: settings (config) and named recipes, the loop and its after-epoch hooks, its learning-rate
schedule, the distributed exchange, metrics, verification during training, and the parameter-server launcher.
``train_lightcnn.py`` is its command line (:mod:`lightcnn.cli.train`)."""
from lightcnn.training.config import ConfigError, TrainConfig
from lightcnn.training.loop import EpochState, FitResult, TrainingData, TrainingError, fit

__all__ = ["ConfigError", "EpochState", "FitResult", "TrainConfig", "TrainingData", "TrainingError", "fit"]
