"""``fit(config)``: the training loop, checkpoints and exact resume.

One optimiser step: this rank's share of the global batch → energy, forces (and
stress) → loss normalised by the global label counts → backward → gradients summed
over ranks → clip → AdamW → EMA. Validation (EMA weights) after every epoch.

Resumable checkpoints and exact resume (:mod:`mlpot.train.resumable`, shared with
the forecaster trainer :mod:`mlpot.train.forecast`) hold the raw weights plus the
optimiser, EMA, plateau and RNG states and the data position (epoch, batches done in
it); batches are a pure function of (seed, epoch), so a resumed run repeats the
uninterrupted one step for step.

``equivariance:`` (:mod:`mlpot.train.equivariance`) rotates each batch (``augment``,
``contrastive``) and adds the contrastive term; the logged training ``loss`` then
includes it, the validation loss never does. The contrastive transform is trained
alongside and kept in the training state only.
"""

from __future__ import annotations

from pathlib import Path

import torch
import yaml
from torch.utils.data import DataLoader

from mlpot.checkpoint import load_model, load_training_state
from mlpot.graph import AtomicGraph, collate
from mlpot.models import Potential
from mlpot.train.config import TrainingConfig
from mlpot.train.distributed import (
    World,
    all_reduce_sum,
    broadcast_parameters,
    close_world,
    init_world,
)
from mlpot.train.equivariance import EquivarianceTraining
from mlpot.train.forecast_data import check_potential_config
from mlpot.train.loss import ErrorSums, LabelCounts, loss_terms
from mlpot.train.model_setup import freeze
from mlpot.train.report import TRAIN_TERMS, RunLog, SilentLog
from mlpot.train.resumable import (
    Progress,
    ResumableRun,
    TrainResult,
    TrainSplit,
    latest_checkpoint,
    restore_training_state,
)
from mlpot.train.sampler import epoch_batches
from mlpot.train.setup import RunData, build_model, model_cutoff, open_data


def fit(config: TrainingConfig, resume: bool | str | Path = False) -> TrainResult:
    """Train as ``config`` says; ``resume``: True (the run's latest checkpoint) or a path.

    Under ``torchrun`` every rank calls this; only rank 0 writes files.
    """
    device = _device(config.train.device)
    world = init_world(device)
    try:
        from mlpot.train.forecast_data import is_forecaster_run

        if is_forecaster_run(config):  # TrajCast forecasters: mlpot.train.forecast
            from mlpot.train.forecast import ForecastRun

            return ForecastRun(config, world, device, resume).run()
        return PotentialRun(config, world, device, resume).run()
    finally:
        close_world(world)


def _device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise RuntimeError("train.device is cuda but no CUDA device is available")
    return torch.device(name)


class PotentialRun(ResumableRun[Potential]):
    """One potential training run (built once, then :meth:`run`)."""

    num_terms = len(TRAIN_TERMS)

    def __init__(
        self, cfg: TrainingConfig, world: World, device: torch.device, resume: bool | str | Path
    ) -> None:
        check_potential_config(cfg)
        self.cfg, self.world = cfg, world
        if world.enabled and device.type == "cuda":
            device = torch.device("cuda", world.local_rank)
            torch.cuda.set_device(device)  # NCCL collectives run on the current device
        self.device = device
        if cfg.train.threads:
            torch.set_num_threads(cfg.train.threads)
        if device.type == "cuda":
            torch.backends.cuda.matmul.allow_tf32 = cfg.train.tf32
        self.dtype = getattr(torch, cfg.train.dtype)
        self.run_dir = Path(cfg.run_dir)
        resume_path = None
        if resume:
            resume_path = latest_checkpoint(self.run_dir) if resume is True else Path(resume)
        state = load_training_state(resume_path) if resume_path else None
        self.progress = Progress(**state["progress"]) if state else Progress()
        if world.is_main:
            self.run_dir.mkdir(parents=True, exist_ok=True)
            (self.run_dir / "config.yaml").write_text(
                yaml.safe_dump(cfg.model_dump(mode="json", by_alias=True), sort_keys=False)
            )
            self.log: SilentLog = RunLog(
                self.run_dir,
                cfg.log.progress,
                cfg.log.tensorboard,
                cfg.train.epochs,
                self.progress.epoch if state else 0,
            )
        else:
            self.log = SilentLog()
        torch.manual_seed(cfg.train.seed)
        self.data: RunData = open_data(cfg, world, model_cutoff(cfg, resume_path), self.dtype)
        if resume_path is not None:
            resumed = load_model(resume_path, dtype=self.dtype)
            if not isinstance(resumed, Potential):
                raise TypeError(f"{resume_path}: not a Potential checkpoint")
            self.model = resumed.train()
        else:
            self.model = build_model(cfg, self.data, self.dtype, self.log).train()
        self.model = self.model.to(device)
        frozen = freeze(self.model, cfg.model.freeze)
        if frozen:
            self.log.message(
                f"frozen: {len(frozen)} parameters ({', '.join(frozen[:6])}"
                f"{', ...' if len(frozen) > 6 else ''})"
            )
        broadcast_parameters(self.model, world)
        self.equivariance = EquivarianceTraining(
            cfg.equivariance, self.model, cfg.train.seed, world.rank
        )
        if self.equivariance.transform is not None:
            broadcast_parameters(self.equivariance.transform, world)
        trainable = [p for p in self.model.parameters() if p.requires_grad]
        self._setup_optimisation(trainable + self.equivariance.parameters())
        if state is not None:
            self._restore(state)
            self.log.message(
                f"resumed from {resume_path} (epoch {self.progress.epoch + 1}, "
                f"step {self.progress.global_step})"
            )
        self.total_steps = self._planned_steps()

    # -- what the shared loop (mlpot.train.resumable.ResumableRun) needs -------------
    def _train_split(self) -> TrainSplit:
        return TrainSplit(self.data.train, self.data.train.indices, self.data.train_atoms, collate)

    def _to_device(self, batch: AtomicGraph) -> AtomicGraph:
        return batch.to(self.device)

    def _start_epoch(self, steps: int) -> None:
        self.log.start_epoch(self.progress.epoch, steps, self.progress.step_in_epoch)

    def _log_step(self, train: torch.Tensor, rate: float) -> None:
        self.log.step(
            {
                "step": self.progress.global_step,
                "lr": self._lr(),
                "structures_per_s": rate,
                **dict(zip(TRAIN_TERMS, train.tolist(), strict=True)),
            }
        )

    def _extra_state(self) -> dict:
        return {"equivariance": self.equivariance.state_dict()}

    def _step(self, graph: AtomicGraph | None) -> torch.Tensor:
        """One optimiser step; returns the global batch's :data:`TRAIN_TERMS`."""
        cfg = self.cfg
        w = (cfg.loss.energy, cfg.loss.forces, cfg.loss.stress)
        self._set_lr()
        local = LabelCounts.of(graph) if graph is not None else LabelCounts(0.0, 0.0, 0.0)
        systems = torch.tensor([float(graph.num_systems) if graph is not None else 0.0])
        counts = all_reduce_sum(torch.cat([local.as_tensor(), systems.double()]), self.world)
        self.optimizer.zero_grad(set_to_none=True)
        terms = torch.zeros(len(TRAIN_TERMS), dtype=torch.float64)
        if graph is not None:
            rng = self.equivariance.generator(self.progress.global_step)
            graph = self.equivariance.batch(graph, rng)
            out = self.model(graph, compute_forces=True, compute_stress=w[2] > 0, training=True)
            t = loss_terms(
                out,
                graph,
                LabelCounts.from_tensor(counts[:3]),
                w,
                cfg.loss.kind,
                cfg.loss.huber_delta,
            )
            total = t.total
            # each rank's share of the global batch's structures, so the sum over ranks
            # of share × (its batch's contrastive loss) averages them
            share = graph.num_systems / float(counts[3])
            contrastive = torch.tensor(float("nan"))
            c = self.equivariance.contrastive_terms(self.model, graph, rng)
            if c is not None:
                total = total + self.equivariance.weight * share * c.loss
                contrastive = share * c.loss
            total.backward()
            parts = (total, t.energy, t.forces, t.stress, contrastive.to(total))
            terms = torch.stack(parts).detach().double().cpu()
        self._apply_gradients()
        return all_reduce_sum(terms, self.world)

    # -- validation, checkpoints ------------------------------------------------------
    def validate(self) -> dict[str, float]:
        """Errors of the deployed weights on the validation set (summed over ranks)."""
        ds = self.data.valid
        if len(ds) == 0:
            return {}
        model, sums = self._deployed(), ErrorSums.zeros()
        d, w = self.cfg.data, self.world
        batches = epoch_batches(
            ds.indices, self.data.valid_atoms, 0, 0, d.batch_size, d.max_atoms, shuffle=False
        )[w.rank :: w.world_size]
        weights = (self.cfg.loss.energy, self.cfg.loss.forces, self.cfg.loss.stress)
        loader = DataLoader(
            ds,
            batch_sampler=[b.tolist() for b in batches],
            collate_fn=collate,
            num_workers=self.cfg.data.num_workers,
        )
        for graph in loader:
            graph = graph.to(self.device)
            stress = bool(torch.isfinite(graph.stress).any())
            out = model(graph, compute_forces=True, compute_stress=stress)
            terms = loss_terms(
                out,
                graph,
                LabelCounts.of(graph),
                weights,
                self.cfg.loss.kind,
                self.cfg.loss.huber_delta,
            )
            sums.add(out, graph, float(terms.total))
        all_reduce_sum(sums.values, w)
        return sums.metrics()

    def _epoch_metrics(
        self, train: torch.Tensor, rate: float, valid: dict[str, float]
    ) -> dict[str, float]:
        return {
            "structures_per_s": rate,
            **{
                f"train_{k}": float(v) for k, v in zip(TRAIN_TERMS, train, strict=True)
            },
            **{
                f"valid_{k}": valid.get(k, float("nan"))
                for k in (
                    "loss",
                    "energy_mae",
                    "energy_rmse",
                    "forces_mae",
                    "forces_rmse",
                    "stress_mae",
                    "stress_rmse",
                )
            },
        }

    def _log_epoch(self, row: dict[str, float], score: float) -> None:
        self.log.end_epoch(row)

    def _restore(self, state: dict) -> None:
        self.equivariance.load_state_dict(state.get("equivariance"))
        self.history = restore_training_state(state, self._optimisation())

    def _finish(self) -> TrainResult:
        result = super()._finish()
        self.log.close()
        return result
