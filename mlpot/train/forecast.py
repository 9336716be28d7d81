"""``mlpot train`` for TrajCast forecasters: the loop, validation, checkpoints, resume.

:func:`mlpot.train.fit` hands a config whose model is a
:class:`~mlpot.models.TrajCastForecaster` to :class:`ForecastRun`. The pieces are the
potential trainer's (AdamW, warm-up + cosine/plateau schedule, gradient clipping, EMA,
``save_model`` checkpoints with the training state, DDP gradient sums); what differs
is the data (pairs of trajectory frames, :mod:`mlpot.train.forecast_data`) and the
loss: L = w_x ⟨((Δx − Δx_ref)/σ_x)²⟩ + w_v ⟨((v′ − v′_ref)/σ_v)²⟩ over all atoms and
components of the global batch (``loss.displacement``, ``loss.velocity``; σ the
stored training RMS). ``loss.position_noise`` / ``loss.velocity_noise`` perturb the
training inputs, in Å and Å/fs or (``loss.noise_scale: thermal``) as fractions of each
atom's thermal scale (:mod:`mlpot.train.forecast_noise`); ``loss.unroll_steps`` = K > 1
trains on windows of K + 1 frames with the loss unrolled over K forecast steps
(:func:`unrolled_squared_errors`); ``loss.mass_exponent`` α > 0 weights every atom's
squared errors by m_i^α/⟨m^α⟩ (:func:`atom_weights`). Validation is always one-step
(with the same atom weights) and also reports the same loss of free flight
(Δx = v·Δt, v′ = v), the baseline the network has to beat.
"""

from __future__ import annotations

import csv
from pathlib import Path

import torch
import yaml
from torch.utils.data import DataLoader

from mlpot.checkpoint import load_model, load_training_state
from mlpot.datasets.forecast import ForecastSample, collate_samples
from mlpot.graph import AtomicGraph, system_sum
from mlpot.models import TrajCastForecaster
from mlpot.models.trajcast import Forecast
from mlpot.models.trajcast_loss import squared_error_sums
from mlpot.train.config import TrainingConfig
from mlpot.train.distributed import World, all_reduce_sum, broadcast_parameters
from mlpot.train.forecast_data import (
    ForecastData,
    build_forecaster,
    check_forecast_config,
    open_forecast_data,
)
from mlpot.train.forecast_noise import noise_generator, perturb
from mlpot.train.resumable import (
    Progress,
    ResumableRun,
    TrainSplit,
    latest_checkpoint,
    restore_training_state,
)
from mlpot.train.sampler import epoch_batches

#: Columns of a forecaster run's ``metrics.csv`` (normalised MSEs are dimensionless).
CSV_COLUMNS = (
    "epoch",
    "step",
    "lr",
    "seconds",
    "train_loss",
    "valid_loss",
    "valid_dx_mse",
    "valid_v_mse",
    "valid_dx_rmse_A",
    "valid_v_rmse_A_per_fs",
    "free_flight_loss",
)


def atom_weights(
    model: TrajCastForecaster, graph: AtomicGraph, exponent: float = 0.0
) -> torch.Tensor | None:
    """``[N, 1]`` per-atom loss weights w_i = m_i^α / ⟨m^α⟩_b, or None for α = 0.

    ⟨·⟩_b is the mean over atom i's system, so the weights of a system sum to its atom
    count (an all-one-element system gets 1 everywhere). With α = 1, Σ w_i |δv_i|² is
    the kinetic-energy metric: an error that is a given fraction of an atom's thermal
    velocity √(kT/m_i) costs the same on every atom.
    """
    if exponent == 0:
        return None
    if not 0 < exponent <= 1:
        raise ValueError(f"mass exponent must be in [0, 1], got {exponent}")
    scaled = model.masses(graph) ** exponent
    index = graph.system_index
    mean = system_sum(scaled, index, graph.num_systems) / graph.atoms_per_system.to(scaled)
    return (scaled / mean.index_select(0, index))[:, None]


def squared_errors(
    model: TrajCastForecaster,
    prediction: Forecast,
    sample: ForecastSample,
    weights: torch.Tensor | None = None,
) -> torch.Tensor:
    """``[2]`` Σ w_i ((Δx − Δx_ref)/σ_x)² and Σ w_i ((v′ − v′_ref)/σ_v)² over the batch
    (``weights`` ``[N, 1]`` from :func:`atom_weights`; None: all 1)."""
    return squared_error_sums(
        model,
        prediction.displacement,
        prediction.velocities,
        sample.displacement,
        sample.velocities,
        weights,
    )


def unrolled_squared_errors(
    model: TrajCastForecaster, sample: ForecastSample, weights: torch.Tensor | None = None
) -> torch.Tensor:
    """``[2]`` :func:`squared_errors` averaged over the K steps of ``sample``: step j
    starts from step j − 1's predicted positions and velocities (edges rebuilt) and is
    compared with the reference frame j (positions as displacements from the first
    frame). K = 1 is the one-step loss. ``weights``: per-atom, as for
    :func:`squared_errors`."""
    prediction = model(sample.graph)
    sums = squared_errors(model, prediction, sample, weights)
    if sample.later_displacements is None or sample.later_velocities is None:
        return sums
    graph, moved = sample.graph, prediction.displacement
    for j in range(sample.steps - 1):
        graph = graph.replace(
            positions=graph.positions + prediction.displacement,
            velocities=prediction.velocities,
        )
        prediction = model(graph)
        moved = moved + prediction.displacement
        sums = sums + squared_error_sums(
            model,
            moved,
            prediction.velocities,
            sample.later_displacements[:, j],
            sample.later_velocities[:, j],
            weights,
        )
    return sums / sample.steps


class ForecastRun(ResumableRun[TrajCastForecaster]):
    """One forecaster training run (built once, then :meth:`run`)."""

    def __init__(
        self, cfg: TrainingConfig, world: World, device: torch.device, resume: bool | str | Path
    ) -> None:
        check_forecast_config(cfg)
        self.cfg, self.world, self.device = cfg, world, device
        if cfg.train.threads:
            torch.set_num_threads(cfg.train.threads)
        self.dtype = getattr(torch, cfg.train.dtype)
        self.run_dir = Path(cfg.run_dir)
        self.weights = (cfg.loss.displacement, cfg.loss.velocity)
        resume_path = None
        if resume:
            resume_path = latest_checkpoint(self.run_dir) if resume is True else Path(resume)
        state = load_training_state(resume_path) if resume_path else None
        self.progress = Progress(**state["progress"]) if state else Progress()
        self.csv_path = self.run_dir / "metrics.csv"
        if world.is_main:
            self.run_dir.mkdir(parents=True, exist_ok=True)
            (self.run_dir / "config.yaml").write_text(
                yaml.safe_dump(cfg.model_dump(mode="json", by_alias=True), sort_keys=False)
            )
            if self.csv_path.exists():
                self.csv_path.unlink()  # a resumed run rewrites its rows from the history
        torch.manual_seed(cfg.train.seed)
        self.data: ForecastData = open_forecast_data(cfg, self.dtype)
        if resume_path is not None:
            resumed = load_model(resume_path, dtype=self.dtype)
            if not isinstance(resumed, TrajCastForecaster):
                raise TypeError(f"{resume_path}: not a TrajCastForecaster checkpoint")
            self.model = resumed.train()
        else:
            self.model = build_forecaster(cfg, self.data, self.dtype, self).train()
        self.model = self.model.to(device)
        broadcast_parameters(self.model, world)
        self._setup_optimisation(list(self.model.parameters()))
        if state is not None:
            self._restore(state)
            for row in self.history:
                self._append_csv(row)
            self.message(f"resumed from {resume_path} (step {self.progress.global_step})")
        self.total_steps = self._planned_steps()

    def message(self, text: str) -> None:
        if self.world.is_main:
            print(text, flush=True)

    # -- what the shared loop (mlpot.train.resumable.ResumableRun) needs -------------
    def _train_split(self) -> TrainSplit:
        d = self.data
        return TrainSplit(d.train, d.train_idx, d.train_atoms, collate_samples)

    def _to_device(self, batch: ForecastSample) -> ForecastSample:
        return _to(batch, self.device)

    def _step(self, sample: ForecastSample | None) -> torch.Tensor:
        """One optimiser step; returns the global batch's loss ``[1]``."""
        self._set_lr()
        atoms = float(sample.graph.num_atoms) if sample is not None else 0.0
        components = 3.0 * float(all_reduce_sum(torch.tensor([atoms]), self.world)[0])
        self.optimizer.zero_grad(set_to_none=True)
        loss = torch.zeros(1, dtype=torch.float64)
        if sample is not None:
            sample = self._noisy(sample)
            weights = atom_weights(self.model, sample.graph, self.cfg.loss.mass_exponent)
            sums = unrolled_squared_errors(self.model, sample, weights)
            total = (self.weights[0] * sums[0] + self.weights[1] * sums[1]) / components
            total.backward()
            loss = total.detach().double().cpu().reshape(1)
        self._apply_gradients()
        return all_reduce_sum(loss, self.world)

    def _noisy(self, sample: ForecastSample) -> ForecastSample:
        """The step's sample with ``loss.position_noise`` / ``velocity_noise`` applied."""
        loss = self.cfg.loss
        if loss.position_noise == 0 and loss.velocity_noise == 0:
            return sample
        generator = noise_generator(self.cfg.train.seed, self.progress.global_step, self.world.rank)
        return perturb(
            sample,
            self.model,
            loss.position_noise,
            loss.velocity_noise,
            generator,
            loss.noise_scale,
        )

    # -- validation, logs ---------------------------------------------------------------
    def validate(self) -> dict[str, float]:
        """Normalised MSEs (and RMSEs in Å, Å/fs) of the deployed weights and of free
        flight on the validation pairs (summed over ranks)."""
        if len(self.data.valid_idx) == 0:
            return {}
        model, w = self._deployed(), self.world
        d = self.cfg.data
        batches = epoch_batches(
            self.data.valid_idx,
            self.data.valid_atoms,
            0,
            0,
            d.batch_size,
            d.max_atoms,
            shuffle=False,
        )[w.rank :: w.world_size]
        sums = torch.zeros(5, dtype=torch.float64)
        loader = DataLoader(
            self.data.valid, batch_sampler=[b.tolist() for b in batches], collate_fn=collate_samples
        )
        with torch.no_grad():
            for sample in loader:
                sample = _to(sample, self.device)
                v = sample.graph.velocities
                assert v is not None  # forecast samples always carry velocities
                free = Forecast(v * model.forecast_fs, v)
                weights = atom_weights(model, sample.graph, self.cfg.loss.mass_exponent)
                predicted = model(sample.graph)
                sums[:2] += squared_errors(model, predicted, sample, weights).double().cpu()
                sums[2:4] += squared_errors(model, free, sample, weights).double().cpu()
                sums[4] += 3.0 * sample.graph.num_atoms
        all_reduce_sum(sums, w)
        dx, dv, fx, fv = (sums[:4] / sums[4]).tolist()
        wx, wv = self.weights
        return {
            "loss": wx * dx + wv * dv,
            "dx_mse": dx,
            "v_mse": dv,
            "dx_rmse_A": float(model.displacement_rms) * dx**0.5,
            "v_rmse_A_per_fs": float(model.velocity_rms) * dv**0.5,
            "free_flight_loss": wx * fx + wv * fv,
        }

    def _epoch_metrics(
        self, train: torch.Tensor, rate: float, valid: dict[str, float]
    ) -> dict[str, float]:
        return {
            "train_loss": float(train[0]),
            **{f"valid_{k}": v for k, v in valid.items() if k != "free_flight_loss"},
            "free_flight_loss": valid.get("free_flight_loss", float("nan")),
        }

    def _log_epoch(self, row: dict[str, float], score: float) -> None:
        nan = float("nan")
        self.message(
            f"epoch {row['epoch']} step {row['step']}: train {row['train_loss']:.4g}, valid "
            f"{score:.4g} (Δx {row.get('valid_dx_mse', nan):.4g}, v "
            f"{row.get('valid_v_mse', nan):.4g}; free flight "
            f"{row['free_flight_loss']:.4g}), {row['seconds']:.0f} s"
        )
        self._append_csv(row)

    def _append_csv(self, row: dict[str, float]) -> None:
        if not self.world.is_main:
            return
        new = not self.csv_path.exists()
        with open(self.csv_path, "a", newline="") as fh:
            writer = csv.DictWriter(fh, fieldnames=CSV_COLUMNS)
            if new:
                writer.writeheader()
            writer.writerow({k: row.get(k, "") for k in CSV_COLUMNS})

    def _restore(self, state: dict) -> None:
        self.history = restore_training_state(state, self._optimisation())


def _to(sample: ForecastSample, device: torch.device) -> ForecastSample:
    later_x, later_v = sample.later_displacements, sample.later_velocities
    return ForecastSample(
        graph=sample.graph.to(device),
        displacement=sample.displacement.to(device),
        velocities=sample.velocities.to(device),
        later_displacements=None if later_x is None else later_x.to(device),
        later_velocities=None if later_v is None else later_v.to(device),
    )
