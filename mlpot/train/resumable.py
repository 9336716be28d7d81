"""What the potential trainer and the forecaster trainer share: the epoch loop,
progress, the optimiser step's common tail, resumable checkpoints, exact resume and
the end of a run.

:class:`ResumableRun` is the base of both trainers (:class:`mlpot.train.trainer.PotentialRun`,
:class:`mlpot.train.forecast.ForecastRun`): a subclass builds the model, data and
optimiser in its ``__init__`` and supplies the training data, one optimiser step
(:meth:`ResumableRun._step`), validation and its metrics-row columns and log.

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
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Generic, TypeVar

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset

from mlpot.checkpoint import save_model
from mlpot.models import Potential, TrajCastForecaster
from mlpot.train.config import TrainingConfig
from mlpot.train.distributed import World, sum_gradients
from mlpot.train.optim import EMA, Plateau, make_optimizer, scheduled_lr
from mlpot.train.sampler import epoch_batches, shard_batch


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


@dataclass
class TrainSplit:
    """The training data a run draws batches from.

    Attributes:
        dataset: items by global index (graphs or forecast samples).
        indices: ``[n]`` global indices of the training split.
        atoms: atom count of every item, by global index.
        collate: list of items → one batch.
    """

    dataset: Dataset
    indices: np.ndarray
    atoms: np.ndarray
    collate: Callable[[list[Any]], Any]


ModelT = TypeVar("ModelT", Potential, TrajCastForecaster)


class ResumableRun(Generic[ModelT]):
    """A training run's loop and bookkeeping, shared by both trainers.

    A subclass's ``__init__`` sets the attributes annotated below (``total_steps`` from
    :meth:`_planned_steps`); it defines :meth:`_train_split`, :meth:`_to_device`,
    :meth:`_step`, :meth:`validate`, :meth:`_epoch_metrics` and :meth:`_log_epoch`, and may
    add :meth:`_start_epoch`, :meth:`_log_step` and :meth:`_extra_state`.
    """

    cfg: TrainingConfig
    world: World
    device: torch.device
    run_dir: Path
    progress: Progress
    model: ModelT
    eval_model: ModelT
    params: list[torch.nn.Parameter]
    optimizer: torch.optim.Optimizer
    ema: EMA | None
    plateau: Plateau
    history: list[dict[str, float]]
    total_steps: int
    #: How many loss terms :meth:`_step` returns.
    num_terms: int = 1

    # -- what a subclass supplies -------------------------------------------------------
    def _train_split(self) -> TrainSplit:
        raise NotImplementedError

    def _to_device(self, batch: Any) -> Any:
        raise NotImplementedError

    def _step(self, batch: Any | None) -> torch.Tensor:
        """One optimiser step on this rank's share (None: none); returns the global
        batch's loss terms ``[k]`` (float64, summed over ranks), the loss first."""
        raise NotImplementedError

    def validate(self) -> dict[str, float]:
        """Metrics of the deployed weights on the validation split (summed over ranks;
        empty without one); ``"loss"`` is the score the best checkpoint is chosen by."""
        raise NotImplementedError

    def _epoch_metrics(
        self, train: torch.Tensor, rate: float, valid: dict[str, float]
    ) -> dict[str, float]:
        """The metrics-row columns after epoch/step/lr/seconds (``train``: mean loss terms
        of the epoch's steps, ``rate``: structures/s, ``valid``: :meth:`validate`)."""
        raise NotImplementedError

    def _log_epoch(self, row: dict[str, float], score: float) -> None:
        """Show and write one metrics row (``score``: the validation loss, else the
        training loss)."""
        raise NotImplementedError

    def _start_epoch(self, steps: int) -> None:
        """Before an epoch (or the rest of one) of ``steps`` batches."""

    def _log_step(self, train: torch.Tensor, rate: float) -> None:
        """After every step (``train``: mean loss terms so far in this epoch)."""

    def _extra_state(self) -> dict[str, Any]:
        """More keys for the training state of resumable checkpoints."""
        return {}

    # -- the loop -------------------------------------------------------------------------
    def run(self) -> TrainResult:
        """Train from where :attr:`progress` stands to the end; returns the result."""
        cfg, p = self.cfg, self.progress
        done = cfg.train.max_steps is not None and p.global_step >= cfg.train.max_steps
        while p.epoch < cfg.train.epochs and not done:
            batches = self._batches(p.epoch)
            self._start_epoch(len(batches))
            start, structures, steps = time.perf_counter(), 0, 0
            sums = torch.zeros(self.num_terms, dtype=torch.float64)
            for step, batch in self._loader(batches, p.step_in_epoch):
                sums += self._step(batch)
                structures, steps = structures + len(batches[step]), steps + 1
                p.step_in_epoch, p.global_step = step + 1, p.global_step + 1
                rate = structures / max(time.perf_counter() - start, 1e-9)
                self._log_step(sums / steps, rate)
                every = cfg.checkpoint.every_steps
                if every and p.global_step % every == 0:
                    self._save_resumable()
                if cfg.train.max_steps is not None and p.global_step >= cfg.train.max_steps:
                    done = True
                    break
            p.seconds += time.perf_counter() - start
            finished = p.step_in_epoch == len(batches)
            if finished:
                p.epoch, p.step_in_epoch = p.epoch + 1, 0
            last = done or p.epoch == cfg.train.epochs
            if last or (finished and p.epoch % cfg.train.valid_every == 0):
                rate = structures / max(time.perf_counter() - start, 1e-9)
                self._end_epoch(sums / max(steps, 1), rate)
            if done or (finished and p.epoch % cfg.checkpoint.every_epochs == 0):
                self._save_resumable()
        return self._finish()

    def _end_epoch(self, train: torch.Tensor, rate: float) -> None:
        """Validate, step a plateau schedule, log the metrics row, keep the best weights."""
        valid = self.validate()
        score = valid.get("loss", float(train[0]))
        if self.cfg.optimizer.schedule == "plateau":
            self.plateau.update(score)
        p = self.progress
        row = {
            "epoch": p.epoch + (p.step_in_epoch > 0),
            "step": p.global_step,
            "lr": self._lr(),
            "seconds": p.seconds,
            **self._epoch_metrics(train, rate, valid),
        }
        self.history.append(row)
        self._log_epoch(row, score)
        self._save_best(score)

    def _planned_steps(self) -> int:
        """Optimiser steps of the whole run (``train.max_steps``, else epochs × batches);
        the schedule's length."""
        cfg = self.cfg.train
        return cfg.max_steps or len(self._batches(0)) * cfg.epochs

    def _batches(self, epoch: int) -> list[np.ndarray]:
        """The epoch's global batches (a pure function of seed and epoch)."""
        d, split = self.cfg.data, self._train_split()
        return epoch_batches(
            split.indices, split.atoms, self.cfg.train.seed, epoch, d.batch_size, d.max_atoms
        )

    def _loader(self, batches: list[np.ndarray], first: int) -> Iterator[tuple[int, Any]]:
        """(step, this rank's collated batch or None) for the batches from ``first`` on."""
        w, split = self.world, self._train_split()
        local = [shard_batch(b, split.atoms, w.world_size, w.rank) for b in batches[first:]]
        loader = iter(
            DataLoader(
                split.dataset,
                batch_sampler=[x.tolist() for x in local if len(x)],
                collate_fn=split.collate,
                num_workers=self.cfg.data.num_workers,
            )
        )
        for k, idx in enumerate(local):
            yield first + k, (self._to_device(next(loader)) if len(idx) else None)

    # -- the optimiser and the optimiser step's shared parts -----------------------------
    def _setup_optimisation(self, params: list[torch.nn.Parameter]) -> None:
        """AdamW over ``params``, the EMA and plateau states, the evaluation copy of
        :attr:`model` and an empty metrics history (a resumed run restores them next)."""
        o = self.cfg.optimizer
        self.params = params
        self.optimizer = make_optimizer(params, o)
        self.ema = EMA(self.model, o.ema_decay) if o.ema_decay else None
        self.plateau = Plateau(o.plateau_patience, o.plateau_factor)
        self.eval_model = copy.deepcopy(self.model).eval()
        self.history = []

    def _lr(self) -> float:
        return scheduled_lr(
            self.cfg.optimizer, self.progress.global_step, self.total_steps, self.plateau.scale
        )

    def _set_lr(self) -> None:
        lr = self._lr()
        for group in self.optimizer.param_groups:
            group["lr"] = lr

    def _apply_gradients(self) -> None:
        """Sum gradients over ranks, clip, step AdamW and update the EMA."""
        sum_gradients(self.params, self.world)
        if self.cfg.optimizer.grad_clip is not None:
            torch.nn.utils.clip_grad_norm_(self.params, self.cfg.optimizer.grad_clip)
        self.optimizer.step()
        if self.ema is not None:
            self.ema.update(self.model)

    # -- weights, checkpoints -------------------------------------------------------------
    def _deployed(self) -> ModelT:
        """The weights to validate and ship: EMA when enabled."""
        self.eval_model.load_state_dict(self.model.state_dict())
        if self.ema is not None:
            self.ema.copy_to(self.eval_model)
        return self.eval_model

    def _save_best(self, score: float) -> None:
        """Write ``best.pt`` (main rank) when ``score`` beats the best so far."""
        if score < self.progress.best:
            self.progress.best = score
            if self.world.is_main:
                save_model(self._deployed(), self.run_dir / "best.pt")

    def _optimisation(self) -> Optimisation:
        return Optimisation(self.optimizer, self.ema, self.plateau)

    def _save_resumable(self) -> None:
        if self.world.is_main:
            state = training_state(
                self.progress, self._optimisation(), self.history, **self._extra_state()
            )
            save_resumable(
                self.model,
                self.run_dir,
                self.progress.global_step,
                state,
                self.cfg.checkpoint.keep_last,
            )

    def _finish(self) -> TrainResult:
        return finish(
            self._deployed(),
            self.run_dir,
            self.history,
            self.progress.global_step,
            self.world.is_main,
        )
