"""What the potential trainer and the forecaster trainer share: progress, resumable
checkpoints, exact resume and the end of a run.

A resumable checkpoint (``checkpoints/step-XXXXXXXX.pt``, written with
:func:`mlpot.save_model`) holds the raw weights plus the training state: the
progress (epoch, batches done in it, global step, best score, seconds), the optimiser,
EMA and plateau states, the torch CPU and CUDA RNG states, the metrics history and
whatever extra state a run adds (the potential trainer's equivariance transform).
With batches a pure function of (seed, epoch), restoring all of it makes a resumed
run repeat the uninterrupted one step for step.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from mlpot.checkpoint import save_model
from mlpot.models import Potential, TrajCastForecaster
from mlpot.train.optim import EMA, Plateau


@dataclass
class Progress:
    """Where the run stands (saved in resumable checkpoints)."""

    epoch: int = 0
    step_in_epoch: int = 0
    global_step: int = 0
    best: float = float("inf")
    seconds: float = 0.0


@dataclass
class TrainResult:
    """What :func:`mlpot.train.fit` produced.

    Attributes:
        run_dir: the run folder.
        best: ``best.pt`` (EMA weights with the lowest validation loss).
        final: ``final.pt`` (EMA weights at the end).
        model: the final model (EMA weights), in eval mode.
        history: one metrics row per validation (as in ``metrics.csv``).
        steps: optimiser steps done in total.
    """

    run_dir: Path
    best: Path
    final: Path
    model: Potential | TrajCastForecaster
    history: list[dict[str, float]] = field(default_factory=list)
    steps: int = 0


@dataclass
class Optimisation:
    """The optimiser-side objects a resumable checkpoint saves and restores."""

    optimizer: torch.optim.Optimizer
    ema: EMA | None
    plateau: Plateau


def latest_checkpoint(run_dir: Path) -> Path:
    """The newest resumable checkpoint of a run."""
    files = sorted((run_dir / "checkpoints").glob("step-*.pt"))
    if not files:
        raise FileNotFoundError(f"{run_dir}/checkpoints: no resumable checkpoint to resume from")
    return files[-1]


def training_state(
    progress: Progress, opt: Optimisation, history: list[dict[str, float]], **extra: Any
) -> dict:
    """Everything besides the weights that a resumed run needs (``extra``: more keys)."""
    return {
        "progress": vars(progress).copy(),
        "optimizer": opt.optimizer.state_dict(),
        "ema": opt.ema.state_dict() if opt.ema else None,
        "plateau": opt.plateau.state_dict(),
        "torch_rng": torch.get_rng_state(),
        "cuda_rng": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
        "history": list(history),
        **extra,
    }


def restore_training_state(state: dict, opt: Optimisation) -> list[dict[str, float]]:
    """Load ``state`` (from :func:`training_state`) into ``opt`` and the RNGs; returns
    the metrics history. Checkpoints written before the CUDA RNG was saved resume too."""
    opt.optimizer.load_state_dict(state["optimizer"])
    if opt.ema is not None and state["ema"] is not None:
        opt.ema.load_state_dict(state["ema"])
    opt.plateau.load_state_dict(state["plateau"])
    torch.set_rng_state(state["torch_rng"])
    if state.get("cuda_rng") and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda_rng"])
    return list(state["history"])


def save_resumable(
    model: Potential | TrajCastForecaster, run_dir: Path, step: int, state: dict, keep_last: int
) -> Path:
    """Write ``checkpoints/step-<step>.pt`` (weights + ``state``) and keep only the
    newest ``keep_last`` of them."""
    folder = run_dir / "checkpoints"
    path = save_model(model, folder / f"step-{step:08d}.pt", training_state=state)
    for old in sorted(folder.glob("step-*.pt"))[:-keep_last]:
        old.unlink()
    return path


def finish(
    final: Potential | TrajCastForecaster,
    run_dir: Path,
    history: list[dict[str, float]],
    steps: int,
    is_main: bool,
) -> TrainResult:
    """Write ``final.pt`` (and ``best.pt`` when no validation wrote one) on the main
    rank and return the run's result (a copy of ``final`` in eval mode)."""
    best = run_dir / "best.pt"
    if is_main:
        save_model(final, run_dir / "final.pt")
        if not best.exists():
            save_model(final, best)
    return TrainResult(
        run_dir, best, run_dir / "final.pt", copy.deepcopy(final).eval(), history, steps
    )
