"""Building the model of a run: fresh, or fine-tuned from a checkpoint (new elements, freezing)."""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

import torch
from ase.data import chemical_symbols

from mlpot.checkpoint import load_model
from mlpot.models import MODEL_CLASSES, Potential
from mlpot.models.base import species_to_numbers
from mlpot.train.config import ModelConfig


def fresh_model(cfg: ModelConfig, species: Sequence[int], avg_neighbors: float) -> Potential:
    """A new model of ``cfg.kind`` over ``species`` (``avg_num_neighbors: auto`` resolved)."""
    params = dict(cfg.params)
    if params.get("avg_num_neighbors") == "auto":
        params["avg_num_neighbors"] = round(avg_neighbors, 3)
    return MODEL_CLASSES[cfg.kind](species=list(species), **params)  # type: ignore[return-value]  # the kind names a Potential class (config-checked)


def finetune_model(cfg: ModelConfig, data_species: Sequence[int]) -> tuple[Potential, list[int]]:
    """The base model of ``cfg.from_``, widened to any new elements.

    Species-indexed weights (embedding rows, per-element couplings) of known elements
    are copied; a new element's rows start as the mean over the known elements.
    Hyper-parameters come from the checkpoint; ``params`` may not change them.
    Returns the model and the atomic numbers that are new.
    """
    base = load_model(cfg.from_)  # type: ignore[arg-type]  # cfg.model.from_ is set on the fine-tuning path
    changed = sorted(set(cfg.params) - set(REBUILDABLE))
    if changed:
        raise ValueError(f"model.params cannot change a fine-tuned model's architecture "
                         f"(got {changed}; only {list(REBUILDABLE)} may change); it comes "
                         f"from {cfg.from_}")
    if cfg.params:
        base = rebuild_model(base, **cfg.params)  # type: ignore[arg-type]  # load_model may return a forecaster; training takes Potentials (issue 16 extends this)
    old = [int(z) for z in base.species_numbers]
    wanted = species_to_numbers(list(cfg.species or []) + list(data_species) + old)  # type: ignore[operator]  # species symbols or numbers
    new = [z for z in wanted if z not in old]
    if not new:
        return base.train(), []  # type: ignore[return-value]  # load_model may return a forecaster; training takes Potentials (issue 16 extends this)
    config = dataclasses.replace(base.config, species=tuple(wanted))
    model = type(base)(**dataclasses.asdict(config)).to(base.dtype)
    rows = torch.tensor([wanted.index(z) for z in old])
    with torch.no_grad():
        target = dict(model.named_parameters()) | dict(model.named_buffers())
        for name, value in list(base.named_parameters()) + list(base.named_buffers()):
            if name in ("species_numbers", "species_lookup"):
                continue
            _copy_widened(target[name], value, rows, name)
    return model.train(), new  # type: ignore[return-value]  # load_model may return a forecaster; training takes Potentials (issue 16 extends this)


#: Hyper-parameters that change no parameter's shape or meaning (only derived buffers).
REBUILDABLE = ("grid_oversample",)


def rebuild_model(model: Potential, **changes: object) -> Potential:
    """The same weights in a model built with some hyper-parameters changed.

    Only :data:`REBUILDABLE` settings may change: e.g. ``grid_oversample`` rebuilds the
    spherical-grid projection buffers (a finer grid lowers the grid MLP's aliasing,
    hence the rotation error) while every learned parameter is copied unchanged.
    """
    bad = sorted(set(changes) - set(REBUILDABLE))
    if bad:
        raise ValueError(f"cannot rebuild with {bad}: only {list(REBUILDABLE)} may change")
    config = dataclasses.replace(model.config, **changes)
    new = type(model)(**dataclasses.asdict(config)).to(model.dtype)
    target = new.state_dict()
    kept = {k: v for k, v in model.state_dict().items()
            if k in target and target[k].shape == v.shape and not _derived_buffer(k)}
    missing = [k for k, _ in new.named_parameters() if k not in kept]
    if missing:
        raise ValueError(f"rebuild changed parameter shapes: {missing}")
    new.load_state_dict(kept, strict=False)
    return new.train(model.training)


def _derived_buffer(name: str) -> bool:
    """Buffers computed from the config (grid projections), never learned or fitted."""
    return name.rsplit(".", 1)[-1] in ("to_grid", "from_grid", "l_of_m")


def _copy_widened(dst: torch.Tensor, src: torch.Tensor, rows: torch.Tensor, name: str) -> None:
    """Copy ``src`` into ``dst``; a dimension that grew (the species axis) maps by ``rows``."""
    if dst.shape == src.shape:
        dst.copy_(src)
        return
    dims = [d for d in range(src.ndim) if dst.shape[d] != src.shape[d]]
    if len(dims) != 1 or src.shape[dims[0]] != len(rows):
        raise ValueError(f"cannot widen {name} from {tuple(src.shape)} to {tuple(dst.shape)}")
    d = dims[0]
    mean = src.mean(dim=d, keepdim=True)
    dst.copy_(mean.expand_as(dst))
    dst.index_copy_(d, rows, src)


def freeze(model: Potential, prefixes: Sequence[str]) -> list[str]:
    """Stop gradients of parameters whose names start with any prefix; returns them.

    Raises ``ValueError`` for a prefix that matches nothing (a typo would silently
    train everything).
    """
    frozen = []
    names = [n for n, _ in model.named_parameters()]
    for prefix in prefixes:
        hits = [n for n in names if n == prefix or n.startswith(prefix + ".")]
        if not hits:
            raise ValueError(
                f"model.freeze: {prefix!r} matches no parameter; parameters: "
                f"{sorted({n.split('.')[0] for n in names})}"
            )
        frozen += hits
    for name, p in model.named_parameters():
        if name in frozen:
            p.requires_grad_(False)
    return sorted(set(frozen))


def symbols(numbers: Sequence[int]) -> list[str]:
    return [chemical_symbols[int(z)] for z in numbers]
