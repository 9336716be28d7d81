"""What ``mlpot rollout`` does, as a library function (the CLI only parses options).

The same pieces as ``mlpot md`` (:mod:`mlpot.md.driver`): structures read by
:func:`~mlpot.md.config.read_structures`, :func:`~mlpot.md.run_md` with the thermo
log, trajectory and restart reporters, the blow-up guard and the progress bar; the
step is a :class:`~mlpot.md.rollout.ForecastStep` on a
:class:`~mlpot.md.rollout.ForecastField`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from ase.data import chemical_symbols
from rich.console import Console

from mlpot.md.commands import (
    RunOptions,
    batch_parts,
    output_reporters,
    print_outcome,
)
from mlpot.md.config import DTYPES, read_structures
from mlpot.md.progress import RunProgress, kinetic_energy
from mlpot.md.reporters import load_restart
from mlpot.md.reporters.restart import RestartData
from mlpot.md.rollout import ForecastField, ForecastState, ForecastStep
from mlpot.md.simulate import RestartSchedule, RunSummary, SafetyLimits, run_md
from mlpot.md.state import MDState
from mlpot.models.trajcast import TrajCastForecaster


@dataclass(frozen=True, kw_only=True)
class RolloutConfig(RunOptions):
    """Everything ``mlpot rollout`` needs (units: K, fs, Å): the options of
    :class:`~mlpot.md.commands.RunOptions` (``steps`` counting forecast steps, each
    ``forecast_fs`` long) and the forecaster and thermostat.

    Attributes:
        forecaster: a forecaster checkpoint path or shipped name.
        temperature: the initial (Maxwell–Boltzmann, when the structure has no
            velocities) and CSVR target temperature, K.
        thermostat: False runs without a thermostat.
        tau: CSVR time constant, fs.
    """

    forecaster: str
    temperature: float = 300.0
    thermostat: bool = True
    tau: float = 100.0


def load_forecaster(
    name_or_path: str, structures: list, device: str, dtype: str | None
) -> TrajCastForecaster:
    """A forecaster checkpoint (path or shipped name) that knows every element given."""
    from mlpot.checkpoint import load_model

    if dtype is not None and dtype not in DTYPES:
        raise ValueError(f"unknown dtype {dtype!r}; choose float32 or float64")
    model = load_model(name_or_path, dtype=DTYPES[dtype] if dtype else None)
    if not isinstance(model, TrajCastForecaster):
        raise ValueError(
            f"{name_or_path}: is a {type(model).__name__}, not a "
            "TrajCastForecaster (use `mlpot md --model` for potentials)"
        )
    known = set(model.species_numbers.tolist())
    missing = sorted(
        {chemical_symbols[int(z)] for a in structures for z in a.numbers if int(z) not in known}
    )
    if missing:
        raise ValueError(
            f"forecaster {name_or_path!r} does not support element(s) "
            f"{', '.join(missing)}; it knows {', '.join(model.species)}"
        )
    if model.config.angular_momentum and any(a.pbc.any() for a in structures):
        raise ValueError(
            f"forecaster {name_or_path!r} conserves angular momentum and is for "
            "isolated molecules; the structure is periodic"
        )
    return model.to(device=device).eval()


def rollout_progress(
    console: Console, total: int, done: int, dt: float, enabled: bool
) -> RunProgress:
    """The rollout's bar: forecast steps/s, ns/day, T and E_kin (a forecaster has no
    potential energy), ETA."""
    return RunProgress(console, total, done, dt, enabled, "rollout", ("E_kin", kinetic_energy))


def _validate(cfg: RolloutConfig) -> None:
    cfg.check()
    if not cfg.temperature >= 0:
        raise ValueError(f"--temperature must be >= 0 K, got {cfg.temperature}")


def restart_path(cfg: RolloutConfig) -> Path:
    return cfg.restart_path("rollout")


def _load_restart(restart: Path, cfg: RolloutConfig, model: TrajCastForecaster) -> RestartData:
    data = load_restart(restart, device=cfg.device)
    if not isinstance(data.state, ForecastState):
        raise ValueError(
            f"{restart}: holds a {type(data.state).__name__}, not a "
            "rollout state (written by `mlpot md`?)"
        )
    if data.state.momenta.dtype != model.dtype:
        raise ValueError(
            f"{restart}: saved in {data.state.momenta.dtype}, the "
            f"forecaster runs in {model.dtype}; pass the original --dtype"
        )
    saved = data.extra.get("rollout")
    if saved is not None and saved != _settings(cfg, model):
        raise ValueError(
            f"{restart}: saved with rollout settings {saved}, not "
            f"{_settings(cfg, model)}; pass the original options"
        )
    return data


def _settings(cfg: RolloutConfig, model: TrajCastForecaster) -> dict:
    return {
        "forecast_fs": model.forecast_fs,
        "temperature": cfg.temperature,
        "thermostat": cfg.thermostat,
        "tau": cfg.tau,
    }


def run_rollout_command(
    cfg: RolloutConfig,
    console: Console | None = None,
    should_stop: Callable[[], bool] | None = None,
) -> list[RunSummary]:
    """Run ``mlpot rollout``; returns one summary per batch part (see
    ``max_batch_atoms``). Raises ValueError/FileNotFoundError for bad input before
    anything is written."""
    console = console or Console()
    _validate(cfg)
    structures = read_structures(cfg.structure)
    model = load_forecaster(cfg.forecaster, structures, cfg.device, cfg.dtype)
    if cfg.restart is not None:
        data = _load_restart(cfg.restart, cfg, model)
        return [
            _run_part(
                cfg,
                model,
                data.state,
                data,
                console,
                0,
                data.state.num_systems,
                restart_path(cfg),
                False,
                should_stop,
            )
        ]
    summaries = []
    for part in batch_parts(
        cfg,
        structures,
        model.dtype,
        cfg.temperature,
        ForecastField(model, cfg.skin),
        restart_path(cfg),
        console,
    ):
        summaries.append(
            _run_part(
                cfg,
                model,
                part.state,
                None,
                console,
                part.first_index,
                len(structures),
                part.restart,
                part.append_log,
                should_stop,
            )
        )
        if summaries[-1].stop_reason != "completed":
            break
    return summaries


def _run_part(
    cfg: RolloutConfig,
    model: TrajCastForecaster,
    state: MDState,
    data: RestartData | None,
    console: Console,
    first_index: int,
    total: int,
    restart: Path,
    append_log: bool,
    should_stop: Callable[[], bool] | None,
) -> RunSummary:
    """One batch of systems (``first_index`` is the first one's index in the input)."""
    step = ForecastStep.for_forecaster(model, cfg.temperature if cfg.thermostat else None, cfg.tau)
    field = ForecastField(model, skin=cfg.skin)
    if data is not None and data.verlet_reference is not None:
        field.rebuild_from(*data.verlet_reference, state.graph)  # type: ignore[call-arg]  # mypy miscounts the unpacked (positions, cell) pair
    state = step.init(state)
    reporters, traj = output_reporters(
        cfg, state, data, first_index, total, append_log, pressure=False
    )

    def extra() -> dict:
        return {
            "rollout": _settings(cfg, model),
            "forecaster": cfg.forecaster,
            "frames": traj.frames if traj else 0,
        }

    progress = rollout_progress(console, cfg.steps, state.step, model.forecast_fs, cfg.progress)
    with progress.bar:
        summary = run_md(
            state,
            step,
            field,
            max(cfg.steps - state.step, 0),
            reporters,
            RestartSchedule(restart, cfg.restart_every, extra),
            SafetyLimits(max_temperature=cfg.max_temperature),
            on_step=progress,
            should_stop=should_stop,
            report_initial=data is None,
        )
        progress.bar.update(progress.task, completed=summary.state.step)
    _print_summary(console, summary)
    return summary


def _print_summary(console: Console, s: RunSummary) -> None:
    console.print(
        f"[bold]{s.stop_reason}[/]: {s.steps} forecast steps of {s.dt_fs:g} fs in "
        f"{s.wall_s:.2f} s ({s.steps_per_s:.1f} steps/s, {s.ns_per_day:.3g} ns/day)"
    )
    temperature = s.state.temperature().cpu().numpy()
    console.print(f"final T = {float(np.mean(temperature)):.2f} K")
    print_outcome(console, s)
