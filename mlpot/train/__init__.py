"""Training: typed configs, ``fit``, evaluation (``mlpot train`` / ``mlpot eval``).

``fit(load_config("run.yaml"))`` trains a model as the YAML file says; under
``torchrun`` every rank runs it (data parallel). ``evaluate`` measures a model's
errors, per-element force errors and equivariance error on a data set.
"""

from mlpot.train.config import ConfigError, TrainingConfig, load_config, parse_config
from mlpot.train.trainer import TrainResult, fit, latest_checkpoint

__all__ = [
    "ConfigError",
    "TrainResult",
    "TrainingConfig",
    "fit",
    "latest_checkpoint",
    "load_config",
    "parse_config",
]
