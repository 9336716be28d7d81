"""Everything a run needs before its first step: data, split, model, E0, scale."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from mlpot.checkpoint import load_model
from mlpot.datasets import group_split
from mlpot.models import Potential
from mlpot.models.base import species_to_numbers
from mlpot.train.config import TrainingConfig
from mlpot.train.data import (
    ConcatSource,
    GraphDataset,
    ReferenceColumn,
    prepare_inputs,
    reference_columns,
    sample_statistics,
    solve_references,
)
from mlpot.train.distributed import World, barrier
from mlpot.train.model_setup import finetune_model, fresh_model, symbols
from mlpot.train.report import SilentLog


@dataclass
class RunData:
    """The run's structures: one source per role, split indices and atom counts.

    Attributes:
        train, valid: graph datasets (valid may be empty).
        train_atoms: atom count of every structure of the training source.
        valid_atoms: same for the validation source.
    """

    train: GraphDataset
    valid: GraphDataset
    train_atoms: np.ndarray
    valid_atoms: np.ndarray


def open_data(cfg: TrainingConfig, world: World, cutoff: float, dtype: torch.dtype) -> RunData:
    """Open (and on rank 0 pack streamed) inputs, split by group, wrap as graph datasets."""
    d = cfg.data
    cache = d.cache_dir or cfg.run_dir / "cache"
    if world.is_main:
        prepare_inputs(d.train + d.valid, d.format, d.energy_key, cache)
    barrier(world)
    train_src = ConcatSource(prepare_inputs(d.train, d.format, d.energy_key, cache), d.format)
    train_atoms = train_src.num_atoms()
    all_idx = np.arange(len(train_src))
    if d.valid:
        valid_src = ConcatSource(prepare_inputs(d.valid, d.format, d.energy_key, cache), d.format)
        train_idx, valid_idx, valid_atoms = (
            all_idx,
            np.arange(len(valid_src)),
            valid_src.num_atoms(),
        )
    elif d.valid_fraction > 0:
        train_idx, valid_idx = group_split(
            train_src.groups(), (1 - d.valid_fraction, d.valid_fraction), seed=d.split_seed
        )
        valid_src, valid_atoms = train_src, train_atoms
    else:
        train_idx, valid_idx = all_idx, all_idx[:0]
        valid_src, valid_atoms = train_src, train_atoms
    if d.max_valid is not None:
        valid_idx = valid_idx[: d.max_valid]
    if len(train_idx) == 0:
        raise ValueError(f"data.train: no training structures in {d.train}")
    return RunData(
        GraphDataset(train_src, train_idx, cutoff, dtype),
        GraphDataset(valid_src, valid_idx, cutoff, dtype),
        train_atoms,
        valid_atoms,
    )


def model_cutoff(cfg: TrainingConfig, resume_from: Path | None) -> float:
    """The cutoff of the model the run will train (needed before the data is opened)."""
    if resume_from is not None:
        return load_model(resume_from).cutoff
    if cfg.model.from_ is not None:
        return load_model(cfg.model.from_).cutoff
    from mlpot.models import MODEL_CLASSES
    from mlpot.train.config import model_config_class

    fields = dataclasses.fields(model_config_class(MODEL_CLASSES[cfg.model.kind]))
    default = {f.name: f.default for f in fields}
    return float(cfg.model.params.get("cutoff", default.get("cutoff", 5.0)))


def build_model(
    cfg: TrainingConfig, data: RunData, dtype: torch.dtype, log: SilentLog
) -> Potential:
    """A fresh or fine-tuned model with E0 and scale set from the training data."""
    m = cfg.model
    src = data.train.source
    data_species = src.species()
    if m.from_ is not None:
        model, new = finetune_model(m, data_species)
        # keep (the default when fine-tuning): the base model's E0 of the elements it
        # knew and its charge/spin references stay; new elements are fitted
        fixed = (
            {
                c: value
                for c, value in current_references(model).items()
                if not (c.kind == "element" and c.value in new)
            }
            if cfg.data.e0 in (None, "keep")
            else {}
        )
        if new:
            log.message(f"fine-tuning {m.from_}: new elements {symbols(new)}")
    else:
        species = species_to_numbers(m.species) if m.species else data_species
        needs_stats = m.params.get("avg_num_neighbors") == "auto"
        stats = sample_statistics(data.train, cfg.train.seed) if needs_stats else None
        model = fresh_model(m, species, stats.avg_neighbors if stats else 0.0)
        fixed = {}
        if cfg.data.e0 == "keep":
            raise ValueError("data.e0: 'keep' needs a model to keep E0 from (model.from)")
    missing = set(data_species) - {int(z) for z in model.species_numbers}
    if missing:
        raise ValueError(
            f"the training data contains {symbols(sorted(missing))}, which "
            f"model.species {model.species} does not cover"
        )
    model = model.to(dtype)
    _set_e0(model, cfg, data, fixed, log)
    if m.scale == "auto":
        if m.from_ is None:
            stats = sample_statistics(data.train, cfg.train.seed)
            model.scale.fill_(stats.force_rms)
    else:
        model.scale.fill_(float(m.scale))
    log.message(
        f"model {type(model).__name__} {model.species}, "
        f"{sum(p.numel() for p in model.parameters())} parameters, "
        f"scale {float(model.scale):.4g} eV"
    )
    return model


def current_references(model: Potential) -> dict[ReferenceColumn, float]:
    """The model's reference energies (E0, and charge/spin references if it has them), eV."""
    values = {
        ReferenceColumn("element", int(z)): float(e)
        for z, e in zip(model.species_numbers, model.e0, strict=True)
    }
    if model.system_references is not None:
        charge, spin = model.system_references.values()
        values |= {ReferenceColumn("charge", q): e for q, e in charge.items()}
        values |= {ReferenceColumn("spin", s): e for s, e in spin.items()}
    return values


def _set_e0(
    model: Potential,
    cfg: TrainingConfig,
    data: RunData,
    fixed: dict[ReferenceColumn, float],
    log: SilentLog,
) -> None:
    """E0 (and the charge/spin references) given, kept or fitted on the training set."""
    columns = reference_columns(model)
    if isinstance(cfg.data.e0, dict):
        model.set_reference_energies(cfg.data.e0)
        fixed = {c: value for c, value in current_references(model).items()
                 if c.kind == "element"}
    if all(c in fixed for c in columns):
        _apply_references(model, fixed)
        return
    ata, aty, used = data.train.source.normal_equations(data.train.indices, columns)
    fitted = solve_references(ata, aty, fixed, columns)
    _apply_references(model, fitted)
    species = [int(z) for z in model.species_numbers]
    e0 = {c.value: v for c, v in fitted.items() if c.kind == "element"}
    message = (
        f"E0 fitted on {used} structures: "
        + ", ".join(f"{s} {e0[z]:.4f}" for s, z in zip(symbols(species), species, strict=True))
        + " eV"
    )
    if model.system_references is not None:
        charge, spin = model.system_references.as_dicts()
        states = [f"charge {q:+d} {e:.4f}" for q, e in sorted(charge.items())]
        states += [f"multiplicity {s} {e:.4f}" for s, e in sorted(spin.items())]
        message += f"; charge/spin references: {', '.join(states) or 'none (all neutral singlets)'}"
        message += " eV" if states else ""
    log.message(message)


def _apply_references(model: Potential, values: dict[ReferenceColumn, float]) -> None:
    species = [int(z) for z in model.species_numbers]
    model.set_reference_energies(
        torch.tensor([values[ReferenceColumn("element", z)] for z in species],
                     dtype=torch.float64)
    )
    if model.system_references is not None:
        model.system_references.set(
            {c.value: v for c, v in values.items() if c.kind == "charge"},
            {c.value: v for c, v in values.items() if c.kind == "spin"},
        )
