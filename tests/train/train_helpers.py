"""Helpers for the training tests: a tiny model and config."""

from __future__ import annotations

from pathlib import Path

TINY_MODEL = {
    "cutoff": 4.0,
    "channels": 4,
    "lmax": 1,
    "hidden_lmax": 1,
    "correlation": 2,
    "num_layers": 2,
    "num_knots": 6,
    "readout_hidden": 4,
    "grid_oversample": 0,
    "avg_num_neighbors": 20.0,
}


def tiny_config(run_dir: Path, data_path: Path, **sections) -> dict:
    """A raw config dict for a float64 run of a tiny model; ``sections`` update it."""
    raw = {
        "run_dir": str(run_dir),
        "data": {"train": [str(data_path)], "batch_size": 4, "valid_fraction": 0.2},
        "model": {"params": dict(TINY_MODEL), "scale": 1.0},
        "loss": {"energy": 1.0, "forces": 1.0, "stress": 10.0},
        "optimizer": {"lr": 5e-3, "warmup_steps": 2, "ema_decay": 0.9},
        "train": {"epochs": 1, "dtype": "float64", "seed": 0, "threads": 1},
        "log": {"progress": False, "tensorboard": False},
    }
    for key, value in sections.items():
        raw.setdefault(key, {}).update(value) if isinstance(value, dict) else raw.__setitem__(
            key, value
        )
    return raw
