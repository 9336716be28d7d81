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

from mlpot.md.commands import (
    RunOptions,
    batch_parts,
    output_reporters,
    print_outcome,
)
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
from mlpot.md.reporters import load_restart
from mlpot.md.reporters.restart import RestartData
from mlpot.md.simulate import RestartSchedule, RunSummary, SafetyLimits, run_md
from mlpot.md.state import MDState
from mlpot.md.units import GPA, gpa_to_ev_per_a3


@dataclass(frozen=True, kw_only=True)
class MDRunConfig(RunOptions):
    """Everything ``mlpot md`` needs (units: fs, K, GPa, Å): the options of
    :class:`~mlpot.md.commands.RunOptions` and the potential and ensemble.

    Attributes:
        model: a checkpoint path, a shipped model's name or "lj".
        ensemble: integrator and thermostat/barostat settings.
        every: log/trajectory interval, steps (default 10).
        lj: the parameters of ``model="lj"``.
    """

    model: str
    ensemble: EnsembleConfig = field(default_factory=EnsembleConfig)
    every: int = 10
    lj: LJParameters = field(default_factory=LJParameters)


def _validate(cfg: MDRunConfig) -> None:
    cfg.ensemble.validate()
    cfg.check()


def default_restart_path(cfg: MDRunConfig) -> Path:
    return cfg.restart_path("md")


def _load_restart(restart: Path, cfg: MDRunConfig, dtype: torch.dtype) -> RestartData:
    data = load_restart(restart, device=cfg.device)
    if data.state.momenta.dtype != dtype:
        raise ValueError(f"{restart}: saved in {data.state.momenta.dtype}, model runs in "
                         f"{dtype}; pass the same --dtype as the original run")
    return data


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
    if cfg.restart is not None:
        data = _load_restart(cfg.restart, cfg, model.dtype)
        return [_run_part(cfg, data.state, model, console, data, 0, data.state.num_systems,
                          default_restart_path(cfg), should_stop=should_stop)]
    probe_field = ForceField(model, cfg.skin, cfg.ensemble.ensemble == "npt")
    summaries = []
    for part in batch_parts(cfg, structures, model.dtype, cfg.ensemble.temperature,
                            probe_field, default_restart_path(cfg), console):
        summaries.append(_run_part(cfg, part.state, model, console, None, part.first_index,
                                   len(structures), part.restart, part.append_log,
                                   should_stop=should_stop))
        if summaries[-1].stop_reason != "completed":
            break
    return summaries


def _run_part(cfg, state, model, console, restart_data, first_index, total, restart_path,
              append_log=False, should_stop=None) -> RunSummary:
    integrator = build_integrator(cfg.ensemble)
    ff = ForceField(model, skin=cfg.skin, compute_stress=cfg.ensemble.ensemble == "npt")
    if restart_data is not None:
        if restart_data.verlet_reference is not None:
            ref_positions, ref_cell = restart_data.verlet_reference
            ff.rebuild_from(ref_positions, ref_cell, state.graph)
        saved = restart_data.extra.get("ensemble")
        if saved is not None and saved != asdict(cfg.ensemble):
            raise ValueError(f"{cfg.restart}: saved with ensemble settings {saved}, "
                             f"not {asdict(cfg.ensemble)}; pass the original options")
    else:  # with a log, the stress gives the pressure of the first row
        state = integrator.init(ff.evaluate(state, compute_stress=cfg.log is not None))
    reporters, traj = output_reporters(cfg, state, restart_data, first_index, total,
                                       append_log)

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
    print_outcome(console, s)


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


