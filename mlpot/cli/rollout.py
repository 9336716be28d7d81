"""``mlpot rollout``: parse options into a config, call :mod:`mlpot.md.rollout_driver`."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from mlpot.cli.md import _fail, stop_on_sigint
from mlpot.md.errors import MDError


def rollout(
    structure: Annotated[
        Path,
        typer.Argument(
            help="Structure file (anything ase.io reads; several frames run as one batch)."
        ),
    ],
    forecaster: str = typer.Option(
        ..., "--forecaster", "-f", help="A TrajCast forecaster: shipped name or checkpoint path."
    ),
    steps: int = typer.Option(
        1000, help="Run until this forecast step (resumed runs continue to it)."
    ),
    temperature: float = typer.Option(300.0, help="Initial and thermostat temperature, K."),
    thermostat: bool = typer.Option(
        True, "--thermostat/--no-thermostat", help="CSVR on the predicted velocities."
    ),
    tau: float = typer.Option(100.0, help="Thermostat time constant, fs."),
    traj: Annotated[Path | None, typer.Option(help="Trajectory: .dcd .xtc .h5 .extxyz.")] = None,
    log: Annotated[Path | None, typer.Option(help="Thermo log CSV.")] = None,
    every: int = typer.Option(1, help="Report every N forecast steps."),
    seed: int = typer.Option(0, help="Random seed (system b uses seed + b)."),
    device: str = typer.Option("cpu", help="cpu | cuda | cuda:N."),
    dtype: str | None = typer.Option(None, help="float32 | float64 (default: the model's)."),
    restart: Annotated[Path | None, typer.Option(help="Resume from this restart file.")] = None,
    restart_out: Annotated[
        Path | None, typer.Option(help="Where to write restarts (default: next to --traj/--log).")
    ] = None,
    restart_every: int | None = typer.Option(None, help="Also write a restart every N steps."),
    skin: float = typer.Option(1.0, help="Neighbour-list skin, Å."),
    max_temperature: float = typer.Option(1.0e5, help="Stop if any system gets hotter, K."),
    progress: bool = typer.Option(True, help="Show the live progress bar."),
    max_batch_atoms: int | None = typer.Option(
        None,
        help="Split many structures into batches of at most this many atoms "
        "(default: one batch on CPU, what fits in memory on CUDA).",
    ),
) -> None:
    """Force-free MD: autoregressive rollout of a TrajCast forecaster."""
    from mlpot.md.rollout_driver import RolloutConfig, run_rollout_command

    cfg = RolloutConfig(
        structure=structure,
        forecaster=forecaster,
        steps=steps,
        temperature=temperature,
        thermostat=thermostat,
        tau=tau,
        traj=traj,
        log=log,
        every=every,
        seed=seed,
        device=device,
        dtype=dtype,
        restart=restart,
        restart_out=restart_out,
        restart_every=restart_every,
        skin=skin,
        max_temperature=max_temperature,
        progress=progress,
        max_batch_atoms=max_batch_atoms,
    )
    try:
        with stop_on_sigint() as stop:
            summary = run_rollout_command(cfg, should_stop=stop)[-1]
    except (ValueError, FileNotFoundError, MDError, OSError) as err:
        _fail(str(err))
        return
    if summary.stop_reason in ("blow-up", "out-of-memory"):
        raise typer.Exit(code=2)
    if summary.stop_reason == "interrupted":
        raise typer.Exit(code=130)
