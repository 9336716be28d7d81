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
        ...,
        "--forecaster",
        "-f",
        help="A TrajCast forecaster: shipped name or checkpoint path (.pt).",
    ),
    steps: int = typer.Option(
        1000, help="Run until this forecast step (one step = the forecaster's interval, "
        "several MD time steps; a resumed run continues to it)."
    ),
    temperature: float = typer.Option(300.0, help="Thermostat target, K; also the "
                                     "Maxwell-Boltzmann initial velocities when the structure "
                                     "has none."),
    thermostat: bool = typer.Option(
        True,
        "--thermostat/--no-thermostat",
        help="CSVR thermostat on the predicted velocities (off: NVE-like rollout).",
    ),
    tau: float = typer.Option(
        100.0,
        help="Thermostat time constant, fs. A forecaster that loses kinetic energy every "
        "step runs cold under a loose thermostat: use 20 for mlpot-ethanol-trajcast.",
    ),
    traj: Annotated[Path | None, typer.Option(
        help="Trajectory file, format from the suffix: .dcd .xtc .h5 .extxyz. Default: none."
    )] = None,
    log: Annotated[Path | None, typer.Option(
        help="Thermo log CSV (as mlpot md; epot is 0: a forecaster has no energy). "
             "Default: none.")] = None,
    every: int = typer.Option(1, help="Write a frame and a log row every N forecast steps."),
    seed: int = typer.Option(0, help="Random seed of velocities and thermostat noise "
                             "(system b uses seed + b)."),
    device: str = typer.Option("cpu", help="cpu | cuda | cuda:N."),
    dtype: str | None = typer.Option(None, help="float32 | float64. Default: the model's."),
    restart: Annotated[Path | None, typer.Option(
        help="Resume bit for bit from this restart file.")] = None,
    restart_out: Annotated[Path | None, typer.Option(
        help="Where to write restarts. Default: beside --traj (else --log) as "
             "NAME.restart.pt, else ./rollout.restart.pt.")] = None,
    restart_every: int | None = typer.Option(None, help="Also write a restart every N "
                                             "forecast steps. Default: only at the end."),
    skin: float = typer.Option(1.0, help="Verlet neighbour-list skin, Å."),
    max_temperature: float = typer.Option(1.0e5, help="Stop (exit 2) if any system gets "
                                          "hotter, K."),
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
