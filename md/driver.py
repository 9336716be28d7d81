"""What ``mlpot md`` and ``mlpot relax`` do, as library functions (the CLI only parses options)."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

import ase.io
import numpy as np
import torch
from rich.console import Console
from rich.progress import MofNCompleteColumn, Progress, TextColumn

from mlpot.md.batching import max_batch_atoms, plan_batches
from mlpot.md.config import (
    EnsembleConfig,
    LJParameters,
    build_integrator,
    build_model,
    read_structures,
)
from mlpot.md.forces import ForceField
from mlpot.md.progress import RunProgress
from mlpot.md.relax import FIRE, RelaxResult
from mlpot.md.reporters import ThermoReporter, TrajectoryReporter, load_restart
from mlpot.md.simulate import Reporter, RestartSchedule, RunSummary, SafetyLimits, run_md
from mlpot.md.state import MDState, maxwell_boltzmann
from mlpot.md.units import GPA, gpa_to_ev_per_a3


@dataclass(frozen=True)
class MDRunConfig:
    """Everything ``mlpot md`` needs (units: fs, K, GPa, Å).

    ``steps`` is the step count the run ends at, so re-running the same command with
    ``restart`` continues an interrupted run to the same end.
    """

    structure: Path
    model: str
    ensemble: EnsembleConfig = field(default_factory=EnsembleConfig)
    steps: int = 1000
    traj: Path | None = None
    log: Path | None = None
    every: int = 10
    seed: int = 0
    device: str = "cpu"
    dtype: str | None = None
    restart: Path | None = None
    restart_out: Path | None = None
    restart_every: int | None = None
    skin: float = 1.0
    lj: LJParameters = field(default_factory=LJParameters)
    max_temperature: float = 1.0e5
    max_batch_atoms: int | None = None
    progress: bool = True


def check_run_options(steps: int, every: int, traj: Path | None) -> None:
    """Options every MD-like run shares (``mlpot md``, ``mlpot rollout``): clear errors."""
    if steps < 0:
        raise ValueError(f"--steps must be >= 0, got {steps}")
    if every < 1:
        raise ValueError(f"--every must be >= 1, got {every}")
    if traj is not None:
        from mlpot.md.reporters.trajectory import trajectory_format

        trajectory_format(traj)


def restart_path_for(restart_out: Path | None, traj: Path | None, log: Path | None,
                     stem: str) -> Path:
    """Where a run writes its restart file: ``restart_out``, else beside the trajectory
    or log (``NAME.restart.pt``), else ``STEM.restart.pt``."""
    if restart_out is not None:
        return restart_out
    base = traj or log or Path(stem)
    return base.with_name(base.stem + ".restart.pt")


def _validate(cfg: MDRunConfig) -> None:
    cfg.ensemble.validate()
    check_run_options(cfg.steps, cfg.every, cfg.traj)


def default_restart_path(cfg: MDRunConfig) -> Path:
    return restart_path_for(cfg.restart_out, cfg.traj, cfg.log, "md")


def _initial_state(cfg: MDRunConfig, structures, model) -> tuple[MDState, dict | None]:
    dtype = model.dtype
    if cfg.restart is not None:
        data = load_restart(cfg.restart, device=cfg.device)
        state = data.state
        if state.momenta.dtype != dtype:
            raise ValueError(f"{cfg.restart}: saved in {state.momenta.dtype}, model runs in "
                             f"{dtype}; pass the same --dtype as the original run")
        return state, {"data": data}
    state = MDState.from_atoms(structures, seed=cfg.seed, dtype=dtype, device=cfg.device)
    if not bool((state.momenta != 0).any()):
        state = maxwell_boltzmann(state, cfg.ensemble.temperature)
    return state, None


def run_md_command(cfg: MDRunConfig, console: Console | None = None,
                   should_stop: Callable[[], bool] | None = None) -> list[RunSummary]:
    """Run ``mlpot md``; returns one summary per batch part. Raises ValueError/
    FileNotFoundError for bad input (before anything is written). ``should_stop()``
    (the CLI's Ctrl-C flag) ends the run cleanly at the next step."""
    console = console or Console()
    _validate(cfg)
    structures = read_structures(cfg.structure)
    if cfg.ensemble.ensemble == "npt" and not all(a.pbc.all() for a in structures):
        raise ValueError(f"{cfg.structure}: NPT needs a cell periodic in all three directions")
    model = build_model(cfg.model, structures, cfg.lj, cfg.device, cfg.dtype)
    state, resumed = _initial_state(cfg, structures, model)
    if resumed is not None:
        return [_run_part(cfg, state, model, console, resumed["data"], 0, state.num_systems,
                          default_restart_path(cfg), should_stop=should_stop)]
    stress = cfg.ensemble.ensemble == "npt"
    limit = cfg.max_batch_atoms
    if limit is None and state.num_systems > 1:
        probe = MDState.from_atoms(structures[:1], dtype=model.dtype, device=cfg.device)
        limit = max_batch_atoms(ForceField(model, cfg.skin, stress), probe)
    groups = plan_batches(state.graph.atoms_per_system.tolist(), limit)
    summaries = []
    for k, group in enumerate(groups):
        part = MDState.from_atoms([structures[i] for i in group],
                                  seed=[cfg.seed + i for i in group], dtype=model.dtype,
                                  device=cfg.device)
        if not bool((part.momenta != 0).any()):
            part = maxwell_boltzmann(part, cfg.ensemble.temperature)
        restart = default_restart_path(cfg)
        if len(groups) > 1:
            restart = restart.with_name(f"{restart.stem}.part{k}{restart.suffix}")
            console.print(f"part {k + 1}/{len(groups)}: systems {group[0]}..{group[-1]}")
        summaries.append(_run_part(cfg, part, model, console, None, group[0],
                                   state.num_systems, restart, append_log=k > 0,
                                   should_stop=should_stop))
        if summaries[-1].stop_reason != "completed":
            break
    return summaries


def _run_part(cfg, state, model, console, restart_data, first_index, total, restart_path,
              append_log=False, should_stop=None) -> RunSummary:
    integrator = build_integrator(cfg.ensemble)
    ff = ForceField(model, skin=cfg.skin, compute_stress=cfg.ensemble.ensemble == "npt")
    resume_step = None
    if restart_data is not None:
        if restart_data.verlet_reference is not None:
            ref_positions, ref_cell = restart_data.verlet_reference
            ff.rebuild_from(ref_positions, ref_cell, state.graph)
        resume_step = state.step
        saved = restart_data.extra.get("ensemble")
        if saved is not None and saved != asdict(cfg.ensemble):
            raise ValueError(f"{cfg.restart}: saved with ensemble settings {saved}, "
                             f"not {asdict(cfg.ensemble)}; pass the original options")
    else:  # with a log, the stress gives the pressure of the first row
        state = integrator.init(ff.evaluate(state, compute_stress=cfg.log is not None))
    reporters: list[Reporter] = []
    if cfg.log is not None:
        reporters.append(ThermoReporter(cfg.log, cfg.every, resume_step, append_log, first_index))
    if cfg.traj is not None:
        frames = None if restart_data is None else restart_data.extra.get("frames", 0)
        reporters.append(TrajectoryReporter(cfg.traj, state, cfg.every, frames, first_index,
                                            total))
    traj = next((r for r in reporters if isinstance(r, TrajectoryReporter)), None)

    def extra() -> dict:
        return {"ensemble": asdict(cfg.ensemble), "model": cfg.model,
                "frames": traj.frames if traj else 0}

    remaining = max(cfg.steps - state.step, 0)
    progress = RunProgress(console, cfg.steps, state.step, cfg.ensemble.timestep, cfg.progress)
    restart = RestartSchedule(restart_path, cfg.restart_every, extra)
    with progress.bar:
        summary = run_md(state, integrator, ff, remaining, reporters, restart,
                         SafetyLimits(max_temperature=cfg.max_temperature),
                         on_step=progress, should_stop=should_stop,
                         report_initial=restart_data is None)
        progress.bar.update(progress.task, completed=summary.state.step)
    print_summary(console, summary, cfg.ensemble.ensemble)
    return summary


def print_summary(console: Console, s: RunSummary, ensemble: str) -> None:
    """End-of-run report: wall time, speed, drift (NVE) and why the run stopped."""
    console.print(f"[bold]{s.stop_reason}[/]: {s.steps} steps in {s.wall_s:.2f} s "
                  f"({s.steps_per_s:.1f} steps/s, {s.ns_per_day:.3g} ns/day)")
    if s.drift_per_atom_per_ns is not None and s.steps > 0:
        label = "energy drift" if ensemble == "nve" else "conserved-quantity drift"
        worst = float(np.abs(s.drift_per_atom_per_ns).max())
        console.print(f"{label}: {worst:.3e} eV/atom/ns (max over systems)")
    final = s.state
    console.print(f"final T = {float(final.temperature().mean()):.2f} K, "
                  f"Epot = {float(final.energy.sum()):.6f} eV"
                  + (f", P = {float(final.pressure().mean()) / GPA:.4f} GPa, "
                     f"V = {float(final.volume().mean()):.2f} Å³"
                     if final.stress is not None else ""))
    if s.message:
        console.print(f"[red]{s.message}[/]" if s.stop_reason != "interrupted" else s.message)
    if s.restart_path is not None:
        console.print(f"restart file: {s.restart_path}")


@dataclass(frozen=True)
class RelaxConfig:
    """Everything ``mlpot relax`` needs (fmax eV/Å, pressure GPa)."""

    structure: Path
    model: str
    out: Path
    fmax: float = 0.05
    steps: int = 1000
    cell: bool = False
    pressure_gpa: float = 0.0
    device: str = "cpu"
    dtype: str | None = None
    lj: LJParameters = field(default_factory=LJParameters)
    progress: bool = True


def run_relax_command(cfg: RelaxConfig, console: Console | None = None) -> RelaxResult:
    """Relax every frame of the structure file with batched FIRE; write ``out`` (extxyz)."""
    console = console or Console()
    if not cfg.fmax > 0:
        raise ValueError(f"--fmax must be positive, got {cfg.fmax}")
    structures = read_structures(cfg.structure)
    model = build_model(cfg.model, structures, cfg.lj, cfg.device, cfg.dtype)
    if cfg.cell and not all(a.pbc.all() for a in structures):
        raise ValueError(f"{cfg.structure}: --cell needs cells periodic in all directions")
    state = MDState.from_atoms(structures, dtype=model.dtype, device=cfg.device)
    ff = ForceField(model, skin=0.5, compute_stress=cfg.cell)
    fire = FIRE(fmax=cfg.fmax, max_steps=cfg.steps, cell_filter=cfg.cell,
                pressure=gpa_to_ev_per_a3(cfg.pressure_gpa))
    start = time.perf_counter()
    with Progress(TextColumn("[bold]relax"), MofNCompleteColumn(),
                  TextColumn("fmax {task.fields[f]}"), console=console,
                  disable=not cfg.progress) as bar:
        task = bar.add_task("relax", total=cfg.steps, f="")
        result = fire.run(state, ff, callback=lambda k, _s, f: bar.update(
            task, completed=k, f=f"{float(f.max()):.4f} eV/Å"))
    images = result.state.replace(momenta=torch.zeros_like(result.state.momenta)).to_atoms()
    tmp = cfg.out.with_name(f".{cfg.out.name}.tmp")
    ase.io.write(tmp, images, format="extxyz")
    tmp.replace(cfg.out)
    conv = int(result.converged.sum())
    console.print(f"{conv}/{len(images)} converged in {result.steps} FIRE steps "
                  f"({time.perf_counter() - start:.2f} s); max force "
                  f"{float(result.fmax.max()):.4f} eV/Å; wrote {cfg.out}")
    return result


