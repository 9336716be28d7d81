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

from mlpot.md.batching import max_batch_atoms, plan_batches
from mlpot.md.config import DTYPES, read_structures
from mlpot.md.driver import check_run_options, restart_path_for
from mlpot.md.progress import RunProgress, kinetic_energy
from mlpot.md.reporters import ThermoReporter, TrajectoryReporter, load_restart
from mlpot.md.reporters.restart import RestartData
from mlpot.md.rollout import ForecastField, ForecastState, ForecastStep
from mlpot.md.simulate import Reporter, RestartSchedule, RunSummary, SafetyLimits, run_md
from mlpot.md.state import MDState, maxwell_boltzmann
from mlpot.models.trajcast import TrajCastForecaster


@dataclass(frozen=True)
class RolloutConfig:
    """Everything ``mlpot rollout`` needs (units: K, fs, Å).

    ``steps`` counts forecast steps (each ``forecast_fs`` long) and is the step the run
    ends at, so re-running with ``restart`` continues an interrupted run to the same end.
    ``temperature`` is the initial (Maxwell–Boltzmann, when the structure has no
    velocities) and CSVR target temperature; ``thermostat=False`` runs without one.
    ``max_batch_atoms`` splits many structures into consecutive batches of at most that
    many atoms run one after the other (default: one batch on CPU; on CUDA as many as
    fit in free memory), as ``mlpot md`` does.
    """

    structure: Path
    forecaster: str
    steps: int = 1000
    temperature: float = 300.0
    thermostat: bool = True
    tau: float = 100.0
    traj: Path | None = None
    log: Path | None = None
    every: int = 1
    seed: int = 0
    device: str = "cpu"
    dtype: str | None = None
    restart: Path | None = None
    restart_out: Path | None = None
    restart_every: int | None = None
    skin: float = 1.0
    max_temperature: float = 1.0e5
    progress: bool = True
    max_batch_atoms: int | None = None


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
    check_run_options(cfg.steps, cfg.every, cfg.traj)
    if not cfg.temperature >= 0:
        raise ValueError(f"--temperature must be >= 0 K, got {cfg.temperature}")


def restart_path(cfg: RolloutConfig) -> Path:
    return restart_path_for(cfg.restart_out, cfg.traj, cfg.log, "rollout")


def _initial_state(
    cfg: RolloutConfig, structures: list, model: TrajCastForecaster
) -> tuple[MDState, dict | None]:
    if cfg.restart is not None:
        data = load_restart(cfg.restart, device=cfg.device)
        if not isinstance(data.state, ForecastState):
            raise ValueError(
                f"{cfg.restart}: holds a {type(data.state).__name__}, not a "
                "rollout state (written by `mlpot md`?)"
            )
        if data.state.momenta.dtype != model.dtype:
            raise ValueError(
                f"{cfg.restart}: saved in {data.state.momenta.dtype}, the "
                f"forecaster runs in {model.dtype}; pass the original --dtype"
            )
        saved = data.extra.get("rollout")
        if saved is not None and saved != _settings(cfg, model):
            raise ValueError(
                f"{cfg.restart}: saved with rollout settings {saved}, not "
                f"{_settings(cfg, model)}; pass the original options"
            )
        return data.state, {"data": data}
    state = MDState.from_atoms(structures, seed=cfg.seed, dtype=model.dtype, device=cfg.device)
    if not bool((state.momenta != 0).any()):
        state = maxwell_boltzmann(state, cfg.temperature)
    return state, None


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
    state, resumed = _initial_state(cfg, structures, model)
    if resumed is not None:
        return [
            _run_part(
                cfg,
                model,
                state,
                resumed["data"],
                console,
                0,
                state.num_systems,
                restart_path(cfg),
                False,
                should_stop,
            )
        ]
    limit = cfg.max_batch_atoms
    if limit is None and state.num_systems > 1:
        probe = MDState.from_atoms(structures[:1], dtype=model.dtype, device=cfg.device)
        limit = max_batch_atoms(ForecastField(model, cfg.skin), probe)
    groups = plan_batches(state.graph.atoms_per_system.tolist(), limit)
    summaries = []
    for k, group in enumerate(groups):
        part = MDState.from_atoms(
            [structures[i] for i in group],
            seed=[cfg.seed + i for i in group],
            dtype=model.dtype,
            device=cfg.device,
        )
        if not bool((part.momenta != 0).any()):
            part = maxwell_boltzmann(part, cfg.temperature)
        restart = restart_path(cfg)
        if len(groups) > 1:
            restart = restart.with_name(f"{restart.stem}.part{k}{restart.suffix}")
            console.print(f"part {k + 1}/{len(groups)}: systems {group[0]}..{group[-1]}")
        summaries.append(
            _run_part(
                cfg,
                model,
                part,
                None,
                console,
                group[0],
                state.num_systems,
                restart,
                k > 0,
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
    reporters: list[Reporter] = []
    if cfg.log is not None:
        resume_step = None if data is None else state.step
        reporters.append(
            ThermoReporter(cfg.log, cfg.every, resume_step, append_log, first_index, pressure=False)
        )
    traj = None
    if cfg.traj is not None:
        frames = None if data is None else data.extra.get("frames", 0)
        traj = TrajectoryReporter(cfg.traj, state, cfg.every, frames, first_index, total)
        reporters.append(traj)

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
    if s.message:
        console.print(f"[red]{s.message}[/]" if s.stop_reason != "interrupted" else s.message)
    if s.restart_path is not None:
        console.print(f"restart file: {s.restart_path}")
