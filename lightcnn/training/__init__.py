"""Training a LightCNN: settings (config), the loop, its learning-rate schedule, the distributed exchange, metrics,
verification during training, and the parameter-server launcher. ``train_lightcnn.py`` is its command line
(:mod:`lightcnn.training.cli`)."""
from lightcnn.training.config import ConfigError, TrainConfig
from lightcnn.training.loop import FitResult, TrainingData, TrainingError, fit

__all__ = ["ConfigError", "FitResult", "TrainConfig", "TrainingData", "TrainingError", "fit"]
