"""mlpot: molecular simulation driven by machine-learned interatomic potentials."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("mlpot")
except PackageNotFoundError:  # running from a source tree without installation
    __version__ = "0.0.0+unknown"

from mlpot.calculator import MLPotCalculator
from mlpot.checkpoint import load_model, save_model, shipped_models
from mlpot.graph import AtomicGraph, collate
from mlpot.neighbors import with_neighbors

__all__ = [
    "AtomicGraph",
    "MLPotCalculator",
    "__version__",
    "collate",
    "load_model",
    "save_model",
    "shipped_models",
    "with_neighbors",
]
