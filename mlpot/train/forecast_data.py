"""Data and model set-up of a forecaster run (``model.kind: TrajCastForecaster``).

A forecaster trains on (frame, next frame) pairs of reference trajectories stored
every forecast interval (:class:`mlpot.datasets.forecast.ForecastPairs`, written by
:mod:`mlpot.datasets.reference.trajectory`). Pairs are split by trajectory (the
store's ``group``), so no trajectory straddles training and validation; the output
scales (:meth:`~mlpot.models.TrajCastForecaster.set_output_scales`) are the RMS of
the targets over the training split only.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Protocol, cast

import numpy as np
import torch
from torch.utils.data import ConcatDataset

from mlpot.checkpoint import load_model
from mlpot.datasets import group_split
from mlpot.datasets.errors import DataFormatError
from mlpot.datasets.forecast import ForecastPairs
from mlpot.models import MODEL_CLASSES, TrajCastForecaster
from mlpot.models.base import species_to_numbers
from mlpot.neighbors import with_neighbors
from mlpot.train.config import ConfigError, LossConfig, TrainingConfig

FORECASTER = "TrajCastForecaster"
_SAMPLE = 50  # pairs read to measure the mean neighbour count


class MessageLog(Protocol):
    """Anything that takes one-line run messages (a run log, a trainer)."""

    def message(self, text: str) -> None: ...


def pair_stores(data: ConcatDataset) -> list[ForecastPairs]:
    """The :class:`ForecastPairs` stores a concatenated data set is made of."""
    return cast("list[ForecastPairs]", data.datasets)


def is_forecaster_run(cfg: TrainingConfig) -> bool:
    """True when the config trains a forecaster (``model.kind`` or a ``model.from``
    checkpoint of one)."""
    if cfg.model.from_ is not None:
        return isinstance(load_model(cfg.model.from_), TrajCastForecaster)
    return MODEL_CLASSES[cfg.model.kind] is TrajCastForecaster


#: ``loss`` settings that only a forecaster's training reads, and those only a potential's.
FORECASTER_LOSS = (
    "displacement", "velocity", "position_noise", "velocity_noise", "noise_scale",
    "unroll_steps", "mass_exponent",
)
POTENTIAL_LOSS = ("energy", "forces", "stress", "kind", "huber_delta")


def _changed(loss: LossConfig, names: tuple[str, ...]) -> list[str]:
    """``loss.NAME: value`` of each of ``names`` set to something other than its default."""
    default = LossConfig()
    return [f"loss.{n}: {getattr(loss, n)!r}" for n in names
            if getattr(loss, n) != getattr(default, n)]


def check_potential_config(cfg: TrainingConfig) -> None:
    """Forecaster-only loss settings in a potential's config are errors, not silently
    ignored (a config copied from a forecaster recipe keeps its ``unroll_steps``...)."""
    problems = [f"{s} is for {FORECASTER} training; this run trains a potential "
                "(remove the key)" for s in _changed(cfg.loss, FORECASTER_LOSS)]
    if problems:
        raise ConfigError("invalid potential config\n" + "\n".join(f"  {p}" for p in problems))


def check_forecast_config(cfg: TrainingConfig) -> None:
    """Settings that mean nothing for a forecaster are errors, not silently ignored."""
    problems = [f"{s} is a potential's loss setting; a forecaster's loss is the normalised "
                "MSE of Δx and v (remove the key)" for s in _changed(cfg.loss, POTENTIAL_LOSS)]
    if cfg.equivariance.mode != "none":
        problems.append(
            f"equivariance.mode: {cfg.equivariance.mode} is for non-equivariant "
            f"potentials; {FORECASTER} is equivariant by construction (use none)"
        )
    if cfg.data.e0 is not None:
        problems.append("data.e0: a forecaster has no energy (remove the key)")
    if cfg.model.freeze:
        problems.append("model.freeze: not supported for forecasters")
    if problems:
        raise ConfigError("invalid forecaster config\n" + "\n".join(f"  {p}" for p in problems))


@dataclass
class ForecastData:
    """Training and validation pairs.

    Attributes:
        train, valid: the pair datasets (valid may be the same object as train).
        train_idx, valid_idx: pair indices of each split.
        train_atoms, valid_atoms: atom count of every pair, by pair index.
        forecast_fs: the interval of all pairs, fs.
    """

    train: ConcatDataset
    valid: ConcatDataset
    train_idx: np.ndarray
    valid_idx: np.ndarray
    train_atoms: np.ndarray
    valid_atoms: np.ndarray
    forecast_fs: float

    def species(self) -> list[int]:
        """Sorted atomic numbers of the training pairs."""
        found: set[int] = set()
        for pairs in pair_stores(self.train):
            found |= {int(z) for z in np.unique(pairs.store.read_array("atomic_numbers"))}
        return sorted(found)


def open_pairs(
    paths: list[Path], role: str, dtype: torch.dtype, steps: int = 1
) -> ConcatDataset:
    """Pair (``steps`` = 1) or window datasets of trajectory stores; anything else is a
    :class:`ConfigError`."""
    parts = []
    for path in paths:
        if path.suffix != ".h5":
            raise ConfigError(
                f"data.{role}: {path} is not a trajectory store; {FORECASTER} trains on "
                f"(frame, next frame) pairs of a packed .h5 store written by "
                f"mlpot.datasets.reference.trajectory (examples/trajcast_reference.py)"
            )
        try:
            parts.append(ForecastPairs(path, dtype=dtype, steps=steps))
        except DataFormatError as err:
            raise ConfigError(
                f"data.{role}: {path} cannot train a forecaster ({err}); it needs "
                f"trajectories with velocities stored every forecast interval "
                f"(examples/trajcast_reference.py), not a potential data set"
            ) from None
    intervals = {p.forecast_fs for p in parts}
    if len(intervals) != 1:
        raise ConfigError(
            f"data.{role}: stores of different forecast intervals {sorted(intervals)} fs"
        )
    return ConcatDataset(parts)


def _groups(data: ConcatDataset) -> np.ndarray:
    return np.concatenate(
        [[f"{k}:{g}" for g in p.groups()] for k, p in enumerate(pair_stores(data))]
    ).astype(object)


def _atoms(data: ConcatDataset) -> np.ndarray:
    return np.concatenate([p.atoms_per_pair() for p in pair_stores(data)])


def open_forecast_data(cfg: TrainingConfig, dtype: torch.dtype) -> ForecastData:
    """Open the stores and split the pairs by trajectory (or take ``data.valid``)."""
    d = cfg.data
    train = open_pairs(d.train, "train", dtype, cfg.loss.unroll_steps)
    all_idx = np.arange(len(train))
    if d.valid:
        valid = open_pairs(d.valid, "valid", dtype)
        train_idx, valid_idx = all_idx, np.arange(len(valid))
    elif d.valid_fraction > 0:
        train_idx, valid_idx = group_split(
            _groups(train), (1 - d.valid_fraction, d.valid_fraction), seed=d.split_seed
        )
        valid = train
    else:
        valid, train_idx, valid_idx = train, all_idx, all_idx[:0]
    if d.max_valid is not None:
        valid_idx = valid_idx[: d.max_valid]
    if len(train_idx) == 0:
        raise ConfigError(f"data.train: no training pairs left in {d.train} after the split")
    fs_train = pair_stores(train)[0].forecast_fs
    fs_valid = pair_stores(valid)[0].forecast_fs
    if fs_valid != fs_train:
        raise ConfigError(
            f"data.valid: forecast interval {fs_valid:g} fs differs from "
            f"data.train's {fs_train:g} fs"
        )
    return ForecastData(train, valid, train_idx, valid_idx, _atoms(train), _atoms(valid), fs_train)


def split_rms(data: ForecastData, residual: bool) -> tuple[float, float]:
    """RMS of the targets (Δx Å, v Å/fs) over the training split (pair-count weighted)."""
    starts = np.concatenate([[0], np.cumsum([len(p) for p in pair_stores(data.train)])])
    dx2 = v2 = weight = 0.0
    for k, pairs in enumerate(pair_stores(data.train)):
        local = data.train_idx[(data.train_idx >= starts[k]) & (data.train_idx < starts[k + 1])]
        if len(local) == 0:
            continue
        rx, rv = pairs.rms(residual=residual, indices=local - starts[k])
        n = float(_atoms_sum(pairs, local - starts[k]))
        dx2, v2, weight = dx2 + n * rx**2, v2 + n * rv**2, weight + n
    return float(np.sqrt(dx2 / weight)), float(np.sqrt(v2 / weight))


def _atoms_sum(pairs: ForecastPairs, local: np.ndarray) -> int:
    return int(pairs.atoms_per_pair()[local].sum())


def build_forecaster(
    cfg: TrainingConfig, data: ForecastData, dtype: torch.dtype, log: MessageLog
) -> TrajCastForecaster:
    """A fresh (or fine-tuned) forecaster whose Δt is the data's and whose output
    scales are the training split's RMS."""
    m = cfg.model
    data_species = data.species()
    if m.from_ is not None:
        if m.params:
            raise ConfigError("model.params: a fine-tuned forecaster keeps its architecture")
        loaded = load_model(m.from_)
        if not isinstance(loaded, TrajCastForecaster):
            raise ConfigError(
                f"model.from: {m.from_} is a {type(loaded).__name__}, not a TrajCastForecaster"
            )
        model = loaded.train()
    else:
        params = dict(m.params)
        given = params.get("forecast_fs")
        if given is not None and abs(float(given) - data.forecast_fs) > 1e-9:
            raise ConfigError(
                f"model.params.forecast_fs: {given} fs, but the pairs of {cfg.data.train} "
                f"are {data.forecast_fs:g} fs apart"
            )
        params["forecast_fs"] = data.forecast_fs
        if params.get("input_velocity_rms", "auto") == "auto":
            params["input_velocity_rms"] = split_rms(data, residual=False)[1]
        if params.get("avg_num_neighbors") == "auto":
            params["avg_num_neighbors"] = round(_mean_neighbours(data, params, cfg.train.seed), 3)
        species = species_to_numbers(m.species) if m.species else data_species
        model = TrajCastForecaster(species=species, **params)
    if abs(model.forecast_fs - data.forecast_fs) > 1e-9:
        raise ConfigError(
            f"model.from: {m.from_} forecasts {model.forecast_fs:g} fs, the data "
            f"{data.forecast_fs:g} fs"
        )
    missing = set(data_species) - {int(z) for z in model.species_numbers}
    if missing:
        raise ConfigError(
            f"the training pairs contain Z={sorted(missing)}, which the forecaster's "
            f"species {model.species} do not cover"
        )
    model = model.to(dtype)
    if m.from_ is None:
        model.set_output_scales(*split_rms(data, model.config.residual))
    log.message(
        f"forecaster {model.species}, Δt {model.forecast_fs:g} fs, "
        f"{sum(p.numel() for p in model.parameters())} parameters, output RMS "
        f"Δx {float(model.displacement_rms):.4g} Å, v {float(model.velocity_rms):.4g} Å/fs, "
        f"input v {model.config.input_velocity_rms or float(model.velocity_rms):.4g} Å/fs"
    )
    return model


def _mean_neighbours(data: ForecastData, params: dict, seed: int) -> float:
    cutoff = float(params.get("cutoff", 5.0))
    rng = np.random.default_rng(seed)
    pick = rng.choice(data.train_idx, size=min(_SAMPLE, len(data.train_idx)), replace=False)
    edges = atoms = 0
    for k in pick:
        graph = with_neighbors(data.train[int(k)].graph, cutoff)
        edges, atoms = edges + graph.require_edges()[0].shape[1], atoms + graph.num_atoms
    return max(edges / max(atoms, 1), 1.0)
