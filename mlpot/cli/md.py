"""``mlpot md`` and ``mlpot relax``: parse options into configs, call :mod:`mlpot.md.driver`."""

from __future__ import annotations

import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from mlpot.md.config import EnsembleConfig, LJParameters
from mlpot.md.errors import MDError


class StopRequest:
    """A flag set by the first Ctrl-C (the run stops cleanly at the next step)."""

    def __init__(self) -> None:
        self.requested = False

    def __call__(self) -> bool:
        return self.requested


@contextmanager
def stop_on_sigint() -> Iterator[StopRequest]:
    """While active, the first SIGINT sets the yielded flag instead of raising; the
    second raises KeyboardInterrupt (an MD step in progress is then abandoned and the
    run stops at the last complete step). Outside the main thread, a no-op flag."""
    stop = StopRequest()
    if threading.current_thread() is not threading.main_thread():
        yield stop
        return

    def handle(_signum: int, _frame: object) -> None:
        if stop.requested:
            raise KeyboardInterrupt
        stop.requested = True

    old = signal.signal(signal.SIGINT, handle)
    try:
        yield stop
    finally:
        signal.signal(signal.SIGINT, old)


def _fail(message: str) -> None:
    Console(stderr=True).print(f"[red]error:[/] {message}", highlight=False, soft_wrap=True)
    raise typer.Exit(code=1)


def md(
    structure: Annotated[Path, typer.Argument(help="Structure file (anything ase.io reads; "
                                              "several frames run as one batch).")],
    model: str = typer.Option(..., "--model", "-m", help="'lj' (Lennard-Jones, see --lj-*), a "
                              "shipped model name (`mlpot models`) or a checkpoint path (.pt)."),
    ensemble: str = typer.Option("nve", help="nve (Velocity Verlet) | nvt (see --thermostat) | "
                                "npt (stochastic cell rescaling + CSVR)."),
    thermostat: str = typer.Option("csvr", help="NVT thermostat: csvr (Bussi) | langevin "
                                  "(BAOAB) | nose-hoover (chains); npt always uses csvr."),
    temperature: float = typer.Option(300.0, help="Thermostat target, K; also the "
                                     "Maxwell-Boltzmann initial velocities when the structure "
                                     "has none (all ensembles)."),
    pressure: float = typer.Option(0.0, help="Target pressure, GPa (npt only; 1 GPa = "
                                  "0.00624 eV/Å³)."),
    timestep: float = typer.Option(1.0, help="Time step, fs."),
    steps: int = typer.Option(1000, help="Run until this step number (a resumed run "
                             "continues to it, it does not add N more)."),
    traj: Annotated[Path | None, typer.Option(
        help="Trajectory file, format from the suffix: .dcd, .xtc, .h5 (written by mdtraj; "
             "DCD stores Å, XTC and H5 nm, as those formats define) or .extxyz (with "
             "velocities). Default: none.")] = None,
    log: Annotated[Path | None, typer.Option(
        help="Thermo log CSV (step, time fs, energies eV, T K, pressure GPa, volume Å³, "
             "per system). Default: none.")] = None,
    every: int = typer.Option(10, help="Write a trajectory frame and a log row every N "
                              "steps."),
    seed: int = typer.Option(0, help="Random seed of velocities and thermostat noise "
                          "(system b of a batch uses seed + b)."),
    device: str = typer.Option("cpu", help="cpu | cuda | cuda:N."),
    dtype: str | None = typer.Option(None, help="float32 | float64. Default: the model's "
                                     "(float64 for --model lj)."),
    restart: Annotated[Path | None, typer.Option(
        help="Resume bit for bit from this restart file (written at the end of every run, "
             "and every --restart-every steps).")] = None,
    restart_out: Annotated[Path | None, typer.Option(
        help="Where to write restarts. Default: beside --traj (else --log) as "
             "NAME.restart.pt, else ./md.restart.pt.")] = None,
    restart_every: int | None = typer.Option(None, help="Also write a restart every N "
                                             "steps. Default: only at the end."),
    tau_t: float = typer.Option(100.0, help="Thermostat time constant, fs (Langevin: 1/γ)."),
    tau_p: float = typer.Option(1000.0, help="Barostat time constant, fs (npt)."),
    compressibility: float = typer.Option(0.5, help="Barostat compressibility, 1/GPa (npt; "
                                          "sets the coupling strength, not the physics)."),
    cell_mode: str = typer.Option("isotropic", help="npt cell shape: isotropic (one length) | "
                                  "anisotropic (3 lengths) | full (all 9 components)."),
    skin: float = typer.Option(1.0, help="Verlet neighbour-list skin, Å (list rebuilt when an "
                               "atom moved more than skin/2)."),
    max_temperature: float = typer.Option(1.0e5, help="Stop (exit 2) if any system gets "
                                          "hotter, K."),
    max_batch_atoms: int | None = typer.Option(None, help="Split the frames into batches of at "
                                               "most this many atoms. Default: estimated from "
                                               "free memory on GPU, one batch on CPU."),
    lj_epsilon: float = typer.Option(0.0104, help="--model lj: well depth ε, eV (argon)."),
    lj_sigma: float = typer.Option(3.40, help="--model lj: σ, Å (argon)."),
    lj_cutoff: float = typer.Option(8.5, help="--model lj: cutoff, Å (smoothly switched off "
                                    "from 0.66 of it)."),
    progress: bool = typer.Option(True, help="Show the live progress bar (steps/s, ns/day, "
                                  "ETA)."),
) -> None:
    """Molecular dynamics (NVE, NVT, NPT) of one or many systems.

    Every frame of STRUCTURE runs as one batch. Exit status: 0 done, 1 bad input, 2 blow-up
    or out of memory (the last good state is kept), 130 Ctrl-C (trajectory flushed, restart
    written)."""
    from mlpot.md.driver import MDRunConfig, run_md_command

    cfg = MDRunConfig(
        structure=structure, model=model,
        ensemble=EnsembleConfig(ensemble=ensemble.lower(), thermostat=thermostat.lower(),
                                timestep=timestep, temperature=temperature,
                                pressure_gpa=pressure, tau_t=tau_t, tau_p=tau_p,
                                compressibility_per_gpa=compressibility, cell_mode=cell_mode),
        steps=steps, traj=traj, log=log, every=every, seed=seed, device=device, dtype=dtype,
        restart=restart, restart_out=restart_out, restart_every=restart_every, skin=skin,
        lj=LJParameters(lj_epsilon, lj_sigma, lj_cutoff), max_temperature=max_temperature,
        max_batch_atoms=max_batch_atoms, progress=progress)
    try:
        with stop_on_sigint() as stop:
            summaries = run_md_command(cfg, should_stop=stop)
    except (ValueError, FileNotFoundError, MDError, OSError) as err:
        _fail(str(err))
        return
    if any(s.stop_reason in ("blow-up", "out-of-memory") for s in summaries):
        raise typer.Exit(code=2)
    if any(s.stop_reason == "interrupted" for s in summaries):
        raise typer.Exit(code=130)


def relax(
    structure: Annotated[Path, typer.Argument(help="Structure file (anything ase.io reads).")],
    model: str = typer.Option(..., "--model", "-m", help="'lj' (see --lj-*), a shipped model "
                              "name (`mlpot models`) or a checkpoint path (.pt)."),
    out: Annotated[Path, typer.Option(help="Relaxed structures (extxyz, with energy, forces "
                                      "and stress).")] = Path("relaxed.extxyz"),
    fmax: float = typer.Option(0.05, help="Converged when every force is below this, eV/Å "
                               "(with --cell also the cell's generalized force, V·σ/N)."),
    steps: int = typer.Option(1000, help="Maximum FIRE steps (exit 3 if not converged)."),
    cell: bool = typer.Option(False, "--cell/--no-cell", help="Relax the cell too (Fréchet "
                              "cell filter)."),
    pressure: float = typer.Option(0.0, help="External pressure with --cell, GPa."),
    device: str = typer.Option("cpu", help="cpu | cuda | cuda:N."),
    dtype: str | None = typer.Option(None, help="float32 | float64. Default: the model's "
                                     "(float64 for --model lj)."),
    lj_epsilon: float = typer.Option(0.0104, help="--model lj: well depth ε, eV (argon)."),
    lj_sigma: float = typer.Option(3.40, help="--model lj: σ, Å (argon)."),
    lj_cutoff: float = typer.Option(8.5, help="--model lj: cutoff, Å (smoothly switched off "
                                    "from 0.66 of it)."),
    progress: bool = typer.Option(True, help="Show the live progress bar."),
) -> None:
    """Relax positions (and with --cell the cell) with batched FIRE.

    Every frame of STRUCTURE relaxes in one batch. Exit status: 0 converged, 1 bad input,
    3 not converged within --steps (the structures are written anyway)."""
    from mlpot.md.driver import RelaxConfig, run_relax_command

    cfg = RelaxConfig(structure=structure, model=model, out=out, fmax=fmax, steps=steps,
                      cell=cell, pressure_gpa=pressure, device=device, dtype=dtype,
                      lj=LJParameters(lj_epsilon, lj_sigma, lj_cutoff), progress=progress)
    try:
        result = run_relax_command(cfg)
    except (ValueError, FileNotFoundError, MDError, OSError) as err:
        _fail(str(err))
        return
    if not bool(result.converged.all()):
        raise typer.Exit(code=3)


def register(app: typer.Typer) -> None:
    """Add ``md`` and ``relax`` to the ``mlpot`` app."""
    app.command("md")(md)
    app.command("relax")(relax)
